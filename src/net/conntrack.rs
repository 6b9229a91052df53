//! Conntrack entries removed over netlink (ctnetlink), no `conntrack`
//! binary. The service proxy uses it for UDP: a UDP "connection" lives
//! as long as packets keep coming, so a client that goes on sending to a
//! Service whose endpoint went away (or that had no endpoint when it
//! started) would keep hitting the old entry; deleting it makes the next
//! packet take the rules again and reach a live endpoint at once.
//!
//! Works in the calling thread's network namespace; needs CAP_NET_ADMIN.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error("conntrack netlink socket: {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("conntrack: unexpected netlink reply: {0}")]
    Protocol(String),
}

/// One UDP flow, as conntrack keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Where the client sent to (a Service address and port).
    pub orig_dst: (Ipv4Addr, u16),
    /// Who answers (after DNAT: the endpoint).
    pub reply_src: (Ipv4Addr, u16),
}

impl Flow {
    /// Whether the flow was DNATed (its replies come from elsewhere than
    /// it was sent to).
    pub fn nated(&self) -> bool {
        self.orig_dst != self.reply_src
    }
}

fn io_err(op: &'static str) -> impl Fn(io::Error) -> ConntrackError {
    move |source| ConntrackError::Io { op, source }
}

fn frame(inner: ConntrackMessage, flags: u16, seq: u32) -> Vec<u8> {
    let msg = NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
        NetfilterMessageInner::Conntrack(inner),
    );
    let mut m = NetlinkMessage::from(msg);
    m.header.flags = flags;
    m.header.sequence_number = seq;
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

/// The parts of a tuple conntrack reports.
#[derive(Default)]
struct Parts {
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
    sport: Option<u16>,
    dport: Option<u16>,
    proto: Option<Protocol>,
}

fn tuple_parts(t: &[Tuple]) -> Parts {
    let mut out = Parts::default();
    for part in t {
        match part {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(IpAddr::V4(a)) => out.src = Some(*a),
                        IPTuple::DestinationAddress(IpAddr::V4(a)) => out.dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(ps) => {
                for p in ps {
                    match p {
                        ProtoTuple::Protocol(pr) => out.proto = Some(*pr),
                        ProtoTuple::SourcePort(p) => out.sport = Some(*p),
                        ProtoTuple::DestinationPort(p) => out.dport = Some(*p),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The UDP flow of a dumped entry, with its original tuple (to delete it by).
fn udp_flow(attrs: &[ConntrackAttribute]) -> Option<(Flow, Vec<Tuple>)> {
    let mut orig = None;
    let mut reply = None;
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => orig = Some(t),
            ConntrackAttribute::CtaTupleReply(t) => reply = Some(t),
            _ => {}
        }
    }
    let orig = orig?;
    let o = tuple_parts(orig);
    let r = tuple_parts(reply?);
    if o.proto != Some(Protocol::Udp) {
        return None;
    }
    Some((
        Flow {
            orig_dst: (o.dst?, o.dport?),
            reply_src: (r.src?, r.sport?),
        },
        orig.clone(),
    ))
}

fn open() -> Result<Socket, ConntrackError> {
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(io_err("socket"))?;
    sock.bind_auto().map_err(io_err("bind"))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(io_err("connect"))?;
    Ok(sock)
}

/// Read replies to `seq` until the dump's end (`dump`) or an ack; the
/// conntrack messages seen, and the errno of an error reply.
fn read_until_done(
    sock: &Socket,
    dump: bool,
    mut on: impl FnMut(&[ConntrackAttribute]),
) -> Result<Option<i32>, ConntrackError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sock.recv(&mut &mut buf[..], 0).map_err(io_err("recv"))?;
        let mut off = 0;
        while off < n {
            let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[off..n])
                .map_err(|e| ConntrackError::Protocol(e.to_string()))?;
            let len = msg.header.length as usize;
            if len == 0 {
                return Err(ConntrackError::Protocol("zero-length frame".into()));
            }
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(None),
                NetlinkPayload::Error(e) => {
                    let code = e.code.map(|c| c.get()).unwrap_or(0);
                    if code == 0 && !dump {
                        return Ok(None);
                    }
                    if code != 0 {
                        return Ok(Some(-code));
                    }
                }
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
                    ..
                }) => on(&attrs),
                _ => {}
            }
            off += (len + 3) & !3;
        }
    }
}

/// Delete the UDP flows `doomed` picks; how many went.
pub fn delete_udp(doomed: impl Fn(&Flow) -> bool) -> Result<usize, ConntrackError> {
    let sock = open()?;
    let dump = frame(
        ConntrackMessage::Get(Vec::new()),
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
    );
    sock.send(&dump, 0).map_err(io_err("send"))?;
    let mut victims = Vec::new();
    read_until_done(&sock, true, |attrs| {
        if let Some((flow, tuple)) = udp_flow(attrs) {
            if doomed(&flow) {
                victims.push(tuple);
            }
        }
    })?;
    let mut gone = 0;
    for (i, tuple) in victims.into_iter().enumerate() {
        let del = frame(
            ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(tuple)]),
            NLM_F_REQUEST | NLM_F_ACK,
            2 + i as u32,
        );
        sock.send(&del, 0).map_err(io_err("send"))?;
        // ENOENT: it expired in between; fine.
        if read_until_done(&sock, false, |_| {})?.is_none() {
            gone += 1;
        }
    }
    Ok(gone)
}
