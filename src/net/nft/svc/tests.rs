//! The proxy's table: slots, what a change costs (against a recording
//! netfilter), and on the real kernel (in a network namespace of the test
//! thread's own) that traffic to a Service goes where it should.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};

use super::super::batch::Op;
use super::super::socket::Netfilter;
use super::build::assign;
use super::*;
use crate::net::nft::Proto;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<String>>>>);

impl Netfilter for Recorder {
    fn transact(&mut self, ops: &[Op]) -> Result<(), NftError> {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        b.push(ops.iter().map(|o| o.what.clone()).collect());
        Ok(())
    }
}

impl Recorder {
    fn last(&self) -> Vec<String> {
        let b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        b.last().cloned().unwrap_or_default()
    }
}

fn cfg() -> ProxyConfig {
    ProxyConfig {
        table: TABLE.to_string(),
        cluster_cidr: "10.42.0.0/16".parse().unwrap(),
        service_cidr: "10.43.0.0/16".parse().unwrap(),
        nodeport_cidrs: Vec::new(),
        masquerade_bit: MASQUERADE_BIT,
    }
}

fn ep(i: u32, port: u16) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 42, 0, 0)) + i),
        port,
    }
}

fn service(name: &str, ip: Ipv4Addr, endpoints: Vec<Endpoint>) -> ServiceRules {
    ServiceRules {
        namespace: "default".into(),
        name: name.into(),
        cluster_ip: Some(ip),
        external_ips: Vec::new(),
        ports: vec![PortRules {
            proto: Proto::Tcp,
            port: 80,
            node_port: None,
            cluster: endpoints.clone(),
            local: Vec::new(),
        }],
        external_local: false,
        internal_local: false,
        affinity_secs: None,
    }
}

fn svc_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 43, 1, 0)) + i)
}

#[test]
fn slots_keep_their_endpoints_and_fill_holes() {
    let (a, b, c, d, e) = (ep(1, 80), ep(2, 80), ep(3, 80), ep(4, 80), ep(5, 80));
    assert_eq!(assign(&[], &[c, a, b]), [a, b, c]);
    // b goes, d comes: d takes b's slot.
    assert_eq!(assign(&[a, b, c], &[a, c, d]), [a, d, c]);
    // a goes: the last moves into its slot.
    assert_eq!(assign(&[a, b, c], &[b, c]), [c, b]);
    // Two go, one comes.
    assert_eq!(assign(&[a, b, c, d], &[b, d, e]), [e, b, d]);
    // Everything goes.
    assert!(assign(&[a, b], &[]).is_empty());
    // Duplicates in what is wanted count once.
    assert_eq!(assign(&[], &[a, a]), [a]);
}

#[test]
fn one_endpoint_change_costs_the_same_with_ten_or_a_thousand_endpoints() {
    let mut sizes = Vec::new();
    for n in [10, 1000] {
        let rec = Recorder::default();
        let mut t = ProxyTable::with(cfg(), Box::new(rec.clone())).unwrap();
        let eps: Vec<Endpoint> = (1..=n).map(|i| ep(i, 8080)).collect();
        let s = service("web", svc_ip(0), eps.clone());
        let first = t.update(vec![(s.key(), Some(s.clone()))]).unwrap();
        assert!(first.full);
        // One endpoint replaced by another.
        let mut changed = s.clone();
        changed.ports[0].cluster = eps[1..].to_vec();
        changed.ports[0].cluster.push(ep(n + 1, 8080));
        let sent = t.update(vec![(s.key(), Some(changed))]).unwrap();
        assert!(!sent.full);
        sizes.push(sent.messages);
        let last = rec.last();
        // The old endpoint's chain goes, the new one comes, its slot is
        // rewritten; the numgen rule stays (same count).
        assert!(
            last.iter()
                .any(|m| m.starts_with("DELCHAIN ep-default/web/tcp/80/10.42.0.1:8080")),
            "{last:?}"
        );
        assert!(
            last.iter()
                .any(|m| m.contains("NEWCHAIN ep-default/web/tcp/80/")),
            "{last:?}"
        );
        assert!(!last.iter().any(|m| m.contains("numgen")), "{last:?}");
        // One endpoint fewer: the numgen rule changes (mod n-1).
        let mut fewer = s.clone();
        fewer.ports[0].cluster = eps[1..].to_vec();
        let sent = t.update(vec![(s.key(), Some(fewer))]).unwrap();
        sizes.push(sent.messages);
        assert!(rec
            .last()
            .iter()
            .any(|m| m.contains(&format!("numgen random mod {}", n - 1))));
    }
    assert_eq!(sizes[0], sizes[2], "{sizes:?}");
    assert_eq!(sizes[1], sizes[3], "{sizes:?}");
    assert!(sizes.iter().all(|&m| m < 12), "{sizes:?}");
}

