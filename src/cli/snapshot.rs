//! `skiff snapshot save|ls|prune|restore`: snapshots of a server's
//! datastore and credentials (`server::snapshot`), as k3s's
//! `etcd-snapshot`. `save` works while the server runs; `restore` fills a
//! fresh data directory that no server uses yet.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::server::snapshot;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    // args_override_self: /etc/skiff/config.yaml's data-dir comes first,
    // and a --data-dir given here overrides it.
    /// Take a snapshot now (the server may be running).
    #[command(args_override_self = true)]
    Save(SaveArgs),
    /// List the snapshots.
    #[command(alias = "list", args_override_self = true)]
    Ls(Where),
    /// Remove all but the newest snapshots of one name.
    #[command(args_override_self = true)]
    Prune(PruneArgs),
    /// Restore a snapshot into a fresh data directory (no server running
    /// on it); then start `skiff server --data-dir DIR` on it.
    #[command(args_override_self = true)]
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct Where {
    /// The server's data directory [default: data-dir in
    /// /etc/skiff/config.yaml, else the global --root]
    #[arg(long, value_name = "DIR", env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the snapshots are [default: <data-dir>/server/snapshots]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub at: Where,
    /// The snapshot's name; the time is added to it.
    #[arg(long, default_value = "on-demand")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub at: Where,
    /// Prune the snapshots saved with this --name.
    #[arg(long, default_value = "on-demand")]
    pub name: String,
    /// How many of the newest to keep (at least one).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub retention: u16,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The data directory to restore into [default: data-dir in
    /// /etc/skiff/config.yaml, else the global --root]
    #[arg(long, value_name = "DIR", env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

fn dirs(at: &Where, root: &Path) -> (PathBuf, PathBuf) {
    let data_dir = at.data_dir.clone().unwrap_or_else(|| root.to_path_buf());
    let dir = at.dir.clone().unwrap_or_else(|| snapshot::dir(&data_dir));
    (data_dir, dir)
}

pub fn snapshot_command(cmd: SnapshotCommand, root: &Path) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Save(args) => {
            let (data_dir, dir) = dirs(&args.at, root);
            let path = snapshot::save(&data_dir, &args.name, Some(&dir))?;
            println!("{}", path.display());
        }
        SnapshotCommand::Ls(at) => {
            let (_, dir) = dirs(&at, root);
            let mut table = super::util::listing(["NAME", "SIZE", "CREATED", "LOCATION"]);
            for s in snapshot::list(&dir)? {
                let created = chrono::DateTime::from_timestamp(s.taken, 0)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                table.add_row([
                    s.name,
                    super::util::human_size(s.size),
                    created,
                    s.path.display().to_string(),
                ]);
            }
            print!("{}", super::util::listing_text(&table));
        }
        SnapshotCommand::Prune(args) => {
            let (_, dir) = dirs(&args.at, root);
            for s in snapshot::prune(&dir, &args.name, usize::from(args.retention))? {
                println!("removed {}", s.path.display());
            }
        }
        SnapshotCommand::Restore(args) => {
            let data_dir = args.data_dir.clone().unwrap_or_else(|| root.to_path_buf());
            let server = data_dir.join("server");
            crate::runtime::private::ensure_dir(&server)
                .with_context(|| format!("creating {}", server.display()))?;
            // No server may run on it meanwhile (its lock, as the server's).
            let _lock = crate::lockfile::try_exclusive_with_pid(&server.join("lock")).map_err(|e| match e {
                crate::lockfile::TryLockError::Held { pid } => anyhow::anyhow!(
                    "a skiff server{} is using {}: stop it first, or restore into a fresh data directory",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                    data_dir.display()
                ),
                crate::lockfile::TryLockError::Io(e) => anyhow::Error::new(e).context("locking the data directory"),
            })?;
            snapshot::restore(&args.snapshot, &data_dir)?;
            println!(
                "restored {} into {}: start `skiff server --data-dir {}`",
                args.snapshot.display(),
                data_dir.display(),
                data_dir.display()
            );
        }
    }
    Ok(())
}
