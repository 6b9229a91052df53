//! When a CronJob's runs fall, computed from its status and the clock alone
//! (no API), as upstream's controller does it: only the most recent missed
//! run is started, never a backlog, and none older than
//! `startingDeadlineSeconds`.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::api::cron::Schedule;

/// More missed runs than this gets a warning (upstream's figure).
pub const MANY_MISSED: u32 = 100;

/// The most recent run due at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The scheduled time of the run to start, if one is due.
    pub at: Option<Timestamp>,
    /// More than [`MANY_MISSED`] runs were missed since `earliest`.
    pub many_missed: bool,
}

/// What the schedule says at `now` for a CronJob made at `created`, last
/// run (scheduled) at `last`, with `deadline` = startingDeadlineSeconds.
pub fn due(
    schedule: &Schedule,
    tz: &TimeZone,
    created: Timestamp,
    last: Option<Timestamp>,
    deadline: Option<i64>,
    now: Timestamp,
) -> Due {
    let mut earliest = last.unwrap_or(created);
    // Nothing older than the deadline will be started: no need to count it.
    if let Some(d) = deadline {
        let cutoff = now
            .checked_sub(SignedDuration::from_secs(d))
            .unwrap_or(earliest);
        if cutoff > earliest {
            earliest = cutoff;
        }
    }
    let none = Due {
        at: None,
        many_missed: false,
    };
    let Some(first) = schedule.next(earliest, tz).filter(|t| *t <= now) else {
        return none;
    };
    let mut at = first;
    let mut missed = 1u32;
    while let Some(n) = schedule.next(at, tz).filter(|t| *t <= now) {
        at = n;
        missed += 1;
        if missed > MANY_MISSED {
            return Due {
                at: Some(latest_before(schedule, tz, at, now)),
                many_missed: true,
            };
        }
    }
    Due {
        at: Some(at),
        many_missed: false,
    }
}

/// The last scheduled time at or before `now`, knowing `known` is one: look
/// back from `now` over a window that doubles until it holds a run, rather
/// than walking every run since `known` (a minutely CronJob suspended for a
/// year missed half a million).
fn latest_before(
    schedule: &Schedule,
    tz: &TimeZone,
    known: Timestamp,
    now: Timestamp,
) -> Timestamp {
    let mut back = SignedDuration::from_secs(60);
    while now - back > known {
        if let Some(start) = schedule.next(now - back, tz).filter(|t| *t <= now) {
            let mut at = start;
            while let Some(n) = schedule.next(at, tz).filter(|t| *t <= now) {
                at = n;
            }
            return at;
        }
        back *= 2;
    }
    let mut at = known;
    while let Some(n) = schedule.next(at, tz).filter(|t| *t <= now) {
        at = n;
    }
    at
}

/// When to look again after `now`: the schedule's next time, counted for
/// `@every` from the CronJob's own runs (`anchor`: its last scheduled run, or
/// its creation), not from whenever the pass happens.
pub fn next_after(
    schedule: &Schedule,
    tz: &TimeZone,
    anchor: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    match schedule {
        Schedule::Every(secs) => {
            let secs = (*secs).max(1);
            let since = now.as_second().saturating_sub(anchor.as_second()).max(0);
            let steps = since / secs + 1;
            anchor
                .checked_add(SignedDuration::from_secs(steps.saturating_mul(secs)))
                .ok()
        }
        Schedule::Fields(_) => schedule.next(now, tz),
    }
}

/// The name of the Job for the run scheduled at `at`: the same for every
/// attempt, so a run is never started twice.
pub fn job_name(cronjob: &str, at: Timestamp) -> String {
    format!("{cronjob}-{}", at.as_second().div_euclid(60))
}

