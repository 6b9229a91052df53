//! The command line: one binary, several roles (see DESIGN.md).

pub mod agent;
pub mod attach;
pub mod check_config;
pub mod config;
pub mod containers;
pub mod control;
pub mod cp;
pub mod detach_keys;
pub mod exec;
pub mod format;
pub mod healthcheck;
pub mod history;
pub mod images;
pub mod inspect;
pub mod killall;
pub mod kubeconfig;
pub mod logs;
pub mod network;
pub mod ps;
pub mod sandbox;
pub mod secrets_encrypt;
pub mod snapshot;
pub mod stats;
pub mod system;
pub mod template;
pub mod token;
pub mod transfer;
pub mod util;
pub mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::runtime::engine::Engine;
use crate::server::ServerArgs;

#[derive(Debug, Parser)]
#[command(
    name = "skiff",
    version,
    about = "A Kubernetes distribution and container engine in one static binary",
    long_about = "skiff runs a Kubernetes-compatible cluster (`skiff server`) that the real \
kubectl drives, backed by SQLite and secured by TLS, from a single static binary with \
nothing else needed on the host."
)]
pub struct Cli {
    /// Log at debug level (RUST_LOG overrides).
    #[arg(long, global = true)]
    pub debug: bool,

    /// Where node-local state lives (image store, containers); also the
    /// server's data dir unless `server --data-dir` names another.
    #[arg(long, global = true, default_value = "/var/lib/skiff")]
    pub root: PathBuf,

