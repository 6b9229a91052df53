//! Pod spec defaults (`SetDefaults_PodSpec`, `_Container`, `_Probe`,
//! `_Volume`, …), used for Pods and for every pod template.

use serde_json::{json, Value};

use super::{child_obj, default_str, default_val, ensure_obj, items_mut};

/// A PodTemplate: the defaults of its `template`.
pub fn pod_template(obj: &mut Value) {
    if let Some(t) = child_obj(obj, "template") {
        template(t, true);
    }
}

/// A Pod: the pod spec defaults plus the Pod-only ones (`SetDefaults_Pod`).
pub fn pod(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    pod_spec(spec, true);
    default_val(spec, "enableServiceLinks", json!(true));
    for key in ["containers", "initContainers"] {
        for c in items_mut(spec, key) {
            requests_from_limits(c);
        }
    }
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for c in items_mut(spec, key) {
                for p in items_mut(c, "ports") {
                    if let Some(cp) = p.get("containerPort").cloned() {
                        let unset = p
                            .get("hostPort")
                            .is_none_or(|h| h.is_null() || h.as_i64() == Some(0));
                        if unset {
                            p["hostPort"] = cp;
                        }
                    }
                }
            }
        }
    }
}

/// A pod template (`spec.template` of workloads). Job templates get no
/// restartPolicy default: they must say OnFailure or Never.
pub fn template(t: &mut Value, default_restart: bool) {
    if let Some(meta) = ensure_obj(t, "metadata") {
        // A template's metadata is a Go struct whose zero creationTimestamp
        // is serialized as null: real clusters show `creationTimestamp: null`.
        if let Some(m) = meta.as_object_mut() {
            m.entry("creationTimestamp").or_insert(Value::Null);
        }
    }
    if let Some(spec) = ensure_obj(t, "spec") {
        pod_spec(spec, default_restart);
    }
}

/// Limits given without requests become the requests (Pods only, not templates).
fn requests_from_limits(c: &mut Value) {
    let Some(limits) = c
        .get("resources")
        .and_then(|r| r.get("limits"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let Some(res) = ensure_obj(c, "resources") else {
        return;
    };
    if let Some(req) = ensure_obj(res, "requests").and_then(Value::as_object_mut) {
        for (k, v) in limits {
            req.entry(k).or_insert(v);
        }
    }
}

pub fn pod_spec(spec: &mut Value, default_restart: bool) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    if default_restart {
        default_str(spec, "restartPolicy", "Always");
    }
    default_val(spec, "terminationGracePeriodSeconds", json!(30));
    default_val(spec, "securityContext", json!({}));
    default_str(spec, "schedulerName", "default-scheduler");
    // The deprecated serviceAccount mirrors serviceAccountName.
    let sa_name = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let sa_old = spec
        .get("serviceAccount")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(name) = sa_name.or(sa_old) {
        spec["serviceAccountName"] = json!(name);
        spec["serviceAccount"] = json!(name);
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in items_mut(spec, key) {
            container(c);
        }
    }
    for v in items_mut(spec, "volumes") {
        volume(v);
    }
}

/// `SetDefaults_Container` and what nests in it.
fn container(c: &mut Value) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let policy = if image_tag(image) == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    default_str(c, "imagePullPolicy", policy);
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    default_val(c, "resources", json!({}));
    for p in items_mut(c, "ports") {
        default_str(p, "protocol", "TCP");
    }
    for e in items_mut(c, "env") {
        if let Some(fr) = child_obj(e, "valueFrom").and_then(|vf| child_obj(vf, "fieldRef")) {
            default_str(fr, "apiVersion", "v1");
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child_obj(c, key) {
            probe(p);
        }
    }
    if let Some(lc) = child_obj(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(h) = child_obj(lc, key).and_then(|h| child_obj(h, "httpGet")) {
                http_get(h);
            }
        }
    }
}

/// The tag kubelet pulls: the explicit tag, "latest" when the reference has
/// neither tag nor digest, None for a digest-only or unparseable reference.
fn image_tag(image: &str) -> Option<&str> {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo_last, tag) = match last.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (last, None),
    };
    // Repository names are lower case; the parser rejects anything else.
    let repo_part = &name[..name.len() - last.len()];
    let path_after_host = repo_part.split_once('/').map_or("", |(_, rest)| rest);
    if repo_last.chars().any(|c| c.is_ascii_uppercase())
        || path_after_host.chars().any(|c| c.is_ascii_uppercase())
    {
        return None;
    }
    match (tag, digest) {
        (Some(t), _) => Some(t),
        (None, None) => Some("latest"),
        (None, Some(_)) => None,
    }
}

/// `SetDefaults_Probe` (zero counts as unset) and its handler's defaults.
fn probe(p: &mut Value) {
    for (key, value) in [
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        let unset = p
            .get(key)
            .is_none_or(|v| v.is_null() || v.as_i64() == Some(0));
        if unset {
            p[key] = json!(value);
        }
    }
    if let Some(h) = child_obj(p, "httpGet") {
        http_get(h);
    }
}

fn http_get(h: &mut Value) {
    default_str(h, "path", "/");
    default_str(h, "scheme", "HTTP");
}

/// `SetDefaults_Volume` (no source means emptyDir) and the file modes of
/// secret/configMap/downwardAPI/projected volumes (0644).
fn volume(v: &mut Value) {
    let has_source = v
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, val)| k != "name" && !val.is_null()));
    if !has_source {
        v["emptyDir"] = json!({});
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(src) = child_obj(v, key) {
            default_val(src, "defaultMode", json!(420));
        }
    }
    if let Some(hp) = child_obj(v, "hostPath") {
        default_val(hp, "type", json!(""));
    }
    if let Some(d) = child_obj(v, "downwardAPI") {
        for item in items_mut(d, "items") {
            if let Some(fr) = child_obj(item, "fieldRef") {
                default_str(fr, "apiVersion", "v1");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn image_tags() {
        for (image, tag) in [
            ("busybox", Some("latest")),
            ("busybox:latest", Some("latest")),
            ("busybox:1.36", Some("1.36")),
            ("nginx:1.27-alpine", Some("1.27-alpine")),
            ("localhost:5000/app", Some("latest")),
            ("localhost:5000/app:v2", Some("v2")),
            ("registry.k8s.io/pause:3.10", Some("3.10")),
            ("busybox@sha256:abcd", None),
            ("busybox:1.36@sha256:abcd", Some("1.36")),
            ("", None),
            ("Busybox", None),
            ("REGISTRY.example.com/app", Some("latest")),
        ] {
            assert_eq!(image_tag(image), tag, "{image}");
        }
    }
}
