//! `skiff check-config` on this machine, and on a tree simulating kernels
//! that lack something (a missing kernel feature cannot be produced for
//! real on the test machine: SIMULATED, the tree stands in for /proc,
//! /sys and the kernel configuration).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::stdout;

fn check_config(root: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.arg("check-config");
    if let Some(root) = root {
        cmd.arg("--host-root").arg(root);
    }
    cmd.output().expect("run skiff check-config")
}

#[test]
fn this_machine_has_what_skiff_needs() {
    let out = check_config(None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for name in [
        "namespaces",
        "cgroup controllers",
        "overlayfs",
        "nftables with NAT",
        "conntrack",
        "IPv4 forwarding",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("pass") && l.contains(name)),
            "{name}: {text}"
        );
    }
}

/// SIMULATED: a Raspberry-Pi-like kernel, memory cgroup off and no VXLAN.
#[test]
fn a_missing_feature_is_named_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |p: &str, text: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let mut config: String = [
        "NAMESPACES",
        "NET_NS",
        "PID_NS",
        "IPC_NS",
        "UTS_NS",
        "OVERLAY_FS",
        "SECCOMP",
        "SECCOMP_FILTER",
        "BRIDGE",
        "VETH",
        "NF_TABLES",
        "NFT_NAT",
        "NFT_MASQ",
        "NFT_CT",
        "NF_NAT",
        "NF_CONNTRACK",
        "BRIDGE_NETFILTER",
        "NFT_NUMGEN",
        "NFT_FIB_IPV4",
        "CFS_BANDWIDTH",
    ]
    .iter()
    .map(|k| format!("CONFIG_{k}=y\n"))
    .collect();
    config.push_str("# CONFIG_VXLAN is not set\n");
    write("config", &config);
    write(
        "proc/cgroups",
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t0\t1\t0\npids\t3\t1\t1\n",
    );
    write("proc/sys/net/ipv4/ip_forward", "1\n");
    let out = check_config(Some(root));
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("FAIL  cgroup controllers") && text.contains("not enabled: memory"),
        "{text}"
    );
    assert!(
        text.contains("fix: add `cgroup_memory=1 cgroup_enable=memory` to the kernel command line"),
        "{text}"
    );
    assert!(
        text.contains("warn  vxlan") && text.contains("CONFIG_VXLAN"),
        "{text}"
    );
    assert!(text.contains("1 required check(s) failed"), "{text}");
    // The memory controller on: only the warning is left.
    write(
        "proc/cgroups",
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t4\t1\t1\npids\t3\t1\t1\n",
    );
    let out = check_config(Some(root));
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 recommended check(s) failed"),
        "{}",
        stdout(&out)
    );
}

/// SIMULATED: no kernel configuration to read (many distributions ship
/// none): features are found in the modules the kernel can load
/// (modules.builtin, modules.dep), loaded or not, and a missing one is
/// named.
#[test]
fn without_a_kernel_configuration_the_modules_are_asked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |p: &str, text: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    for ns in ["net", "pid", "ipc", "uts", "mnt"] {
        write(&format!("proc/self/ns/{ns}"), "");
    }
    write("proc/self/status", "Seccomp:\t0\nSeccomp_filters:\t0\n");
    write("proc/filesystems", "nodev\toverlay\n");
    write("proc/sys/net/netfilter/nf_conntrack_max", "65536\n");
    write("proc/sys/net/ipv4/ip_forward", "1\n");
    write("proc/sys/net/bridge/bridge-nf-call-iptables", "1\n");
    write("sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n");
    write("sys/fs/cgroup/init.scope/cpu.max", "max 100000\n");
    write("modules/modules.builtin", "kernel/drivers/net/veth.ko\n");
    let dep = "kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko\n\
               kernel/drivers/net/vxlan/vxlan.ko.zst: kernel/net/ipv4/udp_tunnel.ko.zst\n\
               kernel/net/netfilter/nf_tables.ko.zst:\n\
               kernel/net/netfilter/nf_nat.ko.zst:\n\
               kernel/net/ipv4/netfilter/nft_fib_ipv4.ko.zst:\n";
    write("modules/modules.dep", dep);
    let out = check_config(Some(root));
    let text = stdout(&out);
    // Everything but numgen, which this kernel lacks.
    assert!(!out.status.success(), "{text}");
    for name in ["bridge and veth", "vxlan", "seccomp", "CPU limits"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("pass") && l.contains(name)),
            "{name}: {text}"
        );
    }
    assert!(text.contains("FAIL  nftables with NAT"), "{text}");
    assert!(text.contains("CONFIG_NFT_NUMGEN"), "{text}");
    write(
        "modules/modules.dep",
        &format!("{dep}kernel/net/netfilter/nft_numgen.ko.zst:\n"),
    );
    let out = check_config(Some(root));
    assert!(out.status.success(), "{}", stdout(&out));
}
