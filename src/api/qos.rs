//! A pod's QoS class, which the API server records in its status and the
//! agent turns into cgroup placement and OOM score.

use serde_json::Value;

/// The pod's QoS class (upstream's `GetPodQOS`): BestEffort without any cpu
/// or memory request or limit; Guaranteed when every container limits both
/// and the pod's requests equal its limits; else Burstable.
pub fn qos_class(pod: &Value) -> &'static str {
    use crate::api::validation::quantity;
    use std::collections::BTreeMap;
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let spec = pod.get("spec");
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|k| spec.and_then(|s| s.get(k)).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let positive = |bag: &str, r: &str| {
            c.pointer(&format!("/resources/{bag}/{r}"))
                .and_then(Value::as_str)
                .and_then(quantity::nanos)
                .filter(|q| *q > 0)
        };
        let mut limited = 0;
        for r in ["cpu", "memory"] {
            if let Some(q) = positive("requests", r) {
                *requests.entry(r).or_default() += q;
            }
            if let Some(q) = positive("limits", r) {
                *limits.entry(r).or_default() += q;
                limited += 1;
            }
        }
        guaranteed &= limited == 2;
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    let equal = requests.iter().all(|(r, q)| limits.get(r) == Some(q));
    if guaranteed && equal && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
