//! PATCH (JSON merge patch and JSON patch) and the `/scale` subresource.

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::metadata::{meta, meta_str, prepare_update};
use super::negotiate::{content_type, json_response, parse_json};
use super::object_store::parse_rv;
use super::path::ResourceRef;
use super::query::Query;
use super::registry::ResourceDef;
use super::write::{commit_update, Write};
use super::{allocate, ApiState, Call};
use crate::api::status::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
}

pub fn patch_type(headers: &HeaderMap) -> Result<PatchType, ApiError> {
    match content_type(headers).as_str() {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            ),
        )),
    }
}

/// Apply a parsed patch document to `target`.
pub fn apply_patch(
    kind: PatchType,
    target: &Value,
    patch: &Value,
    name: &str,
) -> Result<Value, ApiError> {
    let mut out = target.clone();
    match kind {
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            let api_version = target
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = target.get("kind").and_then(Value::as_str).unwrap_or("");
            out = crate::api::strategic::apply(target, patch, api_version, kind).map_err(|e| {
                ApiError::bad_request(format!(
                    "the strategic merge patch for {name:?} cannot be applied: {e}"
                ))
            })?;
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut out, patch);
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
            apply_json_patch(&mut out, &ops.0, name)?;
        }
    }
    Ok(out)
}

/// The most operations one JSON patch may have (upstream's
/// maxJSONPatchOperations, from CVE-2019-1002100).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// How much all `copy` operations of one JSON patch may add, in bytes of
/// JSON (upstream's JSONPatchMaxCopyBytes): each copy can double the
/// document, so a 1 KB patch would otherwise build gigabytes.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Apply JSON patch operations one at a time, refusing what would build more
/// than the copy limit before it is built. On error `doc` is half-patched;
/// callers patch a copy and drop it.
pub(super) fn apply_json_patch(
    doc: &mut Value,
    ops: &[json_patch::PatchOperation],
    name: &str,
) -> Result<(), ApiError> {
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                ops.len()
            ),
        ));
    }
    let mut copied = 0usize;
    for op in ops {
        if let json_patch::PatchOperation::Copy(c) = op {
            // A missing `from` is left to json_patch to report.
            if let Some(v) = doc.pointer(c.from.as_str()) {
                copied = copied.saturating_add(super::object_store::encoded_len(v));
                if copied > MAX_JSON_PATCH_COPY_BYTES {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the JSON patch for {name:?} could not be applied: Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                        ),
                    ));
                }
            }
        }
        json_patch::patch_unsafe(doc, std::slice::from_ref(op)).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the JSON patch for {name:?} could not be applied: {e}"),
            )
        })?;
    }
    Ok(())
}

/// Upstream's checkName: the patched object must still carry the name and
/// namespace of the URL. A patch that removes them (a merge patch
/// `{"metadata": null}`, a strategic `{"$patch": "delete"}`) is a 400, not a
/// quiet rewrite of the whole object.
fn check_name(patched: &Value, name: &str, ns: Option<&str>) -> Result<(), ApiError> {
    let got = meta_str(patched, "name").unwrap_or("");
    if got != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({got}) does not match the name on the URL ({name})"
        )));
    }
    if let (Some(ns), Some(got)) = (ns, meta_str(patched, "namespace")) {
        if !got.is_empty() && got != ns {
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({got}) does not match the namespace on the request ({ns})"
            )));
        }
    }
    Ok(())
}

