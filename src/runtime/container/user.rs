//! `--user` resolution from the image's own `/etc/passwd` and `/etc/group`
//! (a static binary must never ask NSS, and the host's users mean nothing
//! inside the container).

use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

/// The identity the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f
                    .get(5)
                    .map_or("/", |h| if h.is_empty() { "/" } else { h })
                    .to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Read `etc/<file>` under `rootfs` without following symlinks out of it:
/// a symlinked passwd file is treated as absent.
fn read_etc(rootfs: &Path, file: &str) -> String {
    let etc = rootfs.join("etc");
    let path = etc.join(file);
    let plain = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| !m.file_type().is_symlink());
    if plain(&etc) && plain(&path) {
        fs::read_to_string(&path).unwrap_or_default()
    } else {
        String::new()
    }
}

/// Read `etc/<file>` as an overlay of `snapshots` (bottom layer first) will
/// show it, without mounting them: the topmost layer that has `etc/<file>`
/// decides. An overlay whiteout (a 0/0 character device) of `etc` or of the
/// file hides it in every layer below, and so does an opaque `etc`
/// directory for the layers below it. Symlinks count as absent, as in
/// `read_etc`.
fn read_etc_layers(snapshots: &[PathBuf], file: &str) -> String {
    for layer in snapshots.iter().rev() {
        let etc = layer.join("etc");
        let Ok(meta) = fs::symlink_metadata(&etc) else {
            continue;
        };
        // A whiteout, a symlink or a file where /etc should be.
        if !meta.is_dir() {
            return String::new();
        }
        let path = etc.join(file);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => return fs::read_to_string(&path).unwrap_or_default(),
            Ok(_) => return String::new(),
            Err(_) => {}
        }
        let opaque = rustix::fs::getxattr(&etc, "trusted.overlay.opaque", &mut [0u8; 1])
            .is_ok_and(|n| n == 1);
        if opaque {
            return String::new();
        }
    }
    String::new()
}

/// Resolve `user` against the image's snapshots (bottom layer first), before
/// any rootfs is mounted: see `read_etc_layers`.
pub fn resolve_in_layers(snapshots: &[PathBuf], user: &str) -> Result<Identity, UserError> {
    resolve_in(
        &read_etc_layers(snapshots, "passwd"),
        &read_etc_layers(snapshots, "group"),
        user,
    )
}

/// Resolve `user` (`name|uid[:group|gid]`, empty = root) against the files
/// of the container's root filesystem.
pub fn resolve(rootfs: &Path, user: &str) -> Result<Identity, UserError> {
    resolve_in(
        &read_etc(rootfs, "passwd"),
        &read_etc(rootfs, "group"),
        user,
    )
}

