//! `skiff logs`: read a container's CRI log file (and its rotated
//! predecessor); `-f` keeps reading as the shim appends, across rotations,
//! until the container exits.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;

use crate::runtime::container::logs::{self, Assembler, Entry, Stream};
use crate::runtime::container::records::Status;
use crate::runtime::engine::Engine;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container exits.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines ("all" for everything).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Prefix each line with its RFC3339Nano timestamp.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines since a time (RFC3339) or a duration ago (10s, 5m, 2h).
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before a time (RFC3339) or a duration ago (10s, 5m, 2h);
    /// `-f` stops there.
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

pub(crate) fn parse_since(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    parse_time("--since", s, now)
}

fn parse_time(flag: &str, s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .with_context(|| format!("invalid {flag} {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => {
            anyhow::bail!("invalid {flag} {s:?}: expected RFC3339 or a duration like 10s, 5m, 2h")
        }
    };
    Ok(now - chrono::Duration::seconds(secs))
}

fn print(e: &Entry, timestamps: bool) {
    let line = if timestamps {
        format!(
            "{} {}\n",
            crate::runtime::container::records::rfc3339(e.time),
            e.text
        )
    } else {
        format!("{}\n", e.text)
    };
    let _ = match e.stream {
        Stream::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
        Stream::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
    };
}

pub fn logs(engine: &Engine, args: LogsArgs) -> anyhow::Result<()> {
    let (paths, state) = (engine.paths(), engine.records()?);
    let rec = state.find(&args.container)?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, Utc::now()))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| parse_time("--until", s, Utc::now()))
        .transpose()?;
    let wanted = |t: DateTime<Utc>| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u);
    let tail: Option<usize> = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse().with_context(|| format!("invalid --tail {n:?}"))?),
    };
    let path = paths.log(&rec.id);
    // Remember where the current file ends before reading it whole, so
    // that following starts exactly there.
    let mut offset = std::fs::metadata(&path).map_or(0, |m| m.len());
    let mut entries: Vec<Entry> = logs::read_all(&path);
    entries.retain(|e| wanted(e.time));
    let skip = tail.map_or(0, |t| entries.len().saturating_sub(t));
    for e in &entries[skip..] {
        print(e, args.timestamps);
    }
    if !args.follow {
        return Ok(());
    }
    let mut asm = Assembler::default();
    let mut pending = String::new();
    loop {
        let running = state
            .get(&rec.id)?
            .is_some_and(|r| r.status != Status::Exited);
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len < offset {
            // Rotated: the new file starts from zero.
            offset = 0;
        }
        if len > offset {
            let mut f = File::open(&path).with_context(|| format!("{}", path.display()))?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            offset += buf.len() as u64;
            pending.push_str(&String::from_utf8_lossy(&buf));
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                if let Some(e) = asm.feed(line.trim_end_matches('\n')) {
                    if wanted(e.time) {
                        print(&e, args.timestamps);
                    }
                }
            }
            continue;
        }
        if !running || until.is_some_and(|u| Utc::now() >= u) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
