//! `skiff pull` / `images` / `inspect` / `rmi` / `image prune` against a real
//! registry (docker-registry) on 127.0.0.1 inside the test's own network
//! namespace, seeded with a busybox image built from busybox-static.

#[path = "support/oci.rs"]
mod oci;
#[path = "support/registry.rs"]
mod registry;
mod support;

use std::fs;
use std::path::Path;
use std::time::Instant;

use registry::{build_busybox_image, entries, skiff, skiff_ok, Registry};

fn pull_args<'a>(root: &'a Path, image: &'a str, registries: &'a str) -> Vec<&'a str> {
    let _ = root;
    vec!["pull", "--registries", registries, image]
}

#[test]
fn pull_by_tag_and_digest_then_rmi_and_prune() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    let t = Instant::now();
    reg.skopeo_copy(&src, "busybox:latest");
    eprintln!("skopeo copy into the registry: {:?}", t.elapsed());

    let root = work.path().join("root");
    let none = work.path().join("registries.yaml");
    let none = none.to_str().expect("utf-8 path");
    let image = format!("{}/busybox:latest", reg.host());
    let t = Instant::now();
    let out = skiff_ok(&reg.net, &root, &pull_args(&root, &image, none));
    eprintln!("skiff pull: {:?}\n{out}", t.elapsed());
    assert!(out.contains("Pull complete"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {image}")),
        "{out}"
    );

    // `images` lists it like docker does.
    let list = skiff_ok(&reg.net, &root, &["images"]);
    let header = list.lines().next().unwrap_or_default();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{list}");
    }
    assert!(
        list.lines()
            .any(|l| l.starts_with(&format!("{}/busybox", reg.host())) && l.contains("latest")),
        "{list}"
    );

    // The layer is unpacked into a snapshot.
    let snapshots = root.join("images/snapshots");
    let snaps = entries(&snapshots);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let busybox = snapshots.join(&snaps[0]).join("bin/busybox");
    assert!(busybox.is_file(), "{} missing", busybox.display());
    assert!(
        fs::symlink_metadata(snapshots.join(&snaps[0]).join("bin/sh"))
            .expect("bin/sh")
            .file_type()
            .is_symlink()
    );

    // A second pull finds everything in place.
    let again = skiff_ok(&reg.net, &root, &pull_args(&root, &image, none));
    assert!(again.contains("Already exists"), "{again}");
    assert!(
        again.contains(&format!("Status: Image is up to date for {image}")),
        "{again}"
    );

    // By digest: same content, no new snapshot.
    let digest = reg.manifest_digest("busybox:latest");
    let by_digest = format!("{}/busybox@{digest}", reg.host());
    skiff_ok(&reg.net, &root, &pull_args(&root, &by_digest, none));
    assert_eq!(entries(&snapshots).len(), 1);
    let list = skiff_ok(&reg.net, &root, &["images"]);
    assert!(list.contains("<none>"), "{list}");

    // inspect looks like docker's.
    let inspect = skiff_ok(&reg.net, &root, &["inspect", &image]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect JSON");
    assert!(
        v[0]["Id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sha256:"),
        "{v}"
    );
    assert_eq!(v[0]["Architecture"], "amd64");
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().map(Vec::len), Some(1));
    let repo_digest = format!("{}/busybox@{digest}", reg.host());
    assert!(
        v[0]["RepoDigests"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == &serde_json::json!(repo_digest))),
        "{v}"
    );

    // tag, then rmi every name: nothing is left.
    skiff_ok(&reg.net, &root, &["tag", &image, "mine:v1"]);
    let list = skiff_ok(&reg.net, &root, &["images"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("mine ") && l.contains("v1")),
        "{list}"
    );
    skiff_ok(&reg.net, &root, &["rmi", &image, "mine:v1"]);
    assert!(
        !entries(&root.join("images/blobs/sha256")).is_empty(),
        "still named by digest"
    );
    skiff_ok(&reg.net, &root, &["rmi", &by_digest]);
    skiff_ok(&reg.net, &root, &["image", "prune"]);
    assert_eq!(
        entries(&root.join("images/blobs/sha256")),
        Vec::<String>::new()
    );
    assert_eq!(entries(&snapshots), Vec::<String>::new());
    let list = skiff_ok(&reg.net, &root, &["images"]);
    assert_eq!(list.lines().count(), 1, "{list}");
}

#[test]
fn tampered_layer_is_refused_and_nothing_registered() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    reg.skopeo_copy(&src, "busybox:latest");

    // Flip one byte of the layer in the registry's storage: same size, wrong digest.
    let manifest = reg.raw_manifest("busybox:latest");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let file = reg.blob_file(&layer);
    let mut data = fs::read(&file).expect("layer data");
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&file, &data).expect("tamper");

    let root = work.path().join("root");
    let none = work.path().join("registries.yaml");
    let image = format!("{}/busybox:latest", reg.host());
    let out = skiff(
        &reg.net,
        &root,
        &pull_args(&root, &image, none.to_str().expect("utf-8")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "tampered pull succeeded: {err}");
    assert!(err.contains(&image), "error names the image: {err}");
    assert!(
        err.contains(&layer) && err.contains("layer"),
        "error names the layer: {err}"
    );

    let list = skiff_ok(&reg.net, &root, &["images"]);
    assert_eq!(list.lines().count(), 1, "nothing registered: {list}");
    assert_eq!(
        entries(&root.join("images/snapshots")),
        Vec::<String>::new()
    );
    let blobs = entries(&root.join("images/blobs/sha256"));
    let hex = layer.trim_start_matches("sha256:");
    assert!(
        !blobs.iter().any(|b| b == hex || b.starts_with(".tmp")),
        "{blobs:?}"
    );
}

