//! A hostile test image: busybox (every applet) plus a layer of device nodes
//! an image author could ship, under /hostdev (not /dev, which is a tmpfs in
//! the container): a loop device, disks (sda and the host's own root disk),
//! the host's virtual console and system console, and physical memory. All
//! are mode 0666 so that only the device cgroup can stop an open.
//!
//! Include with `mod support;` and use `support::device_image`.

#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::run_ok;

/// The image's name once loaded.
pub const IMAGE: &str = "devnodes";

/// A node in the image: (name under /hostdev, 'b' or 'c', major, minor).
pub type Node = (String, char, u64, u64);

/// The nodes the image carries: loop0 (b 7:0), sda (b 8:0), rootdisk (the
/// block device of the host's `/`, when it has one), tty0 (c 4:0), console
/// (c 5:1), mem (c 1:1).
pub fn nodes() -> Vec<Node> {
    let mut out: Vec<Node> = vec![
        ("loop0".into(), 'b', 7, 0),
        ("sda".into(), 'b', 8, 0),
        ("tty0".into(), 'c', 4, 0),
        ("console".into(), 'c', 5, 1),
        ("mem".into(), 'c', 1, 1),
    ];
    if let Ok(m) = std::fs::metadata("/") {
        let dev = m.dev();
        let (major, minor) = (libc_major(dev), libc_minor(dev));
        // Major 0 is an anonymous device (overlay, tmpfs): no disk to name.
        if major != 0 {
            out.push(("rootdisk".into(), 'b', major, minor));
        }
    }
    out
}

// glibc's gnu_dev_major/minor encoding.
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// Build the image as a docker-archive tar under `dir` (for `skiff load`).
pub fn archive(dir: &Path) -> PathBuf {
    let source = super::busybox::oci_image(dir, super::busybox::Contents::Full);
    let image = source.trim_start_matches("oci:").to_string();
    let bundle = dir.join("devbundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(&image)
            .arg(&bundle),
    );
    let hostdev = bundle.join("rootfs/hostdev");
    std::fs::create_dir_all(&hostdev).expect("hostdev dir");
    for (name, kind, major, minor) in nodes() {
        run_ok(
            Command::new("mknod")
                .args(["-m", "0666"])
                .arg(hostdev.join(&name))
                .arg(kind.to_string())
                .arg(major.to_string())
                .arg(minor.to_string()),
        );
    }
    run_ok(
        Command::new("umoci")
            .args(["repack", "--image"])
            .arg(&image)
            .arg(&bundle),
    );
    let _ = std::fs::remove_dir_all(&bundle);
    let archive = dir.join("devnodes.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(&source)
            .arg(format!(
                "docker-archive:{}:{IMAGE}:latest",
                archive.display()
            )),
    );
    archive
}
