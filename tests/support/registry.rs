//! A real registry (Debian's `docker-registry`) on 127.0.0.1 inside a test's
//! own network namespace, and a busybox image built from `busybox-static`
//! with umoci. Everything is torn down by `Drop`: the registry process (by its
//! PID), then the namespace, then the temporary directory.
//!
//! Include with `mod support; #[path = "support/registry.rs"] mod registry;`.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::{run_ok, stderr, TestNet};

pub const REGISTRY_PORT: u16 = 5000;

pub struct Registry {
    // Field order is drop order after `drop`: process first, then netns, then files.
    child: Option<Child>,
    pub net: TestNet,
    pub dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("skiff-registry-")
            .tempdir()
            .expect("temp dir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("storage dir");
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{REGISTRY_PORT}\n",
                storage.display()
            ),
        )
        .expect("registry config");
        let mut reg = Registry {
            child: None,
            net: TestNet::new(),
            dir,
        };
        let log = fs::File::create(reg.dir.path().join("registry.log")).expect("log");
        let log2 = log.try_clone().expect("dup log");
        let child = reg
            .net
            .command("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("spawn docker-registry (is it installed? tests/support/install-image-deps.sh)");
        reg.child = Some(child);
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        for _ in 0..100 {
            let ok = self
                .net
                .command("curl")
                .args(["-sf", "-o", "/dev/null"])
                .arg(format!("http://127.0.0.1:{REGISTRY_PORT}/v2/"))
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("registry did not come up; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{REGISTRY_PORT}")
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Path of a blob's data file in the registry's filesystem storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// `skopeo copy` (inside the namespace) from `src` to `docker://<registry>/<dest>`.
    pub fn skopeo_copy(&self, src: &str, dest: &str) -> Output {
        run_ok(
            self.net
                .command("skopeo")
                .args(["copy", "--quiet", "--dest-tls-verify=false"])
                .arg(src)
                .arg(format!("docker://{}/{dest}", self.host())),
        )
    }

    /// The raw manifest of `name` as the registry serves it.
    pub fn raw_manifest(&self, name: &str) -> serde_json::Value {
        let out = run_ok(
            self.net
                .command("skopeo")
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{}/{name}", self.host())),
        );
        serde_json::from_slice(&out.stdout).expect("manifest JSON")
    }

    pub fn manifest_digest(&self, name: &str) -> String {
        let out = run_ok(
            self.net
                .command("skopeo")
                .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
                .arg(format!("docker://{}/{name}", self.host())),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- registry log ---\n{}", self.log());
        }
    }
}

/// Build an OCI layout at `<dir>/oci` holding `busybox:latest`: busybox-static
/// with a few applet symlinks, made with umoci. Returns the `oci:` source.
pub fn build_busybox_image(dir: &Path) -> String {
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
    fs::copy(busybox_static(), bin.join("busybox")).expect("copy busybox");
    for applet in ["sh", "ls", "cat", "echo", "sleep"] {
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
    format!("oci:{image}")
}

/// Debian's busybox-static puts a static busybox at /bin/busybox.
fn busybox_static() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox-static is not installed (tests/support/install-image-deps.sh)");
}

/// Run the skiff binary inside `net` with `--root root`.
pub fn skiff(net: &TestNet, root: &Path, args: &[&str]) -> Output {
    net.command(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run skiff")
}

pub fn skiff_ok(net: &TestNet, root: &Path, args: &[&str]) -> String {
    let out = skiff(net, root, args);
    assert!(
        out.status.success(),
        "skiff {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files under `dir` (not recursing), for "nothing left behind" checks.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
