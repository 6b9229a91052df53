//! Health checks (`run --health-cmd …`, or the image's HEALTHCHECK), as
//! docker's: a probe command run in the container every interval (every
//! start interval during the start period) by the container's shim
//! (shim/probe.rs), its results kept on the record as docker's
//! `State.Health` (status, failing streak, the last five results).
//!
//! Statuses: `starting` until the first success; `healthy` after a
//! success; `unhealthy` after `retries` failures in a row (failures in the
//! start period, before any success, do not count).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Docker's defaults.
pub const DEFAULT_INTERVAL_NS: i64 = 30_000_000_000;
pub const DEFAULT_TIMEOUT_NS: i64 = 30_000_000_000;
pub const DEFAULT_START_INTERVAL_NS: i64 = 5_000_000_000;
pub const DEFAULT_RETRIES: i64 = 3;
/// Results kept, and the output kept of each (docker's).
const MAX_LOG: usize = 5;
pub const MAX_OUTPUT: usize = 4096;

/// The health check as docker's container and image configs hold it
/// (`Healthcheck`; durations in nanoseconds, 0 meaning "inherit or
/// default").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["CMD-SHELL", cmd]`, `["CMD", argv…]`, `["NONE"]`, or empty
    /// (inherit the image's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HealthError {
    #[error("{0} cannot be negative")]
    Negative(&'static str),
    #[error("{0} in Healthcheck cannot be less than 1ms")]
    TooShort(&'static str),
    #[error("--no-healthcheck conflicts with --health-* options")]
    Conflict,
    #[error("invalid duration {0:?} for {1}: expected a number with a unit, such as 30s, 1m30s or 500ms")]
    Duration(String, &'static str),
}

impl HealthConfig {
    /// Docker's checks of a container's health check settings.
    pub fn validate(&self) -> Result<(), HealthError> {
        for (v, name) in [
            (self.interval, "Interval"),
            (self.timeout, "Timeout"),
            (self.start_period, "StartPeriod"),
            (self.start_interval, "StartInterval"),
        ] {
            if v != 0 && v < 1_000_000 {
                return Err(HealthError::TooShort(name));
            }
        }
        if self.retries < 0 {
            return Err(HealthError::Negative("Retries in Healthcheck"));
        }
        Ok(())
    }

    /// The image's health check (its config's `Healthcheck`), if any.
    pub fn of_image(image_config: &serde_json::Value) -> Option<HealthConfig> {
        image_config
            .get("Healthcheck")
            .and_then(|h| serde_json::from_value(h.clone()).ok())
    }

    /// This container's settings over the image's, as docker merges them
    /// at create: what is unset comes from the image.
    pub fn over(&self, image: Option<&HealthConfig>) -> HealthConfig {
        let Some(image) = image else {
            return self.clone();
        };
        let pick = |mine: i64, theirs: i64| if mine != 0 { mine } else { theirs };
        HealthConfig {
            test: if self.test.is_empty() {
                image.test.clone()
            } else {
                self.test.clone()
            },
            interval: pick(self.interval, image.interval),
            timeout: pick(self.timeout, image.timeout),
            start_period: pick(self.start_period, image.start_period),
            start_interval: pick(self.start_interval, image.start_interval),
            retries: pick(self.retries, image.retries),
        }
    }

    /// The command to probe with, or None when the check is off.
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
            }
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            _ => None,
        }
    }

    fn or(v: i64, default: i64) -> i64 {
        if v > 0 {
            v
        } else {
            default
        }
    }

    pub fn interval_ns(&self) -> i64 {
        Self::or(self.interval, DEFAULT_INTERVAL_NS)
    }

    pub fn timeout_ns(&self) -> i64 {
        Self::or(self.timeout, DEFAULT_TIMEOUT_NS)
    }

    pub fn start_interval_ns(&self) -> i64 {
        Self::or(self.start_interval, DEFAULT_START_INTERVAL_NS)
    }

    pub fn retries(&self) -> i64 {
        Self::or(self.retries, DEFAULT_RETRIES)
    }
}

