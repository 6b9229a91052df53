//! Watchers: one task per watch that first replays history from the
//! table, then forwards live events from the poller's fan-out.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{broadcast, mpsc};

use super::{read, Published};
use crate::server::store::live;
use crate::server::store::log::KeyRange;
use crate::server::store::{Error, Event, Revision, WatchReceiver};

/// Catch-up reads this many events per read transaction.
const HISTORY_PAGE: usize = 256;

pub(super) struct Watch {
    pub pool: Pool,
    pub published: Arc<Published>,
    pub prefix: String,
    /// Deliver events with a revision above this.
    pub after: Revision,
    /// Subscribed while `upto` was the newest known revision: what the
    /// poller sends from here on is above what it had sent then.
    pub live: broadcast::Receiver<Arc<Event>>,
    pub upto: Revision,
    pub buffer: usize,
}

impl Watch {
    pub(super) fn spawn(self) -> WatchReceiver {
        let (tx, rx) = mpsc::channel(self.buffer.max(1));
        tokio::spawn(self.run(tx));
        rx
    }

    async fn run(self, out: mpsc::Sender<Result<Event, Error>>) {
        let range = KeyRange::prefix(&self.prefix);
        let mut last = self.after;
        while last < self.upto {
            let page = async {
                let mut client = self
                    .pool
                    .get()
                    .await
                    .map_err(|e| Error::Backend(e.to_string()))?;
                read::history(&mut client, Some(&range), last, self.upto, HISTORY_PAGE).await
            }
            .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    let _ = out.send(Err(e)).await;
                    return;
                }
            };
            let full = page.len() >= HISTORY_PAGE;
            for ev in page {
                last = ev.revision();
                if out.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            if !full {
                break;
            }
        }
        // The history up to `upto` is sent (also when the prefix had none).
        last = last.max(self.upto);
        let published = self.published;
        live::forward(self.live, &self.prefix, last, &out, || published.ended()).await;
    }
}
