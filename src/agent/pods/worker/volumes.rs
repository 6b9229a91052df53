//! The worker's side of volumes and of the objects env reads: it holds the
//! ConfigMaps and Secrets the pod references in the node's watches
//! (agent/objects.rs) and asks for the tokens its projections need, sets
//! the volumes up before any container starts, and writes their files
//! again every `VOLUME_SYNC` from what the watches saw (kubelet's sync
//! period is a minute; a ConfigMap edit shows up within this much here).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};

use super::{pod_key, Worker};
use crate::agent::pods::spec::{self, KIND_CONFIG_MAP, KIND_SECRET};
use crate::agent::pods::volumes::{self, PodVolumes, Referenced, Sources, TokenKey};
use crate::runtime::pod::PodRuntime;

/// How often a running pod's configMap, secret, downwardAPI and projected
/// volumes are written again from the API.
pub const VOLUME_SYNC: Duration = Duration::from_secs(10);
/// First retry of a volume set-up that failed; doubling up to the next.
const MOUNT_RETRY_FIRST: Duration = Duration::from_millis(500);
const MOUNT_RETRY_MAX: Duration = Duration::from_secs(120);

/// A token issued for one of the pod's projections.
pub struct Issued {
    token: String,
    issued: Instant,
    ttl: Duration,
}

impl Issued {
    /// kubelet renews a token past 80 % of its life, or a day old.
    fn due(&self) -> bool {
        let age = self.issued.elapsed();
        age > self.ttl.mul_f64(0.8) || age > Duration::from_secs(86_400)
    }
}

/// Lets go of the pod's watched objects when its worker ends, however it
/// ends (the agent stopping aborts it).
pub(super) struct Holding<R: PodRuntime> {
    pub ctx: std::sync::Arc<super::WorkerCtx<R>>,
    pub uid: String,
}

impl<R: PodRuntime> Drop for Holding<R> {
    fn drop(&mut self) {
        self.ctx.config_maps.release(&self.uid);
        self.ctx.secrets.release(&self.uid);
        self.ctx.wanted_images.remove(&self.uid);
        self.ctx.admitted.release(&self.uid);
    }
}

/// Why the objects could not be read (not a missing object: that is the
/// volume's or the container's error, with kubelet's message).
#[derive(Debug, thiserror::Error)]
#[error("reading {kind} {name:?}: {why}")]
pub struct FetchError {
    kind: &'static str,
    name: String,
    why: String,
}

impl<R: PodRuntime> Worker<R> {
    /// Read what the pod's volumes and env reference (and tokens that are
    /// missing or due for renewal).
    pub(super) async fn fetch_sources(&mut self, pod: &Pod) -> Result<Sources, FetchError> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let wanted = Referenced::of(pod);
        let mut config_maps = wanted.config_maps.clone();
        let mut secrets = wanted.secrets.clone();
        for (kind, name) in spec::referenced_objects(pod) {
            match kind.as_str() {
                KIND_CONFIG_MAP => config_maps.insert(name),
                KIND_SECRET => secrets.insert(name),
                _ => false,
            };
        }
        let mut src = Sources {
            allocatable: self.ctx.allocatable.clone(),
            ..Sources::default()
        };
        self.ctx.config_maps.hold(&self.uid, &ns, &config_maps);
        self.ctx.secrets.hold(&self.uid, &ns, &secrets);
        for name in config_maps {
            match self.ctx.config_maps.get(&ns, &name).await {
                Ok(Some(cm)) => {
                    src.config_maps.insert(name, cm);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(FetchError {
                        kind: "configmap",
                        name,
                        why: e.to_string(),
                    })
                }
            }
        }
        for name in secrets {
            match self.ctx.secrets.get(&ns, &name).await {
                Ok(Some(s)) => {
                    src.secrets.insert(name, s);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(FetchError {
                        kind: "secret",
                        name,
                        why: e.to_string(),
                    })
                }
            }
        }
        self.tokens.retain(|k, _| wanted.tokens.contains(k));
        for key in &wanted.tokens {
            if self.tokens.get(key).is_none_or(Issued::due) {
                match request_token(self.ctx.client.clone(), pod, key).await {
                    Ok(issued) => {
                        self.tokens.insert(key.clone(), issued);
                    }
                    // An older token still valid keeps serving.
                    Err(e) if self.tokens.contains_key(key) => {
                        tracing::warn!(pod = %pod_key(pod), "renewing a service account token: {e}");
                    }
                    Err(e) => {
                        return Err(FetchError {
                            kind: "serviceaccount token",
                            name: service_account(pod),
                            why: e.to_string(),
                        })
                    }
                }
            }
        }
        src.tokens = self
            .tokens
            .iter()
            .map(|(k, t)| (k.clone(), t.token.clone()))
            .collect();
        Ok(src)
    }
}

