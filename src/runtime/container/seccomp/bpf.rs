//! A compiler from the OCI spec's `linux.seccomp` to a classic BPF seccomp
//! program for x86_64 hosts, with sections for the x86_64, x32 and i386
//! ABIs. Written here because the pure-Rust seccompiler knows neither i386
//! nor x32 and gives a filter one action for every rule; libseccomp is a C
//! library.
//!
//! Semantics (those of libseccomp for the profiles Docker writes): the rules
//! are tried in order and the first whose name matches and whose argument
//! comparisons all hold gives the action; otherwise the default action, or
//! ENOSYS for a number above every call skiff knows (as runc does, so that
//! a libc falls back from a call newer than the profile). A call of an ABI
//! the profile does not list kills the process. On i386 only the low 32
//! bits of an argument are compared: the kernel ignores the rest.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::syscalls::{self, Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::SeccompError;

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A compiled filter, ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub insns: Vec<Insn>,
    /// `SECCOMP_FILTER_FLAG_*`.
    pub flags: u32,
}

const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JA: u16 = 0x05;
const JEQ: u16 = 0x15;
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg(index: u32) -> (u32, u32) {
    let lo = 16 + 8 * index;
    (lo, lo + 4)
}

pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
/// BPF_MAXINSNS: the kernel refuses longer programs.
pub const MAX_INSNS: usize = 4096;
/// Unconditional rules share one return per this many comparisons, which
/// keeps every conditional jump within its 8-bit offset.
const BATCH: usize = 240;
/// Comparisons one rule may make (each is at most 7 instructions; a rule's
/// block must stay within a conditional jump's reach).
const MAX_CONDITIONS: usize = 30;

/// The value a seccomp program returns for an action.
pub fn action_value(action: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, SeccompError> {
    let data = |e: Option<u32>| e.unwrap_or(EPERM) & 0xffff;
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data(errno),
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data(errno),
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported("SCMP_ACT_NOTIFY".into()))
        }
    })
}

/// One argument comparison.
#[derive(Debug, Clone, Copy)]
pub struct Cond {
    pub index: u32,
    pub op: LinuxSeccompOperator,
    pub value: u64,
    pub value_two: u64,
}

impl Cond {
    /// Whether `arg` satisfies the comparison (`wide`: all 64 bits count).
    pub fn holds(&self, arg: u64, wide: bool) -> bool {
        let narrow = |v: u64| if wide { v } else { v & 0xffff_ffff };
        let (a, v, v2) = (narrow(arg), narrow(self.value), narrow(self.value_two));
        match self.op {
            LinuxSeccompOperator::ScmpCmpEq => a == v,
            LinuxSeccompOperator::ScmpCmpNe => a != v,
            LinuxSeccompOperator::ScmpCmpLt => a < v,
            LinuxSeccompOperator::ScmpCmpLe => a <= v,
            LinuxSeccompOperator::ScmpCmpGt => a > v,
            LinuxSeccompOperator::ScmpCmpGe => a >= v,
            LinuxSeccompOperator::ScmpCmpMaskedEq => a & v == v2,
        }
    }
}

/// A rule as the compiler sees it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub names: Vec<String>,
    pub ret: u32,
    pub conds: Vec<Cond>,
}

/// The parts of a `linux.seccomp` that decide a call.
#[derive(Debug, Clone)]
pub struct Program {
    pub abis: Vec<Abi>,
    pub rules: Vec<Rule>,
    pub default: u32,
    pub flags: u32,
}