pub async fn patch(call: &Call<'_>, name: &str, body: &[u8]) -> Result<Response, ApiError> {
    let Call {
        state,
        ctx,
        r,
        q,
        headers,
    } = *call;
    let def = r.def;
    if content_type(headers) == "application/apply-patch+yaml" {
        return super::apply::apply(call, name, body).await;
    }
    let kind = patch_type(headers)?;
    // Custom resources have no patch strategies (their /scale is a Scale).
    if kind == PatchType::Strategic
        && def.custom.is_some()
        && r.subresource.as_deref() != Some("scale")
    {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    super::apply::check_patch_options(q)?;
    let manager = super::apply::write_manager(ctx, headers, "PatchOptions")?;
    let doc = parse_json(body)?;
    let ns = r.namespace.as_deref();
    let w = Write::to(state, r, name, ctx);
    if r.subresource.as_deref() == Some("scale") {
        return patch_scale(w, kind, &doc, &manager).await;
    }
    let mut warnings: Vec<String> = Vec::new();
    for _ in 0..16 {
        let cur = state.objects.must_get(def, ns, name).await?;
        let patched = apply_patch(kind, &cur.obj, &doc, name)?;
        check_name(&patched, name, ns)?;
        // A resourceVersion in the patch is a precondition, as for PUT.
        if let Some(rv) = parse_rv(meta_str(&patched, "resourceVersion"))? {
            if rv != cur.rev {
                return Err(conflict(def, name));
            }
        }
        if r.subresource.is_none() {
            warnings = check_fields(def, q, &patched)?;
        }
        // A patch that changes the UID is invalid (a PUT's UID is a
        // precondition instead: prepare_update).
        let uid = meta_str(&patched, "uid").filter(|u| !u.is_empty());
        if uid.is_some() && uid != meta_str(&cur.obj, "uid") {
            let cause = crate::api::validation::causes::invalid(
                "metadata.uid",
                &format!("{:?}", uid.unwrap_or_default()),
                "field is immutable",
            );
            return Err(ApiError::invalid(def.group, def.kind, name, vec![cause]));
        }
        let mut new = prepare_update(def, &cur.obj, patched, r.subresource.as_deref())?;
        allocate::on_update(def, &cur.obj, &mut new)?;
        if r.subresource.is_none() {
            super::write::check_valid(def, Some(&cur.obj), &new, name)?;
        }
        super::object_store::check_size_early(def, name, &new)?;
        let now = super::metadata::now_rfc3339();
        let sub = r.subresource.as_deref();
        super::apply::record_update(Some(&cur.obj), &mut new, &manager, sub, &now);
        // None: lost a race with another writer; patch the newer version.
        if let Some(resp) = super::write::write_unless_unchanged(w, &cur, &new, &warnings).await? {
            return Ok(resp);
        }
    }
    Err(conflict(def, name))
}

/// fieldValidation of a patched object: a 400 for values the decoder cannot
/// take and (Strict) unknown fields, else the `Warning` headers to send.
pub(super) fn check_fields(
    def: &ResourceDef,
    q: &Query,
    patched: &Value,
) -> Result<Vec<String>, ApiError> {
    use crate::api::fieldcheck;
    let mode = fieldcheck::Mode::parse(q.get("fieldValidation")).map_err(ApiError::bad_request)?;
    super::crd::check_fields(def, mode, patched, None).map_err(ApiError::bad_request)
}

/// Add one `Warning` header per message (RFC 7234 form, code 299).
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        if let Ok(v) = http::HeaderValue::from_str(w) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

fn conflict(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::conflict(
        def.group,
        def.plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// The `autoscaling/v1` Scale view of a scalable object.
pub fn scale_of(def: &ResourceDef, obj: &Value) -> Value {
    let m = meta(obj).cloned().unwrap_or_default();
    let mut metadata = serde_json::Map::new();
    for key in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(key) {
            metadata.insert(key.into(), v.clone());
        }
    }
    if let Some(paths) = def.custom.and_then(|c| c.get().scale.clone()) {
        let at = |path: &str| {
            super::crd::printer::parse(path)
                .ok()
                .and_then(|p| p.first(obj).cloned())
        };
        let int = |path: &str| at(path).and_then(|v| v.as_i64()).unwrap_or(0);
        let selector = paths
            .label_selector
            .as_deref()
            .and_then(at)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        return json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": metadata,
            "spec": {"replicas": int(&paths.spec_replicas)},
            "status": {"replicas": int(&paths.status_replicas), "selector": selector},
        });
    }
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| crate::api::selector::LabelSelector::from_label_selector_json(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

fn replicas_from_scale(scale: &Value, name: &str, def: &ResourceDef) -> Result<i64, ApiError> {
    let n = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if n < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            vec![crate::api::status::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {n}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        ));
    }
    let _ = def;
    Ok(n)
}