pub fn resolve_in(passwd: &str, group: &str, user: &str) -> Result<Identity, UserError> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = match u.parse::<u32>() {
        Ok(uid) => users.iter().find(|e| e.uid == uid),
        Err(_) => Some(
            users
                .iter()
                .find(|e| e.name == u)
                .ok_or_else(|| UserError::NoUser(u.to_string()))?,
        ),
    };
    let uid = match entry {
        Some(e) => e.uid,
        // A numeric uid need not exist in passwd (docker allows it).
        None => u.parse().map_err(|_| UserError::NoUser(u.to_string()))?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        },
        None => entry.map_or(0, |e| e.gid),
    };
    let additional_gids = match (entry, g) {
        (Some(e), None) => {
            let mut v: Vec<u32> = groups
                .iter()
                .filter(|grp| grp.members.contains(&e.name) && grp.gid != gid)
                .map(|grp| grp.gid)
                .collect();
            v.dedup();
            v
        }
        _ => Vec::new(),
    };
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home: entry.map_or_else(|| "/".to_string(), |e| e.home.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\nbroken line\nnohome:x:7:7::\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nstaff:x:50:www,other\nwheel:x:10:www\n";

    #[test]
    fn names_and_numbers() {
        let root = resolve_in(PASSWD, GROUP, "").unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let www = resolve_in(PASSWD, GROUP, "www").unwrap();
        assert_eq!((www.uid, www.gid), (33, 33));
        assert_eq!(www.additional_gids, vec![50, 10]);
        assert_eq!(www.home, "/var/www");
        let explicit = resolve_in(PASSWD, GROUP, "www:staff").unwrap();
        assert_eq!((explicit.gid, explicit.additional_gids.len()), (50, 0));
        let numeric = resolve_in(PASSWD, GROUP, "1000:1000").unwrap();
        assert_eq!(
            (numeric.uid, numeric.gid, numeric.home.as_str()),
            (1000, 1000, "/")
        );
        assert_eq!(resolve_in(PASSWD, GROUP, "nohome").unwrap().home, "/");
    }

    #[test]
    fn unknown_names() {
        assert_eq!(
            resolve_in(PASSWD, GROUP, "nobody"),
            Err(UserError::NoUser("nobody".into()))
        );
        assert_eq!(
            resolve_in(PASSWD, GROUP, "www:nogroup"),
            Err(UserError::NoGroup("nogroup".into()))
        );
        // No passwd file at all: numeric ids still work.
        assert_eq!(resolve_in("", "", "5").unwrap().uid, 5);
    }

    /// Layers as the image store unpacks them: the top one decides, overlay
    /// whiteouts and opaque directories hide what is below.
    #[test]
    fn reads_through_the_layers() {
        use rustix::fs::{mknodat, setxattr, FileType, Mode, XattrFlags, CWD};
        let dir = tempfile::tempdir().unwrap();
        let layer = |name: &str, passwd: Option<&str>| {
            let l = dir.path().join(name);
            fs::create_dir_all(l.join("etc")).unwrap();
            if let Some(p) = passwd {
                fs::write(l.join("etc/passwd"), p).unwrap();
            }
            l
        };
        let base = layer(
            "base",
            Some("root:x:0:0::/root:/bin/sh\nold:x:5:5::/o:/bin/sh\n"),
        );
        let mid = layer("mid", None);
        let top = layer(
            "top",
            Some("root:x:0:0::/root:/bin/sh\nnew:x:6:6::/n:/bin/sh\n"),
        );
        fs::write(base.join("etc/group"), "g:x:9:new\n").unwrap();

        // The top layer's passwd, the base layer's group (nothing above it).
        let ids = resolve_in_layers(&[base.clone(), mid.clone(), top.clone()], "new").unwrap();
        assert_eq!(
            (ids.uid, ids.gid, ids.additional_gids.clone()),
            (6, 6, vec![9])
        );
        assert!(resolve_in_layers(&[base.clone(), mid.clone(), top.clone()], "old").is_err());
        assert_eq!(
            resolve_in_layers(&[base.clone(), mid.clone()], "old")
                .unwrap()
                .uid,
            5
        );

        // A whiteout of the file in the middle layer hides the base's.
        let whiteout = |p: &Path| {
            mknodat(CWD, p, FileType::CharacterDevice, Mode::empty(), 0).unwrap();
        };
        whiteout(&mid.join("etc/passwd"));
        assert_eq!(
            resolve_in_layers(&[base.clone(), mid.clone()], "old"),
            Err(UserError::NoUser("old".into()))
        );
        // An opaque etc in the middle layer hides the base's group file.
        fs::remove_file(mid.join("etc/passwd")).unwrap();
        setxattr(
            mid.join("etc"),
            "trusted.overlay.opaque",
            b"y",
            XattrFlags::empty(),
        )
        .unwrap();
        assert_eq!(read_etc_layers(&[base.clone(), mid.clone()], "group"), "");
        // A whiteout of etc itself hides everything below.
        let gone = dir.path().join("gone");
        fs::create_dir_all(&gone).unwrap();
        whiteout(&gone.join("etc"));
        assert_eq!(read_etc_layers(&[base.clone(), gone], "passwd"), "");
        // A symlinked passwd counts as absent (it could point at the host).
        let link = layer("link", None);
        std::os::unix::fs::symlink("/etc/passwd", link.join("etc/passwd")).unwrap();
        assert_eq!(read_etc_layers(&[base, link], "passwd"), "");
    }
}
