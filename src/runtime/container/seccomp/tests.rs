//! The compiler checked against the rules it compiles (a BPF interpreter
//! runs the filter; `Program::decide` evaluates the rules directly) and the
//! default profile checked call by call.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompOperator};
use proptest::prelude::*;

use super::bpf::{self, Cond, Program, Rule, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS};
use super::syscalls::{number, Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
use super::*;

const EPERM: u32 = RET_ERRNO | 1;
const ENOSYS: u32 = RET_ERRNO | 38;

fn skiff_caps() -> Vec<String> {
    crate::runtime::container::baseline::CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect()
}

fn default_seccomp(caps: &[String]) -> LinuxSeccomp {
    for_container(&Choice::Default, caps).unwrap().unwrap()
}

/// Runs the compiled default filter and checks it against the reference.
struct Checked {
    program: Program,
    filter: Filter,
}

impl Checked {
    fn new(s: &LinuxSeccomp) -> Checked {
        Checked {
            program: Program::from_oci(s).unwrap(),
            filter: bpf::compile(s).unwrap(),
        }
    }
    fn call(&self, abi: Abi, name: &str, args: [u64; 6]) -> u32 {
        let nr = number(name, abi).unwrap_or_else(|| panic!("{name} on {abi:?}"));
        let arch = if abi == Abi::X86 {
            AUDIT_ARCH_I386
        } else {
            AUDIT_ARCH_X86_64
        };
        let got = bpf::run(&self.filter.insns, arch, nr, &args);
        assert_eq!(got, self.program.decide(arch, nr, &args), "{name} {args:?}");
        got
    }
}

fn a(first: &[u64]) -> [u64; 6] {
    let mut out = [0; 6];
    out[..first.len()].copy_from_slice(first);
    out
}

#[test]
fn default_profile_denies_what_docker_denies() {
    let c = Checked::new(&default_seccomp(&skiff_caps()));
    for abi in [Abi::X86_64, Abi::X86, Abi::X32] {
        for name in [
            "unshare",
            "setns",
            "mount",
            "keyctl",
            "add_key",
            "request_key",
            "io_uring_setup",
            "perf_event_open",
            "bpf",
            "kexec_load",
            "init_module",
            "open_by_handle_at",
            "userfaultfd",
            "kexec_file_load",
        ] {
            if number(name, abi).is_none() {
                continue;
            }
            assert_eq!(c.call(abi, name, a(&[])), EPERM, "{name} on {abi:?}");
        }
        for name in [
            "read", "write", "execve", "openat", "futex", "wait4", "chroot",
        ] {
            assert_eq!(c.call(abi, name, a(&[])), RET_ALLOW, "{name} on {abi:?}");
        }
        assert_eq!(c.call(abi, "clone3", a(&[])), ENOSYS);
        // clone: threads and forks yes, namespaces no.
        assert_eq!(c.call(abi, "clone", a(&[0x3d0f00])), RET_ALLOW);
        assert_eq!(c.call(abi, "clone", a(&[0x1200011])), RET_ALLOW);
        for ns in [0x10000000, 0x20000, 0x40000000, 0x20000000, 0x02000000] {
            assert_eq!(c.call(abi, "clone", a(&[ns | 0x11])), EPERM, "{ns:#x}");
        }
        // personality: only the Linux ABI and the query.
        assert_eq!(c.call(abi, "personality", a(&[0xffff_ffff])), RET_ALLOW);
        assert_eq!(c.call(abi, "personality", a(&[0x0040000])), EPERM);
        // socket: not AF_VSOCK, AF_PACKET or NETLINK_AUDIT.
        assert_eq!(c.call(abi, "socket", a(&[2, 1, 0])), RET_ALLOW);
        assert_eq!(c.call(abi, "socket", a(&[16, 3, 0])), RET_ALLOW);
        assert_eq!(c.call(abi, "socket", a(&[16, 3, 9])), EPERM);
        assert_eq!(c.call(abi, "socket", a(&[17, 3, 0])), EPERM);
        assert_eq!(c.call(abi, "socket", a(&[40, 1, 0])), EPERM);
    }
    // The kernel truncates socket's int arguments; the filter must not be
    // fooled by high bits on 64-bit ABIs (i386 compares 32 bits anyway).
    assert_eq!(
        c.call(Abi::X86_64, "socket", a(&[0x1_0000_0028, 1, 0])),
        EPERM
    );
    assert_eq!(
        c.call(Abi::X86_64, "socket", a(&[16, 3, 0x1_0000_0009])),
        EPERM
    );
    assert_eq!(c.call(Abi::X86, "socket", a(&[0x1_0000_0028, 1, 0])), EPERM);
    assert_eq!(c.call(Abi::X86_64, "arch_prctl", a(&[])), RET_ALLOW);
    // i386's multiplexer: everything but socket creation.
    assert_eq!(c.call(Abi::X86, "socketcall", a(&[1, 0])), EPERM);
    assert_eq!(
        c.call(Abi::X86, "socketcall", a(&[0x1_0000_0001, 0])),
        EPERM
    );
    assert_eq!(c.call(Abi::X86, "socketcall", a(&[3, 0])), RET_ALLOW);
    // A number newer than every call skiff knows: ENOSYS, so libcs fall back.
    let got = bpf::run(&c.filter.insns, AUDIT_ARCH_X86_64, 1000, &a(&[]));
    assert_eq!(got, ENOSYS);
    // Another architecture: killed.
    let got = bpf::run(&c.filter.insns, 0xc000_00b7, 63, &a(&[]));
    assert_eq!(got, RET_KILL_PROCESS);
    assert!(c.filter.insns.len() < bpf::MAX_INSNS);
}

/// Names a user's profile is warned about: none of the default profile's
/// but send and recv (socketcall-only on x86), hence no warning for it.
#[test]
fn unknown_names_are_found() {
    let s = default_seccomp(&skiff_caps());
    assert_eq!(super::bpf::unknown_names(&s), ["recv", "send"]);
    let p = super::profile::Profile::parse(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["keyctl", "no_such_call"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let target = super::profile::Target {
        caps: &[],
        kernel: (6, 1),
    };
    let s = p.resolve(&target).unwrap();
    assert_eq!(super::bpf::unknown_names(&s), ["no_such_call"]);
}

#[test]
fn capabilities_widen_the_profile() {
    let mut caps = skiff_caps();
    caps.push("CAP_SYS_ADMIN".into());
    let c = Checked::new(&default_seccomp(&caps));
    assert_eq!(c.call(Abi::X86_64, "unshare", a(&[0x10000000])), RET_ALLOW);
    assert_eq!(c.call(Abi::X86_64, "clone", a(&[0x10000011])), RET_ALLOW);
    assert_eq!(c.call(Abi::X86_64, "clone3", a(&[])), RET_ALLOW);
    assert_eq!(c.call(Abi::X86_64, "keyctl", a(&[])), EPERM);
    let none: Vec<String> = Vec::new();
    let c = Checked::new(&default_seccomp(&none));
    assert_eq!(c.call(Abi::X86_64, "chroot", a(&[])), EPERM);
}

#[test]
fn unconfined_has_no_filter() {
    assert!(for_container(&Choice::Unconfined, &skiff_caps())
        .unwrap()
        .is_none());
    assert_eq!(Choice::parse("unconfined"), Choice::Unconfined);
    assert_eq!(
        Choice::parse("/etc/p.json"),
        Choice::Profile("/etc/p.json".into())
    );
}

#[test]
fn a_profile_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let s = for_container(&Choice::Profile(good), &[]).unwrap().unwrap();
    let c = Checked::new(&s);
    assert_eq!(c.call(Abi::X86_64, "mkdir", a(&[])), RET_ERRNO | 13);
    assert_eq!(c.call(Abi::X86_64, "keyctl", a(&[])), RET_ALLOW);
    // Only x86_64 listed: i386 calls are killed.
    let got = bpf::run(&c.filter.insns, AUDIT_ARCH_I386, 20, &a(&[]));
    assert_eq!(got, RET_KILL_PROCESS);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
    let err = for_container(&Choice::Profile(bad), &[]).unwrap_err();
    assert!(err.to_string().contains("bad.json"), "{err}");
    let missing = dir.path().join("missing.json");
    assert!(matches!(
        for_container(&Choice::Profile(missing), &[]),
        Err(SeccompError::Read { .. })
    ));
}

const NAMES: &[&str] = &["read", "socket", "clone", "personality", "mmap", "kill"];

fn op() -> impl Strategy<Value = LinuxSeccompOperator> {
    prop_oneof![
        Just(LinuxSeccompOperator::ScmpCmpEq),
        Just(LinuxSeccompOperator::ScmpCmpNe),
        Just(LinuxSeccompOperator::ScmpCmpLt),
        Just(LinuxSeccompOperator::ScmpCmpLe),
        Just(LinuxSeccompOperator::ScmpCmpGt),
        Just(LinuxSeccompOperator::ScmpCmpGe),
        Just(LinuxSeccompOperator::ScmpCmpMaskedEq),
    ]
}

/// Values near the word boundaries, where a two-word comparison can go wrong.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..4,
        Just(0xffff_ffff),
        Just(0x1_0000_0000),
        Just(0x1_0000_0001),
        Just(u64::MAX),
        (0u64..4, 0u64..4).prop_map(|(h, l)| (h << 32) | l),
        any::<u64>(),
    ]
}

