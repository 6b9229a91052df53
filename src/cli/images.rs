//! Image commands: `pull`, `images`, `rmi`, `tag`, `inspect`, `image prune`.
//! Daemonless: they drive the store directly, sharing it with a running agent
//! through the store's file lock and SQLite.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::util::{human_size, image_store};
use crate::runtime::container::lifecycle::LaunchLock;
use crate::runtime::engine::Engine;
use crate::runtime::image::catalog;
use crate::runtime::image::ensure::{self, PullPolicy, PullSource};
use crate::runtime::image::limit::{self, LayerLimit};
use crate::runtime::image::pull::{Progress, PullEvent};
use crate::runtime::image::registries;
use crate::runtime::image::Reference;

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

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Remove untagged images and the content no image needs (leftovers of
    /// interrupted pulls too); with -a, every image no container uses.
    Prune(ImagePruneArgs),
    /// Show an image's layers and the steps that made them.
    History(super::history::HistoryArgs),
}

#[derive(Debug, Args)]
pub struct ImagePruneArgs {
    /// Remove every image no container uses, not only untagged ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `skiff pull`: always from the registry (`ensure` with policy Always).
pub fn pull(engine: &Engine, args: PullArgs) -> anyhow::Result<()> {
    let image = Reference::parse(&args.image)?;
    // A bad registries.yaml is refused before "Pulling" is printed.
    registries::RegistriesConfig::load(&args.registries)?;
    // What the name points at now, to tell "up to date" from "downloaded".
    let before = image_store(engine)
        .ok()
        .and_then(|store| store.meta().ok()?.list().ok())
        .and_then(|rows| {
            let name = image.to_string();
            rows.into_iter().find(|r| r.name == name)
        })
        .map(|r| r.manifest_digest);
    let progress = make_progress(args.quiet);
    if !args.quiet {
        println!("Pulling {image}");
    }
    let pulled = ensure::ensure(
        engine,
        &args.image,
        PullPolicy::Always,
        &PullSource {
            registries: args.registries.clone(),
            limit: LayerLimit {
                max_size: args.max_layer_size,
                max_ratio: args.max_layer_ratio,
            },
        },
        progress.callback(),
    )?
    .context("a pull with policy Always pulled nothing")?;
    progress.finish();
    if !args.quiet {
        println!("Digest: {}", pulled.repo_digest);
        if before.as_deref() == Some(pulled.manifest_digest.as_str()) {
            println!("Status: Image is up to date for {}", pulled.name);
        } else {
            println!("Status: Downloaded newer image for {}", pulled.name);
        }
    }
    println!("{}", pulled.name);
    Ok(())
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Full image IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// `table`, `table TEMPLATE`, `json` or a Go template over .ID,
    /// .Repository, .Tag, .Digest, .CreatedAt, .CreatedSince, .Size.
    #[arg(long)]
    pub format: Option<String>,
    /// Only images of this repository (`busybox`, `host/app`, `busybox:1`).
    pub repository: Option<String>,
}

const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedSince", "CREATED"),
    ("Size", "SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("Containers", "CONTAINERS"),
];

/// Whether image `name` is of the repository `filter` names (`busybox`,
/// `host:5000/app`), or is that very image when the filter has a tag.
fn of_repository(name: &str, filter: &str) -> bool {
    let last = filter.rsplit('/').next().unwrap_or(filter);
    if last.contains(':') || filter.contains('@') {
        return Reference::parse(filter).is_ok_and(|r| r.to_string() == name);
    }
    catalog::repo_and_tag(name).0 == catalog::repo_and_tag(filter).0
}

pub fn images(engine: &Engine, args: ImagesArgs) -> anyhow::Result<()> {
    let format = super::format::Format::parse(args.format.as_deref())?;
    let store = image_store(engine)?;
    let mut rows = store.meta()?.list()?;
    // Newest first, as docker lists them (images without a date last).
    let created = |r: &crate::runtime::image::meta::ImageRow| {
        r.created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
    };
    rows.sort_by(|a, b| {
        created(b)
            .cmp(&created(a))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut items = Vec::new();
    for row in &rows {
        let (repo, tag) = catalog::repo_and_tag(&row.name);
        if args
            .repository
            .as_deref()
            .is_some_and(|f| !of_repository(&row.name, f))
        {
            continue;
        }
        let hex = row
            .config_digest
            .strip_prefix("sha256:")
            .unwrap_or(&row.config_digest);
        let id = if args.no_trunc {
            row.config_digest.clone()
        } else {
            hex.chars().take(12).collect()
        };
        let digest = row
            .index_digest
            .clone()
            .unwrap_or(row.manifest_digest.clone());
        items.push(serde_json::json!({
            "Containers": "N/A",
            "CreatedAt": created(row).map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S %z %Z").to_string()),
            "CreatedSince": created_ago(row.created.as_deref()),
            "Digest": digest,
            "ID": id,
            "Repository": repo,
            "SharedSize": "N/A",
            "Size": human_size(row.size),
            "Tag": tag,
            "UniqueSize": "N/A",
            "VirtualSize": human_size(row.size),
        }));
    }
    let cell = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    if args.quiet {
        for v in &items {
            println!("{}", cell(v, "ID"));
        }
        return Ok(());
    }
    if !matches!(format, super::format::Format::Default) {
        print!("{}", format.render(&items, HEADERS)?);
        return Ok(());
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header);
    for v in &items {
        let mut cells = vec![cell(v, "Repository"), cell(v, "Tag")];
        if args.digests {
            cells.push(cell(v, "Digest"));
        }
        cells.extend([cell(v, "ID"), cell(v, "CreatedSince"), cell(v, "Size")]);
        table.add_row(cells);
    }
    // The NOTHING preset pads every cell with one space; docker's columns
    // start at the margin, so trim each line.
    print!("{}", super::util::listing_text(&table));
    Ok(())
}

pub fn rmi(engine: &Engine, args: RmiArgs) -> anyhow::Result<()> {
    let store = image_store(engine)?;
    let state = engine.records()?;
    // No container is being made from an image without a record yet.
    let _lock = LaunchLock::exclusive(engine.paths())?;
    let in_use = state.images_in_use()?;
    let removed = catalog::remove(store, &args.images, args.force, &in_use)?;
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

pub fn tag(engine: &Engine, args: TagArgs) -> anyhow::Result<()> {
    catalog::tag(image_store(engine)?, &args.source, &args.target)?;
    Ok(())
}

/// `docker image inspect` objects for `queries` (also used by the
/// container-or-image `skiff inspect`).
pub fn inspect_values(
    engine: &Engine,
    queries: &[String],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let store = image_store(engine)?;
    let rows = store.meta()?.list()?;
    let mut out = Vec::new();
    for q in queries {
        let found = catalog::find(&rows, q)?;
        if let Some(first) = found.first() {
            out.push(catalog::inspect(store, &rows, first)?);
        }
    }
    Ok(out)
}

pub fn image(engine: &Engine, cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Prune(args) => {
            let warning = if args.all {
                "WARNING! This will remove all images without at least one container associated to them."
            } else {
                "WARNING! This will remove all dangling images."
            };
            // Asked only at a terminal: scripts ran `image prune` without
            // -f before it asked.
            let ask = !args.force && std::io::stdin().is_terminal();
            if ask && !super::util::confirm(warning)? {
                return Ok(());
            }
            let pruned = prune(engine, args.all)?;
            print_pruned(&pruned);
            println!("Total reclaimed space: {}", human_size(pruned.bytes));
            Ok(())
        }
        ImageCommand::History(args) => super::history::history(engine, args),
    }
}

/// Remove the images (all: every one no container uses) and content no
/// image needs, keeping what containers are made from, while nothing is
/// being created from an image whose container is not recorded yet.
pub(super) fn prune(engine: &Engine, all: bool) -> anyhow::Result<catalog::Pruned> {
    let state = engine.records()?;
    let _lock = LaunchLock::exclusive(engine.paths())?;
    let in_use = state.images_in_use()?;
    Ok(catalog::prune(image_store(engine)?, all, &in_use)?)
}

/// docker's "Deleted Images:" section (none when nothing went).
pub(super) fn print_pruned(pruned: &catalog::Pruned) {
    if pruned.untagged.is_empty() && pruned.deleted.is_empty() {
        return;
    }
    println!("Deleted Images:");
    for name in &pruned.untagged {
        println!("untagged: {}", familiar(name));
    }
    for id in &pruned.deleted {
        println!("deleted: {id}");
    }
    println!();
}

/// A stored name as docker shows it: `busybox:latest`, `host:5000/app@sha256:…`.
fn familiar(name: &str) -> String {
    let Ok(r) = Reference::parse(name) else {
        return name.to_string();
    };
    let mut out = r.familiar_name();
    if let Some(tag) = r.tag() {
        out.push_str(&format!(":{tag}"));
    }
    if let Some(digest) = r.digest() {
        out.push_str(&format!("@{digest}"));
    }
    out
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
