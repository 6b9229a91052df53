//! Workload defaults: apps/v1 (`SetDefaults_Deployment`, `_ReplicaSet`,
//! `_StatefulSet`, `_DaemonSet`), batch/v1 (`SetDefaults_Job`, `_CronJob`,
//! and the Job strategy's selector generation) and ReplicationController.

use serde_json::{json, Map, Value};

use super::{child_obj, default_str, default_val, ensure_obj, items_mut, pod};

/// Job labels: the legacy and the `batch.kubernetes.io/` spellings.
const JOB_NAME_LABELS: [&str; 2] = ["job-name", "batch.kubernetes.io/job-name"];
const CONTROLLER_UID_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

fn template_defaults(spec: &mut Value, default_restart: bool) {
    if let Some(t) = ensure_obj(spec, "template") {
        pod::template(t, default_restart);
    }
}

pub fn deployment(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    default_val(spec, "replicas", json!(1));
    if let Some(strategy) = ensure_obj(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = ensure_obj(strategy, "rollingUpdate") {
                default_val(ru, "maxUnavailable", json!("25%"));
                default_val(ru, "maxSurge", json!("25%"));
            }
        }
    }
    default_val(spec, "revisionHistoryLimit", json!(10));
    default_val(spec, "progressDeadlineSeconds", json!(600));
    template_defaults(spec, true);
}

pub fn replica_set(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    default_val(spec, "replicas", json!(1));
    template_defaults(spec, true);
}

pub fn replication_controller(obj: &mut Value) {
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned();
    if let Some(labels) = labels {
        let empty = |v: Option<&Value>| v.and_then(Value::as_object).is_none_or(Map::is_empty);
        if let Some(spec) = ensure_obj(obj, "spec") {
            if empty(spec.get("selector")) {
                spec["selector"] = Value::Object(labels.clone());
            }
        }
        if let Some(meta) = ensure_obj(obj, "metadata") {
            if empty(meta.get("labels")) {
                meta["labels"] = Value::Object(labels);
            }
        }
    }
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    default_val(spec, "replicas", json!(1));
    if let Some(t) = child_obj(spec, "template") {
        pod::template(t, true);
    }
}

pub fn stateful_set(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(us) = ensure_obj(spec, "updateStrategy") {
        let unset = us
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unset {
            us["type"] = json!("RollingUpdate");
            default_val(us, "rollingUpdate", json!({}));
        }
        if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = child_obj(us, "rollingUpdate") {
                default_val(ru, "partition", json!(0));
            }
        }
    }
    if let Some(p) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
        default_str(p, "whenDeleted", "Retain");
        default_str(p, "whenScaled", "Retain");
    }
    default_val(spec, "replicas", json!(1));
    default_val(spec, "revisionHistoryLimit", json!(10));
    template_defaults(spec, true);
    for claim in items_mut(spec, "volumeClaimTemplates") {
        if let Some(m) = ensure_obj(claim, "metadata").and_then(Value::as_object_mut) {
            m.entry("creationTimestamp").or_insert(Value::Null);
        }
        super::core_kinds::pvc(claim);
    }
}

pub fn daemon_set(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    if let Some(us) = ensure_obj(spec, "updateStrategy") {
        default_str(us, "type", "RollingUpdate");
        if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = ensure_obj(us, "rollingUpdate") {
                default_val(ru, "maxUnavailable", json!(1));
                default_val(ru, "maxSurge", json!(0));
            }
        }
    }
    default_val(spec, "revisionHistoryLimit", json!(10));
    template_defaults(spec, true);
}

/// The Job strategy's `generateSelector`: unless manualSelector is true, the
/// template gets the job-name and controller-uid labels and the selector
/// matches the controller-uid.
fn generate_selector(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(uid) = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
    else {
        return;
    };
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let labels = ensure_obj(spec, "template")
        .and_then(|t| ensure_obj(t, "metadata"))
        .and_then(|m| ensure_obj(m, "labels"))
        .and_then(Value::as_object_mut);
    if let Some(labels) = labels {
        for key in JOB_NAME_LABELS {
            labels.entry(key).or_insert_with(|| json!(name));
        }
        for key in CONTROLLER_UID_LABELS {
            labels.entry(key).or_insert_with(|| json!(uid));
        }
    }
    let match_labels = ensure_obj(spec, "selector")
        .and_then(|s| ensure_obj(s, "matchLabels"))
        .and_then(Value::as_object_mut);
    if let Some(ml) = match_labels {
        ml.entry(CONTROLLER_UID_LABELS[1])
            .or_insert_with(|| json!(uid));
    }
}

pub fn job(obj: &mut Value) {
    generate_selector(obj);
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned();
    if let (Some(labels), Some(meta)) = (template_labels, ensure_obj(obj, "metadata")) {
        let empty = meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if empty && !labels.is_empty() {
            meta["labels"] = Value::Object(labels);
        }
    }
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    let unset = |s: &Value, k: &str| s.get(k).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    default_val(spec, "parallelism", json!(1));
    let backoff = if unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i32::MAX as i64
    };
    default_val(spec, "backoffLimit", json!(backoff));
    default_str(spec, "completionMode", "NonIndexed");
    default_val(spec, "suspend", json!(false));
    let replacement = if unset(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    default_str(spec, "podReplacementPolicy", replacement);
    default_val(spec, "manualSelector", json!(false));
    if let Some(pfp) = child_obj(spec, "podFailurePolicy") {
        for rule in items_mut(pfp, "rules") {
            for cond in items_mut(rule, "onPodConditions") {
                default_str(cond, "status", "True");
            }
        }
    }
    template_defaults(spec, false);
}

pub fn cron_job(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    default_str(spec, "concurrencyPolicy", "Allow");
    default_val(spec, "suspend", json!(false));
    default_val(spec, "successfulJobsHistoryLimit", json!(3));
    default_val(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(jt) = ensure_obj(spec, "jobTemplate") {
        if let Some(m) = ensure_obj(jt, "metadata").and_then(Value::as_object_mut) {
            m.entry("creationTimestamp").or_insert(Value::Null);
        }
        if let Some(js) = ensure_obj(jt, "spec") {
            template_defaults(js, false);
        }
    }
}
