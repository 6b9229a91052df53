//! The scheduling queue (upstream's three queues, simplified):
//!
//! - **active**: pods to schedule now, the highest priority first, then
//!   the oldest;
//! - **backoff**: pods that failed lately, held back 1 s doubling to 10 s
//!   per attempt;
//! - **unschedulable**: pods that fit nowhere, parked until something
//!   changes that could make room (a node added or changed, a pod leaving
//!   a node): [`SchedulingQueue::move_all`] sends them back, through
//!   backoff when theirs has not run out. Nothing polls; a pod parked for
//!   five minutes is still tried again, as upstream does, in case a
//!   change was one the scheduler does not follow.
//!
//! A change that arrives while a pod is being scheduled is not lost: a pod
//! that fails after a `move_all` that happened during its attempt goes to
//! backoff, not to the parked set.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::server::controllers::runtime::Key;

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A parked pod is tried again after this long whatever happens.
pub const PARKED_MAX: Duration = Duration::from_secs(300);
/// How often the parked pods are looked over for that.
const FLUSH_EVERY: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Parked(Instant),
    /// Being scheduled, since cycle n.
    Popped(u64),
}

struct Entry {
    place: Place,
    priority: i32,
    /// Creation time, seconds since the epoch.
    created: i64,
    attempts: u32,
    /// When its back-off ends.
    backoff_until: Option<Instant>,
    /// Changed while being scheduled: a failure is not final.
    dirty: bool,
}

#[derive(Default)]
struct State {
    pods: HashMap<Key, Entry>,
    /// (priority, older first, sequence, key); stale entries (the pod moved
    /// on) are skipped when popped.
    active: BinaryHeap<(i32, Reverse<i64>, Reverse<u64>, Key)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, Key)>>,
    seq: u64,
    cycle: u64,
    moved_at_cycle: u64,
    last_flush: Option<Instant>,
    closed: bool,
    /// Entries parked now (kept with every move in and out).
    parked: usize,
}

impl State {
    fn activate(&mut self, key: Key) {
        let Some(e) = self.pods.get_mut(&key) else {
            return;
        };
        if matches!(e.place, Place::Parked(_)) {
            self.parked = self.parked.saturating_sub(1);
        }
        e.place = Place::Active;
        let (p, c) = (e.priority, e.created);
        self.seq += 1;
        self.active.push((p, Reverse(c), Reverse(self.seq), key));
    }

    fn back_off(&mut self, key: Key, until: Instant) {
        let Some(e) = self.pods.get_mut(&key) else {
            return;
        };
        if matches!(e.place, Place::Parked(_)) {
            self.parked = self.parked.saturating_sub(1);
        }
        e.place = Place::Backoff(until);
        self.seq += 1;
        self.backoff.push(Reverse((until, self.seq, key)));
    }

    /// Send `key` on from the parked set: to active, or backoff if its
    /// back-off has not run out.
    fn release(&mut self, key: Key, now: Instant) {
        let until = self.pods.get(&key).and_then(|e| e.backoff_until);
        match until {
            Some(u) if u > now => self.back_off(key, u),
            _ => self.activate(key),
        }
    }

    fn promote(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((at, _, key))) = self.backoff.peek().cloned() {
            if at > now {
                return Some(at);
            }
            self.backoff.pop();
            if self
                .pods
                .get(&key)
                .is_some_and(|e| e.place == Place::Backoff(at))
            {
                self.activate(key);
            }
        }
        None
    }
}

#[derive(Default)]
pub struct SchedulingQueue {
    state: Mutex<State>,
    notify: Notify,
}

