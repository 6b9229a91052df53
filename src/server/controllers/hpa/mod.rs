//! The HorizontalPodAutoscaler controller (upstream's podautoscaler):
//! every sync period, each autoscaler reads its target's `/scale`, the
//! usage of the target's pods from the resource metrics API
//! (metrics.k8s.io, served from the kubelets), and resizes the target
//! through `/scale` — so it works for anything with a scale subresource.
//!
//! - `replicas.rs`: one metric's recommendation (tolerance, pods not
//!   ready or without samples).
//! - `normalize.rs`: stabilisation windows, scaling policies, bounds.
//! - `metrics.rs`: usage and requests of the pods.
//!
//! Resource and ContainerResource metrics are served (CPU and memory,
//! utilisation and average value). Pods, Object and External metrics need
//! a custom or external metrics API, which skiff does not have: those
//! fail as upstream's do without an adapter installed.

mod compute;
pub mod metrics;
pub mod normalize;
pub mod replicas;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use self::normalize::{Bounds, History};
use self::replicas::Tuning;
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};
use crate::api::selector::LabelSelector;
use crate::events::{reference, Recorder, NORMAL, WARNING};

pub const AGENT: &str = "skiff-horizontal-pod-autoscaler";
pub const COMPONENT: &str = "horizontal-pod-autoscaler";
/// Upstream runs five.
const WORKERS: usize = 5;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub sync_period: Duration,
    /// Scale-in stabilisation of autoscalers that set none.
    pub down_window: Duration,
    pub tuning: Tuning,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
    hpas: Arc<Informer<HorizontalPodAutoscaler>>,
    pods: Arc<Informer<Pod>>,
    events: Recorder,
    config: Config,
    /// Per autoscaler (by uid): recent recommendations and changes.
    history: Mutex<HashMap<String, History>>,
    /// Target kinds resolved to their resources through discovery.
    kinds: Mutex<HashMap<(String, String), ApiResource>>,
    /// Each autoscaler's target selector as last read, to find pods that
    /// two of them would scale.
    selectors: Mutex<HashMap<Key, LabelSelector>>,
}

pub async fn run(
    client: kube::Client,
    informers: &Informers,
    cancel: CancellationToken,
    config: Config,
) {
    let queue = Arc::new(Queue::<Key>::default());
    let ctx = Arc::new(Ctx {
        events: Recorder::for_component(client.clone(), COMPONENT),
        client,
        hpas: informers.get::<HorizontalPodAutoscaler>(),
        pods: informers.get::<Pod>(),
        config,
        history: Mutex::new(HashMap::new()),
        kinds: Mutex::new(HashMap::new()),
        selectors: Mutex::new(HashMap::new()),
    });
    let q = queue.clone();
    let c = ctx.clone();
    ctx.hpas
        .on_change(move |ch: &Change<'_, HorizontalPodAutoscaler>| {
            match (ch.old, ch.new) {
                (_, Some(new)) => {
                    // Its own status writes come back here: only a new spec
                    // (or a new autoscaler) is looked at before its period.
                    if ch.old.map(|o| &o.spec) != Some(&new.spec) {
                        q.add(Key::of(new.as_ref()));
                    }
                }
                (Some(old), None) => {
                    let uid = old.metadata.uid.clone().unwrap_or_default();
                    c.history
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&uid);
                    c.selectors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&Key::of(old.as_ref()));
                }
                (None, None) => {}
            }
        });
    ctx.hpas.synced().await;
    ctx.pods.synced().await;
    let c = ctx.clone();
    runtime::run_workers(COMPONENT, queue, WORKERS, cancel, move |key: Key| {
        let c = c.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

/// Set a condition: updated in place, a new type appended, the transition
/// time moved only when the status does.
fn set_condition(
    conditions: &mut Vec<HorizontalPodAutoscalerCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status || c.last_transition_time.is_none() {
                c.last_transition_time = Some(Time(now));
            }
            c.status = status;
            c.reason = Some(reason.into());
            c.message = Some(message);
        }
        None => conditions.push(HorizontalPodAutoscalerCondition {
            type_: type_.into(),
            status,
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
        }),
    }
}

