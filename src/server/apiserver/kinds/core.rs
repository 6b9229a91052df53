//! Small core kinds that differ from a plain kind only in their field
//! labels or status: secrets, and Events in both groups.

use serde_json::Value;

use super::{str_at, Strategy};

pub struct Secret;
pub static SECRET: Secret = Secret;

impl Strategy for Secret {
    fn field_labels(&self) -> &'static [&'static str] {
        &["type", "metadata.namespace", "metadata.name"]
    }
}

/// `v1` Events.
pub struct CoreEvent;
pub static CORE_EVENT: CoreEvent = CoreEvent;

impl Strategy for CoreEvent {
    fn field_labels(&self) -> &'static [&'static str] {
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ]
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "source").then(|| match str_at(obj, "/source/component") {
            s if s.is_empty() => str_at(obj, "/reportingComponent"),
            s => s,
        })
    }
}

/// `events.k8s.io/v1` Events.
pub struct Event;
pub static EVENT: Event = Event;

impl Strategy for Event {
    fn field_labels(&self) -> &'static [&'static str] {
        &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
            "metadata.namespace",
            "metadata.name",
        ]
    }
}
