//! A container's side of the bridge: its namespace, the veth pair (host end
//! on the bridge, `eth0` inside), address and default route — as steps on
//! `Links` (links.rs), each recorded with its undo, so a failure part-way
//! leaves nothing: what was done is undone in reverse order.

use std::io;
use std::path::PathBuf;

use super::attachment::Attachment;
use super::error::NetError;
use super::links::{Links, VethPair};
use super::rtnl::RtnlError;

/// The name of the container's end, inside its namespace.
const PEER: &str = "eth0";

/// What a step left that must go if a later one fails.
enum Undo {
    Netns(PathBuf),
    Link(String),
}

/// Namespace, veth pair (host end on the bridge, `eth0` inside), address
/// and default route. On failure nothing of it is left.
pub(super) fn plumb(
    links: &mut dyn Links,
    bridge: &str,
    bridge_index: u32,
    a: &Attachment,
) -> Result<(), NetError> {
    let mut done = Vec::new();
    let result = steps(links, bridge, bridge_index, a, &mut done);
    if result.is_err() {
        undo(links, done);
    }
    result
}

fn steps(
    links: &mut dyn Links,
    bridge: &str,
    bridge_index: u32,
    a: &Attachment,
    done: &mut Vec<Undo>,
) -> Result<(), NetError> {
    links.create_netns(&a.netns)?;
    done.push(Undo::Netns(a.netns.clone()));
    let mtu = links.link_mtu(bridge)?;
    links.add_veth(&VethPair {
        host: &a.host_veth,
        peer: PEER,
        master: bridge_index,
        mtu,
        netns: &a.netns,
    })?;
    // The peer goes with it, and what is set on either below.
    done.push(Undo::Link(a.host_veth.clone()));
    // Hairpin: a container reaching its own published port comes back
    // out of the port it came in by. With br_netfilter loaded the DNAT
    // happens while bridging, so the bridge must allow that (as Docker
    // sets it without its userland proxy).
    let port = find(links, &a.host_veth)?;
    links.set_hairpin(&a.host_veth, port)?;
    let (ip, prefix, gateway) = (a.ip, a.prefix, a.gateway);
    links.in_netns(&a.netns, &mut |inner: &mut dyn Links| {
        if let Some(lo) = inner.link_index("lo")? {
            inner.set_up("lo", lo)?;
        }
        let eth0 = find(inner, PEER)?;
        inner.add_address(eth0, ip, prefix)?;
        inner.set_up(PEER, eth0)?;
        inner.add_default_route(eth0, gateway)
    })
}

fn find(links: &mut dyn Links, name: &str) -> Result<u32, NetError> {
    links.link_index(name)?.ok_or_else(|| {
        NetError::Rtnl(RtnlError {
            op: format!("find {name}"),
            source: io::Error::from_raw_os_error(nix::libc::ENODEV),
        })
    })
}

/// Best effort, newest first; each failure is logged, the rest still run.
fn undo(links: &mut dyn Links, done: Vec<Undo>) {
    for step in done.into_iter().rev() {
        let result = match &step {
            Undo::Link(name) => match links.link_index(name) {
                Ok(Some(index)) => links.del_link(name, index),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Undo::Netns(handle) => links.remove_netns(handle),
        };
        if let Err(e) = result {
            tracing::warn!("{e}");
        }
    }
}

/// Best effort: remove the host veth (its peer goes with it) and the
/// namespace handle — what `plumb` made, undone in the same order.
pub(super) fn unplumb(links: &mut dyn Links, a: &Attachment) {
    undo(
        links,
        vec![
            Undo::Netns(a.netns.clone()),
            Undo::Link(a.host_veth.clone()),
        ],
    );
}

/// `veth` + 11 characters, within IFNAMSIZ: the start of a container's id
/// (random hex, unique enough), or of the SHA-256 of any other id. Pod
/// sandboxes' ids share long prefixes (`sandbox-k8s_…`): cut, they all
/// named the same link and only the first pod of a node got a network.
pub(super) fn host_veth_name(id: &str) -> String {
    let hex_id = id.len() >= 11 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let short: String = if hex_id {
        id[..11].to_string()
    } else {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(id.as_bytes()))[..11].to_string()
    };
    format!("veth{short}")
}

#[cfg(test)]
#[path = "veth_tests.rs"]
mod tests;
