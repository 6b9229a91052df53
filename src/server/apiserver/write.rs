//! Writes: create, update (PUT), delete and deletecollection.

use std::sync::Arc;
use std::time::Instant;

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::list::streamed;
use super::metadata::{self, meta_mut, meta_str, name_of, prepare_create, prepare_update};
use super::negotiate::json_response;
use super::object_store::{parse_rv, Stored};
use super::path::ResourceRef;
use super::query::Query;
use super::read::Filter;
use super::registry::ResourceDef;
use super::scan::{scan_page, Held, ScanSink};
use super::{allocate, webhook, ApiState, Call, RequestCtx};
use crate::api::status::{success_status, ApiError};
use crate::server::controllers::garbage;
use crate::server::pki::Identity;

fn ns_def(state: &ApiState) -> Result<&ResourceDef, ApiError> {
    state
        .registry
        .namespaces()
        .ok_or_else(|| ApiError::internal("namespaces are not registered"))
}

/// New objects may only go into a namespace that exists and is not being
/// torn down.
pub(super) async fn check_namespace(
    state: &ApiState,
    def: &ResourceDef,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    if !def.namespaced {
        return Ok(());
    }
    let nsdef = ns_def(state)?;
    let stored = state.objects.get(nsdef, None, ns).await?;
    match stored {
        None => Err(ApiError::not_found(nsdef.group, nsdef.plural, ns)),
        Some(s) if metadata::meta(&s.obj).is_some_and(|m| m.contains_key("deletionTimestamp")) => {
            Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                crate::api::status::qualified_resource(def.group, def.plural),
            )))
        }
        Some(_) => Ok(()),
    }
}

/// The object a write addresses, and whether it is only tried (a dry
/// run): what every step of a write needs, passed as one.
#[derive(Clone, Copy)]
pub struct Write<'a> {
    pub state: &'a ApiState,
    pub def: &'a ResourceDef,
    pub ns: Option<&'a str>,
    pub name: &'a str,
    pub dry_run: bool,
    /// Who asks, for the checks that depend on it (RBAC's escalation
    /// prevention, admission webhooks); `None` for the server's own
    /// follow-up writes.
    pub who: Option<&'a Identity>,
    /// The subresource written (`status`, `scale`), if any.
    pub subresource: Option<&'a str>,
}

impl<'a> Write<'a> {
    /// A write of object `name` of the resource (and namespace) `r` names,
    /// asked for by the request `ctx`.
    pub fn to(
        state: &'a ApiState,
        r: &'a ResourceRef<'_>,
        name: &'a str,
        ctx: &'a RequestCtx,
    ) -> Self {
        Write {
            state,
            def: r.def,
            ns: r.namespace.as_deref(),
            name,
            dry_run: ctx.dry_run,
            who: Some(&ctx.who),
            subresource: r.subresource.as_deref(),
        }
    }
}

pub async fn create(call: &Call<'_>, body: Value, manager: &str) -> Result<Response, ApiError> {
    let Call { state, ctx, r, .. } = *call;
    let def = r.def;
    let dry_run = ctx.dry_run;
    let ns = if def.namespaced {
        Some(r.namespace.clone().unwrap_or_else(|| "default".into()))
    } else {
        None
    };
    let mut obj = prepare_create(def, ns.as_deref(), body)?;
    let name = name_of(&obj).unwrap_or("").to_string();
    super::audit::created(&name);
    super::auth::check_node_create(&ctx.who, def.group, def.plural, &obj)?;
    if let (Some(node), ("", "nodes")) = (super::auth::node_of(&ctx.who), (def.group, def.plural)) {
        let cp = state.control_plane_node.get().map(String::as_str);
        super::auth::node_restriction::check_node(node, None, &obj, cp)?;
    }
    let taken = admit_new(state, &ctx.who, def, &mut obj, &name, dry_run).await?;
    let w = Write {
        state,
        def,
        ns: ns.as_deref(),
        name: &name,
        dry_run,
        who: Some(&ctx.who),
        subresource: None,
    };
    let res = store_new(w, obj, manager).await;
    if res.is_err() {
        taken.release(state).await;
    }
    res
}

