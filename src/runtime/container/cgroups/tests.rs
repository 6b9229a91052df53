//! Real cgroups on this kernel (each test under its own `skiff-test-<pid>-…`
//! parent, removed by a Drop guard even when the test fails), plus the pure
//! v2 layout on a fake sysfs directory, because a pure v2 host cannot be
//! produced on a hybrid machine.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::*;

/// A test-only cgroup parent with leaves in every hierarchy and the child
/// processes put into them; Drop kills those children (by their own PIDs)
/// and removes the leaves and the parent.
struct TestTree {
    h: Hierarchies,
    parent: String,
    leaves: Vec<String>,
    children: Vec<Child>,
}

impl TestTree {
    fn new(tag: &str) -> Self {
        let tree = Self {
            h: Hierarchies::detect().expect("cgroups are mounted"),
            parent: format!("skiff-test-{}-{tag}", std::process::id()),
            leaves: Vec::new(),
            children: Vec::new(),
        };
        for h in tree.h.list() {
            let dir = Hierarchies::dir(h, &tree.parent);
            std::fs::create_dir_all(&dir).expect("create test parent");
            tree.prepare(h, &dir);
        }
        tree
    }

    /// A new cpuset cgroup has no CPUs or memory nodes, which refuses
    /// processes; on pure v2 the parent must pass the controllers down.
    fn prepare(&self, h: &Hierarchy, dir: &Path) {
        match &h.kind {
            Kind::V1 { controllers, .. } if controllers.iter().any(|c| c == "cpuset") => {
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let value = std::fs::read_to_string(h.mountpoint.join(file)).expect(file);
                    std::fs::write(dir.join(file), value.trim()).expect(file);
                }
            }
            Kind::V2 if self.h.mode() == CgroupMode::Unified => {
                for d in [h.mountpoint.as_path(), dir] {
                    // Best effort: the root may delegate them already.
                    let _ = std::fs::write(d.join("cgroup.subtree_control"), "+memory +pids +cpu");
                }
            }
            _ => {}
        }
    }

    fn leaf(&mut self, name: &str) -> String {
        let path = cgroups_path(&self.parent, name);
        for h in self.h.list() {
            let dir = Hierarchies::dir(h, &path);
            std::fs::create_dir(&dir).expect("create test leaf");
            if matches!(&h.kind, Kind::V1 { controllers, .. } if controllers.iter().any(|c| c == "cpuset"))
            {
                self.prepare(h, &dir);
            }
        }
        self.leaves.push(path.clone());
        path
    }

    /// Start `sh -c 'read line; exec …'`, move it into `path` in every
    /// hierarchy, then let it exec, so everything the command allocates is
    /// charged to the test cgroup. Returns the index into `children`.
    fn spawn_in(&mut self, path: &str, exec: &str) -> usize {
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("read line; exec {exec}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let pid = child.id().to_string();
        self.children.push(child);
        for h in self.h.list() {
            let procs = Hierarchies::dir(h, path).join("cgroup.procs");
            std::fs::write(&procs, &pid).unwrap_or_else(|e| panic!("{}: {e}", procs.display()));
        }
        let child = self.children.last_mut().expect("just pushed");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(b"go\n").expect("release the child");
        self.children.len() - 1
    }

    fn set(&self, controller: &str, path: &str, file: &str, value: &str) {
        let h = self.h.controller(controller).expect("controller mounted");
        let f = Hierarchies::dir(h, path).join(file);
        std::fs::write(&f, value).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }

    fn file_exists(&self, controller: &str, path: &str, file: &str) -> bool {
        self.h
            .controller(controller)
            .is_some_and(|h| Hierarchies::dir(h, path).join(file).exists())
    }

    fn any_dir_exists(&self, path: &str) -> bool {
        self.h
            .list()
            .iter()
            .any(|h| Hierarchies::dir(h, path).exists())
    }

    /// Wait for a child to have exec'd `comm` (a readiness wait, bounded so a
    /// broken child fails the test instead of hanging it).
    fn wait_exec(&self, i: usize, comm: &str) {
        let pid = self.children[i].id();
        for _ in 0..3000 {
            let now = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if now.trim() == comm {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("child {pid} never became {comm}");
    }
}

impl Drop for TestTree {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for h in self.h.list() {
            for leaf in &self.leaves {
                let _ = std::fs::remove_dir(Hierarchies::dir(h, leaf));
            }
            let _ = std::fs::remove_dir(Hierarchies::dir(h, &self.parent));
        }
    }
}

#[test]
fn detect_agrees_with_the_filesystem_types() {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    let is_cgroup2 = |p: &str| statfs(p).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
    let expected = if is_cgroup2("/sys/fs/cgroup") {
        CgroupMode::Unified
    } else if is_cgroup2("/sys/fs/cgroup/unified") {
        CgroupMode::Hybrid
    } else {
        CgroupMode::Legacy
    };
    assert_eq!(detect().expect("detect"), expected);
}

#[test]
fn cgroups_path_and_validation() {
    assert_eq!(default_parent(), "skiff");
    assert_eq!(cgroups_path(default_parent(), "abc"), "/skiff/abc");
    assert_eq!(cgroups_path("/a/b/", "abc"), "/a/b/abc");
    assert_eq!(cgroups_path("", "abc"), "/abc");
    validate_path("/skiff/abc").expect("valid");
    validate_path("skiff").expect("valid");
    for bad in ["", "/", "../x", "skiff/../..", "a//b", "a/./b"] {
        assert!(
            matches!(validate_path(bad), Err(CgroupError::InvalidPath(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn stats_read_a_real_cgroup_and_remove_cleans_every_hierarchy() {
    let mut t = TestTree::new("stats");
    let path = t.leaf("c1");
    let v2 = t.h.mode() == CgroupMode::Unified;
    let (mem_file, pids_file) = if v2 {
        ("memory.max", "pids.max")
    } else {
        ("memory.limit_in_bytes", "pids.max")
    };
    t.set("memory", &path, mem_file, "67108864");
    t.set("pids", &path, pids_file, "10");
    let before = stats(&path).expect("stats of an empty cgroup");
    assert_eq!(before.pids_current, 0);

    let i = t.spawn_in(&path, "sleep 1000");
    t.wait_exec(i, "sleep");
    let s = stats(&path).expect("stats");
    assert!(s.memory_usage_bytes > 0, "{s:?}");
    assert_eq!(s.memory_limit_bytes, Some(64 << 20));
    assert_eq!(s.pids_limit, Some(10));
    assert!(s.pids_current >= 1, "{s:?}");
    assert!(s.cpu_usage_nanos > 0, "{s:?}");
    assert_eq!(s.oom_kills, 0);
    if let Some(max) = s.memory_max_usage_bytes {
        assert!(max >= s.memory_usage_bytes, "{s:?}");
    }
    assert!(!oom_killed(&path).expect("oom_killed"));

    // A cgroup with a process in it stays.
    assert!(matches!(remove(&path), Err(CgroupError::Busy(_))));
    assert!(t.any_dir_exists(&path));

    let mut child = t.children.remove(i);
    child.kill().expect("kill our sleep");
    child.wait().expect("reap our sleep");
    remove(&path).expect("remove the emptied cgroup");
    assert!(!t.any_dir_exists(&path), "a leaf is left in some hierarchy");
    remove(&path).expect("removing again is fine");
    assert!(matches!(stats(&path), Err(CgroupError::NotFound(_))));
}

#[test]
fn unlimited_reads_as_none() {
    let mut t = TestTree::new("unlimited");
    let path = t.leaf("c1");
    let s = stats(&path).expect("stats");
    assert_eq!(s.memory_limit_bytes, None, "{s:?}");
    assert_eq!(s.pids_limit, None, "{s:?}");
}

#[test]
fn oom_kill_is_recorded() {
    let mut t = TestTree::new("oom");
    let path = t.leaf("c1");
    let v2 = t.h.mode() == CgroupMode::Unified;
    if v2 {
        t.set("memory", &path, "memory.max", "16777216");
        t.set("memory", &path, "memory.swap.max", "0");
    } else {
        t.set("memory", &path, "memory.limit_in_bytes", "16777216");
        // Where swap is accounted, forbid it too so the allocation cannot
        // escape the limit into swap.
        if t.file_exists("memory", &path, "memory.memsw.limit_in_bytes") {
            t.set("memory", &path, "memory.memsw.limit_in_bytes", "16777216");
        }
    }
    assert!(!oom_killed(&path).expect("oom_killed before"));
    // dd fills one 64 MiB buffer from /dev/zero: four times the limit.
    let i = t.spawn_in(&path, "dd if=/dev/zero of=/dev/null bs=64M count=1");
    let status = t.children[i].wait().expect("wait for dd");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(oom_killed(&path).expect("oom_killed after"));
    assert!(stats(&path).expect("stats").oom_kills >= 1);
}

#[test]
fn stale_lists_only_leaves_without_processes() {
    let mut t = TestTree::new("stale");
    let busy = t.leaf("busy");
    let idle = t.leaf("idle");
    let parent = t.parent.clone();
    let i = t.spawn_in(&busy, "sleep 1000");
    assert_eq!(stale(&parent).expect("stale"), vec![idle.clone()]);

    let mut child = t.children.remove(i);
    child.kill().expect("kill our sleep");
    child.wait().expect("reap our sleep");
    assert_eq!(
        stale(&parent).expect("stale"),
        vec![busy.clone(), idle.clone()]
    );
    for p in [&busy, &idle] {
        remove(p).expect("remove");
    }
    assert!(stale(&parent).expect("stale").is_empty());
    assert!(stale("skiff-test-no-such-parent")
        .expect("stale")
        .is_empty());
}

/// Pure cgroup v2 on a FAKE sysfs directory: this host is hybrid and a
/// pure v2 layout cannot be produced on it, so the v2 file formats are
/// checked on plain files laid out as the kernel lays them out.
#[test]
fn fake_unified_sysfs_v2_formats() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let mountinfo = format!(
        "30 23 0:27 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        root.display()
    );
    let h = Hierarchies::from_mountinfo(&mountinfo).expect("parse");
    assert_eq!(h.mode(), CgroupMode::Unified);
    let leaf = root.join("skiff/c1");
    std::fs::create_dir_all(&leaf).expect("mkdir");
    for (file, content) in [
        ("memory.current", "1048576\n"),
        ("memory.max", "33554432\n"),
        ("memory.peak", "2097152\n"),
        (
            "memory.events",
            "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n",
        ),
        (
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        ),
        ("pids.current", "3\n"),
        ("pids.max", "max\n"),
        ("cgroup.procs", "123\n"),
        (
            "memory.stat",
            "anon 4096\nfile 8192\ninactive_file 4096\nactive_file 4096\n",
        ),
    ] {
        std::fs::write(leaf.join(file), content).expect("write");
    }
    let s = h.stats("/skiff/c1").expect("stats");
    assert_eq!(
        s,
        Stats {
            memory_usage_bytes: 1 << 20,
            memory_limit_bytes: Some(32 << 20),
            memory_max_usage_bytes: Some(2 << 20),
            memory_inactive_file_bytes: 4096,
            cpu_usage_nanos: 1_500_000,
            pids_current: 3,
            pids_limit: None,
            oom_kills: 1,
        }
    );
    assert!(h.oom_killed("/skiff/c1").expect("oom"));

    // An idle leaf without memory.peak (before Linux 5.19).
    let idle = root.join("skiff/c2");
    std::fs::create_dir_all(&idle).expect("mkdir");
    std::fs::write(idle.join("cgroup.procs"), "").expect("write");
    std::fs::write(idle.join("memory.max"), "max\n").expect("write");
    let s = h.stats("/skiff/c2").expect("stats");
    assert_eq!(s.memory_max_usage_bytes, None);
    assert_eq!(s.memory_limit_bytes, None);
    assert_eq!(
        h.stale("skiff").expect("stale"),
        vec!["/skiff/c2".to_string()]
    );

    std::fs::write(leaf.join("memory.current"), "lots\n").expect("write");
    assert!(matches!(
        h.stats("/skiff/c1"),
        Err(CgroupError::Parse { .. })
    ));
    // Plain directories stand in for cgroups: one with files is "busy".
    assert!(matches!(h.remove("/skiff/c1"), Err(CgroupError::Busy(_))));
    let empty = root.join("skiff/c3");
    std::fs::create_dir(&empty).expect("mkdir");
    h.remove("/skiff/c3").expect("remove");
    assert!(!empty.exists());
    h.remove("/skiff/c3").expect("gone already is fine");

    // Cgroups a container made below its leaf go first, deepest first.
    let nested = root.join("skiff/c4/made/deeper");
    std::fs::create_dir_all(&nested).expect("mkdir");
    std::fs::create_dir_all(root.join("skiff/c4/other")).expect("mkdir");
    h.remove("/skiff/c4").expect("remove with children");
    assert!(!root.join("skiff/c4").exists());
}

#[test]
fn legacy_layout_reads_controllers_from_v1() {
    let text = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    let h = Hierarchies::from_mountinfo(text).expect("parse");
    assert_eq!(h.mode(), CgroupMode::Legacy);
    assert!(h.controller("memory").is_some());
    assert!(h.controller("pids").is_none());
    assert!(matches!(
        Hierarchies::from_mountinfo("20 1 8:1 / / rw - ext4 /dev/sda1 rw\n"),
        Err(CgroupError::NotMounted)
    ));
}

#[test]
fn an_unreadable_mount_table_fails_instead_of_leaving_v1_writable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("mountinfo");
    match container_mounts_from(&missing) {
        Err(CgroupError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an Io error naming {missing:?}, got {other:?}"),
    }
    // The real table still gives at least /sys/fs/cgroup.
    let real = container_mounts().unwrap();
    assert_eq!(real.first().map(String::as_str), Some(CGROUP_ROOT));
}
