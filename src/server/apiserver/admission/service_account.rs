//! The `ServiceAccount` admission plugin: a new pod runs as its namespace's
//! `default` ServiceAccount unless it names one, which must exist; and
//! unless it (or its ServiceAccount) opts out, every container gets the
//! account's credentials at /var/run/secrets/kubernetes.io/serviceaccount
//! through a projected volume (`kube-api-access-xxxxx`: a bound token the
//! node renews, the cluster's CA, the namespace), as upstream's plugin adds.

use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};

use super::{forbidden, namespace_of, shown_name};
use crate::api::status::ApiError;
use crate::server::apiserver::ApiState;

pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Upstream's projected token lifetime: an hour and some, so that clients
/// that still read the token once an hour see the renewal.
const TOKEN_SECONDS: i64 = 3607;
/// The `default` account of a namespace made a moment ago is about to be
/// created by its controller: a pod admitted meanwhile waits this long
/// for it rather than failing.
const DEFAULT_ACCOUNT_WAIT: Duration = Duration::from_secs(2);

/// The projected volume upstream's plugin adds.
pub fn api_access_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]
        }
    })
}

/// Five characters of upstream's generated-name alphabet.
fn suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

pub async fn admit_pod(state: &ApiState, pod: &mut Value) -> Result<(), ApiError> {
    // Mirror pods are the node's own, with no API credentials.
    if pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return Ok(());
    }
    let ns = namespace_of(pod).to_string();
    let name = shown_name(pod).to_string();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let account = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(account));
    let def = state
        .registry
        .find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not served"))?;
    let pods = state
        .registry
        .find("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let deadline = tokio::time::Instant::now() + DEFAULT_ACCOUNT_WAIT;
    let sa = loop {
        match state.objects.get(def, Some(&ns), &account).await? {
            Some(sa) => break sa.obj,
            None if account == "default" && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None => {
                return Err(forbidden(
                    pods,
                    &name,
                    &format!(
                        "error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found"
                    ),
                ))
            }
        }
    };
    // A pod that names no image pull Secrets gets its account's.
    let has_own = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if let Some(theirs) = sa.get("imagePullSecrets").and_then(Value::as_array) {
        if !has_own && !theirs.is_empty() {
            let refs: Vec<Value> = theirs
                .iter()
                .filter_map(|r| r.get("name").and_then(Value::as_str))
                .map(|n| json!({"name": n}))
                .collect();
            spec.insert("imagePullSecrets".into(), Value::Array(refs));
        }
    }
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    // A pod that mounts something there itself keeps it.
    let mounted_already = CONTAINER_LISTS.iter().any(|list| {
        spec.get(*list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| {
                c.get("volumeMounts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
    });
    if mounted_already {
        return Ok(());
    }
    let volume = format!("kube-api-access-{}", suffix());
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if !volumes.is_array() {
        *volumes = json!([]);
    }
    if let Some(v) = volumes.as_array_mut() {
        v.push(api_access_volume(&volume));
    }
    let mount = json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH});
    for list in CONTAINER_LISTS {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            if let Some(m) = mounts.as_array_mut() {
                m.push(mount.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_volume_is_upstreams() {
        let v = api_access_volume("kube-api-access-abcde");
        assert_eq!(v["projected"]["defaultMode"], 420);
        assert_eq!(
            v["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            v["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );
        let s = suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
