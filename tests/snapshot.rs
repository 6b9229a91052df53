//! `skiff snapshot`: a snapshot taken while the server takes writes holds
//! every object acknowledged before it began, and a fresh data directory
//! restored from it serves them, with the same cluster CA and tokens.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{stderr, stdout, Server};

fn skiff(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .output()
        .expect("run skiff")
}

#[test]
fn a_snapshot_under_writes_restores_every_acknowledged_object() {
    let s = Server::start_with_args(&["--disable-agent"]);
    s.namespace("snap");
    let token = s.admin_token();
    let url = s.url("/api/v1/namespaces/snap/configmaps");
    // Creates one after another; each acknowledged one with when its
    // answer came.
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, net) = (acked.clone(), stop.clone(), s.net().name().to_string());
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("cm-{i}");
                let body = format!(r#"{{"metadata":{{"name":"{name}"}},"data":{{"i":"{i}"}}}}"#);
                let out = Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &net,
                        "curl",
                        "-sk",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                    ])
                    .args(["-H", &format!("Authorization: Bearer {token}")])
                    .args(["-H", "Content-Type: application/json", "-d", &body, &url])
                    .output()
                    .unwrap();
                if stdout(&out).trim() == "201" {
                    acked.lock().unwrap().push((name, Instant::now()));
                }
                i += 1;
            }
        })
    };
    thread::sleep(Duration::from_millis(1500));
    let dir = s.dir().join("snapshots");
    let begun = Instant::now();
    let out = skiff(&[
        "snapshot",
        "save",
        "--data-dir",
        s.data_dir().to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
        "--name",
        "under-load",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = PathBuf::from(stdout(&out).trim());
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let before: Vec<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at < begun)
        .map(|(n, _)| n.clone())
        .collect();
    assert!(
        before.len() >= 3,
        "too few writes before the snapshot: {}",
        before.len()
    );
    assert!(
        acked.lock().unwrap().len() > before.len(),
        "no write while it was taken"
    );

    // Private: it holds keys.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let listed = skiff(&["snapshot", "ls", "--dir", dir.to_str().unwrap()]);
    assert!(
        stdout(&listed).contains("under-load-"),
        "{}",
        stdout(&listed)
    );

    let ca = std::fs::read(s.data_dir().join("server/tls/server-ca.crt")).unwrap();
    let mut restored = Server::start_prepared(&["--disable-agent"], |data_dir: &Path| {
        let out = skiff(&[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    });
    let restored_dir = restored.data_dir();
    let names = restored.kubectl_ok(&["get", "configmaps", "-n", "snap", "-o", "name"]);
    for n in &before {
        assert!(
            names.contains(&format!("configmap/{n}\n")),
            "{n} lost: {names}"
        );
    }
    // The same cluster: its CA and the admin token.
    assert_eq!(
        std::fs::read(restored.data_dir().join("server/tls/server-ca.crt")).unwrap(),
        ca
    );
    assert_eq!(restored.admin_token(), s.admin_token());

    // Not while a server runs on it, and not over a datastore.
    let restore_into = |dir: &Path| {
        skiff(&[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
        ])
    };
    let out = restore_into(&s.data_dir());
    assert!(
        !out.status.success() && stderr(&out).contains("is using"),
        "{}",
        stderr(&out)
    );
    restored.kill();
    let out = restore_into(&restored_dir);
    assert!(
        !out.status.success() && stderr(&out).contains("holds a datastore already"),
        "{}",
        stderr(&out)
    );

    // Pruned to the newest.
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(1100));
        let out = skiff(&[
            "snapshot",
            "save",
            "--data-dir",
            s.data_dir().to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
            "--name",
            "under-load",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = skiff(&[
        "snapshot",
        "prune",
        "--dir",
        dir.to_str().unwrap(),
        "--name",
        "under-load",
        "--retention",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    let listed = skiff(&["snapshot", "ls", "--dir", dir.to_str().unwrap()]);
    assert_eq!(stdout(&listed).lines().count(), 2, "{}", stdout(&listed));
}

/// Scheduled snapshots (`--snapshot-schedule-cron`) are taken while the
/// server runs and only the newest `--snapshot-retention` of them are
/// kept; a snapshot saved by hand in the same directory is not counted.
#[test]
fn scheduled_snapshots_are_taken_and_the_oldest_removed() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snaps");
    let s = Server::start_with_args(&[
        "--disable-agent",
        "--snapshot-schedule-cron",
        "@every 1s",
        "--snapshot-retention",
        "2",
        "--snapshot-dir",
        snapshots.to_str().unwrap(),
    ]);
    s.namespace("scheduled");
    let out = skiff(&[
        "snapshot",
        "save",
        "--data-dir",
        s.data_dir().to_str().unwrap(),
        "--dir",
        snapshots.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let by_hand = PathBuf::from(stdout(&out).trim());

    let scheduled = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&snapshots)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("scheduled-") && n.ends_with(".snapshot.tar.gz"))
            .collect();
        names.sort();
        names
    };
    // Wait (bounded) until the two kept are both newer than the first
    // one seen: at least three were taken and the oldest removed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        if let Some(f) = scheduled().first() {
            break f.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled snapshot\n{}",
            s.logs()
        );
        thread::sleep(Duration::from_millis(200));
    };
    loop {
        let now = scheduled();
        if now.len() == 2 && now.iter().all(|n| *n > first) {
            break;
        }
        assert!(
            now.len() <= 2 || Instant::now() < deadline,
            "more than the retention kept: {now:?}"
        );
        assert!(
            Instant::now() < deadline,
            "not pruned: {now:?}\n{}",
            s.logs()
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert!(by_hand.exists(), "the snapshot saved by hand was pruned");

    // A scheduled snapshot restores like any other.
    let newest = snapshots.join(scheduled().pop().unwrap());
    let restored = Server::start_prepared(&["--disable-agent"], |data_dir: &Path| {
        let out = skiff(&[
            "snapshot",
            "restore",
            newest.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    });
    restored.kubectl_ok(&["get", "namespace", "scheduled"]);
}

/// A bad schedule or snapshot directory fails the start with the flag named.
#[test]
fn a_bad_snapshot_schedule_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    // In a namespace of its own, and bounded, should it start after all.
    let net = support::TestNet::new();
    let start = |extra: &[&str]| {
        net.command("timeout")
            .arg("60")
            .arg(env!("CARGO_BIN_EXE_skiff"))
            .args(["--root", dir.path().join("root").to_str().unwrap()])
            .args(["server", "--disable-agent"])
            .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
            .args([
                "--write-kubeconfig",
                dir.path().join("kc").to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    for never in ["61 * * * *", "0 0 30 2 *"] {
        let out = start(&["--snapshot-schedule-cron", never]);
        assert!(!out.status.success(), "{never}");
        assert!(
            stderr(&out).contains("--snapshot-schedule-cron"),
            "{}",
            stderr(&out)
        );
    }
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = start(&["--snapshot-dir", open.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--snapshot-dir") && stderr(&out).contains("only its owner"),
        "{}",
        stderr(&out)
    );
}

/// `skiff snapshot` and `skiff kubeconfig` find the data directory and
/// kubeconfig a server configured in its config file uses (k3s's
/// etcd-snapshot reads the server's config too); a flag given wins.
#[test]
fn snapshot_and_kubeconfig_read_the_servers_config_file() {
    let s = Server::start_with_args(&["--disable-agent"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "data-dir: {}\nwrite-kubeconfig: {}\nhttps-listen-port: 7443\n",
            s.data_dir().display(),
            s.kubeconfig().display()
        ),
    )
    .unwrap();
    let with_config = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(args)
            .env("SKIFF_CONFIG_FILE", &config)
            .output()
            .unwrap()
    };
    let out = with_config(&["snapshot", "save", "--name", "from-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&s.data_dir().join("server/snapshots").display().to_string()),
        "{}",
        stdout(&out)
    );
    let out = with_config(&["snapshot", "ls"]);
    assert!(stdout(&out).contains("from-config-"), "{}", stdout(&out));
    let elsewhere = dir.path().join("elsewhere");
    let out = with_config(&["snapshot", "ls", "--data-dir", elsewhere.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("from-config-"), "{}", stdout(&out));
    let out = with_config(&["kubeconfig"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        std::fs::read_to_string(s.kubeconfig()).unwrap()
    );

    // The server's file gone or broken: these commands still work on
    // their own flags, with a warning.
    for text in [None, Some("data-dir: [unclosed\n")] {
        match text {
            Some(t) => std::fs::write(&config, t).unwrap(),
            None => {
                let _ = std::fs::remove_file(&config);
            }
        }
        let out = with_config(&[
            "snapshot",
            "ls",
            "--data-dir",
            s.data_dir().to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("warning"), "{}", stderr(&out));
        assert!(stdout(&out).contains("from-config-"), "{}", stdout(&out));
    }
}

/// The manifests directory goes into a snapshot with the credentials; a
/// link or FIFO a user left there is skipped (never read, never archived
/// into a snapshot that could not be restored).
#[test]
fn manifests_go_with_a_snapshot_and_odd_files_are_skipped() {
    let s = Server::start_with_args(&["--disable-agent"]);
    let manifests = s.data_dir().join("server/manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-manifest, namespace: default}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", manifests.join("link.yaml")).unwrap();
    let fifo = manifests.join("pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let out = Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_skiff"))
        .args(["snapshot", "save", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let file = PathBuf::from(stdout(&out).trim());
    let restored = Server::start_prepared(&["--disable-agent"], |data_dir: &Path| {
        let out = skiff(&[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(data_dir.join("server/manifests/app.yaml").is_file());
        assert!(!data_dir.join("server/manifests/link.yaml").exists());
        assert!(!data_dir.join("server/manifests/pipe.yaml").exists());
    });
    drop(restored);
}
