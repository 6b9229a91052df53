//! Unit tests: tar streams are built in memory with raw headers, so that
//! hostile names (`..`, absolute paths, planted symlinks) are exact.

use super::*;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

mod hostile;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tar stream under construction.
struct Layer {
    b: tar::Builder<Vec<u8>>,
}

fn header(name: &[u8], ty: EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        assert!(name.len() <= old.name.len(), "test name too long");
        old.name[..name.len()].copy_from_slice(name);
    }
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn set_link(h: &mut tar::Header, target: &[u8]) {
    let old = h.as_old_mut();
    old.linkname[..target.len()].copy_from_slice(target);
}

impl Layer {
    fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }
    fn raw(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }
    fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        let h = header(name.as_bytes(), EntryType::Regular, mode, data.len() as u64);
        self.raw(h, data)
    }
    fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let h = header(name.as_bytes(), EntryType::Directory, mode, 0);
        self.raw(h, &[])
    }
    fn link(&mut self, ty: EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = header(name.as_bytes(), ty, 0o777, 0);
        set_link(&mut h, target.as_bytes());
        self.raw(h, &[])
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(EntryType::Symlink, name, target)
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(EntryType::Link, name, target)
    }
    fn pax(&mut self, kv: &[(&str, &[u8])]) -> &mut Self {
        self.b
            .append_pax_extensions(kv.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }
    fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// A tempdir holding the layer directory `layer/` beside an `outside/`
/// directory with a secret file, and a snapshot of everything but `layer/`.
struct Fixture {
    tmp: tempfile::TempDir,
    dest: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p == skip {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let mut desc = format!(
                "{:o} {} {} {} {}",
                m.mode(),
                m.uid(),
                m.len(),
                m.mtime(),
                m.ino()
            );
            if m.file_type().is_file() {
                desc.push_str(&String::from_utf8_lossy(&fs::read(&p).unwrap()));
            } else if m.file_type().is_symlink() {
                desc.push_str(&fs::read_link(&p).unwrap().display().to_string());
            }
            out.insert(p.clone(), desc);
            if m.is_dir() {
                walk(&p, skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, skip, &mut out);
    out
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("layer");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
        let before = snapshot(tmp.path(), &dest);
        Fixture { tmp, dest, before }
    }
    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }
    fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        self.unpack_with(tar, &opts())
    }
    fn unpack_with(&self, tar: &[u8], o: &UnpackOptions) -> Result<UnpackStats, UnpackError> {
        unpack_layer(tar, &self.dest, o)
    }
    fn assert_outside_untouched(&self) {
        assert_eq!(
            self.before,
            snapshot(self.tmp.path(), &self.dest),
            "something outside dest changed"
        );
    }
    /// Unpacks a hostile layer: must fail, and touch nothing outside.
    fn refuse(&self, tar: &[u8]) -> String {
        let err = self.unpack(tar).expect_err("hostile layer was accepted");
        self.assert_outside_untouched();
        err.to_string()
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }
}

fn opts() -> UnpackOptions {
    UnpackOptions {
        size_limit: None,
        sparse_limit: None,
        preserve_ownership: is_root(),
    }
}

