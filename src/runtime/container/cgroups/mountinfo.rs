//! Which cgroup hierarchies are mounted where, read from /proc/self/mountinfo.
//!
//! The mount table is the only reliable source: the layout under
//! /sys/fs/cgroup differs between legacy, hybrid and unified hosts, and
//! container hosts mount controllers jointly (`cpu,cpuacct`) or twice.

use std::collections::HashSet;
use std::path::PathBuf;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A cgroup v1 hierarchy: its controllers (empty for a named hierarchy
    /// such as `name=systemd`) and its name, if any.
    V1 {
        controllers: Vec<String>,
        name: Option<String>,
    },
    /// The cgroup v2 unified hierarchy.
    V2,
}

/// Super-block options of a v1 cgroup mount that are not controllers.
const V1_FLAGS: &[&str] = &[
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
];

/// Parse mountinfo text into the cgroup hierarchies it mounts, first mount
/// of each hierarchy only (bind mounts of one hierarchy share its device).
pub fn parse(text: &str) -> Vec<Hierarchy> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(h) = parse_line(line) else { continue };
        if seen.insert(h.0) {
            out.push(h.1);
        }
    }
    out
}

/// Every mount point of a cgroup v1 hierarchy, in mount order, a hierarchy
/// mounted twice listed twice (libcontainer mounts each of them in a
/// container, so each must be made read-only there).
pub fn v1_mountpoints(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(parse_line)
        .filter(|(_, h)| matches!(h.kind, Kind::V1 { .. }))
        .map(|(_, h)| h.mountpoint)
        .collect()
}

/// `36 25 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory`
fn parse_line(line: &str) -> Option<(String, Hierarchy)> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let device = l.nth(2)?.to_string();
    let mountpoint = unescape(l.nth(1)?);
    let mut r = right.split(' ');
    let fstype = r.next()?;
    let options = r.nth(1).unwrap_or("");
    let kind = match fstype {
        "cgroup2" => Kind::V2,
        "cgroup" => {
            let mut controllers = Vec::new();
            let mut name = None;
            for opt in options.split(',') {
                if let Some(n) = opt.strip_prefix("name=") {
                    name = Some(n.to_string());
                } else if !opt.contains('=') && !V1_FLAGS.contains(&opt) && !opt.is_empty() {
                    controllers.push(opt.to_string());
                }
            }
            Kind::V1 { controllers, name }
        }
        _ => return None,
    };
    Some((
        device,
        Hierarchy {
            mountpoint: PathBuf::from(mountpoint),
            kind,
        },
    ))
}

/// The kernel escapes space, tab, newline and backslash in mountinfo paths
/// as three-digit octal (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                u8::try_from(v).ok()
            });
        match escaped {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
90 80 0:32 / /mnt/again\\040here rw - cgroup cgroup rw,memory
91 80 0:50 / /mnt/with\\040space rw - cgroup cgroup rw,pids
";

    #[test]
    fn v1_mountpoints_keep_duplicates() {
        let m = v1_mountpoints(HYBRID);
        let m: Vec<&str> = m.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            m,
            [
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd",
                "/mnt/again here",
                "/mnt/with space"
            ]
        );
    }

    #[test]
    fn parses_hybrid_joint_named_and_duplicate_mounts() {
        let h = parse(HYBRID);
        assert_eq!(h.len(), 5, "{h:?}");
        assert_eq!(
            h[0],
            Hierarchy {
                mountpoint: "/sys/fs/cgroup/cpu,cpuacct".into(),
                kind: Kind::V1 {
                    controllers: vec!["cpu".into(), "cpuacct".into()],
                    name: None
                }
            }
        );
        assert_eq!(
            h[2].kind,
            Kind::V1 {
                controllers: vec![],
                name: Some("systemd".into())
            }
        );
        assert_eq!(h[3].kind, Kind::V2);
        // The second mount of the memory hierarchy (same device) is dropped.
        assert_eq!(h[4].mountpoint, PathBuf::from("/mnt/with space"));
    }

    #[test]
    fn ignores_other_filesystems_and_garbage() {
        assert!(parse("garbage\n1 2 3\n20 1 8:1 / / rw - ext4 /dev/sda1 rw\n").is_empty());
    }
}
