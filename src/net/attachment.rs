//! One container's attachment to the host bridge, as recorded in
//! `<root>/net/attachments/<id>.json` (host.rs owns the records).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::ports::PublishedPort;

/// One container's place on the bridge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    pub id: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub bridge: String,
    pub host_veth: String,
    pub netns: PathBuf,
    pub ports: Vec<PublishedPort>,
}
