//! Host-local IP address management, persisted on disk: one file per
//! allocated address (`<dir>/<ip>`, holding the owner's id), created with
//! O_EXCL so no address is ever handed out twice, plus the last address
//! handed out, so a freed address is not reused at once (a stale peer's ARP
//! cache or connection would otherwise reach the new owner).
//!
//! Callers serialise allocate/release with the network lock (mod.rs); the
//! O_EXCL create is a second guard.

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::cidr::Ipv4Cidr;

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no free IP address left in {cidr} ({used} in use)")]
    Exhausted { cidr: Ipv4Cidr, used: usize },
}

pub struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Cidr,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> IpamError + '_ {
    move |source| IpamError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Ipam {
    pub fn new(dir: PathBuf, cidr: Ipv4Cidr) -> Ipam {
        Ipam { dir, cidr }
    }

    /// Every allocation: (address, owner id).
    pub fn list(&self) -> Result<Vec<(Ipv4Addr, String)>, IpamError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            let Ok(ip) = entry.file_name().to_string_lossy().parse::<Ipv4Addr>() else {
                continue;
            };
            let owner = fs::read_to_string(entry.path()).unwrap_or_default();
            out.push((ip, owner.trim().to_string()));
        }
        out.sort();
        Ok(out)
    }

    /// Allocate an address for `owner`: the next free one after the last
    /// handed out, skipping network, gateway and broadcast addresses.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let last_path = self.dir.join("last_reserved_ip");
        let size = self.cidr.size();
        // Usable host numbers: 2 ..= size-2 (1 is the gateway).
        if size < 4 {
            return Err(IpamError::Exhausted {
                cidr: self.cidr,
                used: 0,
            });
        }
        let first = 2u32;
        let last = size - 2;
        let start = fs::read_to_string(&last_path)
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .filter(|ip| self.cidr.contains(*ip))
            .map(|ip| u32::from(ip) - u32::from(self.cidr.network()) + 1)
            .filter(|n| (first..=last).contains(n))
            .unwrap_or(first);
        let count = last - first + 1;
        for i in 0..count {
            let n = first + (start - first + i) % count;
            let Some(ip) = self.cidr.nth(n) else { continue };
            let path = self.dir.join(ip.to_string());
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(owner.as_bytes()).map_err(io_err(&path))?;
                    f.sync_all().map_err(io_err(&path))?;
                    fs::write(&last_path, ip.to_string()).map_err(io_err(&last_path))?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Err(IpamError::Exhausted {
            cidr: self.cidr,
            used: self.list()?.len(),
        })
    }

    /// Release every address `owner` holds (none is fine).
    pub fn release(&self, owner: &str) -> Result<(), IpamError> {
        for (ip, o) in self.list()? {
            if o == owner {
                let path = self.dir.join(ip.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(prefix: u8) -> (tempfile::TempDir, Ipam) {
        let dir = tempfile::tempdir().unwrap();
        let cidr = Ipv4Cidr::new(Ipv4Addr::new(10, 42, 0, 0), prefix).unwrap();
        let ipam = Ipam::new(dir.path().join("ipam"), cidr);
        (dir, ipam)
    }

    #[test]
    fn hands_out_distinct_addresses_and_round_robins() {
        let (_d, ipam) = ipam(24);
        let a = ipam.allocate("a").unwrap();
        let b = ipam.allocate("b").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 42, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 42, 0, 3));
        ipam.release("a").unwrap();
        // Not reused at once.
        assert_eq!(ipam.allocate("c").unwrap(), Ipv4Addr::new(10, 42, 0, 4));
        assert_eq!(ipam.list().unwrap().len(), 2);
    }

    #[test]
    fn exhaustion_is_an_error_and_release_frees() {
        let (_d, ipam) = ipam(29); // .2 ..= .6: five addresses
        for i in 0..5 {
            ipam.allocate(&format!("c{i}")).unwrap();
        }
        let err = ipam.allocate("x").unwrap_err();
        assert!(
            err.to_string()
                .contains("no free IP address left in 10.42.0.0/29 (5 in use)"),
            "{err}"
        );
        ipam.release("c2").unwrap();
        assert_eq!(ipam.allocate("x").unwrap(), Ipv4Addr::new(10, 42, 0, 4));
        ipam.release("nobody").unwrap();
    }
}
