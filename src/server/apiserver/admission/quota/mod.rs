//! The `ResourceQuota` admission plugin and the quotas' usage: a write in
//! a namespace with quotas is charged against each quota that tracks what
//! it adds (a create, or an update that uses more: a Service turned into a
//! LoadBalancer, a larger claim), by compare-and-swap on the quota's
//! `status.used`, so two concurrent writes cannot both take the last unit.
//! What an update or a delete no longer uses goes back (a pod that
//! finished, a deleted object). A new or changed quota is counted from
//! scratch, and every quota is recounted periodically (usage drifts:
//! a charge whose create was cancelled, a give-back that failed), as
//! upstream's quota controller does. Admission never recounts: a count
//! cannot see the writes charged but not yet stored, so it would let them
//! exceed the quota together; and a recount is stored only if no write in
//! its namespace was in progress or finished while it counted.

mod tracking;
mod usage;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::{each, forbidden, name_of, namespace_of, shown_name};
use crate::api::status::ApiError;
use crate::api::validation::quantity::format_nanos;
use crate::server::apiserver::registry::ResourceDef;
use crate::server::apiserver::ApiState;
use tracking::{forget_quota, may_have_quotas};
pub use tracking::{note_quota, Guard, Writes};
use usage::{hard_of, in_scope, missing_compute, pod_resource, pretty, quantities};
use usage::{usage, Usage};

/// Compare-and-swap attempts on one quota before giving up with a conflict.
const ATTEMPTS: usize = 16;

/// How often every quota is counted again.
const RECOUNT_INTERVAL: Duration = Duration::from_secs(30);

/// What a write was charged (given back if it then fails), and what it
/// frees once it is stored. Holds a [`Guard`] until the write is done.
#[derive(Debug)]
pub struct Charges<'a> {
    taken: Vec<(String, String, Usage)>,
    freed: Vec<(String, String, Usage)>,
    _guard: Guard<'a>,
}

impl<'a> Charges<'a> {
    fn none(guard: Guard<'a>) -> Self {
        Charges {
            taken: Vec::new(),
            freed: Vec::new(),
            _guard: guard,
        }
    }

    /// The write failed: give back what it was charged.
    pub async fn release(self, state: &ApiState) {
        for (ns, qname, delta) in &self.taken {
            give_back(state, ns, qname, delta).await;
        }
    }

    /// The write is stored: give back what it no longer uses.
    pub async fn settle(self, state: &ApiState) {
        for (ns, qname, delta) in &self.freed {
            give_back(state, ns, qname, delta).await;
        }
    }
}

fn quotas_def(state: &ApiState) -> Option<&ResourceDef> {
    state.registry.find("", "v1", "resourcequotas")
}

/// Every quota of the namespace.
async fn quotas(state: &ApiState, ns: &str) -> Result<Vec<Value>, ApiError> {
    let Some(def) = quotas_def(state) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    each(&state.objects, def, Some(ns), |q| out.push(q)).await?;
    Ok(out)
}

/// The definitions whose objects count towards the named resources.
fn counted_kinds<'r>(state: &'r ApiState, names: &[&String]) -> Vec<&'r ResourceDef> {
    let mut defs: Vec<&ResourceDef> = Vec::new();
    let mut add = |d: Option<&'r ResourceDef>| {
        if let Some(d) = d {
            if !defs.iter().any(|x| std::ptr::eq(*x, d)) {
                defs.push(d);
            }
        }
    };
    for n in names {
        let core = |p: &str| state.registry.find("", "v1", p);
        match n.as_str() {
            "pods" | "cpu" | "memory" | "ephemeral-storage" => add(core("pods")),
            r if r.starts_with("requests.") && r != "requests.storage" => add(core("pods")),
            r if r.starts_with("limits.") => add(core("pods")),
            r if r.starts_with("services") => add(core("services")),
            "requests.storage" => add(core("persistentvolumeclaims")),
            r @ ("configmaps"
            | "secrets"
            | "persistentvolumeclaims"
            | "replicationcontrollers"
            | "resourcequotas") => add(core(r)),
            r => {
                if let Some(counted) = r.strip_prefix("count/") {
                    let (plural, group) = counted.split_once('.').unwrap_or((counted, ""));
                    add(state
                        .registry
                        .all()
                        .into_iter()
                        .find(|d| d.plural == plural && d.group == group));
                }
            }
        }
    }
    defs
}

