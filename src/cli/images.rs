//! Image commands: `pull`, `images`, `rmi`, `tag`, `inspect`, `image prune`.
//! Daemonless: they drive the store directly, sharing it with a running agent
//! through the store's file lock and SQLite.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::runtime::image::catalog;
use crate::runtime::image::client::RegistryClient;
use crate::runtime::image::credentials::{self, Logins};
use crate::runtime::image::limit::{self, LayerLimit};
use crate::runtime::image::pull::{self, Progress, PullEvent};
use crate::runtime::image::registries::{self, RegistriesConfig};
use crate::runtime::image::{Reference, Store};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference, e.g. busybox, host:5000/app:tag, app@sha256:…
    pub image: String,
    /// Mirrors, credentials and TLS settings per registry.
    #[arg(long, default_value = registries::DEFAULT_PATH)]
    pub registries: PathBuf,
    /// Print nothing but the final digest line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Refuse a layer that unpacks to more than this (e.g. 8G).
    #[arg(long, value_parser = limit::parse_size, default_value = "32G")]
    pub max_layer_size: u64,
    /// Refuse a layer that unpacks to more than this many times its
    /// compressed size (layers under 256 MiB unpacked are exempt; 0: off).
    #[arg(long, default_value_t = limit::DEFAULT_MAX_RATIO)]
    pub max_layer_ratio: u64,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Untag even an image a container uses (its content stays while needed).
    #[arg(short, long)]
    pub force: bool,
    /// Image names or IDs.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Remove unused blobs and snapshots (and leftovers of interrupted pulls).
    Prune,
}

pub(crate) fn store(root: &Path) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("opening the image store under {}", root.display()))
}

pub fn pull(root: &Path, args: PullArgs) -> anyhow::Result<()> {
    let image = Reference::parse(&args.image)?;
    let config = RegistriesConfig::load(&args.registries)?;
    let store = store(root)?.with_layer_limit(LayerLimit {
        max_size: args.max_layer_size,
        max_ratio: args.max_layer_ratio,
    });
    let client = Arc::new(registry_client(root, config)?);
    let progress = make_progress(args.quiet);
    let rt = runtime()?;
    if !args.quiet {
        println!("Pulling {image}");
    }
    let pulled = rt.block_on(pull::pull(&store, client, &image, progress.callback()))?;
    progress.finish();
    if !args.quiet {
        println!("Digest: {}", pulled.repo_digest);
        println!("Status: Downloaded image for {}", pulled.name);
    }
    println!("{}", pulled.name);
    Ok(())
}

/// The registry client with registries.yaml and the `skiff login` credentials.
pub(crate) fn registry_client(
    root: &Path,
    config: RegistriesConfig,
) -> anyhow::Result<RegistryClient> {
    let logins = Logins::load(&credentials::path(root))?;
    Ok(RegistryClient::new(config).with_logins(logins))
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn images(root: &Path) -> anyhow::Result<()> {
    let store = store(root)?;
    let rows = store.meta()?.list()?;
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    for row in &rows {
        let (repo, tag) = catalog::repo_and_tag(&row.name);
        let id = row
            .config_digest
            .strip_prefix("sha256:")
            .unwrap_or(&row.config_digest);
        table.add_row([
            repo,
            tag,
            id.chars().take(12).collect(),
            created_ago(row.created.as_deref()),
            human_size(row.size),
        ]);
    }
    // The NOTHING preset pads every cell with one space; docker's columns
    // start at the margin, so trim each line.
    for line in table.to_string().lines() {
        println!("{}", line.trim_end().strip_prefix(' ').unwrap_or(line));
    }
    Ok(())
}

/// The images and snapshots containers (running or stopped) depend on.
fn in_use(root: &Path, run_dir: &Path) -> anyhow::Result<catalog::InUse> {
    let (_paths, records) = super::containers::open(root, run_dir)?;
    Ok(records.images_in_use()?)
}

pub fn rmi(root: &Path, run_dir: &Path, args: RmiArgs) -> anyhow::Result<()> {
    let store = store(root)?;
    let in_use = in_use(root, run_dir)?;
    let removed = catalog::remove(&store, &args.images, args.force, &in_use)?;
    for name in &removed.untagged {
        println!("Untagged: {name}");
    }
    let p = removed.pruned;
    if p.blobs + p.snapshots > 0 {
        println!(
            "Deleted: {} blobs, {} snapshots ({})",
            p.blobs,
            p.snapshots,
            human_size(p.bytes)
        );
    }
    for e in &removed.refused {
        eprintln!("skiff: error: {e}");
    }
    if !removed.refused.is_empty() {
        anyhow::bail!(
            "{} of {} images could not be removed",
            removed.refused.len(),
            args.images.len()
        );
    }
    Ok(())
}

pub fn tag(root: &Path, args: TagArgs) -> anyhow::Result<()> {
    let store = store(root)?;
    catalog::tag(&store, &args.source, &args.target)?;
    Ok(())
}

pub fn inspect(root: &Path, args: InspectArgs) -> anyhow::Result<()> {
    let out = inspect_values(root, &args.images)?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `docker image inspect` objects for `queries` (also used by the
/// container-or-image `skiff inspect`).
pub fn inspect_values(root: &Path, queries: &[String]) -> anyhow::Result<Vec<serde_json::Value>> {
    let store = store(root)?;
    let rows = store.meta()?.list()?;
    let mut out = Vec::new();
    for q in queries {
        let found = catalog::find(&rows, q)?;
        if let Some(first) = found.first() {
            out.push(catalog::inspect(&store, &rows, first)?);
        }
    }
    Ok(out)
}

pub fn image(root: &Path, run_dir: &Path, cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Prune => {
            let keep = in_use(root, run_dir)?.snapshots;
            let report = store(root)?.prune(None, &keep)?;
            println!(
                "Deleted {} blobs, {} snapshots. Total reclaimed space: {}",
                report.blobs,
                report.snapshots,
                human_size(report.bytes)
            );
            Ok(())
        }
    }
}

/// Docker prints sizes in decimal units with three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        let s = format!("{value:.3}");
        let s = if value >= 100.0 {
            format!("{value:.0}")
        } else if value >= 10.0 {
            format!("{value:.1}")
        } else {
            format!("{:.2}", s.parse::<f64>().unwrap_or(value))
        };
        format!(
            "{}{}",
            s.trim_end_matches('0').trim_end_matches('.'),
            UNITS[unit]
        )
    }
}

