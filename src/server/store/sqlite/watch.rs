//! Watchers: one task per watch that first replays history from the table,
//! then forwards live events from the in-memory fan-out.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use crate::server::store::live;

use super::deferred::merge_history;
use super::read::{self, KeyRange, ReadPool};
use super::writer::{Published, SharedEvent};
use crate::server::store::{Error, Event, Revision, WatchReceiver};

/// Catch-up reads this many events per read transaction, so a long history
/// neither pins one snapshot nor sits in memory at once.
const HISTORY_PAGE: usize = 256;

pub(crate) struct Watch {
    pub pool: Arc<ReadPool>,
    /// For the renewals not yet in the file.
    pub published: Arc<Published>,
    pub prefix: String,
    /// Deliver events with a revision above this.
    pub after: Revision,
    /// Live events; subscribed while `upto` was the published revision, so
    /// everything above `upto` arrives here and nothing at or below it does.
    pub live: broadcast::Receiver<SharedEvent>,
    pub upto: Revision,
    pub buffer: usize,
}

impl Watch {
    pub(crate) fn spawn(self) -> WatchReceiver {
        let (tx, rx) = mpsc::channel(self.buffer.max(1));
        tokio::spawn(self.run(tx));
        rx
    }

    async fn run(self, out: mpsc::Sender<Result<Event, Error>>) {
        let range = Arc::new(KeyRange::prefix(&self.prefix));
        let mut last = self.after;
        if let Err(e) = self.catch_up(&range, &mut last, &out).await {
            let _ = out.send(Err(e)).await;
            return;
        }
        live::forward(self.live, &self.prefix, last, &out, || Error::Closed).await;
    }

    /// Sends history in (`last`, `upto`]; `Ok` with `last` advanced, or
    /// the error that ends the watch (e.g. compacted meanwhile). A dropped
    /// receiver ends it quietly.
    async fn catch_up(
        &self,
        range: &Arc<KeyRange>,
        last: &mut Revision,
        out: &mpsc::Sender<Result<Event, Error>>,
    ) -> Result<(), Error> {
        let upto = self.upto;
        while *last < upto {
            let from = *last;
            let range = Arc::clone(range);
            // Before the page's database snapshot (see `Published::deferred`).
            let deferred = self.published.deferred.snapshot();
            let (page, full) = self
                .pool
                .run(move |tx| {
                    let file = read::history(tx, &range, from, upto, HISTORY_PAGE)?;
                    let waiting = deferred.events(&range, from, upto);
                    Ok(merge_history(file, waiting, HISTORY_PAGE))
                })
                .await?;
            for ev in page {
                *last = ev.revision();
                if out.send(Ok(ev)).await.is_err() {
                    return Ok(());
                }
            }
            if !full {
                break;
            }
        }
        Ok(())
    }
}
