//! A de-duplicating work queue with delays and per-key back-off (client-go's
//! rate-limited delaying work queue, the part controllers use).
//!
//! - A key added while it waits is not added twice; a key added while a
//!   worker holds it is handed out again once that worker is done, never to
//!   two workers at once.
//! - `add_after` holds a key back; the earliest of several requests wins.
//! - `add_backoff` holds it back longer on each failure (doubling from
//!   `BACKOFF_FIRST` up to `BACKOFF_MAX`) until `forget` clears its count.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub const BACKOFF_FIRST: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

struct State<K> {
    ready: VecDeque<K>,
    /// Keys in `ready`.
    queued: HashSet<K>,
    /// Keys a worker holds.
    active: HashSet<K>,
    /// Held keys added again meanwhile.
    dirty: HashSet<K>,
    /// Keys held back, earliest first (with a sequence for a total order).
    delayed: BinaryHeap<Reverse<(Instant, u64, K)>>,
    /// The earliest time each delayed key is due (later requests are
    /// dropped, earlier ones win).
    due: HashMap<K, Instant>,
    seq: u64,
    failures: HashMap<K, u32>,
    closed: bool,
}

pub struct Queue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
}

impl<K: Clone + Eq + Hash + Ord> Default for Queue<K> {
    fn default() -> Self {
        Queue {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                dirty: HashSet::new(),
                delayed: BinaryHeap::new(),
                due: HashMap::new(),
                seq: 0,
                failures: HashMap::new(),
                closed: false,
            }),
            notify: Notify::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> State<K> {
    fn push(&mut self, key: K) -> bool {
        if self.active.contains(&key) {
            self.dirty.insert(key);
            false
        } else if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
            true
        } else {
            false
        }
    }

    /// Move the delayed keys that are due to `ready`; the time the next one
    /// is due.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((at, _, _))) = self.delayed.peek() {
            if *at > now {
                return Some(*at);
            }
            let Some(Reverse((at, _, key))) = self.delayed.pop() else {
                break;
            };
            // A stale entry: the key was asked for earlier, or handed out.
            if self.due.get(&key) == Some(&at) {
                self.due.remove(&key);
                self.push(key);
            }
        }
        None
    }
}

impl<K: Clone + Eq + Hash + Ord> Queue<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // A panic while holding the lock leaves consistent sets behind
        // (each method changes them in one step).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        s.due.remove(&key);
        if s.push(key) {
            drop(s);
            self.notify.notify_one();
        }
    }

    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        let mut s = self.lock();
        if s.closed || s.queued.contains(&key) {
            return;
        }
        if s.due.get(&key).is_some_and(|d| *d <= at) {
            return;
        }
        s.due.insert(key.clone(), at);
        s.seq += 1;
        let seq = s.seq;
        s.delayed.push(Reverse((at, seq, key)));
        drop(s);
        // A worker waiting for a later key must wake to wait less.
        self.notify.notify_one();
    }

    /// Add after the key's back-off, which doubles with each call until
    /// [`Queue::forget`].
    pub fn add_backoff(&self, key: K) {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        self.add_after(key, backoff(n));
    }

    /// Failures counted for `key` so far.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// The next key to work on (the caller must call [`Queue::done`]), or
    /// None once the queue is closed.
    pub async fn next(&self) -> Option<K> {
        loop {
            let wake = {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                let next_due = s.promote(Instant::now());
                if let Some(key) = s.ready.pop_front() {
                    s.queued.remove(&key);
                    s.active.insert(key.clone());
                    // Others may be ready too.
                    if !s.ready.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                next_due
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// The worker holding `key` is done with it.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.active.remove(key);
        if s.dirty.remove(key) && s.push(key.clone()) {
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Wake every worker with None.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
        // notify_waiters reaches only current waiters; one arriving later
        // sees `closed` before it waits.
        self.notify.notify_one();
    }

    /// Keys waiting (ready or delayed), for tests and metrics.
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.ready.len() + s.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The wait after the `n`th failure in a row.
pub fn backoff(n: u32) -> Duration {
    let shift = n.saturating_sub(1).min(20);
    BACKOFF_FIRST.saturating_mul(1u32 << shift).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keys_are_deduplicated_and_never_held_twice() {
        let q = Queue::<u32>::default();
        q.add(1);
        q.add(1);
        q.add(2);
        assert_eq!(q.len(), 2);
        let a = q.next().await.unwrap();
        assert_eq!(a, 1);
        // Added again while held: not handed out until done.
        q.add(1);
        let b = q.next().await.unwrap();
        assert_eq!(b, 2);
        assert!(q.is_empty());
        q.done(&1);
        assert_eq!(q.next().await, Some(1));
        q.done(&1);
        q.done(&2);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_when_due_and_the_earliest_request_wins() {
        let q = Queue::<&str>::default();
        let start = Instant::now();
        q.add_after("late", Duration::from_secs(10));
        q.add_after("late", Duration::from_secs(3));
        q.add_after("late", Duration::from_secs(20));
        assert_eq!(q.next().await, Some("late"));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        q.done(&"late");
        // The stale entries at 10 s and 20 s hand nothing out.
        let more = tokio::time::timeout(Duration::from_secs(30), q.next()).await;
        assert!(more.is_err(), "a stale delayed entry was handed out");
    }

    #[tokio::test(start_paused = true)]
    async fn an_add_overrides_a_pending_delay() {
        let q = Queue::<u8>::default();
        q.add_after(7, Duration::from_secs(60));
        q.add(7);
        let start = Instant::now();
        assert_eq!(q.next().await, Some(7));
        assert_eq!(start.elapsed(), Duration::ZERO);
        q.done(&7);
        assert!(tokio::time::timeout(Duration::from_secs(120), q.next())
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_until_forgotten() {
        assert_eq!(backoff(1), BACKOFF_FIRST);
        assert_eq!(backoff(2), BACKOFF_FIRST * 2);
        assert_eq!(backoff(40), BACKOFF_MAX);
        let q = Queue::<u8>::default();
        for expect in [BACKOFF_FIRST, BACKOFF_FIRST * 2, BACKOFF_FIRST * 4] {
            q.add_backoff(1);
            let start = Instant::now();
            assert_eq!(q.next().await, Some(1));
            assert_eq!(start.elapsed(), expect);
            q.done(&1);
        }
        q.forget(&1);
        assert_eq!(q.failures(&1), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn close_ends_waiting_workers() {
        let q = std::sync::Arc::new(Queue::<u8>::default());
        let w = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(w.await.unwrap(), None);
        assert_eq!(q.next().await, None);
    }
}
