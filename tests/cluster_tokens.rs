//! `skiff token create|list|delete` against a running server
//! (support/cluster.rs), and what the tokens do at a join: a created token
//! joins a new agent; a deleted one, an expired one (whose Secret the
//! server's token cleaner then removes) and one not meant for
//! authentication are refused with a message that says what to use.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/containers.rs"]
mod containers;
mod support;

use std::process::{Output, Stdio};
use std::thread;
use std::time::Duration;

use cluster::{s, Cluster, Options, API_PORT};
use support::{stderr, stdout};

/// `skiff token ...` with the admin kubeconfig, from the server's namespace.
fn token(c: &Cluster, args: &[&str]) -> Output {
    let kubeconfig = c.kubeconfig();
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    all.extend(["--kubeconfig", s(&kubeconfig)]);
    c.server().skiff(&all)
}

fn token_ok(c: &Cluster, args: &[&str]) -> String {
    let out = token(c, args);
    assert!(
        out.status.success(),
        "skiff token {}: {}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A fresh box (its own data dir) trying to join with `token`; it must be
/// refused: its stderr.
fn refused_join(c: &Cluster, token: &str, name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = c
        .server()
        .command("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .args(["agent", "--server"])
        .arg(format!("https://127.0.0.1:{API_PORT}"))
        .args(["--token", token, "--node-name", name])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{name} joined: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refused to join") && err.contains("join token is not valid"),
        "{name}: {err}"
    );
    err
}

fn bootstrap_secret_exists(c: &Cluster, id: &str) -> bool {
    let out = c.kubectl(&[
        "get",
        "secret",
        "-n",
        "kube-system",
        &format!("bootstrap-token-{id}"),
    ]);
    if out.status.success() {
        return true;
    }
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
    false
}

/// The id of a join token `K10<hash>::<id>.<secret>`.
fn id_of(token: &str) -> String {
    let (_, rest) = token.split_once("::").unwrap();
    rest.split('.').next().unwrap().to_string()
}

#[test]
fn bootstrap_tokens_join_nodes_until_deleted_or_expired() {
    let mut c = Cluster::start(Options {
        agents: 0,
        ..Default::default()
    });
    let server_token = std::fs::read_to_string(c.token_path()).unwrap();
    let hash = server_token.trim().split_once("::").unwrap().0.to_string();

    // Created: the cluster CA's hash (as the server's own token pins it)
    // and a fresh <id>.<secret>.
    let joining = token_ok(&c, &["create", "--description", "joins b1"])
        .trim()
        .to_string();
    assert!(joining.starts_with(&format!("{hash}::")), "{joining}");
    let id = id_of(&joining);
    assert!(bootstrap_secret_exists(&c, &id));

    c.add_agent("b1", &joining);
    c.wait_node_ready("b1", true);

    let list = token_ok(&c, &["list"]);
    let header = list.lines().next().unwrap_or_default();
    for col in [
        "TOKEN",
        "TTL",
        "EXPIRES",
        "USAGES",
        "DESCRIPTION",
        "EXTRA GROUPS",
    ] {
        assert!(header.contains(col), "{list}");
    }
    let row = list
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{list}"));
    assert!(
        row.contains("authentication,signing") && row.contains("joins b1"),
        "{row}"
    );
    assert!(
        row.contains(" 23h ") || row.contains(" 24h "),
        "a day to live: {row}"
    );
    // The secret part is never listed.
    let secret = joining.rsplit('.').next().unwrap();
    assert!(!list.contains(secret), "{list}");

    // Given tokens are taken as they are, once.
    let given = "abcdef.0123456789abcdef";
    let made = token_ok(&c, &["create", given]);
    assert_eq!(made.trim(), format!("{hash}::{given}"));
    let again = token(&c, &["create", given]);
    assert!(
        !again.status.success() && stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // Deleted (by the full join token, and by id): refused from then on.
    let deleted = token_ok(&c, &["delete", &joining, "abcdef"]);
    assert!(
        deleted.contains(&id) && deleted.contains("abcdef"),
        "{deleted}"
    );
    assert!(!bootstrap_secret_exists(&c, &id));
    refused_join(&c, &joining, "box-deleted");
    let missing = token(&c, &["delete", "abcdef"]);
    assert!(
        !missing.status.success() && stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );
    // The node that joined with it stays: its own certificate holds it.
    c.wait_node_ready("b1", true);

    // Not meant for joining: refused.
    let signing = token_ok(&c, &["create", "--usages", "signing"])
        .trim()
        .to_string();
    let row = token_ok(&c, &["list"])
        .lines()
        .find(|l| l.starts_with(&id_of(&signing)))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(row.contains(" signing ") && row.contains("<none>"), "{row}");
    refused_join(&c, &signing, "box-signing");

    // Expired: refused, and the cleaner removes its Secret.
    let brief = token_ok(&c, &["create", "--ttl", "2s"]).trim().to_string();
    let brief_id = id_of(&brief);
    thread::sleep(Duration::from_secs(3));
    refused_join(&c, &brief, "box-expired");
    c.wait_for("the expired token's Secret removed", |c| {
        !bootstrap_secret_exists(c, &brief_id)
    });
    let logs = c.server().logs();
    assert!(
        logs.contains("deleting an expired bootstrap token"),
        "{logs}"
    );
    // A token that never expires stays.
    assert!(bootstrap_secret_exists(&c, &id_of(&signing)));

    let nodes = c.kubectl_ok(&["get", "nodes", "-o", "name"]);
    assert!(!nodes.contains("node/box"), "{nodes}");
}
