//! The CustomResourceDefinition kind itself: its defaulting and validation
//! (upstream's `apiextensions/validation`, the parts a served CRD depends
//! on), its deletion (held by the cleanup finalizer, marked Terminating),
//! and the served versions a stored CRD makes.

use serde_json::{json, Map, Value};

use super::{printer, schema, ScalePaths, Served, Shape, FINALIZER};
use crate::api::rules::{KindRules, NameRule};
use crate::api::status::Cause;
use crate::api::validation::{self as v, causes};
use crate::server::apiserver::kinds::{DeletePolicy, Strategy};

pub static RULES: KindRules = KindRules {
    name: NameRule::Subdomain,
    name_max: None,
    defaults: Some(defaults),
    validate: Some(validate),
    validate_update: Some(validate_update),
};

/// A CRD's deletion: marked, with the cleanup finalizer and the
/// Terminating condition, until the controller has removed its objects.
pub struct CrdStrategy;

pub static STRATEGY: CrdStrategy = CrdStrategy;

impl Strategy for CrdStrategy {
    fn delete_policy(&self, _obj: &Value, _grace: Option<i64>) -> DeletePolicy {
        DeletePolicy {
            marked_only: true,
            grace: None,
        }
    }

    fn on_mark_deleted(&self, obj: &mut Value) {
        let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        let list = m.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(l) = list.as_array_mut() {
            if !l.iter().any(|f| f == FINALIZER) {
                l.push(json!(FINALIZER));
            }
        }
        set_condition(
            obj,
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
    }
}

/// Set one status condition, keeping its transition time when its status
/// does not change. True when anything changed.
pub fn set_condition(
    obj: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> bool {
    let Some(o) = obj.as_object_mut() else {
        return false;
    };
    let st = o.entry("status").or_insert_with(|| json!({}));
    if !st.is_object() {
        *st = json!({});
    }
    let conds = st
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(conds) = conds else { return false };
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return false;
    };
    let now = crate::server::apiserver::metadata::now_rfc3339();
    match list.iter_mut().find(|c| c["type"] == kind) {
        Some(c) => {
            if c["status"] == status && c["reason"] == reason && c["message"] == message {
                return false;
            }
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => list.push(json!({"type": kind, "status": status,
            "lastTransitionTime": now, "reason": reason, "message": message})),
    }
    true
}

fn defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let conv = spec.entry("conversion").or_insert_with(|| json!({}));
    if let Some(c) = conv.as_object_mut() {
        c.entry("strategy").or_insert_with(|| json!("None"));
    }
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(kind) = kind {
            names
                .entry("singular")
                .or_insert_with(|| json!(kind.to_lowercase()));
            names
                .entry("listKind")
                .or_insert_with(|| json!(format!("{kind}List")));
        }
    }
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Groups only Kubernetes' own API reviews may use.
fn protected_group(group: &str) -> bool {
    ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|d| group == *d || group.ends_with(&format!(".{d}")))
}

