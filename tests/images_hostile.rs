//! Hostile images served by a real registry: each pull is refused with an
//! error naming the image and the layer, nothing is registered, no snapshot
//! (not even a temporary one) is left, and nothing outside the store is
//! touched. The images are written by hand (support/oci.rs) and uploaded
//! over the registry's HTTP API, or spoiled in the registry's storage.
//! (A layer whose bytes do not match its digest: images_pull.rs.)

#[path = "support/oci.rs"]
mod oci;
#[path = "support/registry.rs"]
mod registry;
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci::{Blob, Compression, Image, LayerTar};
use registry::{entries, skiff, skiff_ok, Registry};

/// A work dir holding the store (`root/`) beside `outside/`, a directory
/// with a secret that hostile layers aim at.
struct Fixture {
    reg: Registry,
    work: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let work = tempfile::tempdir().expect("temp dir");
        fs::create_dir(work.path().join("outside")).expect("outside dir");
        fs::write(work.path().join("outside/secret"), "keep me").expect("secret");
        Fixture {
            reg: Registry::start(),
            work,
        }
    }

    fn root(&self) -> PathBuf {
        self.work.path().join("root")
    }

    fn outside(&self) -> PathBuf {
        self.work.path().join("outside")
    }

    fn outside_state(&self) -> BTreeMap<String, Vec<u8>> {
        entries(&self.outside())
            .into_iter()
            .map(|n| {
                let data = fs::read(self.outside().join(&n)).unwrap_or_default();
                (n, data)
            })
            .collect()
    }

    /// Pull `repo:latest` and check that it is refused cleanly, with an
    /// error naming the image, the layer digest and `what` (a word of the reason).
    fn assert_refused(&self, repo: &str, layer: &str, what: &str) -> String {
        self.assert_refused_with(repo, layer, what, &[])
    }

    /// [`assert_refused`] with extra `pull` flags.
    fn assert_refused_with(&self, repo: &str, layer: &str, what: &str, flags: &[&str]) -> String {
        let before = self.outside_state();
        let image = format!("{}/{repo}:latest", self.reg.host());
        let root = self.root();
        let mut args = vec!["pull", "--registries", "/nonexistent"];
        args.extend_from_slice(flags);
        args.push(&image);
        let out = skiff(&self.reg.net, &root, &args);
        let err = support::stderr(&out);
        assert!(!out.status.success(), "hostile pull succeeded: {err}");
        assert!(err.contains(&image), "error names the image: {err}");
        assert!(err.contains(layer), "error names the layer {layer}: {err}");
        assert!(err.contains("layer"), "error says it is a layer: {err}");
        assert!(
            err.to_lowercase().contains(what),
            "error says why ({what}): {err}"
        );
        let list = skiff_ok(&self.reg.net, &root, &["images"]);
        assert_eq!(list.lines().count(), 1, "nothing registered: {list}");
        assert_eq!(
            entries(&root.join("images/snapshots")),
            Vec::<String>::new(),
            "no snapshot, not even a temporary one"
        );
        let blobs = entries(&root.join("images/blobs/sha256"));
        assert!(
            !blobs.iter().any(|b| b.starts_with(".tmp")),
            "no partial download left: {blobs:?}"
        );
        assert_eq!(self.outside_state(), before, "outside touched");
        // Nothing was created beside the store either.
        let mut around = entries(self.work.path());
        around.retain(|n| n != "root" && n != "outside");
        assert_eq!(around, Vec::<String>::new());
        err
    }

    /// Push a one-layer image made of `tar` as `repo:latest`; returns the layer digest.
    fn push_layer(&self, repo: &str, tar: Vec<u8>) -> String {
        let image = Image::new("amd64", &[tar], Compression::Gzip);
        self.reg.push_image(repo, "latest", &image);
        image.layers[0].digest()
    }
}

/// `../` above the snapshot, aimed at the outside directory.
fn climb(f: &Fixture, name: &str) -> String {
    // <work>/root/images/snapshots/<dir>/ → four levels up is <work>.
    let _ = f;
    format!("../../../../outside/{name}")
}

