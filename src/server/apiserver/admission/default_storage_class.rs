//! The `DefaultStorageClass` admission plugin: a new claim that names no
//! class (the field absent; `""` asks for none) gets the default
//! StorageClass, the one annotated `is-default-class: "true"`. When several
//! are, the newest wins (then the first by name), as upstream since 1.28
//! so that a new default can be rolled out before the old one is unmarked.

use serde_json::{json, Value};

use super::each;
use crate::api::status::ApiError;
use crate::server::apiserver::ApiState;

const DEFAULT: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The annotation claims named their class by before the field existed.
const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

pub async fn admit_pvc(state: &ApiState, pvc: &mut Value) -> Result<(), ApiError> {
    let asked = pvc
        .pointer("/spec/storageClassName")
        .is_some_and(|v| !v.is_null())
        || pvc
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(BETA_CLASS))
            .is_some();
    if asked {
        return Ok(());
    }
    let Some(def) = state
        .registry
        .find("storage.k8s.io", "v1", "storageclasses")
    else {
        return Ok(());
    };
    let mut best: Option<(String, String)> = None;
    each(&state.objects, def, None, |sc| {
        if is_default(&sc) {
            let created = str_at(&sc, "/metadata/creationTimestamp");
            let name = str_at(&sc, "/metadata/name");
            if better(&created, &name, best.as_ref()) {
                best = Some((created, name));
            }
        }
    })
    .await?;
    if let (Some((_, name)), Some(spec)) =
        (best, pvc.get_mut("spec").and_then(Value::as_object_mut))
    {
        spec.insert("storageClassName".into(), json!(name));
    }
    Ok(())
}

fn str_at(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn is_default(sc: &Value) -> bool {
    let a = sc.pointer("/metadata/annotations");
    [DEFAULT, BETA_DEFAULT]
        .iter()
        .any(|k| a.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"))
}

/// Newer (RFC 3339 UTC timestamps sort as text), then lower name.
fn better(created: &str, name: &str, best: Option<&(String, String)>) -> bool {
    match best {
        None => true,
        Some((c, n)) => created > c.as_str() || (created == c.as_str() && name < n.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_default_wins_then_the_first_name() {
        let old = ("2026-01-01T00:00:00Z".to_string(), "a".to_string());
        assert!(better("2026-02-01T00:00:00Z", "z", Some(&old)));
        assert!(!better("2025-12-01T00:00:00Z", "0", Some(&old)));
        assert!(better("2026-01-01T00:00:00Z", "0", Some(&old)));
        assert!(!better("2026-01-01T00:00:00Z", "b", Some(&old)));
        assert!(is_default(
            &json!({"metadata": {"annotations": {DEFAULT: "true"}}})
        ));
        assert!(is_default(
            &json!({"metadata": {"annotations": {BETA_DEFAULT: "true"}}})
        ));
        assert!(!is_default(
            &json!({"metadata": {"annotations": {DEFAULT: "false"}}})
        ));
    }
}
