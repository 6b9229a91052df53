//! Confinement a hostile image or container must not get out of (issue 10):
//! device nodes shipped in an image cannot be opened (the device cgroup on
//! v1, the eBPF device filter on v2), `--device` and `--privileged` are the
//! only ways to widen that, and a container cannot rewrite its own cgroup
//! limits; cgroups made inside a container go with it.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use containers::Engine;
use support::{device_image, stderr, stdout};

/// Try to open every image node for reading and for writing; one line per
/// attempt: `NAME MODE: opened` or `NAME MODE: <the shell's error>`.
fn probe_script(names: &[String]) -> String {
    let names = names.join(" ");
    format!(
        "for n in {names}; do \
           if (exec 3</hostdev/$n) 2>/tmp/e; then echo \"$n r: opened\"; else echo \"$n r: $(cat /tmp/e)\"; fi; \
           if (exec 3>>/hostdev/$n) 2>/tmp/e; then echo \"$n w: opened\"; else echo \"$n w: $(cat /tmp/e)\"; fi; \
         done; \
         echo x >/dev/null && head -c 4 /dev/urandom | wc -c && head -c 3 /dev/zero | wc -c && echo usual-ok"
    )
}

fn load_device_image(e: &Engine) {
    let archive = device_image::archive(&e.dir.path().join("devimg"));
    e.ok(&["load", "-i", archive.to_str().expect("utf-8 path")]);
}

fn names() -> Vec<String> {
    device_image::nodes().into_iter().map(|n| n.0).collect()
}

/// Every open of every node failed with EPERM, and the usual devices work.
fn assert_all_denied(out: &str) {
    let names = names();
    for n in &names {
        for mode in ["r", "w"] {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{n} {mode}:")))
                .unwrap_or_else(|| panic!("no result for {n} {mode} in:\n{out}"));
            assert!(
                line.contains("Operation not permitted"),
                "{n} opened for {mode} or failed otherwise: {line}\n{out}"
            );
        }
    }
    assert!(out.contains("usual-ok"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.trim() == "4" || l.trim() == "3")
            .count(),
        2,
        "/dev/urandom and /dev/zero: {out}"
    );
}