#[test]
fn one_service_among_a_thousand_costs_what_it_changes() {
    let rec = Recorder::default();
    let mut t = ProxyTable::with(cfg(), Box::new(rec.clone())).unwrap();
    let all: Vec<(String, Option<ServiceRules>)> = (0..1000)
        .map(|i| {
            let s = service(&format!("s{i}"), svc_ip(i), vec![ep(i % 200 + 1, 8080)]);
            (s.key(), Some(s))
        })
        .collect();
    t.update(all).unwrap();
    assert_eq!(t.len(), 1000);
    // A new Service, then one removed: each a handful of messages.
    let s = service("new", svc_ip(1000), vec![ep(7, 8080)]);
    let added = t.update(vec![(s.key(), Some(s.clone()))]).unwrap();
    assert!(added.messages < 12, "{added:?} {:?}", rec.last());
    let removed = t.update(vec![(s.key(), None)]).unwrap();
    assert!(removed.messages < 12, "{removed:?} {:?}", rec.last());
    assert_eq!(t.len(), 1000);
    // Nothing changed: nothing sent.
    let s0 = service("s0", svc_ip(0), vec![ep(1, 8080)]);
    assert_eq!(t.update(vec![(s0.key(), Some(s0))]).unwrap().messages, 0);
}

/// Fails the transactions while `down` is set (a socket error, not a
/// refusal: nothing reaches the kernel).
#[derive(Clone, Default)]
struct Flaky(Arc<Mutex<bool>>);

impl Netfilter for Flaky {
    fn transact(&mut self, _ops: &[Op]) -> Result<(), NftError> {
        if *self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            return Err(NftError::Io {
                op: "send",
                source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
            });
        }
        Ok(())
    }
}

#[test]
fn a_failed_update_keeps_its_udp_flushes_for_the_next_one() {
    let flaky = Flaky::default();
    let mut t = ProxyTable::with(cfg(), Box::new(flaky.clone())).unwrap();
    let udp = |eps: Vec<Endpoint>| {
        let mut s = service("dns", svc_ip(0), eps.clone());
        s.ports[0].proto = Proto::Udp;
        s
    };
    let two = udp(vec![ep(1, 53), ep(2, 53)]);
    t.update(vec![(two.key(), Some(two))]).unwrap();
    *flaky.0.lock().unwrap() = true;
    let one = udp(vec![ep(2, 53)]);
    assert!(t.update(vec![(one.key(), Some(one.clone()))]).is_err());
    *flaky.0.lock().unwrap() = false;
    // The retry has nothing new: the removed endpoint's flows still go.
    let sent = t.update(Vec::new()).unwrap();
    assert_eq!(sent.stale_udp_endpoints, [ep(1, 53)]);
    assert!(sent.full, "stated in full after the failure");
    // Handed out once.
    let again = t.update(vec![(one.key(), Some(one.clone()))]).unwrap();
    assert!(again.stale_udp_endpoints.is_empty());
    // Removed by a failed batch, brought back before the next lands: kept.
    *flaky.0.lock().unwrap() = true;
    let none = udp(Vec::new());
    assert!(t.update(vec![(none.key(), Some(none))]).is_err());
    *flaky.0.lock().unwrap() = false;
    let back = t.update(vec![(one.key(), Some(one))]).unwrap();
    assert!(back.stale_udp_endpoints.is_empty(), "{back:?}");
}

