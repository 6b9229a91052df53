//! System call numbers of the three x86 ABIs a container on an x86_64 host
//! can use, generated from the kernel headers (gen-syscalls.sh).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The ABIs of an x86_64 kernel, as seccomp tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Abi {
    X86_64,
    /// i386 (`int 0x80`, or a 32-bit program).
    X86,
    /// x32: AUDIT_ARCH_X86_64 with `X32_SYSCALL_BIT` in the number.
    X32,
}

/// Set in the number of every x32 system call.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `AUDIT_ARCH_*` as seccomp reports it in `seccomp_data.arch`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

type Table = HashMap<&'static str, [Option<u32>; 3]>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Table::new();
        for line in include_str!("syscalls.txt").lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut f = line.split_whitespace();
            let Some(name) = f.next() else { continue };
            let mut nrs = [None; 3];
            for slot in &mut nrs {
                *slot = f.next().and_then(|n| n.parse().ok());
            }
            t.insert(name, nrs);
        }
        t
    })
}

/// The number of `name` in `abi` (for x32 with `X32_SYSCALL_BIT` set), or
/// None when that ABI has no such call.
pub fn number(name: &str, abi: Abi) -> Option<u32> {
    let nrs = table().get(name)?;
    match abi {
        Abi::X86_64 => nrs[0],
        Abi::X86 => nrs[1],
        Abi::X32 => nrs[2].map(|n| n | X32_SYSCALL_BIT),
    }
}

/// Whether any ABI knows `name` (a profile may name calls of other
/// architectures, which are skipped as libseccomp does).
pub fn known(name: &str) -> bool {
    table().contains_key(name)
}

/// The highest number of `abi` in the table: calls above it are newer than
/// skiff and get ENOSYS (as runc does) so that libcs fall back to older ones.
pub fn highest(abi: Abi) -> u32 {
    let i = match abi {
        Abi::X86_64 => 0,
        Abi::X86 => 1,
        Abi::X32 => 2,
    };
    let max = table()
        .values()
        .filter_map(|n| n[i])
        .max()
        .unwrap_or_default();
    if abi == Abi::X32 {
        max | X32_SYSCALL_BIT
    } else {
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_from_the_headers() {
        assert_eq!(number("read", Abi::X86_64), Some(0));
        assert_eq!(number("read", Abi::X86), Some(3));
        assert_eq!(number("read", Abi::X32), Some(X32_SYSCALL_BIT));
        assert_eq!(number("unshare", Abi::X86_64), Some(272));
        assert_eq!(number("unshare", Abi::X86), Some(310));
        assert_eq!(number("socketcall", Abi::X86_64), None);
        assert_eq!(number("clone3", Abi::X86), Some(435));
        assert_eq!(number("fchmodat2", Abi::X86_64), Some(452));
        assert!(!known("breakpoint"));
        assert!(highest(Abi::X86_64) >= 467);
    }
}
