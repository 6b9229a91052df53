//! GET /stats/summary: kubelet's Summary API (stats/v1alpha1), what
//! `kubectl get --raw /api/v1/nodes/<node>/proxy/stats/summary` and the
//! tools built on it read: the node's CPU, memory and filesystems, and per
//! pod (and per container) CPU and memory. CPU is cumulative
//! (`usageCoreNanoSeconds`); `usageNanoCores`, a rate, is left out, as
//! kubelet leaves it out until it has two samples.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::resource_metrics::{node_cpu_seconds, node_working_set};
use super::{text, Body};
use crate::agent::pods::spec::{
    LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use crate::agent::pods::worker::WorkerCtx;
use crate::runtime::container::cgroups::Stats;
use crate::runtime::pod::{ContainerState, PodRuntime};

/// One running container of a pod, measured.
pub struct Sample {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    pub started_at: Option<DateTime<Utc>>,
    pub stats: Stats,
}

/// The node as /proc and the image filesystem show it.
#[derive(Default)]
pub struct NodeSample {
    pub cpu_seconds: Option<f64>,
    pub memory_total: Option<u64>,
    pub working_set: Option<u64>,
    /// (capacity, available, used) bytes of the filesystem holding `root`.
    pub fs: Option<(u64, u64, u64)>,
    /// Inodes of it: (total, free).
    pub inodes: Option<(u64, u64)>,
    pub boot: Option<DateTime<Utc>>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn working_set(s: &Stats) -> u64 {
    s.memory_usage_bytes
        .saturating_sub(s.memory_inactive_file_bytes)
}

fn fs_json(n: &NodeSample, now: &str) -> Value {
    match (n.fs, n.inodes) {
        (Some((capacity, available, used)), inodes) => {
            let mut v = json!({
                "time": now,
                "availableBytes": available,
                "capacityBytes": capacity,
                "usedBytes": used,
            });
            if let Some((total, free)) = inodes {
                v["inodes"] = json!(total);
                v["inodesFree"] = json!(free);
                v["inodesUsed"] = json!(total.saturating_sub(free));
            }
            v
        }
        _ => json!({"time": now}),
    }
}

/// The summary, as kubelet writes it.
/// The Summary. A pod's own figures are its cgroup's (`pod_stats`, by UID)
/// where it has one: they count what its containers used before a restart
/// too, so they never go backwards; else the sum of its containers'.
pub fn render(
    node_name: &str,
    node: &NodeSample,
    samples: &[Sample],
    pod_stats: &HashMap<String, Stats>,
    now: DateTime<Utc>,
) -> Value {
    let now_s = time(now);
    let mut memory = json!({"time": now_s});
    if let Some(ws) = node.working_set {
        memory["workingSetBytes"] = json!(ws);
        memory["usageBytes"] = json!(ws);
        if let Some(total) = node.memory_total {
            memory["availableBytes"] = json!(total.saturating_sub(ws));
        }
    }
    let mut cpu = json!({"time": now_s});
    if let Some(secs) = node.cpu_seconds {
        cpu["usageCoreNanoSeconds"] = json!((secs * 1e9) as u64);
    }
    let fs = fs_json(node, &now_s);
    // uid → (namespace, name, containers), in a stable order.
    let mut pods: BTreeMap<(&str, &str, &str), Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        pods.entry((&s.namespace, &s.pod, &s.uid))
            .or_default()
            .push(s);
    }
    let pods: Vec<Value> = pods
        .iter()
        .map(|((ns, name, uid), cs)| {
            let started = cs.iter().filter_map(|c| c.started_at).min();
            let containers: Vec<Value> = cs
                .iter()
                .map(|c| {
                    json!({
                        "name": c.container,
                        "startTime": c.started_at.map(time),
                        "cpu": {"time": now_s, "usageCoreNanoSeconds": c.stats.cpu_usage_nanos},
                        "memory": {
                            "time": now_s,
                            "usageBytes": c.stats.memory_usage_bytes,
                            "workingSetBytes": working_set(&c.stats),
                        },
                    })
                })
                .collect();
            let (cpu, usage, ws) = match pod_stats.get(*uid) {
                Some(p) => (p.cpu_usage_nanos, p.memory_usage_bytes, working_set(p)),
                None => (
                    cs.iter().map(|c| c.stats.cpu_usage_nanos).sum(),
                    cs.iter().map(|c| c.stats.memory_usage_bytes).sum(),
                    cs.iter().map(|c| working_set(&c.stats)).sum(),
                ),
            };
            json!({
                "podRef": {"name": name, "namespace": ns, "uid": uid},
                "startTime": started.map(time),
                "containers": containers,
                "cpu": {"time": now_s, "usageCoreNanoSeconds": cpu},
                "memory": {"time": now_s, "usageBytes": usage, "workingSetBytes": ws},
            })
        })
        .collect();
    json!({
        "node": {
            "nodeName": node_name,
            "startTime": node.boot.map(time),
            "cpu": cpu,
            "memory": memory,
            "fs": fs,
            "runtime": {"imageFs": fs},
        },
        "pods": pods,
    })
}

pub(super) fn measure_node(root: &Path) -> NodeSample {
    use crate::agent::node::host;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let fs = host::statfs(root).ok();
    NodeSample {
        cpu_seconds: node_cpu_seconds(&stat, ticks),
        memory_total: host::parse_meminfo(&mem, "MemTotal"),
        working_set: node_working_set(&mem),
        fs: fs.as_ref().map(|f| {
            let used = f.capacity_bytes.saturating_sub(f.free_bytes);
            (f.capacity_bytes, f.available_bytes, used)
        }),
        inodes: fs.map(|f| (f.inodes, f.inodes_free)),
        boot: boot_time(&stat),
    }
}

/// When the node booted, from /proc/stat's `btime`.
fn boot_time(stat: &str) -> Option<DateTime<Utc>> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t, 0))
}

