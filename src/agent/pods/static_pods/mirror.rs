//! Mirror pods: the API's view of this node's static pods. Each static
//! pod gets one, named as it and annotated with its hash, owned by the
//! Node; the worker writes the static pod's status there. A mirror pod
//! that is deleted (`kubectl delete pod`) is made again, and the static pod
//! runs on; one whose static pod is gone, or changed, is removed — as
//! kubelet does.
//!
//! One task does all of it, in turn, from what the pod manager sees of
//! this node's pods (notes); every delete names the UID it means, so a
//! note that is late never removes the wrong pod.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{annotation, is_mirror, key, Statics, HASH_ANNOTATION, MIRROR_ANNOTATION};
use crate::agent::node::register::FIELD_MANAGER;

type Key = (String, String);

/// What the pod manager tells the mirror task.
pub enum Note {
    /// The static pods now.
    Statics(Statics),
    /// This node's pods that are mirrors or named as static pods, as
    /// listed (all of them: what is not here is not in the API).
    Listed(Vec<Pod>),
    /// One of them was added or changed.
    Seen(Pod),
    /// One of them was deleted.
    Deleted(Pod),
}

/// Failed API calls are tried again after this, doubling up to 40 s.
const RETRY: Duration = Duration::from_secs(5);

struct Mirrors {
    pods: Api<Pod>,
    nodes: Api<Node>,
    node_name: String,
    /// The static pods by name.
    wanted: HashMap<Key, Pod>,
    /// What the API holds under those names (and every mirror pod here).
    seen: HashMap<Key, Pod>,
    /// Until the first list, what the API holds is not known.
    listed: bool,
    dirty: BTreeSet<Key>,
    retry_at: Option<Instant>,
    /// Names held by a pod that is not a mirror, already logged.
    blocked: BTreeSet<Key>,
    /// Rounds in a row with a failed call, for the retry's back-off.
    failures: u32,
}

pub async fn run(
    client: kube::Client,
    node_name: String,
    mut notes: mpsc::UnboundedReceiver<Note>,
    cancel: CancellationToken,
) {
    let mut m = Mirrors {
        pods: Api::all(client.clone()),
        nodes: Api::all(client),
        node_name,
        wanted: HashMap::new(),
        seen: HashMap::new(),
        listed: false,
        dirty: BTreeSet::new(),
        retry_at: None,
        blocked: BTreeSet::new(),
        failures: 0,
    };
    loop {
        let retry = m.retry_at;
        tokio::select! {
            _ = cancel.cancelled() => return,
            note = notes.recv() => match note {
                Some(n) => m.note(n),
                None => return,
            },
            _ = async {
                match retry {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            } => {
                m.retry_at = None;
                m.dirty.extend(m.wanted.keys().cloned());
                m.dirty.extend(m.seen.keys().cloned());
            }
        }
        // Everything already told is taken in before acting on it.
        while let Ok(n) = notes.try_recv() {
            m.note(n);
        }
        if m.listed {
            m.reconcile().await;
        }
    }
}

impl Mirrors {
    fn note(&mut self, note: Note) {
        match note {
            Note::Statics(pods) => {
                self.dirty.extend(self.wanted.keys().cloned());
                self.wanted = pods.iter().map(|p| (key(p), p.clone())).collect();
                self.dirty.extend(self.wanted.keys().cloned());
            }
            Note::Listed(pods) => {
                self.dirty.extend(self.seen.keys().cloned());
                self.seen = pods.into_iter().map(|p| (key(&p), p)).collect();
                self.dirty.extend(self.seen.keys().cloned());
                self.dirty.extend(self.wanted.keys().cloned());
                self.listed = true;
            }
            Note::Seen(pod) => {
                let k = key(&pod);
                self.seen.insert(k.clone(), pod);
                self.dirty.insert(k);
            }
            Note::Deleted(pod) => {
                let k = key(&pod);
                if self.seen.get(&k).map(|p| &p.metadata.uid) == Some(&pod.metadata.uid) {
                    self.seen.remove(&k);
                }
                self.dirty.insert(k);
            }
        }
    }

    async fn reconcile(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        let mut failed = false;
        for k in dirty {
            if let Err(e) = self.reconcile_one(&k).await {
                tracing::warn!(pod = %format!("{}/{}", k.0, k.1), "keeping the mirror pod: {e}");
                failed = true;
            }
        }
        if failed {
            self.failures += 1;
            let wait = RETRY * 2u32.saturating_pow(self.failures.min(4) - 1);
            self.retry_at = Some(Instant::now() + wait);
        } else if self.retry_at.is_none() {
            self.failures = 0;
        }
    }

    async fn reconcile_one(&mut self, k: &Key) -> Result<(), kube::Error> {
        let want = self.wanted.get(k).cloned();
        let have = self.seen.get(k).cloned();
        match (want, have) {
            (None, Some(have)) if is_mirror(&have) => {
                self.remove(k, &have).await?;
            }
            (None, _) => {}
            (Some(want), None) => self.create(k, &want).await?,
            (Some(want), Some(have)) => {
                if !is_mirror(&have) {
                    if self.blocked.insert(k.clone()) {
                        tracing::warn!(
                            pod = %format!("{}/{}", k.0, k.1),
                            "a pod that is not this node's mirror pod holds the static pod's name; the static pod runs without one"
                        );
                    }
                    return Ok(());
                }
                self.blocked.remove(k);
                let current = annotation(&have, MIRROR_ANNOTATION)
                    == annotation(&want, HASH_ANNOTATION)
                    && have.metadata.deletion_timestamp.is_none();
                if !current {
                    // Deleted by a user, or the mirror of an older
                    // manifest: replaced by one of the pod that runs.
                    self.remove(k, &have).await?;
                    self.create(k, &want).await?;
                }
            }
        }
        Ok(())
    }

    async fn remove(&mut self, k: &Key, pod: &Pod) -> Result<(), kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.pods.clone().into_client(), &k.0);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&k.1, &params).await {
            Ok(_) => {}
            // Gone already, or another pod by now: not ours to remove.
            Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => {}
            Err(e) => return Err(e),
        }
        tracing::info!(pod = %format!("{}/{}", k.0, k.1), "removed a mirror pod");
        if self.seen.get(k).map(|p| &p.metadata.uid) == Some(&pod.metadata.uid) {
            self.seen.remove(k);
        }
        Ok(())
    }

    async fn create(&mut self, k: &Key, want: &Pod) -> Result<(), kube::Error> {
        let node = self.nodes.get(&self.node_name).await?;
        let mut mirror = want.clone();
        let hash = annotation(want, HASH_ANNOTATION)
            .unwrap_or_default()
            .to_string();
        mirror
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(MIRROR_ANNOTATION.into(), hash);
        mirror.metadata.uid = None;
        mirror.metadata.resource_version = None;
        mirror.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: self.node_name.clone(),
            uid: node.metadata.uid.unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        mirror.status = None;
        let api: Api<Pod> = Api::namespaced(self.pods.clone().into_client(), &k.0);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api.create(&params, &mirror).await {
            Ok(made) => {
                tracing::info!(pod = %format!("{}/{}", k.0, k.1), "made the mirror pod of a static pod");
                self.seen.insert(k.clone(), made);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Someone's pod by that name: look at what it is.
                if let Some(there) = api.get_opt(&k.1).await? {
                    self.seen.insert(k.clone(), there);
                }
                // Looked at again shortly (not at once: a pod held by a
                // finalizer would be removed and made in a tight loop).
                self.retry_at = Some(Instant::now() + RETRY);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
