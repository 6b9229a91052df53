//! The ConfigMaps and Secrets this node's pods use, each kept current by a
//! watch of its own (a `metadata.name` field selector), shared by every pod
//! that refers to it and stopped when the last one lets go: kubelet's
//! watch-based object manager.
//!
//! Pods read their objects from here. A refresh of a pod's volumes costs no
//! API call, and the API server answers the node authorizer's question
//! once per watch rather than once per pod and object every sync (each
//! answer scans the namespace's pods: with a GET per pod per sync, that was
//! quadratic in the pods of a namespace).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// How long a watch runs before it is made again (the server ends it then).
const WATCH_TIMEOUT_SECS: u32 = 290;
/// How long a reader waits for a new watch's first list.
const FIRST_SYNC: Duration = Duration::from_secs(15);
/// Back-off of a watch that fails: from the first, doubling to the last.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Objects of a kind watched at most. The agent's client speaks HTTP/1.1,
/// so each watch holds a connection of its own, and the API server takes a
/// bounded number from one address: past this, objects are read with GETs
/// (a pod referring to hundreds of ConfigMaps cannot cut its node off).
const MAX_WATCHES: usize = 48;
/// How long a GET of an object past the cap is used for.
const POLL_TTL: Duration = Duration::from_secs(10);
/// A watch that lasted this long ended normally.
const LIVED: Duration = Duration::from_secs(10);

/// What is known of one object.
#[derive(Debug)]
pub(crate) enum Seen<K> {
    /// Its first list has not answered yet.
    Unknown,
    Present(Arc<K>),
    Absent,
    /// Its first list failed (a watch failing later keeps what was seen:
    /// kubelet too serves the last known object while the API is away).
    Failing(String),
}

impl<K> Clone for Seen<K> {
    fn clone(&self) -> Self {
        match self {
            Seen::Unknown => Seen::Unknown,
            Seen::Present(k) => Seen::Present(k.clone()),
            Seen::Absent => Seen::Absent,
            Seen::Failing(e) => Seen::Failing(e.clone()),
        }
    }
}

type Key = (String, String);

enum Kept<K> {
    /// By a watch of its own.
    Watched {
        seen: watch::Receiver<Seen<K>>,
        task: tokio::task::JoinHandle<()>,
    },
    /// Past `MAX_WATCHES`: read with a GET when what was read is older than
    /// `POLL_TTL` (kubelet's TTL-caching manager).
    Polled {
        read: Option<(std::time::Instant, Seen<K>)>,
    },
}

struct Entry<K> {
    holders: usize,
    kept: Kept<K>,
}

struct Table<K> {
    objects: HashMap<Key, Entry<K>>,
    /// Holder (a pod's UID) → the objects it holds.
    held: HashMap<String, BTreeSet<Key>>,
}

/// The watched objects of one kind.
pub struct Watched<K> {
    client: kube::Client,
    table: Mutex<Table<K>>,
}

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Api(String),
    #[error("timed out waiting for the object to be listed")]
    Timeout,
}

