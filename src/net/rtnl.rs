//! A blocking rtnetlink client: links, addresses, routes and neighbour/FDB
//! entries of the network namespace the calling thread was in when the
//! socket was opened.
//!
//! rtnetlink's builders make the messages; only the request/acknowledge loop
//! is ours, because the daemonless CLI has no async runtime to drive
//! rtnetlink's connection and a socket stays bound to the namespace it was
//! opened in (see netns.rs).

use std::io;
use std::net::Ipv4Addr;

use netlink_packet_core::NLM_F_REPLACE;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_packet_route::route::{RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rtnetlink::{AddressMessageBuilder, LinkUnspec, RouteMessageBuilder};

#[derive(Debug, thiserror::Error)]
#[error("netlink {op}: {source}")]
pub struct RtnlError {
    pub op: String,
    #[source]
    pub source: io::Error,
}

impl RtnlError {
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

fn err(op: impl Into<String>, source: io::Error) -> RtnlError {
    RtnlError {
        op: op.into(),
        source,
    }
}

pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    /// A socket in the calling thread's current network namespace.
    pub fn open() -> Result<Rtnl, RtnlError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| err("socket", e))?;
        sock.bind_auto().map_err(|e| err("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| err("connect", e))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Send one request and collect the replies up to its acknowledgement
    /// (or the end of a dump).
    fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, RtnlError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(|e| err(op, e))?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full().map_err(|e| err(op, e))?;
            let mut offset = 0;
            while offset < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| err(op, io::Error::new(io::ErrorKind::InvalidData, e)))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(err(op, io::Error::from(io::ErrorKind::InvalidData)));
                }
                offset += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(out),
                        Some(_) => return Err(err(op, e.to_io())),
                    },
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if !dump {
                            // Without NLM_F_ACK a get answers with one message.
                            if flags & NLM_F_ACK == 0 {
                                return Ok(out);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The index of link `name`, if it exists.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, RtnlError> {
        Ok(self.link(name)?.map(|l| l.header.index))
    }

    pub fn link(&mut self, name: &str) -> Result<Option<LinkMessage>, RtnlError> {
        let msg = LinkMessageBuilder::new().name(name.to_string()).build();
        match self.request(
            &format!("get link {name}"),
            RouteNetlinkMessage::GetLink(msg),
            0,
        ) {
            Ok(mut replies) => Ok(replies.pop().and_then(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.errno() == Some(nix::libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Link `index`, if it exists.
    pub fn link_at(&mut self, index: u32) -> Result<Option<LinkMessage>, RtnlError> {
        let msg = LinkMessageBuilder::new().index(index).build();
        let replies = match self.request("get link", RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(r) => r,
            Err(e) if e.errno() == Some(nix::libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(replies.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        }))
    }

    /// The name of link `index`, if it exists.
    pub fn link_name(&mut self, index: u32) -> Result<Option<String>, RtnlError> {
        Ok(self.link_at(index)?.and_then(|l| {
            l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            })
        }))
    }

    /// Create a link; fails with EEXIST if one of that name exists.
    pub fn add_link(&mut self, what: &str, msg: LinkMessage) -> Result<(), RtnlError> {
        self.request(
            &format!("add {what}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Change attributes (up, controller, MTU, …) of an existing link.
    pub fn set_link(&mut self, what: &str, msg: LinkMessage) -> Result<(), RtnlError> {
        self.request(
            &format!("set {what}"),
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }

    /// Change link-type or port data of an existing link (RTM_NEWLINK
    /// without NLM_F_CREATE: the kernel's changelink path, which RTM_SETLINK
    /// does not reach).
    pub fn change_link(&mut self, what: &str, msg: LinkMessage) -> Result<(), RtnlError> {
        self.request(
            &format!("change {what}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }

    pub fn set_up(&mut self, name: &str, index: u32) -> Result<(), RtnlError> {
        let msg = LinkMessageBuilder::new().index(index).up().build();
        self.set_link(&format!("{name} up"), msg)
    }

    pub fn del_link(&mut self, name: &str, index: u32) -> Result<(), RtnlError> {
        let msg = LinkMessageBuilder::new().index(index).build();
        self.request(
            &format!("delete link {name}"),
            RouteNetlinkMessage::DelLink(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }

    /// Add `addr/prefix` to a link; an existing identical address is fine.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), RtnlError> {
        let msg = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(addr, prefix)
            .build();
        match self.request(
            &format!("add address {addr}/{prefix}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.errno() == Some(nix::libc::EEXIST) => Ok(()),
            other => other.map(drop),
        }
    }

    /// The IPv4 addresses (with prefix lengths) of every link.
    pub fn addresses(&mut self) -> Result<Vec<(u32, Ipv4Addr, u8)>, RtnlError> {
        let mut msg = netlink_packet_route::address::AddressMessage::default();
        msg.header.family = netlink_packet_route::AddressFamily::Inet;
        let replies = self.request(
            "list addresses",
            RouteNetlinkMessage::GetAddress(msg),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for r in replies {
            if let RouteNetlinkMessage::NewAddress(a) = r {
                for attr in &a.attributes {
                    if let netlink_packet_route::address::AddressAttribute::Local(
                        std::net::IpAddr::V4(ip),
                    ) = attr
                    {
                        out.push((a.header.index, *ip, a.header.prefix_len));
                    }
                }
            }
        }
        Ok(out)
    }

    /// A default route via `gateway` out of link `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<(), RtnlError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        match self.request(
            &format!("add default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.errno() == Some(nix::libc::EEXIST) => Ok(()),
            other => other.map(drop),
        }
    }

    /// The IPv4 routes of the main table.
    pub fn routes(&mut self) -> Result<Vec<RouteMessage>, RtnlError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let replies = self.request(
            "list routes",
            RouteNetlinkMessage::GetRoute(msg),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// Add a route; fails with EEXIST if the table holds one to the same
    /// destination with the same TOS and metric, unless `replace`, which
    /// overwrites that one (the caller makes sure it is its own).
    pub fn add_route(
        &mut self,
        what: &str,
        msg: RouteMessage,
        replace: bool,
    ) -> Result<(), RtnlError> {
        let how = if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.request(
            &format!("add route {what}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_ACK | NLM_F_CREATE | how,
        )
        .map(drop)
    }

    /// Delete the first route matching `msg`: its destination, and its
    /// protocol, gateway and output link where set. ESRCH if none does.
    pub fn del_route(&mut self, what: &str, msg: RouteMessage) -> Result<(), RtnlError> {
        self.request(
            &format!("delete route {what}"),
            RouteNetlinkMessage::DelRoute(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }

    /// Every neighbour entry of `family`: Inet for the ARP table, Bridge for
    /// the forwarding databases (a vxlan device's included).
    pub fn neighbours(
        &mut self,
        family: AddressFamily,
    ) -> Result<Vec<NeighbourMessage>, RtnlError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family;
        let replies = self.request(
            &format!("list neighbours ({family:?})"),
            RouteNetlinkMessage::GetNeighbour(msg),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => Some(n),
                _ => None,
            })
            .collect())
    }

    /// Add a neighbour or FDB entry, or overwrite the one of the same key
    /// (address and link; MAC and link for an FDB entry).
    pub fn set_neighbour(&mut self, what: &str, msg: NeighbourMessage) -> Result<(), RtnlError> {
        self.request(
            &format!("set {what}"),
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Delete a neighbour or FDB entry; ENOENT if there is none.
    pub fn del_neighbour(&mut self, what: &str, msg: NeighbourMessage) -> Result<(), RtnlError> {
        self.request(
            &format!("delete {what}"),
            RouteNetlinkMessage::DelNeighbour(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }

    /// The MTU of the link the default route leaves by (the uplink), if any.
    pub fn uplink_mtu(&mut self) -> Result<Option<u32>, RtnlError> {
        let oif = self.routes()?.into_iter().find_map(|r| {
            (r.header.destination_prefix_length == 0)
                .then(|| {
                    r.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Oif(i) => Some(*i),
                        _ => None,
                    })
                })
                .flatten()
        });
        let Some(oif) = oif else {
            return Ok(None);
        };
        let msg = LinkMessageBuilder::new().index(oif).build();
        let replies = self.request("get uplink", RouteNetlinkMessage::GetLink(msg), 0)?;
        Ok(replies.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            }),
            _ => None,
        }))
    }
}

type LinkMessageBuilder = rtnetlink::LinkMessageBuilder<LinkUnspec>;