impl Ctx {
    /// The resource of a target kind, through discovery, remembered.
    async fn resolve(&self, api_version: &str, kind: &str) -> Result<ApiResource, String> {
        let k = (api_version.to_string(), kind.to_string());
        if let Some(ar) = self.kinds.lock().unwrap_or_else(|p| p.into_inner()).get(&k) {
            return Ok(ar.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None if api_version.is_empty() => ("", "v1"),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|_| format!("no matches for kind {kind:?} in group {group:?}"))?;
        self.kinds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k, ar.clone());
        Ok(ar)
    }

    async fn scale_api(
        &self,
        hpa: &HorizontalPodAutoscaler,
        namespace: &str,
    ) -> Result<(Api<DynamicObject>, String), String> {
        let r = hpa
            .spec
            .as_ref()
            .map(|s| s.scale_target_ref.clone())
            .unwrap_or_default();
        let ar = self
            .resolve(r.api_version.as_deref().unwrap_or_default(), &r.kind)
            .await?;
        Ok((
            Api::namespaced_with(self.client.clone(), namespace, &ar),
            r.name,
        ))
    }

    fn history<T>(&self, uid: &str, f: impl FnOnce(&mut History) -> T) -> T {
        let mut all = self.history.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(uid.to_string()).or_default())
    }
}

/// An API error as a person reads it: the Status message.
fn api_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        other => other.to_string(),
    }
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let period = ctx.config.sync_period;
    let Some(hpa) = ctx.hpas.get_key(key) else {
        return Ok(Action::Done);
    };
    if hpa.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let now = Timestamp::now();
    let uid = hpa.metadata.uid.clone().unwrap_or_default();
    let spec = hpa.spec.clone().unwrap_or_default();
    let old = hpa.status.clone().unwrap_or_default();
    let mut status = HorizontalPodAutoscalerStatus {
        observed_generation: None,
        ..old.clone()
    };
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let me = reference(hpa.as_ref());

    let scaling = match ctx.scale_api(&hpa, &key.namespace).await {
        Ok((api, name)) => api
            .get_scale(&name)
            .await
            .map(|s| (api, name, s))
            .map_err(api_message),
        Err(e) => Err(format!(
            "unable to determine resource for scale target reference: {e}"
        )),
    };
    let (api, target_name, scale) = match scaling {
        Ok(s) => s,
        Err(e) => {
            ctx.events.object(me, WARNING, "FailedGetScale", e.clone());
            set_condition(
                &mut conditions,
                "AbleToScale",
                false,
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {e}"),
                now,
            );
            status.conditions = Some(conditions);
            write_status(ctx, &hpa, key, status).await?;
            return Ok(Action::After(period));
        }
    };
    set_condition(
        &mut conditions,
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
        now,
    );
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    // The size found on first sight is a recommendation too: a restart
    // does not scale in before the stabilisation window has passed.
    ctx.history(&uid, |h| {
        if h.recommendations.is_empty() {
            h.recommendations.push((current, now));
        }
    });
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let mut metric_statuses: Option<Vec<MetricStatus>> = None;
    let mut reason = String::new();
    let desired;
    if current == 0 && min != 0 {
        desired = 0;
        set_condition(
            &mut conditions,
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
            now,
        );
    } else if current > max {
        desired = max;
        reason = "Current number of replicas above Spec.MaxReplicas".into();
    } else if current < min {
        desired = min;
        reason = "Current number of replicas below Spec.MinReplicas".into();
    } else {
        let computed = compute::compute(ctx, &hpa, &scale, current, key, now).await;
        metric_statuses = Some(computed.statuses).filter(|s| !s.is_empty());
        let Some((proposal, description)) = computed.best else {
            // Nothing to go on: no scaling.
            let first = computed.errors.first();
            if let Some(first) = first {
                set_condition(
                    &mut conditions,
                    "ScalingActive",
                    false,
                    first.reason,
                    // Selector trouble is said as it is; a metric's, as
                    // what kept the count from being computed.
                    if matches!(first.reason, "InvalidSelector" | "AmbiguousSelector") {
                        first.event.clone()
                    } else {
                        format!(
                            "the HPA was unable to compute the replica count: {}",
                            first.event
                        )
                    },
                    now,
                );
            }
            status.current_replicas = Some(current);
            status.current_metrics = metric_statuses;
            status.conditions = Some(conditions);
            write_status(ctx, &hpa, key, status).await?;
            return Ok(Action::After(period));
        };
        set_condition(
            &mut conditions,
            "ScalingActive",
            true,
            "ValidMetricFound",
            format!(
                "the HPA was able to successfully calculate a replica count from {description}"
            ),
            now,
        );
        let bounds = Bounds { current, min, max };
        let down = SignedDuration::try_from(ctx.config.down_window).unwrap_or(SignedDuration::ZERO);
        let n = ctx.history(&uid, |h| match &spec.behavior {
            None => normalize::legacy(h, &bounds, proposal, down, now),
            Some(b) => normalize::with_behavior(h, &bounds, proposal, b, down, now),
        });
        set_condition(
            &mut conditions,
            "AbleToScale",
            true,
            n.able.0,
            n.able.1.into(),
            now,
        );
        set_condition(
            &mut conditions,
            "ScalingLimited",
            n.clipped,
            n.limited.0,
            n.limited.1.into(),
            now,
        );
        desired = n.replicas;
        reason = if desired > current {
            format!("{description} above target")
        } else {
            "All metrics below target".into()
        };
    }
    let rescale = desired != current && !(current == 0 && min != 0);
    status.current_replicas = Some(current);
    status.current_metrics = metric_statuses;
    if rescale {
        let mut resized: Scale = scale.clone();
        resized.spec.get_or_insert_with(Default::default).replicas = Some(desired);
        match api
            .replace_scale(&target_name, &PostParams::default(), &resized)
            .await
        {
            Ok(_) => {
                set_condition(
                    &mut conditions,
                    "AbleToScale",
                    true,
                    "SucceededRescale",
                    format!("the HPA controller was able to update the target scale to {desired}"),
                    now,
                );
                ctx.events.object(
                    me,
                    NORMAL,
                    "SuccessfulRescale",
                    format!("New size: {desired}; reason: {reason}"),
                );
                let down = SignedDuration::try_from(ctx.config.down_window)
                    .unwrap_or(SignedDuration::ZERO);
                let keep = longest_period(&spec).max(down);
                ctx.history(&uid, |h| {
                    normalize::record_scale(h, current, desired, keep, now)
                });
                status.desired_replicas = desired;
                status.last_scale_time = Some(Time(now));
            }
            Err(e) => {
                let e = api_message(e);
                ctx.events.object(
                    me,
                    WARNING,
                    "FailedRescale",
                    format!("New size: {desired}; reason: {reason}; error: {e}"),
                );
                set_condition(
                    &mut conditions,
                    "AbleToScale",
                    false,
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e}"),
                    now,
                );
                status.conditions = Some(conditions);
                write_status(ctx, &hpa, key, status).await?;
                return Ok(Action::After(period));
            }
        }
    } else {
        status.desired_replicas = if current == 0 && min != 0 { 0 } else { current };
    }
    status.conditions = Some(conditions);
    write_status(ctx, &hpa, key, status).await?;
    Ok(Action::After(period))
}

