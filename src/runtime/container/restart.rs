//! Restart policies (`run --restart`), kept by the container's shim: when
//! the container exits and its policy says so, the shim records the exit,
//! waits docker's back-off and launches the container again with a new
//! shim (create::launch), then goes. A stop, kill or `rm -f` through the
//! shim (any signal request) counts as stopped by hand: no restart.
//!
//! Back-off as docker's restart manager: 100 ms, doubled after each
//! restart, at most a minute, back to 100 ms once a run lasted 10 s.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max` times when given.
    OnFailure {
        max: Option<u32>,
    },
    Always,
    /// As `Always` here: skiff has no daemon whose restart could tell the
    /// two apart (a node reboot restarts neither).
    UnlessStopped,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid restart policy {0:?}: expected no, on-failure[:max-retries], always or unless-stopped"
)]
pub struct PolicyError(pub String);

impl RestartPolicy {
    pub fn parse(s: &str) -> Result<RestartPolicy, PolicyError> {
        let bad = || PolicyError(s.to_string());
        match s.split_once(':') {
            None => match s {
                "no" | "" => Ok(RestartPolicy::No),
                "on-failure" => Ok(RestartPolicy::OnFailure { max: None }),
                "always" => Ok(RestartPolicy::Always),
                "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
                _ => Err(bad()),
            },
            Some(("on-failure", n)) => {
                let max: u32 = n.parse().map_err(|_| bad())?;
                Ok(RestartPolicy::OnFailure {
                    max: (max > 0).then_some(max),
                })
            }
            Some(_) => Err(bad()),
        }
    }

    /// Docker's `HostConfig.RestartPolicy.Name`.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    pub fn max_retries(self) -> u32 {
        match self {
            RestartPolicy::OnFailure { max: Some(m) } => m,
            _ => 0,
        }
    }

    /// Whether a container that exited with `code` after `restarts`
    /// restarts is started again.
    pub fn wants_restart(self, code: i32, restarts: u32, stopped_by_hand: bool) -> bool {
        if stopped_by_hand {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max } => code != 0 && max.is_none_or(|m| restarts < m),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run this long resets the back-off.
const RESET_AFTER: Duration = Duration::from_secs(10);

/// The wait before the next start, after a wait of `previous` (zero: none
/// yet) and a run that lasted `ran`.
pub fn next_delay(previous: Duration, ran: Duration) -> Duration {
    if previous.is_zero() || ran >= RESET_AFTER {
        return FIRST_DELAY;
    }
    (previous * 2).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_as_docker_writes_them() {
        assert_eq!(RestartPolicy::parse("no"), Ok(RestartPolicy::No));
        assert_eq!(RestartPolicy::parse("always"), Ok(RestartPolicy::Always));
        assert_eq!(
            RestartPolicy::parse("on-failure:3"),
            Ok(RestartPolicy::OnFailure { max: Some(3) })
        );
        assert_eq!(
            RestartPolicy::parse("on-failure"),
            Ok(RestartPolicy::OnFailure { max: None })
        );
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
        assert!(RestartPolicy::parse("always:2").is_err());
    }

    #[test]
    fn when_to_restart() {
        let f3 = RestartPolicy::OnFailure { max: Some(3) };
        assert!(f3.wants_restart(1, 0, false));
        assert!(f3.wants_restart(1, 2, false));
        assert!(!f3.wants_restart(1, 3, false));
        assert!(!f3.wants_restart(0, 0, false));
        assert!(RestartPolicy::Always.wants_restart(0, 99, false));
        assert!(!RestartPolicy::Always.wants_restart(0, 0, true));
        assert!(!RestartPolicy::No.wants_restart(1, 0, false));
    }

    #[test]
    fn back_off_doubles_to_a_minute_and_resets() {
        let short = Duration::from_secs(1);
        let mut d = next_delay(Duration::ZERO, short);
        assert_eq!(d, Duration::from_millis(100));
        d = next_delay(d, short);
        assert_eq!(d, Duration::from_millis(200));
        for _ in 0..20 {
            d = next_delay(d, short);
        }
        assert_eq!(d, Duration::from_secs(60));
        assert_eq!(
            next_delay(d, Duration::from_secs(10)),
            Duration::from_millis(100)
        );
    }
}
