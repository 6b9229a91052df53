//! OpenAPI v3 documents. kubectl's `apply`/`create -f` first checks that the
//! object's PATCH operation takes `fieldValidation`; then it leaves field
//! validation to the server. Paths and operations are generated from the
//! registry (schemas come with a later issue).

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use super::negotiate::json_response;
use super::registry::{Registry, ResourceDef};
use crate::api::status::ApiError;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": true})
}

fn operation(def: &ResourceDef, action: &str, op_prefix: &str, params: &[&str]) -> Value {
    let gvk = json!({"group": def.group, "version": def.version, "kind": def.kind});
    let params: Vec<Value> = params.iter().map(|p| query_param(p)).collect();
    json!({
        "operationId": format!("{op_prefix}{}", def.kind),
        "parameters": params,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    })
}

fn document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let mut any = false;
    for def in registry.in_group_version(group, version) {
        any = true;
        let base = format!("/{}", gv_path(group, version));
        let coll = if def.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", def.plural)
        } else {
            format!("{base}/{}", def.plural)
        };
        let write_params = ["dryRun", "fieldManager", "fieldValidation"];
        paths.insert(
            coll.clone(),
            json!({
                "get": operation(def, "list", "list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
                "post": operation(def, "post", "create", &write_params),
                "delete": operation(def, "deletecollection", "deletecollection", &["labelSelector", "fieldSelector"]),
            }),
        );
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({
                "get": operation(def, "get", "read", &[]),
                "put": operation(def, "put", "replace", &write_params),
                "patch": operation(def, "patch", "patch", &["dryRun", "fieldManager", "fieldValidation", "force"]),
                "delete": operation(def, "delete", "delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
    }
    if !any {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::discovery::KUBE_GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn hash(doc: &Value) -> String {
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    hex::encode_upper(Sha512::digest(&bytes))
}

pub fn root(registry: &Registry) -> Response {
    let mut paths = Map::new();
    for (g, v) in registry.group_versions() {
        if let Some(doc) = document(registry, g, v) {
            let p = gv_path(g, v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
            );
        }
    }
    json_response(StatusCode::OK, &json!({"paths": paths}))
}

pub fn group_version(
    registry: &Registry,
    group: &str,
    version: &str,
) -> Result<Response, ApiError> {
    let doc = document(registry, group, version).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })?;
    Ok(json_response(StatusCode::OK, &doc))
}
