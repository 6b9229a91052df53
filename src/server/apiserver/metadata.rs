//! Object metadata rules every kind shares: names, uids, timestamps,
//! generation, resourceVersion, and what a create or update may change;
//! what differs per kind (status on create, generation) is its strategy.

use rand::Rng;
use serde_json::{json, Map, Value};

use super::registry::ResourceDef;
use crate::api::status::ApiError;

pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

pub fn name_of(obj: &Value) -> Option<&str> {
    meta_str(obj, "name")
}

/// `metadata`, created if missing (callers have checked `obj` is an object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        // The branch above made it an object.
        _ => unreachable!("metadata was just set to an object"),
    }
}

/// Put `kind` and `apiVersion` first, as the real apiserver serialises them.
pub fn with_type_meta(def: &ResourceDef, obj: Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(def.kind));
    out.insert("apiVersion".into(), json!(def.api_version()));
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if k != "kind" && k != "apiVersion" {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

/// The same alphabet as the apiserver (no vowels, no confusable digits), so
/// generated names never spell words.
const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// At most this many bytes of `generateName` are kept, so that with the
/// five random characters the name fits in 63 (as the apiserver does).
const MAX_GENERATE_PREFIX: usize = 58;

pub fn generate_name(prefix: &str) -> String {
    // The apiserver cuts at byte 58; cutting inside a multibyte character
    // would panic here, so cut at the last character boundary before it
    // (validation then refuses the non-DNS name with a 422).
    let prefix = prefix
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|&end| end <= MAX_GENERATE_PREFIX)
        .last()
        .map_or("", |end| &prefix[..end]);
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| GENERATE_ALPHABET[rng.random_range(0..GENERATE_ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Fill in and check server-owned metadata for a new object.
/// `url_namespace` is the namespace in the request path.
pub fn prepare_create(
    def: &ResourceDef,
    url_namespace: Option<&str>,
    mut obj: Value,
) -> Result<Value, ApiError> {
    if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
        if kind != def.kind {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({kind}) does not match the resource {} ({})",
                def.plural, def.kind
            )));
        }
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != def.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
    }
    let m = meta_mut(&mut obj);
    if def.namespaced {
        let ns = url_namespace.unwrap_or("default");
        match m.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                m.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        m.remove("namespace");
    }
    let mut name = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        if let Some(prefix) = m.get("generateName").and_then(Value::as_str) {
            if !prefix.is_empty() {
                name = generate_name(prefix);
                m.insert("name".into(), json!(name));
            }
        }
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now_rfc3339()));
    m.remove("resourceVersion");
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.remove("selfLink");
    if def.strategy.tracks_generation() {
        meta_mut(&mut obj).insert("generation".into(), json!(1));
    }
    if def.has_subresource("status") {
        // Status is owned by controllers; the kind says what a create
        // starts with (pods Pending, namespaces Active, nodes their own).
        if let Some(map) = obj.as_object_mut() {
            def.strategy.status_on_create(map);
        }
    }
    let mut obj = with_type_meta(def, obj);
    drop_empty_metadata(&mut obj);
    // Unknown fields got past fieldValidation only as warnings (or ignored):
    // like the typed decoder of the apiserver, never store them.
    super::crd::prune_and_default(def, &mut obj);
    status_shape(def, &mut obj);
    def.strategy.admit_create(&mut obj);
    Ok(obj)
}

/// A kind with a status has one, `{}` at least, as upstream's objects
/// always do (their Go status is a struct, never nil): typed clients fail on
/// a missing one.
/// Set annotations `keys` of `to` as `from` has them (or not).
fn copy_annotations(from: &Value, to: &mut Value, keys: &[&str]) {
    if keys.is_empty() {
        return;
    }
    let source = from
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let m = meta_mut(to);
    let notes = m
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !notes.is_object() {
        *notes = Value::Object(Map::new());
    }
    if let Some(n) = notes.as_object_mut() {
        for k in keys {
            match source.get(*k) {
                Some(v) => {
                    n.insert((*k).to_string(), v.clone());
                }
                None => {
                    n.remove(*k);
                }
            }
        }
        if n.is_empty() {
            m.remove("annotations");
        }
    }
}

fn status_shape(def: &ResourceDef, obj: &mut Value) {
    // Custom resources are unstructured: no status until one is written.
    if !def.has_subresource("status") || def.custom.is_some() {
        return;
    }
    if let Some(m) = obj.as_object_mut() {
        let status = m
            .entry("status")
            .or_insert_with(|| Value::Object(Default::default()));
        if status.is_null() {
            *status = Value::Object(Default::default());
        }
    }
}

/// Metadata only the server writes.
const SERVER_OWNED: &[&str] = &[
    "uid",
    "creationTimestamp",
    "name",
    "namespace",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "selfLink",
];

