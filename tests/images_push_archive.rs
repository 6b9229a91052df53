//! `skiff push`, `save` and `load`, checked with skopeo (an independent
//! implementation) against a real registry in the test's network namespace.

#[path = "support/oci.rs"]
mod oci;
#[path = "support/registry.rs"]
mod registry;
mod support;

use std::fs;
use std::path::Path;

use oci::{Compression, Image, LayerTar};
use registry::{build_busybox_image, entries, skiff, skiff_ok, Registry};
use support::run_ok;

fn pull(reg: &Registry, root: &Path, image: &str) {
    skiff_ok(
        &reg.net,
        root,
        &["pull", "--registries", "/nonexistent", image],
    );
}

#[test]
fn push_to_another_repository_then_skopeo_reads_it() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    reg.skopeo_copy(&src, "busybox:latest");
    let root = work.path().join("root");
    let image = format!("{}/busybox:latest", reg.host());
    pull(&reg, &root, &image);

    // Another repository of the same registry: the layer can be mounted.
    let copy = format!("{}/team/copy:v2", reg.host());
    skiff_ok(&reg.net, &root, &["tag", &image, &copy]);
    let out = skiff_ok(
        &reg.net,
        &root,
        &["push", "--registries", "/nonexistent", &copy],
    );
    assert!(out.contains("digest:"), "{out}");
    assert!(
        out.contains("2 mounted"),
        "config and layer mounted from busybox: {out}"
    );

    // skopeo sees the same manifest, and can copy it out whole.
    assert_eq!(
        reg.manifest_digest("team/copy:v2"),
        reg.manifest_digest("busybox:latest")
    );
    let dest = work.path().join("copied");
    run_ok(
        reg.net
            .command("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{copy}"))
            .arg(format!("oci:{}:x", dest.display())),
    );
    assert!(dest.join("index.json").is_file());

    // A fresh repository on a registry that has never seen these blobs:
    // a real (chunked) upload. Start from a hand-made two-layer image.
    let base = LayerTar::new().file("a", &vec![1u8; 5 << 20]).bytes();
    let top = LayerTar::new().file("b", b"top").bytes();
    let two = Image::new("amd64", &[base, top], Compression::Gzip);
    reg.push_image("two", "latest", &two);
    let root2 = work.path().join("root2");
    pull(&reg, &root2, &format!("{}/two:latest", reg.host()));
    // Delete the source from the registry storage so nothing can be mounted
    // or found: the push has to upload every blob.
    fs::remove_dir_all(reg.storage().join("docker/registry/v2/blobs")).expect("wipe blobs");
    fs::remove_dir_all(reg.storage().join("docker/registry/v2/repositories")).expect("wipe repos");
    let fresh = format!("{}/fresh:1", reg.host());
    skiff_ok(
        &reg.net,
        &root2,
        &["tag", &format!("{}/two:latest", reg.host()), &fresh],
    );
    let out = skiff_ok(
        &reg.net,
        &root2,
        &["push", "--registries", "/nonexistent", &fresh],
    );
    assert!(out.contains("3 uploaded"), "{out}");
    let inspected = run_ok(
        reg.net
            .command("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{fresh}")),
    );
    let v: serde_json::Value = serde_json::from_slice(&inspected.stdout).expect("inspect JSON");
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(
        reg.manifest_digest("fresh:1"),
        two.manifest_digest(),
        "pushed byte for byte"
    );
    // And the copy pulls back into an empty store.
    let root3 = work.path().join("root3");
    pull(&reg, &root3, &fresh);
}

