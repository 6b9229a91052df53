//! `skiff system df` and `skiff system prune`, shaped like docker's: what
//! the images, containers and volumes of this root hold, and removing what
//! nothing uses.

use std::collections::{HashMap, HashSet};

use clap::{Args, Subcommand};

use super::util::{human_size, image_store, tree_size};
use crate::runtime::container::lifecycle;
use crate::runtime::container::records::Status;
use crate::runtime::engine::Engine;

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show the disk space images, containers and volumes use.
    Df,
    /// Remove stopped containers, untagged images and unused image content
    /// (with -a, every image no container uses; with --volumes, unused
    /// volumes).
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only untagged ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Remove volumes no container uses, too.
    #[arg(long)]
    pub volumes: bool,
}

pub fn system(engine: &Engine, cmd: SystemCommand) -> anyhow::Result<()> {
    match cmd {
        SystemCommand::Df => df(engine),
        SystemCommand::Prune(args) => prune(engine, args),
    }
}

fn percent(part: u64, whole: u64) -> String {
    match (part * 100).checked_div(whole) {
        Some(pct) => format!("{} ({pct}%)", human_size(part)),
        None => "0B".to_string(),
    }
}

fn df(engine: &Engine) -> anyhow::Result<()> {
    let records = engine.records()?.list()?;
    let store = image_store(engine)?;
    let rows = store.meta()?.list()?;
    // Images by ID (a tag is not another image).
    let mut images: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r.config_digest.as_str(), r.size))
        .collect();
    images.sort();
    images.dedup_by(|a, b| a.0 == b.0);
    let used: HashSet<&str> = records.iter().map(|r| r.image_id.as_str()).collect();
    let image_size: u64 = images.iter().map(|i| i.1).sum();
    let image_free: u64 = images
        .iter()
        .filter(|i| !used.contains(i.0))
        .map(|i| i.1)
        .sum();
    // A container's own size is its writable layer.
    let sizes: Vec<(bool, u64)> = records
        .iter()
        .map(|r| {
            (
                r.status.is_running(),
                tree_size(&engine.paths().dir(&r.id).join("upper")),
            )
        })
        .collect();
    let ctr_size: u64 = sizes.iter().map(|s| s.1).sum();
    let ctr_free: u64 = sizes.iter().filter(|s| !s.0).map(|s| s.1).sum();
    let vols = engine.volumes().list()?;
    let vol_users = super::volumes::volume_users(engine)?;
    let vol_sizes: Vec<(bool, u64)> = vols
        .iter()
        .map(|v| (vol_users.contains(&v.name), tree_size(&v.mountpoint)))
        .collect();
    let vol_size: u64 = vol_sizes.iter().map(|s| s.1).sum();
    let vol_free: u64 = vol_sizes.iter().filter(|s| !s.0).map(|s| s.1).sum();
    let mut table = super::util::listing(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    table.add_row([
        "Images".to_string(),
        images.len().to_string(),
        images
            .iter()
            .filter(|i| used.contains(i.0))
            .count()
            .to_string(),
        human_size(image_size),
        percent(image_free, image_size),
    ]);
    table.add_row([
        "Containers".to_string(),
        records.len().to_string(),
        sizes.iter().filter(|s| s.0).count().to_string(),
        human_size(ctr_size),
        percent(ctr_free, ctr_size),
    ]);
    table.add_row([
        "Local Volumes".to_string(),
        vols.len().to_string(),
        vol_sizes.iter().filter(|s| s.0).count().to_string(),
        human_size(vol_size),
        percent(vol_free, vol_size),
    ]);
    table.add_row([
        "Build Cache".to_string(),
        "0".into(),
        "0".into(),
        "0B".into(),
        "0B".into(),
    ]);
    print!("{}", super::util::listing_text(&table));
    Ok(())
}

fn prune(engine: &Engine, args: PruneArgs) -> anyhow::Result<()> {
    let mut warning = "WARNING! This will remove:\n  - all stopped containers\n".to_string();
    if args.volumes {
        warning.push_str("  - all volumes not used by at least one container\n");
    }
    // A blank line before the question, as docker's.
    warning.push_str(if args.all {
        "  - all images without at least one container associated to them\n"
    } else {
        "  - all dangling images\n"
    });
    if !args.force && !super::util::confirm(&warning)? {
        return Ok(());
    }
    let (paths, state) = (engine.paths(), engine.records()?);
    // Measured before they go; a container started meanwhile is not pruned
    // and not counted.
    let sizes: HashMap<String, u64> = state
        .list()?
        .into_iter()
        .filter(|r| r.status != Status::Running)
        .map(|r| {
            let size = tree_size(&paths.dir(&r.id).join("upper"));
            (r.id, size)
        })
        .collect();
    let removed = lifecycle::prune(paths, state)?;
    let mut reclaimed: u64 = removed.iter().filter_map(|r| sizes.get(&r.id)).sum();
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for r in &removed {
            println!("{}", r.id);
        }
        println!();
    }
    if args.volumes {
        let users = super::volumes::volume_users(engine)?;
        let pruned = engine.volumes().prune(&|n: &str| users.contains(n))?;
        if !pruned.names.is_empty() {
            println!("Deleted Volumes:");
            for n in &pruned.names {
                println!("{n}");
            }
            println!();
        }
        reclaimed += pruned.bytes;
    }
    let images = super::images::prune(engine, args.all)?;
    super::images::print_pruned(&images);
    reclaimed += images.bytes;
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(())
}
