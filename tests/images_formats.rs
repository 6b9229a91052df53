//! Image formats a pull must handle: a multi-platform index (skiff picks
//! linux/amd64), and zstd-compressed layers, both hand-written (see
//! support/oci.rs) and recompressed by skopeo. Served by a real registry in
//! the test's network namespace.

#[path = "support/oci.rs"]
mod oci;
#[path = "support/registry.rs"]
mod registry;
mod support;

use std::fs;
use std::path::Path;

use oci::{Compression, Image, LayerTar};
use registry::{build_busybox_image, entries, skiff_ok, Registry};

fn pull(reg: &Registry, root: &Path, image: &str) -> String {
    skiff_ok(
        &reg.net,
        root,
        &["pull", "--registries", "/nonexistent", image],
    )
}

/// The one snapshot a single-layer image left behind.
fn only_snapshot(root: &Path) -> std::path::PathBuf {
    let dir = root.join("images/snapshots");
    let snaps = entries(&dir);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    dir.join(&snaps[0])
}

#[test]
fn multi_arch_index_picks_amd64() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    // Two different images: each says which it is in /arch.
    let layer = |arch: &str| {
        LayerTar::new()
            .dir("etc/")
            .file("arch", arch.as_bytes())
            .file(&format!("only-{arch}"), b"x")
            .bytes()
    };
    let arm = Image::new("arm64", &[layer("arm64")], Compression::Gzip);
    let amd = Image::new("amd64", &[layer("amd64")], Compression::Gzip);
    reg.push_image("multi", "arm64-only", &arm);
    reg.push_image("multi", "amd64-only", &amd);
    // arm64 first, so that picking the first entry would be wrong.
    let index = oci::index(&[("arm64", &arm), ("amd64", &amd)]);
    let index_digest = reg.put_manifest("multi", "latest", oci::OCI_INDEX, &index);

    let root = work.path().join("root");
    let image = format!("{}/multi:latest", reg.host());
    pull(&reg, &root, &image);
    let snap = only_snapshot(&root);
    assert_eq!(
        fs::read_to_string(snap.join("arch")).expect("arch"),
        "amd64"
    );
    assert!(snap.join("only-amd64").is_file());
    assert!(!snap.join("only-arm64").exists());

    let inspect = skiff_ok(&reg.net, &root, &["inspect", &image]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect JSON");
    assert_eq!(v[0]["Architecture"], "amd64", "{v}");
    assert_eq!(v[0]["Id"], serde_json::json!(amd.config.digest()), "{v}");
    assert_eq!(
        v[0]["Skiff"]["ManifestDigest"],
        serde_json::json!(amd.manifest_digest()),
        "{v}"
    );
    // The digest users pin to is the index's.
    let pinned = format!("{}/multi@{index_digest}", reg.host());
    assert!(
        v[0]["RepoDigests"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == &serde_json::json!(pinned))),
        "{v}"
    );

    // An index without our platform is refused, naming what it has.
    let only_arm = oci::index(&[("arm64", &arm)]);
    reg.put_manifest("multi", "armonly", oci::OCI_INDEX, &only_arm);
    let out = registry::skiff(
        &reg.net,
        &root,
        &[
            "pull",
            "--registries",
            "/nonexistent",
            &format!("{}/multi:armonly", reg.host()),
        ],
    );
    let err = support::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("linux/arm64") && err.contains("amd64"),
        "{err}"
    );
}

#[test]
fn zstd_and_uncompressed_layers() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    let base = LayerTar::new()
        .dir("etc/")
        .file("etc/os-release", b"NAME=zstd-test\n")
        .bytes();
    let top = LayerTar::new()
        .file("etc/motd", b"hello from zstd\n")
        .bytes();
    let image = Image::new("amd64", &[base, top], Compression::Zstd);
    reg.push_image("zimg", "latest", &image);
    let plain = Image::new(
        "amd64",
        &[LayerTar::new().file("plain", b"uncompressed").bytes()],
        Compression::None,
    );
    reg.push_image("plain", "latest", &plain);

    let root = work.path().join("root");
    pull(&reg, &root, &format!("{}/zimg:latest", reg.host()));
    let snaps = root.join("images/snapshots");
    assert_eq!(entries(&snaps).len(), 2);
    let found: Vec<String> = entries(&snaps)
        .iter()
        .filter_map(|s| fs::read_to_string(snaps.join(s).join("etc/motd")).ok())
        .collect();
    assert_eq!(found, vec!["hello from zstd\n".to_string()]);

    pull(&reg, &root, &format!("{}/plain:latest", reg.host()));
    assert!(entries(&snaps)
        .iter()
        .any(|s| snaps.join(s).join("plain").is_file()));
}

#[test]
fn zstd_layers_recompressed_by_skopeo() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    support::run_ok(
        reg.net
            .command("skopeo")
            .args([
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--format",
                "oci",
            ])
            .args(["--dest-compress", "--dest-compress-format", "zstd"])
            .arg(&src)
            .arg(format!("docker://{}/busybox-zstd:latest", reg.host())),
    );
    let manifest = reg.raw_manifest("busybox-zstd:latest");
    assert_eq!(
        manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "{manifest}"
    );
    let root = work.path().join("root");
    pull(&reg, &root, &format!("{}/busybox-zstd:latest", reg.host()));
    assert!(only_snapshot(&root).join("bin/busybox").is_file());
}
