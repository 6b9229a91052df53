//! `skiff server --datastore-endpoint postgres://…`: the cluster's state in
//! a real PostgreSQL server (one this test starts, on a unix socket),
//! driven with the real kubectl.

mod support;

use support::postgres::PgCluster;
use support::Server;

#[test]
fn a_server_keeps_its_state_in_postgresql() {
    let pg = PgCluster::start();
    let db = pg.create_database();
    let url = pg.url(&db);
    // From the environment, as a password would be given.
    let mut s = Server::start_with_env(
        &["--disable-agent"],
        &[("SKIFF_DATASTORE_ENDPOINT", url.as_str())],
    );
    s.kubectl_ok(&["create", "configmap", "c1", "--from-literal=k=v1"]);
    s.kubectl_ok(&["create", "namespace", "team"]);
    // The controllers work on it as on SQLite: the Deployment's pods are made.
    deploy_and_wait(&s, "team", "web");
    s.kubectl_ok(&["patch", "configmap", "c1", "-p", r#"{"data":{"k":"v2"}}"#]);
    // Nothing of the state is in the data directory's database file.
    assert!(
        !s.data_dir().join("server/db/state.db").exists(),
        "a SQLite file was made beside the PostgreSQL datastore"
    );
    // The rows are PostgreSQL's, and survive the server.
    let rows = psql(
        &pg,
        &db,
        "SELECT count(*) FROM skiff_kv WHERE key LIKE '%/configmaps/default/c1'",
    );
    assert_eq!(rows, "2");
    s.restart();
    let out = s.kubectl_ok(&["get", "configmap", "c1", "-o", "jsonpath={.data.k}"]);
    assert_eq!(out, "v2");
    let out = s.kubectl_ok(&["get", "deployment", "web", "-n", "team", "-o", "name"]);
    assert_eq!(out.trim(), "deployment.apps/web");
}

#[test]
fn a_bad_datastore_endpoint_is_named_and_the_server_does_not_start() {
    let pg = PgCluster::start();
    let mut s = Server::start_with_args(&["--disable-agent"]);
    let log = s.restart_fails_with_args(&[
        "--disable-agent",
        "--datastore-endpoint",
        "mysql://root:hunter2@db/skiff",
    ]);
    assert!(log.contains("unknown scheme mysql"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    let log = s.restart_fails_with_args(&[
        "--disable-agent",
        "--datastore-endpoint",
        "postgres://skiff:hunter2@db.example.com/skiff?sslmode=disable",
    ]);
    assert!(log.contains("must be encrypted"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    // A database that does not exist: PostgreSQL's own words.
    let missing = pg.url("nosuchdb");
    let log = s.restart_fails_with_args(&["--disable-agent", "--datastore-endpoint", &missing]);
    assert!(
        log.contains("nosuchdb") && log.contains("does not exist"),
        "{log}"
    );
}

/// Quick leader hand-over for the test (the defaults wait a minute).
const FAST_LEADER: &[&str] = &[
    "--disable-agent",
    "--leader-elect-lease-duration",
    "4",
    "--leader-elect-renew-deadline",
    "3",
    "--leader-elect-retry-period",
    "1",
];

/// Apply a two-replica Deployment `name` in `ns` and wait until the
/// controllers have made its pods.
fn deploy_and_wait(s: &Server, ns: &str, name: &str) {
    s.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    \
             metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let selector = format!("app={name}");
    loop {
        let pods = s.kubectl_ok(&["get", "pods", "-n", ns, "-l", &selector, "-o", "name"]);
        if pods.lines().count() == 2 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pods: {pods}\n{}",
            s.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn psql(pg: &PgCluster, db: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .arg("-h")
        .arg(pg.socket_dir())
        .args(["-U", "postgres", "-d", db, "-Atc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn servers_sharing_a_database_and_a_token_serve_one_cluster() {
    let pg = PgCluster::start();
    let db = pg.create_database();
    let url = pg.url(&db);
    let env = [
        ("SKIFF_DATASTORE_ENDPOINT", url.as_str()),
        ("SKIFF_TOKEN", "our-cluster-secret"),
    ];
    let mut args = FAST_LEADER.to_vec();
    args.push("--secrets-encryption");
    let mut a = Server::start_with_env(&args, &env);
    a.kubectl_ok(&["create", "configmap", "from-a", "--from-literal=k=a"]);
    a.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s-a",
        "--from-literal=k=sealed",
    ]);
    let b = Server::start_with_env(&args, &env);
    assert!(b.logs().contains("Joined"), "{}", b.logs());
    // One CA, one service-account key, one set of bearer tokens.
    for file in [
        "server/tls/server-ca.crt",
        "server/tls/server-ca.key",
        "server/tls/kubelet-ca.crt",
        "server/tls/service-account.key",
        "server/cred/tokens.csv",
        "server/cred/encryption-config.json",
    ] {
        let read = |s: &Server| std::fs::read(s.data_dir().join(file)).unwrap();
        assert_eq!(read(&a), read(&b), "{file}");
    }
    // A's admin kubeconfig works against B as against A, both ways.
    let out = b.kubectl_with(
        &a.kubeconfig(),
        &["get", "configmap", "from-a", "-o", "jsonpath={.data.k}"],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(support::stdout(&out), "a");
    // A Secret A encrypted, B reads (one key).
    let out = b.kubectl_with(
        &a.kubeconfig(),
        &["get", "secret", "s-a", "-o", "jsonpath={.data.k}"],
    );
    assert_eq!(
        support::stdout(&out),
        "c2VhbGVk",
        "{}",
        support::stderr(&out)
    );
    b.kubectl_ok(&["create", "configmap", "from-b", "--from-literal=k=b"]);
    let out = a.kubectl_ok(&["get", "configmap", "from-b", "-o", "jsonpath={.data.k}"]);
    assert_eq!(out, "b");
    // The same join token on both (agents may use either).
    let token = |s: &Server| std::fs::read_to_string(s.data_dir().join("server/token")).unwrap();
    assert_eq!(token(&a), token(&b));
    assert!(token(&a).trim().ends_with("::our-cluster-secret"));
    // The datastore holds the keys sealed, not as PEM.
    let record = psql(
        &pg,
        &db,
        "SELECT encode(value, 'escape') FROM skiff_kv WHERE key = '/bootstrap/cluster'",
    );
    assert!(record.contains("\"salt\""), "{record}");
    assert!(
        !record.contains("BEGIN"),
        "the record holds a PEM in the clear"
    );

    // The first server goes: the second takes the controllers over and a
    // Deployment made afterwards gets its pods.
    a.kill();
    deploy_and_wait(&b, "default", "after");

    // A server with another token is refused, and names what to do.
    let mut c = Server::start_with_args(&["--disable-agent"]);
    c.kill();
    std::fs::remove_dir_all(c.data_dir()).unwrap();
    let log = c.restart_fails_with_args(&[
        "--disable-agent",
        "--datastore-endpoint",
        &url,
        "--token",
        "a-guess",
    ]);
    assert!(log.contains("sealed with another token"), "{log}");
    assert!(!log.contains("a-guess"), "{log}");
    assert!(!c.data_dir().join("server/tls/server-ca.crt").exists());
    // Nor is its token kept: the right one works next.
    assert!(!c.data_dir().join("server/token").exists());
}

fn rv(s: &Server, name: &str) -> u64 {
    s.kubectl_ok(&[
        "get",
        "configmap",
        name,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn a_single_servers_cluster_moves_from_sqlite_into_postgresql() {
    let pg = PgCluster::start();
    let db = pg.create_database();
    let url = pg.url(&db);
    let mut s = Server::start_with_args(&["--disable-agent"]);
    s.kubectl_ok(&["create", "configmap", "c-b", "--from-literal=k=b1"]);
    s.kubectl_ok(&["create", "configmap", "c-a", "--from-literal=k=a"]);
    s.kubectl_ok(&["patch", "configmap", "c-b", "-p", r#"{"data":{"k":"b2"}}"#]);
    s.kubectl_ok(&["create", "secret", "generic", "s", "--from-literal=k=v"]);
    assert!(rv(&s, "c-a") < rv(&s, "c-b"));
    let args = [
        "--disable-agent",
        "--datastore-endpoint",
        url.as_str(),
        "--migrate-from",
        "sqlite://",
    ];
    s.restart_with_args(&args);
    assert!(
        s.logs().contains("migrated the cluster into the datastore"),
        "{}",
        s.logs()
    );
    // Every object, with its last value, and the order of the writes.
    let b = s.kubectl_ok(&["get", "configmap", "c-b", "-o", "jsonpath={.data.k}"]);
    assert_eq!(b, "b2");
    assert!(rv(&s, "c-a") < rv(&s, "c-b"));
    let out = s.kubectl_ok(&["get", "secret", "s", "-o", "jsonpath={.data.k}"]);
    assert_eq!(out, "dg==");
    let rows = psql(
        &pg,
        &db,
        "SELECT count(*) FROM skiff_kv WHERE key LIKE '%/configmaps/default/c-%'",
    );
    assert_eq!(rows, "2");
    // Started again with the same flags: the datastore is in use, and is
    // left as it is.
    s.kubectl_ok(&["create", "configmap", "after", "--from-literal=k=x"]);
    s.restart_with_args(&args);
    assert!(s.logs().contains("not migrating"), "{}", s.logs());
    s.kubectl_ok(&["get", "configmap", "after", "c-a", "c-b"]);
}
