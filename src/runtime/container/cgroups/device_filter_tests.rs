//! The cgroup v2 device filter of the vendored libcgroups
//! (vendor/libcgroups/src/v2/device_filter.rs): the instructions it emits,
//! run by a small interpreter of that subset of eBPF, and the kernel's
//! verifier accepting them.

use libcgroups::v2::device_filter::ctx::*;
use libcgroups::v2::device_filter::op::*;
use libcgroups::v2::device_filter::{insn, load, program, rules_with_defaults, Insn};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap()
}

/// Run the program on a context, as the kernel would (the subset of
/// eBPF the emitter uses).
fn run(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> u32 {
    let ctx = [((access as u32) << 16) | typ as u32, major, minor];
    let mut r = [0u32; 11];
    let mut pc = 0usize;
    loop {
        let i = p[pc];
        pc += 1;
        let (d, s) = (i.dst as usize, i.src as usize);
        match i.code {
            LDX_MEM_W => r[d] = ctx[i.off as usize / 4],
            ALU32_AND_K => r[d] &= i.imm as u32,
            ALU32_RSH_K => r[d] >>= i.imm as u32,
            ALU32_MOV_K => r[d] = i.imm as u32,
            ALU32_MOV_X => r[d] = r[s],
            JMP_JNE_K if r[d] != i.imm as u32 => pc += i.off as usize,
            JMP_JEQ_K if r[d] == i.imm as u32 => pc += i.off as usize,
            JMP_JNE_K | JMP_JEQ_K => {}
            JMP_EXIT => return r[0],
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

#[test]
fn docker_default_allows_only_its_list() {
    use LinuxDeviceType::{A, B, C};
    let rules = vec![
        rule(false, A, None, None, "rwm"),
        rule(true, C, None, None, "m"),
        rule(true, B, None, None, "m"),
        rule(true, C, Some(1), Some(3), "rwm"),
        rule(true, C, Some(136), None, "rwm"),
    ];
    let p = program(&rules);
    let rw = ACC_READ | ACC_WRITE;
    assert_eq!(run(&p, TYPE_CHAR, rw, 1, 3), 1, "/dev/null");
    assert_eq!(run(&p, TYPE_CHAR, ACC_READ, 136, 7), 1, "a pty");
    assert_eq!(run(&p, TYPE_CHAR, rw, 1, 1), 0, "/dev/mem");
    assert_eq!(run(&p, TYPE_BLOCK, ACC_READ, 7, 0), 0, "loop0");
    assert_eq!(run(&p, TYPE_BLOCK, ACC_WRITE, 8, 0), 0, "sda");
    assert_eq!(run(&p, TYPE_CHAR, rw, 4, 0), 0, "tty0");
    assert_eq!(run(&p, TYPE_BLOCK, ACC_MKNOD, 8, 0), 1, "mknod only");
    assert_eq!(run(&p, TYPE_BLOCK, ACC_MKNOD | ACC_READ, 8, 0), 0);
}

#[test]
fn v1_semantics() {
    use LinuxDeviceType::{A, B, C};
    // No rule: allow everything (as a new v1 cgroup under the root).
    assert_eq!(run(&program(&[]), TYPE_BLOCK, ACC_READ, 8, 0), 1);
    // Read-only access to one disk.
    let p = program(&[
        rule(false, A, None, None, "rwm"),
        rule(true, B, Some(8), Some(0), "r"),
    ]);
    assert_eq!(run(&p, TYPE_BLOCK, ACC_READ, 8, 0), 1);
    assert_eq!(run(&p, TYPE_BLOCK, ACC_READ | ACC_WRITE, 8, 0), 0);
    assert_eq!(run(&p, TYPE_BLOCK, ACC_READ, 8, 1), 0);
    // Allow all, then deny writes to one device.
    let p = program(&[
        rule(true, A, None, None, "rwm"),
        rule(false, C, Some(1), Some(1), "w"),
    ]);
    assert_eq!(run(&p, TYPE_CHAR, ACC_READ, 1, 1), 1);
    assert_eq!(run(&p, TYPE_CHAR, ACC_READ | ACC_WRITE, 1, 1), 0);
    // A later "a" resets everything before it.
    let p = program(&[
        rule(false, A, None, None, "rwm"),
        rule(true, C, Some(1), Some(3), "rwm"),
        rule(true, A, None, None, "rwm"),
    ]);
    assert_eq!(run(&p, TYPE_BLOCK, ACC_WRITE, 8, 0), 1);
    // A deny after an allow takes the access back.
    let p = program(&[
        rule(false, A, None, None, "rwm"),
        rule(true, C, Some(1), Some(3), "rwm"),
        rule(false, C, Some(1), Some(3), "w"),
    ]);
    assert_eq!(run(&p, TYPE_CHAR, ACC_READ, 1, 3), 1);
    assert_eq!(run(&p, TYPE_CHAR, ACC_WRITE, 1, 3), 0);
}

#[test]
fn encoding_matches_the_kernel_layout() {
    // r2 = *(u32 *)(r1 + 4): code 0x61, dst 2, src 1, off 4.
    assert_eq!(insn(LDX_MEM_W, 2, 1, 4, 0).encode(), 0x0000_0000_0004_1261);
    // w0 = 1; exit.
    assert_eq!(
        insn(ALU32_MOV_K, 0, 0, 0, 1).encode(),
        0x0000_0001_0000_00b4
    );
    assert_eq!(insn(JMP_EXIT, 0, 0, 0, 0).encode(), 0x95);
    // Negative immediates keep their 32 bits only.
    assert_eq!(insn(ALU32_AND_K, 1, 0, 0, -1).encode() >> 32, 0xffff_ffff);
}

#[test]
fn the_kernel_verifier_accepts_the_docker_program() {
    use LinuxDeviceType::{A, B, C};
    let rules: Vec<LinuxDeviceCgroup> = crate::runtime::container::baseline::DEVICE_RULES
        .iter()
        .map(|r| {
            let typ = match r.kind {
                'b' => B,
                'c' => C,
                _ => A,
            };
            rule(r.allow, typ, r.major, r.minor, r.access)
        })
        .collect();
    let p = program(&rules);
    assert_eq!(
        run(&p, TYPE_CHAR, ACC_READ | ACC_WRITE, 5, 1),
        0,
        "host console"
    );
    assert_eq!(run(&p, TYPE_CHAR, ACC_READ | ACC_WRITE, 10, 200), 1, "tun");
    load(&p).expect("the kernel loads the program");
}

/// The whole list `Manager::apply` builds (Docker's rules, `--device`
/// entries, then libcgroups' default nodes and allowlist): a long program
/// gives a long verifier log, which must not make a valid program fail.
#[test]
fn the_kernel_verifier_accepts_the_full_list_with_devices() {
    use LinuxDeviceType::{A, B, C};
    let mut spec: Vec<LinuxDeviceCgroup> = crate::runtime::container::baseline::DEVICE_RULES
        .iter()
        .map(|r| {
            let typ = match r.kind {
                'b' => B,
                'c' => C,
                _ => A,
            };
            rule(r.allow, typ, r.major, r.minor, r.access)
        })
        .collect();
    // Several --device entries, as the spec adds them.
    for minor in 0..48 {
        spec.push(rule(true, B, Some(8), Some(minor), "rwm"));
        spec.push(rule(true, C, Some(189), Some(minor), "rw"));
    }
    let rules = rules_with_defaults(&spec);
    let p = program(&rules);
    assert_eq!(
        run(&p, TYPE_BLOCK, ACC_READ | ACC_WRITE, 8, 47),
        1,
        "a --device"
    );
    assert_eq!(run(&p, TYPE_BLOCK, ACC_READ, 8, 48), 0, "not a --device");
    assert_eq!(
        run(&p, TYPE_CHAR, ACC_READ | ACC_WRITE, 5, 1),
        0,
        "host console"
    );
    load(&p).expect("the kernel loads the program");
}
