//! Container commands: `run`, `ps`, `stop`, `kill`, `rm`.
//! Daemonless: they drive the runtime library and talk to each container's
//! shim over its control socket (`logs` is in logs.rs, `exec` in exec.rs,
//! the foreground attach in attach.rs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use crate::runtime::container::create::{self, CreateRequest};
use crate::runtime::container::lifecycle;
use crate::runtime::container::options::{self, Bind, Network, RunOptions};
use crate::runtime::container::restart::RestartPolicy;
use crate::runtime::container::{ContainerError, DEFAULT_LOG_MAX_SIZE};
use crate::runtime::engine::Engine;
use crate::runtime::image::ensure::{self, PullPolicy, PullSource};
use crate::runtime::image::limit::LayerLimit;
use crate::runtime::image::pull::Progress;
use crate::runtime::image::store::ImageStoreError;

use super::util::image_store;

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container ID.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open and forward it to the container.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the container a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Override the key sequence for detaching a container (default
    /// ctrl-p,ctrl-q; -it only).
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process (`--sig-proxy=false` to not;
    /// non-TTY only).
    #[arg(long = "sig-proxy", value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub health: super::healthcheck::HealthArgs,
    /// Run an init as PID 1 that forwards signals and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// A name for the container (default: a generated adjective_noun).
    #[arg(long)]
    pub name: Option<String>,
    /// Join a pod sandbox's network, IPC and UTS namespaces (`skiff sandbox create`).
    #[arg(long)]
    pub sandbox: Option<String>,
    /// Set metadata on the container (KEY=VALUE), shown by inspect.
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Set an environment variable (K=V, or K to copy it from here).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file (K=V per line).
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// The working directory inside the container (absolute; made if missing).
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// name|uid[:group|gid], resolved in the image's /etc/passwd and /etc/group.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Replace the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Bind mount: HOSTDIR:CTRDIR[:ro].
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Mount a host directory, a named volume or a tmpfs, docker's way:
    /// type=bind|volume|tmpfs,source=…,target=…[,readonly].
    #[arg(long = "mount", value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount an empty tmpfs at this absolute path inside the container.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Memory limit (e.g. 64m).
    #[arg(short, long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// CPU limit (e.g. 0.5).
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Process limit (-1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// bridge (own address on the node bridge), none (only lo), host, or
    /// container:<name|id> (share another container's network).
    #[arg(long, visible_alias = "net", default_value = "bridge")]
    pub network: String,
    /// Publish a port: [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/tcp|udp] (no host port: a free one is picked).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every exposed port (the image's and --expose) on a free
    /// host port.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Expose a port or range (PORT[/tcp|udp]) besides the image's.
    #[arg(long)]
    pub expose: Vec<String>,
    /// A name server for the container's /etc/resolv.conf.
    #[arg(long)]
    pub dns: Vec<String>,
    /// An extra /etc/hosts line, HOST:IP.
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// The subnet of the node bridge (skiff0) the bridge network uses.
    #[arg(long, default_value = crate::net::host::DEFAULT_NODE_CIDR)]
    pub node_cidr: String,
    /// The container's host name (default: its short ID).
    #[arg(long)]
    pub hostname: Option<String>,
    /// The cgroup the container's cgroup is made under.
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// seccomp=unconfined (no filter), seccomp=PROFILE.json (Docker's
    /// format) instead of the default profile; no-new-privileges (always on).
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Add a host device: HOSTDEV[:CTRDEV[:PERMS]] (PERMS from "rwm").
    #[arg(long = "device")]
    pub device: Vec<String>,
    /// Every device and capability, no masked paths, no seccomp filter (as
    /// docker --privileged).
    #[arg(long)]
    pub privileged: bool,
    /// Rotate the container's log at this size (bytes or 10m style).
    #[arg(long)]
    pub log_max_size: Option<String>,
    /// Add a capability to docker's default set (CAP_X or X; ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from it (ALL: every one not added).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// A resource limit: NAME=SOFT[:HARD] (nofile=1024:2048, nproc=100).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// The size of /dev/shm (e.g. 128m; default 64m).
    #[arg(long)]
    pub shm_size: Option<String>,
    /// The signal `skiff stop` sends first (default SIGTERM).
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// A namespaced kernel parameter: NAME=VALUE (net.ipv4.ip_forward=1).
    #[arg(long, value_name = "NAME=VALUE")]
    pub sysctl: Vec<String>,
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Pull the image: missing (when not here), always, never.
    #[arg(long, value_enum, default_value = "missing")]
    pub pull: PullArg,
    /// Mirrors, credentials and TLS settings for pulling a missing image.
    #[arg(long, default_value = crate::runtime::image::registries::DEFAULT_PATH)]
    pub registries: PathBuf,
    pub image: String,
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullArg {
    Missing,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait for SIGTERM before SIGKILL.
    #[arg(short, long, default_value_t = 10)]
    pub time: u64,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn options(args: &RunArgs) -> anyhow::Result<RunOptions> {
    let lookup = |k: &str| std::env::var(k).ok();
    let mut env = Vec::new();
    for f in &args.env_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        env.extend(options::parse_env_file(&text, lookup)?);
    }
    for e in &args.env {
        env.extend(options::parse_env(e, lookup)?);
    }
    if let Some(w) = args.workdir.as_deref().filter(|w| !w.starts_with('/')) {
        return Err(options::OptionsError::Workdir(w.to_string()).into());
    }
    // Unknown names are refused now, not when the container starts.
    crate::runtime::container::baseline::adjust_capabilities(
        crate::runtime::container::baseline::CAPABILITIES,
        &args.cap_add,
        &args.cap_drop,
    )
    .map_err(|c| anyhow::anyhow!("invalid capability {c:?}: not a Linux capability"))?;
    let restart = RestartPolicy::parse(&args.restart)?;
    if args.rm && restart != RestartPolicy::No {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    let network = Network::parse(&args.network)?;
    let ports = args
        .publish
        .iter()
        .map(|p| crate::net::ports::PublishedPort::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    for x in &args.expose {
        exposed_port(x)?;
    }
    if !ports.is_empty() && network != Network::Bridge {
        return Err(options::OptionsError::PortsNeedBridge(network.mode()).into());
    }
    if args.sandbox.is_some() && (network != Network::Bridge || !ports.is_empty()) {
        return Err(options::OptionsError::SandboxNetwork(args.network.clone()).into());
    }
    let mounts = args
        .mount
        .iter()
        .map(|m| options::MountSpec::parse(m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RunOptions {
        name: args.name.clone(),
        env,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        entrypoint: args.entrypoint.clone(),
        cmd: args.command.clone(),
        binds: args
            .volume
            .iter()
            .map(|v| Bind::parse(v))
            .chain(mounts.iter().filter_map(|m| match m {
                options::MountSpec::Bind(b) => Some(Ok(b.clone())),
                options::MountSpec::Tmpfs(_) => None,
            }))
            .collect::<Result<_, _>>()?,
        tmpfs: args
            .tmpfs
            .iter()
            .cloned()
            .chain(mounts.iter().filter_map(|m| match m {
                options::MountSpec::Tmpfs(t) => Some(t.clone()),
                options::MountSpec::Bind(_) => None,
            }))
            .collect(),
        memory: args
            .memory
            .as_deref()
            .map(options::parse_memory)
            .transpose()?,
        cpus: args.cpus.as_deref().map(options::parse_cpus).transpose()?,
        pids_limit: args.pids_limit.map(options::check_pids_limit).transpose()?,
        read_only: args.read_only,
        // In a sandbox the network is the sandbox's (the shim releases
        // no address of the container's own).
        network: args.sandbox.is_none().then_some(network),
        hostname: args.hostname.clone(),
        tty: args.tty,
        interactive: args.interactive,
        auto_remove: args.rm,
        init: args.init,
        cgroup_parent: args.cgroup_parent.clone(),
        ports,
        dns: args
            .dns
            .iter()
            .map(|d| options::parse_dns(d))
            .collect::<Result<_, _>>()?,
        add_hosts: args
            .add_host
            .iter()
            .map(|h| options::parse_add_host(h))
            .collect::<Result<_, _>>()?,
        seccomp: options::parse_security_opts(&args.security_opt)?,
        node_cidr: Some(
            args.node_cidr
                .parse()
                .with_context(|| format!("invalid --node-cidr {:?}", args.node_cidr))?,
        ),
        devices: args
            .device
            .iter()
            .map(|d| options::DeviceMapping::parse(d))
            .collect::<Result<_, _>>()?,
        privileged: args.privileged,
        sandbox: args.sandbox.clone(),
        restart,
        ulimits: args
            .ulimit
            .iter()
            .map(|u| options::parse_ulimit(u))
            .collect::<Result<_, _>>()?,
        shm_size: args
            .shm_size
            .as_deref()
            .map(|s| {
                crate::runtime::image::limit::parse_size(s)
                    .ok()
                    .and_then(|n| i64::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| options::OptionsError::ShmSize(s.to_string()))
            })
            .transpose()?,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        sysctls: args
            .sysctl
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(options::OptionsError::Sysctl(kv.clone())),
            })
            .collect::<Result<_, _>>()?,
        stop_signal: args
            .stop_signal
            .as_deref()
            // Real-time signals too (`SIGRTMIN+3`, as systemd wants).
            .map(
                |s| match crate::runtime::container::lifecycle::signal_number(s) {
                    Some(_) => Ok(s.to_string()),
                    None => parse_signal(s).map(|_| s.to_string()),
                },
            )
            .transpose()?,
        labels: args
            .label
            .iter()
            .map(|l| options::parse_label(l))
            .collect::<Result<_, _>>()?,
        healthcheck: args.health.config()?,
    })
}

fn log_max_size(args: &RunArgs) -> anyhow::Result<u64> {
    Ok(match &args.log_max_size {
        Some(s) => options::parse_memory(s)
            .map(|n| n as u64)
            .or_else(|_| s.parse::<u64>())
            .with_context(|| format!("invalid --log-max-size {s:?}"))?,
        None => DEFAULT_LOG_MAX_SIZE,
    })
}

/// `f` (which needs the image), pulling the image first as `--pull` says:
/// `missing` pulls when `f` finds no image, `always` before, `never` not.
fn with_image<T>(
    engine: &Engine,
    args: &RunArgs,
    mut f: impl FnMut() -> Result<T, ContainerError>,
) -> anyhow::Result<T> {
    let pull = |policy| -> anyhow::Result<()> {
        let quiet: Progress = std::sync::Arc::new(|_| {});
        let from = PullSource {
            registries: args.registries.clone(),
            limit: LayerLimit::default(),
        };
        let pulled = ensure::ensure(engine, &args.image, policy, &from, quiet)
            .with_context(|| format!("pulling {}", args.image))?;
        if let Some(pulled) = pulled {
            println!("{}", pulled.name);
        }
        Ok(())
    };
    match args.pull {
        PullArg::Always => {
            pull(PullPolicy::Always)?;
            Ok(f()?)
        }
        PullArg::Never => match f() {
            Err(ContainerError::Image(ImageStoreError::NotFound(_))) => {
                bail!("No such image: {}", args.image)
            }
            other => Ok(other?),
        },
        PullArg::Missing => match f() {
            Err(ContainerError::Image(ImageStoreError::NotFound(_))) => {
                eprintln!("Unable to find image '{}' locally", args.image);
                pull(PullPolicy::IfNotPresent)?;
                Ok(f()?)
            }
            other => Ok(other?),
        },
    }
}

/// `--expose PORT[/PROTO]` (or an image's `ExposedPorts` key) as a port
/// published on a free host port.
fn exposed_port(spec: &str) -> anyhow::Result<crate::net::ports::PublishedPort> {
    let p = crate::net::ports::PublishedPort::parse(spec)
        .with_context(|| format!("invalid --expose {spec:?}"))?;
    if p.host_port != 0 || p.host_ip.is_some() {
        bail!("invalid --expose {spec:?}: expected PORT[/tcp|udp]");
    }
    Ok(p)
}

/// Under `-P`: `req` with every exposed port published (the image's
/// `ExposedPorts` and `--expose`), those `-p` names left as given.
fn publish_exposed(
    store: &crate::runtime::image::Store,
    args: &RunArgs,
    mut req: CreateRequest,
) -> Result<CreateRequest, ContainerError> {
    if !args.publish_all {
        return Ok(req);
    }
    let rows = store.meta()?.list()?;
    let image = crate::runtime::image::catalog::find(&rows, &args.image)?
        .into_iter()
        .next()
        .ok_or_else(|| ImageStoreError::NotFound(args.image.clone()))?;
    let config: crate::runtime::image::manifest::ImageConfig =
        serde_json::from_slice(&store.read_blob(&image.config_digest)?).map_err(|e| {
            ContainerError::Shim(format!("the image config of {}: {e}", args.image))
        })?;
    let mut specs: Vec<String> = config
        .config
        .get("ExposedPorts")
        .and_then(|v| v.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    specs.extend(args.expose.iter().cloned());
    for s in specs {
        // Checked when parsed from the flags; an image's bad key is skipped.
        let Ok(p) = exposed_port(&s) else { continue };
        let taken = req
            .options
            .ports
            .iter()
            .any(|q| q.container_port == p.container_port && q.proto == p.proto);
        if !taken {
            req.options.ports.push(p);
        }
    }
    if !req.options.ports.is_empty() && req.options.network != Some(Network::Bridge) {
        let mode = req
            .options
            .network
            .as_ref()
            .map_or("none".into(), Network::mode);
        return Err(options::OptionsError::PortsNeedBridge(mode).into());
    }
    req.spec = req.options.to_container_spec(&args.image);
    Ok(req)
}

fn request(
    args: &RunArgs,
    opts: RunOptions,
    debug: bool,
    wait_start: bool,
) -> anyhow::Result<CreateRequest> {
    Ok(CreateRequest {
        spec: opts.to_container_spec(&args.image),
        options: opts,
        log_max_size: log_max_size(args)?,
        wait_start,
        debug,
        shim_binary: None,
    })
}

pub fn run(engine: &Engine, debug: bool, args: RunArgs) -> anyhow::Result<ExitCode> {
    // As early as possible: see cgroups/warmup.rs.
    crate::runtime::container::cgroups::warmup::start();
    let opts = options(&args)?;
    if let Some(name) = &opts.name {
        options::check_name(name)?;
    }
    let detach_keys = super::detach_keys::DetachKeys::parse(args.detach_keys.as_deref())?;
    let records = engine.records()?;
    let store = image_store(engine)?;
    let paths = engine.paths();
    let req = request(&args, opts, debug, !args.detach)?;
    let created = with_image(engine, &args, || {
        create::create(
            paths,
            records,
            store,
            publish_exposed(store, &args, req.clone())?,
        )
    })?;
    if args.detach {
        println!("{}", created.id);
        return Ok(ExitCode::SUCCESS);
    }
    let ended = super::attach::attach_to(
        &super::attach::Attach {
            paths,
            id: &created.id,
            stdin: args.interactive,
            tty: args.tty,
            start: true,
            sig_proxy: args.sig_proxy,
            detach_keys,
        },
        created.shim_stdout,
    )?;
    Ok(ended.exit_code())
}

/// `skiff create`: record the container, start nothing (`skiff start`
/// does); prints its ID.
pub fn create(engine: &Engine, debug: bool, args: RunArgs) -> anyhow::Result<()> {
    let opts = options(&args)?;
    if let Some(name) = &opts.name {
        options::check_name(name)?;
    }
    let records = engine.records()?;
    let store = image_store(engine)?;
    let req = request(&args, opts, debug, false)?;
    let id = with_image(engine, &args, || {
        create::prepare(
            engine.paths(),
            records,
            store,
            publish_exposed(store, &args, req.clone())?,
        )
    })?;
    println!("{id}");
    Ok(())
}

/// Run `f` on each named container, printing the name as docker does;
/// errors are reported per container and make the exit status non-zero.
pub(super) fn each(
    names: &[String],
    mut f: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut failed = 0;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("skiff: error: {}", super::error_text(&e));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} containers failed", names.len());
    }
    Ok(())
}

pub fn stop(engine: &Engine, args: StopArgs) -> anyhow::Result<()> {
    let (paths, state) = (engine.paths(), engine.records()?);
    each(&args.containers, |n| {
        let rec = state.find(n)?;
        lifecycle::stop(paths, state, &rec, Duration::from_secs(args.time))?;
        Ok(())
    })
}

pub fn kill(engine: &Engine, args: KillArgs) -> anyhow::Result<()> {
    let sig: nix::sys::signal::Signal = parse_signal(&args.signal)?;
    let (paths, state) = (engine.paths(), engine.records()?);
    each(&args.containers, |n| {
        let rec = state.find(n)?;
        lifecycle::kill(paths, state, &rec, sig)?;
        Ok(())
    })
}

pub(crate) fn parse_signal(s: &str) -> anyhow::Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .with_context(|| format!("invalid signal {s}"));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    nix::sys::signal::Signal::from_str(&name).with_context(|| format!("invalid signal {s}"))
}

pub fn rm(engine: &Engine, args: RmArgs) -> anyhow::Result<()> {
    let (paths, state) = (engine.paths(), engine.records()?);
    each(&args.containers, |n| {
        let rec = state.find(n)?;
        lifecycle::remove(paths, state, &rec, args.force)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(
            parse_signal("TERM").unwrap(),
            nix::sys::signal::Signal::SIGTERM
        );
        assert_eq!(
            parse_signal("9").unwrap(),
            nix::sys::signal::Signal::SIGKILL
        );
        assert!(parse_signal("NOPE").is_err());
    }
}