/// What a new object took before it is stored (members of shared ranges,
/// quota); given back if it is not stored.
pub struct Taken<'a> {
    reserved: super::kinds::Reservation,
    charged: super::admission::quota::Charges<'a>,
}

impl Taken<'_> {
    pub async fn release(self, state: &ApiState) {
        self.reserved.release(&state.objects).await;
        self.charged.release(state).await;
    }
}

/// A new object (after `prepare_create`) through mutating admission and
/// validation, then what it takes from state shared with other objects:
/// every way of creating (POST, server-side apply) goes through here.
pub async fn admit_new<'a>(
    state: &'a ApiState,
    who: &Identity,
    def: &ResourceDef,
    obj: &mut Value,
    name: &str,
    dry_run: bool,
) -> Result<Taken<'a>, ApiError> {
    super::crd::check_create(def)?;
    super::admission::mutate(state, def, obj).await?;
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let hook = webhook::Request {
        op: webhook::Operation::Create,
        def,
        subresource: None,
        namespace: ns.as_deref(),
        name,
        who,
        dry_run,
        kind: None,
        deadline: Instant::now() + webhook::REQUEST_BUDGET,
    };
    let before = webhook::any(state, webhook::config::Phase::Mutating).then(|| obj.clone());
    if webhook::mutate(state, &hook, Some(obj), None).await? {
        // What the server owns is the server's, whatever a webhook said;
        // the built-in admission sees what the webhooks added (upstream
        // reinvokes its plugins when a webhook changed the object).
        if let Some(before) = &before {
            metadata::keep_server_owned(def, before, obj);
        }
        super::admission::mutate(state, def, obj).await?;
    }
    check_valid(def, None, obj, name)?;
    super::rbac::escalation::check(state, who, def, ns.as_deref(), None, obj)?;
    super::admission::pod_security::admit(state, def, None, obj).await?;
    webhook::validate(state, &hook, Some(obj), None).await?;
    super::object_store::check_size_early(def, name, obj)?;
    let reserved = allocate::reserve(state, def, obj, dry_run).await?;
    match super::admission::quota::charge(state, def, obj, dry_run).await {
        Ok(charged) => Ok(Taken { reserved, charged }),
        Err(e) => {
            reserved.release(&state.objects).await;
            Err(e)
        }
    }
}

/// The rest of a create, once what the object needs is reserved.
async fn store_new(w: Write<'_>, mut obj: Value, manager: &str) -> Result<Response, ApiError> {
    let Write {
        state,
        def,
        ns,
        name,
        dry_run,
        ..
    } = w;
    super::apply::record_update(None, &mut obj, manager, None, &metadata::now_rfc3339());
    if let Some(ns) = ns {
        check_namespace(state, def, ns, name).await?;
    }
    if dry_run {
        if state.objects.get(def, ns, name).await?.is_some() {
            return Err(ApiError::already_exists(def.group, def.plural, name));
        }
        super::object_store::check_dry_run(def, name, &obj)?;
        return Ok(json_response(StatusCode::CREATED, &obj));
    }
    let created = state.objects.create(def, ns, name, &obj).await?;
    tracing::debug!(resource = def.plural, namespace = ?ns, name, "created");
    Ok(json_response(StatusCode::CREATED, &created))
}

/// The apiserver's validation of a new object (`old` None) or an update:
/// 422 Invalid with every problem found.
pub fn check_valid(
    def: &ResourceDef,
    old: Option<&Value>,
    new: &Value,
    name: &str,
) -> Result<(), ApiError> {
    let mut causes = match old {
        None => crate::api::validation::validate_create(def.rules, new),
        Some(old) => crate::api::validation::validate_update(def.rules, old, new),
    };
    causes.extend(super::crd::schema_causes(def, old, new));
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(def.group, def.kind, name, causes))
    }
}

/// True when `new` is `cur` apart from its resourceVersion: such a write is
/// skipped, as the apiserver does, so no-op updates don't wake watchers and
/// kubectl can report "(no change)".
pub fn unchanged(cur: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(cur) == strip(new)
}