fn cond() -> impl Strategy<Value = Cond> {
    (0u32..3, op(), value(), value()).prop_map(|(index, op, value, value_two)| Cond {
        index,
        op,
        value,
        value_two,
    })
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::collection::vec(prop::sample::select(NAMES), 1..3),
        prop_oneof![Just(RET_ALLOW), Just(EPERM), Just(RET_ERRNO | 13)],
        prop::collection::vec(cond(), 0..3),
    )
        .prop_map(|(names, ret, conds)| Rule {
            names: names.into_iter().map(String::from).collect(),
            ret,
            conds,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the rules, the filter decides every call as the rules say.
    #[test]
    fn compiled_filters_match_their_rules(
        rules in prop::collection::vec(rule(), 0..8),
        default in prop_oneof![Just(RET_ALLOW), Just(EPERM)],
        calls in prop::collection::vec(
            (prop::sample::select(NAMES), prop::bool::ANY, value(), value(), value()), 20),
    ) {
        let program = Program {
            abis: vec![Abi::X86_64, Abi::X86, Abi::X32],
            rules,
            default,
            flags: 0,
        };
        let filter = program.compile().unwrap();
        for (name, i386, x, y, z) in calls {
            let (abi, arch) = if i386 {
                (Abi::X86, AUDIT_ARCH_I386)
            } else {
                (Abi::X86_64, AUDIT_ARCH_X86_64)
            };
            let nr = number(name, abi).unwrap();
            let args = [x, y, z, 0, 0, 0];
            prop_assert_eq!(
                bpf::run(&filter.insns, arch, nr, &args),
                program.decide(arch, nr, &args)
            );
        }
    }
}
