//! LoadBalancer Services on bare metal, in the spirit of k3s's ServiceLB
//! but with no pod per node: the announcing nodes' addresses become the
//! Service's `status.loadBalancer.ingress`, and every node's service proxy
//! forwards the ports at those addresses in the kernel (agent/proxy: the
//! ingress addresses are external addresses of the Service).
//!
//! - Which nodes announce: those labelled `svccontroller.skiff.io/enablelb
//!   =true` when any node is (k3s's opt-in), else every node; only Ready
//!   ones. Their ExternalIP, else InternalIP.
//! - A Service with `loadBalancerClass` set is another controller's: left
//!   alone.
//! - A port (and protocol) another LoadBalancer Service already takes on a
//!   node keeps the later Service (by creation, then name) pending there:
//!   that node is not among its ingress, and an event says why.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::runtime::{Informer, Informers, Passes};

pub const AGENT: &str = "skiff-service-lb-controller";
/// The events' source (k3s: service-lb-controller).
const COMPONENT: &str = "service-lb-controller";
/// The opt-in label (k3s: svccontroller.k3s.cattle.io/enablelb).
pub const ENABLE_LABEL: &str = "svccontroller.skiff.io/enablelb";
const PERIOD: Duration = Duration::from_secs(60);

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn address(n: &Node) -> Option<String> {
    let addrs = n.status.as_ref()?.addresses.as_ref()?;
    let of = |t: &str| {
        addrs
            .iter()
            .find(|a| a.type_ == t && a.address.parse::<std::net::Ipv4Addr>().is_ok())
            .map(|a| a.address.clone())
    };
    of("ExternalIP").or_else(|| of("InternalIP"))
}

/// A port skiff serves on every node: (protocol, port, what).
pub type Reserved = (String, i32, String);

/// A node that announces load balancers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcer {
    pub name: String,
    pub ip: String,
    /// Ports the node's address already serves for skiff itself (protocol,
    /// port, what): a load balancer there would take them over.
    pub own: Vec<(String, i32, String)>,
}