/// The end of a read-modify-write (patch, apply): nothing changed gives the
/// stored object as it is, otherwise the update is written at the revision
/// that was read. `Ok(None)`: another writer got there first (409 Conflict),
/// so the caller reads the newer version and tries again.
pub async fn write_unless_unchanged(
    w: Write<'_>,
    cur: &Stored,
    new: &Value,
    warnings: &[String],
) -> Result<Option<Response>, ApiError> {
    let ok =
        |obj: &Value| super::patch::with_warnings(json_response(StatusCode::OK, obj), warnings);
    if unchanged(&cur.obj, new) {
        return Ok(Some(ok(&cur.obj)));
    }
    match commit_update_from(w, cur, new.clone()).await {
        Ok(out) => Ok(Some(ok(&out))),
        Err(e) if e.is_conflict() => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`commit_update`] of an update of `cur`, taking what the new version
/// needs from shared ranges first (given back if the write fails) and
/// giving back what it no longer holds once written.
pub async fn commit_update_from(
    w: Write<'_>,
    cur: &Stored,
    mut new: Value,
) -> Result<Value, ApiError> {
    super::admission::mutate_update(w.state, w.def, &cur.obj, &mut new).await?;
    if let Some(who) = w.who {
        let hook = webhook::Request {
            op: webhook::Operation::Update,
            def: w.def,
            subresource: w.subresource,
            namespace: w.ns,
            name: w.name,
            who,
            dry_run: w.dry_run,
            kind: None,
            deadline: Instant::now() + webhook::REQUEST_BUDGET,
        };
        // What a webhook changed goes through what the client's change
        // went through: server-owned fields and status (or, on /status,
        // all but status) back as stored, immutable fields, generation,
        // the built-in admission and validation.
        if webhook::mutate(w.state, &hook, Some(&mut new), Some(&cur.obj)).await? {
            // (A uid in the body would be taken for a precondition.)
            metadata::keep_server_metadata(&cur.obj, &mut new);
            new = metadata::prepare_update(w.def, &cur.obj, new, w.subresource)?;
            allocate::on_update(w.def, &cur.obj, &mut new)?;
            super::admission::mutate_update(w.state, w.def, &cur.obj, &mut new).await?;
            if w.subresource.is_none() {
                check_valid(w.def, Some(&cur.obj), &new, w.name)?;
            }
        }
        super::auth::node_restriction::check_update(
            who,
            w.def.group,
            w.def.plural,
            w.subresource,
            &cur.obj,
            &new,
            w.state.control_plane_node.get().map(String::as_str),
        )?;
        super::rbac::escalation::check(w.state, who, w.def, w.ns, Some(&cur.obj), &new)?;
        super::admission::pod_security::admit(w.state, w.def, Some(&cur.obj), &new).await?;
        webhook::validate(w.state, &hook, Some(&new), Some(&cur.obj)).await?;
    }
    let charged =
        super::admission::quota::charge_update(w.state, w.def, &cur.obj, &new, w.dry_run).await?;
    let re = match allocate::reallocate(w, &cur.obj, &mut new).await {
        Ok(re) => re,
        Err(e) => {
            charged.release(w.state).await;
            return Err(e);
        }
    };
    let renewal = super::renewal::is_renewal(w.def, w.subresource, &cur.obj, &new);
    match commit_update_as(w, &new, cur.rev, renewal).await {
        Ok(out) => {
            re.freed.release(&w.state.objects).await;
            charged.settle(w.state).await;
            Ok(out)
        }
        Err(e) => {
            re.taken.release(&w.state.objects).await;
            charged.release(w.state).await;
            Err(e)
        }
    }
}

/// Store an updated object, or remove it when it was marked for deletion and
/// its last finalizer just went.
pub async fn commit_update(w: Write<'_>, new: &Value, expected: i64) -> Result<Value, ApiError> {
    commit_update_as(w, new, expected, false).await
}

/// As [`commit_update`]; `renewal` says the update only renews a Lease
/// (`renewal::is_renewal`), which the store may hold back for a while.
pub async fn commit_update_as(
    w: Write<'_>,
    new: &Value,
    expected: i64,
    renewal: bool,
) -> Result<Value, ApiError> {
    let Write {
        state,
        def,
        ns,
        name,
        dry_run,
        ..
    } = w;
    if dry_run {
        super::object_store::check_dry_run(def, name, new)?;
        return Ok(super::object_store::stamp(new.clone(), expected));
    }
    if metadata::ready_to_finalize(new) && !def.strategy.waits_before_removal(new) {
        let _usage =
            super::admission::quota::Guard::for_delete(state, ns.filter(|_| def.namespaced));
        let deleted = state.objects.delete(def, ns, name, Some(expected)).await?;
        allocate::release(state, def, &deleted).await;
        collect_dependents(state, def, ns, name, &deleted);
        return Ok(deleted);
    }
    if renewal {
        return state.objects.renew(def, ns, name, new, expected).await;
    }
    state.objects.update(def, ns, name, new, expected).await
}

pub async fn update(
    call: &Call<'_>,
    name: &str,
    body: Value,
    manager: &str,
) -> Result<Response, ApiError> {
    let Call { state, ctx, r, .. } = *call;
    let def = r.def;
    let ns = r.namespace.as_deref();
    let sub = r.subresource.as_deref();
    let precondition = parse_rv(meta_str(&body, "resourceVersion"))?;
    let cur = state.objects.must_get(def, ns, name).await?;
    if let Some(rv) = precondition {
        if rv != cur.rev {
            return Err(ApiError::conflict(
                def.group,
                def.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
    }
    let new = if sub == Some("finalize") {
        finalize_namespace(&cur, &body)
    } else {
        let mut new = prepare_update(def, &cur.obj, body, sub)?;
        allocate::on_update(def, &cur.obj, &mut new)?;
        if sub.is_none() {
            check_valid(def, Some(&cur.obj), &new, name)?;
        }
        super::object_store::check_size_early(def, name, &new)?;
        new
    };
    let mut new = new;
    super::apply::record_update(
        Some(&cur.obj),
        &mut new,
        manager,
        sub,
        &metadata::now_rfc3339(),
    );
    if unchanged(&cur.obj, &new) {
        return Ok(json_response(StatusCode::OK, &cur.obj));
    }
    let out = commit_update_from(Write::to(state, r, name, ctx), &cur, new).await?;
    Ok(json_response(StatusCode::OK, &out))
}

/// `PUT namespaces/<ns>/finalize` changes only `spec.finalizers`.
fn finalize_namespace(cur: &Stored, body: &Value) -> Value {
    let mut new = cur.obj.clone();
    let fins = body
        .get("spec")
        .and_then(|s| s.get("finalizers"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    if let Some(o) = new.as_object_mut() {
        let spec = o.entry("spec").or_insert_with(|| json!({}));
        if let Some(s) = spec.as_object_mut() {
            s.insert("finalizers".into(), fins);
        }
    }
    new
}

/// DeleteOptions from the body and the query string.
#[derive(Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub grace_seconds: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<i64>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// `dry_run`: the request's (`RequestCtx`); the body can also ask.
    pub fn parse(
        q: &Query,
        dry_run: bool,
        body: Option<&Value>,
    ) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions {
            propagation: q.get("propagationPolicy").map(str::to_string),
            grace_seconds: q.int("gracePeriodSeconds")?,
            dry_run,
            ..Default::default()
        };
        if let Some(b) = body {
            if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.to_string());
            }
            if let Some(g) = b.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace_seconds = Some(g);
            }
            if let Some(pre) = b.get("preconditions") {
                o.uid = pre.get("uid").and_then(Value::as_str).map(str::to_string);
                o.resource_version = parse_rv(pre.get("resourceVersion").and_then(Value::as_str))?;
            }
            if let Some(d) = b.get("dryRun").and_then(Value::as_array) {
                if d.iter().any(|v| v.as_str() == Some("All")) {
                    o.dry_run = true;
                }
            }
        }
        if let Some(p) = &o.propagation {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy {p:?} is not supported: use Orphan, Background or Foreground"
                )));
            }
        }
        if o.grace_seconds.is_some_and(|g| g < 0) {
            return Err(ApiError::bad_request(
                "gracePeriodSeconds must not be negative",
            ));
        }
        Ok(o)
    }
}