/// The running containers of pods, measured.
/// The pod cgroups' figures of pods `uids` (those this agent made).
fn pod_cgroup_stats(root: &Path, uids: Vec<String>) -> HashMap<String, Stats> {
    let mut out = HashMap::new();
    for uid in uids {
        if out.contains_key(&uid) {
            continue;
        }
        let Some(parent) = crate::agent::pods::pod_cgroup::marked(root, &uid) else {
            continue;
        };
        if let Ok(s) = crate::runtime::container::cgroups::stats(&parent) {
            out.insert(uid, s);
        }
    }
    out
}

pub async fn samples<R: PodRuntime>(ctx: &WorkerCtx<R>) -> Result<Vec<Sample>, String> {
    let all = ctx
        .runtime
        .list_containers(Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for c in all.iter().filter(|c| c.state == ContainerState::Running) {
        let label = |k: &str| c.labels.get(k).cloned();
        let (Some(namespace), Some(pod), Some(container)) = (
            label(LABEL_POD_NAMESPACE),
            label(LABEL_POD_NAME),
            label(LABEL_CONTAINER_NAME),
        ) else {
            continue;
        };
        let Ok(stats) = ctx.runtime.container_stats(&c.id).await else {
            continue;
        };
        out.push(Sample {
            namespace,
            pod,
            uid: label(LABEL_POD_UID).unwrap_or_default(),
            container,
            started_at: c.started_at,
            stats,
        });
    }
    Ok(out)
}

pub async fn serve<R: PodRuntime>(ctx: Arc<WorkerCtx<R>>) -> Response<Body> {
    let root = ctx.root.clone();
    let node = tokio::task::spawn_blocking(move || measure_node(&root))
        .await
        .unwrap_or_default();
    let samples = match samples(&ctx).await {
        Ok(s) => s,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let uids: Vec<String> = samples.iter().map(|s| s.uid.clone()).collect();
    let root = ctx.root.clone();
    let pod_stats = tokio::task::spawn_blocking(move || pod_cgroup_stats(&root, uids))
        .await
        .unwrap_or_default();
    let body = render(&ctx.node_name, &node, &samples, &pod_stats, Utc::now());
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(super::full(body.to_string()))
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaped_as_kubelets_summary() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let sample = |c: &str, cpu: u64, mem: u64| Sample {
            namespace: "shop".into(),
            pod: "web".into(),
            uid: "u1".into(),
            container: c.into(),
            started_at: Some(now),
            stats: Stats {
                cpu_usage_nanos: cpu,
                memory_usage_bytes: mem,
                memory_inactive_file_bytes: 100,
                ..Default::default()
            },
        };
        let node = NodeSample {
            cpu_seconds: Some(2.5),
            memory_total: Some(1000),
            working_set: Some(400),
            fs: Some((100, 40, 60)),
            inodes: Some((10, 4)),
            boot: Some(now),
        };
        let both = [sample("a", 5, 1000), sample("b", 7, 2000)];
        let v = render("n1", &node, &both, &HashMap::new(), now);
        assert_eq!(v["node"]["nodeName"], "n1");
        assert_eq!(v["node"]["cpu"]["usageCoreNanoSeconds"], 2_500_000_000u64);
        assert_eq!(v["node"]["memory"]["availableBytes"], 600);
        assert_eq!(v["node"]["fs"]["usedBytes"], 60);
        assert_eq!(v["node"]["fs"]["inodesUsed"], 6);
        let pod = &v["pods"][0];
        assert_eq!(
            pod["podRef"],
            json!({"name": "web", "namespace": "shop", "uid": "u1"})
        );
        assert_eq!(pod["cpu"]["usageCoreNanoSeconds"], 12);
        assert_eq!(pod["memory"]["workingSetBytes"], 2800);
        assert_eq!(pod["containers"][1]["name"], "b");
        assert_eq!(pod["containers"][1]["memory"]["workingSetBytes"], 1900);
        // The pod's cgroup, when it has one, counts for the pod.
        let cgroup = Stats {
            cpu_usage_nanos: 40,
            memory_usage_bytes: 5000,
            memory_inactive_file_bytes: 1000,
            ..Stats::default()
        };
        let v = render(
            "n1",
            &node,
            &both,
            &HashMap::from([("u1".to_string(), cgroup)]),
            now,
        );
        assert_eq!(v["pods"][0]["cpu"]["usageCoreNanoSeconds"], 40);
        assert_eq!(v["pods"][0]["memory"]["workingSetBytes"], 4000);
    }
}
