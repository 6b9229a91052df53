//! `run`/`create` flags for the health check, with docker's names,
//! defaults and messages (the check itself: runtime/container/health.rs).

use clap::Args;

use crate::runtime::container::health::{parse_go_duration, HealthConfig, HealthError};

#[derive(Debug, Args, Default)]
pub struct HealthArgs {
    /// Command to run to check health (run with /bin/sh -c).
    #[arg(long = "health-cmd", value_name = "CMD")]
    pub cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 30s).
    #[arg(
        long = "health-interval",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub interval: Option<String>,
    /// Consecutive failures needed to report unhealthy (default 3).
    #[arg(
        long = "health-retries",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub retries: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 30s).
    #[arg(
        long = "health-timeout",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub timeout: Option<String>,
    /// Start period for the container to initialize before starting
    /// health-retries countdown (ms|s|m|h) (default 0s).
    #[arg(
        long = "health-start-period",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h)
    /// (default 5s).
    #[arg(
        long = "health-start-interval",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
}

impl HealthArgs {
    /// The container's own health check settings (None: the image's, if
    /// any, as they are).
    pub fn config(&self) -> Result<Option<HealthConfig>, HealthError> {
        let duration = |v: &Option<String>, flag: &'static str| -> Result<i64, HealthError> {
            let Some(s) = v else { return Ok(0) };
            let ns = parse_go_duration(s, flag)?;
            if ns < 0 {
                return Err(HealthError::Negative(flag));
            }
            Ok(ns)
        };
        let interval = duration(&self.interval, "--health-interval")?;
        let timeout = duration(&self.timeout, "--health-timeout")?;
        let start_period = duration(&self.start_period, "--health-start-period")?;
        let start_interval = duration(&self.start_interval, "--health-start-interval")?;
        let retries = self.retries.unwrap_or(0);
        if retries < 0 {
            return Err(HealthError::Negative("--health-retries"));
        }
        let any = self.cmd.is_some()
            || interval != 0
            || timeout != 0
            || start_period != 0
            || start_interval != 0
            || retries != 0;
        if self.no_healthcheck {
            if any {
                return Err(HealthError::Conflict);
            }
            return Ok(Some(HealthConfig {
                test: vec!["NONE".into()],
                ..HealthConfig::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        let config = HealthConfig {
            test: self
                .cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_string(), c.clone()])
                .unwrap_or_default(),
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        };
        config.validate()?;
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_docker() {
        let a = HealthArgs {
            cmd: Some("curl -f localhost".into()),
            interval: Some("2s".into()),
            ..Default::default()
        };
        let c = a.config().unwrap().unwrap();
        assert_eq!(c.test, ["CMD-SHELL", "curl -f localhost"]);
        assert_eq!(c.interval, 2_000_000_000);
        assert_eq!(HealthArgs::default().config(), Ok(None));
        let conflict = HealthArgs {
            no_healthcheck: true,
            retries: Some(2),
            ..Default::default()
        };
        assert_eq!(conflict.config(), Err(HealthError::Conflict));
        let negative = HealthArgs {
            interval: Some("-1s".into()),
            ..Default::default()
        };
        assert_eq!(
            negative.config().unwrap_err().to_string(),
            "--health-interval cannot be negative"
        );
        let short = HealthArgs {
            cmd: Some("true".into()),
            timeout: Some("10us".into()),
            ..Default::default()
        };
        assert_eq!(
            short.config().unwrap_err().to_string(),
            "Timeout in Healthcheck cannot be less than 1ms"
        );
    }
}