impl Program {
    pub fn from_oci(s: &LinuxSeccomp) -> Result<Program, SeccompError> {
        let default = action_value(s.default_action(), s.default_errno_ret().or(Some(EPERM)))?;
        let mut abis = Vec::new();
        for a in s.architectures().iter().flatten() {
            let abi = match a {
                Arch::ScmpArchX86_64 | Arch::ScmpArchNative => Abi::X86_64,
                Arch::ScmpArchX86 => Abi::X86,
                Arch::ScmpArchX32 => Abi::X32,
                // Other architectures never run on an x86_64 kernel.
                _ => continue,
            };
            if !abis.contains(&abi) {
                abis.push(abi);
            }
        }
        if abis.is_empty() {
            abis.push(Abi::X86_64);
        }
        let mut flags = 0;
        for f in s.flags().iter().flatten() {
            flags |= match f {
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    return Err(SeccompError::Unsupported(
                        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (needs a listener)".into(),
                    ))
                }
            };
        }
        let mut rules = Vec::new();
        for r in s.syscalls().iter().flatten() {
            let conds: Vec<Cond> = r
                .args()
                .iter()
                .flatten()
                .map(|a| Cond {
                    index: a.index() as u32,
                    op: a.op(),
                    value: a.value(),
                    value_two: a.value_two().unwrap_or(0),
                })
                .collect();
            if let Some(c) = conds.iter().find(|c| c.index > 5) {
                return Err(SeccompError::Profile(format!(
                    "argument index {} (system calls have 6 arguments)",
                    c.index
                )));
            }
            if conds.len() > MAX_CONDITIONS {
                return Err(SeccompError::Profile(format!(
                    "a rule for {:?} compares {} arguments; at most {MAX_CONDITIONS} are supported",
                    r.names(),
                    conds.len()
                )));
            }
            rules.push(Rule {
                names: r.names().clone(),
                ret: action_value(r.action(), r.errno_ret())?,
                conds,
            });
        }
        Ok(Program {
            abis,
            rules,
            default,
            flags,
        })
    }

    /// What the program decides for one call, computed directly from the
    /// rules: the reference the compiled filter is tested against.
    #[cfg(test)]
    pub fn decide(&self, arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        let abi = match arch {
            AUDIT_ARCH_X86_64 if nr & X32_SYSCALL_BIT != 0 => Abi::X32,
            AUDIT_ARCH_X86_64 => Abi::X86_64,
            AUDIT_ARCH_I386 => Abi::X86,
            _ => return RET_KILL_PROCESS,
        };
        if !self.abis.contains(&abi) {
            return RET_KILL_PROCESS;
        }
        let wide = abi != Abi::X86;
        for r in &self.rules {
            let named = r.names.iter().any(|n| syscalls::number(n, abi) == Some(nr));
            if named
                && r.conds
                    .iter()
                    .all(|c| c.holds(args[c.index as usize], wide))
            {
                return r.ret;
            }
        }
        self.fallback(abi, nr)
    }

    fn fallback(&self, abi: Abi, nr: u32) -> u32 {
        if self.default & 0xffff_0000 == RET_ERRNO && nr > syscalls::highest(abi) {
            RET_ERRNO | ENOSYS
        } else {
            self.default
        }
    }
}

/// Where a conditional jump goes.
#[derive(Clone, Copy)]
enum To {
    Next,
    L(usize),
}

enum Op {
    Insn(Insn),
    Jump { code: u16, k: u32, jt: To, jf: To },
    Always(usize),
    Label(usize),
}

/// Straight-line code with forward labels.
#[derive(Default)]
struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }
    fn bind(&mut self, l: usize) {
        self.ops.push(Op::Label(l));
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.ops.push(Op::Insn(Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }));
    }
    fn load(&mut self, offset: u32) {
        self.stmt(LD_W_ABS, offset);
    }
    fn ret(&mut self, value: u32) {
        self.stmt(RET_K, value);
    }
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.ops.push(Op::Jump { code, k, jt, jf });
    }
    fn always(&mut self, l: usize) {
        self.ops.push(Op::Always(l));
    }

    fn assemble(self) -> Result<Vec<Insn>, SeccompError> {
        let mut at = vec![usize::MAX; self.labels];
        let mut n = 0;
        for op in &self.ops {
            match op {
                Op::Label(l) => at[*l] = n,
                _ => n += 1,
            }
        }
        let mut out = Vec::with_capacity(n);
        for op in &self.ops {
            let here = out.len();
            let dist = |l: usize| -> Result<usize, SeccompError> {
                let to = at[l];
                if to == usize::MAX || to <= here {
                    return Err(SeccompError::Jump(format!("label {l} unbound or behind")));
                }
                Ok(to - here - 1)
            };
            let short = |t: To| -> Result<u8, SeccompError> {
                match t {
                    To::Next => Ok(0),
                    To::L(l) => {
                        let d = dist(l)?;
                        u8::try_from(d).map_err(|_| SeccompError::Jump(format!("{d} instructions")))
                    }
                }
            };
            match op {
                Op::Label(_) => {}
                Op::Insn(i) => out.push(*i),
                Op::Jump { code, k, jt, jf } => out.push(Insn {
                    code: *code,
                    jt: short(*jt)?,
                    jf: short(*jf)?,
                    k: *k,
                }),
                Op::Always(l) => out.push(Insn {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: dist(*l)? as u32,
                }),
            }
        }
        Ok(out)
    }
}

/// Compile a container's `linux.seccomp`.
/// The names in `s` no ABI skiff filters knows: their rules are skipped for
/// them, as runc and libseccomp do.
pub fn unknown_names(s: &LinuxSeccomp) -> Vec<&str> {
    let mut out: Vec<&str> = s
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names())
        .map(String::as_str)
        .filter(|n| !syscalls::known(n))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

pub fn compile(s: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    Program::from_oci(s)?.compile()
}

impl Program {
    pub fn compile(&self) -> Result<Filter, SeccompError> {
        let mut a = Asm::default();
        let sec_64 = a.label();
        let sec_x32 = a.label();
        let sec_86 = a.label();
        let not_64 = a.label();
        let not_86 = a.label();
        a.load(OFF_ARCH);
        a.jump(JEQ, AUDIT_ARCH_X86_64, To::Next, To::L(not_64));
        a.always(sec_64);
        a.bind(not_64);
        a.jump(JEQ, AUDIT_ARCH_I386, To::Next, To::L(not_86));
        a.always(sec_86);
        a.bind(not_86);
        a.ret(RET_KILL_PROCESS);

        a.bind(sec_64);
        let native = a.label();
        a.load(OFF_NR);
        a.jump(JGE, X32_SYSCALL_BIT, To::Next, To::L(native));
        a.always(sec_x32);
        a.bind(native);
        self.section(&mut a, Abi::X86_64);
        a.bind(sec_x32);
        self.section(&mut a, Abi::X32);
        a.bind(sec_86);
        self.section(&mut a, Abi::X86);

        let insns = a.assemble()?;
        if insns.len() > MAX_INSNS {
            return Err(SeccompError::TooLong(insns.len()));
        }
        Ok(Filter {
            insns,
            flags: self.flags,
        })
    }

