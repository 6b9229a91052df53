//! Namespaces: created Active; a delete only marks them Terminating, and
//! they go once the namespace controller has emptied them and removed its
//! `spec.finalizers` entry. The system namespaces cannot be deleted.

use serde_json::{json, Map, Value};

use super::{DeletePolicy, Strategy};
use crate::api::status::ApiError;

pub struct Namespace;

pub static NAMESPACE: Namespace = Namespace;

/// Namespaces the cluster itself needs, which the apiserver refuses to delete.
const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

impl Strategy for Namespace {
    fn is_namespace(&self) -> bool {
        true
    }

    fn status_on_create(&self, obj: &mut Map<String, Value>) {
        obj.insert("status".into(), json!({"phase": "Active"}));
    }

    fn check_delete(&self, name: &str) -> Result<(), ApiError> {
        if IMMORTAL.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        Ok(())
    }

    fn delete_policy(&self, _obj: &Value, _grace_seconds: Option<i64>) -> DeletePolicy {
        DeletePolicy {
            marked_only: true,
            grace: None,
        }
    }

    fn on_mark_deleted(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            o.insert("status".into(), json!({"phase": "Terminating"}));
        }
    }

    /// The namespace controller's "kubernetes" entry in `spec.finalizers`
    /// holds it until its content is gone.
    fn waits_before_removal(&self, obj: &Value) -> bool {
        obj.get("spec")
            .and_then(|s| s.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }

    /// Namespaces have their own conversion, without `metadata.namespace`.
    fn field_labels(&self) -> &'static [&'static str] {
        &["status.phase", "metadata.name"]
    }
}
