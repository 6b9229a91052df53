//! The OpenAPI v3 document of a group/version of custom resources, made
//! from their CRDs as upstream's apiextensions server makes it: a path per
//! collection, object and subresource with the operations served, and the
//! kind's schema (its structural schema with apiVersion, kind and metadata
//! added) tagged with its group/version/kind, so that `kubectl explain`
//! finds it and `kubectl apply` sees that the server validates fields and
//! that a custom resource takes a merge patch, not a strategic one.

use serde_json::{json, Map, Value};

use crate::server::apiserver::registry::ResourceDef;

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";

/// The shared schemas the documents refer to (their closure is taken from
/// the built-in documents' schemas).
pub const COMMON_ROOTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.api.autoscaling.v1.Scale",
];

/// `stable.example.com` → `com.example.stable`, as upstream names them.
fn reversed(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn query(name: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true,
        "schema": {"type": "string", "uniqueItems": true}})
}

fn content(schema: Value, types: &[&str]) -> Value {
    let mut m = Map::new();
    for t in types {
        m.insert((*t).to_string(), json!({ "schema": schema.clone() }));
    }
    Value::Object(m)
}

const READ_TYPES: &[&str] = &["application/json", "application/yaml"];
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// One operation: `action` is upstream's x-kubernetes-action.
fn op(
    def: &ResourceDef,
    gvk: &Value,
    action: &str,
    id: String,
    params: Vec<Value>,
    body: Option<Value>,
    response: Value,
) -> Value {
    let mut o = json!({
        "operationId": id,
        "tags": [format!("{}_{}", reversed(def.group).replace('.', "_"), def.version)],
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": content(response, READ_TYPES)},
            "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if let Some(b) = body {
        o["requestBody"] = json!({"content": b, "required": true});
    }
    o
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        query("dryRun", "string"),
        query("fieldManager", "string"),
        query("fieldValidation", "string"),
    ];
    if patch {
        p.push(query("force", "boolean"));
    }
    p
}

fn list_params() -> Vec<Value> {
    let mut p: Vec<Value> = [
        "continue",
        "fieldSelector",
        "labelSelector",
        "resourceVersion",
        "resourceVersionMatch",
    ]
    .iter()
    .map(|n| query(n, "string"))
    .collect();
    p.push(query("allowWatchBookmarks", "boolean"));
    p.push(query("limit", "integer"));
    p.push(query("timeoutSeconds", "integer"));
    p.push(query("watch", "boolean"));
    p
}

