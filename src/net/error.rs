//! What can go wrong with the host bridge and container attachments.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::cidr::Ipv4Cidr;
use super::ipam::IpamError;
use super::netns::NetnsError;
use super::rtnl::RtnlError;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Rtnl(#[from] RtnlError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no free host port left to publish {port} on")]
    NoFreePort { port: String },
    #[error("port {port} is already published by container {owner}")]
    PortInUse { port: String, owner: String },
    #[error("the pod network {cidr} overlaps {addr}/{prefix} on {link}; choose another with --node-cidr")]
    Overlap {
        cidr: Ipv4Cidr,
        addr: Ipv4Addr,
        prefix: u8,
        link: String,
    },
    #[error("bridge {bridge} has {found}, expected gateway {expected}; remove it or use the same --node-cidr")]
    BridgeMismatch {
        bridge: String,
        found: String,
        expected: String,
    },
    #[error("bridge {bridge} belongs to the skiff root {owner}: one root per network namespace (its addresses and the nftables table are per root), so use --root {owner}")]
    BridgeOwner { bridge: String, owner: String },
    #[error("the rules of nftables table skiff: {0}")]
    Rules(String),
    #[error("network state {path}: {why}")]
    Corrupt { path: PathBuf, why: String },
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> NetError + '_ {
    move |source| NetError::Io {
        path: path.to_path_buf(),
        source,
    }
}
