//! Container test harness: a temporary `--root`/`--run-dir` with a busybox
//! image (every applet, an /etc/passwd and /etc/group) built from Debian's
//! busybox-static with umoci and loaded with `skopeo copy … docker-archive:`
//! + `skiff load` (no registry needed), and a cgroup parent of its own.
//!
//! Drop removes every container the test left (`rm -f`, which kills them
//! through their shims), unmounts anything still mounted under the root,
//! removes the test's cgroup parent and the temporary directory.
//!
//! Include with `mod support; #[path = "support/containers.rs"] mod containers;`.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::{run_ok, stderr, stdout, TestNet};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub const IMAGE: &str = "busybox";

/// The v1 hierarchies libcontainer uses, and the v2 root.
const CGROUP_ROOTS: &[&str] = &[
    "/sys/fs/cgroup/memory",
    "/sys/fs/cgroup/pids",
    "/sys/fs/cgroup/cpu,cpuacct",
    "/sys/fs/cgroup/cpu",
    "/sys/fs/cgroup/cpuacct",
    "/sys/fs/cgroup/cpuset",
    "/sys/fs/cgroup/devices",
    "/sys/fs/cgroup/freezer",
    "/sys/fs/cgroup/blkio",
    "/sys/fs/cgroup/net_cls,net_prio",
    "/sys/fs/cgroup/net_cls",
    "/sys/fs/cgroup/net_prio",
    "/sys/fs/cgroup/perf_event",
    "/sys/fs/cgroup/hugetlb",
    "/sys/fs/cgroup/rdma",
    "/sys/fs/cgroup/misc",
    "/sys/fs/cgroup/systemd",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
];

/// Every engine runs in a network namespace of its own (`nsenter --net`,
/// which keeps the host's mounts, unlike `ip netns exec`): the default
/// bridge network then builds its bridge, veths and rules there, never on
/// the host.
pub struct Engine {
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
    pub net: TestNet,
}

impl Engine {
    /// A fresh root with the busybox image loaded.
    pub fn new() -> Engine {
        let dir = tempfile::Builder::new()
            .prefix("skiff-ctr-")
            .tempdir()
            .expect("temp dir");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let engine = Engine {
            dir,
            cgroup_parent: format!("/skiff-test-{}-{n}", std::process::id()),
            net: TestNet::new(),
        };
        let archive = build_busybox_archive(engine.dir.path());
        engine.ok(&["load", "-i", archive.to_str().expect("utf-8 path")]);
        engine
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// `skiff --root … --run-dir … ARGS` (with `run` given this test's cgroup parent).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.in_net(env!("CARGO_BIN_EXE_skiff"));
        cmd.arg("--root")
            .arg(self.root())
            .arg("--run-dir")
            .arg(self.run_dir());
        if args.first() == Some(&"run") {
            cmd.arg("run")
                .args(["--cgroup-parent", &self.cgroup_parent])
                .args(&args[1..]);
        } else {
            cmd.args(args);
        }
        cmd.env("RUST_BACKTRACE", "1").stdin(Stdio::null());
        cmd
    }

    /// `program` inside this engine's network namespace.
    pub fn in_net(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.net.name()))
            .arg("--")
            .arg(program);
        cmd
    }

    pub fn skiff(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run skiff")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.skiff(args);
        assert!(
            out.status.success(),
            "skiff {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Run and require failure; returns the output.
    pub fn err(&self, args: &[&str]) -> Output {
        let out = self.skiff(args);
        assert!(
            !out.status.success(),
            "skiff {args:?} succeeded but should fail\nstdout:\n{}\nstderr:\n{}",
            stdout(&out),
            stderr(&out)
        );
        out
    }

    /// `inspect` of one container as JSON.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["inspect", name])).expect("inspect JSON");
        v[0].clone()
    }

    /// Poll until `pred` holds on the container's inspect output (bounded;
    /// a limit on waiting, not an assertion on time).
    pub fn wait_for(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..300 {
            let v = self.inspect(name);
            if pred(&v) {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "container {name} never reached {what}: {:#}",
            self.inspect(name)
        );
    }

    /// Mount points under this test's directory.
    pub fn mounts(&self) -> Vec<String> {
        let base = self.dir.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|m| m.starts_with(&base))
            .collect()
    }

    /// Cgroup directories below this test's parent, in any hierarchy.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for root in CGROUP_ROOTS {
            let parent = Path::new(root).join(self.cgroup_parent.trim_start_matches('/'));
            if let Ok(rd) = fs::read_dir(&parent) {
                found.extend(
                    rd.filter_map(|e| e.ok())
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.path()),
                );
            }
        }
        found
    }

    /// Shim processes whose command line names this test's root.
    pub fn shims(&self) -> Vec<u32> {
        let root = self.root().to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args.get(1).map(String::as_str) == Some("shim") && args.contains(&root) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Container directories and run directories left on disk.
    pub fn container_dirs(&self) -> Vec<String> {
        let mut v = Vec::new();
        for d in [
            self.root().join("containers"),
            self.run_dir().join("containers"),
            self.run_dir().join("runtime"),
        ] {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() {
                    v.push(format!("{}/{name}", d.display()));
                }
            }
        }
        v
    }

    /// Assert that no container left anything behind.
    pub fn assert_clean(&self) {
        assert_eq!(self.mounts(), Vec::<String>::new(), "stray mounts");
        assert_eq!(self.cgroups(), Vec::<PathBuf>::new(), "stray cgroups");
        // A shim exits right after sending the exit status: give it a moment.
        for _ in 0..100 {
            if self.shims().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(self.shims(), Vec::<u32>::new(), "stray shims");
        assert_eq!(
            self.container_dirs(),
            Vec::<String>::new(),
            "stray state directories"
        );
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(out) = self.command(&["ps", "-aq"]).output() {
            let ids: Vec<String> = stdout(&out).lines().map(String::from).collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self
                    .command(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // Only shims of this test's root, by PID.
        for pid in self.shims() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        for root in CGROUP_ROOTS {
            let parent = Path::new(root).join(self.cgroup_parent.trim_start_matches('/'));
            if let Ok(rd) = fs::read_dir(&parent) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let _ = fs::remove_dir(e.path());
                    }
                }
            }
            let _ = fs::remove_dir(&parent);
        }
    }
}

/// Build the busybox image as a docker-archive tar under `dir`.
pub fn build_busybox_archive(dir: &Path) -> PathBuf {
    let image = crate::support::busybox::oci_image(dir, crate::support::busybox::Contents::Full);
    let archive = dir.join("busybox.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(&image)
            .arg(format!(
                "docker-archive:{}:{IMAGE}:latest",
                archive.display()
            )),
    );
    archive
}
