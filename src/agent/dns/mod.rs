//! Cluster DNS, embedded in the agent (no CoreDNS pod): the cluster's
//! names from the Services and EndpointSlices the service proxy watches
//! (records.rs), everything else forwarded to the node's resolvers
//! (upstream.rs) through hickory's caching resolver (positive and negative
//! answers kept for their TTLs). Served over UDP and TCP on the node's
//! address, port 53: the `kube-system/kube-dns` Service (10.43.0.10) sends
//! each node's pods to their own node's server (internalTrafficPolicy
//! Local). Answers too big for a UDP client are truncated by hickory-server
//! (the client asks again over TCP).
//!
//! ```text
//! records.rs    the cluster's names (pure)
//! upstream.rs   the node's resolvers from resolv.conf (loopback stubs skipped)
//! mod.rs        the hickory request handler and the listeners
//! ```

pub mod records;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, CNAME, PTR, SOA, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio_util::sync::CancellationToken;

use self::records::{Answer, Data, QType, Records, Rr, TTL};

/// The DNS port.
pub const PORT: u16 = 53;
/// How long a TCP client may stay idle.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forwarded query may take in all.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// CNAMEs followed at most when an ExternalName points at another.
const MAX_CHASE: usize = 8;

/// The cluster's records, shared by the watch that fills them and the
/// server that answers from them.
pub type SharedRecords = Arc<RwLock<Records>>;

/// Requests answered at once at most; past this, SERVFAIL at once (each
/// forwarded query may wait for its upstream, and a client must not pile
/// them up without bound).
const MAX_IN_FLIGHT: usize = 1024;

/// The request handler: cluster names first, then the upstreams.
struct Handler {
    records: SharedRecords,
    upstream: Option<TokioResolver>,
    soa: Record,
    /// Who may ask: the pods, the node itself. Anyone else reaching the
    /// node's port 53 is refused (no open resolver, no list of the
    /// cluster's names for the network).
    allowed: Vec<crate::net::cidr::Ipv4Cidr>,
    in_flight: tokio::sync::Semaphore,
}

impl Handler {
    fn allows(&self, src: IpAddr) -> bool {
        match src {
            IpAddr::V4(ip) => ip.is_loopback() || self.allowed.iter().any(|c| c.contains(ip)),
            IpAddr::V6(ip) => ip.is_loopback(),
        }
    }
}

fn read(r: &SharedRecords) -> std::sync::RwLockReadGuard<'_, Records> {
    r.read().unwrap_or_else(|e| e.into_inner())
}

fn qtype(t: RecordType) -> QType {
    match t {
        RecordType::A => QType::A,
        RecordType::AAAA => QType::Aaaa,
        RecordType::SRV => QType::Srv,
        RecordType::PTR => QType::Ptr,
        RecordType::CNAME => QType::Cname,
        _ => QType::Other,
    }
}

fn name(s: &str) -> Option<Name> {
    Name::from_ascii(format!("{}.", s.trim_end_matches('.'))).ok()
}

fn record(rr: &Rr) -> Option<Record> {
    let data = match &rr.data {
        Data::A(ip) => RData::A(A(*ip)),
        Data::Cname(t) => RData::CNAME(CNAME(name(t)?)),
        Data::Srv { port, target } => RData::SRV(SRV::new(0, 100, *port, name(target)?)),
        Data::Ptr(t) => RData::PTR(PTR(name(t)?)),
    };
    Some(Record::from_rdata(name(&rr.name)?, TTL, data))
}

/// What a query gets: the code, the records, and whether this server
/// is the authority for it.
struct Reply {
    code: ResponseCode,
    answers: Vec<Record>,
    additionals: Vec<Record>,
    soa: Vec<Record>,
    authoritative: bool,
}

impl Reply {
    fn code(code: ResponseCode) -> Reply {
        Reply {
            code,
            answers: Vec::new(),
            additionals: Vec::new(),
            soa: Vec::new(),
            authoritative: false,
        }
    }
}

