//! Limits and isolation: memory (OOM recorded), pids, no host processes, no
//! mknod, no rw remount of /proc/sys, no module loading.

#[path = "support/containers.rs"]
mod containers;
mod support;

use containers::Engine;
use support::{stderr, stdout};

#[test]
fn memory_limit_kills_and_records_oom() {
    let e = Engine::new();
    // Holds 100 MB in a shell variable: far past the 32 MiB limit.
    let out = e.err(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 100000000 /dev/zero | tr '\\0' x); echo survived ${#x}",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert!(!stdout(&out).contains("survived"));
    let v = e.inspect("hog");
    assert_eq!(v["State"]["OOMKilled"], true, "{v:#}");
    assert_eq!(v["HostConfig"]["Memory"], 32 << 20);
    e.ok(&["rm", "hog"]);
    e.assert_clean();
}

#[test]
fn pids_limit_contains_a_fork_bomb() {
    let e = Engine::new();
    let id = e.ok(&[
        "run",
        "-d",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        // A subshell forks until the kernel refuses (busybox sh then exits
        // 2); PID 1 itself must not fork after that, or it would exit too
        // and take the cgroup (and its counters) with it: hence `exec`.
        "(i=0; while [ $i -lt 200 ]; do sleep 1000 & i=$((i+1)); done); exec sleep 1000",
    ]);
    let id = id.trim();
    // The kernel refuses forks past the limit and counts them in pids.events.
    let dir = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
        .iter()
        .map(|r| {
            std::path::Path::new(r)
                .join(e.cgroup_parent.trim_start_matches('/'))
                .join(id)
        })
        .find(|p| p.join("pids.max").exists())
        .expect("the container's pids cgroup");
    assert_eq!(
        std::fs::read_to_string(dir.join("pids.max"))
            .unwrap()
            .trim(),
        "20"
    );
    let mut refused = 0;
    for _ in 0..300 {
        let events = std::fs::read_to_string(dir.join("pids.events")).unwrap_or_default();
        refused = events
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if refused > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        refused > 0,
        "the fork bomb never hit the limit; container: {}\nlogs: {}",
        e.inspect(id)["State"],
        support::stdout(&e.skiff(&["logs", id]))
    );
    let current: u32 = std::fs::read_to_string(dir.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 20, "{current} processes under a limit of 20");
    e.ok(&["rm", "-f", id]);
    e.assert_clean();
}

#[test]
fn cannot_see_host_or_escalate() {
    let e = Engine::new();
    // PID namespace: only the container's own processes.
    let ps = e.ok(&["run", "--rm", "busybox", "ps", "-o", "pid"]);
    assert_eq!(ps.lines().count(), 2, "header + ps itself: {ps}");
    // No device creation (no CAP_MKNOD).
    let out = e.err(&[
        "run",
        "--rm",
        "busybox",
        "mknod",
        "/tmp/null2",
        "c",
        "1",
        "3",
    ]);
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    // /proc/sys stays read-only.
    e.err(&[
        "run",
        "--rm",
        "busybox",
        "mount",
        "-o",
        "remount,rw",
        "/proc/sys",
    ]);
    let out = e.err(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo x > /proc/sys/kernel/hostname",
    ]);
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    // No module loading: CAP_SYS_MODULE (16), CAP_SYS_ADMIN (21) and
    // CAP_MKNOD (27) are outside even the bounding set.
    let status = e.ok(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "CapBnd",
        "/proc/self/status",
    ]);
    let hex = status.split_whitespace().last().unwrap();
    let caps = u64::from_str_radix(hex, 16).unwrap();
    for bit in [16, 21, 27] {
        assert_eq!(caps & (1 << bit), 0, "capability {bit} in {hex}");
    }
    e.err(&["run", "--rm", "busybox", "insmod", "/bin/busybox"]);
    // no_new_privs.
    let nnp = e.ok(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert!(nnp.trim().ends_with('1'), "{nnp}");
    // --network none: only lo.
    let links = e.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    // …and it is up, with 127.0.0.1 reachable, as docker's (the container
    // itself cannot raise it: no CAP_NET_ADMIN).
    let lo = e.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ip -o link show lo; ip -o addr show lo; ping -c1 -W2 127.0.0.1 >/dev/null && echo reachable",
    ]);
    assert!(lo.contains("UP"), "{lo}");
    assert!(lo.contains("inet 127.0.0.1/8"), "{lo}");
    assert!(lo.ends_with("reachable\n"), "{lo}");
    // Created and started later, detached, and removed: no pin is left.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "n",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(e
        .ok(&["exec", "n", "ip", "-o", "link", "show", "lo"])
        .contains("UP"));
    e.ok(&["rm", "-f", "n"]);
    e.assert_clean();
}
