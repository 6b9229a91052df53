//! What a Job's policies say about its pods (upstream's pod failure
//! policy, success policy and backoff limit per index), as pure functions
//! of the spec and the pods: the controller acts on the verdicts.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{PodFailurePolicy, SuccessPolicy};
use k8s_openapi::api::core::v1::Pod;

use super::indexes;

/// The failures an index had before a pod of it ran (on the pod, as
/// upstream writes it), so the count survives the pods that made it.
pub const INDEX_FAILURE_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";

/// What a failed pod means for its Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The Job fails at once; the message says which rule matched.
    FailJob(String),
    /// Its index fails at once (backoffLimitPerIndex Jobs).
    FailIndex,
    /// Not a failure: not counted, replaced.
    Ignore,
    /// An ordinary failure.
    Count,
}

/// The first rule of `policy` a failed `pod` matches, as upstream
/// evaluates them; `Count` when none does.
pub fn failure_verdict(policy: &PodFailurePolicy, pod: &Pod) -> Verdict {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    for (i, rule) in policy.rules.iter().enumerate() {
        let why = if let Some(codes) = rule.on_exit_codes.as_ref() {
            let statuses = status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten());
            statuses
                .filter(|c| {
                    codes
                        .container_name
                        .as_deref()
                        .is_none_or(|want| want == c.name)
                })
                .find_map(|c| {
                    let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                    // Containers that succeeded are not failures.
                    if code == 0 {
                        return None;
                    }
                    let listed = codes.values.contains(&code);
                    let hit = match codes.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        _ => false,
                    };
                    hit.then(|| {
                        format!(
                            "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}",
                            c.name, rule.action
                        )
                    })
                })
        } else {
            rule.on_pod_conditions.iter().flatten().find_map(|want| {
                let want_status = want.status.as_str();
                status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == want.type_ && c.status == want_status)
                    .then(|| {
                        format!(
                            "Pod {ns}/{name} has condition {} matching {} rule at index {i}",
                            want.type_, rule.action
                        )
                    })
            })
        };
        let Some(message) = why else {
            continue;
        };
        return match rule.action.as_str() {
            "FailJob" => Verdict::FailJob(message),
            "FailIndex" => Verdict::FailIndex,
            "Ignore" => Verdict::Ignore,
            _ => Verdict::Count,
        };
    }
    Verdict::Count
}

/// The failures of the index `pod` ran for, before it ran.
pub fn index_failures(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_FAILURE_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The first rule of `policy` that the completed indexes satisfy.
pub fn success_rule(policy: &SuccessPolicy, completed: &BTreeSet<i32>) -> Option<usize> {
    policy.rules.iter().position(|rule| {
        match (rule.succeeded_indexes.as_deref(), rule.succeeded_count) {
            (Some(list), count) => {
                let wanted = indexes::parse(list);
                let done = wanted.intersection(completed).count();
                match count {
                    Some(n) => done >= usize::try_from(n).unwrap_or(usize::MAX),
                    None => done == wanted.len(),
                }
            }
            (None, Some(n)) => completed.len() >= usize::try_from(n).unwrap_or(usize::MAX),
            (None, None) => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn failed(code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "d"},
            "status": {"phase": "Failed", "conditions": conditions,
                "containerStatuses": [
                    {"name": "side", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0}}},
                    {"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": code}}}]},
        }))
        .unwrap()
    }

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({"rules": rules})).unwrap()
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let p = policy(json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]));
        assert_eq!(
            failure_verdict(&p, &failed(42, json!([]))),
            Verdict::FailJob(
                "Container main for pod d/p failed with exit code 42 matching FailJob rule at index 1"
                    .into()
            )
        );
        let disrupted = failed(42, json!([{"type": "DisruptionTarget", "status": "True"}]));
        assert_eq!(failure_verdict(&p, &disrupted), Verdict::Ignore);
        // 1 is neither 42 nor outside [1]: no rule, an ordinary failure.
        assert_eq!(failure_verdict(&p, &failed(1, json!([]))), Verdict::Count);
        // A container that exited 0 never matches NotIn.
        let p = policy(
            json!([{"action": "FailJob", "onExitCodes": {"containerName": "side", "operator": "NotIn", "values": [5]}}]),
        );
        assert_eq!(failure_verdict(&p, &failed(3, json!([]))), Verdict::Count);
    }

    #[test]
    fn success_rules_count_the_indexes_named() {
        let p: SuccessPolicy = serde_json::from_value(json!({"rules": [
            {"succeededIndexes": "0,2-3"},
            {"succeededCount": 3},
        ]}))
        .unwrap();
        let done = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        assert_eq!(success_rule(&p, &done(&[0, 2])), None);
        assert_eq!(success_rule(&p, &done(&[0, 2, 3])), Some(0));
        assert_eq!(success_rule(&p, &done(&[1, 4, 5])), Some(1));
    }
}