/// The container's effective health check: its own over its image's;
/// None when there is none or it is `NONE`.
pub fn effective(
    own: Option<&HealthConfig>,
    image_config: &serde_json::Value,
) -> Option<HealthConfig> {
    let image = HealthConfig::of_image(image_config);
    let merged = match own {
        Some(own) => own.over(image.as_ref()),
        None => image?,
    };
    merged.command().is_some().then_some(merged)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result (docker's `HealthcheckResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProbeResult {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// 0 healthy; anything else a failure (-1: it did not run or finish).
    pub exit_code: i64,
    pub output: String,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthState {
    pub status: HealthStatus,
    pub failing_streak: i64,
    pub log: Vec<ProbeResult>,
}

impl HealthState {
    /// Take one result; `in_start_period`: the probe began within the
    /// start period.
    pub fn record(&mut self, result: ProbeResult, in_start_period: bool, retries: i64) {
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.log.push(result);
        if self.log.len() > MAX_LOG {
            let extra = self.log.len() - MAX_LOG;
            self.log.drain(..extra);
        }
    }
}

/// Go's time.ParseDuration, which docker's flags take: a sequence of
/// decimal numbers with units (ns, us, µs, ms, s, m, h), optionally signed;
/// "0" alone. Nanoseconds.
pub fn parse_go_duration(s: &str, flag: &'static str) -> Result<i64, HealthError> {
    let bad = || HealthError::Duration(s.to_string(), flag);
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    let ns = total.round() as i64;
    Ok(if neg { -ns } else { ns })
}

/// Docker's rendering of a duration in its messages (`30s`, `1m30s`,
/// `500ms`), as Go prints a time.Duration.
pub fn go_duration_text(ns: i64) -> String {
    crate::api::protobuf::go_duration(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let p = |s| parse_go_duration(s, "--health-interval");
        assert_eq!(p("30s"), Ok(30_000_000_000));
        assert_eq!(p("1m30s"), Ok(90_000_000_000));
        assert_eq!(p("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(p("500ms"), Ok(500_000_000));
        assert_eq!(p("10us"), Ok(10_000));
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("-2s"), Ok(-2_000_000_000));
        for bad in ["", "10", "s", "1x", "1.2.3s", "--1s"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(go_duration_text(30_000_000_000), "30s");
    }

    #[test]
    fn merges_over_the_image_and_validates() {
        let image = serde_json::json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000i64, "Retries": 7}});
        let own = HealthConfig {
            interval: 2_000_000_000,
            ..Default::default()
        };
        let e = effective(Some(&own), &image).unwrap();
        assert_eq!(e.test, ["CMD", "true"]);
        assert_eq!(
            (e.interval, e.retries(), e.timeout_ns()),
            (2_000_000_000, 7, DEFAULT_TIMEOUT_NS)
        );
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(effective(Some(&none), &image), None);
        assert_eq!(effective(None, &serde_json::json!({})), None);
        let shell = HealthConfig {
            test: vec!["CMD-SHELL".into(), "exit 0".into()],
            ..Default::default()
        };
        assert_eq!(shell.command().unwrap(), ["/bin/sh", "-c", "exit 0"]);
        let short = HealthConfig {
            interval: 10,
            ..Default::default()
        };
        assert_eq!(short.validate(), Err(HealthError::TooShort("Interval")));
    }

    fn result(code: i64) -> ProbeResult {
        ProbeResult {
            start: Utc::now(),
            end: Utc::now(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn statuses_as_docker() {
        let mut h = HealthState::default();
        // Failures in the start period, before any success, do not count.
        h.record(result(1), true, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        h.record(result(1), false, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 1));
        h.record(result(0), false, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        // After a success, the start period no longer shields failures.
        h.record(result(1), true, 2);
        h.record(result(-1), true, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 2));
        for _ in 0..10 {
            h.record(result(1), false, 2);
        }
        assert_eq!(h.log.len(), MAX_LOG);
    }
}
