//! The `Priority` admission plugin: a pod's priority is its
//! PriorityClass's value (or the global default class's, or 0), never what
//! the pod says; and only one class may be the global default.

use serde_json::{json, Value};

use super::{each, forbidden, name_of, shown_name};
use crate::api::status::ApiError;
use crate::server::apiserver::registry::ResourceDef;
use crate::server::apiserver::ApiState;

fn classes(state: &ApiState) -> Result<&ResourceDef, ApiError> {
    state
        .registry
        .find("scheduling.k8s.io", "v1", "priorityclasses")
        .ok_or_else(|| ApiError::internal("priorityclasses are not served"))
}

fn pods(state: &ApiState) -> Result<&ResourceDef, ApiError> {
    state
        .registry
        .find("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))
}

/// The global default class: the lowest value among those marked so
/// (upstream picks that one should several exist).
async fn global_default(state: &ApiState) -> Result<Option<Value>, ApiError> {
    let mut best: Option<Value> = None;
    each(&state.objects, classes(state)?, None, |pc| {
        if pc.get("globalDefault").and_then(Value::as_bool) == Some(true) {
            let lower = best.as_ref().is_none_or(|b| value_of(&pc) < value_of(b));
            if lower {
                best = Some(pc);
            }
        }
    })
    .await?;
    Ok(best)
}

fn value_of(pc: &Value) -> i64 {
    pc.get("value").and_then(Value::as_i64).unwrap_or(0)
}

pub async fn admit_pod(state: &ApiState, pod: &mut Value) -> Result<(), ApiError> {
    let name = shown_name(pod).to_string();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let class = match &named {
        Some(n) => {
            let def = classes(state)?;
            match state.objects.get(def, None, n).await? {
                Some(s) => Some(s.obj),
                None => {
                    return Err(forbidden(
                        pods(state)?,
                        &name,
                        &format!("no PriorityClass with name {n} was found"),
                    ))
                }
            }
        }
        None => global_default(state).await?,
    };
    let (value, policy) = match &class {
        Some(pc) => (
            value_of(pc),
            pc.get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("PreemptLowerPriority")
                .to_string(),
        ),
        None => (0, "PreemptLowerPriority".to_string()),
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != value {
            return Err(forbidden(
                pods(state)?,
                &name,
                &format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"),
            ));
        }
    }
    if let (None, Some(pc)) = (&named, &class) {
        spec.insert("priorityClassName".into(), json!(name_of(pc)));
    }
    spec.insert("priority".into(), json!(value));
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        if given != policy {
            return Err(forbidden(
                pods(state)?,
                &name,
                &format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"),
            ));
        }
    }
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

/// One global default only.
pub async fn admit_class(state: &ApiState, pc: &mut Value) -> Result<(), ApiError> {
    if pc.get("globalDefault").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    if let Some(existing) = global_default(state).await? {
        let other = name_of(&existing);
        if other != name_of(pc) {
            return Err(forbidden(
                classes(state)?,
                name_of(pc),
                &format!("PriorityClass {other} is already marked as default. Only one default can exist"),
            ));
        }
    }
    Ok(())
}
