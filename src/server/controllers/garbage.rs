//! The garbage collector:
//!
//! - its answer to the two deletion finalizers the API sets
//!   (`write::delete_one`): `orphan` (its dependents lose their owner
//!   reference, then the owner goes) and `foregroundDeletion` (its
//!   dependents are deleted first, in the foreground themselves when they
//!   block their owner's deletion, then the owner goes);
//! - background deletion: an object whose owners are all gone is deleted
//!   (one that still has an owner only loses the reference to the one that
//!   went), so `kubectl delete deploy` takes its ReplicaSets and their
//!   pods with it.
//!
//! An ordinary API client (`auth::GARBAGE_COLLECTOR_USER` through the
//! loopback). The API tells it which owners were marked, and which objects
//! were removed, through a bounded queue; should the queue overflow, or
//! the server restart with work left, a sweep over every kind finds marked
//! owners and dependents whose owners are gone.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{DeleteParams, ListParams, PostParams};
use kube::core::Request;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{is_status, items, meta};
use crate::server::apiserver::registry::ResourceDef;
use crate::server::apiserver::{loopback, ApiState};

pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";
/// The managedFields manager of what the collector writes.
pub const AGENT: &str = "skiff-garbage-collector";

/// Owners waiting in the queue at most.
const QUEUE: usize = 1024;
/// Owners worked on at once: one whose dependents are many (each check
/// lists every kind in its namespace) must not hold up the others.
const WORKERS: usize = 4;
/// Objects read per page while scanning a collection.
const PAGE: u32 = 500;
/// How often the collector looks whether a sweep is due.
const TICK: Duration = Duration::from_secs(30);
/// First and longest wait before an owner whose blocking dependents are
/// not gone yet is looked at again.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// An owner marked for deletion with one of the two finalizers.
#[derive(Clone, Debug)]
pub struct Marked {
    /// Its collection (`/apis/apps/v1/namespaces/d/deployments`).
    pub collection: String,
    pub name: String,
    pub uid: String,
    /// None for a cluster-scoped owner.
    pub namespace: Option<String>,
    /// The owner is gone from the store (not marked): its dependents are
    /// collected in the background.
    pub gone: bool,
    retry: Duration,
}

impl Marked {
    pub fn new(def: &ResourceDef, namespace: Option<&str>, name: &str, uid: &str) -> Self {
        Marked {
            collection: collection(def, namespace),
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: namespace.filter(|_| def.namespaced).map(str::to_string),
            gone: false,
            retry: RETRY_FIRST,
        }
    }

    /// An object that was just removed from the store.
    pub fn removed(def: &ResourceDef, namespace: Option<&str>, name: &str, uid: &str) -> Self {
        Marked {
            gone: true,
            ..Marked::new(def, namespace, name, uid)
        }
    }
}

fn collection(def: &ResourceDef, namespace: Option<&str>) -> String {
    let base = if def.group.is_empty() {
        format!("/api/{}", def.version)
    } else {
        format!("/apis/{}/{}", def.group, def.version)
    };
    match namespace.filter(|_| def.namespaced) {
        Some(ns) => format!("{base}/namespaces/{ns}/{}", def.plural),
        None => format!("{base}/{}", def.plural),
    }
}

/// Kinds removed often and (almost) never owners: their removals are not
/// queued, so that deleting many pods does not make the collector scan
/// their namespaces once each. What they do own (a pod's ephemeral volume
/// claim) is found by the sweep after a restart.
const SELDOM_OWNERS: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "events"),
    ("", "endpoints"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("discovery.k8s.io", "endpointslices"),
];

/// Whether the removal of an object of `def` is worth telling the
/// collector about.
pub fn collects_after(def: &ResourceDef) -> bool {
    !SELDOM_OWNERS.contains(&(def.group, def.plural))
}

/// How the API hands marked owners to the collector.
pub struct Queue {
    tx: mpsc::Sender<Marked>,
    rx: Mutex<Option<mpsc::Receiver<Marked>>>,
    /// Set when an owner could not be queued: the next tick sweeps.
    overflowed: AtomicBool,
}