impl SchedulingQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pod to schedule was added or changed. A changed parked pod is
    /// tried again (the change may be what it lacked).
    pub fn add(&self, key: Key, priority: i32, created: i64) {
        let mut s = self.lock();
        let now = Instant::now();
        match s.pods.get_mut(&key) {
            Some(e) => {
                e.priority = priority;
                match e.place {
                    Place::Parked(_) => s.release(key, now),
                    Place::Popped(_) => {
                        e.dirty = true;
                        return;
                    }
                    Place::Active | Place::Backoff(_) => return,
                }
            }
            None => {
                s.pods.insert(
                    key.clone(),
                    Entry {
                        place: Place::Active,
                        priority,
                        created,
                        attempts: 0,
                        backoff_until: None,
                        dirty: false,
                    },
                );
                s.activate(key);
            }
        }
        drop(s);
        self.notify.notify_one();
    }

    /// The pod is gone, bound elsewhere, or no longer ours.
    pub fn remove(&self, key: &Key) {
        let mut s = self.lock();
        if s.pods
            .remove(key)
            .is_some_and(|e| matches!(e.place, Place::Parked(_)))
        {
            s.parked = s.parked.saturating_sub(1);
        }
    }

    /// Whether any pod is parked (waiting for a change of the cluster).
    pub fn any_parked(&self) -> bool {
        self.lock().parked > 0
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.lock().pods.contains_key(key)
    }

    /// The next pod to schedule, with the attempt's number (which
    /// [`SchedulingQueue::done`] and [`SchedulingQueue::failed`] take, so
    /// that a late answer about an earlier attempt, or about an earlier pod
    /// of the same name, changes nothing); None once closed.
    pub async fn pop(&self) -> Option<(Key, u64)> {
        loop {
            let wake = {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                let now = Instant::now();
                let next = s.promote(now);
                if s.last_flush
                    .is_none_or(|t| now.duration_since(t) >= FLUSH_EVERY)
                {
                    s.last_flush = Some(now);
                    flush_parked(&mut s, now);
                }
                while let Some((_, _, _, key)) = s.active.pop() {
                    if s.pods.get(&key).is_some_and(|e| e.place == Place::Active) {
                        s.cycle += 1;
                        let cycle = s.cycle;
                        if let Some(e) = s.pods.get_mut(&key) {
                            e.place = Place::Popped(cycle);
                            e.dirty = false;
                        }
                        return Some((key, cycle));
                    }
                }
                // Parked pods are looked at again at least this often.
                let flush = now + FLUSH_EVERY;
                Some(next.map_or(flush, |n| n.min(flush)))
            };
            if let Some(at) = wake {
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
        }
    }

    /// Attempt `cycle` bound the pod (or it needs nothing more).
    pub fn done(&self, key: &Key, cycle: u64) {
        let mut s = self.lock();
        if s.pods
            .get(key)
            .is_some_and(|e| e.place == Place::Popped(cycle))
        {
            s.pods.remove(key);
        }
    }

    /// The popped pod could not be scheduled: parked when it fits nowhere
    /// (`unschedulable`) and nothing changed meanwhile, else backed off.
    pub fn failed(&self, key: &Key, attempt: u64, unschedulable: bool) {
        let mut s = self.lock();
        let moved = s.moved_at_cycle;
        let now = Instant::now();
        let Some(e) = s.pods.get_mut(key) else {
            return;
        };
        let Place::Popped(cycle) = e.place else {
            return;
        };
        if cycle != attempt {
            return;
        }
        e.attempts = e.attempts.saturating_add(1);
        let shift = e.attempts.saturating_sub(1).min(8);
        let until = now + BACKOFF_FIRST.saturating_mul(1 << shift).min(BACKOFF_MAX);
        e.backoff_until = Some(until);
        if unschedulable && moved < cycle && !e.dirty {
            e.place = Place::Parked(now);
            s.parked += 1;
        } else {
            s.back_off(key.clone(), until);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Something changed that may make room: every parked pod is tried
    /// again.
    pub fn move_all(&self) {
        let mut s = self.lock();
        s.moved_at_cycle = s.cycle;
        let now = Instant::now();
        let parked: Vec<Key> = s
            .pods
            .iter()
            .filter(|(_, e)| matches!(e.place, Place::Parked(_)))
            .map(|(k, _)| k.clone())
            .collect();
        if parked.is_empty() {
            return;
        }
        for key in parked {
            s.release(key, now);
        }
        drop(s);
        self.notify.notify_one();
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Pods waiting in each place: active, backoff, parked.
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.lock();
        let mut c = (0, 0, 0);
        for e in s.pods.values() {
            match e.place {
                Place::Active | Place::Popped(_) => c.0 += 1,
                Place::Backoff(_) => c.1 += 1,
                Place::Parked(_) => c.2 += 1,
            }
        }
        c
    }
}

fn flush_parked(s: &mut State, now: Instant) {
    let stale: Vec<Key> = s
        .pods
        .iter()
        .filter(
            |(_, e)| matches!(e.place, Place::Parked(at) if now.duration_since(at) >= PARKED_MAX),
        )
        .map(|(k, _)| k.clone())
        .collect();
    for key in stale {
        s.release(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: &str) -> Key {
        Key::new("d", n)
    }

    #[tokio::test(start_paused = true)]
    async fn higher_priority_then_older_pods_come_first() {
        let q = SchedulingQueue::default();
        q.add(k("young"), 0, 20);
        q.add(k("old"), 0, 10);
        q.add(k("important"), 1000, 30);
        assert_eq!(q.pop().await.map(|p| p.0), Some(k("important")));
        assert_eq!(q.pop().await.map(|p| p.0), Some(k("old")));
        assert_eq!(q.pop().await.map(|p| p.0), Some(k("young")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_pod_waits_for_a_change_then_its_backoff() {
        let q = SchedulingQueue::default();
        q.add(k("p"), 0, 1);
        let (_, n) = q.pop().await.unwrap();
        q.failed(&k("p"), n, true);
        assert_eq!(q.counts(), (0, 0, 1));
        // Nothing changes: it stays parked (well past its back-off).
        let waited = tokio::time::timeout(Duration::from_secs(60), q.pop()).await;
        assert!(waited.is_err());
        let start = Instant::now();
        q.move_all();
        assert_eq!(q.pop().await.map(|p| p.0), Some(k("p")));
        // Its 1 s back-off had long run out.
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_during_the_attempt_is_not_lost() {
        let q = SchedulingQueue::default();
        q.add(k("p"), 0, 1);
        let (_, n) = q.pop().await.unwrap();
        // A node is added while the pod is being scheduled.
        q.move_all();
        q.failed(&k("p"), n, true);
        assert_eq!(q.counts(), (0, 1, 0));
        let start = Instant::now();
        let (_, n) = q.pop().await.unwrap();
        assert_eq!(start.elapsed(), BACKOFF_FIRST);
        // The pod itself changes during the attempt: not parked either.
        q.add(k("p"), 0, 1);
        q.failed(&k("p"), n, true);
        assert_eq!(q.counts(), (0, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn parked_pods_are_tried_again_after_five_minutes() {
        let q = SchedulingQueue::default();
        q.add(k("p"), 0, 1);
        let (_, n) = q.pop().await.unwrap();
        q.failed(&k("p"), n, true);
        let start = Instant::now();
        assert_eq!(q.pop().await.map(|p| p.0), Some(k("p")));
        assert!(start.elapsed() >= PARKED_MAX);
        assert!(start.elapsed() < PARKED_MAX + Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn removed_pods_are_never_handed_out() {
        let q = SchedulingQueue::default();
        q.add(k("a"), 0, 1);
        q.add(k("b"), 0, 2);
        q.remove(&k("a"));
        let (b, n) = q.pop().await.unwrap();
        assert_eq!(b, k("b"));
        // A late answer about an earlier attempt changes nothing.
        q.done(&k("b"), n + 7);
        assert_eq!(q.counts(), (1, 0, 0));
        q.done(&k("b"), n);
        assert_eq!(q.counts(), (0, 0, 0));
    }
}
