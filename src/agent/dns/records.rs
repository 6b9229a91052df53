//! The cluster's names, answered from Services and EndpointSlices as
//! CoreDNS's kubernetes plugin answers them (the DNS specification for
//! Kubernetes, dns-spec.md):
//!
//! - `<svc>.<ns>.svc.<domain>`: A → the ClusterIP; for a headless Service
//!   the ready endpoints' addresses; CNAME → the external name of an
//!   ExternalName Service.
//! - `<hostname>.<svc>.<ns>.svc.<domain>`: A → an endpoint with that
//!   hostname (StatefulSet pods through their headless Service).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for a named port.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A → a.b.c.d (CoreDNS's `pods insecure`).
//! - `d.c.b.a.in-addr.arpa`: PTR → a Service's or a named endpoint's name.
//!
//! Pure, and keyed so that an answer costs a hash lookup: the index is
//! kept per Service and changed per Service (what the watch reports).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// CoreDNS's kubernetes plugin's default TTL.
pub const TTL: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    A,
    Aaaa,
    Srv,
    Ptr,
    Cname,
    /// Anything else: names exist, data of that type does not.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    A(Ipv4Addr),
    Cname(String),
    Srv { port: u16, target: String },
    Ptr(String),
}

/// One resource record (class IN, TTL [`TTL`]); names are absolute
/// without the final dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    pub name: String,
    pub data: Data,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Found {
        answers: Vec<Rr>,
        additionals: Vec<Rr>,
    },
    /// The name exists, not with data of this type.
    NoData,
    /// In the cluster's zones, and no such name.
    NxDomain,
    /// Not the cluster's: forward it.
    NotOurs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    ClusterIp(Ipv4Addr),
    Headless,
    ExternalName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    name: String,
    proto: String,
    /// The Service's port (ClusterIP) or the endpoints' (headless).
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DnsEndpoint {
    ip: Ipv4Addr,
    hostname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    ports: Vec<Port>,
    endpoints: Vec<DnsEndpoint>,
}

/// (namespace, name).
type ServiceId = (String, String);

/// The cluster's records.
#[derive(Debug, Clone)]
pub struct Records {
    domain: String,
    /// By (namespace, name).
    services: HashMap<(String, String), Entry>,
    /// PTR targets by address, with the Service they come from.
    ptr: HashMap<Ipv4Addr, Vec<(String, ServiceId)>>,
}

impl Records {
    pub fn new(domain: &str) -> Records {
        Records {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            services: HashMap::new(),
            ptr: HashMap::new(),
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Set what `namespace/name` answers (`None`: it is gone).
    pub fn update(&mut self, key: &str, svc: Option<(&Service, &[&EndpointSlice])>) {
        let Some((ns, name)) = key.split_once('/') else {
            return;
        };
        let id = (ns.to_string(), name.to_string());
        if let Some(old) = self.services.remove(&id) {
            for ip in ptr_addresses(&old) {
                if let Some(v) = self.ptr.get_mut(&ip) {
                    v.retain(|(_, owner)| *owner != id);
                    if v.is_empty() {
                        self.ptr.remove(&ip);
                    }
                }
            }
        }
        let Some(entry) = svc.and_then(|(s, slices)| entry(s, slices)) else {
            return;
        };
        let base = format!("{name}.{ns}.svc.{}", self.domain);
        if let Kind::ClusterIp(ip) = entry.kind {
            self.ptr
                .entry(ip)
                .or_default()
                .push((base.clone(), id.clone()));
        }
        if entry.kind == Kind::Headless {
            for e in &entry.endpoints {
                if let Some(h) = &e.hostname {
                    self.ptr
                        .entry(e.ip)
                        .or_default()
                        .push((format!("{h}.{base}"), id.clone()));
                }
            }
        }
        self.services.insert(id, entry);
    }

    /// The answer to `qname` (any case, with or without the final dot).
    pub fn answer(&self, qname: &str, qtype: QType) -> Answer {
        let q = qname.trim_end_matches('.').to_ascii_lowercase();
        if let Some(rev) = q.strip_suffix(".in-addr.arpa") {
            return self.reverse(&q, rev, qtype);
        }
        let Some(rest) = q.strip_suffix(self.domain.as_str()).and_then(|r| {
            if r.is_empty() {
                Some("")
            } else {
                r.strip_suffix('.')
            }
        }) else {
            return Answer::NotOurs;
        };
        let labels: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').collect()
        };
        match labels.as_slice() {
            // The zone itself, `svc`, `pod`, a namespace: names that exist.
            [] | ["svc" | "pod"] | [_, "svc" | "pod"] => Answer::NoData,
            [svc, ns, "svc"] => self.service(&q, ns, svc, qtype),
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.srv(&q, ns, svc, &port[1..], &proto[1..], qtype)
            }
            [host, svc, ns, "svc"] => self.endpoint(&q, ns, svc, host, qtype),
            [ip, _ns, "pod"] => match dashed_ip(ip) {
                Some(addr) if qtype == QType::A => found(vec![Rr {
                    name: q.clone(),
                    data: Data::A(addr),
                }]),
                Some(_) => Answer::NoData,
                None => Answer::NxDomain,
            },
            _ => Answer::NxDomain,
        }
    }

