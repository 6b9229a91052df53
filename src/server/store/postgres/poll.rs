//! The poller: one task per server that reads the log's new rows, in
//! revision order, and hands their events to this server's watchers.
//!
//! It wakes on a notification from any server's commit (`LISTEN` on a
//! connection of its own), on this server's own writes, and every
//! `poll_every` in case a notification was lost with its connection. It
//! also keeps the compacted revision current, since another server may
//! have compacted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::CHANNEL;
use super::{read, Published};
use crate::server::store::{Error, Revision};

/// Rows read per round: a burst of writes reaches watchers in pieces this
/// big, each in order.
const PAGE: usize = 512;

pub(super) fn spawn(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    pool: Pool,
    published: Arc<Published>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let listener = Arc::new(tokio::sync::Notify::new());
    let listening = AbortOnDrop(tokio::spawn(listen(config, tls, Arc::clone(&listener))));
    tokio::spawn(async move {
        // The listener's connection ends with the poller.
        let _listening = listening;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = listener.notified() => {}
                _ = published.wake.notified() => {}
            }
            if let Err(e) = round(&pool, &published).await {
                match e {
                    Error::Closed => return,
                    e => tracing::debug!(error = %e, "store poller"),
                }
            }
        }
    })
}

/// Sends every event above what was sent, page by page.
async fn round(pool: &Pool, published: &Published) -> Result<(), Error> {
    let mut client = pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Closed => Error::Closed,
        e => Error::Backend(e.to_string()),
    })?;
    let (counter, compacted) = read::meta(&client).await?;
    published.compacted.fetch_max(compacted, Ordering::AcqRel);
    let sent = published.sent.load(Ordering::Acquire);
    if counter < sent {
        // The database went back in time (restored, or failed over to a
        // replica that lost commits): revisions clients saw will be handed
        // out again. Watchers start over from what is there now.
        tracing::error!(
            counter,
            sent,
            "store: the database's revision went back; watchers start over"
        );
        restart_watchers(published, counter);
        return Ok(());
    }
    loop {
        let sent = published.sent.load(Ordering::Acquire);
        let page = match read::history(&mut client, None, sent, i64::MAX, PAGE).await {
            Ok(page) => page,
            // Compacted past what watchers were sent (this server was cut
            // off for long): they must list again, as a lagging one does.
            Err(Error::Compacted { compacted, .. }) => {
                tracing::warn!(
                    sent,
                    compacted,
                    "store: history compacted before it was sent to watchers; they start over"
                );
                published.compacted.fetch_max(compacted, Ordering::AcqRel);
                restart_watchers(published, compacted);
                continue;
            }
            Err(e) => return Err(e),
        };
        let full = page.len() >= PAGE;
        if let Some(last) = page.last().map(|e| e.revision()) {
            let fanout = published
                .fanout
                .lock()
                .map_err(|_| Error::Backend("store fan-out lock poisoned".into()))?;
            let Some(tx) = fanout.as_ref() else {
                return Err(Error::Closed);
            };
            // `current` first: a watcher woken by an event and reading at
            // once must see that write.
            published.saw(last);
            published.sent.store(last, Ordering::Release);
            for ev in page {
                // No receivers is not an error here.
                let _ = tx.send(Arc::new(ev));
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Ends every watch with an error that makes its user watch (and list)
/// again, and goes on sending from `from`.
fn restart_watchers(published: &Published, from: Revision) {
    if let Ok(mut fanout) = published.fanout.lock() {
        if fanout.is_some() {
            // Dropping the old sender ends every watcher (`Published::ended`).
            let (fresh, _) = tokio::sync::broadcast::channel(published.fanout_events);
            *fanout = Some(fresh);
        }
        published.sent.store(from, Ordering::Release);
        published.current.store(from, Ordering::Release);
    }
}

/// Holds a connection that LISTENs, and wakes the poller on each
/// notification; reconnects after a failure, a second later.
async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listen_sql = format!("LISTEN {CHANNEL}");
                let listening = client.batch_execute(&listen_sql);
                // The connection is driven by polling its messages; the
                // LISTEN completes while they are read.
                let mut listening = std::pin::pin!(listening);
                let mut listened = false;
                loop {
                    tokio::select! {
                        res = &mut listening, if !listened => {
                            listened = true;
                            if let Err(e) = res {
                                tracing::debug!(error = %e, "store: LISTEN failed");
                                break;
                            }
                            // Anything committed before now is found by
                            // the next round.
                            wake.notify_one();
                        }
                        msg = messages.next() => match msg {
                            Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, "store: notification connection failed");
                                break;
                            }
                            None => break,
                        },
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "store: connecting for notifications failed"),
        }
        // Wake anyway: what was notified while disconnected is found by
        // polling.
        wake.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
