//! `skiff stats`: docker's live table of CPU, memory and PIDs per running
//! container, read straight from each container's cgroup (no daemon keeps
//! history, so CPU % comes from two samples about a second apart).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::runtime::container::cgroups::{self, Stats};
use crate::runtime::container::records::{Record, Records};
use crate::runtime::container::short_id;
use crate::runtime::engine::Engine;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Containers to show (default: every running one).
    pub containers: Vec<String>,
}

/// How long between the two CPU samples of one table.
const INTERVAL: Duration = Duration::from_secs(1);

/// One container's figures for a table row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub name: String,
    pub cpu_percent: f64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub pids: u64,
}

/// CPU % as docker computes it: the container's CPU time over the machine's
/// (wall time × online CPUs), scaled by the CPU count, so 100% is one full
/// CPU and a container using N CPUs shows N×100%.
pub fn cpu_percent(cpu_delta_nanos: u64, wall: Duration, online_cpus: u32) -> f64 {
    let system = wall.as_nanos() as f64 * f64::from(online_cpus.max(1));
    if system <= 0.0 {
        return 0.0;
    }
    cpu_delta_nanos as f64 / system * f64::from(online_cpus.max(1)) * 100.0
}

/// Docker prints memory in binary units with two decimals ("1.5MiB").
pub fn human_binary(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let s = format!("{value:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", UNITS[unit])
}

fn online_cpus() -> u32 {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { nix::libc::sysconf(nix::libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).unwrap_or(1).max(1)
}

/// The host's memory, shown as the limit of a container without one (as
/// docker does).
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn cgroup_path(r: &Record) -> Option<&str> {
    r.config.cgroup()
}

/// Sample every container twice, `INTERVAL` apart; containers whose cgroup
/// went away in between (they exited) are left out.
fn sample(records: &[Record]) -> Vec<Row> {
    let first: Vec<Option<(Stats, Instant)>> = records
        .iter()
        .map(|r| {
            let s = cgroups::stats(cgroup_path(r)?).ok()?;
            Some((s, Instant::now()))
        })
        .collect();
    std::thread::sleep(INTERVAL);
    let cpus = online_cpus();
    let host = host_memory();
    records
        .iter()
        .zip(first)
        .filter_map(|(r, first)| {
            let (before, at) = first?;
            let after = match cgroups::stats(cgroup_path(r)?) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(id = %r.id, "no stats: {e}");
                    return None;
                }
            };
            let delta = after.cpu_usage_nanos.saturating_sub(before.cpu_usage_nanos);
            Some(Row {
                id: short_id(&r.id).to_string(),
                name: r.name.clone(),
                cpu_percent: cpu_percent(delta, at.elapsed(), cpus),
                mem_usage: after.memory_usage_bytes,
                // v1 reports "no limit" as a huge number: cap it at the host's.
                mem_limit: after
                    .memory_limit_bytes
                    .filter(|&l| host == 0 || l < host)
                    .unwrap_or(host),
                pids: after.pids_current,
            })
        })
        .collect()
}

pub fn render(rows: &[Row]) -> String {
    let mut table = super::util::listing([
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "PIDS",
    ]);
    for r in rows {
        let mem_pct = if r.mem_limit > 0 {
            r.mem_usage as f64 / r.mem_limit as f64 * 100.0
        } else {
            0.0
        };
        table.add_row([
            r.id.clone(),
            r.name.clone(),
            format!("{:.2}%", r.cpu_percent),
            format!(
                "{} / {}",
                human_binary(r.mem_usage),
                human_binary(r.mem_limit)
            ),
            format!("{mem_pct:.2}%"),
            r.pids.to_string(),
        ]);
    }
    super::util::listing_text(&table)
}

fn selected(state: &Records, names: &[String]) -> anyhow::Result<Vec<Record>> {
    if names.is_empty() {
        return Ok(state
            .list()?
            .into_iter()
            .filter(|r| r.status.is_running())
            .collect());
    }
    names
        .iter()
        .map(|n| Ok(state.find(n)?))
        .collect::<anyhow::Result<_>>()
}

pub fn stats(engine: &Engine, args: StatsArgs) -> anyhow::Result<()> {
    let state = engine.records()?;
    let mut stdout = std::io::stdout();
    let clear = stdout.is_terminal();
    loop {
        // Re-read each round: containers come and go while streaming.
        let records = selected(state, &args.containers)?;
        let table = render(&sample(&records));
        if clear && !args.no_stream {
            // Docker redraws in place on a terminal.
            write!(stdout, "\x1b[2J\x1b[H").context("writing the table")?;
        }
        stdout
            .write_all(table.as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing the table")?;
        if args.no_stream {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_sizes() {
        // Half a CPU for a second on a 4-CPU machine is 50%, as in docker.
        let p = cpu_percent(500_000_000, Duration::from_secs(1), 4);
        assert!((p - 50.0).abs() < 1e-9, "{p}");
        assert_eq!(cpu_percent(5, Duration::ZERO, 2), 0.0);
        assert_eq!(human_binary(0), "0B");
        assert_eq!(human_binary(64 << 20), "64MiB");
        assert_eq!(human_binary(1536 * 1024), "1.5MiB");
        let table = render(&[Row {
            id: "0123456789ab".into(),
            name: "web".into(),
            cpu_percent: 1.234,
            mem_usage: 1 << 20,
            mem_limit: 64 << 20,
            pids: 3,
        }]);
        let mut lines = table.lines();
        assert!(lines.next().unwrap_or_default().starts_with("CONTAINER ID"));
        let row = lines.next().unwrap_or_default();
        for want in ["0123456789ab", "web", "1.23%", "1MiB / 64MiB", "1.56%", "3"] {
            assert!(row.contains(want), "{want} in {row}");
        }
    }
}