fn created_ago(created: Option<&str>) -> String {
    let Some(ts) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "N/A".into();
    };
    let secs = (chrono::Utc::now() - ts.with_timezone(&chrono::Utc)).num_seconds();
    if secs < 0 {
        return "Less than a second ago".into();
    }
    let (n, unit) = match secs {
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 14 => (s / 86_400, "day"),
        s if s < 86_400 * 60 => (s / (86_400 * 7), "week"),
        s if s < 86_400 * 730 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Per-layer progress bars on a terminal, plain lines otherwise.
enum Display {
    Quiet,
    Plain,
    Bars {
        multi: indicatif::MultiProgress,
        bars: Mutex<HashMap<String, indicatif::ProgressBar>>,
    },
}

/// The display, and whether it words events for a push rather than a pull.
pub(crate) struct ProgressDisplay(Arc<Display>, bool);

fn make_progress(quiet: bool) -> ProgressDisplay {
    make_display(quiet, false)
}

pub(crate) fn make_display(quiet: bool, push: bool) -> ProgressDisplay {
    let display = if quiet {
        Display::Quiet
    } else if std::io::stdout().is_terminal() {
        Display::Bars {
            multi: indicatif::MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    } else {
        Display::Plain
    };
    ProgressDisplay(Arc::new(display), push)
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

impl ProgressDisplay {
    pub(crate) fn callback(&self) -> Progress {
        let display = self.0.clone();
        let push = self.1;
        Arc::new(move |event| display.event(event, push))
    }

    pub(crate) fn finish(&self) {
        if let Display::Bars { bars, .. } = &*self.0 {
            if let Ok(bars) = bars.lock() {
                for bar in bars.values() {
                    bar.finish();
                }
            }
        }
    }
}

impl Display {
    fn event(&self, event: PullEvent, push: bool) {
        let (exists, done) = if push {
            ("Layer already exists", "Pushed")
        } else {
            ("Already exists", "Pull complete")
        };
        match self {
            Display::Quiet => {}
            Display::Plain => match event {
                PullEvent::LayerStart { digest, size } => {
                    let verb = if push { "Pushing" } else { "Pulling fs layer" };
                    println!("{}: {verb} ({})", short(&digest), human_size(size))
                }
                PullEvent::LayerExists { digest } => println!("{}: {exists}", short(&digest)),
                PullEvent::LayerDownloaded { digest } => {
                    println!("{}: Download complete", short(&digest))
                }
                PullEvent::LayerDone { digest } => println!("{}: {done}", short(&digest)),
                PullEvent::Resolved { .. } | PullEvent::LayerBytes { .. } => {}
            },
            Display::Bars { multi, bars } => {
                let Ok(mut bars) = bars.lock() else { return };
                let style = indicatif::ProgressStyle::with_template(
                    "{prefix}: {msg:18} [{bar:30}] {bytes}/{total_bytes}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
                match event {
                    PullEvent::LayerStart { digest, size } => {
                        let bar = multi.add(indicatif::ProgressBar::new(size));
                        bar.set_style(style);
                        bar.set_prefix(short(&digest).to_string());
                        bar.set_message(if push { "Pushing" } else { "Downloading" });
                        bars.insert(digest, bar);
                    }
                    PullEvent::LayerExists { digest } => {
                        let bar = multi.add(indicatif::ProgressBar::new(0));
                        bar.set_style(style);
                        bar.set_prefix(short(&digest).to_string());
                        bar.finish_with_message(exists);
                    }
                    PullEvent::LayerBytes { digest, bytes } => {
                        if let Some(bar) = bars.get(&digest) {
                            bar.inc(bytes);
                        }
                    }
                    PullEvent::LayerDownloaded { digest } => {
                        if let Some(bar) = bars.get(&digest) {
                            bar.set_message("Extracting");
                        }
                    }
                    PullEvent::LayerDone { digest } => {
                        if let Some(bar) = bars.get(&digest) {
                            bar.finish_with_message(done);
                        }
                    }
                    PullEvent::Resolved { .. } => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(human_size(123_400_000), "123MB");
        assert_eq!(human_size(1_000_000_000), "1GB");
    }
}