/// The namespace's usage of what `quota` tracks, counted from scratch.
async fn recount(state: &ApiState, ns: &str, quota: &Value) -> Result<Usage, ApiError> {
    let hard = hard_of(quota);
    let names: Vec<&String> = hard.keys().collect();
    let mut used: Usage = names.iter().map(|n| ((*n).clone(), 0)).collect();
    for def in counted_kinds(state, &names) {
        each(&state.objects, def, Some(ns), |obj| {
            if !in_scope(quota, def, &obj) {
                return;
            }
            for (k, q) in usage(def, &obj) {
                if let Some(slot) = used.get_mut(&k) {
                    *slot = slot.saturating_add(q);
                }
            }
        })
        .await?;
    }
    Ok(used)
}

/// `status` of a quota: its hard limits and the given usage, printed in
/// the units the limits were written in.
fn status_of(quota: &Value, used: &Usage) -> Value {
    let hard = quota.pointer("/spec/hard").cloned().unwrap_or(json!({}));
    let binary = quantities(quota, "/spec/hard");
    let used: Map<String, Value> = used
        .iter()
        .map(|(k, q)| {
            let bin = binary.get(k).is_some_and(|(_, b)| *b);
            (k.clone(), json!(format_nanos(*q, bin)))
        })
        .collect();
    json!({"hard": hard, "used": used})
}

/// A new or changed quota starts from a count of the namespace.
pub async fn count_new(state: &ApiState, quota: &mut Value) -> Result<(), ApiError> {
    let ns = namespace_of(quota).to_string();
    // Counted for what the spec asks now, not what the old status held.
    if let Some(m) = quota.as_object_mut() {
        m.remove("status");
    }
    let used = recount(state, &ns, quota).await?;
    let status = status_of(quota, &used);
    if let Some(m) = quota.as_object_mut() {
        m.insert("status".into(), status);
    }
    Ok(())
}

/// Recount an updated quota when its limits changed.
pub async fn on_update(state: &ApiState, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    if old.pointer("/spec") == new.pointer("/spec") {
        return Ok(());
    }
    count_new(state, new).await
}

fn used_after(quota: &Value, delta: &Usage, sign: i128) -> Value {
    let mut used = quantities(quota, "/status/used");
    for (k, q) in delta {
        if let Some(slot) = used.get_mut(k) {
            slot.0 = slot.0.saturating_add(sign.saturating_mul(*q)).max(0);
        }
    }
    let used: Usage = used.into_iter().map(|(k, (q, _))| (k, q)).collect();
    status_of(quota, &used)
}

/// What `obj` uses where `quota` counts it (nothing out of its scope).
fn usage_in(quota: &Value, def: &ResourceDef, obj: &Value) -> Usage {
    if in_scope(quota, def, obj) {
        usage(def, obj)
    } else {
        Usage::new()
    }
}

/// What one quota tracks of a usage.
fn tracked(quota: &Value, u: &Usage) -> Usage {
    let hard = hard_of(quota);
    u.iter()
        .filter(|(k, _)| hard.contains_key(*k))
        .map(|(k, q)| (k.clone(), *q))
        .collect()
}

/// Charge a new object to the namespace's quotas, or refuse it (403).
pub async fn charge<'a>(
    state: &'a ApiState,
    def: &ResourceDef,
    obj: &Value,
    dry_run: bool,
) -> Result<Charges<'a>, ApiError> {
    charge_write(state, def, None, obj, dry_run).await
}

/// Charge an update for what it uses more than `old` did (and note what
/// it uses less, given back once it is stored), or refuse it (403).
pub async fn charge_update<'a>(
    state: &'a ApiState,
    def: &ResourceDef,
    old: &Value,
    new: &Value,
    dry_run: bool,
) -> Result<Charges<'a>, ApiError> {
    charge_write(state, def, Some(old), new, dry_run).await
}