#[test]
fn a_service_without_endpoints_is_refused_and_gets_its_rules_when_one_comes() {
    let rec = Recorder::default();
    let mut t = ProxyTable::with(cfg(), Box::new(rec.clone())).unwrap();
    let empty = service("web", svc_ip(0), Vec::new());
    t.update(vec![(empty.key(), Some(empty.clone()))]).unwrap();
    let merged = t.merged();
    let no_ep = merged
        .sets
        .iter()
        .find(|s| s.name() == build::NO_ENDPOINT_SERVICES)
        .unwrap();
    assert_eq!(no_ep.elements.len(), 1);
    assert!(merged.chains.iter().all(|c| !c.name.starts_with("svc-")));
    let one = service("web", svc_ip(0), vec![ep(1, 8080)]);
    t.update(vec![(one.key(), Some(one))]).unwrap();
    let last = rec.last();
    assert!(
        last.contains(&"DELSETELEM no-endpoint-services (1 elements)".to_string()),
        "{last:?}"
    );
    assert!(
        last.contains(&"NEWSETELEM service-ips (1 elements)".to_string()),
        "{last:?}"
    );
}

#[test]
fn a_claim_two_services_make_goes_to_one_and_passes_on() {
    let rec = Recorder::default();
    let mut t = ProxyTable::with(cfg(), Box::new(rec)).unwrap();
    let shared = Ipv4Addr::new(192, 0, 2, 10);
    let mut a = service("a", svc_ip(0), vec![ep(1, 8080)]);
    a.external_ips = vec![shared];
    let mut b = service("b", svc_ip(1), vec![ep(2, 8080)]);
    b.external_ips = vec![shared];
    t.update(vec![(a.key(), Some(a.clone())), (b.key(), Some(b))])
        .unwrap();
    let key = (
        build::SERVICE_IPS,
        super::super::set::key_ip_proto_port(shared, Proto::Tcp, 80),
    );
    let to = |t: &ProxyTable| t.winner(&key).cloned();
    assert_eq!(
        to(&t),
        Some(Value::Verdict(super::super::set::VerdictTo::Goto(
            "ext-default/a/tcp/80".into()
        )))
    );
    t.update(vec![(a.key(), None)]).unwrap();
    assert_eq!(
        to(&t),
        Some(Value::Verdict(super::super::set::VerdictTo::Goto(
            "ext-default/b/tcp/80".into()
        )))
    );
}

#[test]
fn local_policies_pick_local_chains_and_drop_without_local_endpoints() {
    let mut s = service("web", svc_ip(0), vec![ep(1, 8080), ep(2, 8080)]);
    s.ports[0].node_port = Some(30080);
    s.ports[0].local = vec![ep(1, 8080)];
    s.external_local = true;
    let mut slots = Slots::new();
    let f = build::fragment(&cfg(), &s, &mut slots);
    let names: Vec<&str> = f.own.chains.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"local-default/web/tcp/80"), "{names:?}");
    assert!(names.contains(&"svc-default/web/tcp/80"), "{names:?}");
    assert!(names.contains(&"ext-default/web/tcp/80"), "{names:?}");
    let np = f
        .claims
        .iter()
        .find(|c| c.set == build::SERVICE_NODEPORTS)
        .unwrap();
    assert_eq!(
        np.value,
        Value::Verdict(super::super::set::VerdictTo::Goto(
            "ext-default/web/tcp/80".into()
        ))
    );
    // No local endpoint: the way in stays for pods and the node (Cluster
    // policy), and drops what comes from outside (another node may serve it).
    s.ports[0].local.clear();
    let f = build::fragment(&cfg(), &s, &mut slots);
    let np = f
        .claims
        .iter()
        .find(|c| c.set == build::SERVICE_NODEPORTS)
        .unwrap();
    assert_eq!(
        np.value,
        Value::Verdict(super::super::set::VerdictTo::Goto(
            "ext-default/web/tcp/80".into()
        ))
    );
    let ext: Vec<String> = f
        .own
        .rules_of("ext-default/web/tcp/80")
        .map(|r| r.text())
        .collect();
    assert_eq!(
        ext.first().map(String::as_str),
        Some("ip saddr 10.42.0.0/16 goto svc-default/web/tcp/80"),
        "{ext:?}"
    );
    assert_eq!(ext.last().map(String::as_str), Some("drop"), "{ext:?}");
    // With no endpoint anywhere: the no-endpoint map, dropping.
    s.ports[0].cluster.clear();
    let f = build::fragment(&cfg(), &s, &mut slots);
    let np = f
        .claims
        .iter()
        .find(|c| c.set == build::NO_ENDPOINT_NODEPORTS)
        .unwrap();
    assert_eq!(np.value, Value::Verdict(super::super::set::VerdictTo::Drop));
    // The ClusterIP, by the Cluster policy, is refused.
    assert!(f
        .claims
        .iter()
        .any(|c| c.set == build::NO_ENDPOINT_SERVICES));
}