    fn get(&self, ns: &str, svc: &str) -> Option<&Entry> {
        self.services.get(&(ns.to_string(), svc.to_string()))
    }

    fn service(&self, q: &str, ns: &str, svc: &str, qtype: QType) -> Answer {
        let Some(e) = self.get(ns, svc) else {
            return Answer::NxDomain;
        };
        let a = |ip| Rr {
            name: q.to_string(),
            data: Data::A(ip),
        };
        match (&e.kind, qtype) {
            (Kind::ExternalName(target), _) => found(vec![Rr {
                name: q.to_string(),
                data: Data::Cname(target.clone()),
            }]),
            (Kind::ClusterIp(ip), QType::A) => found(vec![a(*ip)]),
            (Kind::Headless, QType::A) if !e.endpoints.is_empty() => {
                found(e.endpoints.iter().map(|ep| a(ep.ip)).collect())
            }
            // SRV on the Service name: every named port.
            (_, QType::Srv) => {
                let answers: Vec<Rr> = e
                    .ports
                    .iter()
                    .filter(|p| !p.name.is_empty())
                    .flat_map(|p| self.srv_records(q, ns, svc, e, p))
                    .collect();
                if answers.is_empty() {
                    Answer::NoData
                } else {
                    self.with_targets(answers, ns, svc, e)
                }
            }
            _ => Answer::NoData,
        }
    }

    fn srv(&self, q: &str, ns: &str, svc: &str, port: &str, proto: &str, qtype: QType) -> Answer {
        let Some(e) = self.get(ns, svc) else {
            return Answer::NxDomain;
        };
        let Some(p) = e
            .ports
            .iter()
            .find(|p| p.name == port && p.proto.eq_ignore_ascii_case(proto))
        else {
            return Answer::NxDomain;
        };
        if qtype != QType::Srv {
            return Answer::NoData;
        }
        let answers = self.srv_records(q, ns, svc, e, p);
        if answers.is_empty() {
            return Answer::NoData;
        }
        self.with_targets(answers, ns, svc, e)
    }

    fn srv_records(&self, q: &str, ns: &str, svc: &str, e: &Entry, p: &Port) -> Vec<Rr> {
        let base = format!("{svc}.{ns}.svc.{}", self.domain);
        let srv = |target: String| Rr {
            name: q.to_string(),
            data: Data::Srv {
                port: p.port,
                target,
            },
        };
        match e.kind {
            Kind::ClusterIp(_) => vec![srv(base)],
            Kind::Headless => e
                .endpoints
                .iter()
                .map(|ep| srv(format!("{}.{base}", endpoint_label(ep))))
                .collect(),
            Kind::ExternalName(_) => Vec::new(),
        }
    }

    /// SRV answers with the A records of their targets as additionals.
    fn with_targets(&self, answers: Vec<Rr>, ns: &str, svc: &str, e: &Entry) -> Answer {
        let base = format!("{svc}.{ns}.svc.{}", self.domain);
        let mut additionals = Vec::new();
        match e.kind {
            Kind::ClusterIp(ip) => additionals.push(Rr {
                name: base,
                data: Data::A(ip),
            }),
            Kind::Headless => additionals.extend(e.endpoints.iter().map(|ep| Rr {
                name: format!("{}.{base}", endpoint_label(ep)),
                data: Data::A(ep.ip),
            })),
            Kind::ExternalName(_) => {}
        }
        Answer::Found {
            answers,
            additionals,
        }
    }

