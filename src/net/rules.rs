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

/// What `apply` is asked: the table for `after`, where it was made for
/// `before` last (the attachments before this change).
pub struct Rules<'a> {
    /// Records what was applied last (`<root>/net/rules.applied`).
    pub stamp: &'a Path,
    pub bridge: &'a str,
    pub cidr: Ipv4Cidr,
    /// The cluster's pod subnets, when the node is part of one.
    pub cluster: Option<Ipv4Cidr>,
    pub before: &'a [Attachment],
    pub after: &'a [Attachment],
}

/// Make table `ip skiff` hold the rules for `r.after`. The stamp records
/// what was applied last: when nothing changed (a container without
/// published ports comes or goes) and the table is still there, the kernel
/// is not asked anything — changing the table costs an RCU grace period,
/// which the next close of a netfilter socket waits for. When the stamp
/// shows the table was made for `r.before`, only what differs is sent (a
/// published port: one element of a map, nft/nat.rs); otherwise every chain
/// and map is emptied and refilled.
pub fn apply(r: &Rules<'_>) -> Result<(), NetError> {
    let cfg = config(r, r.after);
    let fingerprint = stamp_text(&cfg);
    let old = config(r, r.before);
    let stamp = r.stamp;
    let rules = |e: nft::NftError| NetError::Rules(e.to_string());
    let applied = fs::read_to_string(stamp).ok();
    if applied.as_deref() == Some(&fingerprint) && nft::table_exists().map_err(rules)? {
        return Ok(());
    }
    // Made for `before`: only what differs is sent. Whether the table is
    // still there is not asked (that would be one more socket, and its close
    // waits for the grace period): a diff against a table that is gone is
    // refused as a whole, and `nft::update` then states it in full.
    let old_text = stamp_text(&old);
    let from_old = old_text != fingerprint && applied.as_deref() == Some(&old_text);
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
    nft::update(from_old.then_some(&old), &cfg).map_err(rules)?;
    fs::write(stamp, fingerprint).map_err(|source| NetError::Io {
        path: stamp.to_path_buf(),
        source,
    })
}

fn stamp_text(cfg: &nft::Config) -> String {
    format!("layout {} {cfg:?}", nft::LAYOUT)
}

/// Forget what was applied (the table is being removed).
pub fn forget(stamp: &Path) {
    let _ = fs::remove_file(stamp);
}

fn config(r: &Rules<'_>, all: &[Attachment]) -> nft::Config {
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
        pod_cidr: r.cidr,
        bridge: r.bridge.to_string(),
        cluster_cidr: r.cluster,
        ports,
    }
}
