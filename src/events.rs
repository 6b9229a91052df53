//! Events (core/v1) about objects, as kubelet, the scheduler and the
//! controllers record them (the component as source, for kubelet the node
//! as host), so that `kubectl describe` tells what happened. Recording
//! never waits: events go through a bounded queue to
//! one task, and are dropped when it is full (as client-go's broadcaster
//! drops them). A repeat of the same event within ten minutes raises the
//! count of the one already written instead of adding another (client-go's
//! correlator), from a bounded cache.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// Events waiting to be written; more are dropped.
const QUEUE: usize = 1024;
/// Events remembered for aggregation.
const CACHE_MAX: usize = 4096;
/// A repeat after this long is a new event (client-go's window).
const REPEAT_WINDOW: Duration = Duration::from_secs(600);

struct Request {
    object: ObjectReference,
    kind: &'static str,
    reason: String,
    message: String,
}

/// Cheap to clone; each worker holds one.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Request>,
}

/// Who records: `kubelet` on a node, `default-scheduler`,
/// `replicaset-controller`…
#[derive(Clone)]
pub struct Source {
    pub component: &'static str,
    /// The node, for kubelet.
    pub host: Option<String>,
}

impl Recorder {
    /// Start the writer task of kubelet on `node`; it ends when every
    /// Recorder is dropped.
    pub fn spawn(client: kube::Client, node: String) -> Recorder {
        Recorder::spawn_for(
            client,
            Source {
                component: "kubelet",
                host: Some(node),
            },
        )
    }

    /// Start the writer task of `source`.
    pub fn spawn_for(client: kube::Client, source: Source) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_all(client, source, rx));
        Recorder { tx }
    }

    /// Start the writer task of a control-plane component (no host).
    pub fn for_component(client: kube::Client, component: &'static str) -> Recorder {
        Recorder::spawn_for(
            client,
            Source {
                component,
                host: None,
            },
        )
    }

    /// Record an event about the object `object` refers to.
    pub fn object(
        &self,
        object: ObjectReference,
        kind: &'static str,
        reason: &str,
        message: String,
    ) {
        let _ = self.tx.try_send(Request {
            object,
            kind,
            reason: reason.to_string(),
            message,
        });
    }

    /// A recorder whose events go nowhere (tests of what records them).
    #[cfg(test)]
    pub fn discard() -> Recorder {
        Recorder {
            tx: mpsc::channel(1).0,
        }
    }

    /// Record an event about `pod` (about its container `container`, if
    /// given: kubelet's fieldPath `spec.containers{name}`).
    pub fn pod(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: &'static str,
        reason: &str,
        message: String,
    ) {
        let field_path = container.map(|c| {
            let init = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|i| i.iter().any(|x| x.name == c));
            if init {
                format!("spec.initContainers{{{c}}}")
            } else {
                format!("spec.containers{{{c}}}")
            }
        });
        let object = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            field_path,
            ..Default::default()
        };
        let _ = self.tx.try_send(Request {
            object,
            kind,
            reason: reason.to_string(),
            message,
        });
    }
}

/// A reference to `obj` for an event's involvedObject.
pub fn reference<K: kube::Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    reference_as(obj.meta(), &K::api_version(&()), &K::kind(&()))
}

/// A reference to the object `meta` describes, as `api_version` `kind`
/// (for an object read through another type's view).
pub fn reference_as(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    api_version: &str,
    kind: &str,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

type Key = (String, Option<String>, &'static str, String, String);

struct Seen {
    name: String,
    namespace: String,
    count: i32,
    last: Instant,
}

async fn write_all(client: kube::Client, source: Source, mut rx: mpsc::Receiver<Request>) {
    let mut seen: HashMap<Key, Seen> = HashMap::new();
    while let Some(req) = rx.recv().await {
        let namespace = req.object.namespace.clone().unwrap_or_default();
        let key: Key = (
            req.object.uid.clone().unwrap_or_default(),
            req.object.field_path.clone(),
            req.kind,
            req.reason.clone(),
            req.message.clone(),
        );
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        if let Some(s) = seen
            .get_mut(&key)
            .filter(|s| s.last.elapsed() < REPEAT_WINDOW)
        {
            s.count += 1;
            s.last = Instant::now();
            let patch = serde_json::json!({"count": s.count, "lastTimestamp": now});
            let api: Api<Event> = Api::namespaced(client.clone(), &s.namespace);
            match api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                // Gone (expired, or the namespace): written anew below.
                Err(e) => tracing::debug!("updating event {}: {e}", s.name),
            }
        }
        let name = format!(
            "{}.{:x}",
            req.object.name.as_deref().unwrap_or("object"),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: req.object,
            reason: Some(req.reason),
            message: Some(req.message),
            source: Some(EventSource {
                component: Some(source.component.into()),
                host: source.host.clone(),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            type_: Some(req.kind.into()),
            reporting_component: Some(source.component.into()),
            reporting_instance: Some(
                source
                    .host
                    .clone()
                    .unwrap_or_else(|| source.component.to_string()),
            ),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if seen.len() >= CACHE_MAX {
                    // The oldest go first.
                    let cutoff = seen.values().map(|s| s.last).min();
                    seen.retain(|_, s| Some(s.last) != cutoff);
                }
                seen.insert(
                    key,
                    Seen {
                        name,
                        namespace,
                        count: 1,
                        last: Instant::now(),
                    },
                );
            }
            Err(e) => tracing::debug!("writing an event: {e}"),
        }
    }
}