#[test]
fn path_traversal_layer() {
    let f = Fixture::new();
    let tar = LayerTar::new()
        .file("ok", b"fine")
        .file(&climb(&f, "escaped"), b"pwned")
        .bytes();
    let layer = f.push_layer("traversal", tar);
    f.assert_refused("traversal", &layer, "escapes");
    assert!(!f.outside().join("escaped").exists());
}

#[test]
fn absolute_symlink_escape_layer() {
    let f = Fixture::new();
    let outside = f.outside().display().to_string();
    let tar = LayerTar::new()
        .symlink("link", &outside)
        .file("link/pwned", b"pwned")
        .bytes();
    let layer = f.push_layer("symlink-abs", tar);
    f.assert_refused("symlink-abs", &layer, "symlink");
    assert!(!f.outside().join("pwned").exists());
}

#[test]
fn relative_symlink_escape_layer() {
    let f = Fixture::new();
    let tar = LayerTar::new()
        .symlink("up", "../../../../outside")
        .file("up/secret", b"overwritten")
        .bytes();
    let layer = f.push_layer("symlink-rel", tar);
    f.assert_refused("symlink-rel", &layer, "symlink");
    assert_eq!(
        fs::read_to_string(f.outside().join("secret")).expect("secret"),
        "keep me"
    );
}

#[test]
fn hardlink_escape_layer() {
    let f = Fixture::new();
    let secret = f.outside().join("secret").display().to_string();
    let tar = LayerTar::new().hardlink("stolen", &secret).bytes();
    let layer = f.push_layer("hardlink", tar);
    f.assert_refused("hardlink", &layer, "link");
}

#[test]
fn truncated_blob() {
    let f = Fixture::new();
    let tar = LayerTar::new().file("data", &[7u8; 64 << 10]).bytes();
    let layer = f.push_layer("truncated", tar);
    let file = f.reg.blob_file(&layer);
    let data = fs::read(&file).expect("layer in registry storage");
    fs::write(&file, &data[..data.len() / 2]).expect("truncate");
    f.assert_refused("truncated", &layer, "size");
}

#[test]
fn manifest_pointing_at_a_missing_blob() {
    let f = Fixture::new();
    let tar = LayerTar::new().file("data", b"gone").bytes();
    let layer = f.push_layer("missing", tar);
    // Remove the blob from the registry's storage: the manifest still names it.
    let file = f.reg.blob_file(&layer);
    let dir: &Path = file.parent().expect("blob dir");
    fs::remove_dir_all(dir).expect("remove blob");
    f.assert_refused("missing", &layer, "blob");
}

#[test]
fn unknown_layer_media_type() {
    let f = Fixture::new();
    let tar = LayerTar::new().file("data", b"what am I").bytes();
    let mut image = Image::new("amd64", &[tar], Compression::None);
    image.layers[0].media_type = "application/vnd.skiff.unknown.layer".to_string();
    image.rewrite_manifest();
    f.reg.push_image("unknown", "latest", &image);
    let err = f.assert_refused("unknown", &image.layers[0].digest(), "media type");
    assert!(err.contains("application/vnd.skiff.unknown.layer"), "{err}");
}

#[test]
fn ten_gigabyte_claimed_size() {
    let f = Fixture::new();
    let tar = LayerTar::new().file("small", b"but claims 10 GB").bytes();
    let data = Compression::Gzip.compress(&tar);
    let layer = Blob {
        media_type: Compression::Gzip.media_type().to_string(),
        claimed_size: 10_000_000_000,
        data,
    };
    let digest = layer.digest();
    let image = Image::assemble("amd64", vec![layer], vec![oci::sha256(&tar)]);
    f.reg.push_image("huge", "latest", &image);
    // Refused either before download (not enough space) or when the blob
    // turns out smaller than claimed; both name the size.
    let err = f.assert_refused("huge", &digest, "bytes");
    assert!(err.contains("10000000000"), "{err}");
}

/// A raw GNU header (tar::Builder's path setters refuse nothing here, but
/// sparse maps and device numbers need the raw fields).
fn gnu_header(name: &str, ty: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn octal12(v: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..11].copy_from_slice(format!("{v:011o}").as_bytes());
    out
}

