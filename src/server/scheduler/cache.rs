//! The scheduler's view of the cluster: each node with what its pods
//! already take (requests, host ports), kept up to date from the pod and
//! node informers, plus the pods it has just bound and not yet seen come
//! back through the watch ("assumed", upstream's word), so two pods in a
//! row never both take the last room on a node.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};

use super::resources::{self, Res};

/// A host port a pod holds: protocol, host IP ("0.0.0.0" when unset), port.
pub type HostPort = (String, String, i32);

/// A pod placed on a node, with what it takes.
#[derive(Clone, Debug)]
pub struct Placed {
    pub pod: Arc<Pod>,
    pub requests: Res,
    pub nonzero: (i64, i64),
    pub ports: Vec<HostPort>,
    /// Bound by us, not yet seen bound through the watch.
    pub assumed: bool,
    /// It has pod affinity or anti-affinity terms of its own.
    pub has_affinity: bool,
}

impl Placed {
    fn of(pod: Arc<Pod>, assumed: bool) -> Self {
        let (requests, nonzero, ports) = match pod.spec.as_ref() {
            Some(s) => (
                resources::pod_requests(s),
                resources::nonzero_requests(s),
                host_ports(s),
            ),
            None => Default::default(),
        };
        let has_affinity = pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some());
        Placed {
            pod,
            requests,
            nonzero,
            ports,
            assumed,
            has_affinity,
        }
    }
}

/// The host ports a pod spec asks for (containers and init containers).
pub fn host_ports(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<HostPort> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| {
            (
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                p.host_port.unwrap_or_default(),
            )
        })
        .collect()
}

/// One node and its pods.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// None while pods bound to it are known and the Node is not (yet).
    pub node: Option<Arc<Node>>,
    pub allocatable: Res,
    pub allowed_pods: i64,
    /// Its taints, with `not-ready`/`unreachable` added when its Ready
    /// condition says so and the node lifecycle controller has not yet
    /// tainted it.
    pub taints: Vec<Taint>,
    /// The images it holds, each name with the image's size.
    pub images: HashMap<String, i64>,
    /// Pods by UID.
    pub pods: BTreeMap<String, Placed>,
    pub requested: Res,
    pub nonzero: (i64, i64),
    pub ports: Vec<HostPort>,
    /// Its pods with pod (anti-)affinity terms: when none anywhere, a pod
    /// without terms of its own skips the inter-pod checks.
    pub affinity_pods: usize,
    /// Pending pods a preemption made room for here (their
    /// nominatedNodeName), by UID: the filters count those as important
    /// as the pod at hand, or more, as if they ran.
    pub nominated: BTreeMap<String, Placed>,
}

impl NodeInfo {
    pub fn name(&self) -> &str {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref())
            .unwrap_or("")
    }

    fn set_node(&mut self, node: Arc<Node>) {
        let (alloc, pods) = resources::allocatable(&node);
        self.allocatable = alloc;
        self.allowed_pods = pods;
        self.taints = effective_taints(&node);
        self.images = node
            .status
            .iter()
            .flat_map(|s| s.images.iter().flatten())
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names.iter().flatten().map(move |n| (n.clone(), size))
            })
            .collect();
        self.node = Some(node);
    }

    pub(super) fn add(&mut self, uid: String, p: Placed) {
        self.requested.add(&p.requests);
        self.nonzero.0 = self.nonzero.0.saturating_add(p.nonzero.0);
        self.nonzero.1 = self.nonzero.1.saturating_add(p.nonzero.1);
        self.ports.extend(p.ports.iter().cloned());
        self.affinity_pods += usize::from(p.has_affinity);
        if let Some(old) = self.pods.insert(uid, p) {
            self.take_out(&old);
        }
    }

    pub(super) fn remove(&mut self, uid: &str) -> Option<Placed> {
        let p = self.pods.remove(uid)?;
        self.take_out(&p);
        Some(p)
    }

    fn take_out(&mut self, p: &Placed) {
        self.requested.sub(&p.requests);
        self.nonzero.0 = self.nonzero.0.saturating_sub(p.nonzero.0);
        self.nonzero.1 = self.nonzero.1.saturating_sub(p.nonzero.1);
        self.affinity_pods = self
            .affinity_pods
            .saturating_sub(usize::from(p.has_affinity));
        for port in &p.ports {
            if let Some(i) = self.ports.iter().position(|x| x == port) {
                self.ports.swap_remove(i);
            }
        }
    }
}

