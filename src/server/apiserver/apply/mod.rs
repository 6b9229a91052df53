//! Server-side apply (`PATCH` with `application/apply-patch+yaml`) and the
//! field-manager bookkeeping of every write (`metadata.managedFields`).
//!
//! Files: this one (the apply algorithm and the request handler),
//! `fieldset.rs` (FieldsV1 sets, field sets of objects, comparison),
//! `managed.rs` (managedFields entries, ordinary writes), `shape.rs` (the
//! apply view of the strategic-merge schema).
//!
//! Semantics follow the apiserver's structured-merge-diff: an applier owns
//! exactly the fields of its last applied configuration; applying a field
//! that another manager owns with a different live value is a conflict
//! (409) unless `force=true`, which takes the field over; fields an applier
//! stops applying are removed from the object unless another manager still
//! owns them. As in the apiserver, the manager `kubectl` gets two
//! allowances for objects that were client-side applied before: conflicts
//! on fields whose live value still equals the last-applied annotation are
//! forced, and that annotation is kept in step with the applied
//! configuration.

pub mod fieldset;
pub mod managed;
pub(crate) mod shape;
#[cfg(test)]
mod tests;

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use self::fieldset::{applied_set, lookup, ownable, path_string, remove_path, Path, Scope};
use self::managed::{decode, store, Entry, APPLY};
pub use self::managed::{manager_name, record_update};
use self::shape::Shape;
use super::metadata::{meta_str, now_rfc3339, prepare_create, prepare_update};
use super::negotiate::{json_response, parse_yaml};
use super::object_store::parse_rv;
use super::patch::with_warnings;
use super::path::ResourceRef;
use super::query::Query;
use super::write::{check_namespace, write_unless_unchanged, Write};
use super::{allocate, Call, RequestCtx};
use crate::api::status::{ApiError, Cause};
use crate::api::strategic::schema::Ty;

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The manager kubectl uses for `apply --server-side`; the apiserver treats
/// it specially for objects that were client-side applied before.
const KUBECTL: &str = "kubectl";
pub const MAX_MANAGER_LEN: usize = 128;

/// A field applied by one manager while another owns it with another value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager as the apiserver prints it:
    /// `"kubectl-client-side-apply" using apps/v1` (Update) or `"other"`.
    pub manager: String,
    /// `.spec.replicas`
    pub field: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    Conflicts(Vec<Conflict>),
    BadRequest(String),
}

impl ApplyError {
    /// The Status the apiserver answers with.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            ApplyError::BadRequest(m) => ApiError::bad_request(m.clone()),
            ApplyError::Conflicts(c) => {
                let mut e = ApiError::new(409, "Conflict", conflict_message(c));
                e.causes = c
                    .iter()
                    .map(|c| Cause {
                        reason: "FieldManagerConflict".into(),
                        message: format!("conflict with {}", c.manager),
                        field: c.field.clone(),
                    })
                    .collect();
                e
            }
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> ApiError {
        e.to_api_error()
    }
}