/// The paths and schemas of one custom resource version.
fn resource(def: &ResourceDef, paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    let Some(custom) = def.custom else { return };
    let served = custom.get();
    let name = format!("{}.{}.{}", reversed(def.group), def.version, def.kind);
    let list_name = format!("{name}List");
    let gvk = json!({"group": def.group, "version": def.version, "kind": def.kind});
    let id_kind = format!(
        "{}{}{}",
        upper_camel(def.group),
        upper_camel(def.version),
        def.kind
    );
    let scope = if def.namespaced { "Namespaced" } else { "" };
    let base = format!("/apis/{}/{}", def.group, def.version);
    let (collection, item) = if def.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", def.plural),
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", def.plural),
        )
    } else {
        (
            format!("{base}/{}", def.plural),
            format!("{base}/{}/{{name}}", def.plural),
        )
    };
    let mut scoped = vec![query("pretty", "string")];
    if def.namespaced {
        scoped.insert(0, path_param("namespace"));
    }
    let obj = schema_ref(&name);
    let patch_body = content(schema_ref(&format!("{META}Patch")), PATCH_TYPES);
    let write_body = content(obj.clone(), READ_TYPES);
    paths.insert(
        collection,
        json!({
            "get": op(def, &gvk, "list", format!("list{scope}{id_kind}"), list_params(), None, schema_ref(&list_name)),
            "post": op(def, &gvk, "post", format!("create{scope}{id_kind}"), write_params(false), Some(write_body.clone()), obj.clone()),
            "delete": op(def, &gvk, "deletecollection", format!("deletecollection{scope}{id_kind}"), list_params(), None, schema_ref(&format!("{META}Status"))),
            "parameters": scoped.clone(),
        }),
    );
    if def.namespaced {
        paths.insert(
            format!("{base}/{}", def.plural),
            json!({
                "get": op(def, &gvk, "list", format!("list{id_kind}ForAllNamespaces"), list_params(), None, schema_ref(&list_name)),
                "parameters": [query("pretty", "string")],
            }),
        );
    }
    let mut item_params = vec![path_param("name")];
    item_params.extend(scoped.iter().cloned());
    paths.insert(
        item.clone(),
        json!({
            "get": op(def, &gvk, "get", format!("read{scope}{id_kind}"), vec![query("resourceVersion", "string")], None, obj.clone()),
            "put": op(def, &gvk, "put", format!("replace{scope}{id_kind}"), write_params(false), Some(write_body.clone()), obj.clone()),
            "patch": op(def, &gvk, "patch", format!("patch{scope}{id_kind}"), write_params(true), Some(patch_body.clone()), obj.clone()),
            "delete": op(def, &gvk, "delete", format!("delete{scope}{id_kind}"), vec![query("dryRun", "string"), query("gracePeriodSeconds", "integer"), query("propagationPolicy", "string")], None, schema_ref(&format!("{META}Status"))),
            "parameters": item_params.clone(),
        }),
    );
    if def.has_subresource("status") {
        paths.insert(
            format!("{item}/status"),
            json!({
                "get": op(def, &gvk, "get", format!("read{scope}{id_kind}Status"), vec![query("resourceVersion", "string")], None, obj.clone()),
                "put": op(def, &gvk, "put", format!("replace{scope}{id_kind}Status"), write_params(false), Some(write_body.clone()), obj.clone()),
                "patch": op(def, &gvk, "patch", format!("patch{scope}{id_kind}Status"), write_params(true), Some(patch_body.clone()), obj.clone()),
                "parameters": item_params.clone(),
            }),
        );
    }
    if def.has_subresource("scale") {
        let scale = schema_ref("io.k8s.api.autoscaling.v1.Scale");
        let sgvk = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
        let mut scale_patch = PATCH_TYPES.to_vec();
        scale_patch.push("application/strategic-merge-patch+json");
        paths.insert(
            format!("{item}/scale"),
            json!({
                "get": op(def, &sgvk, "get", format!("read{scope}{id_kind}Scale"), Vec::new(), None, scale.clone()),
                "put": op(def, &sgvk, "put", format!("replace{scope}{id_kind}Scale"), write_params(false), Some(content(scale.clone(), READ_TYPES)), scale.clone()),
                "patch": op(def, &sgvk, "patch", format!("patch{scope}{id_kind}Scale"), write_params(true), Some(content(schema_ref(&format!("{META}Patch")), &scale_patch)), scale),
                "parameters": item_params,
            }),
        );
    }
    let mut kind_schema = served.raw_schema.clone();
    if let Some(m) = kind_schema.as_object_mut() {
        let props = m.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
            p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
            p.insert("metadata".into(), json!({"allOf": [schema_ref(&format!("{META}ObjectMeta"))], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}));
        }
        m.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
    }
    schemas.insert(name.clone(), kind_schema);
    schemas.insert(
        list_name,
        json!({
            "description": format!("{}List is a list of {}", def.kind, def.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "items": {"type": "array", "items": schema_ref(&name),
                    "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/api-conventions.md", def.plural)},
                "kind": {"type": "string"},
                "metadata": {"allOf": [schema_ref(&format!("{META}ListMeta"))]},
            },
            "x-kubernetes-group-version-kind": [{"group": def.group, "version": def.version, "kind": format!("{}List", def.kind)}],
        }),
    );
}

/// `stable.example.com` → `StableExampleCom`, `v1beta1` → `V1beta1`.
fn upper_camel(s: &str) -> String {
    s.split(['.', '-'])
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect()
}

/// The document of `defs` (one group/version's custom resources), with
/// `common` the shared schemas as `"name":{…}` members.
pub fn document(defs: &[&ResourceDef], common: &str, info: &str) -> String {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for def in defs {
        resource(def, &mut paths, &mut schemas);
    }
    let own = serde_json::to_string(&Value::Object(schemas)).unwrap_or_else(|_| "{}".into());
    let own = own
        .strip_prefix('{')
        .and_then(|o| o.strip_suffix('}'))
        .unwrap_or_default();
    let sep = if own.is_empty() || common.is_empty() {
        ""
    } else {
        ","
    };
    format!(
        "{{\"openapi\":\"3.0.0\",\"info\":{info},\"paths\":{},\"components\":{{\"schemas\":{{{own}{sep}{common}}}}}}}",
        Value::Object(paths)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_json() {
        let common = "\"a\":{\"type\":\"object\",\"properties\":{\"x\":{}}}";
        let doc = document(&[], common, "{}");
        let v: Value = serde_json::from_str(&doc).expect("valid JSON");
        assert!(v["components"]["schemas"]["a"].is_object());
    }

    #[test]
    fn names() {
        assert_eq!(reversed("stable.example.com"), "com.example.stable");
        assert_eq!(upper_camel("stable.example.com"), "StableExampleCom");
        assert_eq!(upper_camel("v1beta1"), "V1beta1");
    }
}
