//! Event rows (core/v1 and events.k8s.io/v1 print the same: the real server
//! converts both to the internal core Event before printing).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{col, opt_str, str_at, wide, Column, Printer};
use crate::api::duration;

pub const EVENTS: Printer = Printer { columns, cells };

/// `events.k8s.io/v1` Events print as core ones.
pub const EVENTS_V1: Printer = Printer {
    columns,
    cells: |obj, now| cells(&from_events_v1(obj), now),
};

fn columns() -> Vec<Column> {
    vec![
        col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
        col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
        col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        col("Object", "string", "The object that this event is about."),
        wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
        wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
        col("Message", "string", "A human-readable description of the status of this operation."),
        wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
        wide("Count", "string", "The number of times this event has occurred."),
        Column {
            priority: 1,
            ..super::NAME
        },
    ]
}

/// Maps an `events.k8s.io/v1` Event onto the core/v1 field names, as the
/// apiserver's conversion to the internal type does.
fn from_events_v1(obj: &Value) -> Value {
    let mut out = Map::new();
    let mut copy = |from: &str, to: &str| {
        if let Some(v) = obj.get(from) {
            out.insert(to.to_string(), v.clone());
        }
    };
    copy("metadata", "metadata");
    copy("regarding", "involvedObject");
    copy("note", "message");
    copy("reason", "reason");
    copy("type", "type");
    copy("deprecatedSource", "source");
    copy("deprecatedFirstTimestamp", "firstTimestamp");
    copy("deprecatedLastTimestamp", "lastTimestamp");
    copy("deprecatedCount", "count");
    copy("eventTime", "eventTime");
    copy("series", "series");
    copy("reportingController", "reportingComponent");
    copy("reportingInstance", "reportingInstance");
    copy("action", "action");
    copy("related", "related");
    Value::Object(out)
}

fn since(ts: Option<&str>, now: DateTime<Utc>) -> String {
    duration::since(ts.filter(|s| !s.is_empty()), now)
}

fn cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let first_ts = opt_str(ev, "/firstTimestamp").filter(|s| !s.is_empty());
    // Events from the new API only carry eventTime.
    let first_seen = match first_ts {
        Some(t) => since(Some(t), now),
        None => since(opt_str(ev, "/eventTime"), now),
    };
    let mut last_seen = match opt_str(ev, "/lastTimestamp").filter(|s| !s.is_empty()) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = ev.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = ev.get("series").filter(|s| s.is_object()) {
        last_seen = since(opt_str(series, "/lastObservedTime"), now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        // Singleton events of the new API have no count.
        count = 1;
    }
    let kind = str_at(ev, "/involvedObject/kind").to_lowercase();
    let target = match str_at(ev, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = first_non_empty(
        str_at(ev, "/source/component"),
        str_at(ev, "/reportingComponent"),
    );
    let instance = first_non_empty(str_at(ev, "/source/host"), str_at(ev, "/reportingInstance"));
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last_seen),
        json!(str_at(ev, "/type")),
        json!(str_at(ev, "/reason")),
        json!(target),
        json!(str_at(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(ev, "/message").trim()),
        json!(first_seen),
        json!(count),
        super::name(ev),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}