impl Default for Queue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Queue {
            tx,
            rx: Mutex::new(Some(rx)),
            // Owners marked before a restart are found by a first sweep.
            overflowed: AtomicBool::new(true),
        }
    }
}

impl Queue {
    pub fn push(&self, m: Marked) {
        if self.tx.try_send(m).is_err() {
            self.overflowed.store(true, Ordering::SeqCst);
        }
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<Marked>> {
        self.rx.lock().ok().and_then(|mut r| r.take())
    }
}

/// What the collector works with: its client, and the server whose
/// listable kinds (built-in and custom, as served now) it walks.
#[derive(Clone)]
pub struct Ctx {
    pub client: kube::Client,
    api: Arc<ApiState>,
}

impl Ctx {
    pub fn new(client: kube::Client, api: Arc<ApiState>) -> Self {
        Ctx { client, api }
    }

    /// The kinds that can be listed, as served now.
    fn kinds(&self) -> Vec<ResourceDef> {
        self.api
            .registry
            .all()
            .into_iter()
            .filter(|d| d.verbs.contains(&"list") && d.stored_as.is_none() && d.stored())
            .cloned()
            .collect()
    }
}

/// Run until `cancel` fires.
pub async fn run(ctx: Ctx, state: Arc<ApiState>, cancel: CancellationToken) {
    let queue = &state.gc;
    let Some(mut rx) = queue.take_receiver() else {
        tracing::error!("the garbage collector's queue was taken twice");
        return;
    };
    // Not at once: the first sweep (for owners marked before a restart)
    // waits until the server has settled.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    let workers = Arc::new(tokio::sync::Semaphore::new(WORKERS));
    // Owners being worked on: one at a time each (a second mark of the
    // same owner is seen by the pass in progress, which retries).
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            m = rx.recv() => match m {
                Some(m) => {
                    let Ok(permit) = workers.clone().acquire_owned().await else {
                        return;
                    };
                    let first = busy.lock().is_ok_and(|mut b| b.insert(m.uid.clone()));
                    if !first {
                        continue;
                    }
                    let (ctx, state, busy, cancel) =
                        (ctx.clone(), state.clone(), busy.clone(), cancel.clone());
                    tokio::spawn(async move {
                        let uid = m.uid.clone();
                        handle(&ctx, &state.gc, m, &cancel).await;
                        if let Ok(mut b) = busy.lock() {
                            b.remove(&uid);
                        }
                        drop(permit);
                    });
                }
                None => return,
            },
            _ = tick.tick() => {
                if queue.overflowed.swap(false, Ordering::SeqCst) {
                    if let Err(e) = sweep(&ctx, queue).await {
                        queue.overflowed.store(true, Ordering::SeqCst);
                        tracing::warn!(error = %e, "garbage collector sweep failed");
                    }
                }
            }
        }
    }
}

async fn handle(ctx: &Ctx, queue: &Queue, m: Marked, cancel: &CancellationToken) {
    match finish(ctx, &m).await {
        Ok(true) => {}
        Ok(false) => {
            // Blocking dependents are still going: look again later,
            // without holding up the other owners.
            let next = Marked {
                retry: (m.retry * 2).min(RETRY_MAX),
                ..m.clone()
            };
            let tx = queue.tx.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(m.retry) => { let _ = tx.send(next).await; }
                }
            });
        }
        Err(e) => {
            tracing::warn!(owner = %m.name, collection = %m.collection, error = %e, "garbage collection failed; retrying at the next sweep");
            queue.overflowed.store(true, Ordering::SeqCst);
        }
    }
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Every object of a collection, a page at a time.
async fn each_in(ctx: &Ctx, collection: &str, mut f: impl FnMut(Value)) -> Result<(), kube::Error> {
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let list = Request::new(collection)
            .list(&params)
            .map_err(kube::Error::BuildRequest)?;
        let mut page: Value = ctx.client.request(list).await?;
        token = page
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        for obj in items(page.take()) {
            f(obj);
        }
        if token.is_none() {
            return Ok(());
        }
    }
}