fn conflict_message(c: &[Conflict]) -> String {
    if let [one] = c {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.field
        );
    }
    let mut managers: Vec<&str> = c.iter().map(|c| c.manager.as_str()).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflict with {m}:"));
        for x in c.iter().filter(|x| x.manager == m) {
            lines.push(format!("- {}", x.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        c.len(),
        lines.join("\n")
    )
}

/// Drop `null`s from maps: an applied configuration never sets a null.
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

fn merge_map(live: &mut Map<String, Value>, applied: &Map<String, Value>, ty: Option<Ty>) {
    for (k, av) in applied {
        let ashape = shape::of_field(ty, k, av);
        match live.get_mut(k) {
            Some(lv) if !lv.is_null() && shape::of_field(ty, k, lv) == ashape => {
                merge_value(lv, av, ashape)
            }
            _ => {
                live.insert(k.clone(), av.clone());
            }
        }
    }
}

fn merge_value(live: &mut Value, applied: &Value, shape: Shape) {
    match (shape, live, applied) {
        (Shape::Map(ty), Value::Object(l), Value::Object(a)) => merge_map(l, a, ty),
        (Shape::Assoc(keys, ty), Value::Array(l), Value::Array(a)) => {
            let key = |e: &Value| shape::element_key(keys, e);
            let mut used = vec![false; a.len()];
            for le in l.iter_mut() {
                let Some(lk) = key(le) else { continue };
                if let Some(i) = a.iter().position(|ae| key(ae).as_ref() == Some(&lk)) {
                    used[i] = true;
                    if let (Value::Object(lm), Value::Object(am)) = (&mut *le, &a[i]) {
                        merge_map(lm, am, ty);
                    } else {
                        *le = a[i].clone();
                    }
                }
            }
            for (i, ae) in a.iter().enumerate() {
                if !used[i] {
                    l.push(ae.clone());
                }
            }
        }
        (Shape::Set, Value::Array(l), Value::Array(a)) => {
            for ae in a {
                if !l.contains(ae) {
                    l.push(ae.clone());
                }
            }
        }
        (_, l, a) => *l = a.clone(),
    }
}

/// The value the apiserver writes into the last-applied annotation for a
/// `kubectl` server-side apply: the applied configuration without that
/// annotation, as Go encodes it (sorted keys, HTML-safe escapes, newline).
pub fn last_applied_value(applied: &Value) -> String {
    let mut obj = applied.clone();
    if let Some(ann) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        ann.remove(LAST_APPLIED);
        if ann.is_empty() {
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("annotations");
            }
        }
    }
    let text = crate::api::sort_keys(&obj).to_string();
    let text = text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    text + "\n"
}

fn last_applied_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
}

/// Conflicts that `kubectl` may force because they are leftovers of a
/// client-side apply: the field is in the last-applied annotation and its
/// live value is still the one last applied.
fn allowed_by_last_applied(live: &Value, root: Option<Ty>, path: &Path) -> bool {
    let Some(text) = last_applied_of(live) else {
        return false;
    };
    let Ok(la) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let la = strip_nulls(&la);
    let set = applied_set(&ownable(&la, Scope::Main), root);
    set.has(path) && lookup(&la, root, path) == lookup(live, root, path)
}

