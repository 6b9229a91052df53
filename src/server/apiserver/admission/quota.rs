//! The `ResourceQuota` admission plugin and the quota's usage: a create
//! in a namespace with quotas is charged against each quota that tracks
//! what it uses, by compare-and-swap on the quota's `status.used`, so two
//! concurrent creates cannot both take the last unit. Deletes give their
//! usage back; a new or changed quota is counted from scratch, and the
//! quota controller recounts them all periodically (usage drifts when pods
//! finish, as upstream's does). Admission never recounts: a count cannot
//! see the creates charged but not yet stored, so it would let them
//! exceed the quota together.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use serde_json::{json, Map, Value};

use super::{each, forbidden, name_of, namespace_of};
use crate::api::status::ApiError;
use crate::api::validation::quantity::{format_nanos, is_binary, nanos};
use crate::server::apiserver::kinds::pod::qos_class;
use crate::server::apiserver::registry::ResourceDef;
use crate::server::apiserver::ApiState;

const UNIT: i128 = 1_000_000_000;
/// Compare-and-swap attempts on one quota before giving up with a conflict.
const ATTEMPTS: usize = 16;

/// Resource name → amount, in billionths.
pub type Usage = BTreeMap<String, i128>;

/// How often every quota is counted again.
const RECOUNT_INTERVAL: Duration = Duration::from_secs(30);

/// Writes that change quota usage and have not finished (charged creates
/// not yet stored, deletes not yet given back), and how many have
/// finished: a recount is only stored if none was in progress and none
/// finished while it counted, since a count cannot see them. One per API
/// state.
///
/// Also how many quotas each namespace has, so that a create elsewhere
/// (nearly all of them) reads nothing more. A quota create counts before
/// it is stored, a delete after, and what is read from the store (once, by
/// the first create that asks, then by every recount) only ever raises a
/// count: so a count is never below the quotas stored (a failed create
/// leaves it one too high, which costs reads, not correctness).
#[derive(Debug, Default)]
pub struct Writes {
    in_flight: AtomicUsize,
    finished: AtomicU64,
    quotas: std::sync::Mutex<QuotaCounts>,
}

#[derive(Debug, Default)]
struct QuotaCounts {
    loaded: bool,
    by_namespace: HashMap<String, usize>,
}

impl Writes {
    fn counts<T>(&self, f: impl FnOnce(&mut QuotaCounts) -> T) -> T {
        match self.quotas.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Raise the counts to what was read from the store.
    fn merge(&self, read: HashMap<String, usize>) {
        self.counts(|c| {
            for (ns, n) in read {
                let have = c.by_namespace.entry(ns).or_default();
                *have = (*have).max(n);
            }
            c.loaded = true;
        });
    }
}

fn count_by_namespace(quotas: &[Value]) -> HashMap<String, usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for q in quotas {
        *counts.entry(namespace_of(q).to_string()).or_default() += 1;
    }
    counts
}

/// Whether `ns` may have quotas (reading them all the first time).
async fn may_have_quotas(state: &ApiState, ns: &str) -> Result<bool, ApiError> {
    let w = &state.usage_writes;
    if !w.counts(|c| c.loaded) {
        if let Some(qdef) = quotas_def(state) {
            let mut all = Vec::new();
            each(&state.objects, qdef, None, |q| all.push(q)).await?;
            w.merge(count_by_namespace(&all));
        }
    }
    Ok(w.counts(|c| c.by_namespace.get(ns).is_some_and(|n| *n > 0)))
}

/// A quota is being created in `ns`.
pub fn note_quota(state: &ApiState, ns: &str) {
    state
        .usage_writes
        .counts(|c| *c.by_namespace.entry(ns.to_string()).or_default() += 1);
}

/// A quota of `ns` was deleted.
fn forget_quota(state: &ApiState, ns: &str) {
    state.usage_writes.counts(|c| {
        if let Some(n) = c.by_namespace.get_mut(ns) {
            *n = n.saturating_sub(1);
        }
    });
}

/// Held by a write for as long as its effect on usage may be half done.
#[derive(Debug)]
pub struct Guard<'a>(&'a Writes);