/// Every marked owner still holding one of the two finalizers, and every
/// owner that is gone while objects still name it.
async fn sweep(ctx: &Ctx, queue: &Queue) -> Result<(), kube::Error> {
    let mut present: HashSet<String> = HashSet::new();
    // (owner uid, owner name, the dependent's namespace, its kind's def)
    let mut named: Vec<(String, String, Option<String>, ResourceDef)> = Vec::new();
    for def in ctx.kinds().iter() {
        each_in(ctx, &collection(def, None), |obj| {
            if let Some(uid) = meta(&obj, "uid") {
                present.insert(uid.to_string());
            }
            for r in obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(uid), Some(name)) = (r["uid"].as_str(), r["name"].as_str()) {
                    named.push((
                        uid.to_string(),
                        name.to_string(),
                        meta(&obj, "namespace").map(str::to_string),
                        def.clone(),
                    ));
                }
            }
            let held = finalizers(&obj)
                .iter()
                .any(|f| *f == ORPHAN || *f == FOREGROUND);
            if meta(&obj, "deletionTimestamp").is_none() || !held {
                return;
            }
            let (Some(name), Some(uid)) = (meta(&obj, "name"), meta(&obj, "uid")) else {
                return;
            };
            queue.push(Marked::new(def, meta(&obj, "namespace"), name, uid));
        })
        .await?;
    }
    let mut seen = HashSet::new();
    for (uid, name, ns, def) in named {
        if present.contains(&uid) || !seen.insert((uid.clone(), ns.clone())) {
            continue;
        }
        queue.push(Marked::removed(&def, ns.as_deref(), &name, &uid));
    }
    Ok(())
}

/// A dependent of the owner: where it is, and whether it blocks the
/// owner's foreground deletion.
struct Dependent {
    collection: String,
    obj: Value,
    blocks: bool,
}

/// Objects with an owner reference to `m` (namespaced owners own only in
/// their namespace; cluster-scoped ones anywhere).
async fn dependents(ctx: &Ctx, m: &Marked) -> Result<Vec<Dependent>, kube::Error> {
    let mut out = Vec::new();
    for def in ctx.kinds().iter() {
        if m.namespace.is_some() && !def.namespaced {
            continue;
        }
        let coll = collection(def, m.namespace.as_deref());
        each_in(ctx, &coll, |obj| {
            let refs = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array);
            let Some(r) = refs.and_then(|rs| rs.iter().find(|r| r["uid"] == m.uid.as_str())) else {
                return;
            };
            let blocks = r["blockOwnerDeletion"] == true;
            let collection = collection(def, meta(&obj, "namespace"));
            out.push(Dependent {
                collection,
                obj,
                blocks,
            });
        })
        .await?;
    }
    Ok(out)
}

