//! The store under `--root` seen by an unprivileged host user (issue #10):
//! the attacks that worked — planting a file in a snapshot, taking over a
//! snapshot through a layer's `.` entry, opening the store's copy of an
//! image's device node, reading a container's environment, records and
//! output — all fail for `nobody`, and the files holding secrets are 0600
//! on their own (so a loosened `<root>` does not expose them either).
//!
//! The test directory above `<root>` is opened to everyone (0755), so that
//! only `<root>`'s own mode stands between the user and the store.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/oci.rs"]
mod oci;
#[path = "support/registry.rs"]
mod registry;
mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use containers::Engine;
use oci::{Compression, Image};
use registry::{skiff_ok, Registry};

/// `sh -c script` as uid/gid 65534 with no supplementary groups.
fn as_nobody(script: &str) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("run setpriv")
}

/// The unprivileged user's attempt must fail.
fn refused(what: &str, script: &str) {
    let out = as_nobody(script);
    assert!(
        !out.status.success(),
        "as nobody, {what} succeeded: {script}\nstdout: {}\nstderr: {}",
        support::stdout(&out),
        support::stderr(&out)
    );
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn open_to_all(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod test dir");
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

fn snapshots(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("images/snapshots");
    registry::entries(&dir)
        .into_iter()
        .map(|n| dir.join(n))
        .collect()
}

#[test]
fn unprivileged_user_cannot_reach_snapshots_configs_records_or_logs() {
    let engine = Engine::new();
    open_to_all(engine.dir.path());
    let root = engine.root();
    assert_eq!(mode(&root), 0o700, "<root> is private");

    let id = engine
        .ok(&[
            "run",
            "-d",
            "-e",
            "DB_PASSWORD=hunter2",
            "busybox",
            "sh",
            "-c",
            "echo output-secret; sleep 1000",
        ])
        .trim()
        .to_string();
    engine.wait_for(&id, "running", |v| v["State"]["Running"] == true);
    let dir = root.join("containers").join(&id);
    // The log is written by the shim once the echo ran.
    let log = dir.join("ctr.log");
    for _ in 0..100 {
        if fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("output-secret")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let secrets: Vec<PathBuf> = ["config.json", "ctr.log", "shim.log"]
        .iter()
        .map(|f| dir.join(f))
        .chain(
            ["containers.db", "containers.db-wal", "containers.db-shm"]
                .iter()
                .map(|f| root.join("containers").join(f)),
        )
        .chain(
            ["meta.db", "meta.db-wal", "meta.db-shm"]
                .iter()
                .map(|f| root.join("images").join(f)),
        )
        .collect();
    for f in &secrets {
        assert_eq!(mode(f), 0o600, "{} holds secrets", f.display());
        refused("reading a secret", &format!("cat {}", sh_quote(f)));
    }
    assert!(fs::read_to_string(dir.join("config.json"))
        .expect("config.json")
        .contains("DB_PASSWORD=hunter2"));

    // Planting a file in the image's snapshot, which every container of
    // that image would see.
    let snaps = snapshots(&root);
    assert!(!snaps.is_empty());
    for s in &snaps {
        refused(
            "planting a file in a snapshot",
            &format!("echo pwned > {}/planted", sh_quote(s)),
        );
        refused("listing a snapshot", &format!("ls {}", sh_quote(s)));
        assert!(!s.join("planted").exists());
    }
    refused("listing <root>", &format!("ls {}", sh_quote(&root)));
    // The run directory holds exec process specs (their environment).
    assert_eq!(mode(&engine.run_dir()), 0o700, "--run-dir is private");
    engine.ok(&["rm", "-f", &id]);
}

/// A store left 0755 by an older version is made private at the next open.
#[test]
fn an_existing_loose_root_is_tightened() {
    let work = tempfile::tempdir().expect("temp dir");
    open_to_all(work.path());
    let root = work.path().join("root");
    fs::create_dir_all(root.join("images")).expect("root");
    fs::create_dir_all(root.join("containers")).expect("root");
    for d in [&root, &root.join("images"), &root.join("containers")] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let net = support::TestNet::new();
    let run = work.path().join("run");
    for cmd in ["images", "ps"] {
        let out = net
            .command(env!("CARGO_BIN_EXE_skiff"))
            .arg("--root")
            .arg(&root)
            .arg("--run-dir")
            .arg(&run)
            .arg(cmd)
            .output()
            .expect("run skiff");
        assert!(out.status.success(), "{cmd}: {}", support::stderr(&out));
    }
    for d in [&root, &root.join("images"), &root.join("containers")] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
}

/// A layer with a `.` entry of 07777 owned by 1000:1000 and device nodes
/// for loop0, the first disk, the console and /dev/mem.
fn hostile_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, ty: tar::EntryType, mode: u32, ids: u64, dev: (u32, u32)| {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        h.set_uid(ids);
        h.set_gid(ids);
        if matches!(ty, tar::EntryType::Block | tar::EntryType::Char) {
            h.set_device_major(dev.0).expect("major");
            h.set_device_minor(dev.1).expect("minor");
        }
        h.set_cksum();
        b.append(&h, &[][..]).expect("append");
    };
    add("./", tar::EntryType::Directory, 0o7777, 1000, (0, 0));
    add("bin/", tar::EntryType::Directory, 0o755, 0, (0, 0));
    add("dev/", tar::EntryType::Directory, 0o755, 0, (0, 0));
    add("dev/loop0", tar::EntryType::Block, 0o666, 0, (7, 0));
    add("dev/sda", tar::EntryType::Block, 0o666, 0, (8, 0));
    add("dev/console", tar::EntryType::Char, 0o666, 0, (4, 0));
    add("dev/mem", tar::EntryType::Char, 0o666, 0, (1, 1));
    let mut h = tar::Header::new_gnu();
    h.set_path("bin/true").expect("path");
    h.set_mode(0o755);
    h.set_size(2);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    b.append(&h, &b"ok"[..]).expect("append");
    b.into_inner().expect("tar")
}

#[test]
fn hostile_layer_root_and_device_nodes_stay_out_of_reach() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    open_to_all(work.path());
    let image = Image::new("amd64", &[hostile_layer()], Compression::Gzip);
    reg.push_image("devices", "latest", &image);
    let root = work.path().join("root");
    let name = format!("{}/devices:latest", reg.host());
    skiff_ok(
        &reg.net,
        &root,
        &["pull", "--registries", "/nonexistent", &name],
    );
    assert_eq!(mode(&root), 0o700);

    let snaps = snapshots(&root);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let snap = &snaps[0];
    let m = fs::metadata(snap).expect("snapshot");
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid()),
        (0o755, 0, 0),
        "the layer's `.` entry does not change the snapshot directory"
    );
    // Kept as in the image (as Docker does), but out of reach.
    assert_eq!(mode(&snap.join("dev/loop0")), 0o666);
    for node in ["dev/loop0", "dev/sda", "dev/console", "dev/mem"] {
        refused(
            "opening the store's copy of a device node",
            &format!(": < {}", sh_quote(&snap.join(node))),
        );
    }
    // The user the layer named as the owner of `.` cannot replace a file.
    let out = Command::new("setpriv")
        .args(["--reuid=1000", "--regid=1000", "--clear-groups", "--"])
        .args(["sh", "-c"])
        .arg(format!(
            "echo pwned > {0}/bin/true || mv {0}/bin/true {0}/bin/gone",
            sh_quote(snap)
        ))
        .output()
        .expect("setpriv");
    assert!(!out.status.success(), "uid 1000 replaced /bin/true");
    assert_eq!(fs::read(snap.join("bin/true")).expect("bin/true"), b"ok");
}
