//! One store of Events seen through two APIs, as upstream: an
//! `events.k8s.io/v1` Event is a core `v1` Event under other field names
//! (`pkg/apis/events/v1` conversions), so `kubectl events` and `describe`,
//! which read core Events, show what new-style recorders write, and the
//! other way round.

use serde_json::{Map, Value};

use crate::server::apiserver::registry::StoredAs;

/// (events.k8s.io/v1 name, core/v1 name) of the fields that differ.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

pub static AS_CORE_EVENTS: StoredAs = StoredAs {
    group: "",
    plural: "events",
    to_stored: to_core,
    from_stored: from_core,
};

fn rename(obj: &mut Value, api_version: &str, from_new: bool) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    let mut moved = Map::new();
    for (new, old) in RENAMED {
        let (from, to) = if from_new { (*new, *old) } else { (*old, *new) };
        // A name of the other form arriving here is not a field of this
        // one: dropped, as decoding into the typed struct would.
        m.remove(to);
        if let Some(v) = m.remove(from) {
            moved.insert(to.to_string(), v);
        }
    }
    m.extend(moved);
    m.insert("apiVersion".into(), Value::from(api_version));
    m.insert("kind".into(), Value::from("Event"));
}

/// events.k8s.io/v1 → v1.
pub fn to_core(obj: &mut Value) {
    rename(obj, "v1", true);
}

/// v1 → events.k8s.io/v1.
pub fn from_core(obj: &mut Value) {
    rename(obj, "events.k8s.io/v1", false);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_two_forms_convert_both_ways() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "d"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "message": "pulled", "reason": "Pulled", "type": "Normal",
            "source": {"component": "kubelet"}, "count": 3,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
            "reportingComponent": "kubelet", "reportingInstance": "n1",
        });
        let mut v1 = core.clone();
        from_core(&mut v1);
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["note"], "pulled");
        assert_eq!(v1["deprecatedCount"], 3);
        assert_eq!(v1["reportingController"], "kubelet");
        assert_eq!(v1["reportingInstance"], "n1");
        assert!(v1.get("involvedObject").is_none() && v1.get("message").is_none());
        let mut back = v1;
        to_core(&mut back);
        assert_eq!(back, core);
    }
}
