//! Human-readable durations exactly as kubectl prints them in AGE columns.
//!
//! A port of `k8s.io/apimachinery/pkg/util/duration.HumanDuration`: kubectl
//! computes nothing itself, so every AGE, LAST SEEN and DURATION cell the
//! server sends must already be in this form ("5s", "3m2s", "15m", "3h5m",
//! "2d3h", "2y1d").

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_MINUTE: i128 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i128 = 60 * NANOS_PER_MINUTE;

/// Total nanoseconds; i128 so that no duration chrono can hold overflows
/// (Go's `time.Duration` is i64 nanoseconds, ~292 years, which we exceed safely).
fn total_nanos(d: chrono::Duration) -> i128 {
    i128::from(d.num_seconds()) * NANOS_PER_SECOND + i128::from(d.subsec_nanos())
}

/// `HumanDuration`: a succinct representation with ~2-3 significant figures.
pub fn human_duration(d: chrono::Duration) -> String {
    let ns = total_nanos(d);
    // Go truncates toward zero (`int(d.Seconds())`); i128 division does too.
    let seconds = ns / NANOS_PER_SECOND;
    // Up to 2s of clock skew between machines is reported as "0s" rather than
    // as an error, as the real function does.
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = ns / NANOS_PER_MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = ns / NANOS_PER_HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{}h", hours / 24, h)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{}d", hours / 24 / 365, dy)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Age of a timestamp as of `now`, or `<unknown>` when the timestamp is
/// missing or unparsable (the printers' `translateTimestampSince`).
pub fn since(timestamp: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> String {
    match timestamp.and_then(parse_time) {
        Some(t) => human_duration(now.signed_duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

/// Parses an RFC 3339 `Time` or `MicroTime` as Kubernetes writes them.
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Go's `time.ParseDuration`: `[-+]?(\d*\.?\d+(ns|us|µs|ms|s|m|h))+` or
/// "0", in seconds.
pub fn parse_go(s: &str) -> Option<f64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if s == "0" {
        return Some(0.0);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..n];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let x: f64 = num.parse().ok()?;
        rest = &rest[n..];
        let (unit, scale) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))?;
        rest = &rest[unit.len()..];
        total += x * scale;
    }
    // Go's durations are int64 nanoseconds: about 2562047 hours at most.
    if total > 9.2e9 {
        return None;
    }
    Some(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn ms(n: i64) -> Duration {
        Duration::milliseconds(n)
    }
    fn s(n: i64) -> Duration {
        Duration::seconds(n)
    }
    fn m(n: i64) -> Duration {
        Duration::minutes(n)
    }
    fn h(n: i64) -> Duration {
        Duration::hours(n)
    }

    /// The cases of apimachinery's TestHumanDuration and
    /// TestHumanDurationBoundaries, with the real function's outputs.
    #[test]
    fn matches_apimachinery_table() {
        let cases: Vec<(Duration, &str)> = vec![
            (s(1), "1s"),
            (s(70), "70s"),
            (s(190), "3m10s"),
            (m(70), "70m"),
            (h(47), "47h"),
            (h(49), "2d1h"),
            (h(8 * 24 + 2), "8d"),
            (h(367 * 24), "367d"),
            (h(365 * 2 * 24 + 25), "2y1d"),
            (h(365 * 8 * 24 + 2), "8y"),
            (s(-2), "<invalid>"),
            (s(-2) + Duration::nanoseconds(1), "0s"),
            (s(0), "0s"),
            (s(1) - ms(1), "0s"),
            (m(2) - ms(1), "119s"),
            (m(2), "2m"),
            (m(2) + s(1), "2m1s"),
            (m(10) - ms(1), "9m59s"),
            (m(10), "10m"),
            (m(10) + s(1), "10m"),
            (h(3) - ms(1), "179m"),
            (h(3), "3h"),
            (h(3) + m(1), "3h1m"),
            (h(8) - ms(1), "7h59m"),
            (h(8), "8h"),
            (h(8) + m(59), "8h"),
            (h(48) - ms(1), "47h"),
            (h(48), "2d"),
            (h(49), "2d1h"),
            (h(8 * 24) - ms(1), "7d23h"),
            (h(8 * 24), "8d"),
            (h(8 * 24 + 23), "8d"),
            (h(2 * 365 * 24) - ms(1), "729d"),
            (h(2 * 365 * 24), "2y"),
            (h(2 * 365 * 24 + 23), "2y"),
            (h(2 * 365 * 24 + 23) + m(59), "2y"),
            (h(2 * 365 * 24 + 24) - ms(1), "2y"),
            (h(2 * 365 * 24 + 24), "2y1d"),
            (h(3 * 365 * 24), "3y"),
            (h(7 * 365 * 24), "7y"),
            (h(8 * 365 * 24) - ms(1), "7y364d"),
            (h(8 * 365 * 24), "8y"),
            (h(8 * 365 * 24 + 364 * 24), "8y"),
            (h(9 * 365 * 24), "9y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "duration {d:?}");
        }
    }

    #[test]
    fn since_handles_missing_and_micro_time() {
        let now = parse_time("2026-11-25T09:00:00Z").unwrap_or_default();
        assert_eq!(since(None, now), "<unknown>");
        assert_eq!(since(Some("garbage"), now), "<unknown>");
        assert_eq!(since(Some("2026-11-25T08:58:00Z"), now), "2m");
        assert_eq!(since(Some("2026-11-25T08:59:59.500000Z"), now), "0s");
        assert_eq!(since(Some("2026-11-24T05:00:00Z"), now), "28h");
    }
}
