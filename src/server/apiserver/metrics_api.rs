//! metrics.k8s.io/v1beta1 (NodeMetrics, PodMetrics), as metrics-server
//! serves it, so that `kubectl top` works: each node's kubelet is scraped
//! at /metrics/resource when asked (no scraping while nobody asks: an idle
//! cluster spends nothing on it), its counters kept, and CPU given as the
//! rate between the two latest scrapes. The first question after a quiet
//! spell scrapes twice, a second apart, to have a rate at all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use http::Method;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::kubelet_proxy::{kubelet_addr, send, KubeletClient};
use super::{ApiState, Call};
use crate::api::selector::LabelSelector;
use crate::api::status::ApiError;

/// A newer scrape than this is used as it is.
const FRESH: Duration = Duration::from_secs(5);
/// The gap between the two scrapes of a first question.
const FIRST_GAP: Duration = Duration::from_secs(1);
/// A kubelet's answer larger than this is not read.
const SCRAPE_MAX: usize = 8 << 20;
/// Nodes remembered (their two latest scrapes each).
const NODES_MAX: usize = 4096;
/// A kubelet that failed to answer is not asked again for this long: its
/// pods have no metrics meanwhile, as with metrics-server, and a dead node
/// does not cost every question (every autoscaler pass) the scrape timeout.
const FAILED_PAUSE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Milliseconds since the epoch, from the kubelet.
    pub ts: i64,
    pub node_cpu: Option<f64>,
    pub node_memory: Option<u64>,
    /// (namespace, pod, container) → (CPU seconds, working set).
    pub containers: BTreeMap<(String, String, String), (f64, u64)>,
}

/// The latest scrapes of each node, newest last; and when a node's
/// kubelet last failed to answer.
#[derive(Default)]
pub struct Samples {
    scrapes: Mutex<HashMap<String, (Instant, VecDeque<Scrape>)>>,
    failed: Mutex<HashMap<String, Instant>>,
}

/// Parse the kubelet's Prometheus text (only the metrics used here).
pub fn parse(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, labels, rest) = match line.split_once('{') {
            Some((name, rest)) => match rest.split_once('}') {
                Some((labels, rest)) => (name, labels, rest),
                None => continue,
            },
            None => match line.split_once(' ') {
                Some((name, rest)) => (name, "", rest),
                None => continue,
            },
        };
        let mut fields = rest.split_whitespace();
        let Some(value) = fields.next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if let Some(ts) = fields.next().and_then(|t| t.parse::<i64>().ok()) {
            s.ts = s.ts.max(ts);
        }
        let label = |key: &str| {
            labels.split("\",").find_map(|kv| {
                let (k, v) = kv.split_once("=\"")?;
                (k.trim() == key).then(|| v.trim_end_matches('"').to_string())
            })
        };
        let key = || Some((label("namespace")?, label("pod")?, label("container")?));
        match name {
            "node_cpu_usage_seconds_total" => s.node_cpu = Some(value),
            "node_memory_working_set_bytes" => s.node_memory = Some(value as u64),
            "container_cpu_usage_seconds_total" => {
                if let Some(k) = key() {
                    s.containers.entry(k).or_default().0 = value;
                }
            }
            "container_memory_working_set_bytes" => {
                if let Some(k) = key() {
                    s.containers.entry(k).or_default().1 = value as u64;
                }
            }
            _ => {}
        }
    }
    s
}

/// CPU in nanocores between two readings of a counter in seconds.
fn rate(prev: f64, cur: f64, gap_ms: i64) -> i64 {
    if gap_ms <= 0 {
        return 0;
    }
    ((cur - prev).max(0.0) * 1e9 * 1000.0 / gap_ms as f64) as i64
}