impl Handler {
    async fn resolve(&self, qname: &Name, rtype: RecordType) -> Reply {
        let mut reply = Reply::code(ResponseCode::NoError);
        let mut current = qname.to_ascii();
        for _ in 0..MAX_CHASE {
            let answer = read(&self.records).answer(&current, qtype(rtype));
            match answer {
                Answer::Found {
                    answers,
                    additionals,
                } => {
                    reply.authoritative = reply.answers.is_empty();
                    let next = answers.iter().find_map(|a| match &a.data {
                        Data::Cname(t) if rtype != RecordType::CNAME => Some(t.clone()),
                        _ => None,
                    });
                    reply.answers.extend(answers.iter().filter_map(record));
                    reply
                        .additionals
                        .extend(additionals.iter().filter_map(record));
                    match next {
                        Some(target) => current = target,
                        None => return reply,
                    }
                }
                Answer::NoData | Answer::NxDomain if reply.answers.is_empty() => {
                    reply.authoritative = true;
                    reply.soa.push(self.soa.clone());
                    if answer == Answer::NxDomain {
                        reply.code = ResponseCode::NXDomain;
                    }
                    return reply;
                }
                // A CNAME into the cluster's zone that leads nowhere: the
                // CNAME is the answer.
                Answer::NoData | Answer::NxDomain => return reply,
                Answer::NotOurs => {
                    let Some(target) = name(&current) else {
                        return Reply::code(ResponseCode::FormErr);
                    };
                    let forwarded = self.forward(&target, rtype).await;
                    if reply.answers.is_empty() {
                        return forwarded;
                    }
                    reply.answers.extend(forwarded.answers);
                    return reply;
                }
            }
        }
        reply
    }

    async fn forward(&self, qname: &Name, rtype: RecordType) -> Reply {
        let Some(upstream) = &self.upstream else {
            return Reply::code(ResponseCode::ServFail);
        };
        match tokio::time::timeout(UPSTREAM_TIMEOUT, upstream.lookup(qname.clone(), rtype)).await {
            Ok(Ok(lookup)) => Reply {
                code: ResponseCode::NoError,
                answers: lookup.answers().to_vec(),
                additionals: Vec::new(),
                soa: Vec::new(),
                authoritative: false,
            },
            Ok(Err(NetError::Dns(DnsError::NoRecordsFound(no)))) => Reply {
                code: no.response_code,
                answers: Vec::new(),
                additionals: Vec::new(),
                soa: no
                    .soa
                    .map(|s| s.into_record_of_rdata())
                    .into_iter()
                    .collect(),
                authoritative: false,
            },
            Ok(Err(e)) => {
                tracing::debug!(%qname, "forwarding: {e}");
                Reply::code(ResponseCode::ServFail)
            }
            Err(_) => Reply::code(ResponseCode::ServFail),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e
        });
        let builder = || {
            let mut b = MessageResponseBuilder::new(&request.queries, None);
            if let Some(e) = &edns {
                b.edns(e);
            }
            b
        };
        let permit = if self.allows(request.src().ip()) {
            self.in_flight.try_acquire().ok()
        } else {
            None
        };
        let query = match request.request_info() {
            Ok(info)
                if permit.is_some()
                    && request.metadata.message_type == MessageType::Query
                    && request.metadata.op_code == OpCode::Query =>
            {
                info.query.original().clone()
            }
            _ => {
                let code = if !self.allows(request.src().ip()) {
                    ResponseCode::Refused
                } else if permit.is_none() {
                    ResponseCode::ServFail
                } else if request.metadata.message_type == MessageType::Query
                    && request.metadata.op_code != OpCode::Query
                {
                    ResponseCode::NotImp
                } else {
                    ResponseCode::FormErr
                };
                let response = builder().error_msg(&request.metadata, code);
                return match response_handle.send_response(response).await {
                    Ok(info) => info,
                    Err(_) => fail(request),
                };
            }
        };
        let reply = self.resolve(query.name(), query.query_type()).await;
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        metadata.authoritative = reply.authoritative;
        metadata.response_code = reply.code;
        let response = builder().build(
            metadata,
            reply.answers.iter(),
            std::iter::empty(),
            reply.soa.iter(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("sending a DNS answer: {e}");
                fail(request)
            }
        }
    }
}

