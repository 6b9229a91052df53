//! `autoscaling/v1` HorizontalPodAutoscalers are the `autoscaling/v2`
//! ones seen through the older API (`crate::api::hpa_versions`), as
//! upstream, where v2 is the storage version.

use serde_json::{json, Map, Value};

use super::Strategy;

use crate::api::defaulting::autoscaling::hpa_v2;
use crate::api::hpa_versions::{
    v1_to_v2, v2_to_v1, CONDITIONS_ANNOTATION, CURRENT_METRICS_ANNOTATION,
};
use crate::server::apiserver::registry::StoredAs;

pub static AS_V2: StoredAs = StoredAs {
    group: "autoscaling",
    plural: "horizontalpodautoscalers",
    to_stored,
    from_stored: v2_to_v1,
};

/// What v1 leaves out, v2 defaults (CPU at 80%), as the stored form
/// upstream decodes with v2's defaults.
fn to_stored(obj: &mut Value) {
    v1_to_v2(obj);
    hpa_v2(obj);
}

/// Status starts empty, as the zero status upstream writes
/// (`desiredReplicas` is never omitted in v2). No generation: 1.32's HPAs
/// have none.
pub struct Hpa;
pub static HPA: Hpa = Hpa;

impl Strategy for Hpa {
    fn status_on_create(&self, obj: &mut Map<String, Value>) {
        obj.insert("status".into(), json!({"desiredReplicas": 0}));
        // In v1, status rides in annotations too: none on a new object.
        let v1 = obj.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1");
        if let Some(notes) = obj
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_object_mut)
            .filter(|_| v1)
        {
            for k in V1_STATUS_NOTES {
                notes.remove(*k);
            }
        }
    }

    fn status_annotations(&self, api_version: &str) -> &'static [&'static str] {
        if api_version == "autoscaling/v1" {
            V1_STATUS_NOTES
        } else {
            &[]
        }
    }
}

/// The v1 annotations that hold status (current metrics, conditions).
const V1_STATUS_NOTES: &[&str] = &[CURRENT_METRICS_ANNOTATION, CONDITIONS_ANNOTATION];