fn mtime(p: &Path) -> i64 {
    fs::symlink_metadata(p).unwrap().mtime()
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

#[test]
fn normalize_paths() {
    let n = |s: &str| {
        tree::normalize(s.as_bytes()).map(|v| {
            v.iter()
                .map(|c| c.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(n("/etc/passwd").unwrap(), ["etc", "passwd"]);
    assert_eq!(n("./a//b/./c/").unwrap(), ["a", "b", "c"]);
    assert_eq!(n("a/../b").unwrap(), ["b"]);
    assert!(n("./").unwrap().is_empty());
    assert!(n("../x").is_err());
    assert!(n("a/../../x").is_err());
    assert!(n("/../x").is_err());
}

#[test]
fn files_dirs_symlinks_hardlinks_modes_mtimes() {
    let f = Fixture::new();
    let mut l = Layer::new();
    l.dir("./", 0o755)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o4755)
        .dir("tmp/", 0o1777)
        .dir("srv/", 0o2750)
        .file("implicit/parent/file", b"x", 0o644)
        .symlink("usr/bin/abs", "/usr/bin/tool")
        .symlink("usr/bin/rel", "../../etc/../usr/bin/tool")
        .symlink("dangling", "/nonexistent/at/all")
        .hardlink("usr/bin/tool2", "usr/bin/tool")
        .hardlink("usr/bin/tool3", "/usr/bin/tool");
    let stats = f.unpack(&l.bytes()).unwrap();
    assert_eq!(stats.entries, 12);
    assert_eq!(stats.bytes, 18 + 1);

    assert_eq!(
        fs::read(f.p("usr/bin/tool")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    let m = |p: &str| fs::symlink_metadata(f.p(p)).unwrap();
    assert_eq!(m("usr/bin/tool").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(m("tmp").permissions().mode() & 0o7777, 0o1777);
    assert_eq!(m("srv").permissions().mode() & 0o7777, 0o2750);
    assert_eq!(m("implicit/parent").permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_link(f.p("usr/bin/abs")).unwrap(),
        Path::new("/usr/bin/tool")
    );
    assert_eq!(
        fs::read_link(f.p("usr/bin/rel")).unwrap(),
        Path::new("../../etc/../usr/bin/tool")
    );
    assert_eq!(
        fs::read_link(f.p("dangling")).unwrap(),
        Path::new("/nonexistent/at/all")
    );
    assert_eq!(m("usr/bin/tool2").ino(), m("usr/bin/tool").ino());
    assert_eq!(m("usr/bin/tool3").ino(), m("usr/bin/tool").ino());
    assert_eq!(m("usr/bin/tool").nlink(), 3);
    // Directory mtimes survive their children being written.
    for p in [
        "usr/bin/tool",
        "usr/bin",
        "usr",
        "tmp",
        "srv",
        "usr/bin/abs",
    ] {
        assert_eq!(mtime(&f.p(p)), 1_600_000_000, "{p}");
    }
    assert_eq!(mtime(&f.dest), 1_600_000_000);
    f.assert_outside_untouched();
}

#[test]
fn ownership_xattrs_and_pax_mtime() {
    let f = Fixture::new();
    let mut h = header(b"owned", EntryType::Regular, 0o640, 2);
    h.set_uid(1234);
    h.set_gid(5678);
    let mut l = Layer::new();
    l.pax(&[
        ("SCHILY.xattr.user.note", b"hello"),
        ("mtime", b"1500000000.25"),
    ])
    .raw(h, b"ok");
    let mut d = header(b"d/", EntryType::Directory, 0o700, 0);
    d.set_uid(42);
    d.set_gid(43);
    l.pax(&[("SCHILY.xattr.user.dir", b"yes")]).raw(d, &[]);
    let mut s = header(b"d/link", EntryType::Symlink, 0o777, 0);
    set_link(&mut s, b"/owned");
    s.set_uid(7);
    s.set_gid(8);
    l.raw(s, &[]);
    f.unpack(&l.bytes()).unwrap();

    let m = fs::metadata(f.p("owned")).unwrap();
    assert_eq!(m.mtime(), 1_500_000_000);
    assert_eq!(m.mtime_nsec(), 250_000_000);
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        xattr(&f.p("owned"), "user.note").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(xattr(&f.p("d"), "user.dir").as_deref(), Some(&b"yes"[..]));
    if is_root() {
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        let d = fs::metadata(f.p("d")).unwrap();
        assert_eq!((d.uid(), d.gid()), (42, 43));
        let s = fs::symlink_metadata(f.p("d/link")).unwrap();
        assert_eq!((s.uid(), s.gid()), (7, 8));
    } else {
        println!("not root: ownership not checked");
    }
    f.assert_outside_untouched();
}

#[test]
fn whiteouts_become_overlay_char_devices() {
    let f = Fixture::new();
    let mut l = Layer::new();
    l.dir("etc/", 0o755)
        .file("etc/.wh.hosts", b"", 0o644)
        .file("etc/.wh..wh..opq", b"", 0o644)
        .file(".wh.gone-dir", b"", 0o644)
        .file("etc/.wh..wh.plnk", b"", 0o644)
        .file("deep/new/.wh.x", b"", 0o644);
    let stats = f.unpack(&l.bytes()).unwrap();
    assert_eq!(stats.entries, 5, "the .wh..wh.plnk entry is ignored");
    for p in ["etc/hosts", "gone-dir", "deep/new/x"] {
        let m = fs::symlink_metadata(f.p(p)).unwrap();
        assert!(m.file_type().is_char_device(), "{p}");
        assert_eq!(m.rdev(), 0, "{p}");
    }
    assert!(!f.p("etc/.wh.hosts").exists());
    assert!(!f.p("etc/.wh..wh.plnk").exists());
    assert!(!f.p("etc/.wh..wh..opq").exists());
    assert_eq!(
        xattr(&f.p("etc"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(xattr(&f.p("deep"), "trusted.overlay.opaque"), None);
    f.assert_outside_untouched();
}

#[test]
fn forged_overlay_xattrs_are_dropped() {
    let f = Fixture::new();
    let mut l = Layer::new();
    l.pax(&[
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ("SCHILY.xattr.user.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.keep", b"1"),
    ])
    .dir("forged/", 0o755);
    f.unpack(&l.bytes()).unwrap();
    assert_eq!(xattr(&f.p("forged"), "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&f.p("forged"), "trusted.overlay.redirect"), None);
    assert_eq!(xattr(&f.p("forged"), "user.overlay.opaque"), None);
    assert_eq!(
        xattr(&f.p("forged"), "user.keep").as_deref(),
        Some(&b"1"[..])
    );
}

fn sample_layer() -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("a/", 0o755).file("a/hello", b"hello world", 0o644);
    l.bytes()
}

fn check_sample(f: &Fixture) {
    assert_eq!(fs::read(f.p("a/hello")).unwrap(), b"hello world");
}

#[test]
fn gzip_and_zstd_layers() {
    let tar = sample_layer();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();

    let cases: &[(&[u8], &str)] = &[
        (&gz, "application/vnd.oci.image.layer.v1.tar+gzip"),
        (&gz, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
        (&gz, ""),
        (&gz, "application/vnd.oci.image.layer.v1.tar"), // mislabelled: sniffed
        (&zst, "application/vnd.oci.image.layer.v1.tar+zstd"),
        (&zst, ""),
        (&tar, "application/vnd.oci.image.layer.v1.tar"),
        (&tar, "application/vnd.docker.image.rootfs.diff.tar"),
        (&tar, ""),
    ];
    for (data, mt) in cases {
        let f = Fixture::new();
        let r = decompress(*data, mt).unwrap_or_else(|e| panic!("{mt}: {e}"));
        f.unpack_with_reader(r);
        check_sample(&f);
    }

    let err = decompress(&tar[..], "application/vnd.oci.image.layer.v1.tar+gzip")
        .err()
        .unwrap();
    assert!(err.to_string().contains("gzip"), "{err}");
    let err = decompress(&gz[..], "application/vnd.oci.image.layer.v1.tar+zstd")
        .err()
        .unwrap();
    assert!(err.to_string().contains("zstd"), "{err}");
    let err = decompress(&tar[..], "application/vnd.oci.image.layer.v1.tar+bzip2")
        .err()
        .unwrap();
    assert!(matches!(err, UnpackError::UnsupportedMediaType(_)), "{err}");
    let err = decompress(&tar[..], "application/vnd.oci.image.config.v1+json")
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("unsupported layer media type"),
        "{err}"
    );

    // A corrupt gzip body is a read error, not a silent short layer.
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid..].iter_mut().for_each(|b| *b ^= 0x55);
    let f = Fixture::new();
    let r = decompress(&bad[..], "").unwrap();
    assert!(unpack_layer(r, &f.dest, &opts()).is_err());
}

impl Fixture {
    fn unpack_with_reader(&self, r: Box<dyn Read + '_>) {
        unpack_layer(r, &self.dest, &opts()).unwrap();
    }
}

#[test]
fn unknown_entry_types_are_skipped() {
    let f = Fixture::new();
    let mut l = Layer::new();
    l.raw(
        header(b"label", EntryType::new(b'V'), 0o644, 3000),
        &[9u8; 3000],
    )
    .file("ok", b"ok", 0o644);
    let stats = f.unpack(&l.bytes()).unwrap();
    assert_eq!(stats.entries, 1);
    assert!(!f.p("label").exists());
    assert_eq!(fs::read(f.p("ok")).unwrap(), b"ok");
}

#[test]
fn device_nodes_and_fifos() {
    if !is_root() {
        println!("skipped: device nodes need root");
        return;
    }
    let f = Fixture::new();
    let mut l = Layer::new();
    let mut c = header(b"dev/null", EntryType::Char, 0o666, 0);
    c.set_device_major(1).unwrap();
    c.set_device_minor(3).unwrap();
    let mut b = header(b"dev/loop0", EntryType::Block, 0o660, 0);
    b.set_device_major(7).unwrap();
    b.set_device_minor(0).unwrap();
    b.set_gid(6);
    l.raw(c, &[])
        .raw(b, &[])
        .raw(header(b"run/fifo", EntryType::Fifo, 0o620, 0), &[]);
    f.unpack(&l.bytes()).unwrap();
    let m = fs::symlink_metadata(f.p("dev/null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(m.permissions().mode() & 0o7777, 0o666);
    let m = fs::symlink_metadata(f.p("dev/loop0")).unwrap();
    assert!(m.file_type().is_block_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(7, 0));
    assert_eq!(m.gid(), 6);
    let m = fs::symlink_metadata(f.p("run/fifo")).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!(m.permissions().mode() & 0o7777, 0o620);
    assert_eq!(m.mtime(), 1_600_000_000);
    f.assert_outside_untouched();
}

#[test]
fn trailing_data_is_drained() {
    // A digest-checking reader underneath must see every byte.
    struct Counting<'a>(&'a [u8], usize);
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n;
            Ok(n)
        }
    }
    let mut tar = sample_layer();
    tar.extend_from_slice(&[0u8; 10_000]);
    let f = Fixture::new();
    let mut r = Counting(&tar, 0);
    unpack_layer(&mut r, &f.dest, &opts()).unwrap();
    assert_eq!(r.1, tar.len());
}

#[test]
fn sync_dir_works() {
    let f = Fixture::new();
    f.unpack(&sample_layer()).unwrap();
    sync_dir(&f.dest).unwrap();
    assert!(sync_dir(&f.tmp.path().join("missing")).is_err());
}

/// Unmounts (lazily) when dropped, even when the test panics.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn overlayfs_stacks_unpacked_layers() {
    if !is_root() {
        println!("skipped: mounting overlayfs needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (l1, l2, merged) = (
        tmp.path().join("l1"),
        tmp.path().join("l2"),
        tmp.path().join("merged"),
    );
    for d in [&l1, &l2, &merged] {
        fs::create_dir(d).unwrap();
    }
    let mut a = Layer::new();
    a.dir("etc/", 0o755)
        .file("etc/hosts", b"127.0.0.1 localhost\n", 0o644)
        .file("etc/keep", b"keep", 0o644)
        .dir("var/", 0o755)
        .dir("var/cache/", 0o755)
        .file("var/cache/old1", b"1", 0o644)
        .file("var/cache/old2", b"2", 0o644);
    unpack_layer(&a.bytes()[..], &l1, &opts()).unwrap();
    let mut b = Layer::new();
    b.dir("etc/", 0o755)
        .file("etc/.wh.hosts", b"", 0o644)
        .dir("var/cache/", 0o755)
        .file("var/cache/.wh..wh..opq", b"", 0o644)
        .file("var/cache/new", b"new", 0o644);
    unpack_layer(&b.bytes()[..], &l2, &opts()).unwrap();

    let data = format!("lowerdir={}:{}", l2.display(), l1.display());
    let data = std::ffi::CString::new(data).unwrap();
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        &*data,
    )
    .expect("mount overlay");
    let _guard = MountGuard(merged.clone());

    assert!(
        !merged.join("etc/hosts").exists(),
        "whiteout hides etc/hosts"
    );
    assert_eq!(fs::read(merged.join("etc/keep")).unwrap(), b"keep");
    let mut cache: Vec<String> = fs::read_dir(merged.join("var/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    cache.sort();
    assert_eq!(cache, ["new"], "opaque dir hides the lower layer's content");
}

/// Not a test: `cargo test --release --lib unpack::tests::bench -- --ignored
/// --nocapture` prints the unpack throughput of a generated plain tar.
#[test]
#[ignore]
fn bench_unpack_throughput() {
    let mut l = Layer::new();
    let mut total = 0u64;
    let mut seed = 1u64;
    for d in 0..50 {
        l.dir(&format!("d{d}/"), 0o755);
        for i in 0..40 {
            // Mid-size files: 4 KiB .. 1 MiB.
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let size = 4096 + (seed >> 33) as usize % (1 << 20);
            let data = vec![(i as u8).wrapping_mul(31); size];
            l.file(&format!("d{d}/f{i}"), &data, 0o644);
            total += size as u64;
        }
    }
    let tar = l.bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();
    for (what, data) in [("plain tar", &tar), ("gzip", &gz), ("zstd", &zst)] {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let f = Fixture::new();
            let t = std::time::Instant::now();
            let r = decompress(&data[..], "").unwrap();
            let stats = unpack_layer(r, &f.dest, &opts()).unwrap();
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(stats.bytes, total);
            best = best.min(secs);
        }
        println!(
            "{what}: unpacked {} files, {:.0} MiB in {:.3}s: {:.0} MB/s",
            50 * 40,
            total as f64 / (1 << 20) as f64,
            best,
            total as f64 / 1e6 / best
        );
    }
}
