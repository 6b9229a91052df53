//! GET /metrics/resource: the node's and its pods' CPU and memory, in the
//! Prometheus text format and with the metric names kubelet's endpoint of
//! the same path uses (what metrics-server scrapes): cumulative CPU
//! seconds and the memory working set (usage less inactive page cache),
//! each with the time it was read. Rates are the scraper's to compute.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use http::{Response, StatusCode};

use super::{text, Body};
use crate::agent::pods::worker::WorkerCtx;
use crate::runtime::pod::PodRuntime;

/// One container's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub memory_working_set: u64,
}

/// The node's busy CPU seconds since boot, from /proc/stat's `cpu` line.
pub fn node_cpu_seconds(stat: &str, ticks_per_second: f64) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    Some(busy as f64 / ticks_per_second)
}

/// The node's memory working set: what is in use and cannot just be
/// dropped (MemTotal less MemAvailable).
pub fn node_working_set(meminfo: &str) -> Option<u64> {
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(field("MemTotal:")?.saturating_sub(field("MemAvailable:")?) * 1024)
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn serve<R: PodRuntime>(ctx: Arc<WorkerCtx<R>>) -> Response<Body> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let root = ctx.root.clone();
    let node = tokio::task::spawn_blocking(move || {
        let n = super::stats_summary::measure_node(&root);
        (n.cpu_seconds, n.working_set)
    })
    .await
    .unwrap_or((None, None));
    let samples = match super::stats_summary::samples(&ctx).await {
        Ok(s) => s,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    // (namespace, pod, container) → usage, for the running containers of pods.
    let containers: BTreeMap<(String, String, String), Usage> = samples
        .into_iter()
        .map(|c| {
            let usage = Usage {
                cpu_seconds: c.stats.cpu_usage_nanos as f64 / 1e9,
                memory_working_set: c
                    .stats
                    .memory_usage_bytes
                    .saturating_sub(c.stats.memory_inactive_file_bytes),
            };
            ((c.namespace, c.pod, c.container), usage)
        })
        .collect();
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(super::full(render(node, &containers, now_ms)))
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

pub fn render(
    node: (Option<f64>, Option<u64>),
    containers: &BTreeMap<(String, String, String), Usage>,
    ts: i64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# TYPE node_cpu_usage_seconds_total counter");
    if let Some(cpu) = node.0 {
        let _ = writeln!(out, "node_cpu_usage_seconds_total {cpu} {ts}");
    }
    let _ = writeln!(out, "# TYPE node_memory_working_set_bytes gauge");
    if let Some(mem) = node.1 {
        let _ = writeln!(out, "node_memory_working_set_bytes {mem} {ts}");
    }
    let _ = writeln!(out, "# TYPE container_cpu_usage_seconds_total counter");
    for ((ns, pod, c), u) in containers {
        let _ = writeln!(
            out,
            "container_cpu_usage_seconds_total{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {} {ts}",
            label(c),
            label(ns),
            label(pod),
            u.cpu_seconds
        );
    }
    let _ = writeln!(out, "# TYPE container_memory_working_set_bytes gauge");
    for ((ns, pod, c), u) in containers {
        let _ = writeln!(
            out,
            "container_memory_working_set_bytes{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {} {ts}",
            label(c),
            label(ns),
            label(pod),
            u.memory_working_set
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_figures_from_proc() {
        let stat = "cpu  100 20 30 1000 50 5 5 10 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(node_cpu_seconds(stat, 100.0), Some(1.7));
        let mem = "MemTotal:       2048 kB\nMemFree: 10 kB\nMemAvailable:   1024 kB\n";
        assert_eq!(node_working_set(mem), Some(1024 * 1024));
    }

    #[test]
    fn rendered_as_kubelet_names_them() {
        let mut c = BTreeMap::new();
        c.insert(
            ("ns".into(), "web".into(), "main".into()),
            Usage {
                cpu_seconds: 1.5,
                memory_working_set: 4096,
            },
        );
        let text = render((Some(2.0), Some(8192)), &c, 1000);
        assert!(
            text.contains("node_cpu_usage_seconds_total 2 1000\n"),
            "{text}"
        );
        assert!(text.contains(
            "container_memory_working_set_bytes{container=\"main\",namespace=\"ns\",pod=\"web\"} 4096 1000\n"
        ));
    }
}