impl<'a> Guard<'a> {
    pub fn new(state: &'a ApiState) -> Self {
        state.usage_writes.in_flight.fetch_add(1, Ordering::SeqCst);
        Guard(&state.usage_writes)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a create was charged: given back if it then fails. Holds a
/// [`Guard`] until the create is done.
#[derive(Debug)]
pub struct Charges<'a> {
    taken: Vec<(String, String, Usage)>,
    _guard: Guard<'a>,
}

fn quotas_def(state: &ApiState) -> Option<&ResourceDef> {
    state.registry.find("", "v1", "resourcequotas")
}

fn count_name(def: &ResourceDef) -> String {
    if def.group.is_empty() {
        format!("count/{}", def.plural)
    } else {
        format!("count/{}.{}", def.plural, def.group)
    }
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// What one object uses of quota-tracked resources.
pub fn usage(def: &ResourceDef, obj: &Value) -> Usage {
    let mut u = Usage::new();
    u.insert(count_name(def), UNIT);
    match (def.group, def.plural) {
        // Finished pods count as objects only.
        ("", "pods") if !terminal(obj) => {
            u.insert("pods".into(), UNIT);
            pod_compute(obj, &mut u);
        }
        ("", "services") => {
            u.insert("services".into(), UNIT);
            let ty = obj.pointer("/spec/type").and_then(Value::as_str);
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len) as i128;
            let node_ports = match ty {
                Some("NodePort") => ports,
                Some("LoadBalancer")
                    if obj.pointer("/spec/allocateLoadBalancerNodePorts")
                        != Some(&json!(false)) =>
                {
                    ports
                }
                _ => 0,
            };
            u.insert("services.nodeports".into(), node_ports * UNIT);
            if ty == Some("LoadBalancer") {
                u.insert("services.loadbalancers".into(), UNIT);
            }
        }
        ("", "persistentvolumeclaims") => {
            u.insert("persistentvolumeclaims".into(), UNIT);
            if let Some(q) = obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(nanos)
            {
                u.insert("requests.storage".into(), q);
            }
        }
        ("", p @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas")) => {
            u.insert(p.into(), UNIT);
        }
        _ => {}
    }
    u
}

/// A pod's requests and limits (the sum over containers, or the largest
/// init container where that is more), as `requests.X`/`limits.X`, plus
/// the bare `cpu`/`memory`/`ephemeral-storage` names for requests.
fn pod_compute(pod: &Value, u: &mut Usage) {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for bag in ["requests", "limits"] {
        let mut sum: Usage = Usage::new();
        let of = |c: &Value| -> Vec<(String, i128)> {
            c.pointer(&format!("/resources/{bag}"))
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().and_then(nanos).map(|q| (k.clone(), q)))
                .collect()
        };
        for c in spec
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (k, q) in of(c) {
                *sum.entry(k).or_default() += q;
            }
        }
        for c in spec
            .get("initContainers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (k, q) in of(c) {
                let slot = sum.entry(k).or_default();
                *slot = (*slot).max(q);
            }
        }
        for (k, q) in sum {
            if bag == "requests" && matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage") {
                u.insert(k.clone(), q);
            }
            u.insert(format!("{bag}.{k}"), q);
        }
    }
}

/// Whether a quota's scopes select this object (scopes are about pods).
fn in_scope(quota: &Value, def: &ResourceDef, obj: &Value) -> bool {
    let mut scopes: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        scopes.push((s("scopeName"), s("operator"), values));
    }
    if scopes.is_empty() {
        return true;
    }
    if (def.group, def.plural) != ("", "pods") {
        return false;
    }
    let terminating = obj
        .pointer("/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null());
    let best_effort = qos_class(obj) == "BestEffort";
    let class = obj
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    scopes.iter().all(|(scope, op, values)| {
        let holds = match scope.as_str() {
            "Terminating" => terminating,
            "NotTerminating" => !terminating,
            "BestEffort" => best_effort,
            "NotBestEffort" => !best_effort,
            "PriorityClass" => {
                return match op.as_str() {
                    "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                    "NotIn" => class.is_none_or(|c| !values.iter().any(|v| v == c)),
                    "DoesNotExist" => class.is_none(),
                    _ => class.is_some(),
                }
            }
            _ => false,
        };
        if op == "DoesNotExist" {
            !holds
        } else {
            holds
        }
    })
}

fn quantities(quota: &Value, ptr: &str) -> BTreeMap<String, (i128, bool)> {
    quota
        .pointer(ptr)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let s = v.as_str()?;
            Some((k.clone(), (nanos(s)?, is_binary(s))))
        })
        .collect()
}

fn hard_of(quota: &Value) -> BTreeMap<String, (i128, bool)> {
    let status = quantities(quota, "/status/hard");
    if status.is_empty() {
        quantities(quota, "/spec/hard")
    } else {
        status
    }
}

