//! `skiff volume create | ls | rm | inspect | prune`, shaped like docker's.

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::runtime::engine::Engine;
use crate::runtime::volume::{self, Volume, VolumeError, Volumes};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given).
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove volumes.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Show volumes as JSON, like `docker volume inspect`.
    Inspect(InspectArgs),
    /// Remove every volume no container uses.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: Option<String>,
    /// Set metadata on the volume (KEY=VALUE, or KEY for an empty value).
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    /// Volume driver; only "local".
    #[arg(long, short = 'd', default_value = volume::DRIVER)]
    pub driver: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only print volume names.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Do not fail on volumes that do not exist (volumes in use still stay).
    #[arg(long, short)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub force: bool,
}

pub fn volume(engine: &Engine, cmd: VolumeCommand) -> anyhow::Result<ExitCode> {
    let vols = engine.volumes();
    match cmd {
        VolumeCommand::Create(args) => create(&vols, args),
        VolumeCommand::Ls(args) => ls(&vols, args),
        VolumeCommand::Rm(args) => rm(engine, &vols, args),
        VolumeCommand::Inspect(args) => inspect(&vols, args),
        VolumeCommand::Prune(args) => prune(engine, &vols, args),
    }
}

/// Volumes named in the `-v` options of existing containers (running or
/// not: docker keeps a stopped container's volumes too).
pub(super) fn volume_users(engine: &Engine) -> anyhow::Result<HashSet<String>> {
    // No container was ever made here: do not create the records for that.
    if !engine.paths().root().exists() {
        return Ok(HashSet::new());
    }
    Ok(engine.records()?.volumes_in_use()?)
}

fn parse_labels(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for l in raw {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        anyhow::ensure!(!k.is_empty(), "invalid label {l:?}: the key is empty");
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn create(vols: &Volumes, args: CreateArgs) -> anyhow::Result<ExitCode> {
    if args.driver != volume::DRIVER {
        return Err(VolumeError::Driver(args.driver).into());
    }
    let labels = parse_labels(&args.labels)?;
    // Docker names anonymous volumes with 64 hex digits.
    let name = args.name.unwrap_or_else(|| {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    });
    let v = vols.create(&name, labels)?;
    println!("{}", v.name);
    Ok(ExitCode::SUCCESS)
}

fn ls(vols: &Volumes, args: LsArgs) -> anyhow::Result<ExitCode> {
    let list = vols.list()?;
    if args.quiet {
        for v in &list {
            println!("{}", v.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = super::util::listing(["DRIVER", "VOLUME NAME"]);
    for v in &list {
        table.add_row([v.driver.as_str(), v.name.as_str()]);
    }
    // The NOTHING preset pads every cell with one space; docker's columns
    // start at the margin.
    print!("{}", super::util::listing_text(&table));
    Ok(ExitCode::SUCCESS)
}

fn rm(engine: &Engine, vols: &Volumes, args: RmArgs) -> anyhow::Result<ExitCode> {
    let users = volume_users(engine)?;
    let in_use = |n: &str| users.contains(n);
    let mut failed = false;
    // Like docker: try every name, report each failure, fail at the end.
    for name in &args.names {
        match vols.remove(name, args.force, &in_use) {
            Ok(true) => println!("{name}"),
            Ok(false) => {}
            Err(e) => {
                eprintln!("skiff: error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Docker's shape: empty labels and options are null, scope is "local".
pub fn inspect_json(v: &Volume) -> serde_json::Value {
    json!({
        "CreatedAt": v.created,
        "Driver": v.driver,
        "Labels": if v.labels.is_empty() { serde_json::Value::Null } else { json!(v.labels) },
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": null,
        "Scope": "local",
    })
}

fn inspect(vols: &Volumes, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.names {
        match vols.get(name) {
            Ok(v) => out.push(inspect_json(&v)),
            Err(e) => {
                eprintln!("skiff: error: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn prune(engine: &Engine, vols: &Volumes, args: PruneArgs) -> anyhow::Result<ExitCode> {
    if !args.force
        && !super::util::confirm(
            "WARNING! This will remove all volumes not used by at least one container.",
        )?
    {
        return Ok(ExitCode::SUCCESS);
    }
    let users = volume_users(engine)?;
    let pruned = vols.prune(&|n: &str| users.contains(n))?;
    if !pruned.names.is_empty() {
        println!("Deleted Volumes:");
        for n in &pruned.names {
            println!("{n}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        super::util::human_size(pruned.bytes)
    );
    Ok(ExitCode::SUCCESS)
}
