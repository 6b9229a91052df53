//! skiff: the cgroup v2 device filter without libbpf (see SKIFF-PATCH.md).
//!
//! cgroup v2 has no devices.allow/devices.deny: the kernel asks an eBPF
//! program of type `BPF_PROG_TYPE_CGROUP_DEVICE`, attached to the cgroup,
//! whether an open or mknod may proceed. This module turns the device rules
//! (the same list the v1 controller writes, in the same order and with the
//! kernel's v1 semantics) into that program, instruction by instruction, and
//! loads and attaches it with the bpf(2) system call.
//!
//! The program's context is `struct bpf_cgroup_dev_ctx { u32 access_type;
//! u32 major; u32 minor; }`, where `access_type` is `(access << 16) | type`
//! (type: 1 block, 2 char; access: 1 mknod, 2 read, 4 write). It returns 1
//! to allow and 0 to deny (EPERM).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::libc;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("opening the cgroup {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("loading the device filter: {source}; verifier: {log}")]
    Load { source: std::io::Error, log: String },
    #[error("attaching the device filter to {path}: {source}")]
    Attach {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}


/// One exception to the default, after the v1 semantics are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exception {
    /// None: any type.
    typ: Option<i32>,
    major: Option<i64>,
    minor: Option<i64>,
    access: i32,
}

/// The rules reduced as the v1 devices controller reduces writes to
/// devices.allow/devices.deny: "a" resets the default and drops every
/// exception; a rule against the default adds an exception; a rule with
/// the default takes its access away from an identical exception.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reduced {
    default_allow: bool,
    exceptions: Vec<Exception>,
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| {
        acc | match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => 0,
        }
    })
}

fn reduce(rules: &[LinuxDeviceCgroup]) -> Reduced {
    // A new cgroup inherits its parent's list; with no rule at all that is
    // "allow all" for the filter, as for a v1 cgroup under the root.
    let mut out = Reduced {
        default_allow: true,
        exceptions: Vec::new(),
    };
    for r in rules {
        let typ = match r.typ().unwrap_or_default() {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(TYPE_BLOCK),
            // c and u (unbuffered char) are both char devices.
            _ => Some(TYPE_CHAR),
        };
        let major = r.major().filter(|m| *m >= 0);
        let minor = r.minor().filter(|m| *m >= 0);
        let access = access_bits(r.access().as_deref().unwrap_or("rwm"));
        if typ.is_none() {
            // As the kernel: "a" is the whole list, whatever else it says.
            out.default_allow = r.allow();
            out.exceptions.clear();
            continue;
        }
        if r.allow() != out.default_allow {
            out.exceptions.push(Exception {
                typ,
                major,
                minor,
                access,
            });
        } else {
            for e in &mut out.exceptions {
                if e.typ == typ && e.major == major && e.minor == minor {
                    e.access &= !access;
                }
            }
            out.exceptions.retain(|e| e.access != 0);
        }
    }
    out
}

/// A BPF instruction: opcode, registers, offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The kernel's `struct bpf_insn` as one little-endian u64.
    pub fn encode(&self) -> u64 {
        (self.code as u64)
            | (((self.dst & 0xf) as u64) << 8)
            | (((self.src & 0xf) as u64) << 12)
            | ((self.off as u16 as u64) << 16)
            | ((self.imm as u32 as u64) << 32)
    }
}

/// The opcodes the emitter uses: class | op | source.
pub mod op {
    /// r_dst = *(u32 *)(r_src + off)
    pub const LDX_MEM_W: u8 = 0x01 | 0x60;
    pub const ALU32_AND_K: u8 = 0x04 | 0x50;
    pub const ALU32_RSH_K: u8 = 0x04 | 0x70;
    pub const ALU32_MOV_K: u8 = 0x04 | 0xb0;
    pub const ALU32_MOV_X: u8 = 0x04 | 0xb0 | 0x08;
    pub const JMP_JNE_K: u8 = 0x05 | 0x50;
    pub const JMP_JEQ_K: u8 = 0x05 | 0x10;
    pub const JMP_EXIT: u8 = 0x05 | 0x90;
}
use op::*;

/// The context's type and access bits.
pub mod ctx {
    pub const TYPE_BLOCK: i32 = 1;
    pub const TYPE_CHAR: i32 = 2;
    pub const ACC_MKNOD: i32 = 1;
    pub const ACC_READ: i32 = 2;
    pub const ACC_WRITE: i32 = 4;
}
use ctx::*;

pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// The filter program for `rules` (in the order they would be written to
/// devices.allow/devices.deny on v1).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let reduced = reduce(rules);
    // r2 = type, r3 = access, r4 = major, r5 = minor.
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    // An exception allows (default deny) when it covers every requested
    // access bit, and denies (default allow) when it covers any of them:
    // the kernel's match_exception and match_exception_partial.
    let verdict = if reduced.default_allow { 0 } else { 1 };
    for e in &reduced.exceptions {
        // Each conditional jump skips to the end of this block; its offset
        // is filled in once the block's length is known.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        if let Some(t) = e.typ {
            block.push((insn(JMP_JNE_K, 2, 0, 0, t), true));
        }
        if let Some(m) = e.major {
            block.push((insn(JMP_JNE_K, 4, 0, 0, m as i32), true));
        }
        if let Some(m) = e.minor {
            block.push((insn(JMP_JNE_K, 5, 0, 0, m as i32), true));
        }
        block.push((insn(ALU32_MOV_X, 1, 3, 0, 0), false));
        if reduced.default_allow {
            block.push((insn(ALU32_AND_K, 1, 0, 0, e.access), false));
            block.push((insn(JMP_JEQ_K, 1, 0, 0, 0), true));
        } else {
            block.push((insn(ALU32_AND_K, 1, 0, 0, !e.access & 0x7), false));
            block.push((insn(JMP_JNE_K, 1, 0, 0, 0), true));
        }
        block.push((insn(ALU32_MOV_K, 0, 0, 0, verdict), false));
        block.push((insn(JMP_EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        for (i, (mut ins, jump)) in block.into_iter().enumerate() {
            if jump {
                ins.off = (len - i - 1) as i16;
            }
            p.push(ins);
        }
    }
    p.push(insn(
        ALU32_MOV_K,
        0,
        0,
        0,
        if reduced.default_allow { 1 } else { 0 },
    ));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The head of `union bpf_attr` for BPF_PROG_LOAD (the kernel zero-fills
/// what a shorter structure leaves out).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialised repr(C) value of the size passed;
    // the kernel reads it (and writes only to buffers it points at).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Load `insns` as a cgroup device program.
///
/// Without a log first, as libbpf does: with `log_level` set the kernel
/// fails a valid program with ENOSPC once its verifier log outgrows the
/// buffer, and a long rule list makes a long log. Only when the plain load
/// fails is it repeated with a log, to explain the failure.
pub fn load(insns: &[Insn]) -> Result<OwnedFd, DeviceFilterError> {
    match load_with_log(insns, None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut log = vec![0u8; 64 * 1024];
            match load_with_log(insns, Some(&mut log)) {
                // Loads with a log after all: keep it.
                Ok(fd) => Ok(fd),
                Err(_) => {
                    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                    let log = String::from_utf8_lossy(&log[..end]).trim().to_string();
                    Err(DeviceFilterError::Load { source: first, log })
                }
            }
        }
    }
}

fn load_with_log(insns: &[Insn], log: Option<&mut [u8]>) -> std::io::Result<OwnedFd> {
    let code: Vec<u64> = insns.iter().map(Insn::encode).collect();
    let license = b"Apache-2.0\0";
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &attr)?;
    // SAFETY: the kernel returned a new file descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The rules `Manager::apply` enforces for a container's `devices`: them,
/// then the default device nodes, then `default_allow_devices`, in the
/// order `v1::devices::Devices::apply` writes them.
pub fn rules_with_defaults(devices: &[LinuxDeviceCgroup]) -> Vec<LinuxDeviceCgroup> {
    devices
        .iter()
        .cloned()
        .chain(crate::common::default_devices().iter().map(|d| d.into()))
        .chain(crate::common::default_allow_devices())
        .collect()
}

/// Build the program for `rules`, load it and attach it to the cgroup
/// directory `cgroup` (alongside what its ancestors have: with
/// BPF_F_ALLOW_MULTI every program on the path must allow). The program
/// stays attached once its file descriptor is closed.
pub fn apply(rules: &[LinuxDeviceCgroup], cgroup: &Path) -> Result<(), DeviceFilterError> {
    let prog = load(&program(rules))?;
    let dir = std::fs::File::open(cgroup).map_err(|source| DeviceFilterError::Open {
        path: cgroup.to_path_buf(),
        source,
    })?;
    let attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &attr).map_err(|source| DeviceFilterError::Attach {
        path: cgroup.to_path_buf(),
        source,
    })?;
    Ok(())
}

// The emitter is unit-tested in skiff (src/runtime/container/cgroups/
// device_filter_tests.rs), where the test command runs it, with a small
// interpreter of the instructions it emits and a load into the kernel.
