//! `skiff volume …` driven through the real binary with a temporary --root.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn skiff(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run skiff")
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = skiff(root, args);
    assert!(
        out.status.success(),
        "skiff {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn fails(root: &Path, args: &[&str]) -> String {
    let out = skiff(root, args);
    assert!(!out.status.success(), "skiff {args:?} succeeded");
    String::from_utf8(out.stderr).expect("utf-8 output")
}

#[test]
fn create_list_inspect_remove() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    assert_eq!(
        ok(
            root,
            &["volume", "create", "--label", "app=web", "-l", "tier", "data"]
        ),
        "data\n"
    );
    // Creating it again is not an error and keeps the labels.
    assert_eq!(ok(root, &["volume", "create", "data"]), "data\n");
    ok(root, &["volume", "create", "logs"]);

    let ls = ok(root, &["volume", "ls"]);
    let lines: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [
            vec!["DRIVER", "VOLUME", "NAME"],
            vec!["local", "data"],
            vec!["local", "logs"]
        ],
        "{ls}"
    );
    assert_eq!(ok(root, &["volume", "ls", "-q"]), "data\nlogs\n");

    let json: serde_json::Value =
        serde_json::from_str(&ok(root, &["volume", "inspect", "data", "logs"])).expect("JSON");
    let data = &json[0];
    assert_eq!(data["Name"], "data");
    assert_eq!(data["Driver"], "local");
    assert_eq!(data["Scope"], "local");
    assert_eq!(data["Options"], serde_json::Value::Null);
    assert_eq!(
        data["Labels"],
        serde_json::json!({"app": "web", "tier": ""})
    );
    assert_eq!(json[1]["Labels"], serde_json::Value::Null);
    let mountpoint = data["Mountpoint"].as_str().expect("Mountpoint");
    assert_eq!(Path::new(mountpoint), root.join("volumes/data/_data"));
    assert!(Path::new(mountpoint).is_dir());
    let created = data["CreatedAt"].as_str().expect("CreatedAt");
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");

    // inspect of a missing one: the found ones are printed, the exit fails.
    let out = skiff(root, &["volume", "inspect", "logs", "nope"]);
    assert!(!out.status.success());
    let partial: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(partial.as_array().map(Vec::len), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such volume: nope"));

    // rm goes on after a failure and reports it.
    let out = skiff(root, &["volume", "rm", "nope", "logs"]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "logs\n");
    assert!(!root.join("volumes/logs").exists());
    assert_eq!(ok(root, &["volume", "rm", "-f", "nope"]), "");
    assert_eq!(ok(root, &["volume", "ls", "-q"]), "data\n");
}

#[test]
fn bad_input_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    for bad in ["a", "../escape", "-x-", "_under", "with/slash"] {
        let err = fails(root, &["volume", "create", "--", bad]);
        assert!(err.contains("invalid volume name"), "{bad}: {err}");
    }
    let err = fails(root, &["volume", "create", "--label", "=v", "ok1"]);
    assert!(err.contains("invalid label"), "{err}");
    let err = fails(root, &["volume", "create", "--driver", "nfs", "ok2"]);
    assert!(err.contains("unsupported volume driver"), "{err}");
    assert_eq!(ok(root, &["volume", "ls", "-q"]), "");
    let left: Vec<_> = std::fs::read_dir(root.join("volumes"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn anonymous_name_and_prune() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let anon = ok(root, &["volume", "create"]);
    let anon = anon.trim();
    assert_eq!(anon.len(), 64, "{anon}");
    assert!(anon.bytes().all(|b| b.is_ascii_hexdigit()), "{anon}");
    let data = root.join("volumes/keep/_data");
    ok(root, &["volume", "create", "keep"]);
    std::fs::write(data.join("file"), vec![7u8; 4096]).expect("write");

    // Declining the prompt (or closing stdin) removes nothing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(root)
        .args(["volume", "prune"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"n\n")
        .expect("answer");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Are you sure"));
    assert!(data.join("file").exists());

    let out = ok(root, &["volume", "prune", "-f"]);
    assert!(out.starts_with("Deleted Volumes:\n"), "{out}");
    assert!(out.contains(anon) && out.contains("\nkeep\n"), "{out}");
    assert!(out.contains("Total reclaimed space: 4."), "{out}");
    assert_eq!(ok(root, &["volume", "ls", "-q"]), "");
}
