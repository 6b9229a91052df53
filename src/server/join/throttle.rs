//! Failed joins, counted per client address: past a few in a minute, the
//! address is refused (429) until the minute is over. A join token is long
//! enough that guessing is hopeless, but every guess at a bootstrap token
//! reads a Secret, and an unauthenticated client must not be able to make
//! the server do that without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::status::ApiError;

/// Failures an address may have in one window.
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once; past it the stalest are forgotten, so the
/// table is bounded however many addresses a client has.
const MAX_ADDRESSES: usize = 4096;

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    /// Refuse `peer` while it has failed too often in its window.
    pub fn admit(&self, peer: Option<IpAddr>, now: Instant) -> Result<(), ApiError> {
        let Some(peer) = peer else { return Ok(()) };
        let Ok(map) = self.failures.lock() else {
            return Ok(());
        };
        match map.get(&peer) {
            Some((since, n)) if *n >= MAX_FAILURES && now.duration_since(*since) < WINDOW => {
                let left = WINDOW.saturating_sub(now.duration_since(*since));
                let mut e = ApiError::new(
                    429,
                    "TooManyRequests",
                    format!(
                        "too many failed joins from {peer}: try again in {} s",
                        left.as_secs().max(1)
                    ),
                );
                e.retry_after_seconds = Some(left.as_secs().clamp(1, 60) as u32);
                Err(e)
            }
            _ => Ok(()),
        }
    }

    /// Count a failed join of `peer`.
    pub fn failed(&self, peer: Option<IpAddr>, now: Instant) {
        let Some(peer) = peer else { return };
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&peer) {
            map.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
            if map.len() >= MAX_ADDRESSES {
                if let Some(stalest) = map
                    .iter()
                    .min_by_key(|(_, (since, _))| *since)
                    .map(|(ip, _)| *ip)
                {
                    map.remove(&stalest);
                }
            }
        }
        let entry = map.entry(peer).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_that_keeps_failing_waits_out_its_minute() {
        let t = Throttle::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            t.admit(Some(a), t0).unwrap();
            t.failed(Some(a), t0);
        }
        let e = t.admit(Some(a), t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(e.retry_after_seconds, Some(59));
        // Others are not held up; the address is let in again after its minute.
        t.admit(Some(b), t0).unwrap();
        t.admit(None, t0).unwrap();
        t.admit(Some(a), t0 + WINDOW).unwrap();
        t.failed(Some(a), t0 + WINDOW);
        t.admit(Some(a), t0 + WINDOW).unwrap();
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = Throttle::default();
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            t.failed(
                Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))),
                t0,
            );
        }
        assert_eq!(t.failures.lock().unwrap().len(), MAX_ADDRESSES);
    }
}