fn fail(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    hickory_resolver::proto::op::Header {
        metadata,
        counts: Default::default(),
    }
    .into()
}

/// The zone's SOA, for negative answers (its minimum is the negative TTL).
fn soa(domain: &str) -> Option<Record> {
    let zone = name(domain)?;
    let data = SOA::new(
        name(&format!("ns.dns.{domain}"))?,
        name(&format!("hostmaster.{domain}"))?,
        1,
        7200,
        1800,
        86400,
        TTL,
    );
    Some(Record::from_rdata(zone, TTL, RData::SOA(data)))
}

/// A caching resolver over `servers`; none when there are none.
fn forwarder(servers: &[IpAddr]) -> Option<TokioResolver> {
    if servers.is_empty() {
        return None;
    }
    let config = ResolverConfig::from_name_servers(
        servers
            .iter()
            .map(|ip| NameServerConfig::udp_and_tcp(*ip))
            .collect(),
    );
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    // A forwarder hands on the CNAMEs it was given (RFC 1034 4.3.2), and
    // never answers from this node's /etc/hosts.
    opts.preserve_intermediates = true;
    opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    opts.ndots = 0;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    match builder.build() {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("cluster DNS: no upstream resolver: {e}");
            None
        }
    }
}

/// Where and how the cluster DNS serves.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub listen: SocketAddr,
    pub domain: String,
    /// The node's resolvers; never this server itself (see [`upstreams`]).
    pub upstreams: Vec<IpAddr>,
    /// Source networks answered besides loopback (pods, the node).
    pub allowed: Vec<crate::net::cidr::Ipv4Cidr>,
}

/// `servers` without those that lead back here: the listen address and
/// the cluster's Service range (the cluster DNS address among them). A
/// node whose resolv.conf names the cluster DNS (to resolve Services from
/// the host) would otherwise forward every unknown name to itself.
pub fn upstreams(
    servers: Vec<IpAddr>,
    listen: IpAddr,
    service_cidr: crate::net::cidr::Ipv4Cidr,
) -> Vec<IpAddr> {
    servers
        .into_iter()
        .filter(|ip| *ip != listen)
        .filter(|ip| !matches!(ip, IpAddr::V4(v4) if service_cidr.contains(*v4)))
        .collect()
}

/// Serve until `cancel`. Fails only when the address cannot be bound.
pub async fn serve(
    cfg: DnsConfig,
    records: SharedRecords,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let udp = tokio::net::UdpSocket::bind(cfg.listen).await?;
    let tcp = tokio::net::TcpListener::bind(cfg.listen).await?;
    if cfg.upstreams.is_empty() {
        tracing::warn!("cluster DNS: no upstream resolvers (all loopback or none in resolv.conf; set --resolv-conf): names outside the cluster fail");
    }
    let handler = Handler {
        records,
        upstream: forwarder(&cfg.upstreams),
        soa: soa(&cfg.domain).ok_or_else(|| std::io::Error::other("invalid cluster domain"))?,
        allowed: cfg.allowed.clone(),
        in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
    };
    let mut server = hickory_server::Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_TIMEOUT, 64 * 1024);
    tracing::info!(addr = %cfg.listen, upstreams = ?cfg.upstreams, "serving cluster DNS");
    tokio::select! {
        _ = cancel.cancelled() => {
            let _ = server.shutdown_gracefully().await;
        }
        r = server.block_until_done() => {
            if let Err(e) = r {
                tracing::warn!("cluster DNS stopped: {e}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_never_lead_back_here() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let kept = upstreams(
            vec![
                ip("10.43.0.10"),
                ip("192.0.2.1"),
                ip("192.168.1.5"),
                ip("2001:db8::1"),
            ],
            ip("192.168.1.5"),
            "10.43.0.0/16".parse().unwrap(),
        );
        assert_eq!(kept, [ip("192.0.2.1"), ip("2001:db8::1")]);
    }
}