fn validate(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let group = str_at(obj, "/spec/group");
    let plural = str_at(obj, "/spec/names/plural");
    let name = str_at(obj, "/metadata/name");
    if name != format!("{plural}.{group}") {
        out.push(causes::invalid(
            "metadata.name",
            &causes::go_str(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        out.push(causes::required("spec.group", ""));
    } else if !v::is_dns1123_subdomain(group).is_empty() {
        for e in v::is_dns1123_subdomain(group) {
            out.push(causes::invalid("spec.group", &causes::go_str(group), &e));
        }
    } else if group.split('.').count() < 2 {
        out.push(causes::invalid(
            "spec.group",
            &causes::go_str(group),
            "should be a domain with at least one dot",
        ));
    }
    if protected_group(group)
        && obj
            .pointer("/metadata/annotations/api-approved.kubernetes.io")
            .is_none()
    {
        out.push(causes::required(
            "metadata.annotations[api-approved.kubernetes.io]",
            "protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
        ));
    }
    let scope = str_at(obj, "/spec/scope");
    if !["Namespaced", "Cluster"].contains(&scope) {
        if scope.is_empty() {
            out.push(causes::required("spec.scope", ""));
        } else {
            out.push(causes::not_supported(
                "spec.scope",
                scope,
                &["Cluster", "Namespaced"],
            ));
        }
    }
    names(obj, &mut out);
    match str_at(obj, "/spec/conversion/strategy") {
        "None" | "" => {}
        "Webhook" => out.push(causes::forbidden(
            "spec.conversion.strategy",
            "Webhook conversion is not supported by skiff; use None (every version \
             stores the same fields) until it is",
        )),
        other => out.push(causes::not_supported(
            "spec.conversion.strategy",
            other,
            &["None", "Webhook"],
        )),
    }
    versions(obj, &mut out);
    out
}

fn names(obj: &Value, out: &mut Vec<Cause>) {
    let label = |field: &str, value: &str, out: &mut Vec<Cause>| {
        if value.is_empty() {
            out.push(causes::required(field, ""));
            return;
        }
        for e in v::is_dns1035_label(value) {
            out.push(causes::invalid(field, &causes::go_str(value), &e));
        }
    };
    label("spec.names.plural", str_at(obj, "/spec/names/plural"), out);
    label(
        "spec.names.singular",
        str_at(obj, "/spec/names/singular"),
        out,
    );
    let kind = str_at(obj, "/spec/names/kind");
    let list_kind = str_at(obj, "/spec/names/listKind");
    for (field, k) in [
        ("spec.names.kind", kind),
        ("spec.names.listKind", list_kind),
    ] {
        if k.is_empty() {
            out.push(causes::required(field, ""));
        } else if !v::is_dns1035_label(&k.to_lowercase()).is_empty() {
            out.push(causes::invalid(
                field,
                &causes::go_str(k),
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            ));
        }
    }
    if !kind.is_empty() && kind == list_kind {
        out.push(causes::invalid(
            "spec.names.listKind",
            &causes::go_str(list_kind),
            "kind and listKind may not be the same or parsing become ambiguous",
        ));
    }
    let list = |ptr: &str| crate::server::apiserver::metadata::string_list(obj.pointer(ptr));
    for (i, s) in list("/spec/names/shortNames").iter().enumerate() {
        label(&format!("spec.names.shortNames[{i}]"), s, out);
    }
    for (i, c) in list("/spec/names/categories").iter().enumerate() {
        label(&format!("spec.names.categories[{i}]"), c, out);
    }
}

fn versions(obj: &Value, out: &mut Vec<Cause>) {
    let list = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if list.is_empty() {
        out.push(causes::invalid(
            "spec.versions",
            "[]",
            "must have exactly one version marked as storage version",
        ));
        return;
    }
    let storage = list.iter().filter(|v| v["storage"] == true).count();
    if storage != 1 {
        out.push(causes::invalid(
            "spec.versions",
            &format!("{}", list.len()),
            "must have exactly one version marked as storage version",
        ));
    }
    if !list.iter().any(|v| v["served"] == true) {
        out.push(causes::invalid(
            "spec.versions",
            &format!("{}", list.len()),
            "must have at least one version marked as served",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, ver) in list.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let name = str_at(ver, "/name");
        if name.is_empty() {
            out.push(causes::required(&format!("{at}.name"), ""));
        } else {
            for e in v::is_dns1035_label(name) {
                out.push(causes::invalid(
                    &format!("{at}.name"),
                    &causes::go_str(name),
                    &e,
                ));
            }
            if !seen.insert(name) {
                out.push(causes::duplicate(
                    &format!("{at}.name"),
                    &causes::go_str(name),
                ));
            }
        }
        match ver.pointer("/schema/openAPIV3Schema") {
            None => out.push(causes::required(
                &format!("{at}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(s) => {
                if let Err(problems) = schema::parse(s, &format!("{at}.schema.openAPIV3Schema")) {
                    out.extend(problems);
                }
            }
        }
        if let Some(scale) = ver.pointer("/subresources/scale") {
            scale_paths(scale, &format!("{at}.subresources.scale"), out);
        }
        for (j, col) in ver
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            column(col, &format!("{at}.additionalPrinterColumns[{j}]"), out);
        }
    }
}

fn scale_paths(scale: &Value, at: &str, out: &mut Vec<Cause>) {
    let check = |field: &str, value: &str, roots: &[&str], required: bool, out: &mut Vec<Cause>| {
        let path = format!("{at}.{field}");
        if value.is_empty() {
            if required {
                out.push(causes::required(&path, ""));
            }
            return;
        }
        if !roots.iter().any(|r| value.starts_with(r)) || printer::parse(value).is_err() {
            out.push(causes::invalid(
                &path,
                &causes::go_str(value),
                &format!("should be a json path under {}", roots.join(" or ")),
            ));
        }
    };
    check(
        "specReplicasPath",
        str_at(scale, "/specReplicasPath"),
        &[".spec."],
        true,
        out,
    );
    check(
        "statusReplicasPath",
        str_at(scale, "/statusReplicasPath"),
        &[".status."],
        true,
        out,
    );
    check(
        "labelSelectorPath",
        str_at(scale, "/labelSelectorPath"),
        &[".spec.", ".status."],
        false,
        out,
    );
}

const COLUMN_TYPES: &[&str] = &["integer", "number", "string", "boolean", "date"];
const COLUMN_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "date",
    "date-time",
    "password",
    "name",
];

fn column(col: &Value, at: &str, out: &mut Vec<Cause>) {
    if str_at(col, "/name").is_empty() {
        out.push(causes::required(&format!("{at}.name"), ""));
    }
    let ty = str_at(col, "/type");
    if ty.is_empty() {
        out.push(causes::required(&format!("{at}.type"), ""));
    } else if !COLUMN_TYPES.contains(&ty) {
        out.push(causes::not_supported(
            &format!("{at}.type"),
            ty,
            COLUMN_TYPES,
        ));
    }
    let format = str_at(col, "/format");
    if !format.is_empty() && !COLUMN_FORMATS.contains(&format) {
        out.push(causes::not_supported(
            &format!("{at}.format"),
            format,
            COLUMN_FORMATS,
        ));
    }
    let path = str_at(col, "/jsonPath");
    if path.is_empty() {
        out.push(causes::required(&format!("{at}.jsonPath"), ""));
    } else if let Err(e) = printer::parse(path) {
        out.push(causes::invalid(
            &format!("{at}.jsonPath"),
            &causes::go_str(path),
            &format!("must be a simple json path: {e}"),
        ));
    }
}

fn validate_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    for (field, ptr) in [("spec.group", "/spec/group"), ("spec.scope", "/spec/scope")] {
        if old.pointer(ptr) != new.pointer(ptr) {
            let value = new.pointer(ptr).map(causes::go_json).unwrap_or_default();
            out.push(causes::invalid(field, &value, "field is immutable"));
        }
    }
    // A version objects may be stored in cannot be dropped from the spec.
    let listed: Vec<&str> = new
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    for (i, stored) in old
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .enumerate()
    {
        if !listed.contains(&stored) {
            out.push(causes::invalid(
                &format!("status.storedVersions[{i}]"),
                &causes::go_str(stored),
                "must appear in spec.versions",
            ));
        }
    }
    out
}

/// The served versions of a stored, valid CRD, each with its shape.
/// Names are the accepted ones the controller settled on.
pub fn served(crd: &Value, names: &Map<String, Value>) -> Vec<(Shape, Served)> {
    let name = str_at(crd, "/metadata/name").to_string();
    let group = str_at(crd, "/spec/group").to_string();
    let get = |k: &str| {
        names
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let list = |k: &str| crate::server::apiserver::metadata::string_list(names.get(k));
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let storage = versions
        .iter()
        .find(|v| v["storage"] == true)
        .map(|v| str_at(v, "/name"))
        .unwrap_or("")
        .to_string();
    let mut out = Vec::new();
    for ver in versions.iter().filter(|v| v["served"] == true) {
        let version = str_at(ver, "/name").to_string();
        let raw_schema = ver
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or(Value::Null);
        let Ok(schema) = schema::parse(&raw_schema, "openAPIV3Schema") else {
            tracing::warn!(crd = %name, %version, "stored CRD version without a valid schema is not served");
            continue;
        };
        let scale = ver.pointer("/subresources/scale").map(|s| ScalePaths {
            spec_replicas: str_at(s, "/specReplicasPath").to_string(),
            status_replicas: str_at(s, "/statusReplicasPath").to_string(),
            label_selector: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
        let deprecation = (ver["deprecated"] == true).then(|| {
            ver.get("deprecationWarning")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{group}/{version} {} is deprecated", get("kind")))
        });
        let shape = Shape {
            group: group.clone(),
            version: version.clone(),
            plural: get("plural"),
            singular: get("singular"),
            kind: get("kind"),
            namespaced: str_at(crd, "/spec/scope") == "Namespaced",
            short_names: list("shortNames"),
            categories: list("categories"),
            status: ver.pointer("/subresources/status").is_some(),
            scale: scale.is_some(),
        };
        out.push((
            shape,
            Served {
                crd: name.clone(),
                schema,
                raw_schema,
                columns: columns(ver),
                scale,
                storage_version: storage.clone(),
                terminating: super::terminating(crd),
                deprecation,
            },
        ));
    }
    out
}

/// The version's printer columns; Age when it declares none.
fn columns(ver: &Value) -> Vec<printer::Column> {
    let declared = ver
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if declared.is_empty() {
        let path = printer::parse(".metadata.creationTimestamp");
        return path
            .map(|path| {
                vec![printer::Column {
                    name: "Age".into(),
                    type_: "date".into(),
                    format: String::new(),
                    description: crate::server::apiserver::table::AGE_DESC.into(),
                    priority: 0,
                    path,
                }]
            })
            .unwrap_or_default();
    }
    declared
        .iter()
        .filter_map(|c| {
            let src = str_at(c, "/jsonPath");
            let path = printer::parse(src).ok()?;
            let description = match str_at(c, "/description") {
                "" => format!("Custom resource definition column (in JSONPath format): {src}"),
                d => d.to_string(),
            };
            Some(printer::Column {
                name: str_at(c, "/name").to_string(),
                type_: str_at(c, "/type").to_string(),
                format: str_at(c, "/format").to_string(),
                description,
                priority: c
                    .get("priority")
                    .and_then(Value::as_u64)
                    .map_or(0, |p| p.min(255) as u8),
                path,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn crontab_crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "cronSpec": {"type": "string"},
                            "replicas": {"type": "integer"}}}}}},
                    "subresources": {"status": {}, "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas"}},
                    "additionalPrinterColumns": [{"name": "Spec", "type": "string",
                        "jsonPath": ".spec.cronSpec"}]}]}})
    }

    fn problems(mut crd: Value) -> Vec<String> {
        defaults(&mut crd);
        validate(&crd)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_valid_crd_is_defaulted_and_served() {
        let mut crd = crontab_crd();
        defaults(&mut crd);
        assert_eq!(crd["spec"]["names"]["singular"], "crontab");
        assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(crd["spec"]["conversion"]["strategy"], "None");
        assert!(validate(&crd).is_empty(), "{:?}", validate(&crd));
        let names = crd["spec"]["names"].as_object().unwrap().clone();
        let served = served(&crd, &names);
        assert_eq!(served.len(), 1);
        let (shape, s) = &served[0];
        assert!(shape.status && shape.scale && shape.namespaced);
        assert_eq!(s.columns[0].name, "Spec");
        assert_eq!(s.storage_version, "v1");
    }

    #[test]
    fn names_groups_and_versions_are_checked() {
        let mut crd = crontab_crd();
        crd["metadata"]["name"] = json!("wrong");
        crd["spec"]["group"] = json!("example");
        crd["spec"]["versions"][0]["storage"] = json!(false);
        crd["spec"]["conversion"] = json!({"strategy": "Webhook"});
        let p = problems(crd);
        assert!(p.contains(&"metadata.name: Invalid value: \"wrong\": must be spec.names.plural+\".\"+spec.group".to_string()), "{p:?}");
        assert!(
            p.iter().any(|x| x.starts_with(
                "spec.group: Invalid value: \"example\": should be a domain with at least one dot"
            )),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|x| x.contains("exactly one version marked as storage")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|x| x.starts_with(
                "spec.conversion.strategy: Forbidden: Webhook conversion is not supported"
            )),
            "{p:?}"
        );
    }

    #[test]
    fn protected_groups_need_approval() {
        let mut crd = crontab_crd();
        crd["spec"]["group"] = json!("stable.k8s.io");
        crd["metadata"]["name"] = json!("crontabs.stable.k8s.io");
        assert!(problems(crd.clone())[0].contains("api-approved.kubernetes.io"));
        crd["metadata"]["annotations"] =
            json!({"api-approved.kubernetes.io": "unapproved, testing"});
        assert!(problems(crd).is_empty());
    }

    #[test]
    fn stored_versions_stay_listed() {
        let mut old = crontab_crd();
        old["status"] = json!({"storedVersions": ["v1beta1", "v1"]});
        let p = validate_update(&old, &crontab_crd());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "status.storedVersions[0]");
    }

    #[test]
    fn deletion_adds_the_finalizer_and_terminating() {
        let mut crd = crontab_crd();
        STRATEGY.on_mark_deleted(&mut crd);
        assert_eq!(crd["metadata"]["finalizers"], json!([FINALIZER]));
        assert_eq!(crd["status"]["conditions"][0]["type"], "Terminating");
    }
}