/// Put back in `to` what the server set in a new object `from` and no one
/// else may change (a mutating webhook's patch): server-owned metadata and,
/// for kinds with a `/status`, the status.
pub fn keep_server_owned(def: &ResourceDef, from: &Value, to: &mut Value) {
    keep_server_metadata(from, to);
    if def.has_subresource("status") {
        if let Some(o) = to.as_object_mut() {
            match from.get("status") {
                Some(s) => {
                    o.insert("status".into(), s.clone());
                }
                None => {
                    o.remove("status");
                }
            }
        }
    }
}

/// Put back in `to` the server-owned metadata of `from`.
pub fn keep_server_metadata(from: &Value, to: &mut Value) {
    let owned = meta(from).cloned().unwrap_or_default();
    let m = meta_mut(to);
    for key in SERVER_OWNED {
        match owned.get(*key) {
            Some(v) => {
                m.insert((*key).into(), v.clone());
            }
            None => {
                m.remove(*key);
            }
        }
    }
}

/// Apply an update (PUT or a patch result) of `old` to `new`, keeping what a
/// client may not change. `subresource` is `Some("status")` for `/status`.
pub fn prepare_update(
    def: &ResourceDef,
    old: &Value,
    mut new: Value,
    subresource: Option<&str>,
) -> Result<Value, ApiError> {
    let name = name_of(old).unwrap_or("").to_string();
    if !new.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    // As upstream's checkName: a body without a name does not match either.
    let n = name_of(&new).unwrap_or("");
    if n != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(kind) = new.get("kind").and_then(Value::as_str) {
        if kind != def.kind {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({kind}) does not match the resource {} ({})",
                def.plural, def.kind
            )));
        }
    }
    // A UID in the body is a precondition, as upstream's: the update is
    // of that object, not of one made since under its name.
    if let Some(uid) = meta_str(&new, "uid").filter(|u| !u.is_empty()) {
        let stored = meta_str(old, "uid").unwrap_or("");
        if uid != stored {
            return Err(ApiError::conflict(
                def.group,
                def.plural,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {stored}"
                ),
            ));
        }
    }
    if def.namespaced {
        let old_ns = meta_str(old, "namespace").unwrap_or("");
        if let Some(ns) = meta_str(&new, "namespace") {
            if !ns.is_empty() && ns != old_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    }
    let status_notes = def.strategy.status_annotations(&def.api_version());
    if subresource == Some("status") {
        // Only status changes through /status; the rest stays as stored.
        let mut out = old.clone();
        if let (Some(o), Some(status)) = (out.as_object_mut(), new.get("status")) {
            o.insert("status".into(), status.clone());
        }
        copy_annotations(&new, &mut out, status_notes);
        if def.custom.is_some() {
            // The whole object is checked against the schema, status too.
            super::crd::prune_and_default(def, &mut out);
            let causes = super::crd::schema_causes(def, Some(old), &out);
            if !causes.is_empty() {
                return Err(ApiError::invalid(def.group, def.kind, &name, causes));
            }
        }
        return Ok(out);
    }
    // Server-owned metadata always comes from the stored object.
    let old_meta = meta(old).cloned().unwrap_or_default();
    let m = meta_mut(&mut new);
    for key in [
        "uid",
        "creationTimestamp",
        "namespace",
        "name",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(key) {
            Some(v) => {
                m.insert(key.into(), v.clone());
            }
            None => {
                m.remove(key);
            }
        }
    }
    m.remove("resourceVersion");
    m.remove("selfLink");
    if def.has_subresource("status") {
        // The main resource cannot change status on kinds that have /status.
        if let Some(o) = new.as_object_mut() {
            match old.get("status") {
                Some(s) => {
                    o.insert("status".into(), s.clone());
                }
                None => {
                    o.remove("status");
                }
            }
        }
        copy_annotations(old, &mut new, status_notes);
    }
    // Defaults first, so that an update leaving out defaulted fields is not
    // mistaken for a spec change.
    let mut new = with_type_meta(def, new);
    drop_empty_metadata(&mut new);
    super::crd::prune_and_default(def, &mut new);
    status_shape(def, &mut new);
    if def.strategy.tracks_generation() && super::crd::generation_changed(def, old, &new) {
        let g = meta(old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    Ok(new)
}

/// Empty (or null) labels, annotations, finalizers and owner references
/// are not kept, as upstream's (its Go fields are `omitempty`): the last
/// finalizer or label taken away leaves no `[]` or `{}` behind.
fn drop_empty_metadata(obj: &mut Value) {
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
        let empty = match m.get(key) {
            Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        };
        if empty {
            m.remove(key);
        }
    }
}

/// True when the object is marked for deletion and no finalizer holds it.
pub fn ready_to_finalize(obj: &Value) -> bool {
    let m = match meta(obj) {
        Some(m) => m,
        None => return false,
    };
    // A graceful deletion still under way (a pod its node is stopping)
    // keeps the object when its last finalizer goes: the final delete with
    // grace 0 removes it, as upstream's ShouldDeleteDuringUpdate. Marks
    // without a period (older data) count as 0.
    let graceful = m
        .get("deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|g| g > 0);
    m.contains_key("deletionTimestamp")
        && !graceful
        && m.get("finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    string_list(meta(obj).and_then(|m| m.get("finalizers")))
}

/// The strings of a JSON array (none when it is absent or not an array).
pub fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::apiserver::registry::Registry;

    fn def(plural: &str) -> ResourceDef {
        let r = Registry::builtin();
        r.builtins()
            .iter()
            .find(|d| d.plural == plural)
            .cloned()
            .expect("builtin kind")
    }

    #[test]
    fn generated_names() {
        let g = generate_name("web-");
        assert!(g.starts_with("web-") && g.len() == 9);
        assert!(g[4..].bytes().all(|c| GENERATE_ALPHABET.contains(&c)));
        assert_eq!(generate_name(&"x".repeat(80)).len(), 63);
        // A multibyte character across byte 58 is dropped whole.
        let prefix = format!("{}é{}", "a".repeat(57), "b".repeat(10));
        let g = generate_name(&prefix);
        assert_eq!(&g[..57], "a".repeat(57));
        assert_eq!(g.len(), 62);
        assert_eq!(generate_name("ééé").chars().count(), 8);
    }

    #[test]
    fn create_fills_metadata() {
        let d = def("configmaps");
        let o = prepare_create(
            &d,
            Some("demo"),
            json!({"metadata": {"name": "c", "resourceVersion": "5"}, "data": {"a": "b"}}),
        )
        .unwrap();
        assert_eq!(o["kind"], "ConfigMap");
        assert_eq!(o["apiVersion"], "v1");
        assert_eq!(o["metadata"]["namespace"], "demo");
        assert!(o["metadata"]["uid"].is_string());
        assert!(o["metadata"].get("resourceVersion").is_none());
        assert!(o["metadata"].get("generation").is_none());
        let err = prepare_create(
            &d,
            Some("demo"),
            json!({"metadata": {"name": "x", "namespace": "other"}}),
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        let err = prepare_create(
            &d,
            Some("demo"),
            json!({"kind": "Secret", "metadata": {"name": "x"}}),
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn update_keeps_server_fields_and_bumps_generation() {
        let d = def("deployments");
        let old = prepare_create(
            &d,
            Some("default"),
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}, "status": {"replicas": 9}}),
        )
        .unwrap();
        // The client's status is dropped; an empty one stands in, as upstream.
        assert_eq!(old["status"], json!({}));
        let mut old = old;
        old["status"] = json!({"replicas": 1});
        let forged = json!({"metadata": {"name": "web", "uid": "forged"}, "spec": {"replicas": 3}});
        let err = prepare_update(&d, &old, forged, None).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err
            .message
            .contains("Precondition failed: UID in precondition: forged"));
        let new = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}, "status": {"replicas": 7}});
        let out = prepare_update(&d, &old, new, None).unwrap();
        assert_eq!(out["metadata"]["uid"], old["metadata"]["uid"]);
        assert_eq!(out["metadata"]["generation"], 2);
        assert_eq!(out["status"]["replicas"], 1);
        let st = prepare_update(
            &d,
            &old,
            json!({"metadata": {"name": "web"}, "status": {"replicas": 5}, "spec": {"replicas": 100}}),
            Some("status"),
        )
        .unwrap();
        assert_eq!(st["status"]["replicas"], 5);
        assert_eq!(st["spec"]["replicas"], 1);
        let err =
            prepare_update(&d, &old, json!({"metadata": {"name": "other"}}), None).unwrap_err();
        assert_eq!(err.code, 400);
        // Upstream's checkName: no name does not match either.
        let err = prepare_update(&d, &old, json!({"spec": {"replicas": 2}}), None).unwrap_err();
        assert_eq!(
            err.message,
            "the name of the object () does not match the name on the URL (web)"
        );
    }

    #[test]
    fn empty_metadata_lists_and_maps_are_not_kept() {
        let d = def("configmaps");
        let o = prepare_create(
            &d,
            Some("demo"),
            json!({"metadata": {"name": "c", "labels": {}, "annotations": null,
                "finalizers": [], "ownerReferences": []}}),
        )
        .unwrap();
        for k in ["labels", "annotations", "finalizers", "ownerReferences"] {
            assert!(o["metadata"].get(k).is_none(), "{k}: {o}");
        }
        // The last finalizer and label taken away by an update.
        let old = json!({"metadata": {"name": "c", "namespace": "demo",
            "labels": {"a": "b"}, "finalizers": ["x/y"]}});
        let new = json!({"metadata": {"name": "c", "namespace": "demo",
            "labels": {}, "finalizers": []}});
        let o = prepare_update(&d, &old, new, None).unwrap();
        assert!(o["metadata"].get("labels").is_none(), "{o}");
        assert!(o["metadata"].get("finalizers").is_none(), "{o}");
    }
}
