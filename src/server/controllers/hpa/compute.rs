//! One pass's measurement: each metric of an autoscaler turned into a
//! recommendation (or the reason it could not be), and the largest taken.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, MetricSpec, MetricStatus,
    MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::metrics::{self, PodUsage};
use super::replicas::{self, Target};
use super::Ctx;
use crate::api::selector::LabelSelector;
use crate::events::{reference, WARNING};
use crate::server::controllers::runtime::Key;

/// One metric's recommendation and what it saw, or why it could not.
pub(super) struct Proposal {
    pub(super) replicas: i32,
    pub(super) description: String,
    pub(super) status: MetricStatus,
}

pub(super) struct MetricError {
    pub(super) reason: &'static str,
    /// The error as the metric's event says it.
    pub(super) event: String,
    /// As FailedComputeMetricsReplicas says it.
    pub(super) wrapped: String,
}

impl Ctx {
    /// The recommendation of one metric of the target's pods.
    pub(super) fn metric(
        &self,
        spec: &MetricSpec,
        current: i32,
        pods: &[Arc<Pod>],
        usage: &Result<BTreeMap<String, PodUsage>, String>,
        now: Timestamp,
    ) -> Result<Proposal, MetricError> {
        let (resource, container, target) = match spec.type_.as_str() {
            "Resource" => {
                let Some(r) = spec.resource.as_ref() else {
                    return Err(invalid_source(&spec.type_));
                };
                (r.name.clone(), None, r.target.clone())
            }
            "ContainerResource" => {
                let Some(r) = spec.container_resource.as_ref() else {
                    return Err(invalid_source(&spec.type_));
                };
                (r.name.clone(), Some(r.container.clone()), r.target.clone())
            }
            "Pods" | "Object" => {
                let (reason, what) = if spec.type_ == "Pods" {
                    ("FailedGetPodsMetric", "pods")
                } else {
                    ("FailedGetObjectMetric", "object")
                };
                let e = "unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered";
                return Err(MetricError {
                    reason,
                    event: e.into(),
                    wrapped: format!("failed to get {what} metric value: {e}"),
                });
            }
            "External" => {
                let name = spec
                    .external
                    .as_ref()
                    .map(|e| e.metric.name.clone())
                    .unwrap_or_default();
                let e = "unable to fetch metrics from external metrics API: no external metrics API (external.metrics.k8s.io) registered";
                return Err(MetricError {
                    reason: "FailedGetExternalMetric",
                    event: e.into(),
                    wrapped: format!("failed to get {name} external metric value: {e}"),
                });
            }
            other => return Err(invalid_source(other)),
        };
        let (reason, what) = match &container {
            None => ("FailedGetResourceMetric", format!("{resource} resource")),
            Some(c) => ("FailedGetContainerResourceMetric", format!("{c} container")),
        };
        let utilization = target.average_utilization;
        let (kind, target) = match (utilization, target.average_value.as_ref()) {
            (Some(u), _) => ("utilization", Target::Utilization(u)),
            // Beyond what a count of thousandths holds: no usage reaches it.
            (None, Some(q)) => (
                "usage",
                Target::AverageValue(metrics::milli(&q.0).unwrap_or(i64::MAX)),
            ),
            (None, None) => {
                let e = "invalid resource metric source: neither a utilization target nor a value target was set".to_string();
                return Err(MetricError {
                    reason,
                    wrapped: format!("failed to get {what} metric value: {e}"),
                    event: e,
                });
            }
        };
        let fail = |e: String| {
            let e = format!("failed to get {resource} {kind}: {e}");
            MetricError {
                reason,
                wrapped: format!("failed to get {what} metric value: {e}"),
                event: e,
            }
        };
        let usage = usage.as_ref().map_err(|e| {
            fail(format!(
                "unable to get metrics for resource {resource}: {e}"
            ))
        })?;
        if usage.is_empty() {
            return Err(fail(format!(
                "unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
            )));
        }
        let samples = metrics::samples(usage, &resource, container.as_deref());
        let states: Vec<_> = pods
            .iter()
            .map(|p| metrics::pod_state(p, &resource, container.as_deref()))
            .collect();
        let out = replicas::resource_replicas(
            current,
            target,
            &resource,
            &states,
            &samples,
            &self.config.tuning,
            now,
        )
        .map_err(fail)?;
        let value = MetricValueStatus {
            average_utilization: out.utilization,
            average_value: Some(Quantity(metrics::format_milli(out.average))),
            value: None,
        };
        let description = match (&container, utilization.is_some()) {
            (None, true) => format!("{resource} resource utilization (percentage of request)"),
            (Some(_), true) => {
                format!("{resource} container resource utilization (percentage of request)")
            }
            (_, false) => format!("{resource} resource"),
        };
        let status = match container {
            None => MetricStatus {
                type_: "Resource".into(),
                resource: Some(ResourceMetricStatus {
                    name: resource,
                    current: value,
                }),
                ..Default::default()
            },
            Some(c) => MetricStatus {
                type_: "ContainerResource".into(),
                container_resource: Some(ContainerResourceMetricStatus {
                    name: resource,
                    container: c,
                    current: value,
                }),
                ..Default::default()
            },
        };
        Ok(Proposal {
            replicas: out.replicas,
            description,
            status,
        })
    }
}

