//! `skiff ps`: the containers, as docker lists them — the default table,
//! or `--format` (format.rs) over docker's fields, narrowed by `--filter`
//! (id, name, label, status, exited, ancestor), `-n`/`-l`, `-q`,
//! `--no-trunc`.

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{json, Value};

use crate::runtime::container::containerspec::MountSource;
use crate::runtime::container::lifecycle;
use crate::runtime::container::records::{Record, Status};
use crate::runtime::container::short_id;
use crate::runtime::engine::Engine;

use super::format::Format;

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Only IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// The N containers created last (any state).
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<usize>,
    /// The container created last (any state).
    #[arg(short, long)]
    pub latest: bool,
    /// Full IDs and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// KEY=VALUE: id, name, label (KEY or KEY=VALUE), status, exited,
    /// ancestor; repeated keys match any, different keys all.
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// `table`, `table TEMPLATE`, `json` or a Go template over .ID, .Image,
    /// .Command, .CreatedAt, .RunningFor, .Ports, .State, .Status, .Size,
    /// .Names, .Labels, .Mounts, .Networks.
    #[arg(long)]
    pub format: Option<String>,
}

/// Column titles of docker's fields.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// The parsed `--filter`s: (key, value) pairs.
struct Filters(Vec<(String, String)>);

impl Filters {
    fn parse(given: &[String]) -> anyhow::Result<Filters> {
        let mut out = Vec::new();
        for f in given {
            let Some((k, v)) = f.split_once('=') else {
                anyhow::bail!("bad format of filter (expected name=value): {f}");
            };
            let k = k.trim().to_ascii_lowercase();
            if ![
                "id", "name", "label", "status", "exited", "ancestor", "health",
            ]
            .contains(&k.as_str())
            {
                anyhow::bail!("invalid filter '{k}'");
            }
            if k == "status"
                && ![
                    "created",
                    "restarting",
                    "running",
                    "removing",
                    "paused",
                    "exited",
                    "dead",
                ]
                .contains(&v)
            {
                anyhow::bail!(
                    "invalid filter 'status={v}': expected created, restarting, running, removing, paused, exited or dead"
                );
            }
            if k == "health" && !["starting", "healthy", "unhealthy", "none"].contains(&v) {
                anyhow::bail!("Unrecognised filter value for health: {v}");
            }
            if k == "exited" && v.parse::<i32>().is_err() {
                anyhow::bail!("invalid filter 'exited={v}': expected an exit code");
            }
            out.push((k, v.to_string()));
        }
        Ok(Filters(out))
    }

    /// Whether the filters name states beyond running (then all are listed).
    fn wants_all(&self) -> bool {
        self.0.iter().any(|(k, _)| k == "status" || k == "exited")
    }

    fn one(key: &str, value: &str, r: &Record) -> bool {
        match key {
            "id" => r.id.starts_with(value),
            // Docker matches names as a pattern, in practice a substring.
            "name" => r.name.contains(value.trim_start_matches('/')),
            "label" => match value.split_once('=') {
                Some((k, v)) => r.labels.get(k).is_some_and(|x| x == v),
                None => r.labels.contains_key(value),
            },
            "status" => r.status.as_str() == value,
            "health" => health_of(r).unwrap_or("none") == value,
            "exited" => {
                r.status == Status::Exited
                    && r.exit_code.map(|c| c.to_string()).as_deref() == Some(value)
            }
            "ancestor" => {
                let short = value.strip_prefix("sha256:").unwrap_or(value);
                r.image == value
                    || r.image.split(':').next() == Some(value)
                    || (short.len() >= 4
                        && r.image_id
                            .strip_prefix("sha256:")
                            .unwrap_or(&r.image_id)
                            .starts_with(short))
            }
            _ => false,
        }
    }

    fn matches(&self, r: &Record) -> bool {
        let mut keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        keys.iter().all(|key| {
            self.0
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(k, v)| Filters::one(k, v, r))
        })
    }
}

/// Docker's `CreatedAt`: Go's default time format.
fn created_at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

fn row(r: &Record, ports: String, trunc: bool, now: DateTime<Utc>) -> Value {
    let o = &r.config.options;
    let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mounts: Vec<String> = r
        .config
        .spec
        .mounts
        .iter()
        .filter_map(|m| match &m.source {
            MountSource::Volume(n) => Some(n.clone()),
            MountSource::Host(p) => Some(p.display().to_string()),
            MountSource::Tmpfs => None,
        })
        .collect();
    let network = match (&o.sandbox, &o.network) {
        (Some(s), _) => format!("sandbox:{s}"),
        (None, Some(n)) => n.mode(),
        (None, None) => "none".into(),
    };
    json!({
        "ID": if trunc { short_id(&r.id).to_string() } else { r.id.clone() },
        "Image": r.image,
        "Command": command_text(&r.command, trunc),
        "CreatedAt": created_at(r.created),
        "RunningFor": format!("{} ago", human_duration(now - r.created)),
        "Ports": ports,
        "State": r.status.as_str(),
        "Status": status_text(r, now),
        "Size": "0B",
        "Names": r.name,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": network,
        "LocalVolumes": r.config.spec.mounts.iter().filter(|m| matches!(m.source, MountSource::Volume(_))).count().to_string(),
    })
}

