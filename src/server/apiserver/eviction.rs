//! `pods/eviction` (policy/v1 Eviction): deleting a pod only when its
//! PodDisruptionBudget allows, as upstream's. What `kubectl drain` uses.
//!
//! - A pod that is not running (pending, finished) or already going is
//!   deleted without asking its budget.
//! - Otherwise the one budget whose selector picks the pod decides (more
//!   than one is an error, as upstream): none allowed is a 429 with the
//!   budget's numbers, which kubectl drain retries; allowed, the budget's
//!   `disruptionsAllowed` is taken down by one and the pod recorded in
//!   `disruptedPods` in the same compare-and-swap, then the pod deleted.
//! - An unready pod is evicted without spending the budget when the budget
//!   is met anyway (`unhealthyPodEvictionPolicy: IfHealthyBudget`, the
//!   default) or always (`AlwaysAllow`).

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::admission;
use super::metadata::{meta_str, now_rfc3339};
use super::negotiate::json_response;
use super::write::{commit_update, delete_one, DeleteOptions, Write};
use super::Call;
use crate::api::selector::LabelSelector;
use crate::api::status::{success_status, ApiError, Cause};

/// Pods a budget may hold as disrupted at once (upstream's bound).
const MAX_DISRUPTED: usize = 2000;
/// What a 429 asks kubectl to wait before it tries again.
const RETRY_SECONDS: u32 = 10;
const TRIES: usize = 16;

/// Evict pod `name` of `call`'s namespace, as `eviction` asks.
pub async fn create(call: &Call<'_>, name: &str, eviction: &Value) -> Result<Response, ApiError> {
    let Call { state, ctx, r, .. } = *call;
    let ns = r.namespace.as_deref();
    if let Some(n) = meta_str(eviction, "name").filter(|n| !n.is_empty() && *n != name) {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {name} != {n}"
        )));
    }
    let options = eviction.get("deleteOptions").filter(|o| !o.is_null());
    let mut opts = DeleteOptions::parse(&Default::default(), ctx.dry_run, options)?;
    let pdb_def = state
        .registry
        .find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not served"))?;
    for _ in 0..TRIES {
        let pod = state.objects.must_get(r.def, ns, name).await?.obj;
        let uid = meta_str(&pod, "uid").unwrap_or_default().to_string();
        // Never delete a pod that replaced the one the budget was asked
        // about.
        opts.uid.get_or_insert(uid);
        if !needs_budget(&pod) {
            return delete(call, name, &opts).await;
        }
        let mut budgets = Vec::new();
        admission::each(&state.objects, pdb_def, ns, |pdb| {
            if selects(&pdb, &pod) {
                budgets.push(pdb);
            }
        })
        .await?;
        let found = match budgets.len() {
            0 => return delete(call, name, &opts).await,
            1 => budgets.remove(0),
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ))
            }
        };
        let pdb_name = meta_str(&found, "name").unwrap_or_default().to_string();
        // Read with its revision: the spending below is a compare-and-swap.
        let stored = state.objects.must_get(pdb_def, ns, &pdb_name).await?;
        let pdb = stored.obj;
        let status = pdb.get("status").cloned().unwrap_or(Value::Null);
        let int = |p: &str| status.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        let ready = pod_ready(&pod);
        let policy = pdb
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str)
            .unwrap_or("IfHealthyBudget");
        let met = int("/currentHealthy") >= int("/desiredHealthy") && int("/desiredHealthy") > 0;
        if !ready && (policy == "AlwaysAllow" || met) {
            return delete(call, name, &opts).await;
        }
        let generation = pdb
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if int("/observedGeneration") < generation {
            return Err(too_many(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        let allowed = int("/disruptionsAllowed");
        if allowed < 0 {
            return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
        }
        if allowed == 0 {
            return Err(too_many(format!(
                "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                int("/desiredHealthy"),
                int("/currentHealthy")
            )));
        }
        let disrupted = status.get("disruptedPods").and_then(Value::as_object);
        if disrupted.is_some_and(|d| d.len() >= MAX_DISRUPTED) {
            return Err(ApiError::forbidden(
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        // Spend one disruption, and say which pod took it, in one write.
        let mut spent = pdb.clone();
        spent["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if !spent["status"]["disruptedPods"].is_object() {
            spent["status"]["disruptedPods"] = json!({});
        }
        spent["status"]["disruptedPods"][name] = json!(now_rfc3339());
        let w = Write {
            state,
            def: pdb_def,
            ns,
            name: &pdb_name,
            dry_run: opts.dry_run,
            who: None,
            subresource: None,
        };
        match commit_update(w, &spent, stored.rev).await {
            Ok(_) => return delete(call, name, &opts).await,
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        "",
        "pods",
        name,
        "the disruption budget kept changing; try again",
    ))
}

/// Running pods are disrupted by an eviction; pending, finished or
/// already deleted ones are not.
fn needs_budget(pod: &Value) -> bool {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && !matches!(phase, "Succeeded" | "Failed" | "Pending" | "")
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// A budget picks the pod when its selector does; an empty or missing
/// selector picks nothing (upstream's rule for eviction).
fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(sel) = pdb.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        return false;
    };
    match LabelSelector::from_label_selector_json(sel) {
        Ok(s) if !s.is_empty() => s.matches_object(pod),
        _ => false,
    }
}

fn too_many(why: String) -> ApiError {
    let mut e = ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    e.retry_after_seconds = Some(RETRY_SECONDS);
    e.causes.push(Cause {
        reason: "DisruptionBudget".into(),
        message: why,
        field: String::new(),
    });
    e
}

async fn delete(call: &Call<'_>, name: &str, opts: &DeleteOptions) -> Result<Response, ApiError> {
    let r = call.r;
    delete_one(call.state, r.def, r.namespace.as_deref(), name, opts).await?;
    let mut done = success_status(None);
    done["code"] = json!(201);
    Ok(json_response(StatusCode::CREATED, &done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_pods_need_a_budget_and_which_budgets_pick_them() {
        let running =
            json!({"metadata": {"labels": {"app": "web"}}, "status": {"phase": "Running"}});
        assert!(needs_budget(&running));
        assert!(!needs_budget(&json!({"status": {"phase": "Pending"}})));
        assert!(!needs_budget(&json!({"status": {"phase": "Succeeded"}})));
        assert!(!needs_budget(
            &json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}})
        ));
        let pdb = |sel: Value| json!({"spec": {"selector": sel}});
        assert!(selects(
            &pdb(json!({"matchLabels": {"app": "web"}})),
            &running
        ));
        assert!(!selects(
            &pdb(json!({"matchLabels": {"app": "db"}})),
            &running
        ));
        assert!(!selects(&pdb(json!({})), &running));
        assert!(!selects(&json!({"spec": {}}), &running));
        let e = too_many("The disruption budget b needs 2 healthy pods and has 2 currently".into());
        let s = e.to_status();
        assert_eq!(s["code"], 429);
        assert_eq!(s["details"]["causes"][0]["reason"], "DisruptionBudget");
        assert_eq!(s["details"]["retryAfterSeconds"], 10);
    }
}
