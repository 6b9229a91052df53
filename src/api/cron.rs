//! CronJob schedules: the standard five-field cron syntax, the `@` macros and
//! `@every <duration>`, as the parser kube-apiserver and the CronJob
//! controller share: the same error texts, the same meaning (a day matches
//! when its day of month *or* its day of week does, unless either field is
//! `*`), the same search horizon (five years).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

const DESCRIPTORS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];
const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// (min, max, names starting at `min`)
const BOUNDS: [(u64, u64, &[&str]); 5] = [
    (0, 59, &[]),
    (0, 23, &[]),
    (1, 31, &[]),
    (1, 12, MONTHS),
    (0, 6, DAYS),
];

/// How far ahead [`Schedule::next`] looks before it says "never" (a
/// schedule such as `0 0 30 2 *` never comes).
const HORIZON_YEARS: i16 = 5;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Five fields: one bit per accepted value.
    Fields(Fields),
    /// `@every <duration>`: whole seconds, at least one.
    Every(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day of month, then day of week, given as `*` or `?` (without a step
    /// above one): then a day must match both fields, otherwise either.
    any: [bool; 2],
}

/// Checks a schedule; the error is the message the apiserver shows after
/// `Invalid value: "<schedule>": `.
pub fn parse_standard(spec: &str) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if let Some(rest) = spec.strip_prefix("@every ") {
        return match crate::api::duration::parse_go(rest) {
            // Shorter than a second means every second, as upstream.
            Some(secs) => Ok(Schedule::Every((secs.trunc() as i64).max(1))),
            None => Err(format!(
                "failed to parse duration {spec}: time: invalid duration \"{rest}\""
            )),
        };
    }
    let spec = if spec.starts_with('@') {
        match DESCRIPTORS.iter().find(|(d, _)| *d == spec) {
            Some((_, fields)) => *fields,
            None => return Err(format!("unrecognized descriptor: {spec}")),
        }
    } else {
        spec
    };
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let mut bits = [0u64; 5];
    let mut any = [false; 2];
    for (i, (field, (min, max, names))) in fields.iter().zip(BOUNDS).enumerate() {
        for part in field.split(',') {
            let (b, star) = range_bits(part, min, max, names)?;
            bits[i] |= b;
            if i >= 2 && i != 3 && star {
                any[if i == 2 { 0 } else { 1 }] = true;
            }
        }
    }
    Ok(Schedule::Fields(Fields {
        minutes: bits[0],
        hours: bits[1],
        days: bits[2],
        months: bits[3],
        weekdays: bits[4],
        any,
    }))
}

/// The bits of one comma-separated part, and whether it is a bare `*`/`?`.
fn range_bits(expr: &str, min: u64, max: u64, names: &[&str]) -> Result<(u64, bool), String> {
    let slash: Vec<&str> = expr.split('/').collect();
    if slash.len() > 2 {
        return Err(format!("too many slashes: {expr}"));
    }
    let range: Vec<&str> = slash[0].split('-').collect();
    if range.len() > 2 {
        return Err(format!("too many hyphens: {expr}"));
    }
    let mut star = false;
    let (start, mut end) = if range[0] == "*" || range[0] == "?" {
        star = true;
        (min, max)
    } else {
        let start = value(range[0], min, names)?;
        let end = match range.get(1) {
            Some(e) => value(e, min, names)?,
            None => start,
        };
        (start, end)
    };
    let mut step = 1;
    if let Some(s) = slash.get(1) {
        step = parse_int(s)?;
        if step == 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
        // `5/15` means from 5 to the end, every 15.
        if range.len() == 1 && !star {
            end = max;
        }
        if step > 1 {
            star = false;
        }
    }
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    let bits = (start..=end)
        .step_by(step as usize)
        .fold(0u64, |b, v| b | 1 << v);
    Ok((bits, star))
}

fn value(s: &str, min: u64, names: &[&str]) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(min + i as u64);
    }
    parse_int(s)
}

fn parse_int(s: &str) -> Result<u64, String> {
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {s}")),
        Ok(n) => Ok(n as u64),
        Err(_) => Err(format!(
            "failed to parse int from {s}: strconv.Atoi: parsing \"{s}\": invalid syntax"
        )),
    }
}

impl Schedule {
    /// The first time strictly after `after` that the schedule names, read
    /// on the wall clock of `tz`; None when none comes within five years.
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // Schedules fire on whole seconds.
        let whole = Timestamp::from_second(after.as_second()).ok()?;
        match self {
            Schedule::Every(secs) => whole
                .checked_add(jiff::SignedDuration::from_secs(*secs))
                .ok(),
            Schedule::Fields(f) => f.next(whole, tz),
        }
    }
}