async fn charge_write<'a>(
    state: &'a ApiState,
    def: &ResourceDef,
    old: Option<&Value>,
    obj: &Value,
    dry_run: bool,
) -> Result<Charges<'a>, ApiError> {
    let idle = || Charges::none(Guard::idle(state));
    if !def.namespaced {
        return Ok(idle());
    }
    let Some(qdef) = quotas_def(state) else {
        return Ok(idle());
    };
    let ns = namespace_of(obj).to_string();
    if !may_have_quotas(state, &ns).await? {
        return Ok(idle());
    }
    // Held from before the quotas are read until the write is done.
    let mut charges = Charges::none(Guard::new(state, &ns));
    let all = quotas(state, &ns).await?;
    let w = Admitted { def, old, obj };
    for quota in all {
        if let Err(e) = charge_one(state, qdef, &ns, quota, &w, dry_run, &mut charges).await {
            charges.release(state).await;
            return Err(e);
        }
    }
    Ok(charges)
}

/// The write being admitted.
struct Admitted<'v> {
    def: &'v ResourceDef,
    /// The stored object, for an update.
    old: Option<&'v Value>,
    obj: &'v Value,
}

async fn charge_one(
    state: &ApiState,
    qdef: &ResourceDef,
    ns: &str,
    mut quota: Value,
    w: &Admitted<'_>,
    dry_run: bool,
    charges: &mut Charges<'_>,
) -> Result<(), ApiError> {
    let Admitted { def, old, obj } = *w;
    let refuse = |why: String| forbidden(def, shown_name(obj), &why);
    let qname = name_of(&quota).to_string();
    let hard = hard_of(&quota);
    // A new pod must state what a quota matching pods tracks, even when
    // it would use none of it.
    let new_pod = old.is_none() && (def.group, def.plural) == ("", "pods");
    if new_pod && in_scope(&quota, def, obj) && hard.keys().any(|k| pod_resource(k)) {
        if let Some(why) = missing_compute(&quota, obj) {
            return Err(refuse(format!("failed quota: {qname}: {why}")));
        }
    }
    let now = tracked(&quota, &usage_in(&quota, def, obj));
    let before = old.map_or_else(Usage::new, |o| tracked(&quota, &usage_in(&quota, def, o)));
    let mut more = Usage::new();
    let mut less = Usage::new();
    for k in now.keys().chain(before.keys()) {
        let d = now
            .get(k)
            .copied()
            .unwrap_or(0)
            .saturating_sub(before.get(k).copied().unwrap_or(0));
        if d > 0 {
            more.insert(k.clone(), d);
        } else if d < 0 {
            less.insert(k.clone(), d.saturating_neg());
        }
    }
    if !less.is_empty() && !dry_run {
        charges.freed.push((ns.to_string(), qname.clone(), less));
    }
    if more.is_empty() {
        return Ok(());
    }
    for _ in 0..ATTEMPTS {
        let used = quantities(&quota, "/status/used");
        let exceeded: Vec<&String> = more
            .iter()
            .filter(|(k, q)| {
                let u = used.get(*k).map_or(0, |x| x.0);
                u.saturating_add(**q) > hard.get(*k).map_or(0, |x| x.0)
            })
            .map(|(k, _)| k)
            .collect();
        if !exceeded.is_empty() {
            let requested: BTreeMap<String, (i128, bool)> = more
                .iter()
                .map(|(k, q)| (k.clone(), (*q, hard.get(k).is_some_and(|x| x.1))))
                .collect();
            return Err(refuse(format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                pretty(&requested, &exceeded),
                pretty(&used, &exceeded),
                pretty(&hard, &exceeded),
            )));
        }
        if dry_run {
            return Ok(());
        }
        quota["status"] = used_after(&quota, &more, 1);
        match store_status(state, qdef, ns, &quota).await {
            Ok(_) => {
                charges.taken.push((ns.to_string(), qname, more));
                return Ok(());
            }
            Err(e) if e.is_conflict() => {
                quota = state.objects.must_get(qdef, Some(ns), &qname).await?.obj;
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        "",
        "resourcequotas",
        &qname,
        "the quota kept changing while it was being charged; try again",
    ))
}