#[test]
fn pull_through_a_mirror_with_fallback_and_rewrite() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    reg.skopeo_copy(&src, "hub/busybox:latest");

    // The first mirror is dead (nothing listens there): skiff moves on to the
    // second, which holds Docker Hub's library/ images under hub/. Docker Hub
    // itself is never reached: a mirror answers first.
    let registries = work.path().join("registries.yaml");
    fs::write(
        &registries,
        format!(
            "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://127.0.0.1:5999\"\n      - \"http://{}\"\n    rewrite:\n      \"^library/(.*)\": \"hub/$1\"\n",
            reg.host()
        ),
    )
    .expect("registries.yaml");
    let root = work.path().join("root");
    let out = skiff_ok(
        &reg.net,
        &root,
        &[
            "pull",
            "--registries",
            registries.to_str().expect("utf-8"),
            "busybox",
        ],
    );
    assert!(out.contains("docker.io/library/busybox:latest"), "{out}");
    let list = skiff_ok(&reg.net, &root, &["images"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("busybox ") && l.contains("latest")),
        "{list}"
    );
}

/// Bytes allocated by the files under `dir` (not recursing into dirs).
fn allocated(dir: &Path, prefix: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    entries(dir)
        .iter()
        .filter(|n| n.starts_with(prefix))
        .filter_map(|n| fs::symlink_metadata(dir.join(n)).ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// A pull killed with SIGKILL mid-download leaves its partial blob; the
/// next opening of the store removes it, and `image prune` (which opens the
/// store) reports the space that gave back. The registry is slowed down by a
/// token bucket on its namespace's loopback so the download is caught under
/// way.
#[test]
fn a_killed_pull_leaves_nothing_after_the_next_open() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    // Incompressible, so that the download takes a while under the limit.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let data: Vec<u8> = (0..(16 << 20))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let tar = oci::LayerTar::new().file("blob", &data).bytes();
    let image = oci::Image::new("amd64", &[tar], oci::Compression::None);
    reg.push_image("big", "latest", &image);
    support::run_ok(
        std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", reg.net.name()))
            .args([
                "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "16mbit", "burst",
                "256kb", "latency", "500ms",
            ]),
    );

    let root = work.path().join("root");
    let name = format!("{}/big:latest", reg.host());
    let mut child = reg
        .net
        .command(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(&root)
        .args(["pull", "--registries", "/nonexistent", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start skiff pull");
    let blobs = root.join("images/blobs/sha256");
    // Bounded wait for the partial download to hold some data.
    let mut seen = false;
    for _ in 0..3000 {
        if allocated(&blobs, ".tmp-") >= 1 << 20 {
            seen = true;
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL the pull");
    let out = child.wait_with_output().expect("reap the pull");
    assert!(
        seen,
        "the pull was never caught mid-download ({}): {}",
        out.status,
        support::stderr(&out)
    );
    let partial = allocated(&blobs, ".tmp-");
    assert!(partial >= 1 << 20, "the kill left a partial blob");

    let leftovers = |dir: &Path| {
        entries(dir)
            .into_iter()
            .filter(|n| n.starts_with(".tmp"))
            .collect::<Vec<_>>()
    };
    // Any command that opens the store removes it.
    skiff_ok(&reg.net, &root, &["images"]);
    assert_eq!(leftovers(&blobs), Vec::<String>::new());

    // A dead unpack leaves a snapshot temporary: prune (opening the store)
    // removes it and says how much that gave back.
    let snaps = root.join("images/snapshots");
    fs::create_dir_all(snaps.join(".tmp-dead/usr")).expect("snapshot temporary");
    fs::write(snaps.join(".tmp-dead/usr/lib"), &data[..4 << 20]).expect("file");
    let out = skiff_ok(&reg.net, &root, &["image", "prune"]);
    assert_eq!(leftovers(&snaps), Vec::<String>::new());
    // "Total reclaimed space: 4.2MB": at least the 4 MiB.
    let figure = out
        .rsplit("reclaimed space: ")
        .next()
        .unwrap_or_default()
        .trim();
    let (num, unit) = figure.split_at(figure.find(|c: char| c.is_alphabetic()).unwrap_or(0));
    let scale = match unit {
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => 1.0,
    };
    let bytes = num.parse::<f64>().unwrap_or(0.0) * scale;
    eprintln!("prune after a killed pull: {out}");
    assert!(
        bytes >= f64::from(4u32 << 20),
        "prune reported {figure} for 4 MiB freed: {out}"
    );

    // The pull then completes from scratch.
    support::run_ok(
        std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", reg.net.name()))
            .args(["tc", "qdisc", "del", "dev", "lo", "root"]),
    );
    skiff_ok(
        &reg.net,
        &root,
        &["pull", "--registries", "/nonexistent", &name],
    );
}
