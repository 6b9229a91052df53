//! Expectations (client-go's ControllerExpectations): a controller that
//! has just created or deleted pods waits until its informer has seen them
//! before it counts again, so a watch that lags behind the writes never
//! makes it create or delete twice. Expectations expire after five
//! minutes, in case an event was lost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::runtime::Key;

const TTL: Duration = Duration::from_secs(300);

struct Expect {
    adds: i64,
    dels: i64,
    at: Instant,
}

#[derive(Default)]
pub struct Expectations {
    map: Mutex<HashMap<Key, Expect>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Expect>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the controller of `key` may count again.
    pub fn satisfied(&self, key: &Key) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(e) => (e.adds <= 0 && e.dels <= 0) || e.at.elapsed() > TTL,
        }
    }

    /// About to create `adds` and delete `dels` (on top of what is still
    /// awaited: one pass may both delete and create).
    pub fn expect(&self, key: &Key, adds: i64, dels: i64) {
        let mut map = self.lock();
        let (a, d) = match map.get(key) {
            Some(e) if e.at.elapsed() <= TTL => (e.adds.max(0), e.dels.max(0)),
            _ => (0, 0),
        };
        map.insert(
            key.clone(),
            Expect {
                adds: a + adds,
                dels: d + dels,
                at: Instant::now(),
            },
        );
    }

    /// A creation was seen (or failed, so will never be seen).
    pub fn created(&self, key: &Key) {
        if let Some(e) = self.lock().get_mut(key) {
            e.adds -= 1;
        }
    }

    /// A deletion was seen (or failed).
    pub fn deleted(&self, key: &Key) {
        if let Some(e) = self.lock().get_mut(key) {
            e.dels -= 1;
        }
    }

    pub fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_every_write_was_seen() {
        let x = Expectations::default();
        let k = Key::new("d", "rs");
        assert!(x.satisfied(&k));
        x.expect(&k, 2, 1);
        assert!(!x.satisfied(&k));
        x.created(&k);
        x.created(&k);
        assert!(!x.satisfied(&k));
        x.deleted(&k);
        assert!(x.satisfied(&k));
    }
}