fn invalid_source(ty: &str) -> MetricError {
    let e = format!("unknown metric source type {ty:?}");
    MetricError {
        reason: "InvalidMetricSourceType",
        wrapped: e.clone(),
        event: e,
    }
}

pub(super) struct Computed {
    /// The highest recommendation and the metric that made it.
    pub(super) best: Option<(i32, String)>,
    /// One entry per metric, empty where it failed, as upstream.
    pub(super) statuses: Vec<MetricStatus>,
    pub(super) errors: Vec<MetricError>,
}

/// Every metric's recommendation; the largest wins. With some failing, a
/// scale in is not made on partial data.
pub(super) async fn compute(
    ctx: &Ctx,
    hpa: &HorizontalPodAutoscaler,
    scale: &Scale,
    current: i32,
    key: &Key,
    now: Timestamp,
) -> Computed {
    let me = reference(hpa);
    let mut out = Computed {
        best: None,
        statuses: Vec::new(),
        errors: Vec::new(),
    };
    let selector_text = scale
        .status
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let fail_all = |out: &mut Computed, reason: &'static str, event: &str, message: String| {
        ctx.events
            .object(me.clone(), WARNING, event, message.clone());
        ctx.events.object(
            me.clone(),
            WARNING,
            "FailedComputeMetricsReplicas",
            message.clone(),
        );
        out.errors.push(MetricError {
            reason,
            event: message.clone(),
            wrapped: message,
        });
    };
    if selector_text.is_empty() {
        fail_all(
            &mut out,
            "InvalidSelector",
            "SelectorRequired",
            "selector is required".into(),
        );
        // The condition says it as upstream's does.
        if let Some(e) = out.errors.last_mut() {
            e.event = "the HPA target's scale is missing a selector".into();
        }
        return out;
    }
    let selector = match LabelSelector::parse(&selector_text) {
        Ok(s) => s,
        Err(e) => {
            fail_all(
                &mut out,
                "InvalidSelector",
                "InvalidSelector",
                format!(
                    "couldn't convert selector into a corresponding internal selector object: {e}"
                ),
            );
            return out;
        }
    };
    let labels_of = |p: &Pod| -> serde_json::Map<String, Value> {
        p.metadata
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect()
    };
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .list(&key.namespace)
        .into_iter()
        .filter(|p| selector.matches(&labels_of(p)))
        .collect();
    // Pods another autoscaler would scale too: neither acts, as upstream.
    let others: Vec<String> = {
        let mut all = ctx.selectors.lock().unwrap_or_else(|p| p.into_inner());
        all.insert(key.clone(), selector.clone());
        let mut keys: Vec<String> = all
            .iter()
            .filter(|(k, _)| k.namespace == key.namespace)
            .filter(|(_, sel)| pods.iter().any(|p| sel.matches(&labels_of(p))))
            .map(|(k, _)| format!("{}/{}", k.namespace, k.name))
            .collect();
        keys.sort();
        keys
    };
    if others.len() > 1 {
        let message = format!(
            "pods by selector {selector_text} are controlled by multiple HPAs: [{}]",
            others.join(" ")
        );
        ctx.events
            .object(me.clone(), WARNING, "AmbiguousSelector", message.clone());
        out.errors.push(MetricError {
            reason: "AmbiguousSelector",
            event: message.clone(),
            wrapped: message,
        });
        return out;
    }
    let specs = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.clone())
        .unwrap_or_default();
    let needs_usage = specs
        .iter()
        .any(|m| matches!(m.type_.as_str(), "Resource" | "ContainerResource"));
    let usage = if needs_usage {
        metrics::fetch(&ctx.client, &key.namespace, &selector_text).await
    } else {
        Ok(BTreeMap::new())
    };
    for spec in &specs {
        match ctx.metric(spec, current, &pods, &usage, now) {
            Ok(p) => {
                out.statuses.push(p.status);
                if out.best.as_ref().is_none_or(|(r, _)| p.replicas > *r) {
                    out.best = Some((p.replicas, p.description));
                }
            }
            Err(e) => {
                ctx.events
                    .object(me.clone(), WARNING, e.reason, e.event.clone());
                out.statuses.push(MetricStatus::default());
                out.errors.push(e);
            }
        }
    }
    if !out.errors.is_empty() {
        let message = format!(
            "invalid metrics ({} invalid out of {}), first error is: {}",
            out.errors.len(),
            specs.len(),
            out.errors[0].wrapped
        );
        let partial_scale_in = out.best.as_ref().is_some_and(|(r, _)| *r < current);
        if out.best.is_none() || partial_scale_in {
            ctx.events
                .object(me, WARNING, "FailedComputeMetricsReplicas", message);
            out.best = None;
        }
    }
    out
}