/// Is the value at `path` an empty map or list?
fn is_empty_at(obj: &Value, root: Option<Ty>, path: &[String]) -> bool {
    match fieldset::lookup_value(obj, root, path) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// Server-side apply of the configuration `applied` by `manager` to the
/// stored object `live` (`None`: the object does not exist yet). Returns
/// the new object with its `metadata.managedFields`; the caller then runs
/// the usual create or update rules on it.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    let applied = strip_nulls(applied);
    if !applied.is_object() {
        return Err(ApplyError::BadRequest(
            "the applied configuration must be an object".into(),
        ));
    }
    if applied.pointer("/metadata/managedFields").is_some() {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let root = shape::root(&applied);
    let aset = applied_set(&ownable(&applied, Scope::Main), root);
    let live_obj = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut entries = decode(&live_obj);
    let is_mine = |e: &Entry| e.is(manager, APPLY, None);

    // Conflicts: fields others own whose live value this apply changes.
    let mut conflicts: Vec<(usize, Path, Conflict)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if is_mine(e) {
            continue;
        }
        for p in e.fields.intersection(&aset).members() {
            if lookup(&live_obj, root, &p) != lookup(&applied, root, &p) {
                let c = Conflict {
                    manager: e.describe(),
                    field: path_string(&p),
                };
                conflicts.push((i, p, c));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let upgrade = manager == KUBECTL
            && conflicts
                .iter()
                .all(|(_, p, _)| allowed_by_last_applied(&live_obj, root, p));
        if !upgrade {
            let mut list: Vec<Conflict> = conflicts.into_iter().map(|(_, _, c)| c).collect();
            list.sort_by(|a, b| (&a.manager, &a.field).cmp(&(&b.manager, &b.field)));
            return Err(ApplyError::Conflicts(list));
        }
    }
    // Forced (or allowed): the fields change hands.
    for (i, p, _) in &conflicts {
        entries[*i].fields.remove(p);
    }

    let mut merged = live_obj.clone();
    if let (Value::Object(l), Value::Object(a)) = (&mut merged, &applied) {
        merge_map(l, a, root);
    }

    // Fields this manager applied before and no longer applies go, unless
    // someone else owns them (or something below them).
    let mine = entries.iter().position(is_mine);
    let prev = mine.map(|i| entries[i].fields.clone()).unwrap_or_default();
    let others = entries
        .iter()
        .filter(|e| !is_mine(e))
        .fold(fieldset::FieldSet::new(), |acc, e| acc.union(&e.fields));
    for p in prev.difference(&aset).members() {
        if others.has_prefix(&p) || aset.has_prefix(&p) {
            continue;
        }
        remove_path(&mut merged, root, &p);
        // Maps and lists left empty by the removal go too, unless owned.
        for n in (1..p.len()).rev() {
            let parent = &p[..n];
            if others.has_prefix(parent) || aset.has_prefix(parent) {
                break;
            }
            if !is_empty_at(&merged, root, parent) {
                break;
            }
            remove_path(&mut merged, root, parent);
        }
    }

    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match mine {
        Some(i) if entries[i].fields == aset && entries[i].api_version == api_version => {}
        Some(i) => {
            entries[i].fields = aset;
            entries[i].api_version = api_version;
            entries[i].time = Some(now.to_string());
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: APPLY.into(),
            api_version,
            time: Some(now.to_string()),
            fields: aset,
            subresource: None,
        }),
    }

    if manager == KUBECTL && last_applied_of(&merged).is_some() {
        let value = last_applied_value(&applied);
        if let Some(ann) = merged
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            ann.insert(LAST_APPLIED.into(), Value::String(value));
        }
    }
    store(&mut merged, entries);
    Ok(merged)
}

/// `fieldManager` checks shared by create, update and patch: at most 128
/// printable characters. `options` names the options kind in the error
/// (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
pub fn check_field_manager(field_manager: Option<&str>, options: &str) -> Result<(), ApiError> {
    let Some(m) = field_manager else {
        return Ok(());
    };
    let mut causes = Vec::new();
    if m.len() > MAX_MANAGER_LEN {
        causes.push(Cause {
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: may not be more than {MAX_MANAGER_LEN} bytes"),
            field: "fieldManager".into(),
        });
    }
    if let Some((i, c)) = m.char_indices().find(|(_, c)| c.is_control()) {
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!(
                "Invalid value: {m:?}: invalid character U+{:04X} (at position {i})",
                c as u32
            ),
            field: "fieldManager".into(),
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("meta.k8s.io", options, "", causes))
    }
}

/// The manager a write is recorded under (see [`manager_name`]), after
/// [`check_field_manager`].
pub fn write_manager(
    ctx: &RequestCtx,
    headers: &HeaderMap,
    options: &str,
) -> Result<String, ApiError> {
    let field_manager = ctx.field_manager.as_deref();
    check_field_manager(field_manager, options)?;
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Ok(manager_name(field_manager, ua))
}

/// Options checks of a non-apply PATCH: `force` belongs to apply only.
pub fn check_patch_options(q: &Query) -> Result<(), ApiError> {
    if q.get("force").is_some() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: may not be specified for non-apply patch".into(),
                field: "force".into(),
            }],
        ));
    }
    Ok(())
}

