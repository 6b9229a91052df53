//! `autoscaling/v1` HorizontalPodAutoscalers are the `autoscaling/v2`
//! ones seen through the older API (`crate::api::hpa_versions`), as
//! upstream, where v2 is the storage version.

use serde_json::{json, Map, Value};

use super::Strategy;

use crate::api::defaulting::autoscaling::hpa_v2;
use crate::api::hpa_versions::{v1_to_v2, v2_to_v1};
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
    }
}