pub fn ps(engine: &Engine, args: PsArgs) -> anyhow::Result<()> {
    let filters = Filters::parse(&args.filter)?;
    let format = Format::parse(args.format.as_deref())?;
    let last = if args.latest { Some(1) } else { args.last };
    let all = args.all || last.is_some() || filters.wants_all();
    // Newest first, as recorded.
    let mut rows: Vec<Record> = engine
        .records()?
        .list()?
        .into_iter()
        .filter(|r| all || r.status.is_up())
        .filter(|r| filters.matches(r))
        .collect();
    if let Some(n) = last {
        rows.truncate(n);
    }
    let trunc = !args.no_trunc;
    if args.quiet {
        for r in &rows {
            println!("{}", if trunc { short_id(&r.id) } else { &r.id });
        }
        return Ok(());
    }
    let now = Utc::now();
    let nets = super::network::attachments(engine);
    let items: Vec<Value> = rows
        .iter()
        .map(|r| row(r, super::network::ports_column(nets.get(&r.id)), trunc, now))
        .collect();
    if !matches!(format, Format::Default) {
        print!("{}", format.render(&items, HEADERS)?);
        return Ok(());
    }
    let mut table = super::util::listing([
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]);
    let cell = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    for v in &items {
        table.add_row([
            cell(v, "ID"),
            cell(v, "Image"),
            cell(v, "Command"),
            cell(v, "RunningFor"),
            cell(v, "Status"),
            cell(v, "Ports"),
            cell(v, "Names"),
        ]);
    }
    print!("{}", super::util::listing_text(&table));
    Ok(())
}

/// Docker's "About a minute" style durations.
pub(crate) fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match s {
        0 => "Less than a second".into(),
        s if s < 60 => plural(s, "second"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 7200 => "About an hour".into(),
        s if s < 48 * 3600 => plural(s / 3600, "hour"),
        s if s < 14 * 86_400 => plural(s / 86_400, "day"),
        s if s < 60 * 86_400 => plural(s / (7 * 86_400), "week"),
        s if s < 730 * 86_400 => plural(s / (30 * 86_400), "month"),
        s => plural(s / (365 * 86_400), "year"),
    }
}

fn status_text(r: &Record, now: DateTime<Utc>) -> String {
    match r.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}{}",
            human_duration(now - r.started_at.unwrap_or(r.created)),
            match health_of(r) {
                Some("starting") => " (health: starting)".to_string(),
                Some(s) => format!(" ({s})"),
                None => String::new(),
            }
        ),
        Status::Paused => format!(
            "Up {} (Paused)",
            human_duration(now - r.started_at.unwrap_or(r.created))
        ),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.exit_code.unwrap_or(lifecycle::UNKNOWN_EXIT),
            human_duration(now - r.finished_at.unwrap_or(r.created))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.exit_code.unwrap_or(lifecycle::UNKNOWN_EXIT),
            human_duration(now - r.finished_at.unwrap_or(r.created))
        ),
    }
}

/// The health status of a running container with a health check.
fn health_of(r: &Record) -> Option<&'static str> {
    let h = r.config.health.as_ref().filter(|_| r.status.is_running())?;
    Some(h.status.as_str())
}

/// Docker quotes the command and cuts it at 20 characters (unless
/// --no-trunc).
fn command_text(cmd: &[String], trunc: bool) -> String {
    let full = cmd.join(" ");
    let cut: String = if trunc && full.chars().count() > 20 {
        format!("{}…", full.chars().take(19).collect::<String>())
    } else {
        full
    };
    format!("\"{cut}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_commands() {
        assert_eq!(
            human_duration(chrono::Duration::seconds(0)),
            "Less than a second"
        );
        assert_eq!(human_duration(chrono::Duration::seconds(5)), "5 seconds");
        assert_eq!(
            human_duration(chrono::Duration::seconds(90)),
            "About a minute"
        );
        assert_eq!(human_duration(chrono::Duration::hours(3)), "3 hours");
        assert_eq!(command_text(&["sh".into()], true), "\"sh\"");
        let long = ["sh".into(), "-c".into(), "echo a very long line".into()];
        assert_eq!(command_text(&long, true), "\"sh -c echo a very l…\"");
        assert_eq!(
            command_text(&long, false),
            "\"sh -c echo a very long line\""
        );
    }

    #[test]
    fn filters_parse_and_refuse() {
        assert!(Filters::parse(&["status=exited".into()])
            .unwrap()
            .wants_all());
        assert!(Filters::parse(&["nope=1".into()]).is_err());
        assert!(Filters::parse(&["status=sleepy".into()]).is_err());
        assert!(Filters::parse(&["exited=x".into()]).is_err());
        assert!(Filters::parse(&["name".into()]).is_err());
    }
}
