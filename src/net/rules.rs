//! From the node's attachments to the nftables table (nft/).

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use super::attachment::Attachment;
use super::cidr::Ipv4Cidr;
use super::error::NetError;
use super::nft;
use super::ports::Proto;

/// Make table `ip skiff` hold the rules for `all` attachments. `stamp`
/// records what was applied last: when nothing changed (a container without
/// published ports comes or goes) and the table is still there, the kernel
/// is not asked to rewrite it — rewriting costs an RCU grace period, which
/// the next close of a netfilter socket waits for.
pub fn apply(
    stamp: &Path,
    bridge: &str,
    cidr: Ipv4Cidr,
    all: &[Attachment],
) -> Result<(), NetError> {
    let cfg = config(bridge, cidr, all);
    let fingerprint = format!("layout {} {cfg:?}", nft::LAYOUT);
    let rules = |e: nft::NftError| NetError::Rules(e.to_string());
    if fs::read_to_string(stamp).is_ok_and(|s| s == fingerprint)
        && nft::table_exists().map_err(rules)?
    {
        return Ok(());
    }
    // Whatever happens next, the stamp must not claim a state the kernel
    // may not have.
    match fs::remove_file(stamp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(NetError::Io {
                path: stamp.to_path_buf(),
                source,
            })
        }
    }
    nft::apply(&cfg).map_err(rules)?;
    fs::write(stamp, fingerprint).map_err(|source| NetError::Io {
        path: stamp.to_path_buf(),
        source,
    })
}

/// Forget what was applied (the table is being removed).
pub fn forget(stamp: &Path) {
    let _ = fs::remove_file(stamp);
}

fn config(bridge: &str, cidr: Ipv4Cidr, all: &[Attachment]) -> nft::Config {
    let ports = all
        .iter()
        .flat_map(|a| a.ports.iter().map(move |p| (a.ip, p)))
        .map(|(ip, p): (Ipv4Addr, _)| nft::PortMapping {
            host_ip: p.host_ip,
            host_port: p.host_port,
            proto: match p.proto {
                Proto::Tcp => nft::Proto::Tcp,
                Proto::Udp => nft::Proto::Udp,
            },
            container_ip: ip,
            container_port: p.container_port,
        })
        .collect();
    nft::Config {
        pod_cidr: cidr,
        bridge: bridge.to_string(),
        ports,
    }
}