#[test]
fn device_nodes_from_an_image_cannot_be_opened() {
    let e = Engine::new();
    load_device_image(&e);
    let out = e.skiff(&[
        "run",
        "--rm",
        device_image::IMAGE,
        "sh",
        "-c",
        &probe_script(&names()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_all_denied(&stdout(&out));
    e.assert_clean();
}

#[test]
fn device_flag_is_the_way_to_widen() {
    let e = Engine::new();
    load_device_image(&e);
    // The host's /dev/loop0, read-only: the image's node of the same
    // device opens for reading too, nothing opens for writing.
    let out = e.skiff(&[
        "run",
        "--rm",
        "--device",
        "/dev/loop0:/dev/xloop:r",
        device_image::IMAGE,
        "sh",
        "-c",
        "[ -b /dev/xloop ] && echo node-made; \
         (exec 3</dev/xloop) && echo read-ok; \
         (exec 3</hostdev/loop0) && echo image-read-ok; \
         (exec 3>>/dev/xloop) 2>&1; \
         (exec 3</hostdev/sda) 2>&1; true",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    for want in ["node-made", "read-ok", "image-read-ok"] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert_eq!(
        text.matches("Operation not permitted").count(),
        2,
        "writing the read-only device and opening another one must fail:\n{text}"
    );
    // A path that is not a device is refused before anything is made.
    let out = e.err(&[
        "run",
        "--rm",
        "--device",
        "/etc/hostname",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&out).contains("not a character or block device"),
        "{}",
        stderr(&out)
    );
    e.assert_clean();
}

#[test]
fn privileged_opens_everything() {
    let e = Engine::new();
    load_device_image(&e);
    let out = e.skiff(&[
        "run",
        "--rm",
        "--privileged",
        device_image::IMAGE,
        "sh",
        "-c",
        "(exec 3</hostdev/loop0) && echo loop-read-ok; [ -b /dev/loop0 ] && echo host-devices",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("loop-read-ok"), "{}", stdout(&out));
    // As Docker, the host's device nodes are in its /dev.
    assert!(stdout(&out).contains("host-devices"), "{}", stdout(&out));
    e.assert_clean();
}

/// The host directory of the container's cgroup in the hierarchy mounted
/// at `root`, found by its control file.
fn host_cgroup(e: &Engine, id: &str, file: &str) -> PathBuf {
    let parent = e.cgroup_parent.trim_start_matches('/');
    std::fs::read_dir("/sys/fs/cgroup")
        .expect("/sys/fs/cgroup")
        .flatten()
        .map(|d| d.path().join(parent).join(id))
        .find(|p| p.join(file).exists())
        .unwrap_or_else(|| panic!("no cgroup of {id} has {file}"))
}

#[test]
fn a_container_cannot_rewrite_its_cgroup_limits() {
    let e = Engine::new();
    let id = e.ok(&[
        "run",
        "-d",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "busybox",
        "sleep",
        "1000",
    ]);
    let id = id.trim();
    let files = [
        ("memory.limit_in_bytes", "999999999"),
        ("pids.max", "max"),
        ("cpu.cfs_quota_us", "-1"),
    ];
    let before: Vec<String> = files
        .iter()
        .map(|(f, _)| std::fs::read_to_string(host_cgroup(&e, id, f).join(f)).expect("read"))
        .collect();
    // Every place the file appears in the container's cgroupfs.
    let mut script = String::new();
    for (f, v) in files {
        script.push_str(&format!(
            "for p in $(find /sys/fs/cgroup/ -name {f}); do echo {v} > $p && echo \"WROTE $p\"; done; "
        ));
    }
    script.push_str(
        "for d in /sys/fs/cgroup/*/; do mkdir ${d}escape 2>/dev/null && echo \"MADE ${d}escape\"; done; \
         touch /sys/fs/cgroup/file 2>/dev/null && echo MADE-FILE; \
         cat /proc/self/cgroup; echo found $(find /sys/fs/cgroup/ -name memory.limit_in_bytes | wc -l)",
    );
    let out = e.skiff(&["exec", id, "sh", "-c", &script]);
    let text = stdout(&out);
    assert!(!text.contains("WROTE"), "a limit was rewritten:\n{text}");
    assert!(!text.contains("MADE"), "the cgroupfs is writable:\n{text}");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    // Its cgroup namespace shows its own cgroup as the root, and only that.
    for line in text.lines().filter(|l| l.contains(":/")) {
        assert!(
            line.ends_with(":/"),
            "a host cgroup path is visible: {line}"
        );
    }
    assert!(
        text.contains("found 1"),
        "other memory cgroups are visible:\n{text}"
    );
    let after: Vec<String> = files
        .iter()
        .map(|(f, _)| std::fs::read_to_string(host_cgroup(&e, id, f).join(f)).expect("read"))
        .collect();
    assert_eq!(before, after);
    e.ok(&["rm", "-f", id]);
    e.assert_clean();
}

/// Should the test fail, what the container nested must not outlive it
/// (the engine's clean-up removes one level below the test's parent).
struct RemoveNested(Vec<PathBuf>);

impl Drop for RemoveNested {
    fn drop(&mut self) {
        fn rmdir_all(p: &Path) {
            if let Ok(d) = std::fs::read_dir(p) {
                for e in d.flatten().filter(|e| e.path().is_dir()) {
                    rmdir_all(&e.path());
                }
            }
            let _ = std::fs::remove_dir(p);
        }
        for p in &self.0 {
            rmdir_all(p);
        }
    }
}

#[test]
fn cgroups_made_in_a_container_go_with_it() {
    let e = Engine::new();
    // --privileged keeps the cgroupfs writable (as Docker): the container
    // nests cgroups of its own, which `rm -f` must not leave behind.
    let id = e.ok(&[
        "run",
        "-d",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /sys/fs/cgroup/memory/made/deeper /sys/fs/cgroup/pids/made && sleep 1000",
    ]);
    let id = id.trim().to_string();
    let leaf = host_cgroup(&e, &id, "memory.limit_in_bytes");
    let _cleanup = RemoveNested(vec![
        leaf.join("made"),
        host_cgroup(&e, &id, "pids.max").join("made"),
    ]);
    let made = leaf.join("made/deeper");
    for _ in 0..300 {
        if made.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(made.exists(), "the container made no cgroup at {made:?}");
    e.ok(&["rm", "-f", &id]);
    assert!(!made.exists(), "{made:?} survived rm -f");
    e.assert_clean();
}

/// The same after a killed shim: the next command reconciles the record
/// (lifecycle::release), which must take the nested cgroups too.
#[test]
fn cgroups_made_in_a_container_go_when_its_shim_was_killed() {
    let e = Engine::new();
    let id = e.ok(&[
        "run",
        "-d",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /sys/fs/cgroup/memory/made/deeper && sleep 1000",
    ]);
    let id = id.trim().to_string();
    let leaf = host_cgroup(&e, &id, "memory.limit_in_bytes");
    let _cleanup = RemoveNested(vec![leaf.join("made")]);
    let made = leaf.join("made/deeper");
    for _ in 0..300 {
        if made.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(made.exists(), "the container made no cgroup at {made:?}");
    // The test started this shim (through skiff run); kill it by its PID.
    let shim = e
        .shims()
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&id))
        })
        .expect("the container's shim");
    let status = Command::new("kill")
        .args(["-9", &shim.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    for _ in 0..300 {
        let gone = std::fs::read_to_string(format!("/proc/{shim}/stat"))
            .ok()
            .is_none_or(|s| s.contains(") Z "));
        if gone {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ps = e.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (255)"), "{ps}");
    assert!(!made.exists(), "{made:?} survived the reconcile");
    e.ok(&["rm", &id]);
    e.assert_clean();
}

/// The cgroup v2 device filter, for real on this (v1) host: in a mount
/// namespace of its own, the test unmounts the v1 hierarchies and mounts
/// the cgroup2 hierarchy at /sys/fs/cgroup, so skiff (and libcontainer) see
/// a pure v2 host and attach the eBPF filter to the container's cgroup.
#[test]
fn device_nodes_are_denied_on_cgroup_v2() {
    let e = Engine::new();
    load_device_image(&e);
    let skiff = env!("CARGO_BIN_EXE_skiff");
    let root = e.root();
    let run_dir = e.run_dir();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && \
             exec nsenter --net=/run/netns/\"$0\" -- \"$@\"",
        )
        .arg(e.net.name())
        .arg(skiff)
        .arg("--root")
        .arg(&root)
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["run", "--cgroup-parent", &e.cgroup_parent, "--rm"])
        .args(["--network", "none", device_image::IMAGE, "sh", "-c"])
        .arg(
            probe_script(&names())
                + "; [ -e /sys/fs/cgroup/cgroup.controllers ] && echo on-cgroup2",
        );
    let out = cmd.output().expect("unshare");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("on-cgroup2"), "not on v2:\n{text}");
    assert_all_denied(&text);
    let parent = Path::new("/sys/fs/cgroup/unified").join(e.cgroup_parent.trim_start_matches('/'));
    let left: Vec<PathBuf> = std::fs::read_dir(&parent)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "the container's v2 cgroup was left behind: {left:?}"
    );
}