fn usage(nanocores: i64, bytes: u64) -> Value {
    json!({"cpu": format!("{nanocores}n"), "memory": format!("{}Ki", bytes / 1024)})
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn window(gap_ms: i64) -> String {
    format!("{}s", (gap_ms as f64 / 1000.0))
}

/// How long a scrape's body may take.
const SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn scrape(client: &KubeletClient, node: &Value) -> Result<Scrape, String> {
    let addr = kubelet_addr(node).ok_or("the node has no address")?;
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // The proxy's own limits (connect 10 s, answer 60 s) are for people's
    // requests; a scrape that slow is no use to anyone.
    let resp = tokio::time::timeout(
        SCRAPE_TIMEOUT,
        send(
            client,
            name,
            addr,
            &Method::GET,
            "/metrics/resource",
            &http::HeaderMap::new(),
        ),
    )
    .await
    .map_err(|_| "the kubelet did not answer in time".to_string())??;
    if !resp.status().is_success() {
        return Err(format!("the kubelet answered {}", resp.status()));
    }
    // A kubelet that sends its metrics slowly holds no `kubectl top` for
    // long.
    let body = tokio::time::timeout(
        SCRAPE_TIMEOUT,
        http_body_util::Limited::new(resp.into_body(), SCRAPE_MAX).collect(),
    )
    .await
    .map_err(|_| "the kubelet's metrics took too long".to_string())?
    .map_err(|e| e.to_string())?
    .to_bytes();
    Ok(parse(&String::from_utf8_lossy(&body)))
}

/// The two latest scrapes of `node`, scraping as needed.
async fn latest(
    state: &ApiState,
    client: &KubeletClient,
    node: &Value,
) -> Option<(Scrape, Scrape)> {
    let name = node.pointer("/metadata/name")?.as_str()?.to_string();
    let fresh = |samples: &Samples| {
        let map = samples.scrapes.lock().ok()?;
        let (at, v) = map.get(&name)?;
        (at.elapsed() < FRESH && v.len() >= 2)
            .then(|| (v[v.len() - 2].clone(), v[v.len() - 1].clone()))
    };
    if let Some(pair) = fresh(&state.metrics) {
        return Some(pair);
    }
    let paused = |samples: &Samples| {
        samples
            .failed
            .lock()
            .ok()
            .and_then(|m| m.get(&name).map(|at| at.elapsed() < FAILED_PAUSE))
            .unwrap_or(false)
    };
    if paused(&state.metrics) {
        return None;
    }
    for attempt in 0..2 {
        let s = match scrape(client, node).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(node = %name, "scraping the kubelet's metrics: {e}");
                if let Ok(mut m) = state.metrics.failed.lock() {
                    if m.len() >= NODES_MAX {
                        m.retain(|_, at| at.elapsed() < FAILED_PAUSE);
                    }
                    if m.len() < NODES_MAX {
                        m.insert(name.clone(), Instant::now());
                    }
                }
                return None;
            }
        };
        if let Ok(mut m) = state.metrics.failed.lock() {
            m.remove(&name);
        }
        let enough = {
            let mut map = state.metrics.scrapes.lock().ok()?;
            if map.len() >= NODES_MAX && !map.contains_key(&name) {
                map.clear();
            }
            let entry = map
                .entry(name.clone())
                .or_insert_with(|| (Instant::now(), VecDeque::new()));
            entry.0 = Instant::now();
            entry.1.push_back(s);
            while entry.1.len() > 2 {
                entry.1.pop_front();
            }
            entry.1.len() >= 2
        };
        if enough {
            break;
        }
        if attempt == 0 {
            tokio::time::sleep(FIRST_GAP).await;
        }
    }
    let map = state.metrics.scrapes.lock().ok()?;
    let (_, v) = map.get(&name)?;
    (v.len() >= 2).then(|| (v[v.len() - 2].clone(), v[v.len() - 1].clone()))
}

async fn nodes(state: &ApiState) -> Result<Vec<Value>, ApiError> {
    let def = state
        .registry
        .find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let mut out = Vec::new();
    super::admission::each(&state.objects, def, None, |n| out.push(n)).await?;
    Ok(out)
}

