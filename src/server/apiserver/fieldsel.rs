//! Field selectors (`?fieldSelector=`) over objects kept as JSON. Which
//! labels a kind accepts (the apiserver's field label conversion functions)
//! and their values (each registry's `ToSelectableFields`) are the kind's
//! strategy's (`kinds`).

use serde_json::Value;

use super::registry::ResourceDef;
use crate::api::fields::FieldSelector;
use crate::api::status::ApiError;

fn str_at(obj: &Value, ptr: &str) -> String {
    obj.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn field_label_not_supported(field: &str) -> ApiError {
    ApiError::bad_request(format!("field label not supported: {field}"))
}

/// The value of `field` for `obj`, as the object's selectable field set has
/// it. `Ok(None)` for a supported field the object's field set lacks (such
/// as `metadata.namespace` of a cluster-scoped object), which selectors
/// compare as "". An unsupported field is a 400 BadRequest.
// ApiError is the crate's one error type for HTTP answers; boxing it here
// alone would only make callers unbox it.
#[allow(clippy::result_large_err)]
pub fn field_value(
    def: &ResourceDef,
    obj: &Value,
    field: &str,
) -> Result<Option<String>, ApiError> {
    if !def.strategy.field_labels().contains(&field) {
        return Err(field_label_not_supported(field));
    }
    let v = match field {
        "metadata.name" => str_at(obj, "/metadata/name"),
        "metadata.namespace" if def.namespaced => str_at(obj, "/metadata/namespace"),
        "metadata.namespace" => return Ok(None),
        // The kind's own, or else a plain string at the path the label names.
        _ => def
            .strategy
            .field_value(obj, field)
            .unwrap_or_else(|| str_at(obj, &format!("/{}", field.replace('.', "/")))),
    };
    Ok(Some(v))
}

/// Rejects a selector naming a field the kind does not support, before any
/// object is read (as the apiserver does while decoding the request).
#[allow(clippy::result_large_err)]
pub fn validate_fields(def: &ResourceDef, sel: &FieldSelector) -> Result<(), ApiError> {
    match sel
        .terms
        .iter()
        .find(|t| !def.strategy.field_labels().contains(&t.field.as_str()))
    {
        Some(t) => Err(field_label_not_supported(&t.field)),
        None => Ok(()),
    }
}

/// Whether `obj` satisfies `sel`; call [`validate_fields`] first so that
/// unsupported fields are reported rather than treated as not matching.
pub fn matches(def: &ResourceDef, sel: &FieldSelector, obj: &Value) -> bool {
    sel.matches(|f| field_value(def, obj, f).ok().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::apiserver::builtin::builtin_resources;
    use serde_json::json;

    fn def(group: &str, plural: &str) -> ResourceDef {
        builtin_resources()
            .into_iter()
            .find(|r| r.group == group && r.plural == plural)
            .unwrap_or_else(|| panic!("no {plural}"))
    }

    fn sel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn pod_fields() {
        let pods = def("", "pods");
        let pod = json!({
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "hostNetwork": true},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}]}
        });
        let cases: &[(&str, bool)] = &[
            ("metadata.name=web-0", true),
            ("metadata.namespace=default,metadata.name=web-0", true),
            ("spec.nodeName=n1", true),
            ("spec.nodeName!=n1", false),
            ("spec.nodeName=", false),
            ("spec.hostNetwork=true", true),
            ("status.phase=Running", true),
            ("status.podIP=10.42.0.5", true),
            ("spec.schedulerName=", true),
            ("status.nominatedNodeName=", true),
        ];
        for (s, want) in cases {
            let sel = sel(s);
            assert!(validate_fields(&pods, &sel).is_ok(), "{s}");
            assert_eq!(matches(&pods, &sel, &pod), *want, "{s}");
        }
        let no_ip = json!({"metadata": {"name": "p"}, "status": {"podIP": "10.0.0.1"}});
        assert_eq!(
            field_value(&pods, &no_ip, "status.podIP"),
            Ok(Some("10.0.0.1".into()))
        );
        assert_eq!(
            field_value(&pods, &no_ip, "spec.hostNetwork"),
            Ok(Some("false".into()))
        );
    }

    #[test]
    fn unsupported_fields_are_bad_requests() {
        let err = validate_fields(&def("", "pods"), &sel("spec.foo=bar")).err();
        let err = err.unwrap_or_else(|| ApiError::internal("none"));
        assert_eq!(err.code, 400);
        assert_eq!(err.reason, "BadRequest");
        assert_eq!(err.message, "field label not supported: spec.foo");
        assert!(validate_fields(&def("", "namespaces"), &sel("metadata.namespace=x")).is_err());
        assert!(validate_fields(&def("", "nodes"), &sel("metadata.namespace=x")).is_err());
        assert!(validate_fields(&def("apps", "deployments"), &sel("status.replicas=1")).is_err());
        assert!(field_value(&def("", "configmaps"), &json!({}), "data").is_err());
    }

    #[test]
    fn event_fields_used_by_describe() {
        let events = def("", "events");
        let ev = json!({
            "metadata": {"name": "web-0.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default", "uid": "u1"},
            "reason": "Started", "type": "Normal", "reportingComponent": "kubelet"
        });
        let s =
            sel("involvedObject.name=web-0,involvedObject.namespace=default,involvedObject.uid=u1");
        assert!(validate_fields(&events, &s).is_ok());
        assert!(matches(&events, &s, &ev));
        assert!(matches(&events, &sel("source=kubelet,type=Normal"), &ev));
        assert!(!matches(&events, &sel("involvedObject.uid=u2"), &ev));

        let v1 = def("events.k8s.io", "events");
        let ev1 = json!({"metadata": {"name": "e"}, "regarding": {"name": "web-0"}, "reportingController": "kubelet"});
        assert!(matches(
            &v1,
            &sel("regarding.name=web-0,reportingController=kubelet"),
            &ev1
        ));
    }

    #[test]
    fn other_kinds() {
        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        assert!(matches(
            &def("", "nodes"),
            &sel("spec.unschedulable=true"),
            &node
        ));
        let secret = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"});
        assert!(matches(&def("", "secrets"), &sel("type=Opaque"), &secret));
        let ns = json!({"metadata": {"name": "d"}, "status": {"phase": "Active"}});
        assert!(matches(
            &def("", "namespaces"),
            &sel("status.phase=Active"),
            &ns
        ));
        let rs = json!({"metadata": {"name": "r"}, "status": {"replicas": 3}});
        assert!(matches(
            &def("apps", "replicasets"),
            &sel("status.replicas=3"),
            &rs
        ));
        let job = json!({"metadata": {"name": "j"}, "status": {"succeeded": 1}});
        assert!(matches(
            &def("batch", "jobs"),
            &sel("status.successful=1"),
            &job
        ));
        // A cluster-scoped kind compares metadata.namespace as "".
        let pv = json!({"metadata": {"name": "pv1"}});
        assert!(matches(
            &def("", "persistentvolumes"),
            &sel("metadata.namespace="),
            &pv
        ));
    }
}
