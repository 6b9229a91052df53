//! Readiness that tells the truth: on a full disk, where every write fails,
//! `/readyz` answers 500 naming the store, `/livez` stays 200 (a restart
//! would not free the disk), and readiness comes back once writes go
//! through again. The disk is a real one: a small tmpfs as the data dir.

mod server_proc;
mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use server_proc::Proc;
use support::{run_ok, TestNet, PORT};

/// A tmpfs of `size` mounted at a path; unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        run_ok(
            Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0700"),
                    "skiff-test-full",
                ])
                .arg(path),
        );
        Tmpfs {
            path: path.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// (HTTP status, body) of a curl request inside the namespace.
fn curl(net: &TestNet, args: &[&str], path: &str) -> (u16, String) {
    let reply = support::curl(net, args, &format!("https://127.0.0.1:{PORT}{path}"));
    (reply.status(), reply.body)
}

/// A server on `data` (files of its own in `dir`), once it is ready.
fn start(net: &TestNet, dir: &Path, data: &Path) -> Proc {
    let mut server = Proc::spawn(
        net,
        &[],
        data,
        PORT,
        &dir.join("kubeconfig.yaml"),
        dir.join("server.log"),
        &[],
    );
    server.wait_ready(net);
    server
}

#[test]
fn readyz_reports_a_full_disk_and_recovers() {
    let dir = tempfile::Builder::new()
        .prefix("skiff-test-")
        .tempdir()
        .unwrap();
    let net = TestNet::new();
    let data = dir.path().join("data");
    let disk = Tmpfs::mount(&data, "24m");
    let mut server = start(&net, dir.path(), &data);
    let token = fs::read_to_string(data.join("server/cred/tokens.csv")).unwrap();
    let token = token.split(',').next().unwrap().trim().to_string();
    let auth = format!("Authorization: Bearer {token}");
    let body_file = dir.path().join("configmap.json");
    fs::write(
        &body_file,
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"generateName":"fill-"}},"data":{{"a":"{}"}}}}"#,
            "x".repeat(64 * 1024)
        ),
    )
    .unwrap();
    let body_arg = format!("@{}", body_file.display());
    let create = || {
        curl(
            &net,
            &[
                "-X",
                "POST",
                "-H",
                &auth,
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body_arg,
            ],
            "/api/v1/namespaces/default/configmaps",
        )
    };
    assert_eq!(create().0, 201, "a write before the disk is full");

    // Fill the disk, then write until the store's writes fail.
    let filler = disk.path.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.write_all(&chunk[..4096]);
    drop(f);
    let mut failed = None;
    for _ in 0..300 {
        let (code, body) = create();
        if code >= 500 {
            failed = Some(body);
            break;
        }
    }
    let failed = failed.expect("writes never failed on a full disk");
    assert!(failed.contains("full"), "{failed}");

    let (code, body) = curl(&net, &[], "/readyz");
    assert_eq!(code, 500, "readyz while every write fails: {body}");
    assert!(body.contains("[-]store failed: reason withheld"), "{body}");
    assert!(
        !body.contains("full"),
        "no reason for the unauthenticated: {body}"
    );
    assert!(body.trim_end().ends_with("readyz check failed"), "{body}");
    let (code, body) = curl(&net, &[], "/livez");
    assert_eq!((code, body.as_str()), (200, "ok"), "livez on a full disk");

    // Free the disk: ready again, and writes go through.
    fs::remove_file(&filler).unwrap();
    let mut last = (0, String::new());
    for _ in 0..50 {
        last = curl(&net, &[], "/readyz");
        if last.0 == 200 {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        (last.0, last.1.as_str()),
        (200, "ok"),
        "readyz after space was freed"
    );
    let (code, body) = curl(&net, &[], "/readyz?verbose");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("[+]store ok"), "{body}");
    assert_eq!(create().0, 201, "a write after space was freed");
    server.kill();
    drop(disk);
}

/// Each of the server's components is a named readiness check, as upstream
/// names its post-start hooks: listed by `/readyz?verbose` and answered
/// alone at `/readyz/<name>`.
#[test]
fn readyz_names_the_components() {
    let dir = tempfile::Builder::new()
        .prefix("skiff-test-")
        .tempdir()
        .unwrap();
    let net = TestNet::new();
    let data = dir.path().join("data");
    let mut server = start(&net, dir.path(), &data);
    let (code, body) = curl(&net, &[], "/readyz?verbose");
    assert_eq!(code, 200, "{body}");
    for check in [
        "[+]store ok",
        "[+]poststarthook/skiff-store-compactor ok",
        "[+]poststarthook/skiff-namespace-controller ok",
        "[+]poststarthook/skiff-allocation-repair ok",
        "[+]poststarthook/skiff-api-listener ok",
    ] {
        assert!(body.contains(check), "{check} missing: {body}");
    }
    assert_eq!(
        curl(
            &net,
            &[],
            "/readyz/poststarthook/skiff-namespace-controller"
        ),
        (200, "ok".to_string())
    );
    let (code, body) = curl(&net, &[], "/readyz/poststarthook/skiff-nothing");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("poststarthook/skiff-api-listener"), "{body}");
    // Liveness does not wait for components.
    let (code, body) = curl(&net, &[], "/livez?verbose");
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("poststarthook"), "{body}");
    server.kill();
}
