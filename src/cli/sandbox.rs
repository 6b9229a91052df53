//! `skiff sandbox create|ls|rm`: pod sandboxes (runtime/sandbox.rs), which
//! containers join with `skiff run --sandbox NAME`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::runtime::engine::Engine;
use crate::runtime::sandbox::SandboxRequest;

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Make pinned network, IPC and UTS namespaces on the bridge; prints the address.
    Create(CreateArgs),
    /// List sandboxes, newest first.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove sandboxes (their containers keep the namespaces until they exit).
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only IDs.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The pod's hostname (default: the name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Publish a port: [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/tcp|udp].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// The subnet of the node bridge (skiff0).
    #[arg(long, default_value = crate::net::host::DEFAULT_NODE_CIDR)]
    pub node_cidr: String,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn sandbox(engine: &Engine, cmd: SandboxCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SandboxCommand::Create(args) => {
            let ports = args
                .publish
                .iter()
                .map(|p| crate::net::ports::PublishedPort::parse(p))
                .collect::<Result<Vec<_>, _>>()?;
            let cidr = args
                .node_cidr
                .parse()
                .with_context(|| format!("invalid --node-cidr {:?}", args.node_cidr))?;
            let sb = engine.create_sandbox(&SandboxRequest {
                name: &args.name,
                hostname: args.hostname.as_deref(),
                ports: &ports,
                cidr: Some(cidr),
                host_network: false,
                host_ipc: false,
                pid_holder: None,
            })?;
            println!("{}", sb.ip);
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Ls(args) => {
            ls(engine, &args)?;
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Rm(args) => {
            let mut failed = 0;
            for n in &args.names {
                match engine.remove_sandbox(n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("skiff: error: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!(
                    "{failed} of {} sandboxes could not be removed",
                    args.names.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// In crictl's and docker's style: short IDs, human ages.
fn ls(engine: &Engine, args: &LsArgs) -> anyhow::Result<()> {
    let sandboxes = engine.sandboxes()?;
    let short = |id: &str| crate::runtime::container::short_id(id).to_string();
    if args.quiet {
        for (sb, _) in &sandboxes {
            println!("{}", short(&sb.id));
        }
        return Ok(());
    }
    let now = chrono::Utc::now();
    let mut table = super::util::listing(["SANDBOX ID", "NAME", "IP", "CREATED", "CONTAINERS"]);
    for (sb, containers) in &sandboxes {
        table.add_row([
            short(&sb.id),
            sb.name.clone(),
            sb.ip.to_string(),
            format!("{} ago", super::ps::human_duration(now - sb.created)),
            containers.to_string(),
        ]);
    }
    print!("{}", super::util::listing_text(&table));
    Ok(())
}