/// Replace an object as read (its resourceVersion guards the write).
async fn replace(ctx: &Ctx, collection: &str, obj: &Value) -> Result<bool, kube::Error> {
    let Some(name) = meta(obj, "name") else {
        return Ok(true);
    };
    let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let req = Request::new(collection)
        .replace(name, &PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    match ctx.client.request::<Value>(req).await {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, |s| s.is_not_found()) => Ok(true),
        Err(e) if is_status(&e, |s| s.is_conflict()) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The collection of an owner reference's kind in `namespace` (None when
/// the kind is not one this server serves).
fn owner_collection(ctx: &Ctx, r: &Value, namespace: Option<&str>) -> Option<String> {
    let api_version = r.get("apiVersion")?.as_str()?;
    let kind = r.get("kind")?.as_str()?;
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let kinds = ctx.kinds();
    let def = kinds
        .iter()
        .find(|d| d.group == group && d.kind == kind && d.version == version)
        .or_else(|| kinds.iter().find(|d| d.group == group && d.kind == kind))?;
    Some(collection(def, namespace))
}

/// Whether the owner a reference names still exists (the same object: its
/// UID). An owner of a kind not served here counts as existing: nothing is
/// deleted on a guess.
async fn owner_exists(ctx: &Ctx, r: &Value, namespace: Option<&str>) -> Result<bool, kube::Error> {
    let (Some(name), Some(uid)) = (r["name"].as_str(), r["uid"].as_str()) else {
        return Ok(true);
    };
    let Some(coll) = owner_collection(ctx, r, namespace) else {
        return Ok(true);
    };
    let get = Request::new(&coll)
        .get(name, &Default::default())
        .map_err(kube::Error::BuildRequest)?;
    Ok(loopback::get_opt(&ctx.client, get)
        .await?
        .is_some_and(|o| meta(&o, "uid") == Some(uid)))
}

/// The owner `m` is gone: each of its dependents is deleted when no other
/// owner of it is left, else loses its reference to `m`.
async fn collect_dependents(ctx: &Ctx, m: &Marked) -> Result<bool, kube::Error> {
    for mut d in dependents(ctx, m).await? {
        if meta(&d.obj, "deletionTimestamp").is_some() {
            continue;
        }
        let ns = meta(&d.obj, "namespace").map(str::to_string);
        let others: Vec<Value> = d
            .obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r["uid"] != m.uid.as_str())
            .cloned()
            .collect();
        let mut solid = false;
        for r in &others {
            if owner_exists(ctx, r, ns.as_deref()).await? {
                solid = true;
                break;
            }
        }
        if solid {
            if let Some(refs) = d
                .obj
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r["uid"] != m.uid.as_str());
            }
            if !replace(ctx, &d.collection, &d.obj).await? {
                return Ok(false);
            }
            continue;
        }
        let (Some(name), Some(uid)) = (meta(&d.obj, "name"), meta(&d.obj, "uid")) else {
            continue;
        };
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        let del = Request::new(&d.collection)
            .delete(name, &params)
            .map_err(kube::Error::BuildRequest)?;
        match ctx.client.request::<Value>(del).await {
            Ok(_) => {}
            Err(e) if is_status(&e, |s| s.is_not_found() || s.is_conflict()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Do what the owner's finalizers ask; true when nothing is left to do.
async fn finish(ctx: &Ctx, m: &Marked) -> Result<bool, kube::Error> {
    if m.gone {
        return collect_dependents(ctx, m).await;
    }
    let get = Request::new(&m.collection)
        .get(&m.name, &Default::default())
        .map_err(kube::Error::BuildRequest)?;
    let Some(mut owner) = loopback::get_opt(&ctx.client, get).await? else {
        return Ok(true);
    };
    if meta(&owner, "uid") != Some(m.uid.as_str()) || meta(&owner, "deletionTimestamp").is_none() {
        return Ok(true);
    }
    let held = finalizers(&owner);
    let orphan = held.contains(&ORPHAN);
    let foreground = held.contains(&FOREGROUND);
    if !orphan && !foreground {
        return Ok(true);
    }
    let deps = dependents(ctx, m).await?;
    let mut waiting = false;
    for mut d in deps {
        if orphan {
            if let Some(meta) = d.obj.get_mut("metadata").and_then(Value::as_object_mut) {
                let left = meta
                    .get_mut("ownerReferences")
                    .and_then(Value::as_array_mut)
                    .map(|refs| {
                        refs.retain(|r| r["uid"] != m.uid.as_str());
                        refs.len()
                    });
                // No owners left: no field, as upstream's object shows.
                if left == Some(0) {
                    meta.remove("ownerReferences");
                }
            }
            if !replace(ctx, &d.collection, &d.obj).await? {
                return Ok(false);
            }
            continue;
        }
        if d.blocks {
            waiting = true;
        }
        if meta(&d.obj, "deletionTimestamp").is_some() {
            continue;
        }
        let Some(name) = meta(&d.obj, "name") else {
            continue;
        };
        let params = if d.blocks {
            DeleteParams::foreground()
        } else {
            DeleteParams::background()
        };
        let del = Request::new(&d.collection)
            .delete(name, &params)
            .map_err(kube::Error::BuildRequest)?;
        match ctx.client.request::<Value>(del).await {
            Ok(_) => {}
            Err(e) if is_status(&e, |s| s.is_not_found()) => {}
            Err(e) => return Err(e),
        }
    }
    if waiting {
        // Deleted just now, or going in the foreground themselves: the
        // owner goes once they are gone.
        let still = dependents(ctx, m).await?;
        if still.iter().any(|d| d.blocks) {
            return Ok(false);
        }
    }
    if let Some(list) = owner
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f != ORPHAN && f != FOREGROUND);
    }
    replace(ctx, &m.collection, &owner).await
}
