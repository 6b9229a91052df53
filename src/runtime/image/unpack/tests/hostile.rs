//! Hostile layers: every escape attempt is refused with a clear error and
//! leaves nothing outside the layer directory.

use super::*;

#[test]
fn absolute_paths_are_confined() {
    let f = Fixture::new();
    let mut l = Layer::new();
    l.file("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .file("a/../b", b"b", 0o644);
    f.unpack(&l.bytes()).unwrap();
    assert_eq!(
        fs::read(f.p("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    assert_eq!(fs::read(f.p("b")).unwrap(), b"b");
    assert!(!f.p("a").exists());
    f.assert_outside_untouched();
}

#[test]
fn traversal_is_refused() {
    for name in [
        "../x",
        "a/../../x",
        "../outside/secret",
        "./../../../etc/passwd",
    ] {
        let f = Fixture::new();
        let mut l = Layer::new();
        l.file(name, b"pwned", 0o644);
        let err = f.refuse(&l.bytes());
        assert_eq!(err, format!("entry {name} escapes the layer root"));
    }
    // Also for directories and symlink names.
    let f = Fixture::new();
    let mut l = Layer::new();
    l.dir("../newdir/", 0o755);
    assert!(f.refuse(&l.bytes()).contains("escapes the layer root"));
    assert!(!f.tmp.path().join("newdir").exists());
    let f = Fixture::new();
    let mut l = Layer::new();
    l.symlink("../lnk", "/");
    assert!(f.refuse(&l.bytes()).contains("escapes the layer root"));
}

#[test]
fn planted_symlinks_are_never_written_through() {
    // evil -> <tmp>/outside, then evil/pwned.
    let f = Fixture::new();
    let outside = f.outside();
    let mut l = Layer::new();
    l.symlink("evil", outside.to_str().unwrap())
        .file("evil/pwned", b"pwned", 0o644);
    let err = f.refuse(&l.bytes());
    assert_eq!(
        err,
        "entry evil/pwned: evil is a symlink; refusing to write through it"
    );
    assert!(!outside.join("pwned").exists());

    // A relative chain of `..` links: up -> .., up/up/outside/pwned.
    let f = Fixture::new();
    let mut l = Layer::new();
    l.symlink("up", "..")
        .file("up/outside/pwned", b"pwned", 0o644);
    assert!(f.refuse(&l.bytes()).contains("up is a symlink"));
    let f = Fixture::new();
    let mut l = Layer::new();
    l.dir("d/", 0o755)
        .symlink("d/l", "../..")
        .dir("d/l/outside/", 0o755)
        .file("d/l/outside/pwned", b"pwned", 0o644);
    assert!(f.refuse(&l.bytes()).contains("d/l is a symlink"));

    // A directory entry through the symlink, and an opaque marker / whiteout.
    for name in ["evil/sub/", "evil/.wh..wh..opq", "evil/.wh.secret"] {
        let f = Fixture::new();
        let outside = f.outside();
        let mut l = Layer::new();
        l.symlink("evil", outside.to_str().unwrap());
        if name.ends_with('/') {
            l.dir(name, 0o755);
        } else {
            l.file(name, b"", 0o644);
        }
        assert!(f.refuse(&l.bytes()).contains("evil is a symlink"), "{name}");
        assert_eq!(xattr(&outside, "trusted.overlay.opaque"), None);
    }

    // A regular file replacing a symlink replaces the link, not its target.
    let f = Fixture::new();
    let secret = f.outside().join("secret");
    let mut l = Layer::new();
    l.symlink("x", secret.to_str().unwrap())
        .file("x", b"new", 0o644);
    f.unpack(&l.bytes()).unwrap();
    assert_eq!(fs::read(f.p("x")).unwrap(), b"new");
    assert!(fs::symlink_metadata(f.p("x")).unwrap().is_file());
    f.assert_outside_untouched();
}

#[test]
fn hardlink_escapes_are_refused() {
    let f = Fixture::new();
    let mut l = Layer::new();
    l.hardlink("link", "../../etc/passwd");
    assert_eq!(
        f.refuse(&l.bytes()),
        "hardlink link points outside the layer (target ../../etc/passwd)"
    );

    // Absolute targets are confined to the layer, where nothing exists.
    let f = Fixture::new();
    let mut l = Layer::new();
    l.hardlink("link", "/etc/passwd");
    let err = f.refuse(&l.bytes());
    assert!(err.contains("does not exist in this layer"), "{err}");

    // To a symlink (even one pointing at a file inside the layer).
    let f = Fixture::new();
    let mut l = Layer::new();
    l.file("real", b"r", 0o644)
        .symlink("sym", "real")
        .hardlink("link", "sym");
    assert_eq!(
        f.refuse(&l.bytes()),
        "hardlink link: target sym is a symlink"
    );

    // Through a symlinked directory pointing outside.
    let f = Fixture::new();
    let outside = f.outside();
    let mut l = Layer::new();
    l.symlink("out", outside.to_str().unwrap())
        .hardlink("link", "out/secret");
    let err = f.refuse(&l.bytes());
    assert!(err.contains("goes through the symlink out"), "{err}");
    assert_eq!(fs::metadata(outside.join("secret")).unwrap().nlink(), 1);

    // To a directory.
    let f = Fixture::new();
    let mut l = Layer::new();
    l.dir("d/", 0o755).hardlink("link", "d");
    assert!(f.refuse(&l.bytes()).contains("is not a regular file"));
}

#[test]
fn truncated_streams_are_errors() {
    let mut l = Layer::new();
    l.file("big", &vec![7u8; 100_000], 0o644)
        .file("after", b"x", 0o644);
    let tar = l.bytes();
    // Cut inside the first file's data.
    let f = Fixture::new();
    let err = f.refuse(&tar[..50_000]);
    assert!(err.contains("big") && err.contains("truncated"), "{err}");
    // Cut inside the second header.
    let second = 512 + 100_000usize.div_ceil(512) * 512;
    let f = Fixture::new();
    let err = f.refuse(&tar[..second + 100]);
    assert!(
        err.contains("truncated") || err.contains("malformed"),
        "{err}"
    );
    // Garbage instead of a header.
    let f = Fixture::new();
    let err = f.refuse(&[0x41u8; 1024]);
    assert!(err.contains("malformed"), "{err}");
}

#[test]
fn size_limit_is_checked_before_writing() {
    // A header claiming 10 GB with no data behind it.
    let f = Fixture::new();
    let mut l = Layer::new();
    l.file("small", b"abc", 0o644);
    let mut h = header(b"huge", EntryType::Regular, 0o644, 10 << 30);
    h.set_cksum();
    let mut tar = l.bytes();
    tar.truncate(tar.len() - 1024); // drop the end-of-archive blocks
    tar.extend_from_slice(h.as_bytes());
    let o = UnpackOptions {
        size_limit: Some(1 << 20),
        sparse_limit: None,
        preserve_ownership: false,
    };
    let err = f.unpack_with(&tar, &o).unwrap_err().to_string();
    assert!(err.starts_with("entry huge: 10737418240 bytes"), "{err}");
    assert!(err.contains("size limit of 1048576 bytes"), "{err}");
    assert!(!f.p("huge").exists());
    f.assert_outside_untouched();

    // Many small entries adding up over the limit.
    let f = Fixture::new();
    let mut l = Layer::new();
    for i in 0..5 {
        l.file(&format!("f{i}"), &[1u8; 300], 0o644);
    }
    let o = UnpackOptions {
        size_limit: Some(1000),
        sparse_limit: None,
        preserve_ownership: false,
    };
    let err = f.unpack_with(&l.bytes(), &o).unwrap_err().to_string();
    assert!(
        err.starts_with("entry f3: 300 bytes would take the layer to 1200 bytes"),
        "{err}"
    );
    assert!(!f.p("f3").exists());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let f = Fixture::new();
    let mut l = Layer::new();
    l.dir("d/", 0o755)
        .file("d/inner", b"1", 0o644)
        .dir("d/sub/", 0o755)
        .file("d/sub/x", b"x", 0o644)
        .file("d", b"now a file", 0o600) // file replaces a whole dir
        .dir("keep/", 0o755)
        .file("keep/child", b"c", 0o644)
        .dir("keep/", 0o700) // dir over dir: kept, metadata updated
        .file("f", b"old", 0o644)
        .symlink("f", "target") // symlink replaces a file
        .file("g", b"g", 0o644)
        .dir("g/", 0o755) // dir replaces a file
        .file("g/y", b"y", 0o644)
        .file("h", b"first", 0o644)
        .file("h", b"second", 0o644);
    f.unpack(&l.bytes()).unwrap();
    assert_eq!(fs::read(f.p("d")).unwrap(), b"now a file");
    assert_eq!(fs::read(f.p("keep/child")).unwrap(), b"c");
    assert_eq!(
        fs::metadata(f.p("keep")).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert_eq!(fs::read_link(f.p("f")).unwrap(), Path::new("target"));
    assert_eq!(fs::read(f.p("g/y")).unwrap(), b"y");
    assert_eq!(fs::read(f.p("h")).unwrap(), b"second");
    f.assert_outside_untouched();
}

#[test]
fn entries_under_a_file_are_refused() {
    let f = Fixture::new();
    let mut l = Layer::new();
    l.file("a", b"file", 0o644).file("a/b", b"x", 0o644);
    assert_eq!(
        f.refuse(&l.bytes()),
        "entry a/b: a exists and is not a directory"
    );
}

#[test]
fn huge_metadata_entries_are_refused() {
    // A GNU long name of 20 MiB: the parser would hold it all in memory.
    let mut l = Layer::new();
    let size = 20 << 20;
    l.raw(
        header(b"././@LongLink", EntryType::GNULongName, 0o644, size),
        &vec![b'a'; size as usize],
    )
    .file("x", b"x", 0o644);
    let f = Fixture::new();
    let err = f.refuse(&l.bytes());
    assert!(err.contains("exceeds 16777216 bytes"), "{err}");

    // A long name within reason is fine.
    let name = format!("{}file", "long-directory/".repeat(20));
    let mut l = Layer::new();
    l.raw(
        header(
            b"././@LongLink",
            EntryType::GNULongName,
            0o644,
            name.len() as u64,
        ),
        name.as_bytes(),
    )
    .file("short-header-name", b"long", 0o644);
    let f = Fixture::new();
    f.unpack(&l.bytes()).unwrap();
    assert_eq!(fs::read(f.dest.join(&name)).unwrap(), b"long");
}

/// A layer whose `.` entry is 07777 owned by 1000:1000 would hand the
/// snapshot directory (and so every file of every container made from it)
/// to that host user: the layer root keeps the store's owner and mode.
#[test]
fn layer_root_entry_does_not_change_the_snapshot_dir() {
    for name in ["./", "/", "."] {
        let f = Fixture::new();
        fs::set_permissions(&f.dest, fs::Permissions::from_mode(0o755)).unwrap();
        let before = fs::metadata(&f.dest).unwrap();
        let mut h = header(name.as_bytes(), EntryType::Directory, 0o7777, 0);
        h.set_uid(1000);
        h.set_gid(1000);
        let mut l = Layer::new();
        l.raw(h, &[]).file("bin/true", b"ok", 0o755);
        f.unpack(&l.bytes()).unwrap();
        let after = fs::metadata(&f.dest).unwrap();
        assert_eq!(
            (after.mode() & 0o7777, after.uid(), after.gid()),
            (before.mode() & 0o7777, before.uid(), before.gid()),
            "the layer's {name:?} entry changed the snapshot directory"
        );
        assert_eq!(fs::read(f.p("bin/true")).unwrap(), b"ok");
        f.assert_outside_untouched();
    }
}

/// A GNU old-style sparse entry: `data` at `offset` in a file of `real` bytes.
fn sparse_entry(l: &mut Layer, name: &str, offset: u64, data: &[u8], real: u64) {
    fn octal(v: u64) -> [u8; 12] {
        let mut out = [0u8; 12];
        let s = format!("{v:011o}");
        out[..11].copy_from_slice(s.as_bytes());
        out
    }
    let mut h = header(
        name.as_bytes(),
        EntryType::GNUSparse,
        0o644,
        data.len() as u64,
    );
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].offset = octal(offset);
        gnu.sparse[0].numbytes = octal(data.len() as u64);
        // GNU tar ends the map with an empty chunk at the real size.
        gnu.sparse[1].offset = octal(real);
        gnu.sparse[1].numbytes = octal(0);
        gnu.realsize = octal(real);
    }
    l.raw(h, data);
}

/// 64 MiB described by one 512-byte block: written sparse, the holes
/// allocate nothing (the bomb allocated the whole size).
#[test]
fn sparse_entries_are_written_sparse() {
    let f = Fixture::new();
    let real = 64u64 << 20;
    let mut data = [0u8; 512];
    data[..5].copy_from_slice(b"hello");
    let mut l = Layer::new();
    // A hole before the data and one after it.
    sparse_entry(&mut l, "big", real / 2, &data, real);
    f.unpack(&l.bytes()).unwrap();
    let m = fs::metadata(f.p("big")).unwrap();
    assert_eq!(m.len(), real);
    assert!(
        m.blocks() * 512 <= 64 << 10,
        "{} bytes allocated for a file of one data block",
        m.blocks() * 512
    );
    let content = fs::read(f.p("big")).unwrap();
    assert_eq!(&content[(real / 2) as usize..][..5], b"hello");
    assert!(content[..(real / 2) as usize].iter().all(|&b| b == 0));
    f.assert_outside_untouched();
}

/// What a sparse entry expands to is bounded by its own limit; its holes do
/// not count against the layer's size limit (they take no space).
#[test]
fn sparse_expansion_is_bounded() {
    let f = Fixture::new();
    let mut l = Layer::new();
    sparse_entry(&mut l, "huge", 1 << 32, &[1u8; 512], (1 << 32) + 512);
    let o = UnpackOptions {
        size_limit: Some(1 << 30),
        sparse_limit: Some(1 << 30),
        preserve_ownership: is_root(),
    };
    let err = f.unpack_with(&l.bytes(), &o).unwrap_err();
    assert!(matches!(err, UnpackError::SizeLimit { .. }), "{err}");
    let f = Fixture::new();
    let mut l = Layer::new();
    sparse_entry(&mut l, "big", 1 << 26, &[1u8; 512], (1 << 26) + 512);
    let o = UnpackOptions {
        size_limit: Some(4096),
        sparse_limit: Some(1 << 30),
        preserve_ownership: is_root(),
    };
    f.unpack_with(&l.bytes(), &o).unwrap();
}
