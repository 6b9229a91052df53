//! The live half of a watch, shared by the backends: after its catch-up,
//! a watcher forwards the fan-out's events for its prefix.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::{Error, Event, Revision};

/// Forwards events above `last` for keys under `prefix` until the receiver
/// is dropped, the watcher lags (it gets `WatcherLagged`) or the fan-out
/// ends (it gets what `ended` says: `Closed` when the store is closing,
/// which its users take as the end, else an error that makes them watch
/// again).
pub(crate) async fn forward(
    mut live: broadcast::Receiver<Arc<Event>>,
    prefix: &str,
    mut last: Revision,
    out: &mpsc::Sender<Result<Event, Error>>,
    ended: impl Fn() -> Error,
) {
    loop {
        let next = tokio::select! {
            // Without this a dropped watch on a quiet prefix would keep
            // its task (and a fan-out slot) until the next write.
            _ = out.closed() => return,
            b = live.recv() => b,
        };
        match next {
            Ok(ev) => {
                if ev.revision() <= last || !ev.kv.key.starts_with(prefix) {
                    continue;
                }
                last = ev.revision();
                if out.send(Ok(Event::clone(&ev))).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(%prefix, last, missed, "store watcher lagged");
                let _ = out.send(Err(Error::WatcherLagged)).await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => {
                let _ = out.send(Err(ended())).await;
                return;
            }
        }
    }
}