    fn endpoint(&self, q: &str, ns: &str, svc: &str, host: &str, qtype: QType) -> Answer {
        let Some(e) = self.get(ns, svc) else {
            return Answer::NxDomain;
        };
        let matching: Vec<&DnsEndpoint> = e
            .endpoints
            .iter()
            .filter(|ep| endpoint_label(ep) == host)
            .collect();
        if matching.is_empty() {
            return Answer::NxDomain;
        }
        if qtype != QType::A {
            return Answer::NoData;
        }
        found(
            matching
                .into_iter()
                .map(|ep| Rr {
                    name: q.to_string(),
                    data: Data::A(ep.ip),
                })
                .collect(),
        )
    }

    fn reverse(&self, q: &str, rev: &str, qtype: QType) -> Answer {
        let octets: Vec<&str> = rev.split('.').collect();
        let ip = (octets.len() == 4)
            .then(|| {
                let o: Option<Vec<u8>> = octets.iter().rev().map(|s| s.parse().ok()).collect();
                o.map(|o| Ipv4Addr::new(o[0], o[1], o[2], o[3]))
            })
            .flatten();
        let Some(names) = ip.and_then(|ip| self.ptr.get(&ip)) else {
            return Answer::NotOurs;
        };
        if qtype != QType::Ptr {
            return Answer::NoData;
        }
        found(
            names
                .iter()
                .map(|(n, _)| Rr {
                    name: q.to_string(),
                    data: Data::Ptr(n.clone()),
                })
                .collect(),
        )
    }
}

fn found(answers: Vec<Rr>) -> Answer {
    Answer::Found {
        answers,
        additionals: Vec::new(),
    }
}

/// An endpoint's first label: its hostname, else its address dashed.
fn endpoint_label(ep: &DnsEndpoint) -> String {
    ep.hostname
        .clone()
        .unwrap_or_else(|| ep.ip.to_string().replace('.', "-"))
}

fn dashed_ip(label: &str) -> Option<Ipv4Addr> {
    label.replace('-', ".").parse().ok()
}

fn ptr_addresses(e: &Entry) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = e.endpoints.iter().map(|ep| ep.ip).collect();
    if let Kind::ClusterIp(ip) = e.kind {
        v.push(ip);
    }
    v
}

/// What a Service answers, from its spec and its slices' ready endpoints.
fn entry(svc: &Service, slices: &[&EndpointSlice]) -> Option<Entry> {
    let spec = svc.spec.as_ref()?;
    let kind = match spec.type_.as_deref() {
        Some("ExternalName") => Kind::ExternalName(
            spec.external_name
                .clone()?
                .trim_end_matches('.')
                .to_ascii_lowercase(),
        ),
        _ => match spec.cluster_ip.as_deref() {
            Some("None") => Kind::Headless,
            Some(ip) => Kind::ClusterIp(ip.parse().ok()?),
            None => return None,
        },
    };
    let mut endpoints = Vec::new();
    let mut ports = Vec::new();
    match kind {
        Kind::Headless => {
            for s in slices.iter().filter(|s| s.address_type == "IPv4") {
                for e in &s.endpoints {
                    let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                    let Some(ip) = e.addresses.first().and_then(|a| a.parse().ok()) else {
                        continue;
                    };
                    let ep = DnsEndpoint {
                        ip,
                        hostname: e.hostname.clone(),
                    };
                    if ready && !endpoints.contains(&ep) {
                        endpoints.push(ep);
                    }
                }
                for p in s.ports.iter().flatten() {
                    let port = Port {
                        name: p.name.clone().unwrap_or_default(),
                        proto: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port: p.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
                    };
                    if port.port > 0 && !ports.contains(&port) {
                        ports.push(port);
                    }
                }
            }
        }
        _ => {
            for p in spec.ports.iter().flatten() {
                if let Ok(port) = u16::try_from(p.port) {
                    ports.push(Port {
                        name: p.name.clone().unwrap_or_default(),
                        proto: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port,
                    });
                }
            }
        }
    }
    Some(Entry {
        kind,
        ports,
        endpoints,
    })
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