pub async fn get_scale(
    state: &ApiState,
    r: &ResourceRef<'_>,
    name: &str,
) -> Result<Response, ApiError> {
    let cur = state
        .objects
        .must_get(r.def, r.namespace.as_deref(), name)
        .await?;
    Ok(json_response(StatusCode::OK, &scale_of(r.def, &cur.obj)))
}

pub async fn put_scale(
    call: &Call<'_>,
    name: &str,
    body: &Value,
    manager: &str,
) -> Result<Response, ApiError> {
    let Call { state, ctx, r, .. } = *call;
    let def = r.def;
    let ns = r.namespace.as_deref();
    let replicas = replicas_from_scale(body, name, def)?;
    let precondition = parse_rv(meta_str(body, "resourceVersion"))?;
    let cur = state.objects.must_get(def, ns, name).await?;
    if precondition.is_some_and(|rv| rv != cur.rev) {
        return Err(conflict(def, name));
    }
    let w = Write::to(state, r, name, ctx);
    let out = set_replicas(w, &cur, replicas, manager).await?;
    Ok(json_response(StatusCode::OK, &scale_of(def, &out)))
}

async fn set_replicas(
    w: Write<'_>,
    cur: &super::object_store::Stored,
    replicas: i64,
    manager: &str,
) -> Result<Value, ApiError> {
    let (def, name) = (w.def, w.name);
    let mut new = cur.obj.clone();
    match def.custom.and_then(|c| c.get().scale.clone()) {
        Some(paths) => set_at(&mut new, &paths.spec_replicas, json!(replicas)),
        None => {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), json!(replicas));
            }
        }
    }
    let mut new = prepare_update(def, &cur.obj, new, None)?;
    super::write::check_valid(def, Some(&cur.obj), &new, name)?;
    let now = super::metadata::now_rfc3339();
    super::apply::record_update(Some(&cur.obj), &mut new, manager, Some("scale"), &now);
    commit_update(w, &new, cur.rev).await
}

/// Set the field a simple `.a.b.c` path names, making the objects on the
/// way (a CRD's specReplicasPath).
fn set_at(obj: &mut Value, path: &str, value: Value) {
    let keys: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let mut cur = obj;
    for (i, k) in keys.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(m) = cur.as_object_mut() else { return };
        if i + 1 == keys.len() {
            m.insert((*k).to_string(), value);
            return;
        }
        cur = m.entry(*k).or_insert_with(|| json!({}));
    }
}