fn conflict_rv(r: &ResourceRef<'_>, name: &str) -> ApiError {
    ApiError::conflict(
        r.def.group,
        r.def.plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// Check the applied configuration against the request: its apiVersion,
/// kind, name and namespace must be those of the URL.
fn check_applied(r: &ResourceRef<'_>, name: &str, applied: &Value) -> Result<(), ApiError> {
    let def = r.def;
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "the apply patch must be a YAML or JSON object",
        ));
    }
    let av = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if av != def.api_version() {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {av}, expected: {}",
            def.api_version()
        )));
    }
    let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != def.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the applied object ({kind}) does not match the resource {} ({})",
            def.plural, def.kind
        )));
    }
    if let Some(n) = meta_str(applied, "name") {
        if !n.is_empty() && n != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    if let (Some(ns), Some(url_ns)) = (meta_str(applied, "namespace"), r.namespace.as_deref()) {
        if !ns.is_empty() && ns != url_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    Ok(())
}

/// `PATCH` with `application/apply-patch+yaml`: apply, creating the object
/// (201) if it does not exist.
pub async fn apply(call: &Call<'_>, name: &str, body: &[u8]) -> Result<Response, ApiError> {
    let Call {
        state, ctx, r, q, ..
    } = *call;
    let def = r.def;
    if r.subresource.is_some() {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "server-side apply is supported on the main resource only",
        ));
    }
    check_field_manager(ctx.field_manager.as_deref(), "PatchOptions")?;
    let manager = match ctx.field_manager.as_deref() {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: is required for apply patch".into(),
                    field: "fieldManager".into(),
                }],
            ))
        }
    };
    let force = q.flag("force");
    let dry_run = ctx.dry_run;
    let mut applied = parse_yaml(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {}", e.message)))?;
    check_applied(r, name, &applied)?;
    let warnings = super::patch::check_fields(def, q, &applied)?;
    if def.has_subresource("status") {
        if let Some(o) = applied.as_object_mut() {
            o.remove("status");
        }
    }
    // What is applied will be stored: refuse it before the costly merge of
    // field sets if it is already too large.
    super::object_store::check_size_early(def, name, &applied)?;
    let precondition = parse_rv(meta_str(&applied, "resourceVersion"))?;
    let ns = r.namespace.as_deref();
    for _ in 0..16 {
        let now = now_rfc3339();
        let Some(cur) = state.objects.get(def, ns, name).await? else {
            if precondition.is_some() {
                return Err(ApiError::not_found(def.group, def.plural, name));
            }
            let mut obj = server_side_apply(None, &applied, &manager, force, &now)?;
            super::metadata::meta_mut(&mut obj).insert("name".into(), Value::from(name));
            let mut obj = prepare_create(def, ns, obj)?;
            let taken =
                super::write::admit_new(state, &ctx.who, def, &mut obj, name, dry_run).await?;
            let created = async {
                if let Some(ns) = ns {
                    check_namespace(state, def, ns, name).await?;
                }
                if dry_run {
                    super::object_store::check_dry_run(def, name, &obj)?;
                    return Ok(obj.clone());
                }
                state.objects.create(def, ns, name, &obj).await
            }
            .await;
            if created.is_err() {
                taken.release(state).await;
            }
            match created {
                Ok(created) => {
                    return Ok(with_warnings(
                        json_response(StatusCode::CREATED, &created),
                        &warnings,
                    ))
                }
                // Created meanwhile by someone else: apply to theirs.
                Err(e) if e.is_already_exists() => continue,
                Err(e) => return Err(e),
            }
        };
        if precondition.is_some_and(|rv| rv != cur.rev) {
            return Err(conflict_rv(r, name));
        }
        let merged = server_side_apply(Some(&cur.obj), &applied, &manager, force, &now)?;
        let mut new = prepare_update(def, &cur.obj, merged, None)?;
        allocate::on_update(def, &cur.obj, &mut new)?;
        super::write::check_valid(def, Some(&cur.obj), &new, name)?;
        let w = Write::to(state, r, name, ctx);
        match write_unless_unchanged(w, &cur, &new, &warnings).await? {
            Some(resp) => return Ok(resp),
            // Lost a race: apply to the newer version, unless the client
            // named the version it meant.
            None if precondition.is_none() => continue,
            None => return Err(conflict_rv(r, name)),
        }
    }
    Err(conflict_rv(r, name))
}
