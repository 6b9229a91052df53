//! The service-account controller (upstream's `serviceaccount-controller`
//! in kube-controller-manager): a `default` ServiceAccount in every active
//! namespace — those there at start, new ones as they appear, and again
//! when it is deleted. What it is otherwise is left as users make it.

use serde_json::{json, Value};

use super::per_namespace::Kept;

/// The managedFields manager of what the controller writes.
pub const AGENT: &str = "skiff-service-account-controller";

/// The account every namespace has.
pub const DEFAULT: &str = "default";

/// The ServiceAccount to create in `namespace`.
pub fn default_account(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT, "namespace": namespace},
    })
}

pub fn kept() -> Kept {
    Kept {
        what: "default service account",
        plural: "serviceaccounts",
        name: DEFAULT,
        build: Box::new(default_account),
        fix: Box::new(|_| None),
    }
}