/// Write a quota's status with compare-and-swap on the revision it was read at.
async fn store_status(
    state: &ApiState,
    qdef: &ResourceDef,
    ns: &str,
    quota: &Value,
) -> Result<Value, ApiError> {
    let name = name_of(quota).to_string();
    let rev = quota
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|r| r.parse::<i64>().ok())
        .ok_or_else(|| ApiError::internal("a stored quota without a resourceVersion"))?;
    state
        .objects
        .update(qdef, Some(ns), &name, quota, rev)
        .await
}

/// Take `delta` off a quota's usage, retrying on conflicts; failures are
/// logged (the next recount corrects the record).
async fn give_back(state: &ApiState, ns: &str, qname: &str, delta: &Usage) {
    let Some(qdef) = quotas_def(state) else {
        return;
    };
    for _ in 0..ATTEMPTS {
        let quota = match state.objects.get(qdef, Some(ns), qname).await {
            Ok(Some(s)) => s.obj,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(namespace = ns, quota = qname, error = %e, "could not read a quota to give usage back");
                return;
            }
        };
        let mut q = quota.clone();
        q["status"] = used_after(&quota, delta, -1);
        match store_status(state, qdef, ns, &q).await {
            Ok(_) => return,
            Err(e) if e.is_conflict() => continue,
            Err(e) => {
                tracing::warn!(namespace = ns, quota = qname, error = %e, "could not give usage back to a quota");
                return;
            }
        }
    }
}

/// A deleted object's usage goes back to the quotas that track it.
pub async fn release_deleted(state: &ApiState, def: &ResourceDef, obj: &Value) {
    if !def.namespaced {
        return;
    }
    let ns = namespace_of(obj).to_string();
    if (def.group, def.plural) == ("", "resourcequotas") {
        forget_quota(state, &ns);
    }
    if !matches!(may_have_quotas(state, &ns).await, Ok(true)) {
        return;
    }
    let Ok(all) = quotas(state, &ns).await else {
        return;
    };
    for quota in all {
        let gone = tracked(&quota, &usage_in(&quota, def, obj));
        if !gone.is_empty() {
            give_back(state, &ns, name_of(&quota), &gone).await;
        }
    }
}

/// Count every quota again, periodically, until `cancel` fires: usage
/// drifts when pods finish or a give-back fails.
pub async fn run_recount(state: &ApiState, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RECOUNT_INTERVAL) => {}
            _ = cancel.cancelled() => return,
        }
        if let Err(e) = recount_all(state).await {
            tracing::warn!(error = %e.message, "quota recount failed");
        }
    }
}

pub async fn recount_all(state: &ApiState) -> Result<(), ApiError> {
    let Some(qdef) = quotas_def(state) else {
        return Ok(());
    };
    let mut all = Vec::new();
    each(&state.objects, qdef, None, |q| all.push(q)).await?;
    state.usage_writes.merge(&all);
    let mut failed = None;
    for mut quota in all {
        let ns = namespace_of(&quota).to_string();
        let before = state.usage_writes.busy(&ns);
        if before.0 != 0 {
            continue;
        }
        let used = match recount(state, &ns, &quota).await {
            Ok(u) => u,
            Err(e) => {
                failed = Some(e);
                continue;
            }
        };
        let status = status_of(&quota, &used);
        if state.usage_writes.busy(&ns) != before || quota.get("status") == Some(&status) {
            continue;
        }
        quota["status"] = status;
        match store_status(state, qdef, &ns, &quota).await {
            Ok(_) => tracing::debug!(namespace = %ns, quota = name_of(&quota), "quota recounted"),
            // Charged meanwhile: the next pass counts again.
            Err(e) if e.is_conflict() || e.code == 404 => {}
            Err(e) => failed = Some(e),
        }
    }
    failed.map_or(Ok(()), Err)
}