#[test]
fn save_in_both_formats_is_read_by_skopeo_and_load() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    reg.skopeo_copy(&src, "busybox:latest");
    let root = work.path().join("root");
    let image = format!("{}/busybox:latest", reg.host());
    pull(&reg, &root, &image);
    let id = {
        let v: serde_json::Value =
            serde_json::from_str(&skiff_ok(&reg.net, &root, &["inspect", &image])).expect("json");
        v[0]["Id"].as_str().unwrap_or_default().to_string()
    };

    let docker_tar = work.path().join("docker.tar");
    let oci_tar = work.path().join("oci.tar");
    skiff_ok(
        &reg.net,
        &root,
        &["save", "-o", docker_tar.to_str().expect("utf-8"), &image],
    );
    skiff_ok(
        &reg.net,
        &root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            oci_tar.to_str().expect("utf-8"),
            &image,
        ],
    );
    for src in [
        format!("docker-archive:{}", docker_tar.display()),
        format!("oci-archive:{}", oci_tar.display()),
    ] {
        let out = run_ok(std::process::Command::new("skopeo").args(["inspect", &src]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
        assert_eq!(v["Architecture"], "amd64", "{src}: {v}");
        assert_eq!(v["Layers"].as_array().map(Vec::len), Some(1), "{src}: {v}");
    }

    // Each archive loads into an empty store, with the same image ID.
    for (i, tar) in [&docker_tar, &oci_tar].into_iter().enumerate() {
        let fresh = work.path().join(format!("fresh-{i}"));
        let out = skiff_ok(
            &reg.net,
            &fresh,
            &["load", "-i", tar.to_str().expect("utf-8")],
        );
        assert!(out.contains(&image), "{out}");
        let v: serde_json::Value =
            serde_json::from_str(&skiff_ok(&reg.net, &fresh, &["inspect", &image])).expect("json");
        assert_eq!(v[0]["Id"], serde_json::json!(id), "{v}");
        let snaps = entries(&fresh.join("images/snapshots"));
        assert_eq!(snaps.len(), 1);
        assert!(fresh
            .join("images/snapshots")
            .join(&snaps[0])
            .join("bin/busybox")
            .is_file());
    }

    // A docker-archive written by skopeo loads too.
    let skopeo_tar = work.path().join("skopeo.tar");
    run_ok(
        reg.net
            .command("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{image}"))
            .arg(format!(
                "docker-archive:{}:example.com/from-skopeo:1",
                skopeo_tar.display()
            )),
    );
    let fresh = work.path().join("fresh-skopeo");
    let out = skiff_ok(
        &reg.net,
        &fresh,
        &["load", "-i", skopeo_tar.to_str().expect("utf-8")],
    );
    assert!(out.contains("example.com/from-skopeo:1"), "{out}");
    let list = skiff_ok(&reg.net, &fresh, &["images"]);
    assert!(list.contains("example.com/from-skopeo"), "{list}");
}

/// Write a docker-archive by hand around `layer` (an uncompressed tar).
fn docker_archive(path: &Path, layer: &[u8], extra: &[(&str, &[u8])]) {
    let diff_id = oci::sha256(layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .expect("config");
    let config_name = format!("{}.json", &oci::sha256(&config)[7..]);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name, "RepoTags": ["hostile:latest"], "Layers": ["l/layer.tar"],
    }]))
    .expect("manifest");
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data).expect("append");
    };
    for (name, data) in extra {
        add(name, data);
    }
    add(&config_name, &config);
    add("l/layer.tar", layer);
    add("manifest.json", &manifest);
    fs::write(path, b.into_inner().expect("tar")).expect("write archive");
}

#[test]
fn hostile_archives_are_refused_safely() {
    let work = tempfile::tempdir().expect("temp dir");
    let net = support::TestNet::new();
    fs::create_dir(work.path().join("outside")).expect("outside");
    let root = work.path().join("root");

    // A layer climbing out of its snapshot, and an archive member climbing
    // out of the archive: neither lands anywhere.
    let layer = LayerTar::new()
        .file("fine", b"ok")
        .file("../../../../outside/escaped", b"pwned")
        .bytes();
    let tar = work.path().join("hostile.tar");
    docker_archive(&tar, &layer, &[("../../outside/member", b"pwned")]);
    let out = skiff(&net, &root, &["load", "-i", tar.to_str().expect("utf-8")]);
    let err = support::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("hostile:latest"), "names the image: {err}");
    assert!(err.contains("layer 1/1"), "names the layer: {err}");
    assert!(err.contains("escapes"), "{err}");
    assert_eq!(entries(&work.path().join("outside")), Vec::<String>::new());
    assert_eq!(
        entries(&root.join("images/snapshots")),
        Vec::<String>::new()
    );
    let list = skiff_ok(&net, &root, &["images"]);
    assert_eq!(list.lines().count(), 1, "nothing registered: {list}");
    let blobs = entries(&root.join("images/blobs/sha256"));
    assert!(!blobs.iter().any(|b| b.starts_with(".tmp")), "{blobs:?}");

    // A layer that does not match the config's diff_id.
    let good = LayerTar::new().file("x", b"1").bytes();
    let tar2 = work.path().join("mismatch.tar");
    docker_archive(&tar2, &good, &[]);
    let mut data = fs::read(&tar2).expect("read");
    // Flip the byte of the file's content inside the layer (it follows the
    // layer's first 512-byte header).
    let start = data
        .windows(good.len())
        .position(|w| w == good.as_slice())
        .expect("layer in archive");
    let pos = start + 512;
    assert_eq!(data[pos], b'1');
    data[pos] = b'2';
    fs::write(&tar2, &data).expect("write");
    let out = skiff(&net, &root, &["load", "-i", tar2.to_str().expect("utf-8")]);
    let err = support::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("diff_id") || err.contains("digest"), "{err}");
    let list = skiff_ok(&net, &root, &["images"]);
    assert_eq!(list.lines().count(), 1, "nothing registered: {list}");
}