impl Fields {
    fn day_matches(&self, dt: DateTime) -> bool {
        let dom = self.days & 1 << dt.day() != 0;
        let dow = self.weekdays & 1 << dt.weekday().to_sunday_zero_offset() != 0;
        if self.any[0] || self.any[1] {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = tz.to_datetime(after);
        // The next whole minute after `after`, on the wall clock.
        let mut dt = local
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = local.year().saturating_add(HORIZON_YEARS);
        // Each step moves at least a minute and skips a whole month, day or
        // hour where it can: a few thousand steps cover the horizon.
        for _ in 0..200_000 {
            if dt.year() > limit {
                return None;
            }
            if self.months & 1 << dt.month() == 0 {
                dt = dt
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .start_of_day();
                continue;
            }
            if !self.day_matches(dt) {
                dt = dt.start_of_day().checked_add(1.day()).ok()?;
                continue;
            }
            if self.hours & 1 << dt.hour() == 0 {
                dt = dt
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if self.minutes & 1 << dt.minute() == 0 {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            // A wall time skipped by a clock change runs just after it; one
            // repeated runs the first time.
            let ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
            if ts > after {
                return Some(ts);
            }
            dt = dt.checked_add(1.minute()).ok()?;
        }
        None
    }
}

/// The time zone a CronJob's `timeZone` names; the error is the message
/// the apiserver shows after `Invalid value: "<zone>": `.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() {
        return Err("timeZone must be nil or non-empty string".into());
    }
    if name.eq_ignore_ascii_case("local") {
        return Err(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .into(),
        );
    }
    if name.contains(char::is_whitespace) {
        return Err(format!("unknown time zone {name}"));
    }
    TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))
}

/// The zone a CronJob without `timeZone` runs in: the server's own, as
/// upstream's controller uses its host's.
pub fn local_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * *",
            "0 9-17 * * MON-FRI",
            "15,45 */2 1 jan,jul ?",
            "@hourly",
            "@every 1h30m",
        ] {
            assert!(parse_standard(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            parse_standard("x").unwrap_err(),
            "expected exactly 5 fields, found 1: [x]"
        );
        assert_eq!(
            parse_standard("61 * * * *").unwrap_err(),
            "end of range (61) above maximum (59): 61"
        );
        assert_eq!(
            parse_standard("* * 0 * *").unwrap_err(),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            parse_standard("a * * * *").unwrap_err(),
            "failed to parse int from a: strconv.Atoi: parsing \"a\": invalid syntax"
        );
        assert_eq!(
            parse_standard("@often").unwrap_err(),
            "unrecognized descriptor: @often"
        );
        assert_eq!(
            parse_standard("99999999999 * * * *").unwrap_err(),
            "end of range (99999999999) above maximum (59): 99999999999"
        );
        assert!(parse_standard("TZ=UTC * * * * *").is_err());
        assert!(parse_standard("*/0 * * * *").is_err());
        assert!(parse_standard("@every 1x").is_err());
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next_utc(spec: &str, after: &str) -> Option<String> {
        parse_standard(spec)
            .unwrap()
            .next(at(after), &TimeZone::UTC)
            .map(|t| t.to_string())
    }

    #[test]
    fn next_times() {
        let n = |spec, after| next_utc(spec, after).unwrap_or_default();
        // Strictly after, on whole minutes.
        assert_eq!(
            n("* * * * *", "2026-12-03T10:00:00Z"),
            "2026-12-03T10:01:00Z"
        );
        assert_eq!(
            n("* * * * *", "2026-12-03T10:00:59.9Z"),
            "2026-12-03T10:01:00Z"
        );
        assert_eq!(
            n("*/15 * * * *", "2026-12-03T10:07:00Z"),
            "2026-12-03T10:15:00Z"
        );
        assert_eq!(
            n("5/20 * * * *", "2026-12-03T10:26:00Z"),
            "2026-12-03T10:45:00Z"
        );
        assert_eq!(n("@hourly", "2026-12-03T23:30:00Z"), "2026-12-04T00:00:00Z");
        assert_eq!(
            n("@monthly", "2026-12-03T10:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            n("0 9-17 * * MON-FRI", "2026-12-04T17:30:00Z"),
            "2026-12-07T09:00:00Z"
        );
        assert_eq!(
            n("0 0 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        // Both days restricted: either matches (the 13th, or a Friday).
        assert_eq!(
            n("0 0 13 * 5", "2026-12-03T00:00:00Z"),
            "2026-12-04T00:00:00Z"
        );
        assert_eq!(
            n("0 0 13 * 5", "2026-12-04T00:00:00Z"),
            "2026-12-11T00:00:00Z"
        );
        assert_eq!(
            n("0 0 13 * 5", "2026-12-11T00:00:00Z"),
            "2026-12-13T00:00:00Z"
        );
        // A day-of-month `*` with a step is a restriction: OR again.
        assert_eq!(
            n("0 0 */10 * 1", "2026-12-01T00:00:00Z"),
            "2026-12-07T00:00:00Z"
        );
        assert_eq!(
            n("@every 90s", "2026-12-03T10:00:00.5Z"),
            "2026-12-03T10:01:30Z"
        );
        assert_eq!(next_utc("0 0 30 2 *", "2026-01-01T00:00:00Z"), None);
    }

    #[test]
    fn next_in_a_zone() {
        let berlin = zone("Europe/Berlin").unwrap();
        let s = parse_standard("30 2 * * *").unwrap();
        // 02:30 in Berlin is 01:30 UTC in winter.
        assert_eq!(
            s.next(at("2026-12-03T00:00:00Z"), &berlin)
                .unwrap()
                .to_string(),
            "2026-12-03T01:30:00Z"
        );
        // 29 March 2026: 02:30 does not exist; the run comes just after.
        let t = s.next(at("2026-03-28T12:00:00Z"), &berlin).unwrap();
        assert_eq!(t.to_string(), "2026-03-29T01:30:00Z");
        assert!(zone("Mars/Olympus")
            .unwrap_err()
            .contains("unknown time zone"));
        assert!(zone("Local").is_err());
        assert!(zone("").is_err());
    }
}
