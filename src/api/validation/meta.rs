//! `ValidateObjectMeta`: names per kind, labels, annotations, finalizers,
//! owner references and generation.

use serde_json::{Map, Value};

use super::causes::{self, go_json, go_str, go_string_slice};
use super::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain};
use super::{is_qualified_name, is_valid_label_value};
use crate::api::rules::{KindRules, NameRule};
use crate::api::status::Cause;

/// `TotalAnnotationSizeLimitB`.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

fn name_errors(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => is_dns1123_subdomain(name),
        NameRule::Label => is_dns1123_label(name),
        NameRule::Dns1035 => is_dns1035_label(name),
        NameRule::PathSegment => path_segment_errors(name),
    }
}

/// `IsValidPathSegmentName`: what may not be one segment of a URL path.
pub fn path_segment_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name == "." || name == ".." {
        errs.push(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Metadata checks of every object: name (by kind), labels, annotations.
pub fn validate_object_meta(rules: &KindRules, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(meta) = obj.get("metadata").and_then(Value::as_object) else {
        out.push(causes::required(
            "metadata.name",
            "name or generateName is required",
        ));
        return out;
    };
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let generate = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !generate.is_empty() {
        for msg in name_errors(rules.name, &mask_trailing_dash(generate)) {
            out.push(causes::invalid(
                "metadata.generateName",
                &go_str(generate),
                &msg,
            ));
        }
    }
    if name.is_empty() {
        if generate.is_empty() {
            out.push(causes::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for msg in name_errors(rules.name, name) {
            out.push(causes::invalid("metadata.name", &go_str(name), &msg));
        }
        if let Some(max) = rules.name_max.filter(|max| name.len() > *max) {
            out.push(causes::invalid(
                "metadata.name",
                &go_str(name),
                &format!("must be no more than {max} characters"),
            ));
        }
    }
    out.extend(validate_labels(meta.get("labels"), "metadata.labels"));
    out.extend(validate_annotations(meta.get("annotations")));
    out.extend(validate_owner_references(meta.get("ownerReferences")));
    out.extend(validate_finalizers(meta.get("finalizers")));
    if let Some(g) = meta
        .get("generation")
        .and_then(Value::as_i64)
        .filter(|g| *g < 0)
    {
        out.push(causes::invalid(
            "metadata.generation",
            &g.to_string(),
            super::IS_NEGATIVE_ERR,
        ));
    }
    out
}

const FINALIZER_ORPHAN: &str = "orphan";
const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// `ValidateFinalizers`: each a qualified name (`[prefix/]name`, ASCII);
/// `orphan` and `foregroundDeletion` exclude each other.
fn validate_finalizers(finalizers: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(list) = finalizers.and_then(Value::as_array) else {
        return out;
    };
    let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    for f in &names {
        for msg in is_qualified_name(f) {
            out.push(causes::invalid("metadata.finalizers", &go_str(f), &msg));
        }
    }
    if names.contains(&FINALIZER_ORPHAN) && names.contains(&FINALIZER_FOREGROUND) {
        out.push(causes::invalid(
            "metadata.finalizers",
            &go_string_slice(&names),
            &format!("finalizer {FINALIZER_FOREGROUND} and {FINALIZER_ORPHAN} cannot be both set"),
        ));
    }
    out
}

/// `ValidateOwnerReferences`: apiVersion (with a version), kind, name and
/// uid are required, an Event may not own anything, and at most one
/// reference is the controller. Upstream reports the fields without an
/// index (`metadata.ownerReferences.uid`).
fn validate_owner_references(refs: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(list) = refs.and_then(Value::as_array) else {
        return out;
    };
    let path = "metadata.ownerReferences";
    let mut controllers: Vec<String> = Vec::new();
    for r in list {
        let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let api_version = field("apiVersion");
        let kind = field("kind");
        // schema.ParseGroupVersion: "v1", "group/version"; more slashes
        // leave no version at all.
        let version = match api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] => *v,
            [_, v] => *v,
            _ => "",
        };
        if version.is_empty() {
            out.push(causes::invalid(
                &format!("{path}.apiVersion"),
                &go_str(api_version),
                "version must not be empty",
            ));
        }
        for k in ["kind", "name", "uid"] {
            if field(k).is_empty() {
                out.push(causes::invalid(
                    &format!("{path}.{k}"),
                    &go_str(field(k)),
                    "must not be empty",
                ));
            }
        }
        if api_version == "v1" && kind == "Event" {
            out.push(causes::invalid(
                path,
                &go_json(r),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(format!("{kind}/{}", field("name")));
        }
    }
    // One cause for all of them, as upstream words it: a cause per extra
    // controller, each echoing the whole list, made a 3 MiB body cost the
    // square of its size.
    if controllers.len() > 1 {
        out.push(causes::invalid(
            path,
            &go_json(&Value::Array(list.clone())),
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
    out
}

/// A generateName is a prefix, so a trailing dash is allowed: upstream's
/// maskTrailingDash replaces the dash and the byte before it with "a". By
/// characters here, so a multibyte character is never cut (and kept, so the
/// prefix stays as invalid as upstream's cut leaves it).
fn mask_trailing_dash(prefix: &str) -> String {
    match prefix.strip_suffix('-') {
        Some(rest) if !rest.is_empty() => {
            let mut out = rest.to_string();
            if out.ends_with(|c: char| c.is_ascii()) {
                out.pop();
            }
            out.push('a');
            out
        }
        _ => prefix.to_string(),
    }
}

fn sorted(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// `ValidateLabels`: every key a qualified name, every value a label value;
/// the field is the map itself, as upstream reports it.
pub fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(map) = labels.and_then(Value::as_object) else {
        return out;
    };
    for (k, v) in sorted(map) {
        for msg in is_qualified_name(k) {
            out.push(causes::invalid(path, &go_str(k), &msg));
        }
        let v = v.as_str().unwrap_or("");
        for msg in is_valid_label_value(v) {
            out.push(causes::invalid(path, &go_str(v), &msg));
        }
    }
    out
}

/// `ValidateAnnotations`: keys are qualified names (checked lower-cased),
/// 256 KiB in total.
pub fn validate_annotations(annotations: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(map) = annotations.and_then(Value::as_object) else {
        return out;
    };
    let mut total = 0usize;
    for (k, v) in sorted(map) {
        for msg in is_qualified_name(&k.to_lowercase()) {
            out.push(causes::invalid("metadata.annotations", &go_str(k), &msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_MAX_BYTES {
        out.push(causes::too_long(
            "metadata.annotations",
            ANNOTATIONS_MAX_BYTES,
        ));
    }
    out
}