// ---- On the real kernel.

fn sh(ns: &str, args: &[&str]) {
    let out = Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .args(args)
        .output()
        .expect("run nsenter");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn listing(ns: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .args(["nft", "list", "table", "ip", TABLE])
        .output()
        .expect("run nsenter nft");
    assert!(
        out.status.success(),
        "nft list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn in_new_netns(f: impl FnOnce(&str) + Send + 'static) {
    if !nix::unistd::geteuid().is_root() {
        println!("not root: the kernel was not asked");
        return;
    }
    let handle = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let ns = format!(
            "/proc/{}/task/{}/ns/net",
            std::process::id(),
            nix::unistd::gettid()
        );
        f(&ns)
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Which of `listeners` each of `n` connections to `to` reached.
fn spread(to: SocketAddrV4, listeners: &[TcpListener], n: usize) -> Vec<usize> {
    let mut hits = vec![0; listeners.len()];
    for l in listeners {
        l.set_nonblocking(true).unwrap();
    }
    for _ in 0..n {
        let _c = TcpStream::connect(to).expect("connect to the Service");
        let mut got = false;
        for _ in 0..1000 {
            for (i, l) in listeners.iter().enumerate() {
                if l.accept().is_ok() {
                    hits[i] += 1;
                    got = true;
                }
            }
            if got {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(got, "a connection reached no endpoint");
    }
    hits
}

#[test]
fn kernel_spreads_service_traffic_refuses_without_endpoints_and_keeps_affinity() {
    in_new_netns(|ns| {
        sh(ns, &["ip", "link", "set", "lo", "up"]);
        sh(ns, &["ip", "link", "add", "pods", "type", "bridge"]);
        sh(ns, &["ip", "link", "set", "pods", "up"]);
        sh(ns, &["ip", "addr", "add", "10.42.0.1/24", "dev", "pods"]);
        for i in 2..=4 {
            sh(
                ns,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("10.42.0.{i}/32"),
                    "dev",
                    "pods",
                ],
            );
        }
        // ClusterIPs need a route for a local client to send to them.
        sh(ns, &["ip", "route", "add", "10.43.0.0/16", "dev", "pods"]);
        let listeners: Vec<TcpListener> = (2..=4)
            .map(|i| TcpListener::bind((Ipv4Addr::new(10, 42, 0, i), 8080)).unwrap())
            .collect();
        let eps: Vec<Endpoint> = (2..=4).map(|i| ep(i, 8080)).collect();
        let mut t = ProxyTable::new(cfg()).unwrap();
        let web = service("web", Ipv4Addr::new(10, 43, 0, 20), eps.clone());
        let mut sticky = service("sticky", Ipv4Addr::new(10, 43, 0, 21), eps.clone());
        sticky.affinity_secs = Some(600);
        let mut np = service("np", Ipv4Addr::new(10, 43, 0, 22), eps.clone());
        np.ports[0].node_port = Some(30080);
        let empty = service("empty", Ipv4Addr::new(10, 43, 0, 23), Vec::new());
        let all = [web.clone(), sticky.clone(), np, empty];
        t.update(all.iter().map(|s| (s.key(), Some(s.clone()))).collect())
            .expect("the kernel takes the table");
        let l = listing(ns);
        assert!(
            l.contains("numgen random mod 3 vmap @svc-default/web/tcp/80-eps"),
            "{l}"
        );
        assert!(
            l.contains("update @aff-default/sticky/tcp/80/10.42.0.2:8080 { ip saddr }"),
            "{l}"
        );

        let hits = spread(
            SocketAddrV4::new(Ipv4Addr::new(10, 43, 0, 20), 80),
            &listeners,
            60,
        );
        assert!(
            hits.iter().all(|&h| h > 0),
            "every endpoint gets traffic: {hits:?}"
        );
        let hits = spread(
            SocketAddrV4::new(Ipv4Addr::new(10, 43, 0, 21), 80),
            &listeners,
            20,
        );
        assert_eq!(
            hits.iter().filter(|&&h| h > 0).count(),
            1,
            "affinity: {hits:?}"
        );
        let hits = spread(
            SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 1), 30080),
            &listeners,
            3,
        );
        assert_eq!(hits.iter().sum::<usize>(), 3, "NodePort: {hits:?}");

        // No endpoints: refused at once, not a timeout.
        let e = TcpStream::connect_timeout(
            &std::net::SocketAddr::from((Ipv4Addr::new(10, 43, 0, 23), 80)),
            std::time::Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
        // A port the ClusterIP does not serve: refused too.
        let e = TcpStream::connect_timeout(
            &std::net::SocketAddr::from((Ipv4Addr::new(10, 43, 0, 20), 81)),
            std::time::Duration::from_secs(5),
        )
        .unwrap_err();
        assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");

        // Down to one endpoint, as one small transaction; all traffic there.
        let mut one = web.clone();
        one.ports[0].cluster = vec![eps[1]];
        let sent = t.update(vec![(one.key(), Some(one))]).unwrap();
        assert!(!sent.full);
        let hits = spread(
            SocketAddrV4::new(Ipv4Addr::new(10, 43, 0, 20), 80),
            &listeners,
            10,
        );
        assert_eq!(hits, [0, 10, 0]);

        // The table removed behind the proxy's back: the next change
        // states it again.
        delete(TABLE).unwrap();
        assert!(!exists(TABLE).unwrap());
        let sent = t.update(vec![(web.key(), Some(web))]).unwrap();
        assert!(sent.full);
        let hits = spread(
            SocketAddrV4::new(Ipv4Addr::new(10, 43, 0, 20), 80),
            &listeners,
            30,
        );
        assert!(hits.iter().all(|&h| h > 0), "{hits:?}");
        delete(TABLE).unwrap();
        delete(TABLE).unwrap();
    });
}

#[test]
fn kernel_takes_a_service_of_thousands_of_endpoints() {
    // Each endpoint is a chain and rules: thousands of messages, each
    // acked, in one transaction (their acks once overflowed the socket).
    in_new_netns(|_| {
        let eps: Vec<Endpoint> = (1..=1500).map(|i| ep(i, 8080)).collect();
        let s = service("big", svc_ip(0), eps.clone());
        let mut t = ProxyTable::new(cfg()).unwrap();
        let sent = t
            .update(vec![(s.key(), Some(s.clone()))])
            .expect("1,500 endpoints");
        assert!(sent.messages > 3000, "{sent:?}");
        let mut one = s.clone();
        one.ports[0].cluster[7] = ep(9999, 8080);
        let sent = t.update(vec![(s.key(), Some(one))]).expect("one replaced");
        assert!(!sent.full && sent.messages < 12, "{sent:?}");
        delete(TABLE).unwrap();
    });
}