/// A node's taints as the scheduler sees them: a node whose Ready
/// condition is False or Unknown is treated as tainted NoSchedule with
/// `node.kubernetes.io/not-ready` or `unreachable`, as the node lifecycle
/// controller will taint it (so the message names the same taint).
pub fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let key = match ready {
        Some("True") => None,
        Some("False") => Some("node.kubernetes.io/not-ready"),
        _ => Some("node.kubernetes.io/unreachable"),
    };
    if let Some(key) = key {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
    }
    taints
}

/// Whether a pod still takes room on its node: bound, not finished.
pub fn holds_room(pod: &Pod) -> bool {
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    bound && !matches!(phase, Some("Succeeded" | "Failed"))
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, NodeInfo>,
    /// The node each pod we hold is on.
    where_is: HashMap<String, String>,
    /// The node each nominated pod waits for.
    nominations: HashMap<String, String>,
    /// Namespaces' labels, for affinity terms' namespace selectors.
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Bumped on every change, so a scheduling pass can tell its view
    /// went stale.
    pub generation: u64,
}

impl Cache {
    pub fn set_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.nodes.entry(name).or_default().set_node(node);
        self.generation += 1;
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            info.node = None;
            for uid in std::mem::take(&mut info.nominated).keys() {
                self.nominations.remove(uid);
            }
            if info.pods.is_empty() {
                self.nodes.remove(name);
            }
        }
        self.generation += 1;
    }

    /// A pod as the watch shows it: placed, moved, or gone from its node.
    pub fn update_pod(&mut self, pod: Arc<Pod>) {
        self.unnominate(&uid(&pod));
        if !holds_room(&pod) {
            self.remove_pod(&uid(&pod));
            return;
        }
        let node = node_of(&pod).unwrap_or_default().to_string();
        let id = uid(&pod);
        if let Some(prev) = self.where_is.get(&id).filter(|n| **n != node).cloned() {
            self.take_from(&prev, &id);
        }
        self.nodes
            .entry(node.clone())
            .or_default()
            .add(id.clone(), Placed::of(pod, false));
        self.where_is.insert(id, node);
        self.generation += 1;
    }

    pub fn remove_pod(&mut self, uid: &str) {
        self.unnominate(uid);
        if let Some(node) = self.where_is.remove(uid) {
            self.take_from(&node, uid);
            self.generation += 1;
        }
    }

    fn take_from(&mut self, node: &str, uid: &str) {
        if let Some(info) = self.nodes.get_mut(node) {
            info.remove(uid);
            if info.node.is_none() && info.pods.is_empty() {
                self.nodes.remove(node);
            }
        }
    }

    /// Count `pod` on `node` before the API has confirmed the binding.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let mut bound = pod.clone();
        if let Some(spec) = bound.spec.as_mut() {
            spec.node_name = Some(node.to_string());
        }
        let id = uid(pod);
        self.unnominate(&id);
        self.nodes
            .entry(node.to_string())
            .or_default()
            .add(id.clone(), Placed::of(Arc::new(bound), true));
        self.where_is.insert(id, node.to_string());
        self.generation += 1;
    }

    /// A pending pod waits for room made for it on `node` (None: no
    /// longer).
    pub fn nominate(&mut self, pod: &Arc<Pod>, node: Option<&str>) {
        let id = uid(pod);
        if self.nominations.get(&id).map(String::as_str) == node {
            // Still there: only the pod itself may have changed.
            if let Some(info) = node.and_then(|n| self.nodes.get_mut(n)) {
                info.nominated.insert(id, Placed::of(pod.clone(), false));
            }
            return;
        }
        self.unnominate(&id);
        let Some(name) = node else { return };
        if let Some(info) = self.nodes.get_mut(name).filter(|n| n.node.is_some()) {
            info.nominated
                .insert(id.clone(), Placed::of(pod.clone(), false));
            self.nominations.insert(id, name.to_string());
            self.generation += 1;
        }
    }

    fn unnominate(&mut self, uid: &str) {
        if let Some(node) = self.nominations.remove(uid) {
            if let Some(info) = self.nodes.get_mut(&node) {
                info.nominated.remove(uid);
            }
            self.generation += 1;
        }
    }

    /// The binding of an assumed pod failed: take it out again (unless the
    /// watch has meanwhile shown it bound).
    pub fn forget(&mut self, uid: &str) {
        let assumed = self
            .where_is
            .get(uid)
            .and_then(|n| self.nodes.get(n))
            .and_then(|i| i.pods.get(uid))
            .is_some_and(|p| p.assumed);
        if assumed {
            self.remove_pod(uid);
        }
    }

    /// The nodes a pod may be scheduled to (known Nodes), by name.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values().filter(|n| n.node.is_some())
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name).filter(|n| n.node.is_some())
    }

    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.namespaces.insert(name.to_string(), labels);
        self.generation += 1;
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
        self.generation += 1;
    }

    pub fn namespace_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(name)
    }

    /// Placed pods with pod (anti-)affinity terms, over every node.
    pub fn affinity_pods(&self) -> usize {
        self.nodes.values().map(|n| n.affinity_pods).sum()
    }

    pub fn node_count(&self) -> usize {
        self.nodes().count()
    }

    /// Every placed pod's node labels' values under `key` (topology
    /// domains), for spreading and affinity.
    pub fn domains(&self, key: &str) -> HashSet<String> {
        self.nodes()
            .filter_map(|n| n.node.as_ref()?.metadata.labels.as_ref()?.get(key).cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, node: Option<&str>, cpu: &str, phase: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": uid, "namespace": "d", "uid": uid},
                "spec": {"nodeName": node, "containers": [{"name": "c",
                    "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "resources": {"requests": {"cpu": cpu}}}]},
                "status": {"phase": phase}
            }))
            .unwrap(),
        )
    }

    fn node(name: &str, ready: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": ready}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn pods_are_counted_on_their_node_until_they_finish() {
        let mut c = Cache::default();
        c.set_node(node("n1", "True"));
        c.update_pod(pod("a", Some("n1"), "500m", "Running"));
        c.update_pod(pod("b", Some("n1"), "250m", "Pending"));
        let n = c.node("n1").unwrap();
        assert_eq!(n.requested.cpu, 750);
        assert_eq!(n.ports.len(), 2);
        c.update_pod(pod("a", Some("n1"), "500m", "Succeeded"));
        let n = c.node("n1").unwrap();
        assert_eq!(n.requested.cpu, 250);
        assert_eq!(n.ports.len(), 1);
        c.remove_pod("b");
        assert_eq!(c.node("n1").unwrap().requested, Res::default());
    }

    #[test]
    fn an_assumed_pod_counts_until_forgotten_or_confirmed() {
        let mut c = Cache::default();
        c.set_node(node("n1", "True"));
        let p = pod("a", None, "1", "Pending");
        c.assume(&p, "n1");
        assert_eq!(c.node("n1").unwrap().requested.cpu, 1000);
        c.forget("a");
        assert_eq!(c.node("n1").unwrap().requested.cpu, 0);
        c.assume(&p, "n1");
        // The watch shows it bound: no longer assumed, so a late failure
        // report does not take it out.
        c.update_pod(pod("a", Some("n1"), "1", "Pending"));
        c.forget("a");
        assert_eq!(c.node("n1").unwrap().requested.cpu, 1000);
    }

    #[test]
    fn pods_of_an_unknown_node_wait_for_it() {
        let mut c = Cache::default();
        c.update_pod(pod("a", Some("n2"), "1", "Running"));
        assert!(c.node("n2").is_none());
        c.set_node(node("n2", "True"));
        assert_eq!(c.node("n2").unwrap().requested.cpu, 1000);
    }

    #[test]
    fn a_node_that_is_not_ready_is_treated_as_tainted() {
        let t = effective_taints(&node("n", "False"));
        assert_eq!(t[0].key, "node.kubernetes.io/not-ready");
        let t = effective_taints(&node("n", "Unknown"));
        assert_eq!(t[0].key, "node.kubernetes.io/unreachable");
        assert!(effective_taints(&node("n", "True")).is_empty());
    }
}