async fn request_token(
    client: kube::Client,
    pod: &Pod,
    key: &TokenKey,
) -> Result<Issued, kube::Error> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ServiceAccount> = Api::namespaced(client, &ns);
    let (audience, seconds) = key;
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: if audience.is_empty() {
                Vec::new()
            } else {
                vec![audience.clone()]
            },
            expiration_seconds: Some(*seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let made = api
        .create_token_request(&service_account(pod), &PostParams::default(), &req)
        .await?;
    let token = made.status.map(|s| s.token).unwrap_or_default();
    Ok(Issued {
        token,
        issued: Instant::now(),
        ttl: Duration::from_secs((*seconds).max(600) as u64),
    })
}

impl<R: PodRuntime> Worker<R> {
    /// Set the pod's volumes up; false (and a retry set) when they cannot
    /// be yet.
    pub(super) async fn set_up_volumes(&mut self, pod: &Pod) -> bool {
        let src = match self.fetch_sources(pod).await {
            Ok(src) => src,
            Err(e) => {
                self.mount_failed(pod, e.to_string());
                return false;
            }
        };
        let root = self.ctx.root.clone();
        let p = pod.clone();
        let made = tokio::task::spawn_blocking(move || PodVolumes::set_up(&root, &p, &src)).await;
        match made {
            Ok(Ok(v)) => {
                self.volumes = Some(v);
                self.mount_failures = 0;
                self.mount_retry = None;
                self.volume_sync = volumes::has_files(pod).then(|| Instant::now() + VOLUME_SYNC);
                true
            }
            Ok(Err(e)) => {
                self.mount_failed(pod, e.to_string());
                false
            }
            Err(e) => {
                self.mount_failed(pod, e.to_string());
                false
            }
        }
    }

    fn mount_failed(&mut self, pod: &Pod, message: String) {
        self.mount_failures += 1;
        let wait = MOUNT_RETRY_FIRST
            .saturating_mul(1 << self.mount_failures.min(16))
            .min(MOUNT_RETRY_MAX);
        self.mount_retry = Some(Instant::now() + wait);
        tracing::warn!(pod = %pod_key(pod), "FailedMount: {message}");
        self.ctx.events.pod(
            pod,
            None,
            crate::events::WARNING,
            "FailedMount",
            message.clone(),
        );
        self.mount_error = Some(message);
    }

    /// Write the volumes' files again when due.
    pub(super) async fn sync_volumes(&mut self, pod: &Pod) {
        if self.volume_sync.is_none_or(|t| Instant::now() < t) {
            return;
        }
        self.volume_sync = Some(Instant::now() + VOLUME_SYNC);
        let Some(v) = self.volumes.clone() else {
            return;
        };
        let src = match self.fetch_sources(pod).await {
            Ok(src) => src,
            Err(e) => return tracing::warn!(pod = %pod_key(pod), "refreshing volumes: {e}"),
        };
        let p = pod.clone();
        match tokio::task::spawn_blocking(move || v.refresh(&p, &src)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(pod = %pod_key(pod), "{e}"),
            Err(e) => tracing::warn!(pod = %pod_key(pod), "refreshing volumes: {e}"),
        }
    }
}

/// The objects env reads, in the shape spec.rs takes.
pub(super) fn env_objects(src: &Sources) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, cm) in &src.config_maps {
        // Only `data`: kubelet reads no binaryData into env.
        let data: BTreeMap<String, String> = cm.data.clone().unwrap_or_default();
        out.insert((KIND_CONFIG_MAP.to_string(), name.clone()), data);
    }
    for (name, s) in &src.secrets {
        let data = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        out.insert((KIND_SECRET.to_string(), name.clone()), data);
    }
    out
}

fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::ByteString;

    #[test]
    fn env_reads_a_config_maps_data_but_not_its_binary_data() {
        let mut src = Sources::default();
        src.config_maps.insert(
            "cm".into(),
            ConfigMap {
                data: Some([("text".to_string(), "t".to_string())].into()),
                binary_data: Some([("blob".to_string(), ByteString(vec![1, 2]))].into()),
                ..Default::default()
            },
        );
        let objects = env_objects(&src);
        let cm = &objects[&(KIND_CONFIG_MAP.to_string(), "cm".to_string())];
        assert_eq!(cm.get("text").map(String::as_str), Some("t"));
        assert!(!cm.contains_key("blob"));
    }
}