async fn patch_scale(
    w: Write<'_>,
    kind: PatchType,
    doc: &Value,
    manager: &str,
) -> Result<Response, ApiError> {
    let Write { def, ns, name, .. } = w;
    for _ in 0..16 {
        let cur = w.state.objects.must_get(def, ns, name).await?;
        let scale = apply_patch(kind, &scale_of(def, &cur.obj), doc, name)?;
        let replicas = replicas_from_scale(&scale, name, def)?;
        match set_replicas(w, &cur, replicas, manager).await {
            Ok(out) => return Ok(json_response(StatusCode::OK, &scale_of(def, &out))),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(conflict(def, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_json_patches() {
        let obj = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}});
        let out = apply_patch(
            PatchType::Merge,
            &obj,
            &json!({"metadata": {"labels": {"x": null, "z": "3"}}}),
            "a",
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"y": "2", "z": "3"}));
        let out = apply_patch(
            PatchType::Json,
            &obj,
            &json!([{"op": "replace", "path": "/metadata/labels/x", "value": "9"}]),
            "a",
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"]["x"], "9");
        let err = apply_patch(
            PatchType::Json,
            &obj,
            &json!([{"op": "test", "path": "/metadata/labels/x", "value": "nope"}]),
            "a",
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        let err = apply_patch(PatchType::Json, &obj, &json!({"op": "bad"}), "a").unwrap_err();
        assert_eq!(err.code, 400);
        let err = apply_patch(PatchType::Merge, &obj, &json!([1]), "a").unwrap_err();
        assert_eq!(err.code, 400);
    }

    /// The attack of issue 10: each copy doubles the document.
    fn doubling_patch(copies: usize) -> Value {
        let mut ops = vec![json!({"op": "add", "path": "/data/a", "value": ["xxxxxxxxxxxxxxxx"]})];
        for _ in 0..copies {
            ops.push(json!({"op": "copy", "from": "/data/a", "path": "/data/b"}));
            ops.push(json!({"op": "copy", "from": "/data/b", "path": "/data/a/-"}));
        }
        Value::Array(ops)
    }

    #[test]
    fn json_patch_copies_are_bounded() {
        let obj = json!({"metadata": {"name": "a"}, "data": {}});
        // A few doublings are fine.
        let out = apply_patch(PatchType::Json, &obj, &doubling_patch(3), "a").unwrap();
        assert_eq!(out["data"]["a"].as_array().map(Vec::len), Some(4));
        // 21 doublings would build gigabytes; refused before they are built.
        let err = apply_patch(PatchType::Json, &obj, &doubling_patch(21), "a").unwrap_err();
        assert_eq!(err.code, 422, "{:?}", err.to_status());
        let msg = err.to_status()["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(msg.contains("accumulated size increase of copy"), "{msg}");
        assert!(
            msg.contains(&MAX_JSON_PATCH_COPY_BYTES.to_string()),
            "{msg}"
        );
    }

    #[test]
    fn json_patch_operation_count_is_bounded() {
        let obj = json!({"metadata": {"name": "a"}, "data": {}});
        let op = json!({"op": "test", "path": "/metadata/name", "value": "a"});
        let ok = Value::Array(vec![op.clone(); MAX_JSON_PATCH_OPERATIONS]);
        apply_patch(PatchType::Json, &obj, &ok, "a").unwrap();
        let many = Value::Array(vec![op; MAX_JSON_PATCH_OPERATIONS + 1]);
        let err = apply_patch(PatchType::Json, &obj, &many, "a").unwrap_err();
        assert_eq!(err.code, 413);
        assert_eq!(err.reason, "RequestEntityTooLarge");
    }

    #[test]
    fn json_size_counts_compact_json() {
        let v = json!({"a": [1, "x", null], "b": {"c": true}});
        assert_eq!(
            crate::server::apiserver::object_store::encoded_len(&v),
            serde_json::to_vec(&v).unwrap().len()
        );
    }

    #[test]
    fn patches_that_drop_the_name_are_refused() {
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default", "labels": {"a": "b"}},
            "data": {"k": "v"},
        });
        let merged = apply_patch(PatchType::Merge, &obj, &json!({"metadata": null}), "c").unwrap();
        let err = check_name(&merged, "c", Some("default")).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.to_status()["message"],
            "the name of the object () does not match the name on the URL (c)"
        );
        let smp = apply_patch(
            PatchType::Strategic,
            &obj,
            &json!({"$patch": "delete"}),
            "c",
        )
        .unwrap();
        assert_eq!(
            check_name(&smp, "c", Some("default")).unwrap_err().code,
            400
        );
        // Ordinary patches keep the name and pass.
        let ok = apply_patch(PatchType::Merge, &obj, &json!({"data": {"k": "w"}}), "c").unwrap();
        check_name(&ok, "c", Some("default")).unwrap();
        let moved = apply_patch(
            PatchType::Merge,
            &obj,
            &json!({"metadata": {"namespace": "other"}}),
            "c",
        )
        .unwrap();
        assert_eq!(
            check_name(&moved, "c", Some("default")).unwrap_err().code,
            400
        );
    }
}
