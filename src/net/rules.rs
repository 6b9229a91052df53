//! From the node's attachments to the nftables table (nft/).

use std::net::Ipv4Addr;

use super::cidr::Ipv4Cidr;
use super::nft;
use super::node::{Attachment, NetError};
use super::ports::Proto;

/// Replace table `ip skiff` with the rules for `all` attachments.
pub fn apply(bridge: &str, cidr: Ipv4Cidr, all: &[Attachment]) -> Result<(), NetError> {
    let cfg = config(bridge, cidr, all);
    nft::apply(&cfg).map_err(|e| NetError::Rules(e.to_string()))
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
