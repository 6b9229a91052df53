//! The built-in kinds skiff serves.

use super::registry::{ResourceDef, ALL_VERBS};

pub fn builtin_resources() -> Vec<ResourceDef> {
    vec![ResourceDef {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
    }]
}