/// Delete one object. Objects held by finalizers (and every namespace) are
/// only marked; the rest go at once.
pub async fn delete_one(
    state: &ApiState,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    for _ in 0..16 {
        let cur = state.objects.must_get(def, ns, name).await?;
        if let Some(uid) = &opts.uid {
            if meta_str(&cur.obj, "uid") != Some(uid.as_str()) {
                return Err(ApiError::conflict(
                    def.group,
                    def.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&cur.obj, "uid").unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(rv) = opts.resource_version {
            if rv != cur.rev {
                return Err(ApiError::conflict(
                    def.group,
                    def.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        cur.rev
                    ),
                ));
            }
        }
        let policy = def.strategy.delete_policy(&cur.obj, opts.grace_seconds);
        let grace = policy.grace;
        let has_finalizers = !metadata::finalizers(&cur.obj).is_empty();
        let marked = metadata::meta(&cur.obj).is_some_and(|m| m.contains_key("deletionTimestamp"));
        // Orphan and foreground propagation are finalizers the garbage
        // collector honours, so the object stays until it has.
        let propagation = match opts.propagation.as_deref() {
            Some("Orphan") => Some(garbage::ORPHAN),
            Some("Foreground") => Some(garbage::FOREGROUND),
            _ => None,
        };
        // Some kinds are only marked (a pod on a node: its kubelet stops the
        // containers and then deletes it with grace 0; a namespace: its
        // controller empties it). Finalizers hold any kind.
        let held = has_finalizers || policy.marked_only || propagation.is_some();
        if held && marked {
            // Marked already: a shorter grace period shortens the wait,
            // as upstream's BeforeDelete (a longer one changes nothing).
            let current = metadata::meta(&cur.obj)
                .and_then(|m| m.get("deletionGracePeriodSeconds"))
                .and_then(Value::as_i64);
            if let (Some(g), Some(c)) = (grace, current) {
                if g < c {
                    // Upstream moves the deadline by the difference:
                    // old deletionTimestamp - old period + new period.
                    let at = metadata::meta(&cur.obj)
                        .and_then(|m| m.get("deletionTimestamp"))
                        .and_then(Value::as_str)
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| {
                            (t.with_timezone(&chrono::Utc) - chrono::TimeDelta::seconds(c - g))
                                .format("%Y-%m-%dT%H:%M:%SZ")
                                .to_string()
                        })
                        .unwrap_or_else(|| deletion_time(g));
                    let mut new = cur.obj.clone();
                    let m = meta_mut(&mut new);
                    m.insert("deletionTimestamp".into(), json!(at));
                    m.insert("deletionGracePeriodSeconds".into(), json!(g));
                    if opts.dry_run {
                        return Ok(new);
                    }
                    match state.objects.update(def, ns, name, &new, cur.rev).await {
                        Ok(v) => return Ok(v),
                        Err(e) if e.is_conflict() => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            // A delete that names a propagation policy sets the garbage
            // collector's finalizers to it, as upstream.
            let Some(p) = opts.propagation.as_deref() else {
                return Ok(cur.obj);
            };
            let mut new = cur.obj.clone();
            if !set_propagation(&mut new, p) {
                return Ok(new);
            }
            // Through commit_update: with its last finalizer gone, it goes.
            let w = Write {
                state,
                def,
                ns,
                name,
                dry_run: opts.dry_run,
                who: None,
                subresource: None,
            };
            match commit_update(w, &new, cur.rev).await {
                Ok(v) => {
                    if propagation.is_some() && !opts.dry_run {
                        let uid = meta_str(&v, "uid").unwrap_or("");
                        state.gc.push(garbage::Marked::new(def, ns, name, uid));
                    }
                    return Ok(v);
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
        if held {
            let mut new = cur.obj.clone();
            let m = meta_mut(&mut new);
            m.insert(
                "deletionTimestamp".into(),
                json!(deletion_time(grace.unwrap_or(0))),
            );
            m.insert(
                "deletionGracePeriodSeconds".into(),
                json!(grace.unwrap_or(0)),
            );
            // Marking counts as a change of generation, as upstream's
            // (controllers that filter on generation see the deletion).
            if let Some(g) = m
                .get("generation")
                .and_then(Value::as_i64)
                .filter(|g| *g > 0)
            {
                m.insert("generation".into(), json!(g + 1));
            }
            if let Some(f) = propagation {
                let list = m.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    if !a.iter().any(|v| v == f) {
                        a.push(json!(f));
                    }
                }
            }
            def.strategy.on_mark_deleted(&mut new);
            if opts.dry_run {
                return Ok(new);
            }
            match state.objects.update(def, ns, name, &new, cur.rev).await {
                Ok(v) => {
                    if propagation.is_some() {
                        let uid = meta_str(&v, "uid").unwrap_or("");
                        state.gc.push(garbage::Marked::new(def, ns, name, uid));
                    }
                    return Ok(v);
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
        if opts.dry_run {
            return Ok(cur.obj);
        }
        let _usage =
            super::admission::quota::Guard::for_delete(state, ns.filter(|_| def.namespaced));
        match state.objects.delete(def, ns, name, Some(cur.rev)).await {
            Ok(v) => {
                allocate::release(state, def, &v).await;
                collect_dependents(state, def, ns, name, &v);
                return Ok(v);
            }
            Err(e) if e.is_conflict() && opts.resource_version.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        def.group,
        def.plural,
        name,
        "the object kept changing while it was being deleted; try again",
    ))
}

/// An object is gone from the store: its dependents are the garbage
/// collector's to delete (background propagation).
fn collect_dependents(
    state: &ApiState,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    obj: &Value,
) {
    if !garbage::collects_after(def) {
        return;
    }
    if let Some(uid) = meta_str(obj, "uid") {
        state.gc.push(garbage::Marked::removed(def, ns, name, uid));
    }
}

/// Make an object's garbage-collector finalizers say `policy` (Orphan,
/// Foreground or Background); true when they changed.
fn set_propagation(obj: &mut Value, policy: &str) -> bool {
    let want = match policy {
        "Orphan" => Some(garbage::ORPHAN),
        "Foreground" => Some(garbage::FOREGROUND),
        _ => None,
    };
    let m = meta_mut(obj);
    let list = m.entry("finalizers").or_insert_with(|| json!([]));
    let Some(a) = list.as_array_mut() else {
        return false;
    };
    let before = a.clone();
    a.retain(|f| f != garbage::ORPHAN && f != garbage::FOREGROUND);
    if let Some(f) = want {
        a.push(json!(f));
    }
    let changed = *a != before;
    if a.is_empty() {
        m.remove("finalizers");
    }
    changed
}

/// `deletionTimestamp` is when the object should be gone: now + grace.
fn deletion_time(grace: i64) -> String {
    (chrono::Utc::now() + chrono::TimeDelta::seconds(grace.max(0)))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The admission webhooks' say on deleting an object (`hook`, a DELETE):
/// read once more only when some webhook may be asked.
async fn admit_delete(state: &ApiState, hook: &webhook::Request<'_>) -> Result<(), ApiError> {
    if !webhook::any(state, webhook::config::Phase::Mutating)
        && !webhook::any(state, webhook::config::Phase::Validating)
    {
        return Ok(());
    }
    // A missing object is reported by the delete itself.
    let Some(cur) = state
        .objects
        .get(hook.def, hook.namespace, hook.name)
        .await?
    else {
        return Ok(());
    };
    webhook::mutate(state, hook, None, Some(&cur.obj)).await?;
    webhook::validate(state, hook, None, Some(&cur.obj)).await
}

/// A DELETE of one object as webhooks are asked about it.
fn delete_request<'a>(
    def: &'a ResourceDef,
    ns: Option<&'a str>,
    name: &'a str,
    who: &'a Identity,
    opts: &DeleteOptions,
) -> webhook::Request<'a> {
    webhook::Request {
        op: webhook::Operation::Delete,
        def,
        subresource: None,
        namespace: ns,
        name,
        who,
        dry_run: opts.dry_run,
        kind: None,
        deadline: Instant::now() + webhook::REQUEST_BUDGET,
    }
}

pub async fn delete(
    state: &ApiState,
    r: &ResourceRef<'_>,
    name: &str,
    who: &Identity,
    opts: &DeleteOptions,
) -> Result<Response, ApiError> {
    let def = r.def;
    def.strategy.check_delete(name)?;
    let hook = delete_request(def, r.namespace.as_deref(), name, who, opts);
    admit_delete(state, &hook).await?;
    let out = delete_one(state, def, r.namespace.as_deref(), name, opts).await?;
    let still_there = metadata::meta(&out).is_some_and(|m| m.contains_key("deletionTimestamp"));
    if def.strategy.returns_deleted_object() || still_there {
        let code = if still_there && !opts.dry_run {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        // The apiserver answers 200 for a finished delete and 202 when the
        // object is only marked; kubectl treats both as success.
        return Ok(json_response(code, &out));
    }
    let details = json!({
        "name": name,
        "group": def.group,
        "kind": def.plural,
        "uid": meta_str(&out, "uid").unwrap_or(""),
    });
    Ok(json_response(
        StatusCode::OK,
        &success_status(Some(details)),
    ))
}

pub async fn delete_collection(
    state: &Arc<ApiState>,
    r: &ResourceRef<'_>,
    q: &Query,
    who: &Identity,
    opts: DeleteOptions,
) -> Result<Response, ApiError> {
    let def = r.def;
    let filter = Filter::from_query(def, q)?;
    // Only the names are kept: the objects are read again as each one is
    // deleted, and sent as they go, so neither side of a collection of any
    // size is held whole.
    let mut names = Names(Vec::new());
    let end = scan_page(
        &state.objects,
        def,
        r.namespace.as_deref(),
        &Query::default(),
        &filter,
        &mut names,
    )
    .await?;
    let state = Arc::clone(state);
    let owned = def.clone();
    let who = who.clone();
    // The request's webhooks share one budget, however many objects.
    let deadline = Instant::now() + webhook::REQUEST_BUDGET;
    streamed(
        def,
        super::read::Shape::Object,
        "deletecollection",
        move |mut sink| async move {
            let def = owned;
            let mut res = Ok(());
            for (ns, name) in names.0 {
                // What the kind never lets go (the system PriorityClasses)
                // is left out, as a delete of it one by one is refused.
                if def.strategy.check_delete(&name).is_err() {
                    continue;
                }
                let hook = webhook::Request {
                    deadline,
                    ..delete_request(&def, ns.as_deref(), &name, &who, &opts)
                };
                // A refusal stops the collection (a 404 from a webhook too:
                // only the store's not-found means "gone already").
                if let Err(e) = admit_delete(&state, &hook).await {
                    res = Err(e);
                    break;
                }
                match delete_one(&state, &def, ns.as_deref(), &name, &opts).await {
                    Ok(v) => res = sink.item(v),
                    // Gone already: someone else deleted it meanwhile.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => res = Err(e),
                }
                if res.is_ok() && sink.items.page_full() {
                    res = sink.chunk_done(end.revision, Held::none()).await;
                }
                if res.is_err() {
                    break;
                }
            }
            if res.is_ok() {
                res = sink.chunk_done(end.revision, Held::none()).await;
            }
            sink.finish(res, "deletecollection").await;
        },
    )
    .await
}

/// The namespace and name of every object a scan finds.
struct Names(Vec<(Option<String>, String)>);

impl ScanSink for Names {
    fn item(&mut self, obj: Value) -> Result<(), ApiError> {
        if let Some(name) = name_of(&obj) {
            let ns = meta_str(&obj, "namespace").map(str::to_string);
            self.0.push((ns, name.to_string()));
        }
        Ok(())
    }

    async fn chunk_done(&mut self, _revision: i64, _held: Held) -> Result<(), ApiError> {
        Ok(())
    }
}