/// How far back the scaling policies look (a policy's period at most
/// 30 minutes), so older changes can be forgotten.
fn longest_period(
    spec: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerSpec,
) -> SignedDuration {
    let longest = spec
        .behavior
        .iter()
        .flat_map(|b| [b.scale_up.as_ref(), b.scale_down.as_ref()])
        .flatten()
        .flat_map(|r| {
            r.policies
                .iter()
                .flatten()
                .map(|p| i64::from(p.period_seconds))
                .chain(r.stabilization_window_seconds.map(i64::from))
        })
        .max()
        .unwrap_or(0);
    SignedDuration::from_secs(longest.max(300))
}

/// Write the status when it changed, guarded by the version read.
async fn write_status(
    ctx: &Ctx,
    hpa: &HorizontalPodAutoscaler,
    key: &Key,
    status: HorizontalPodAutoscalerStatus,
) -> Result<(), Error> {
    if hpa.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut s = serde_json::to_value(&status).unwrap_or_default();
    // A merge patch keeps what it does not name: fields now empty are
    // named null.
    for k in [
        "currentMetrics",
        "lastScaleTime",
        "observedGeneration",
        "currentReplicas",
        "conditions",
    ] {
        if let Some(m) = s.as_object_mut() {
            m.entry(k).or_insert(Value::Null);
        }
    }
    let patch =
        json!({"metadata": {"resourceVersion": hpa.metadata.resource_version}, "status": s});
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &key.namespace);
    match api
        .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => {
            ctx.events
                .object(reference(hpa), WARNING, "FailedUpdateStatus", e.to_string());
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests;