impl<K> Watched<K>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    pub fn new(client: kube::Client) -> Watched<K> {
        Watched {
            client,
            table: Mutex::new(Table {
                objects: HashMap::new(),
                held: HashMap::new(),
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table<K>> {
        // A panic while the table was held leaves it consistent enough: the
        // worst is a watch kept or one made again.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make `names` in `ns` the objects `holder` holds: watches start for
    /// the ones nobody held, and stop for the ones nobody holds any more.
    pub fn hold(&self, holder: &str, ns: &str, names: &BTreeSet<String>) {
        let wanted: BTreeSet<Key> = names.iter().map(|n| (ns.to_string(), n.clone())).collect();
        let mut t = self.table();
        let before = t.held.remove(holder).unwrap_or_default();
        for key in wanted.difference(&before) {
            match t.objects.get_mut(key) {
                Some(e) => e.holders += 1,
                None => {
                    let watches = t
                        .objects
                        .values()
                        .filter(|e| matches!(e.kept, Kept::Watched { .. }))
                        .count();
                    let kept = if watches < MAX_WATCHES {
                        let (tx, seen) = watch::channel(Seen::Unknown);
                        let api: Api<K> = Api::namespaced(self.client.clone(), &key.0);
                        let task = tokio::spawn(follow(api, key.1.clone(), tx));
                        Kept::Watched { seen, task }
                    } else {
                        Kept::Polled { read: None }
                    };
                    t.objects.insert(key.clone(), Entry { holders: 1, kept });
                }
            }
        }
        for key in before.difference(&wanted) {
            drop_one(&mut t, key);
        }
        if !wanted.is_empty() {
            t.held.insert(holder.to_string(), wanted);
        }
    }

    /// Everything `holder` holds is let go.
    pub fn release(&self, holder: &str) {
        let mut t = self.table();
        for key in t.held.remove(holder).unwrap_or_default() {
            drop_one(&mut t, &key);
        }
    }

    /// The object `name` in `ns` as last seen (None: it does not exist),
    /// waiting for its first list when its watch is new. It must be held.
    pub async fn get(&self, ns: &str, name: &str) -> Result<Option<K>, ReadError> {
        let key = (ns.to_string(), name.to_string());
        let kept = self.table().objects.get(&key).map(|e| match &e.kept {
            Kept::Watched { seen, .. } => Ok(seen.clone()),
            Kept::Polled { read } => Err(read
                .as_ref()
                .filter(|(at, _)| at.elapsed() < POLL_TTL)
                .map(|(_, s)| s.clone())),
        });
        let mut rx = match kept {
            None => return Err(ReadError::Api(format!("{name:?} is not being watched"))),
            Some(Ok(rx)) => rx,
            Some(Err(Some(fresh))) => return answer(fresh),
            Some(Err(None)) => return self.poll(key).await,
        };
        let known = tokio::time::timeout(FIRST_SYNC, rx.wait_for(|s| !matches!(s, Seen::Unknown)))
            .await
            .map_err(|_| ReadError::Timeout)?
            .map_err(|_| ReadError::Api("the watch stopped".into()))?
            .clone();
        answer(known)
    }

    /// Read an object kept by GETs, and keep what was read.
    async fn poll(&self, key: Key) -> Result<Option<K>, ReadError> {
        let api: Api<K> = Api::namespaced(self.client.clone(), &key.0);
        let seen = match api.get_opt(&key.1).await {
            Ok(Some(k)) => Seen::Present(Arc::new(k)),
            Ok(None) => Seen::Absent,
            Err(e) => return Err(ReadError::Api(e.to_string())),
        };
        if let Some(Entry {
            kept: Kept::Polled { read },
            ..
        }) = self.table().objects.get_mut(&key)
        {
            *read = Some((std::time::Instant::now(), seen.clone()));
        }
        answer(seen)
    }

    /// How many objects are kept, watched or read with GETs.
    pub fn watched(&self) -> usize {
        self.table().objects.len()
    }

    /// How many watches run.
    pub fn watches(&self) -> usize {
        self.table()
            .objects
            .values()
            .filter(|e| matches!(e.kept, Kept::Watched { .. }))
            .count()
    }
}

fn answer<K: Clone>(seen: Seen<K>) -> Result<Option<K>, ReadError> {
    match seen {
        Seen::Present(k) => Ok(Some((*k).clone())),
        Seen::Absent => Ok(None),
        Seen::Failing(e) => Err(ReadError::Api(e)),
        Seen::Unknown => Err(ReadError::Timeout),
    }
}

fn drop_one<K>(t: &mut Table<K>, key: &Key) {
    if let Some(e) = t.objects.get_mut(key) {
        e.holders -= 1;
        if e.holders == 0 {
            if let Some(Entry {
                kept: Kept::Watched { task, .. },
                ..
            }) = t.objects.remove(key)
            {
                task.abort();
            }
        }
    }
}

impl<K> Drop for Watched<K> {
    fn drop(&mut self) {
        let t = self.table.get_mut().unwrap_or_else(|p| p.into_inner());
        for e in t.objects.values() {
            if let Kept::Watched { task, .. } = &e.kept {
                task.abort();
            }
        }
    }
}

/// List the one object, then watch it, again and again, until aborted.
pub(crate) async fn follow<K>(api: Api<K>, name: String, tx: watch::Sender<Seen<K>>)
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let fields = format!("metadata.name={name}");
    let mut wait = RETRY_FIRST;
    loop {
        let began = std::time::Instant::now();
        match once(&api, &fields, &tx).await {
            // A watch that ran a while ended as watches do: again at once.
            Ok(()) if began.elapsed() > LIVED => wait = RETRY_FIRST,
            // One ended at once (a server or proxy that closes them): not
            // in a tight loop.
            Ok(()) => {
                tokio::time::sleep(jitter(wait)).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
            Err(e) => {
                tracing::debug!(object = %name, "watching: {e}; again in {wait:?}");
                tx.send_if_modified(|s| match s {
                    Seen::Unknown | Seen::Failing(_) => {
                        *s = Seen::Failing(e.to_string());
                        true
                    }
                    _ => false,
                });
                tokio::time::sleep(jitter(wait)).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

async fn once<K>(api: &Api<K>, fields: &str, tx: &watch::Sender<Seen<K>>) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let list = api.list(&ListParams::default().fields(fields)).await?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    tx.send_replace(match list.items.into_iter().next() {
        Some(k) => Seen::Present(Arc::new(k)),
        None => Seen::Absent,
    });
    let params = WatchParams::default()
        .fields(fields)
        .timeout(WATCH_TIMEOUT_SECS);
    let mut events = api.watch(&params, &rv).await?.boxed();
    while let Some(event) = events.try_next().await? {
        match event {
            WatchEvent::Added(k) | WatchEvent::Modified(k) => {
                tx.send_replace(Seen::Present(Arc::new(k)));
            }
            WatchEvent::Deleted(_) => {
                tx.send_replace(Seen::Absent);
            }
            WatchEvent::Bookmark(_) => {}
            // Expired: list again at once.
            WatchEvent::Error(e) if e.code == 410 => return Ok(()),
            WatchEvent::Error(e) => return Err(kube::Error::Api(e)),
        }
    }
    Ok(())
}

/// Up to a quarter more, so that the watches of a node that lost the API
/// do not all come back in the same instant.
fn jitter(d: Duration) -> Duration {
    d + d.mul_f64(rand::random::<f64>() * 0.25)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{DeleteParams, PostParams};

    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::server::apiserver::{auth, loopback};
    use crate::server::bootstrap;
    use crate::server::controllers::tests::{admin, api_state, API};

    fn names(n: &[&str]) -> BTreeSet<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    /// `get` until it answers what `want` accepts.
    async fn until(w: &Watched<ConfigMap>, name: &str, want: impl Fn(&Option<ConfigMap>) -> bool) {
        for _ in 0..200 {
            if want(&w.get("default", name).await.unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{name} never became what was wanted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_watch_per_object_whoever_holds_it_and_changes_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _store) = api_state(dir.path());
        let boot = loopback::client(
            state.clone(),
            auth::component(auth::BOOTSTRAP_USER),
            bootstrap::AGENT,
        );
        bootstrap::run(boot, &ClusterConfig::default(), API, false, async {})
            .await
            .unwrap();
        let admin = admin(&state);
        let w: Watched<ConfigMap> = Watched::new(admin.clone());
        w.hold("pod-1", "default", &names(&["a"]));
        w.hold("pod-2", "default", &names(&["a"]));
        assert_eq!(w.watched(), 1, "two pods, one object, one watch");
        assert!(w.get("default", "a").await.unwrap().is_none());
        assert!(w.get("default", "b").await.is_err(), "not held");

        let cms: Api<ConfigMap> = Api::namespaced(admin, "default");
        let cm = |v: &str| ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("a".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".to_string(), v.to_string())])),
            ..Default::default()
        };
        let data = |c: &Option<ConfigMap>| {
            c.as_ref()
                .and_then(|c| c.data.clone())
                .and_then(|d| d.get("k").cloned())
        };
        cms.create(&PostParams::default(), &cm("one"))
            .await
            .unwrap();
        until(&w, "a", |c| data(c).as_deref() == Some("one")).await;
        let mut now = cms.get("a").await.unwrap();
        now.data = cm("two").data;
        cms.replace("a", &PostParams::default(), &now)
            .await
            .unwrap();
        until(&w, "a", |c| data(c).as_deref() == Some("two")).await;
        cms.delete("a", &DeleteParams::default()).await.unwrap();
        until(&w, "a", Option::is_none).await;

        // A pod that changes what it holds lets go of the rest; the last
        // holder's going stops the watch.
        w.hold("pod-1", "default", &names(&["b"]));
        assert_eq!(w.watched(), 2);
        w.release("pod-2");
        assert_eq!(w.watched(), 1);
        w.release("pod-1");
        assert_eq!(w.watched(), 0);
        w.release("pod-1");
        assert_eq!(w.watched(), 0);

        // Past the cap, objects are read with GETs instead of watched.
        let many: BTreeSet<String> = (0..MAX_WATCHES + 12).map(|i| format!("m{i}")).collect();
        w.hold("pod-3", "default", &many);
        assert_eq!(w.watched(), MAX_WATCHES + 12);
        assert_eq!(w.watches(), MAX_WATCHES);
        for name in &many {
            assert!(w.get("default", name).await.unwrap().is_none(), "{name}");
        }
        w.release("pod-3");
        assert_eq!((w.watched(), w.watches()), (0, 0));
    }
}