    /// Where runtime state lives (shim sockets, libcontainer state).
    #[arg(long, global = true, default_value = "/run/skiff")]
    pub run_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: a Kubernetes API on HTTPS backed by SQLite.
    #[command(args_override_self = true)]
    Server(Box<ServerArgs>),
    /// Join this box to a cluster as a node (`--server URL --token TOKEN`).
    #[command(args_override_self = true)]
    Agent(Box<agent::AgentCmdArgs>),
    /// Pull an image from a registry.
    Pull(images::PullArgs),
    /// List images, newest first.
    Images(images::ImagesArgs),
    /// Remove images (and the content no other image needs).
    Rmi(images::RmiArgs),
    /// Give an image another name.
    Tag(images::TagArgs),
    /// Show containers or images as JSON, like `docker inspect`.
    Inspect(inspect::InspectArgs),
    /// Run a command in a new container.
    Run(Box<containers::RunArgs>),
    /// Create a container without starting it (`skiff start` does).
    Create(Box<containers::RunArgs>),
    /// Start created or stopped containers.
    Start(control::StartArgs),
    /// Stop and start containers again.
    Restart(control::RestartArgs),
    /// List a container's published ports.
    Port(control::PortArgs),
    /// Show a container's processes.
    Top(control::TopArgs),
    /// Rename a container.
    Rename(control::RenameArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(control::WaitArgs),
    /// Suspend every process in containers (their cgroup is frozen).
    Pause(control::PauseArgs),
    /// Resume every process in paused containers.
    Unpause(control::PauseArgs),
    /// Attach the terminal's input and output to a running container.
    Attach(attach::AttachArgs),
    /// Copy files between a container and the host (`-`: a tar stream).
    Cp(cp::CpArgs),
    /// List containers.
    Ps(ps::PsArgs),
    /// Show a container's output.
    Logs(logs::LogsArgs),
    /// Stop containers (SIGTERM, then SIGKILL after a timeout).
    Stop(containers::StopArgs),
    /// Send a signal to containers.
    Kill(containers::KillArgs),
    /// Remove containers.
    Rm(containers::RmArgs),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// Show containers' CPU, memory and process usage.
    Stats(stats::StatsArgs),
    /// Push an image to the registry its name points at.
    Push(transfer::PushArgs),
    /// Write images to a tar archive (docker-archive or OCI layout).
    Save(transfer::SaveArgs),
    /// Read images from a tar archive (docker-archive or OCI layout).
    Load(transfer::LoadArgs),
    /// Save credentials for a registry (in <root>/credentials.json, mode 0600).
    Login(transfer::LoginArgs),
    /// Forget the saved credentials for a registry.
    Logout(transfer::LogoutArgs),
    /// Show an image's layers and the steps that made them.
    History(history::HistoryArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Disk usage and pruning of images, containers and volumes.
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Manage named volumes.
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Remove every container of this root, its shims, mounts, network
    /// namespaces, veths, the bridge and nftables table (node shutdown).
    Killall,
    /// Print the admin kubeconfig `skiff server` wrote (to copy elsewhere:
    /// `--server https://IP:6443`).
    #[command(args_override_self = true)]
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Check that this kernel and host have what skiff needs, with the fix
    /// for each failure.
    CheckConfig(check_config::CheckConfigArgs),
    /// Show the container network.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage pod sandboxes (shared network, IPC and UTS namespaces).
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Secrets encryption at rest on the running server (k3s's commands).
    #[command(subcommand)]
    SecretsEncrypt(secrets_encrypt::SecretsEncryptCommand),
    /// Join tokens for `skiff agent` beyond the server's own (bootstrap
    /// tokens, as `kubeadm token`).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Snapshots of the server's datastore and credentials: save (also
    /// while it runs), ls, prune, restore into a fresh data directory.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
}

/// Daemons log their progress at info; client commands print their own
/// output and log only warnings unless asked (`--debug`, `RUST_LOG`).
fn init_logging(debug: bool, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (debug, daemon) {
        (true, _) => "debug",
        (false, true) => "info",
        // libcgroups and libcontainer warn about what a user can do nothing
        // about (a controller missing on this host, a cgroup already gone);
        // skiff says what matters in its own words.
        (false, false) => "warn,libcgroups=error,libcontainer=error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Logging may already be set (tests that call run twice); that is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// An error already reported on stderr: exit with this status and print
/// nothing more (docker's `StatusError`).
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct Quiet(pub u8);

/// A failure of the engine itself in a command that runs a container:
/// docker exits 125 for these, so that a script can tell them from the
/// container's own exit code (126 and 127 are the command's: cannot run,
/// not found).
#[derive(Debug, thiserror::Error)]
#[error("{}", error_text(.0))]
pub struct EngineFailure(pub anyhow::Error);

/// An error and its causes on one line, as `{:#}` prints them, but
/// without repeating a cause the text before already says (error types
/// that print their source and also return it as `source()` would show it
/// twice: `port 8080/tcp is already published …: port 8080/tcp is …`).
pub fn error_text(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The exit status docker gives an engine failure.
pub const ENGINE_FAILURE: u8 = 125;

fn engine_failure(e: anyhow::Error) -> anyhow::Error {
    EngineFailure(e).into()
}

/// The exit status for an error `run` returned: what a `Quiet` says, 125
/// for an engine failure, 1 for the rest (docker's general failure).
pub fn exit_status(err: &anyhow::Error) -> u8 {
    if let Some(Quiet(code)) = err.downcast_ref::<Quiet>() {
        return *code;
    }
    // The command itself cannot be run: docker's 126/127, not 125.
    let inner = err.downcast_ref::<EngineFailure>().map(|f| &f.0);
    for cause in err.chain().chain(inner.into_iter().flat_map(|e| e.chain())) {
        if let Some(crate::runtime::container::ContainerError::Exec { code, .. }) =
            cause.downcast_ref()
        {
            return u8::try_from(*code).unwrap_or(ENGINE_FAILURE);
        }
    }
    if err.downcast_ref::<EngineFailure>().is_some() {
        return ENGINE_FAILURE;
    }
    1
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    init_logging(
        cli.debug,
        matches!(cli.command, Command::Server(_) | Command::Agent(_)),
    );
    let engine = Engine::open(&cli.root, &cli.run_dir);
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Server(mut args) => {
            args.resolve_data_dir(&cli.root);
            args.run_dir = Some(cli.run_dir.clone());
            crate::server::run_blocking(*args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent(args) => {
            agent::run(*args, cli.root.clone(), cli.run_dir.clone())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pull(args) => done(images::pull(&engine, args)),
        Command::Images(args) => done(images::images(&engine, args)),
        Command::Rmi(args) => done(images::rmi(&engine, args)),
        Command::Tag(args) => done(images::tag(&engine, args)),
        Command::Inspect(args) => done(inspect::inspect(&engine, args)),
        Command::Run(args) => {
            if !args.detach {
                attach::check_tty(args.interactive, args.tty)?;
            }
            containers::run(&engine, cli.debug, *args).map_err(engine_failure)
        }
        Command::Create(args) => {
            done(containers::create(&engine, cli.debug, *args).map_err(engine_failure))
        }
        Command::Start(args) => control::start(&engine, cli.debug, args),
        Command::Restart(args) => done(control::restart(&engine, cli.debug, args)),
        Command::Wait(args) => done(control::wait(&engine, args)),
        Command::Pause(args) => done(control::pause(&engine, args, true)),
        Command::Unpause(args) => done(control::pause(&engine, args, false)),
        Command::Attach(args) => attach::attach(&engine, args),
        Command::Port(args) => done(control::port(&engine, args)),
        Command::Rename(args) => done(control::rename(&engine, args)),
        Command::Top(args) => done(control::top(&engine, args)),
        Command::Cp(args) => done(cp::cp(&engine, args)),
        Command::Ps(args) => done(ps::ps(&engine, args)),
        Command::Logs(args) => done(logs::logs(&engine, args)),
        Command::Stop(args) => done(containers::stop(&engine, args)),
        Command::Kill(args) => done(containers::kill(&engine, args)),
        Command::Rm(args) => done(containers::rm(&engine, args)),
        Command::Exec(args) => exec::exec(&engine, cli.debug, args),
        Command::Stats(args) => done(stats::stats(&engine, args)),
        Command::History(args) => done(history::history(&engine, args)),
        Command::Image(cmd) => done(images::image(&engine, cmd)),
        Command::Push(args) => done(transfer::push(&engine, args)),
        Command::Save(args) => done(transfer::save(&engine, args)),
        Command::Load(args) => done(transfer::load(&engine, args)),
        Command::Login(args) => done(transfer::login(&cli.root, args)),
        Command::Logout(args) => done(transfer::logout(&cli.root, args)),
        Command::Volume(cmd) => volumes::volume(&engine, cmd),
        Command::System(cmd) => done(system::system(&engine, cmd)),
        Command::Killall => killall::killall(&engine),
        Command::Network(network::NetworkCommand::Inspect) => done(network::inspect(&engine)),
        Command::Sandbox(cmd) => sandbox::sandbox(&engine, cmd),
        Command::SecretsEncrypt(cmd) => done(secrets_encrypt::secrets_encrypt(cmd)),
        Command::Token(cmd) => done(token::token(cmd)),
        Command::Snapshot(cmd) => done(snapshot::snapshot_command(cmd, &cli.root)),
        Command::CheckConfig(args) => check_config::check_config(args),
        Command::Kubeconfig(args) => done(kubeconfig::kubeconfig(args)),
    }
}
