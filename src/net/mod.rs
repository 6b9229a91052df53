//! Container and pod networking without external binaries: network
//! namespaces, the node bridge, veths, IPAM and (nft/) the nftables table,
//! all over netlink (see DESIGN.md, Networking).

mod bridge;
pub mod cidr;
pub mod ipam;
pub mod netns;
pub mod nft;
pub mod node;
pub mod ports;
pub mod rtnl;
pub mod rules;
mod veth;
