//! A shared informer: one list-and-watch of a kind (kube-runtime's
//! `watcher`, which relists after a compaction and backs off on errors)
//! kept in a local cache indexed by namespace, and handlers told of every
//! change with the object before and after it.
//!
//! Handlers run on the informer's task, under no lock of the cache, and
//! must be quick: they enqueue keys, they do not reconcile. After a
//! relist, objects that were not listed again are reported deleted, so a
//! handler never misses a deletion that happened while the watch was down.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// An object's place: namespace ("" when cluster-scoped) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Self {
        Key {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn of<K: Resource>(obj: &K) -> Self {
        Key {
            namespace: obj.meta().namespace.clone().unwrap_or_default(),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// One change: `old` None for an added object, `new` None for a deleted one.
pub struct Change<'a, K> {
    pub old: Option<&'a Arc<K>>,
    pub new: Option<&'a Arc<K>>,
}

impl<K> Change<'_, K> {
    /// The object as it is now, or as it was last when deleted.
    pub fn latest(&self) -> Option<&Arc<K>> {
        self.new.or(self.old)
    }
}

type Handler<K> = Box<dyn Fn(&Change<'_, K>) + Send + Sync>;

/// The local cache: namespace → name → object.
type Objects<K> = HashMap<String, BTreeMap<String, Arc<K>>>;

pub struct Informer<K> {
    objects: RwLock<Objects<K>>,
    handlers: Mutex<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
}

impl<K> Default for Informer<K> {
    fn default() -> Self {
        Informer {
            objects: RwLock::new(HashMap::new()),
            handlers: Mutex::new(Vec::new()),
            synced: watch::channel(false).0,
        }
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Objects<K>> {
        // Each write replaces whole entries: a poisoned map is still whole.
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Objects<K>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Call `f` on every change from now on (after the objects already
    /// cached, which it is told of as added).
    pub fn on_change(&self, f: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        let mut handlers = self.handlers.lock().unwrap_or_else(|p| p.into_inner());
        // Under the handlers' lock, so no change slips between the replay
        // and the registration.
        for obj in self.list_all() {
            f(&Change {
                old: None,
                new: Some(&obj),
            });
        }
        handlers.push(Box::new(f));
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read().get(namespace)?.get(name).cloned()
    }

    pub fn get_key(&self, key: &Key) -> Option<Arc<K>> {
        self.get(&key.namespace, &key.name)
    }

    /// The objects of one namespace ("" for cluster-scoped kinds).
    pub fn list(&self, namespace: &str) -> Vec<Arc<K>> {
        self.read()
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn list_all(&self) -> Vec<Arc<K>> {
        self.read()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first list has been read.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Wait until the first list has been read.
    pub async fn synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as self: wait_for fails only if it is
        // dropped, which it cannot be while we borrow self.
        let _ = rx.wait_for(|s| *s).await;
    }

    fn notify(&self, old: Option<&Arc<K>>, new: Option<&Arc<K>>) {
        let handlers = self.handlers.lock().unwrap_or_else(|p| p.into_inner());
        let change = Change { old, new };
        for h in handlers.iter() {
            // A handler's bug must not end the informer, which every
            // controller reading this kind depends on.
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(&change)));
            if called.is_err() {
                tracing::error!(kind = %K::kind(&()), "a change handler panicked");
            }
        }
    }

    /// Put `obj` in the cache and tell the handlers. Its managedFields are
    /// dropped first, as upstream's controller manager and scheduler trim
    /// them: no controller reads them, and they were the better part of a
    /// cached pod's memory.
    pub fn apply(&self, mut obj: K) {
        obj.meta_mut().managed_fields = None;
        let key = Key::of(&obj);
        let new = Arc::new(obj);
        let old = self
            .write()
            .entry(key.namespace)
            .or_default()
            .insert(key.name, new.clone());
        // Another object under the same name (deleted and made again while
        // the watch was down): handlers see the old one go first.
        let uid = |o: &Arc<K>| o.meta().uid.clone();
        match old {
            Some(o) if uid(&o) != uid(&new) => {
                self.notify(Some(&o), None);
                self.notify(None, Some(&new));
            }
            old => self.notify(old.as_ref(), Some(&new)),
        }
    }

    /// Take `obj` out of the cache and tell the handlers.
    pub fn delete(&self, obj: K) {
        let key = Key::of(&obj);
        let old = {
            let mut objects = self.write();
            let old = objects
                .get_mut(&key.namespace)
                .and_then(|m| m.remove(&key.name));
            if objects.get(&key.namespace).is_some_and(BTreeMap::is_empty) {
                objects.remove(&key.namespace);
            }
            old
        };
        let last = old.unwrap_or_else(|| Arc::new(obj));
        self.notify(Some(&last), None);
    }

    /// After a relist: what was cached and not listed again was deleted
    /// while the watch was down.
    fn drop_unlisted(&self, listed: &std::collections::HashSet<Key>) {
        let gone: Vec<Arc<K>> = self
            .list_all()
            .into_iter()
            .filter(|o| !listed.contains(&Key::of(o.as_ref())))
            .collect();
        for obj in gone {
            self.delete((*obj).clone());
        }
    }

    /// Follow `api` until `cancel` fires.
    pub async fn run(
        self: Arc<Self>,
        api: Api<K>,
        config: watcher::Config,
        cancel: CancellationToken,
    ) {
        let stream = watcher::watcher(api, config).default_backoff();
        futures::pin_mut!(stream);
        let mut listing = std::collections::HashSet::new();
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                e = stream.next() => e,
            };
            let Some(event) = event else { return };
            match event {
                Ok(Event::Init) => listing.clear(),
                Ok(Event::InitApply(obj)) => {
                    listing.insert(Key::of(&obj));
                    self.apply(obj);
                }
                Ok(Event::InitDone) => {
                    self.drop_unlisted(&listing);
                    listing.clear();
                    self.synced.send_replace(true);
                }
                Ok(Event::Apply(obj)) => self.apply(obj),
                Ok(Event::Delete(obj)) => self.delete(obj),
                // The stream backs off and lists again by itself.
                Err(e) => tracing::debug!(kind = %K::kind(&()), "watch: {e}"),
            }
        }
    }
}

/// A name the objects of `K` can be looked up by in logs.
pub fn name_of<K: ResourceExt>(obj: &K) -> String {
    Key::of(obj).to_string()
}