/// A GNU old-style sparse entry of `real` bytes whose only data is one
/// 512-byte block at its middle (GNU tar ends the map with an empty chunk
/// at the real size).
fn sparse_bomb(real: u64) -> Vec<u8> {
    let mut data = [0u8; 512];
    data[..5].copy_from_slice(b"hello");
    let mut h = gnu_header("big", tar::EntryType::GNUSparse, 0o644, 512);
    {
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.sparse[0].offset = octal12(real / 2);
        gnu.sparse[0].numbytes = octal12(512);
        gnu.sparse[1].offset = octal12(real);
        gnu.sparse[1].numbytes = octal12(0);
        gnu.realsize = octal12(real);
    }
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &data[..]).expect("append");
    b.into_inner().expect("tar")
}

/// A 10 KB layer describing a 300 MiB file: unpacked sparse, it allocates
/// next to nothing (it used to allocate all 300 MiB).
#[test]
fn sparse_bomb_layer() {
    let f = Fixture::new();
    let real = 300u64 << 20;
    let tar = sparse_bomb(real);
    f.push_layer("sparse", tar);
    let image = format!("{}/sparse:latest", f.reg.host());
    let root = f.root();
    skiff_ok(
        &f.reg.net,
        &root,
        &["pull", "--registries", "/nonexistent", &image],
    );
    let snaps = entries(&root.join("images/snapshots"));
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let big = root.join("images/snapshots").join(&snaps[0]).join("big");
    let m = fs::metadata(&big).expect("big");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(m.len(), real);
    eprintln!(
        "sparse bomb: {} byte layer, {} bytes apparent, {} bytes allocated",
        f.reg.raw_manifest("sparse:latest")["layers"][0]["size"],
        m.len(),
        m.blocks() * 512
    );
    assert!(
        m.blocks() * 512 <= 1 << 20,
        "{} bytes allocated for one 512-byte block of data",
        m.blocks() * 512
    );
}

/// A gzip of zeros far smaller than what it unpacks to: refused once the
/// layer passes its limit, with an error naming the layer, the limit and
/// the flag that raises it; nothing is left behind.
#[test]
fn zeros_bomb_layer() {
    let f = Fixture::new();
    let mut h = gnu_header("zeros", tar::EntryType::Regular, 0o644, 96 << 20);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.resize(512 + (96 << 20) + 1024, 0);
    let layer = f.push_layer("zeros", tar);
    let err = f.assert_refused_with("zeros", &layer, "limit", &["--max-layer-size", "32M"]);
    assert!(err.contains("33554432 bytes"), "{err}");
    assert!(err.contains("--max-layer-size"), "{err}");
    // The default bound: what a gzip of zeros reaches stays far below 100x
    // of anything over 256 MiB, so the 1.8 MB → 400 MB is refused.
    let out = skiff(&f.reg.net, &f.root(), &["pull", "--help"]);
    assert!(support::stdout(&out).contains("--max-layer-ratio"));
}

/// Device nodes are kept as in the image (as Docker does), with their mode;
/// the store's copy is reachable by root only (store_permissions.rs tries).
#[test]
fn device_node_layer() {
    let f = Fixture::new();
    let mut b = tar::Builder::new(Vec::new());
    for (name, ty, major, minor) in [
        ("dev/loop0", tar::EntryType::Block, 7, 0),
        ("dev/sda", tar::EntryType::Block, 8, 0),
        ("dev/console", tar::EntryType::Char, 4, 0),
        ("dev/mem", tar::EntryType::Char, 1, 1),
    ] {
        let mut h = gnu_header(name, ty, 0o666, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        h.set_cksum();
        b.append(&h, &[][..]).expect("append");
    }
    f.push_layer("devices", b.into_inner().expect("tar"));
    let image = format!("{}/devices:latest", f.reg.host());
    let root = f.root();
    skiff_ok(
        &f.reg.net,
        &root,
        &["pull", "--registries", "/nonexistent", &image],
    );
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let snaps = entries(&root.join("images/snapshots"));
    let dev = root.join("images/snapshots").join(&snaps[0]).join("dev");
    let m = fs::symlink_metadata(dev.join("loop0")).expect("loop0");
    assert!(m.file_type().is_block_device());
    assert_eq!(m.mode() & 0o7777, 0o666);
    assert_eq!(
        fs::metadata(&root).expect("root").permissions().mode() & 0o777,
        0o700,
        "only root reaches the store's copies"
    );
}
