//! What the autoscaler reads of pods: their usage from the resource
//! metrics API (metrics.k8s.io, as kubectl top reads it, through the API
//! like any client) and their requests and readiness from the shared cache.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::replicas::{PodState, Sample};
use crate::api::validation::quantity;

/// A quantity in thousandths of its unit (`MilliValue`), rounded up.
pub fn milli(q: &str) -> Option<i64> {
    let n = quantity::nanos(q)?;
    Some(i64::try_from((n + 999_999).div_euclid(1_000_000)).unwrap_or(i64::MAX))
}

/// Thousandths as `Quantity.String()` prints a decimal quantity.
pub fn format_milli(m: i64) -> String {
    quantity::format_nanos(i128::from(m) * 1_000_000, false)
}

/// One pod's usage per container: container → resource → milli-units.
#[derive(Debug, Clone, Default)]
pub struct PodUsage {
    pub timestamp: Option<Timestamp>,
    pub window: SignedDuration,
    pub containers: BTreeMap<String, BTreeMap<String, i64>>,
}

/// The PodMetricsList of a namespace for a selector.
pub async fn fetch(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> Result<BTreeMap<String, PodUsage>, String> {
    let url = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods?labelSelector={}",
        url_escape(selector)
    );
    let req = http::Request::get(url)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let list: Value = client.request(req).await.map_err(|e| {
        let why = match e {
            kube::Error::Api(s) => s.message,
            other => other.to_string(),
        };
        format!("unable to fetch metrics from resource metrics API: {why}")
    })?;
    Ok(parse(&list))
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The usable part of a PodMetricsList.
pub fn parse(list: &Value) -> BTreeMap<String, PodUsage> {
    let mut out = BTreeMap::new();
    for item in list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = item.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let timestamp = item
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok());
        let window = item
            .get("window")
            .and_then(Value::as_str)
            .and_then(crate::api::duration::parse_go)
            .map(SignedDuration::from_secs_f64)
            .unwrap_or(SignedDuration::ZERO);
        let mut containers = BTreeMap::new();
        for c in item
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(cname) = c.get("name").and_then(Value::as_str) else {
                continue;
            };
            let usage: BTreeMap<String, i64> = c
                .get("usage")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), milli(v.as_str()?)?)))
                .collect();
            containers.insert(cname.to_string(), usage);
        }
        out.insert(
            name.to_string(),
            PodUsage {
                timestamp,
                window,
                containers,
            },
        );
    }
    out
}

/// Each pod's sample of `resource`, summed over its containers (or only
/// `container`). A pod missing the resource in any container it reports,
/// or reporting none, has no sample, as upstream's metrics client.
pub fn samples(
    usage: &BTreeMap<String, PodUsage>,
    resource: &str,
    container: Option<&str>,
) -> BTreeMap<String, Sample> {
    let mut out = BTreeMap::new();
    for (pod, u) in usage {
        let Some(timestamp) = u.timestamp else {
            continue;
        };
        let mut sum = 0i64;
        let mut complete = !u.containers.is_empty();
        let mut found = container.is_none();
        for (cname, res) in &u.containers {
            if container.is_some_and(|c| c != cname) {
                continue;
            }
            found = true;
            match res.get(resource) {
                Some(v) => sum = sum.saturating_add(*v),
                None => complete = false,
            }
        }
        if complete && found {
            out.insert(
                pod.clone(),
                Sample {
                    value: sum,
                    timestamp,
                    window: u.window,
                },
            );
        }
    }
    out
}

/// What the calculation needs of a pod, with its request of `resource`
/// (only `container`'s when given; restartable init containers count, as
/// they run beside the others).
pub fn pod_state(pod: &Pod, resource: &str, container: Option<&str>) -> PodState {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut request = Ok(0i64);
    for c in spec.containers.iter().chain(sidecars) {
        if container.is_some_and(|want| want != c.name) {
            continue;
        }
        let r = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))
            .and_then(|q| milli(&q.0));
        match (r, &mut request) {
            (Some(v), Ok(sum)) => *sum = sum.saturating_add(v),
            (None, Ok(_)) => request = Err(c.name.clone()),
            _ => {}
        }
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            // Only a Ready condition that is False makes a pod unready,
            // as upstream (Unknown does not); no time reads as the epoch.
            let at = c
                .last_transition_time
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
            (c.status != "False", at)
        });
    PodState {
        name: pod.metadata.name.clone().unwrap_or_default(),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        phase: status.phase.unwrap_or_default(),
        ready,
        start: status.start_time.map(|t| t.0),
        request,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quantities_in_thousandths() {
        assert_eq!(milli("250m"), Some(250));
        assert_eq!(milli("1"), Some(1000));
        assert_eq!(milli("123456789n"), Some(124));
        assert_eq!(milli("64Mi"), Some(67_108_864_000));
        assert_eq!(format_milli(150), "150m");
        assert_eq!(format_milli(2000), "2");
        assert_eq!(format_milli(42_991_616_000), "42991616");
    }

    #[test]
    fn a_metrics_list_gives_samples_per_pod() {
        let list = json!({"items": [
            {"metadata": {"name": "a"}, "timestamp": "2026-06-01T12:00:00Z", "window": "15s",
             "containers": [
                {"name": "app", "usage": {"cpu": "150m", "memory": "10Mi"}},
                {"name": "side", "usage": {"cpu": "50m", "memory": "1Mi"}}]},
            {"metadata": {"name": "b"}, "timestamp": "2026-06-01T12:00:00Z", "window": "15s",
             "containers": [{"name": "app", "usage": {"memory": "10Mi"}}]},
        ]});
        let usage = parse(&list);
        let cpu = samples(&usage, "cpu", None);
        assert_eq!(cpu["a"].value, 200);
        assert_eq!(cpu["a"].window, SignedDuration::from_secs(15));
        assert!(!cpu.contains_key("b"), "b reports no cpu");
        let app = samples(&usage, "cpu", Some("side"));
        assert_eq!(app["a"].value, 50);
        assert!(!app.contains_key("b"), "b has no such container");
    }

    #[test]
    fn requests_are_summed_and_a_missing_one_named() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [
                    {"name": "log", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                    {"name": "setup"}],
                "containers": [
                    {"name": "app", "resources": {"requests": {"cpu": "100m"}}},
                    {"name": "side"}]},
            "status": {"phase": "Running", "startTime": "2026-06-01T12:00:00Z",
                "conditions": [{"type": "Ready", "status": "True",
                    "lastTransitionTime": "2026-06-01T12:00:05Z"}]},
        }))
        .unwrap();
        assert_eq!(pod_state(&pod, "cpu", Some("app")).request, Ok(100));
        assert_eq!(
            pod_state(&pod, "cpu", None).request,
            Err("side".to_string())
        );
        let s = pod_state(&pod, "cpu", Some("app"));
        assert_eq!(s.phase, "Running");
        assert!(s.ready.is_some_and(|(r, _)| r));
    }
}
