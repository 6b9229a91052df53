//! Resource amounts as the scheduler counts them: what a pod requests
//! (upstream's PodRequests: containers and sidecars summed, the largest
//! init container if more, plus the pod's overhead) and what a node can
//! give (`status.allocatable`). cpu in millicores, everything else in
//! whole units (bytes, devices), rounded up.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::api::validation::quantity;

/// Requests with no cpu or memory count as this much when spreading
/// (upstream's DefaultMilliCPURequest and DefaultMemoryRequest), so that
/// best-effort pods do not all land on one node.
pub const DEFAULT_MILLI_CPU: i64 = 100;
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Res {
    pub cpu: i64,
    pub memory: i64,
    pub ephemeral: i64,
    /// Extended resources, hugepages and anything else by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Res {
    pub fn add(&mut self, o: &Res) {
        self.cpu = self.cpu.saturating_add(o.cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral = self.ephemeral.saturating_add(o.ephemeral);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    pub fn sub(&mut self, o: &Res) {
        self.cpu = self.cpu.saturating_sub(o.cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral = self.ephemeral.saturating_sub(o.ephemeral);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_sub(*v);
        }
        self.scalar.retain(|_, v| *v != 0);
    }

    fn max(&mut self, o: &Res) {
        self.cpu = self.cpu.max(o.cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral = self.ephemeral.max(o.ephemeral);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    /// Set `name` (as the API names it) to `q`.
    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            "cpu" => self.cpu = amount(q, true),
            "memory" => self.memory = amount(q, false),
            "ephemeral-storage" => self.ephemeral = amount(q, false),
            "pods" => {}
            other => {
                self.scalar.insert(other.to_string(), amount(q, false));
            }
        }
    }

    fn of_list(list: Option<&BTreeMap<String, Quantity>>) -> Res {
        let mut r = Res::default();
        for (k, v) in list.into_iter().flatten() {
            r.set(k, v);
        }
        r
    }
}

/// A quantity in millis (cpu) or whole units, rounded up; a malformed or
/// negative one (validation refuses them) counts as 0.
pub fn amount(q: &Quantity, milli: bool) -> i64 {
    let per: i128 = if milli { 1_000_000 } else { 1_000_000_000 };
    quantity::nanos(&q.0)
        .map(|n| (n.max(0) + per - 1) / per)
        .map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn container_requests(c: &Container) -> Res {
    Res::of_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// What `spec` asks of a node.
pub fn pod_requests(spec: &PodSpec) -> Res {
    combine(spec, container_requests)
}

/// cpu and memory as the spreading scores count them: a container that
/// requests none counts the defaults.
pub fn nonzero_requests(spec: &PodSpec) -> (i64, i64) {
    let r = combine(spec, |c| {
        let mut r = container_requests(c);
        let asked = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        if !asked.is_some_and(|a| a.contains_key("cpu")) {
            r.cpu = DEFAULT_MILLI_CPU;
        }
        if !asked.is_some_and(|a| a.contains_key("memory")) {
            r.memory = DEFAULT_MEMORY;
        }
        r
    });
    (r.cpu, r.memory)
}

/// Containers and sidecars (restartable init containers) run together;
/// a plain init container runs alone, beside the sidecars started before
/// it: the pod needs the larger of the two, plus its overhead.
fn combine(spec: &PodSpec, of: impl Fn(&Container) -> Res) -> Res {
    let mut total = Res::default();
    for c in &spec.containers {
        total.add(&of(c));
    }
    let mut sidecars = Res::default();
    let mut init_peak = Res::default();
    for c in spec.init_containers.iter().flatten() {
        let r = of(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            total.add(&r);
        } else {
            let mut with = sidecars.clone();
            with.add(&r);
            init_peak.max(&with);
        }
    }
    total.max(&init_peak);
    total.add(&Res::of_list(spec.overhead.as_ref()));
    total
}

/// What `node` can give pods, and how many pods it takes.
pub fn allocatable(node: &Node) -> (Res, i64) {
    let list = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let pods = list
        .and_then(|l| l.get("pods"))
        .map_or(0, |q| amount(q, false));
    (Res::of_list(list), pods)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn requests_take_the_largest_init_container_and_add_sidecars_and_overhead() {
        let s = spec(serde_json::json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "0.2", "example.com/gpu": "1"}}}
            ],
            "initContainers": [
                {"name": "big", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}
            ],
            "overhead": {"cpu": "10m"}
        }));
        let r = pod_requests(&s);
        // max(100m+200m+50m, 1000m) + 10m
        assert_eq!(r.cpu, 1010);
        assert_eq!(r.memory, 64 * 1024 * 1024);
        assert_eq!(r.scalar.get("example.com/gpu"), Some(&1));
    }

    #[test]
    fn a_sidecar_started_before_an_init_container_counts_beside_it() {
        let s = spec(serde_json::json!({
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "800m"}}}
            ]
        }));
        // The init container runs beside the sidecar: 1300m at its peak.
        assert_eq!(pod_requests(&s).cpu, 1300);
    }

    #[test]
    fn best_effort_pods_count_defaults_when_spreading() {
        let s = spec(serde_json::json!({"containers": [{"name": "a"}, {"name": "b"}]}));
        assert_eq!(pod_requests(&s), Res::default());
        assert_eq!(nonzero_requests(&s), (200, 400 * 1024 * 1024));
    }
}