/// `k=v,k=v` of the named resources, as upstream prints quota errors.
fn pretty(values: &BTreeMap<String, (i128, bool)>, names: &[&String]) -> String {
    names
        .iter()
        .map(|n| {
            let (q, bin) = values.get(n.as_str()).copied().unwrap_or((0, false));
            format!("{n}={}", format_nanos(q, bin))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Pods must state the requests and limits a quota tracks (`must specify`).
fn missing_compute(quota: &Value, pod: &Value) -> Option<String> {
    let hard = hard_of(quota);
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for key in ["initContainers", "containers"] {
        for c in spec
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
            for r in hard.keys() {
                let (bag, res) = match r.split_once('.') {
                    Some((b @ ("requests" | "limits"), res)) => (b, res),
                    None if matches!(r.as_str(), "cpu" | "memory") => ("requests", r.as_str()),
                    _ => continue,
                };
                if !matches!(res, "cpu" | "memory" | "ephemeral-storage") {
                    continue;
                }
                let set = c
                    .pointer(&format!("/resources/{bag}/{res}"))
                    .is_some_and(|v| !v.is_null());
                if !set {
                    missing
                        .entry(r.clone())
                        .or_default()
                        .push(cname.to_string());
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(r, cs)| format!("{r} for: {}", cs.join(",")))
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
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
                        .iter()
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
                    *slot += q;
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
            slot.0 = (slot.0 + sign * q).max(0);
        }
    }
    let used: Usage = used.into_iter().map(|(k, (q, _))| (k, q)).collect();
    status_of(quota, &used)
}

/// Charge a new object to the namespace's quotas, or refuse it (403).
pub async fn charge<'a>(
    state: &'a ApiState,
    def: &ResourceDef,
    obj: &Value,
    dry_run: bool,
) -> Result<Charges<'a>, ApiError> {
    let mut charges = Charges {
        taken: Vec::new(),
        _guard: Guard::new(state),
    };
    if !def.namespaced {
        return Ok(charges);
    }
    let Some(qdef) = quotas_def(state) else {
        return Ok(charges);
    };
    let ns = namespace_of(obj).to_string();
    if !may_have_quotas(state, &ns).await? {
        return Ok(charges);
    }
    let all = quotas(state, &ns).await?;
    if all.is_empty() {
        return Ok(charges);
    }
    let delta = usage(def, obj);
    let result = charge_each(
        state,
        qdef,
        def,
        obj,
        &ns,
        all,
        &delta,
        dry_run,
        &mut charges,
    )
    .await;
    match result {
        Ok(()) => Ok(charges),
        Err(e) => {
            charges.release(state).await;
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn charge_each(
    state: &ApiState,
    qdef: &ResourceDef,
    def: &ResourceDef,
    obj: &Value,
    ns: &str,
    all: Vec<Value>,
    delta: &Usage,
    dry_run: bool,
    charges: &mut Charges<'_>,
) -> Result<(), ApiError> {
    let refuse = |why: String| forbidden(def, name_of(obj), &why);
    for mut quota in all {
        let qname = name_of(&quota).to_string();
        if !in_scope(&quota, def, obj) {
            continue;
        }
        let hard = hard_of(&quota);
        let tracked: Usage = delta
            .iter()
            .filter(|(k, _)| hard.contains_key(*k))
            .map(|(k, q)| (k.clone(), *q))
            .collect();
        if tracked.is_empty() {
            continue;
        }
        if (def.group, def.plural) == ("", "pods") {
            if let Some(why) = missing_compute(&quota, obj) {
                return Err(refuse(format!("failed quota: {qname}: {why}")));
            }
        }
        for _ in 0..ATTEMPTS {
            let used = quantities(&quota, "/status/used");
            let exceeded: Vec<&String> = tracked
                .iter()
                .filter(|(k, q)| {
                    let u = used.get(*k).map_or(0, |x| x.0);
                    u + **q > hard.get(*k).map_or(0, |x| x.0)
                })
                .map(|(k, _)| k)
                .collect();
            if !exceeded.is_empty() {
                let requested: BTreeMap<String, (i128, bool)> = tracked
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
                break;
            }
            quota["status"] = used_after(&quota, &tracked, 1);
            match store_status(state, qdef, ns, &quota).await {
                Ok(_) => {
                    charges
                        .taken
                        .push((ns.to_string(), qname.clone(), tracked.clone()));
                    break;
                }
                Err(e) if e.is_conflict() => {
                    quota = state.objects.must_get(qdef, Some(ns), &qname).await?.obj;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
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

impl Charges<'_> {
    /// Give back what a failed create was charged.
    pub async fn release(self, state: &ApiState) {
        for (ns, qname, delta) in self.taken {
            give_back(state, &ns, &qname, &delta).await;
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
    let delta = usage(def, obj);
    for quota in all {
        if !in_scope(&quota, def, obj) {
            continue;
        }
        let hard = hard_of(&quota);
        let tracked: Usage = delta
            .iter()
            .filter(|(k, _)| hard.contains_key(*k))
            .map(|(k, q)| (k.clone(), *q))
            .collect();
        if !tracked.is_empty() {
            give_back(state, &ns, name_of(&quota), &tracked).await;
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
    state.usage_writes.merge(count_by_namespace(&all));
    for mut quota in all {
        let writes = &state.usage_writes;
        let before = writes.finished.load(Ordering::SeqCst);
        if writes.in_flight.load(Ordering::SeqCst) != 0 {
            continue;
        }
        let ns = namespace_of(&quota).to_string();
        let used = recount(state, &ns, &quota).await?;
        let quiet = writes.in_flight.load(Ordering::SeqCst) == 0
            && writes.finished.load(Ordering::SeqCst) == before;
        let status = status_of(&quota, &used);
        if !quiet || quota.get("status") == Some(&status) {
            continue;
        }
        quota["status"] = status;
        match store_status(state, qdef, &ns, &quota).await {
            Ok(_) => tracing::debug!(namespace = %ns, quota = name_of(&quota), "quota recounted"),
            // Charged meanwhile: the next pass counts again.
            Err(e) if e.is_conflict() || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
