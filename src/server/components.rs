//! The server's components (store compactor, namespace controller, API
//! listener; later the agent, controllers and scheduler) as one list, each
//! with a name, a readiness signal and a cancellation token (k3s's
//! `config.Controllers`).
//!
//! Each component's readiness is also a named `/readyz` check
//! (`poststarthook/skiff-<name>`, as upstream names the steps that run after
//! its start), through the [`Readiness`] the API state holds.
//!
//! The first component to end — failed or not — or a shutdown signal stops
//! them all, in the reverse order of their start: the API listener first,
//! the users of the store after it, so that the caller can then let the
//! store's writer finish its group with nothing left writing.

use std::future::Future;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a running component is handed.
pub struct Lifecycle {
    /// Fires when the component must stop; it returns soon after.
    pub cancel: CancellationToken,
    ready: watch::Sender<bool>,
}

impl Lifecycle {
    /// Tell the server the component does its work now.
    pub fn ready(&self) {
        self.ready.send_replace(true);
    }
}

struct Entry {
    name: &'static str,
    cancel: CancellationToken,
    ready: watch::Receiver<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Whether each component said it is ready, for `/readyz`: made with the
/// API state, before any component starts, and filled as they start.
#[derive(Clone, Default)]
pub struct Readiness(Arc<Mutex<Vec<Started>>>);

/// A started component's name and readiness.
type Started = (&'static str, watch::Receiver<bool>);

impl Readiness {
    /// Each started component's check name and whether it is ready, in
    /// start order.
    pub fn checks(&self) -> Vec<(String, bool)> {
        // A poisoned lock only means a panic while pushing: the list is
        // still whole.
        let list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .map(|(name, ready)| (check_name(name), *ready.borrow()))
            .collect()
    }

    fn add(&self, name: &'static str, ready: watch::Receiver<bool>) {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.push((name, ready));
    }
}

/// The `/readyz` check of component `name`: `namespace controller` is
/// `poststarthook/skiff-namespace-controller`.
pub fn check_name(name: &str) -> String {
    format!(
        "poststarthook/skiff-{}",
        name.to_ascii_lowercase().replace(' ', "-")
    )
}

/// The running components, in the order they were started.
pub struct Components {
    entries: Vec<Entry>,
    readiness: Readiness,
    ended_tx: mpsc::UnboundedSender<&'static str>,
    ended: mpsc::UnboundedReceiver<&'static str>,
}

impl Default for Components {
    fn default() -> Self {
        Components::reporting_to(Readiness::default())
    }
}

impl Components {
    /// Components whose readiness `readiness` reports.
    pub fn reporting_to(readiness: Readiness) -> Self {
        let (ended_tx, ended) = mpsc::unbounded_channel();
        Components {
            entries: Vec::new(),
            readiness,
            ended_tx,
            ended,
        }
    }

    /// Start component `name`; it runs until it returns or its token fires.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, start: F)
    where
        F: FnOnce(Lifecycle) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let (tx, rx) = watch::channel(false);
        self.readiness.add(name, rx.clone());
        let fut = start(Lifecycle {
            cancel: cancel.clone(),
            ready: tx,
        });
        let ended = self.ended_tx.clone();
        let task = tokio::spawn(async move {
            let r = fut.await;
            let _ = ended.send(name);
            r
        });
        self.entries.push(Entry {
            name,
            cancel,
            ready: rx,
            task,
        });
    }

    /// Whether every component has said it is ready.
    pub fn all_ready(&self) -> bool {
        self.entries.iter().all(|e| *e.ready.borrow())
    }

    /// Run until a component ends or `stop` resolves, then stop every
    /// component, last started first, each finished before the next is
    /// told. The first error met on the way is the result.
    pub async fn run_until(
        mut self,
        stop: impl Future<Output = &'static str>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            Some(name) = self.ended.recv() => tracing::info!(component = name, "component ended"),
            sig = stop => tracing::info!(signal = sig, "shutting down"),
        }
        let mut result = Ok(());
        for entry in self.entries.into_iter().rev() {
            tracing::debug!(component = entry.name, "stopping");
            entry.cancel.cancel();
            if let Err(e) = outcome(entry.name, entry.task.await) {
                if result.is_ok() {
                    result = Err(e);
                } else {
                    tracing::warn!(error = %format!("{e:#}"), "component failed while stopping");
                }
            }
        }
        result
    }
}

fn outcome(
    name: &'static str,
    ended: Result<anyhow::Result<()>, tokio::task::JoinError>,
) -> anyhow::Result<()> {
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e).with_context(|| format!("the {name} failed")),
        Err(e) => Err(anyhow::Error::new(e)).with_context(|| format!("the {name} panicked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A component that records when it was told to stop.
    fn recorder(
        log: &Arc<Mutex<Vec<&'static str>>>,
        name: &'static str,
    ) -> impl FnOnce(Lifecycle) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>
    {
        let log = log.clone();
        move |life: Lifecycle| {
            Box::pin(async move {
                life.ready();
                life.cancel.cancelled().await;
                log.lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(name);
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_failure_stops_the_rest_last_started_first() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut c = Components::default();
        c.spawn("compactor", recorder(&log, "compactor"));
        c.spawn("controller", recorder(&log, "controller"));
        c.spawn("listener", |_life| async {
            anyhow::bail!("address in use")
        });
        let err = c.run_until(std::future::pending()).await.unwrap_err();
        assert_eq!(format!("{err:#}"), "the listener failed: address in use");
        assert_eq!(*log.lock().unwrap(), ["controller", "compactor"]);
    }

    #[tokio::test]
    async fn readiness_names_each_component_as_a_check() {
        let readiness = Readiness::default();
        let mut c = Components::reporting_to(readiness.clone());
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        c.spawn("store compactor", |life| async move {
            life.ready();
            life.cancel.cancelled().await;
            Ok(())
        });
        c.spawn("namespace controller", |life| async move {
            let _ = wait.await;
            life.ready();
            life.cancel.cancelled().await;
            Ok(())
        });
        while !readiness.checks()[0].1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            readiness.checks(),
            [
                ("poststarthook/skiff-store-compactor".to_string(), true),
                (
                    "poststarthook/skiff-namespace-controller".to_string(),
                    false
                )
            ]
        );
        go.send(()).unwrap();
        while !readiness.checks()[1].1 {
            tokio::task::yield_now().await;
        }
        c.run_until(async { "SIGTERM" }).await.unwrap();
    }

    #[tokio::test]
    async fn a_signal_stops_everything() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut c = Components::default();
        c.spawn("a", recorder(&log, "a"));
        c.spawn("b", recorder(&log, "b"));
        c.run_until(async { "SIGTERM" }).await.unwrap();
        assert_eq!(log.lock().unwrap().len(), 2);
    }
}