/// True when a run scheduled at `at` is too late to start at `now`.
pub fn too_late(at: Timestamp, deadline: Option<i64>, now: Timestamp) -> bool {
    deadline.is_some_and(|d| {
        at.checked_add(SignedDuration::from_secs(d))
            .is_ok_and(|end| end < now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cron::parse_standard;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn due_at(
        spec: &str,
        created: &str,
        last: Option<&str>,
        deadline: Option<i64>,
        now: &str,
    ) -> Due {
        due(
            &parse_standard(spec).unwrap(),
            &TimeZone::UTC,
            t(created),
            last.map(t),
            deadline,
            t(now),
        )
    }

    #[test]
    fn nothing_due_before_the_first_run() {
        let d = due_at(
            "0 * * * *",
            "2026-12-03T10:05:00Z",
            None,
            None,
            "2026-12-03T10:59:59Z",
        );
        assert_eq!(d.at, None);
    }

    #[test]
    fn the_run_that_fell_is_due() {
        let d = due_at(
            "0 * * * *",
            "2026-12-03T10:05:00Z",
            None,
            None,
            "2026-12-03T11:00:01Z",
        );
        assert_eq!(d.at, Some(t("2026-12-03T11:00:00Z")));
        // Once started (lastScheduleTime), it is not due again.
        let d = due_at(
            "0 * * * *",
            "2026-12-03T10:05:00Z",
            Some("2026-12-03T11:00:00Z"),
            None,
            "2026-12-03T11:30:00Z",
        );
        assert_eq!(d.at, None);
    }

    #[test]
    fn after_an_outage_only_the_latest_missed_run() {
        let d = due_at(
            "*/10 * * * *",
            "2026-12-03T00:00:00Z",
            Some("2026-12-03T10:00:00Z"),
            None,
            "2026-12-03T12:34:00Z",
        );
        assert_eq!(d.at, Some(t("2026-12-03T12:30:00Z")));
        assert!(!d.many_missed);
    }

    #[test]
    fn many_missed_is_flagged_and_still_finds_the_latest() {
        let d = due_at(
            "* * * * *",
            "2025-12-03T00:00:00Z",
            Some("2025-12-03T00:00:00Z"),
            None,
            "2026-12-03T12:34:56Z",
        );
        assert!(d.many_missed);
        assert_eq!(d.at, Some(t("2026-12-03T12:34:00Z")));
        // Sparse runs: the look-back widens until it finds one.
        let d = due_at(
            "0 0 1 * *",
            "2010-01-01T00:00:00Z",
            None,
            None,
            "2026-12-03T12:00:00Z",
        );
        assert!(d.many_missed);
        assert_eq!(d.at, Some(t("2026-12-01T00:00:00Z")));
    }

    #[test]
    fn starting_deadline_bounds_the_look_back() {
        // A year missed, but only the last 200 s count: no warning.
        let d = due_at(
            "* * * * *",
            "2025-12-03T00:00:00Z",
            None,
            Some(200),
            "2026-12-03T12:34:56Z",
        );
        assert!(!d.many_missed);
        assert_eq!(d.at, Some(t("2026-12-03T12:34:00Z")));
        // Nothing fell within the deadline.
        let d = due_at(
            "0 * * * *",
            "2026-12-03T00:00:00Z",
            None,
            Some(60),
            "2026-12-03T12:34:00Z",
        );
        assert_eq!(d.at, None);
        assert!(too_late(
            t("2026-12-03T12:00:00Z"),
            Some(60),
            t("2026-12-03T12:01:01Z")
        ));
        assert!(!too_late(
            t("2026-12-03T12:00:00Z"),
            Some(60),
            t("2026-12-03T12:01:00Z")
        ));
        assert!(!too_late(
            t("2026-12-03T12:00:00Z"),
            None,
            t("2027-01-01T00:00:00Z")
        ));
    }

    #[test]
    fn every_is_counted_from_the_runs_not_the_pass() {
        let s = parse_standard("@every 5m").unwrap();
        let n = next_after(
            &s,
            &TimeZone::UTC,
            t("2026-12-03T10:00:00Z"),
            t("2026-12-03T10:09:00Z"),
        );
        assert_eq!(n, Some(t("2026-12-03T10:10:00Z")));
        let n = next_after(
            &s,
            &TimeZone::UTC,
            t("2026-12-03T10:00:00Z"),
            t("2026-12-03T10:10:00Z"),
        );
        assert_eq!(n, Some(t("2026-12-03T10:15:00Z")));
        // Huge deadlines do not overflow.
        assert!(!too_late(
            t("2026-12-03T10:00:00Z"),
            Some(i64::MAX / 2),
            t("2026-12-03T10:00:00Z")
        ));
        let d = due_at(
            "* * * * *",
            "2026-12-03T00:00:00Z",
            None,
            Some(i64::MAX / 2),
            "2026-12-03T00:10:30Z",
        );
        assert_eq!(d.at, Some(t("2026-12-03T00:10:00Z")));
    }

    #[test]
    fn job_names_are_minutes_since_the_epoch() {
        assert_eq!(
            job_name("hello", t("2026-12-03T12:34:00Z")),
            "hello-29938354"
        );
    }
}
