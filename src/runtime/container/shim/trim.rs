//! Give back the shim's start-up pages once the container runs.
//!
//! The shim is the whole skiff binary; creating a container touches several
//! MiB of its code (libcontainer, the spec, logging), which then stay
//! resident for the container's lifetime although the poll loop needs a few
//! pages of it. Dropping the clean, read-only pages of the executable's own
//! mappings is free (they are re-read from the page cache on demand) and
//! takes the shim from ~10 MiB to well under conmon's 2 MiB RSS. Mappings
//! with private dirty pages (relocated data) are never touched: discarding
//! them would revert the relocations.

use std::fs;

struct Mapping {
    start: usize,
    end: usize,
    writable: bool,
    path: String,
    private_dirty_kb: u64,
    anonymous_kb: u64,
}

fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some(first) = parts.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                let perms = parts.next().unwrap_or("");
                let path = parts.nth(3).unwrap_or("").to_string();
                out.push(Mapping {
                    start,
                    end,
                    writable: perms.contains('w'),
                    path,
                    private_dirty_kb: 0,
                    anonymous_kb: 0,
                });
                continue;
            }
        }
        let value = || parts.clone().next().and_then(|v| v.parse::<u64>().ok());
        if let Some(m) = out.last_mut() {
            match first {
                "Private_Dirty:" => m.private_dirty_kb = value().unwrap_or(u64::MAX),
                "Anonymous:" => m.anonymous_kb = value().unwrap_or(u64::MAX),
                _ => {}
            }
        }
    }
    out
}

/// Drop the resident clean pages of the executable's read-only mappings.
/// Best effort: any failure leaves the pages where they are.
pub fn release_startup_pages() {
    let Ok(exe) = fs::read_link("/proc/self/exe") else {
        return;
    };
    let exe = exe.to_string_lossy().into_owned();
    let Ok(text) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for m in parse_smaps(&text) {
        if m.path != exe || m.writable || m.private_dirty_kb != 0 || m.anonymous_kb != 0 {
            continue;
        }
        let Some(len) = m
            .end
            .checked_sub(m.start)
            .and_then(std::num::NonZeroUsize::new)
        else {
            continue;
        };
        let Some(addr) = std::ptr::NonNull::new(m.start as *mut std::ffi::c_void) else {
            continue;
        };
        // SAFETY: the range is one whole mapping of our own executable that
        // is read-only and has no private or anonymous pages, so MADV_DONTNEED
        // only unmaps clean file pages, which fault back in unchanged.
        let res = unsafe {
            nix::sys::mman::madvise(addr, len.get(), nix::sys::mman::MmapAdvise::MADV_DONTNEED)
        };
        if let Err(e) = res {
            tracing::debug!("madvise({:#x}, {}): {e}", m.start, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mappings_and_their_dirty_pages() {
        let text = "\
55d0a0000000-55d0a0400000 r--p 00000000 fd:01 123 /usr/bin/skiff
Rss:                 100 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0400000-55d0a0800000 r-xp 00400000 fd:01 123 /usr/bin/skiff
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0800000-55d0a0900000 r--p 00800000 fd:01 123 /usr/bin/skiff
Private_Dirty:        12 kB
Anonymous:            12 kB
55d0a0900000-55d0a0a00000 rw-p 00900000 fd:01 123 /usr/bin/skiff
Private_Dirty:         8 kB
";
        let maps = parse_smaps(text);
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[1].start, 0x55d0a0400000);
        assert_eq!(maps[1].path, "/usr/bin/skiff");
        assert!(!maps[1].writable && maps[1].private_dirty_kb == 0);
        assert_eq!(maps[2].private_dirty_kb, 12);
        assert!(maps[3].writable);
    }

    #[test]
    fn releasing_pages_keeps_the_process_working() {
        release_startup_pages();
        // Code and read-only data fault back in: this still runs.
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(v.iter().sum::<u64>(), 55);
        assert_eq!(format!("{}", 42), "42");
    }
}
