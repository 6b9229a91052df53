//! Workload kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! ReplicationController, Job and CronJob (selectors, templates, strategies).

use serde_json::{Map, Value};

use super::causes::{self, go_int_or_string, go_json, go_str, go_string_map};
use super::meta::validate_labels;
use super::pod::{self, check_enum, template_labels};
use super::{arr_at, check_non_negative, int_at, obj_at, str_at};
use crate::api::selector::LabelSelector;
use crate::api::status::Cause;

const NOT_MATCHING: &str = "`selector` does not match template `labels`";
const PERCENT_ERR: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

fn spec_of(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

fn template_of(spec: &Value) -> &Value {
    spec.get("template").unwrap_or(&Value::Null)
}

/// `%#v` of a `*metav1.LabelSelector` as the apiserver prints it in errors.
fn go_selector(sel: &Value) -> String {
    let ml = match sel.get("matchLabels").and_then(Value::as_object) {
        Some(m) if m.is_empty() => "map[string]string{}".to_string(),
        Some(m) => go_string_map(Some(m)),
        None => "map[string]string(nil)".to_string(),
    };
    let me = if arr_at(sel, "matchExpressions").is_empty() {
        "[]v1.LabelSelectorRequirement(nil)"
    } else {
        "[]v1.LabelSelectorRequirement{...}"
    };
    format!("v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}")
}

/// `spec.selector`: required, valid, non-empty (`empty_for` names the kind
/// in the message; None skips that check), and matching the template labels.
fn check_selector(spec: &Value, empty_for: Option<&str>, out: &mut Vec<Cause>) {
    let sel = spec.get("selector").unwrap_or(&Value::Null);
    if sel.is_null() {
        out.push(causes::required("spec.selector", ""));
    } else {
        out.extend(validate_labels(
            sel.get("matchLabels"),
            "spec.selector.matchLabels",
        ));
        let n =
            obj_at(sel, "matchLabels").map_or(0, Map::len) + arr_at(sel, "matchExpressions").len();
        if let (0, Some(kind)) = (n, empty_for) {
            out.push(causes::invalid(
                "spec.selector",
                &go_selector(sel),
                &format!("empty selector is invalid for {kind}"),
            ));
        }
    }
    check_selector_matches(sel, template_of(spec), "spec.template", out);
}

fn check_selector_matches(sel: &Value, tmpl: &Value, tmpl_path: &str, out: &mut Vec<Cause>) {
    match LabelSelector::from_label_selector_json(sel) {
        Err(e) => out.push(causes::invalid(
            "spec.selector",
            &go_selector(sel),
            &e.to_string(),
        )),
        Ok(s) if s.is_empty() => {}
        Ok(s) => {
            let empty = Map::new();
            let labels = template_labels(tmpl);
            if !s.matches(labels.unwrap_or(&empty)) {
                out.push(causes::invalid(
                    &format!("{tmpl_path}.metadata.labels"),
                    &go_string_map(labels),
                    NOT_MATCHING,
                ));
            }
        }
    }
}

/// Templates of controllers that keep pods running: restartPolicy Always,
/// no activeDeadlineSeconds.
fn check_always_restart(tmpl: &Value, kind: &str, out: &mut Vec<Cause>) {
    let spec = tmpl.get("spec").unwrap_or(&Value::Null);
    let policy = str_at(spec, "restartPolicy").unwrap_or("");
    if !policy.is_empty() && policy != "Always" {
        out.push(causes::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    if spec
        .get("activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        out.push(causes::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// `ValidatePositiveIntOrPercent`; returns the value (percent or int) if valid.
fn check_int_or_percent(v: Option<&Value>, path: &str, out: &mut Vec<Cause>) -> Option<i64> {
    match v? {
        Value::String(s) => {
            let num = s
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
            match num.and_then(|n| n.parse::<i64>().ok()) {
                Some(n) => {
                    if n > 100 {
                        out.push(causes::invalid(
                            path,
                            &go_int_or_string(&Value::String(s.clone())),
                            "must not be greater than 100%",
                        ));
                    }
                    Some(n)
                }
                None => {
                    out.push(causes::invalid(
                        path,
                        &go_int_or_string(&Value::String(s.clone())),
                        PERCENT_ERR,
                    ));
                    None
                }
            }
        }
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            if n < 0 {
                out.push(causes::invalid(
                    path,
                    &n.to_string(),
                    super::IS_NEGATIVE_ERR,
                ));
            }
            Some(n)
        }
        _ => None,
    }
}

pub fn validate_deployment(obj: &Value) -> Vec<Cause> {
    let spec = spec_of(obj);
    let mut out = Vec::new();
    check_non_negative(spec, "replicas", "spec", &mut out);
    check_selector(spec, Some("deployment"), &mut out);
    let tmpl = template_of(spec);
    out.extend(pod::validate_template(tmpl, "spec.template"));
    check_always_restart(tmpl, "ReplicaSet", &mut out);
    if let Some(strategy) = obj_at(spec, "strategy") {
        let st = Value::Object(strategy.clone());
        match str_at(&st, "type").unwrap_or("") {
            "Recreate" => {
                if st.get("rollingUpdate").is_some_and(|v| !v.is_null()) {
                    out.push(causes::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" | "" => {
                if let Some(ru) = st.get("rollingUpdate").filter(|v| v.is_object()) {
                    // An unset maxSurge defaults to 25%.
                    check_rolling_update(ru, "spec.strategy.rollingUpdate", None, &mut out);
                }
            }
            other => out.push(causes::not_supported(
                "spec.strategy.type",
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    check_non_negative(spec, "minReadySeconds", "spec", &mut out);
    check_non_negative(spec, "revisionHistoryLimit", "spec", &mut out);
    if let Some(pd) = int_at(spec, "progressDeadlineSeconds") {
        check_non_negative(spec, "progressDeadlineSeconds", "spec", &mut out);
        if pd <= int_at(spec, "minReadySeconds").unwrap_or(0) {
            out.push(causes::invalid(
                "spec.progressDeadlineSeconds",
                &pd.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    out
}

pub fn validate_replica_set(obj: &Value) -> Vec<Cause> {
    let spec = spec_of(obj);
    let mut out = Vec::new();
    check_non_negative(spec, "replicas", "spec", &mut out);
    check_non_negative(spec, "minReadySeconds", "spec", &mut out);
    check_selector(spec, Some("deployment"), &mut out);
    let tmpl = template_of(spec);
    out.extend(pod::validate_template(tmpl, "spec.template"));
    check_always_restart(tmpl, "ReplicaSet", &mut out);
    out
}

pub fn validate_replication_controller(obj: &Value) -> Vec<Cause> {
    let spec = spec_of(obj);
    let mut out = Vec::new();
    check_non_negative(spec, "replicas", "spec", &mut out);
    check_non_negative(spec, "minReadySeconds", "spec", &mut out);
    let sel = obj_at(spec, "selector").filter(|m| !m.is_empty());
    match sel {
        None => out.push(causes::required("spec.selector", "")),
        Some(m) => {
            let as_selector = serde_json::json!({ "matchLabels": m });
            check_selector_matches(&as_selector, template_of(spec), "spec.template", &mut out);
        }
    }
    let tmpl = template_of(spec);
    if tmpl.is_null() {
        out.push(causes::required("spec.template", ""));
    } else {
        out.extend(pod::validate_template(tmpl, "spec.template"));
        check_always_restart(tmpl, "ReplicationController", &mut out);
    }
    out
}

pub fn validate_stateful_set(obj: &Value) -> Vec<Cause> {
    let spec = spec_of(obj);
    let mut out = Vec::new();
    if let Some(p) = str_at(spec, "podManagementPolicy").filter(|p| !p.is_empty()) {
        if p != "OrderedReady" && p != "Parallel" {
            out.push(causes::invalid(
                "spec.podManagementPolicy",
                &go_str(p),
                "must be 'OrderedReady' or 'Parallel'",
            ));
        }
    }
    if let Some(us) = spec.get("updateStrategy").filter(|v| v.is_object()) {
        let ru = us.get("rollingUpdate").filter(|v| !v.is_null());
        match str_at(us, "type").unwrap_or("") {
            "OnDelete" => {
                if ru.is_some() {
                    out.push(causes::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        "{...}",
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            "RollingUpdate" | "" => {
                if let Some(ru) = ru {
                    check_non_negative(
                        ru,
                        "partition",
                        "spec.updateStrategy.rollingUpdate",
                        &mut out,
                    );
                }
            }
            other => out.push(causes::invalid(
                "spec.updateStrategy",
                &go_str(other),
                "must be 'RollingUpdate' or 'OnDelete'",
            )),
        }
    }
    if let Some(p) = obj_at(spec, "persistentVolumeClaimRetentionPolicy") {
        let p = Value::Object(p.clone());
        for key in ["whenDeleted", "whenScaled"] {
            check_enum(
                &p,
                key,
                "spec.persistentVolumeClaimRetentionPolicy",
                &["Retain", "Delete"],
                &mut out,
            );
        }
    }
    check_non_negative(spec, "replicas", "spec", &mut out);
    check_non_negative(spec, "minReadySeconds", "spec", &mut out);
    check_selector(spec, Some("statefulset"), &mut out);
    let claims: Vec<&str> = arr_at(spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    let tmpl = template_of(spec);
    out.extend(pod::validate_template_with(tmpl, "spec.template", &claims));
    check_always_restart(tmpl, "StatefulSet", &mut out);
    check_non_negative(spec, "revisionHistoryLimit", "spec", &mut out);
    out
}

pub fn validate_daemon_set(obj: &Value) -> Vec<Cause> {
    let spec = spec_of(obj);
    let mut out = Vec::new();
    check_selector(spec, Some("daemonset"), &mut out);
    let tmpl = template_of(spec);
    out.extend(pod::validate_template(tmpl, "spec.template"));
    check_always_restart(tmpl, "DaemonSet", &mut out);
    check_non_negative(spec, "minReadySeconds", "spec", &mut out);
    if let Some(us) = spec.get("updateStrategy").filter(|v| v.is_object()) {
        match str_at(us, "type").unwrap_or("") {
            "OnDelete" => {}
            "RollingUpdate" | "" => {
                if let Some(ru) = us.get("rollingUpdate").filter(|v| v.is_object()) {
                    // An unset maxSurge defaults to 0.
                    check_rolling_update(
                        ru,
                        "spec.updateStrategy.rollingUpdate",
                        Some(0),
                        &mut out,
                    );
                }
            }
            other => out.push(causes::not_supported(
                "spec.updateStrategy.type",
                other,
                &["RollingUpdate", "OnDelete"],
            )),
        }
    }
    check_non_negative(spec, "revisionHistoryLimit", "spec", &mut out);
    out
}

/// The rules that tie a Job's policies to its completion mode, restart
/// policy and to each other (upstream's `validateJobSpec`).
fn job_policies(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let set = |k: &str| spec.get(k).is_some_and(|v| !v.is_null());
    let indexed = str_at(spec, "completionMode") == Some("Indexed");
    if let Some(v) = spec.get("backoffLimitPerIndex").filter(|v| !v.is_null()) {
        if !indexed {
            out.push(causes::invalid(
                &format!("{path}.backoffLimitPerIndex"),
                &go_json(v),
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(v) = spec.get("maxFailedIndexes").filter(|v| !v.is_null()) {
        if !set("backoffLimitPerIndex") {
            out.push(causes::required(
                &format!("{path}.backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
        let over = v
            .as_i64()
            .zip(spec.get("completions").and_then(Value::as_i64))
            .is_some_and(|(m, c)| m > c);
        if over {
            out.push(causes::invalid(
                &format!("{path}.maxFailedIndexes"),
                &go_json(v),
                "must be less than or equal to completions",
            ));
        }
    }
    if let Some(v) = spec.get("successPolicy").filter(|v| !v.is_null()) {
        if !indexed {
            out.push(causes::invalid(
                &format!("{path}.successPolicy"),
                &go_json(v),
                "requires indexed completion mode",
            ));
        }
    }
    let Some(pfp) = spec.get("podFailurePolicy").filter(|v| !v.is_null()) else {
        return;
    };
    let restart = template_of(spec)
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if restart != "Never" {
        out.push(causes::invalid(
            &format!("{path}.template.spec.restartPolicy"),
            &go_str(restart),
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    if let Some(p) = str_at(spec, "podReplacementPolicy").filter(|p| *p != "Failed") {
        out.push(causes::not_supported(
            &format!("{path}.podReplacementPolicy"),
            p,
            &["Failed"],
        ));
    }
    for (i, rule) in pfp
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if str_at(rule, "action") == Some("FailIndex") && !set("backoffLimitPerIndex") {
            out.push(causes::invalid(
                &format!("{path}.podFailurePolicy.rules[{i}].action"),
                &go_str("FailIndex"),
                "requires the backoffLimitPerIndex to be set",
            ));
        }
    }
}

/// `validateJobSpec` at `path` ("spec" for Jobs, "spec.jobTemplate.spec"
/// for CronJobs).
fn validate_job_spec(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        check_non_negative(spec, key, path, out);
    }
    check_enum(
        spec,
        "completionMode",
        path,
        &["NonIndexed", "Indexed"],
        out,
    );
    if str_at(spec, "completionMode") == Some("Indexed")
        && spec.get("completions").is_none_or(Value::is_null)
    {
        out.push(causes::required(
            &format!("{path}.completions"),
            "when completion mode is Indexed",
        ));
    }
    check_enum(
        spec,
        "podReplacementPolicy",
        path,
        &["TerminatingOrFailed", "Failed"],
        out,
    );
    job_policies(spec, path, out);
    let tmpl = template_of(spec);
    out.extend(pod::validate_template(tmpl, &format!("{path}.template")));
    let policy = tmpl
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    let rp = format!("{path}.template.spec.restartPolicy");
    match policy {
        "" | "Always" => out.push(causes::required(
            &rp,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {}
        other => out.push(causes::not_supported(&rp, other, &["OnFailure", "Never"])),
    }
}

pub fn validate_job(obj: &Value) -> Vec<Cause> {
    let spec = spec_of(obj);
    let mut out = Vec::new();
    validate_job_spec(spec, "spec", &mut out);
    check_selector(spec, None, &mut out);
    out
}

pub fn validate_cron_job(obj: &Value) -> Vec<Cause> {
    let spec = spec_of(obj);
    let mut out = Vec::new();
    match str_at(spec, "schedule").unwrap_or("") {
        "" => out.push(causes::required("spec.schedule", "")),
        s => {
            if let Err(e) = crate::api::cron::parse_standard(s) {
                out.push(causes::invalid("spec.schedule", &go_str(s), &e));
            }
        }
    }
    if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
        if let Err(e) = crate::api::cron::zone(tz) {
            out.push(causes::invalid("spec.timeZone", &go_str(tz), &e));
        }
    }
    check_non_negative(spec, "startingDeadlineSeconds", "spec", &mut out);
    match str_at(spec, "concurrencyPolicy").unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => out.push(causes::required("spec.concurrencyPolicy", "")),
        other => out.push(causes::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let job_spec = spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null);
    validate_job_spec(job_spec, "spec.jobTemplate.spec", &mut out);
    check_non_negative(spec, "successfulJobsHistoryLimit", "spec", &mut out);
    check_non_negative(spec, "failedJobsHistoryLimit", "spec", &mut out);
    out
}

/// maxUnavailable and maxSurge of a rolling update at `p`: each an int or a
/// percentage, and not both 0. `unset_surge`: what an absent maxSurge means
/// when it is a number (None: a non-zero default such as 25%).
fn check_rolling_update(ru: &Value, p: &str, unset_surge: Option<i64>, out: &mut Vec<Cause>) {
    let mu = check_int_or_percent(
        ru.get("maxUnavailable"),
        &format!("{p}.maxUnavailable"),
        out,
    );
    let ms = check_int_or_percent(ru.get("maxSurge"), &format!("{p}.maxSurge"), out);
    let surge = match ru.get("maxSurge") {
        None | Some(Value::Null) => unset_surge,
        Some(_) => ms,
    };
    if mu == Some(0) && surge == Some(0) {
        out.push(causes::invalid(
            &format!("{p}.maxUnavailable"),
            &go_int_or_string(ru.get("maxUnavailable").unwrap_or(&Value::Null)),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}