/// GET on metrics.k8s.io/v1beta1 nodes or pods, one or all.
pub async fn serve(call: &Call<'_>, method: &Method) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_supported(
            call.r.def.plural,
            method.as_str(),
        ));
    }
    let state = call.state;
    let Some(client) = state.kubelet.get() else {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            "this server cannot reach kubelets",
        ));
    };
    let selector = LabelSelector::parse(call.q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut all_nodes = nodes(state).await?;
    let r = call.r;
    let pods_wanted = r.def.plural == "pods";
    // The pods asked about, with their labels; only their nodes are asked.
    let mut labels: HashMap<(String, String), Value> = HashMap::new();
    if pods_wanted {
        let pod_def = state
            .registry
            .find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        let mut hosts = std::collections::HashSet::new();
        super::admission::each(&state.objects, pod_def, r.namespace.as_deref(), |p| {
            let name = p.pointer("/metadata/name").and_then(Value::as_str);
            if !selector.matches_object(&p) || r.name.as_deref().is_some_and(|n| Some(n) != name) {
                return;
            }
            if let Some(node) = p.pointer("/spec/nodeName").and_then(Value::as_str) {
                hosts.insert(node.to_string());
            }
            let key = p
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .zip(name)
                .map(|(ns, n)| (ns.to_string(), n.to_string()));
            if let Some(key) = key {
                labels.insert(
                    key,
                    p.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                );
            }
        })
        .await?;
        all_nodes.retain(|v| {
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| hosts.contains(n))
        });
    } else {
        if let Some(n) = &r.name {
            all_nodes.retain(|v| v.pointer("/metadata/name").and_then(Value::as_str) == Some(n));
        }
        all_nodes.retain(|v| selector.matches_object(v));
    }
    let scrapes =
        futures::future::join_all(all_nodes.iter().map(|n| latest(state, client, n))).await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut items = Vec::new();
    if !pods_wanted {
        for (node, pair) in all_nodes.iter().zip(scrapes) {
            let Some((prev, cur)) = pair else { continue };
            let (Some(pc), Some(cc), Some(mem)) = (prev.node_cpu, cur.node_cpu, cur.node_memory)
            else {
                continue;
            };
            let gap = cur.ts - prev.ts;
            items.push(json!({
                "metadata": {
                    "name": node.pointer("/metadata/name"),
                    "creationTimestamp": now,
                    "labels": node.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                },
                "timestamp": time(cur.ts),
                "window": window(gap),
                "usage": usage(rate(pc, cc, gap), mem),
            }));
        }
    } else {
        for (prev, cur) in scrapes.into_iter().flatten() {
            let gap = cur.ts - prev.ts;
            let mut by_pod: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
            for ((ns, pod, c), (cpu, mem)) in &cur.containers {
                let key = (ns.clone(), pod.clone());
                if !labels.contains_key(&key) || r.name.as_ref().is_some_and(|n| n != pod) {
                    continue;
                }
                let before = prev.containers.get(&(ns.clone(), pod.clone(), c.clone()));
                let Some((pcpu, _)) = before else { continue };
                by_pod.entry(key).or_default().push(json!({
                    "name": c, "usage": usage(rate(*pcpu, *cpu, gap), *mem)
                }));
            }
            for ((ns, pod), containers) in by_pod {
                let l = labels.get(&(ns.clone(), pod.clone())).cloned();
                items.push(json!({
                    "metadata": {"name": pod, "namespace": ns, "creationTimestamp": now, "labels": l},
                    "timestamp": time(cur.ts),
                    "window": window(gap),
                    "containers": containers,
                }));
            }
        }
    }
    let kind = if pods_wanted {
        "PodMetrics"
    } else {
        "NodeMetrics"
    };
    if let Some(name) = &r.name {
        let one = items.into_iter().next().ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", r.def.plural),
            )
        })?;
        let mut one = one;
        one["kind"] = json!(kind);
        one["apiVersion"] = json!("metrics.k8s.io/v1beta1");
        return Ok(axum::Json(one).into_response());
    }
    for i in &mut items {
        i["kind"] = json!(kind);
        i["apiVersion"] = json!("metrics.k8s.io/v1beta1");
    }
    Ok(axum::Json(json!({
        "kind": format!("{kind}List"),
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_parse_and_rates_compute() {
        let text = "# TYPE x counter\nnode_cpu_usage_seconds_total 10.5 2000\n\
            node_memory_working_set_bytes 4096 2000\n\
            container_cpu_usage_seconds_total{container=\"main\",namespace=\"ns\",pod=\"web\"} 1.25 2000\n\
            container_memory_working_set_bytes{container=\"main\",namespace=\"ns\",pod=\"web\"} 2048 2000\n";
        let s = parse(text);
        assert_eq!(s.ts, 2000);
        assert_eq!(s.node_cpu, Some(10.5));
        assert_eq!(s.node_memory, Some(4096));
        assert_eq!(
            s.containers[&("ns".into(), "web".into(), "main".into())],
            (1.25, 2048)
        );
        // Half a core over a second; a counter that went back is 0.
        assert_eq!(rate(1.0, 1.5, 1000), 500_000_000);
        assert_eq!(rate(2.0, 1.0, 1000), 0);
        assert_eq!(usage(5, 4096)["memory"], "4Ki");
    }

    #[tokio::test]
    async fn a_kubelet_that_failed_is_not_asked_again_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        // A "kubelet" that hangs up on every connection, and counts them.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = accepted.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let (state, _store) = crate::server::controllers::tests::api_state(dir.path());
        let client = KubeletClient {
            tls: crate::server::pki::client_tls_config("", None).unwrap(),
            tunnels: Default::default(),
        };
        let node = json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
        assert!(latest(&state, &client, &node).await.is_none());
        let asked = accepted.load(Ordering::SeqCst);
        assert!(asked >= 1);
        // Asked again at once: no metrics, and the kubelet is left alone.
        assert!(latest(&state, &client, &node).await.is_none());
        assert_eq!(accepted.load(Ordering::SeqCst), asked);
    }
}
