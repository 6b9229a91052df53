//! The busybox test image, built from Debian's busybox-static with umoci,
//! shared by the image tests (a few applets: small and exact) and the
//! container tests (every applet, /etc/passwd and /etc/group).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run_ok, stdout};

pub enum Contents {
    /// `busybox` with the applets sh, ls, cat, echo and sleep.
    Minimal,
    /// Every applet, /etc/passwd and /etc/group (root, nobody), /tmp.
    Full,
}

/// Debian's busybox-static puts a static busybox at /bin/busybox.
pub fn busybox_static() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox-static is not installed (tests/support/install-image-deps.sh)");
}

/// Build an OCI layout at `<dir>/oci` holding `busybox:latest`; returns the
/// `oci:` source for skopeo.
pub fn oci_image(dir: &Path, contents: Contents) -> String {
    let layout = dir.join("oci");
    let bundle = dir.join("bundle");
    let image = format!("{}:latest", layout.display());
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout),
    );
    run_ok(Command::new("umoci").args(["new", "--image"]).arg(&image));
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(&image)
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).expect("bin dir");
    let busybox = busybox_static();
    fs::copy(&busybox, bin.join("busybox")).expect("copy busybox");
    let applets: Vec<String> = match contents {
        Contents::Minimal => ["sh", "ls", "cat", "echo", "sleep"]
            .map(String::from)
            .to_vec(),
        Contents::Full => {
            fs::create_dir_all(rootfs.join("etc")).expect("etc dir");
            fs::create_dir_all(rootfs.join("tmp")).expect("tmp dir");
            fs::write(
                rootfs.join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            )
            .expect("passwd");
            fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
            let list = run_ok(Command::new(&busybox).arg("--list"));
            stdout(&list)
                .lines()
                .filter(|a| *a != "busybox")
                .map(String::from)
                .collect()
        }
    };
    for applet in applets {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet symlink");
    }
    run_ok(
        Command::new("umoci")
            .args(["repack", "--image"])
            .arg(&image)
            .arg(&bundle),
    );
    run_ok(
        Command::new("umoci")
            .args(["config", "--image"])
            .arg(&image)
            .args([
                "--config.cmd",
                "sh",
                "--os",
                "linux",
                "--architecture",
                "amd64",
            ]),
    );
    // umoci keeps root-owned files; the bundle is not needed any more.
    let _ = fs::remove_dir_all(&bundle);
    format!("oci:{image}")
}
