//! The node authorizer's graph, as upstream's Node authorizer keeps it: a
//! node may read a Secret, ConfigMap, PersistentVolumeClaim or
//! ServiceAccount only when a pod bound to it (`spec.nodeName`) uses that
//! object — volumes (secret, configMap, the sources of a projected volume,
//! persistentVolumeClaim, ephemeral), env `valueFrom` and `envFrom` of
//! every container, `imagePullSecrets`, `serviceAccountName` — and may
//! create a token only for the service account of such a pod (which pod
//! the token is bound to is checked by the TokenRequest, as upstream's
//! NodeRestriction). `kube-root-ca.crt` is readable by a node with any pod
//! in its namespace: the projected service-account volume refers to it.
//!
//! Upstream keeps the graph in memory, fed by informers; here each question
//! is answered from the store. Cost: one prefix scan of the pods of the
//! object's namespace (never the whole cluster), read in 1 MiB chunks and
//! each pod decoded only for the fields above, stopping at the first pod
//! that answers yes. A node asks it once per watch of an object its pods
//! share (agent/objects.rs, made again every few minutes) and per token,
//! not per pod and sync, so a namespace's pods per question stays cheap at
//! edge scale; a cache keyed by namespace comes when a
//! measurement asks for it.

use serde::Deserialize;

use super::auth::GraphQuestion;
use super::ApiState;
use crate::api::status::ApiError;
use crate::server::apiserver::object_store::store_error;
use crate::server::store::ListOptions;