/// The nodes that announce load balancers. On each, the API server's port
/// and the cluster DNS's (`reserved`: on every node, as agents may serve
/// them too) and the node's kubelet port are skiff's own.
pub fn announcing(nodes: &[Arc<Node>], reserved: &[Reserved]) -> Vec<Announcer> {
    let labelled = |n: &Node| {
        n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ENABLE_LABEL))
            .is_some_and(|v| v == "true")
    };
    let opt_in = nodes.iter().any(|n| labelled(n));
    let mut out: Vec<Announcer> = nodes
        .iter()
        .filter(|n| !opt_in || labelled(n))
        .filter(|n| ready(n))
        .filter_map(|n| {
            let mut own = reserved.to_vec();
            let kubelet = n
                .status
                .as_ref()
                .and_then(|s| s.daemon_endpoints.as_ref())
                .and_then(|d| d.kubelet_endpoint.as_ref())
                .map(|k| k.port)
                .filter(|p| *p > 0);
            if let Some(port) = kubelet {
                own.push(("TCP".to_string(), port, "the kubelet API".to_string()));
            }
            Some(Announcer {
                name: n.metadata.name.clone()?,
                ip: address(n)?,
                own,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Ours: type LoadBalancer with no class of another controller.
fn ours(s: &Service) -> bool {
    s.spec.as_ref().is_some_and(|spec| {
        spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none()
    })
}

fn key(s: &Service) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or_default(),
        s.metadata.name.as_deref().unwrap_or_default()
    )
}

fn ports(s: &Service) -> Vec<(String, i32)> {
    s.spec
        .as_ref()
        .and_then(|spec| spec.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
        .collect()
}

/// What each of our Services should show: its ingress addresses, and the
/// (node, port, holder) conflicts that keep it pending on some nodes.
pub type Plan = BTreeMap<String, (Vec<String>, Vec<(String, String, String)>)>;

pub fn plan(services: &[Arc<Service>], nodes: &[Announcer]) -> Plan {
    let mut ours: Vec<&Arc<Service>> = services.iter().filter(|s| ours(s)).collect();
    // The first Service to take a port keeps it.
    ours.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then_with(|| key(a).cmp(&key(b)))
    });
    // (node, protocol, port) → who holds it: a Service's key, or what of
    // skiff's own serves there.
    let mut taken: BTreeMap<(String, String, i32), String> = BTreeMap::new();
    for n in nodes {
        for (proto, port, what) in &n.own {
            taken.insert((n.name.clone(), proto.clone(), *port), what.clone());
        }
    }
    let mut out = Plan::new();
    for s in ours {
        let k = key(s);
        let holder = format!("the load balancer of Service {k}");
        let mut ingress = BTreeSet::new();
        let mut conflicts = Vec::new();
        for Announcer { name: node, ip, .. } in nodes {
            let clash = ports(s).into_iter().find_map(|(proto, port)| {
                taken
                    .get(&(node.clone(), proto.clone(), port))
                    .filter(|h| **h != holder)
                    .map(|h| (format!("{port}/{proto}"), h.clone()))
            });
            match clash {
                Some((port, h)) => conflicts.push((node.clone(), port, h)),
                None => {
                    for (proto, port) in ports(s) {
                        taken.insert((node.clone(), proto, port), holder.clone());
                    }
                    ingress.insert(ip.clone());
                }
            }
        }
        out.insert(k, (ingress.into_iter().collect(), conflicts));
    }
    out
}

fn current_ingress(s: &Service) -> Vec<String> {
    let mut v: Vec<String> = s
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect();
    v.sort();
    v
}

pub async fn run(
    client: kube::Client,
    informers: &Informers,
    cancel: CancellationToken,
    reserved: Vec<Reserved>,
) {
    let services: Arc<Informer<Service>> = informers.get::<Service>();
    let nodes: Arc<Informer<Node>> = informers.get::<Node>();
    let mut passes = Passes::every(PERIOD);
    passes.on(&services);
    passes.on(&nodes);
    services.synced().await;
    nodes.synced().await;
    let events = crate::events::Recorder::for_component(client.clone(), COMPONENT);
    // Conflicts already reported, so that each is said once.
    let mut told: BTreeSet<(String, String, String)> = BTreeSet::new();
    loop {
        let all = services.list_all();
        let p = plan(&all, &announcing(&nodes.list_all(), &reserved));
        for s in all.iter().filter(|s| ours(s)) {
            let k = key(s);
            let Some((ingress, conflicts)) = p.get(&k) else {
                continue;
            };
            for (node, port, holder) in conflicts {
                if told.insert((k.clone(), node.clone(), port.clone())) {
                    events.object(
                        crate::events::reference(s.as_ref()),
                        crate::events::WARNING,
                        "PortInUse",
                        format!(
                            "port {port} on node {node} is taken by {holder}: pending on that node"
                        ),
                    );
                }
            }
            if current_ingress(s) == *ingress {
                continue;
            }
            if let Err(e) = set_ingress(&client, s, ingress).await {
                tracing::debug!(controller = AGENT, service = %k, "{e}");
            }
        }
        if !passes.next(&cancel).await {
            return;
        }
    }
}

async fn set_ingress(
    client: &kube::Client,
    s: &Service,
    ingress: &[String],
) -> Result<(), kube::Error> {
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<Service> = Api::namespaced(
        client.clone(),
        s.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let list: Vec<Value> = ingress
        .iter()
        .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
        .collect();
    let patch = json!({"status": {"loadBalancer": {"ingress": list}}});
    api.patch_status(
        s.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, labels: Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                           "conditions": [{"type": "Ready", "status": "True"}]},
            }))
            .unwrap(),
        )
    }

    fn lb(name: &str, created: &str, port: i32, class: Option<&str>) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": class,
                         "ports": [{"port": port, "protocol": "TCP"}]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn nodes_announce_and_the_first_service_keeps_a_port() {
        let nodes = announcing(
            &[
                node("n1", "192.0.2.1", json!({})),
                node("n2", "192.0.2.2", json!({})),
            ],
            &[("TCP".into(), 6443, "the API server".into())],
        );
        assert_eq!(nodes.len(), 2);
        let p = plan(
            &[
                lb("late", "2026-01-02T00:00:00Z", 80, None),
                lb("early", "2026-01-01T00:00:00Z", 80, None),
                lb("other", "2026-01-01T00:00:00Z", 443, None),
                lb(
                    "theirs",
                    "2026-01-01T00:00:00Z",
                    8080,
                    Some("example.com/lb"),
                ),
            ],
            &nodes,
        );
        assert_eq!(p["default/early"].0, ["192.0.2.1", "192.0.2.2"]);
        assert!(p["default/late"].0.is_empty());
        assert_eq!(p["default/late"].1.len(), 2);
        assert_eq!(
            p["default/late"].1[0].2,
            "the load balancer of Service default/early"
        );
        assert_eq!(p["default/other"].0.len(), 2);
        assert!(!p.contains_key("default/theirs"));
    }

    #[test]
    fn an_opt_in_label_picks_the_announcing_nodes() {
        let nodes = announcing(
            &[
                node("n1", "192.0.2.1", json!({ENABLE_LABEL: "true"})),
                node("n2", "192.0.2.2", json!({})),
            ],
            &[("TCP".into(), 6443, "the API server".into())],
        );
        let names: Vec<(&str, &str)> = nodes
            .iter()
            .map(|n| (n.name.as_str(), n.ip.as_str()))
            .collect();
        assert_eq!(names, [("n1", "192.0.2.1")]);
    }

    #[test]
    fn skiffs_own_ports_are_never_taken_over() {
        let mut kubelet_node = (*node("n1", "192.0.2.1", json!({}))).clone();
        if let Some(st) = kubelet_node.status.as_mut() {
            st.daemon_endpoints =
                serde_json::from_value(json!({"kubeletEndpoint": {"Port": 10250}})).ok();
        }
        let nodes = announcing(
            &[Arc::new(kubelet_node)],
            &[("TCP".into(), 6443, "the API server".into())],
        );
        let p = plan(
            &[
                lb("api", "2026-01-01T00:00:00Z", 6443, None),
                lb("kubelet", "2026-01-01T00:00:00Z", 10250, None),
                lb("web", "2026-01-01T00:00:00Z", 80, None),
            ],
            &nodes,
        );
        assert!(p["default/api"].0.is_empty());
        assert_eq!(p["default/api"].1[0].2, "the API server");
        assert!(p["default/kubelet"].0.is_empty());
        assert_eq!(p["default/kubelet"].1[0].2, "the kubelet API");
        assert_eq!(p["default/web"].0, ["192.0.2.1"]);
    }
}
