//! The shape every controller and the scheduler share (kube-runtime's and
//! client-go's): shared informers (one list-and-watch per kind, a local
//! cache, change handlers) → a de-duplicating work queue with back-off →
//! workers calling one `reconcile(key)`.
//!
//! - `informer.rs`: the cache of one kind and its change handlers.
//! - `queue.rs`: the work queue.
//! - here: [`Informers`], the informers of the server's process (each kind
//!   watched once however many controllers read it), [`run_workers`], and
//!   [`Passes`] for the small controllers that look at all they watch at
//!   once instead of key by key.

pub mod informer;
pub mod queue;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::watcher;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

pub use informer::{Change, Informer, Key};
pub use queue::Queue;

/// The informers of one process, made on first use and run until `cancel`.
pub struct Informers {
    client: kube::Client,
    cancel: CancellationToken,
    made: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Informers {
    /// Informers reading through `client` (an identity that may list and
    /// watch every kind asked for).
    pub fn new(client: kube::Client, cancel: CancellationToken) -> Self {
        Informers {
            client,
            cancel,
            made: Mutex::new(HashMap::new()),
        }
    }

    /// The informer of `K` over all namespaces, started at its first use.
    pub fn get<K>(&self) -> Arc<Informer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = made
            .get(&TypeId::of::<K>())
            .and_then(|a| a.clone().downcast::<Informer<K>>().ok())
        {
            return i;
        }
        let informer = Arc::new(Informer::<K>::default());
        made.insert(TypeId::of::<K>(), informer.clone());
        let api = Api::<K>::all(self.client.clone());
        tokio::spawn(
            informer
                .clone()
                .run(api, watcher::Config::default(), self.cancel.clone()),
        );
        informer
    }
}

/// What a reconcile asks of the queue when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the next change.
    Done,
    /// Look again after this long (a timer: minReadySeconds, a deadline).
    After(Duration),
}

/// Hand `queue`'s keys to `workers` tasks calling `reconcile` until
/// `cancel` fires. A failed reconcile is retried with the key's back-off;
/// a successful one clears it.
pub async fn run_workers<K, F, Fut, E>(
    name: &'static str,
    queue: Arc<Queue<K>>,
    workers: usize,
    cancel: CancellationToken,
    reconcile: F,
) where
    K: Clone + Eq + Hash + Ord + Display + Send + Sync + 'static,
    F: Fn(K) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (queue, reconcile) = (queue.clone(), reconcile.clone());
        tasks.spawn(async move {
            while let Some(key) = queue.next().await {
                use futures::FutureExt;
                // A bug in one reconcile must not end the worker and leave
                // its key held for ever.
                let outcome = std::panic::AssertUnwindSafe(reconcile(key.clone()))
                    .catch_unwind()
                    .await;
                let Ok(outcome) = outcome else {
                    tracing::error!(controller = name, %key, "reconcile panicked");
                    queue.add_backoff(key.clone());
                    queue.done(&key);
                    continue;
                };
                match outcome {
                    Ok(action) => {
                        queue.forget(&key);
                        if let Action::After(d) = action {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        let n = queue.failures(&key);
                        // The first failures are usually conflicts with a
                        // newer version, settled by the retry.
                        if n >= 3 {
                            tracing::warn!(controller = name, %key, "{e}");
                        } else {
                            tracing::debug!(controller = name, %key, "{e}");
                        }
                        queue.add_backoff(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    cancel.cancelled().await;
    queue.close();
    while tasks.join_next().await.is_some() {}
}

/// When a controller that looks at everything at once (a few objects, a
/// cheap pass: cluster DNS, load balancers, role aggregation) passes
/// again: after any change of what it watches (changes during a pass make
/// one more) and every `period`, so that a failed write is tried again.
pub struct Passes {
    wake: Arc<tokio::sync::Notify>,
    tick: tokio::time::Interval,
}

impl Passes {
    pub fn every(period: Duration) -> Passes {
        Passes {
            wake: Arc::new(tokio::sync::Notify::new()),
            tick: tokio::time::interval(period),
        }
    }

    /// Pass again when `informer` changes.
    pub fn on<K>(&self, informer: &Informer<K>)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let wake = self.wake.clone();
        informer.on_change(move |_| wake.notify_one());
    }

    /// Wait for the next pass; false once `cancel` fires.
    pub async fn next(&mut self, cancel: &CancellationToken) -> bool {
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = self.tick.tick() => true,
            _ = self.wake.notified() => true,
        }
    }
}
