//! Pulls from a registry that wants HTTPS with a certificate from a test CA
//! and htpasswd (bcrypt) Basic auth: configured through registries.yaml
//! `configs:` (auth + tls.ca_file), or through `skiff login` credentials.
//! The registry is Debian's docker-registry on 127.0.0.1 inside the test's
//! own network namespace.

#[path = "support/oci.rs"]
mod oci;
#[path = "support/registry.rs"]
mod registry;
mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use registry::{build_busybox_image, skiff, skiff_ok, Registry};

const USER: &str = "alice";
const PASS: &str = "s3cret-Pa55";

fn write_registries(path: &Path, reg: &Registry, with_auth: bool) {
    let secure = reg.secure.as_ref().expect("secure registry");
    let auth = if with_auth {
        format!("    auth:\n      username: {USER}\n      password: {PASS}\n")
    } else {
        String::new()
    };
    fs::write(
        path,
        format!(
            "configs:\n  \"{}\":\n{auth}    tls:\n      ca_file: {}\n",
            reg.host(),
            secure.ca_file.display()
        ),
    )
    .expect("registries.yaml");
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn pull_over_tls_with_htpasswd_auth_from_registries_yaml() {
    let reg = Registry::start_secure(USER, PASS);
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    reg.skopeo_copy(&src, "busybox:latest");
    let image = format!("{}/busybox:latest", reg.host());
    let root = work.path().join("root");
    let registries = work.path().join("registries.yaml");
    let registries_arg = registries.to_str().expect("utf-8");

    // Without a CA entry the loopback registry is spoken to in plain HTTP,
    // which a TLS listener refuses.
    let out = skiff(
        &reg.net,
        &root,
        &["pull", "--registries", registries_arg, &image],
    );
    assert!(!out.status.success(), "{}", output_text(&out));

    // CA but no credentials: the registry says 401.
    write_registries(&registries, &reg, false);
    let out = skiff(
        &reg.net,
        &root,
        &["pull", "--registries", registries_arg, &image],
    );
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&image), "error names the image: {text}");

    // CA and credentials: the pull works, and no output carries the password.
    write_registries(&registries, &reg, true);
    let out = skiff(
        &reg.net,
        &root,
        &["--debug", "pull", "--registries", registries_arg, &image],
    );
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Pull complete"), "{text}");
    assert!(!text.contains(PASS), "the password leaked into the output");
    let list = skiff_ok(&reg.net, &root, &["images"]);
    assert!(list.contains(&format!("{}/busybox", reg.host())), "{list}");
}

#[test]
fn login_stores_credentials_that_pull_uses_and_logout_forgets() {
    let reg = Registry::start_secure(USER, PASS);
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    reg.skopeo_copy(&src, "busybox:latest");
    let image = format!("{}/busybox:latest", reg.host());
    let root = work.path().join("root");
    let registries = work.path().join("registries.yaml");
    let registries_arg = registries.to_str().expect("utf-8");
    // registries.yaml only says which CA to trust; credentials come from login.
    write_registries(&registries, &reg, false);

    let login = |password: &str| {
        let mut child = reg
            .net
            .command(env!("CARGO_BIN_EXE_skiff"))
            .arg("--root")
            .arg(&root)
            .args(["login", "--registries", registries_arg])
            .args(["--username", USER, "--password-stdin", &reg.host()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run skiff login");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(format!("{password}\n").as_bytes())
                .expect("write password");
        }
        child.wait_with_output().expect("skiff login")
    };

    // A wrong password is refused and nothing is stored.
    let out = login("wrong-password");
    assert!(!out.status.success(), "{}", output_text(&out));
    let creds = root.join("credentials.json");
    assert!(!creds.exists(), "bad credentials were stored");

    let out = login(PASS);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Login Succeeded"), "{text}");
    assert!(!text.contains(PASS), "the password leaked into the output");
    let mode = fs::metadata(&creds)
        .expect("credentials.json")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials.json mode {mode:o}");

    skiff_ok(
        &reg.net,
        &root,
        &["pull", "--registries", registries_arg, &image],
    );

    skiff_ok(&reg.net, &root, &["logout", &reg.host()]);
    let stored = fs::read_to_string(&creds).unwrap_or_default();
    assert!(!stored.contains(&reg.host()), "{stored}");
    skiff_ok(&reg.net, &root, &["rmi", &image]);
    let out = skiff(
        &reg.net,
        &root,
        &["pull", "--registries", registries_arg, &image],
    );
    assert!(
        !out.status.success(),
        "pull after logout: {}",
        output_text(&out)
    );
}

/// What went wrong with a registry is said in words: a refused
/// connection, a TLS failure with the host, a push without credentials
/// naming `skiff login` (the HTTP client alone says only "error sending
/// request for url").
#[test]
fn registry_failures_say_why() {
    let reg = Registry::start_secure(USER, PASS);
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    reg.skopeo_copy(&src, "busybox:latest");
    let root = work.path().join("root");
    let registries = work.path().join("registries.yaml");
    let registries_arg = registries.to_str().expect("utf-8");

    // Nothing listens on port 1.
    let out = skiff(&reg.net, &root, &["pull", "127.0.0.1:1/busybox"]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("cannot connect to 127.0.0.1:1: connection refused"),
        "{text}"
    );
    assert!(!text.contains("error sending request"), "{text}");
    // Said once, not also as a log line.
    assert_eq!(text.matches("connection refused").count(), 1, "{text}");

    // HTTPS without the test CA: the certificate is not trusted.
    fs::write(
        &registries,
        format!(
            "mirrors:\n  \"{0}\":\n    endpoint:\n      - \"https://{0}\"\n",
            reg.host()
        ),
    )
    .expect("registries.yaml");
    let image = format!("{}/busybox:latest", reg.host());
    let out = skiff(
        &reg.net,
        &root,
        &["pull", "--registries", registries_arg, &image],
    );
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("TLS handshake with {} failed", reg.host())),
        "{text}"
    );

    // A push without credentials is refused, and the message says how to
    // log in.
    write_registries(&registries, &reg, true);
    skiff_ok(
        &reg.net,
        &root,
        &["pull", "--registries", registries_arg, &image],
    );
    let copy = format!("{}/copy:1", reg.host());
    skiff_ok(&reg.net, &root, &["tag", &image, &copy]);
    write_registries(&registries, &reg, false);
    let out = skiff(
        &reg.net,
        &root,
        &["push", "--registries", registries_arg, &copy],
    );
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("log in with `skiff login {}`", reg.host())),
        "{text}"
    );
}