/// The ConfigMap the root CA publisher keeps in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// How much of the pods is read at once.
const CHUNK_BYTES: usize = 1 << 20;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SecretVolume {
    secret_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ClaimVolume {
    claim_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Source {
    secret: Option<Named>,
    config_map: Option<Named>,
    service_account_token: Option<serde::de::IgnoredAny>,
    cluster_trust_bundle: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Projected {
    sources: Vec<Source>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Volume {
    name: String,
    secret: Option<SecretVolume>,
    config_map: Option<Named>,
    projected: Option<Projected>,
    persistent_volume_claim: Option<ClaimVolume>,
    ephemeral: Option<serde::de::IgnoredAny>,
    /// The other volume sources, for the references their plugins make
    /// (CSI's nodePublishSecretRef, cephfs/rbd/iscsi/… secretRef, azureFile
    /// secretName), which a mirror pod may not have.
    #[serde(flatten)]
    others: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ValueFrom {
    config_map_key_ref: Option<Named>,
    secret_key_ref: Option<Named>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Env {
    value_from: Option<ValueFrom>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct EnvFrom {
    config_map_ref: Option<Named>,
    secret_ref: Option<Named>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Container {
    env: Vec<Env>,
    env_from: Vec<EnvFrom>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    node_name: String,
    service_account_name: String,
    volumes: Vec<Volume>,
    containers: Vec<Container>,
    init_containers: Vec<Container>,
    ephemeral_containers: Vec<Container>,
    image_pull_secrets: Vec<Named>,
    resource_claims: Vec<serde::de::IgnoredAny>,
}

/// What the graph reads of a pod.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Pod {
    metadata: Named,
    spec: Spec,
}

/// The first kind of API object the pod (as JSON) uses that the graph
/// would open to its node, if any — what NodeRestriction refuses in a
/// mirror pod. The same reading as the graph's, so the two cannot drift
/// apart; a pod that cannot be read that way counts as using something.
pub fn first_reference(pod: &serde_json::Value) -> Option<&'static str> {
    let Ok(p) = Pod::deserialize(pod) else {
        return Some("objects it cannot be checked for");
    };
    let s = &p.spec;
    if !s.service_account_name.is_empty() {
        return Some("serviceaccounts");
    }
    if !s.image_pull_secrets.is_empty() {
        return Some("secrets");
    }
    if !s.resource_claims.is_empty() {
        return Some("resourceclaims");
    }
    for v in &s.volumes {
        if v.secret.is_some() {
            return Some("secrets");
        }
        if v.config_map.is_some() {
            return Some("configmaps");
        }
        if v.persistent_volume_claim.is_some() || v.ephemeral.is_some() {
            return Some("persistentvolumeclaims");
        }
        let plugin_secret = v.others.values().any(|src| {
            ["secretRef", "secretName", "nodePublishSecretRef"]
                .iter()
                .any(|k| src.get(k).is_some_and(|x| !x.is_null()))
        });
        if plugin_secret {
            return Some("secrets");
        }
        for x in v.projected.iter().flat_map(|p| &p.sources) {
            if x.secret.is_some() {
                return Some("secrets");
            }
            if x.config_map.is_some() {
                return Some("configmaps");
            }
            if x.service_account_token.is_some() {
                return Some("serviceaccounts");
            }
            if x.cluster_trust_bundle.is_some() {
                return Some("clustertrustbundles");
            }
        }
    }
    for c in p.containers() {
        for e in c.env.iter().filter_map(|e| e.value_from.as_ref()) {
            if e.secret_key_ref.is_some() {
                return Some("secrets");
            }
            if e.config_map_key_ref.is_some() {
                return Some("configmaps");
            }
        }
        for e in &c.env_from {
            if e.secret_ref.is_some() {
                return Some("secrets");
            }
            if e.config_map_ref.is_some() {
                return Some("configmaps");
            }
        }
    }
    None
}

impl Pod {
    fn containers(&self) -> impl Iterator<Item = &Container> {
        let s = &self.spec;
        s.containers
            .iter()
            .chain(&s.init_containers)
            .chain(&s.ephemeral_containers)
    }

    fn uses_secret(&self, name: &str) -> bool {
        let s = &self.spec;
        s.image_pull_secrets.iter().any(|n| n.name == name)
            || s.volumes.iter().any(|v| {
                v.secret.as_ref().is_some_and(|x| x.secret_name == name)
                    || v.projected.as_ref().is_some_and(|p| {
                        p.sources
                            .iter()
                            .any(|x| x.secret.as_ref().is_some_and(|n| n.name == name))
                    })
            })
            || self.containers().any(|c| {
                c.env.iter().any(|e| {
                    e.value_from
                        .as_ref()
                        .and_then(|v| v.secret_key_ref.as_ref())
                        .is_some_and(|n| n.name == name)
                }) || c
                    .env_from
                    .iter()
                    .any(|e| e.secret_ref.as_ref().is_some_and(|n| n.name == name))
            })
    }

    fn uses_config_map(&self, name: &str) -> bool {
        name == ROOT_CA_CONFIG_MAP
            || self.spec.volumes.iter().any(|v| {
                v.config_map.as_ref().is_some_and(|n| n.name == name)
                    || v.projected.as_ref().is_some_and(|p| {
                        p.sources
                            .iter()
                            .any(|x| x.config_map.as_ref().is_some_and(|n| n.name == name))
                    })
            })
            || self.containers().any(|c| {
                c.env.iter().any(|e| {
                    e.value_from
                        .as_ref()
                        .and_then(|v| v.config_map_key_ref.as_ref())
                        .is_some_and(|n| n.name == name)
                }) || c
                    .env_from
                    .iter()
                    .any(|e| e.config_map_ref.as_ref().is_some_and(|n| n.name == name))
            })
    }

    fn uses_claim(&self, name: &str) -> bool {
        self.spec.volumes.iter().any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == name)
                // A generic ephemeral volume's claim is `<pod>-<volume>`.
                || (v.ephemeral.is_some()
                    && name
                        .strip_prefix(self.metadata.name.as_str())
                        .and_then(|rest| rest.strip_prefix('-'))
                        == Some(v.name.as_str()))
        })
    }

    /// Whether this pod (already known to be on the asking node) answers
    /// yes to `q`.
    fn answers(&self, q: &GraphQuestion<'_>) -> bool {
        match q.resource {
            "secrets" => self.uses_secret(q.name),
            "configmaps" => self.uses_config_map(q.name),
            "persistentvolumeclaims" => self.uses_claim(q.name),
            "serviceaccounts" | "serviceaccounts/token" => self.spec.service_account_name == q.name,
            _ => false,
        }
    }
}

/// Whether the graph lets `q.node` do what it asks (see the module docs).
pub async fn allows(state: &ApiState, q: &GraphQuestion<'_>) -> Result<bool, ApiError> {
    let allowed_verb = match q.resource {
        "serviceaccounts/token" => q.verb == "create",
        _ => matches!(q.verb, "get" | "list" | "watch"),
    };
    if !allowed_verb {
        return Ok(false);
    }
    let Some(def) = state.registry.find("", "v1", "pods") else {
        return Ok(false);
    };
    let prefix = def.namespace_prefix(Some(q.namespace));
    let mut opts = ListOptions {
        max_bytes: Some(CHUNK_BYTES),
        ..Default::default()
    };
    loop {
        let page = state
            .objects
            .list_raw(&prefix, opts.clone())
            .await
            .map_err(|e| store_error(def, "", e))?;
        for kv in &page.items {
            // A pod that does not decode uses nothing.
            let Ok(pod) = serde_json::from_slice::<Pod>(&kv.value) else {
                continue;
            };
            if pod.spec.node_name == q.node && pod.answers(q) {
                return Ok(true);
            }
        }
        match page.items.last() {
            Some(last) if page.more => {
                opts.revision = Some(page.revision);
                opts.start_after = Some(last.key.clone());
            }
            _ => return Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap()
    }

    fn q<'a>(resource: &'static str, name: &'a str) -> GraphQuestion<'a> {
        GraphQuestion {
            node: "n1",
            verb: "get",
            resource,
            namespace: "ns",
            name,
        }
    }

    #[test]
    fn every_kind_of_reference_counts() {
        let p = pod(json!({
            "nodeName": "n1",
            "serviceAccountName": "builder",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol-secret"}},
                {"name": "b", "configMap": {"name": "vol-cm"}},
                {"name": "c", "projected": {"sources": [
                    {"secret": {"name": "proj-secret"}},
                    {"configMap": {"name": "proj-cm"}},
                    {"serviceAccountToken": {"path": "token"}}
                ]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}}
            ],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
            "containers": [{"name": "c", "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                {"name": "C", "value": "plain"}
            ], "envFrom": [{"configMapRef": {"name": "from-cm"}}]}]
        }));
        for name in [
            "pull",
            "vol-secret",
            "proj-secret",
            "init-env",
            "env-secret",
        ] {
            assert!(p.answers(&q("secrets", name)), "{name}");
        }
        for name in ["vol-cm", "proj-cm", "env-cm", "from-cm", ROOT_CA_CONFIG_MAP] {
            assert!(p.answers(&q("configmaps", name)), "{name}");
        }
        assert!(p.answers(&q("persistentvolumeclaims", "data")));
        assert!(p.answers(&q("persistentvolumeclaims", "web-scratch")));
        assert!(p.answers(&q("serviceaccounts", "builder")));
        assert!(p.answers(&q("serviceaccounts/token", "builder")));
        // What it does not use, and a name of one kind asked as another.
        assert!(!p.answers(&q("secrets", "other")));
        assert!(!p.answers(&q("secrets", "vol-cm")));
        assert!(!p.answers(&q("configmaps", "vol-secret")));
        assert!(!p.answers(&q("persistentvolumeclaims", "web-a")));
        assert!(!p.answers(&q("serviceaccounts", "default")));
        assert!(!p.answers(&q("nodes", "n1")));
    }

    #[test]
    fn odd_pods_use_nothing() {
        let p = pod(json!({}));
        assert!(!p.answers(&q("secrets", "")));
        assert!(!p.answers(&q("serviceaccounts", "default")));
        assert!(serde_json::from_value::<Pod>(json!({"spec": {"volumes": 3}})).is_err());
    }
}