    fn section(&self, a: &mut Asm, abi: Abi) {
        if !self.abis.contains(&abi) {
            a.ret(RET_KILL_PROCESS);
            return;
        }
        let wide = abi != Abi::X86;
        a.load(OFF_NR);
        // Consecutive unconditional rules with one action: (number, return).
        let mut batch: Vec<u32> = Vec::new();
        let mut batch_ret = 0;
        for r in &self.rules {
            for name in &r.names {
                let Some(nr) = syscalls::number(name, abi) else {
                    continue;
                };
                if r.conds.is_empty() {
                    if (batch_ret != r.ret && !batch.is_empty()) || batch.len() == BATCH {
                        flush(a, &mut batch, batch_ret);
                    }
                    batch_ret = r.ret;
                    batch.push(nr);
                    continue;
                }
                flush(a, &mut batch, batch_ret);
                let next = a.label();
                a.jump(JEQ, nr, To::Next, To::L(next));
                for c in &r.conds {
                    compare(a, c, wide, next);
                }
                a.ret(r.ret);
                a.bind(next);
                a.load(OFF_NR);
            }
        }
        flush(a, &mut batch, batch_ret);
        let fallback = self.fallback(abi, u32::MAX);
        if fallback != self.default {
            let known = a.label();
            let highest = syscalls::highest(abi);
            a.jump(JGT, highest, To::Next, To::L(known));
            a.ret(fallback);
            a.bind(known);
        }
        a.ret(self.default);
    }
}

fn flush(a: &mut Asm, batch: &mut Vec<u32>, ret: u32) {
    if batch.is_empty() {
        return;
    }
    let hit = a.label();
    let after = a.label();
    for nr in batch.drain(..) {
        a.jump(JEQ, nr, To::L(hit), To::Next);
    }
    a.always(after);
    a.bind(hit);
    a.ret(ret);
    a.bind(after);
}

/// Jumps to `fail` unless the argument comparison holds; falls through
/// otherwise. 64-bit values are compared as two 32-bit words, the high one
/// first.
fn compare(a: &mut Asm, c: &Cond, wide: bool, fail: usize) {
    let pass = a.label();
    let (lo_off, hi_off) = off_arg(c.index);
    let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
    let (whi, wlo) = ((c.value_two >> 32) as u32, c.value_two as u32);
    let (f, p) = (To::L(fail), To::L(pass));
    use LinuxSeccompOperator as O;
    match c.op {
        O::ScmpCmpEq | O::ScmpCmpNe => {
            let (hit, miss) = if c.op == O::ScmpCmpEq {
                (To::Next, f)
            } else {
                (f, p)
            };
            if wide {
                a.load(hi_off);
                a.jump(JEQ, vhi, To::Next, if c.op == O::ScmpCmpEq { f } else { p });
            }
            a.load(lo_off);
            a.jump(JEQ, vlo, hit, miss);
        }
        O::ScmpCmpMaskedEq => {
            if wide {
                a.load(hi_off);
                a.stmt(ALU_AND_K, vhi);
                a.jump(JEQ, whi, To::Next, f);
            }
            a.load(lo_off);
            a.stmt(ALU_AND_K, vlo);
            a.jump(JEQ, wlo, To::Next, f);
        }
        O::ScmpCmpGt | O::ScmpCmpGe | O::ScmpCmpLt | O::ScmpCmpLe => {
            // GT/GE hold when the high word is above, fail when below;
            // LT/LE are their negations.
            let positive = matches!(c.op, O::ScmpCmpGt | O::ScmpCmpGe);
            let (yes, no) = if positive { (p, f) } else { (f, p) };
            if wide {
                a.load(hi_off);
                a.jump(JGT, vhi, yes, To::Next);
                a.jump(JEQ, vhi, To::Next, no);
            }
            a.load(lo_off);
            let code = if matches!(c.op, O::ScmpCmpGt | O::ScmpCmpLe) {
                JGT
            } else {
                JGE
            };
            a.jump(code, vlo, yes, no);
        }
    }
    a.bind(pass);
}

/// Runs a filter on one call as the kernel would (test support).
#[cfg(test)]
pub fn run(insns: &[Insn], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, v) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = insns[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => {
                let o = i.k as usize;
                acc = u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
            }
            ALU_AND_K => acc &= i.k,
            JA => pc += i.k as usize,
            JEQ | JGT | JGE => {
                let taken = match i.code {
                    JEQ => acc == i.k,
                    JGT => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            RET_K => return i.k,
            other => panic!("unexpected instruction {other:#x}"),
        }
    }
}
