//! Creating a container from its ContainerSpec: check it, find the image,
//! record the container (claiming its name), resolve its namespaces (attach
//! to the bridge, join a sandbox or another container), write its /etc
//! files and OCI bundle and spawn its shim. Any failure undoes every step taken (a Drop guard), so bad
//! input leaves nothing behind.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use chrono::Utc;

use super::containerspec::{ContainerSpec, MountSource, Namespace, NetworkNamespace};
use super::lifecycle::LaunchLock;
use super::options::RunOptions;
use super::records::{ContainerConfig, Record, Records, Status};
use super::spec::{self, ImageProcess, SpecInputs};
use super::{cgroups, user, ContainerError, Paths};
use crate::net::Attachment;
use crate::runtime::image::catalog;
use crate::runtime::image::manifest::ImageConfig;
use crate::runtime::image::Store;

/// How to create it.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub spec: ContainerSpec,
    /// The docker-shaped options the spec was translated from, kept on the
    /// record for `inspect` and `--rm` (default when there are none).
    pub options: RunOptions,
    pub log_max_size: u64,
    /// Leave the container created until a client attaches with `start`
    /// (foreground `run`: no output is missed).
    pub wait_start: bool,
    pub debug: bool,
    /// The skiff binary run as the shim; this very binary when unset (a
    /// program embedding the engine, such as a test, names it).
    pub shim_binary: Option<PathBuf>,
}

/// A container whose shim is up.
pub struct Created {
    pub id: String,
    pub name: String,
    pub pid: i32,
    /// The shim; under `wait_start` its stdout must stay open until the
    /// container is started (closing it starts the container).
    pub shim: Child,
    pub shim_stdout: Option<ChildStdout>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ContainerError + '_ {
    move |source| ContainerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Undo a half-made container unless disarmed.
struct Undo<'a> {
    paths: &'a Paths,
    state: &'a Records,
    id: String,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.armed {
            remove_leftovers(self.paths, &self.id);
            let _ = self.state.remove(&self.id);
        }
    }
}

/// Everything a container may have besides its record: what
/// `lifecycle::release` gives back, and its directory.
pub fn remove_leftovers(paths: &Paths, id: &str) {
    super::lifecycle::release(paths, id);
    let dir = paths.dir(id);
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("{}: {e}", dir.display())
        }
        _ => {}
    }
}

fn new_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Docker-style `adjective_noun` names.
fn random_name() -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fond", "keen", "lucid", "quiet", "swift", "tidy", "wise",
    ];
    const NOUN: &[&str] = &[
        "ada", "babbage", "curie", "dijkstra", "hopper", "knuth", "lovelace", "noether", "turing",
        "wozniak",
    ];
    let n = uuid::Uuid::new_v4().as_u128();
    format!(
        "{}_{}_{}",
        ADJ[(n % 10) as usize],
        NOUN[((n >> 8) % 10) as usize],
        (n >> 16) % 1000
    )
}

fn host_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The host's hard limit on open files (the spec must not ask for more).
fn nofile_hard() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(_, hard)| hard)
}

/// How to start a container's shim (again, for `start` and `restart`).
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub log_max_size: u64,
    /// See [`CreateRequest::wait_start`].
    pub wait_start: bool,
    pub debug: bool,
    /// See [`CreateRequest::shim_binary`].
    pub shim_binary: Option<PathBuf>,
    /// Under a restart policy: the restarts so far and the last back-off
    /// wait (restart.rs), which the next shim carries on from.
    pub restart_count: u32,
    pub restart_delay: std::time::Duration,
}

/// Create container `req` in `state` (the caller's open container state)
/// and start its shim. Should the container fail to start in its shim,
/// the record stays (Created, as `skiff create` leaves it), as docker
/// keeps a container whose start failed, for `ps -a` to show and `rm` to
/// remove; unless `--rm`, or the container is the agent's (no docker-shaped
/// options), whose failed create must leave nothing for the kubelet to
/// trip over when it tries again, as with containerd's CRI.
pub fn create(
    paths: &Paths,
    state: &Records,
    store: &Store,
    req: CreateRequest,
) -> Result<Created, ContainerError> {
    let launch = Launch {
        log_max_size: req.log_max_size,
        wait_start: req.wait_start,
        debug: req.debug,
        shim_binary: req.shim_binary.clone(),
        ..Launch::default()
    };
    let keep = req.options != RunOptions::default() && !req.options.auto_remove;
    // Until the shim is up: see LaunchLock.
    let _lock = LaunchLock::shared(paths)?;
    let id = record(paths, state, store, req)?;
    let mut undo = Undo {
        paths,
        state,
        id: id.clone(),
        armed: true,
    };
    let name = bundle(paths, state, &id)?;
    let created = start_shim(paths, state, &id, name, &launch);
    if created.is_err() && keep {
        super::lifecycle::release(paths, &id);
        undo.armed = false;
    }
    let created = created?;
    undo.armed = false;
    Ok(created)
}

/// Record container `req` (status Created, its directory made) without
/// starting anything: `skiff create`; [`launch`] starts it. Its ID.
pub fn prepare(
    paths: &Paths,
    state: &Records,
    store: &Store,
    req: CreateRequest,
) -> Result<String, ContainerError> {
    // Prune must not take the image away before the record names it.
    let _lock = LaunchLock::shared(paths)?;
    record(paths, state, store, req)
}

fn record(
    paths: &Paths,
    state: &Records,
    store: &Store,
    req: CreateRequest,
) -> Result<String, ContainerError> {
    req.spec.check()?;
    let cspec = resolve_volumes(paths, &req.spec)?;
    check_mounts(&cspec)?;
    if let Some(name) = &cspec.name {
        super::options::check_name(name)?;
    }
    let image_ref = cspec.image.as_str();
    let meta = store.meta()?;
    let rows = meta.list()?;
    let image = catalog::find(&rows, image_ref)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            crate::runtime::image::store::ImageStoreError::NotFound(image_ref.to_string())
        })?;
    let config: ImageConfig = serde_json::from_slice(&store.read_blob(&image.config_digest)?)
        .map_err(|e| ContainerError::Shim(format!("the image config of {image_ref}: {e}")))?;
    let process = ImageProcess::from_config(&config.config);
    let command = spec::command(&process, &cspec.process)?;
    let snapshots: Vec<PathBuf> = meta
        .layers(&image.manifest_digest)?
        .iter()
        .map(|l| store.snapshot_path(&l.chain_id))
        .collect::<Result<_, _>>()?;
    // From the layers, before anything is set up that a bad --user would
    // have to undo.
    identity(&cspec, &process, &snapshots)?;

    let id = new_id();
    let name = cspec.name.clone().unwrap_or_else(random_name);
    let parent = cspec
        .cgroup_parent
        .clone()
        .unwrap_or_else(|| cgroups::default_parent().to_string());
    cgroups::validate_path(&format!("/{}", parent.trim_matches('/'))).map_err(|source| {
        ContainerError::CgroupParent {
            parent: parent.clone(),
            source,
        }
    })?;
    let cgroups_path = cgroups::cgroups_path(&parent, &id);
    state.insert(&Record {
        id: id.clone(),
        name,
        image: image_ref.to_string(),
        image_id: image.config_digest.clone(),
        command,
        created: Utc::now(),
        status: Status::Created,
        pid: None,
        shim_pid: None,
        exit_code: None,
        started_at: None,
        finished_at: None,
        oom_killed: false,
        config: ContainerConfig {
            // As asked: the namespaces it resolves to are the engine's.
            spec: req.spec.clone(),
            options: req.options.clone(),
            cgroups_path,
            image_config: config.config,
            snapshots,
            log_max_size: Some(req.log_max_size),
            restart_count: 0,
            health: None,
            other: Default::default(),
        },
        labels: cspec.labels.clone(),
    })?;
    let mut undo = Undo {
        paths,
        state,
        id: id.clone(),
        armed: true,
    };
    let dir = paths.dir(&id);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    undo.armed = false;
    Ok(id)
}

/// Named volumes are created on first use, as `docker run -v name:/dir`:
/// the spec with their directories in place of their names.
fn resolve_volumes(paths: &Paths, spec: &ContainerSpec) -> Result<ContainerSpec, ContainerError> {
    let mut cspec = spec.clone();
    let volumes = crate::runtime::volume::Volumes::new(paths.node_root());
    for m in &mut cspec.mounts {
        if let MountSource::Volume(name) = &m.source {
            m.source = MountSource::Host(
                volumes
                    .mountpoint(name)
                    .map_err(|e| ContainerError::Volume(e.to_string()))?,
            );
        }
    }
    Ok(cspec)
}

/// The user the process runs as, looked up in the image's layers.
fn identity(
    cspec: &ContainerSpec,
    process: &ImageProcess,
    snapshots: &[PathBuf],
) -> Result<user::Identity, ContainerError> {
    let user_spec = cspec
        .process
        .user
        .clone()
        .unwrap_or_else(|| process.user.clone());
    let mut ident = user::resolve_in_layers(snapshots, &user_spec)?;
    for g in &cspec.process.groups {
        if *g != ident.gid && !ident.additional_gids.contains(g) {
            ident.additional_gids.push(*g);
        }
    }
    Ok(ident)
}

/// Start the shim of recorded container `id` that is not running (made by
/// [`prepare`], or exited): attach its network, write its /etc files and
/// OCI bundle, spawn the shim. On failure what this set up is given back
/// and the record stays as it was.
pub fn launch(
    paths: &Paths,
    state: &Records,
    id: &str,
    launch: &Launch,
) -> Result<Created, ContainerError> {
    // Until the shim is up: see LaunchLock.
    let _lock = LaunchLock::shared(paths)?;
    let created =
        bundle(paths, state, id).and_then(|name| start_shim(paths, state, id, name, launch));
    if created.is_err() {
        super::lifecycle::release(paths, id);
    }
    created
}

/// Everything the shim of recorded container `id` needs (its network, /etc
/// files and OCI bundle); its name.
fn bundle(paths: &Paths, state: &Records, id: &str) -> Result<String, ContainerError> {
    let record = state
        .get(id)?
        .ok_or_else(|| super::records::RecordsError::NotFound(id.to_string()))?;
    let mut cspec = resolve_volumes(paths, &record.config.spec)?;
    check_mounts(&cspec)?;
    let process = ImageProcess::from_config(&record.config.image_config);
    let identity = identity(&cspec, &process, &record.config.snapshots)?;
    let cgroups_path = record.config.cgroups_path.clone();
    let name = record.name.clone();
    let dir = paths.dir(id);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    super::lifecycle::clear_stop_mark(paths, id);
    // The overlay itself is mounted by the shim, in a mount namespace of its
    // own (see shim/run.rs).
    let rootfs = paths.rootfs(id);
    let sandbox = match &cspec.sandbox {
        Some(name) => Some(crate::runtime::sandbox::find(paths, name)?),
        None => None,
    };
    let (spec_network, attachment) = match &sandbox {
        Some(sb) => (NetworkNamespace::Path(sb.net.clone()), None),
        None => resolve_network(paths, state, id, &cspec.namespaces.network)?,
    };
    let hostname = match (&sandbox, &cspec.etc.hostname, &cspec.namespaces.network) {
        (Some(sb), _, _) => sb.hostname.clone(),
        (None, Some(h), _) => h.clone(),
        (None, None, NetworkNamespace::Host) => host_hostname(),
        (None, None, _) => super::short_id(id).to_string(),
    };
    // The container's own address names it in /etc/hosts, as docker and
    // the kubelet write it (in a sandbox: the sandbox's); 127.0.1.1 only
    // when it has none.
    let own_ip = match (&sandbox, &attachment) {
        (Some(sb), _) if sb.host_network => None,
        (Some(sb), _) => Some(std::net::IpAddr::V4(sb.ip)),
        (None, Some(a)) => Some(std::net::IpAddr::V4(a.ip)),
        (None, None) => None,
    };
    let host_network = cspec.namespaces.network == NetworkNamespace::Host
        || sandbox.as_ref().is_some_and(|sb| sb.host_network);
    let etc_files = write_etc_files(&EtcFilesFor {
        dir: &dir,
        hostname: &hostname,
        spec: &cspec,
        host_network,
        own_ip,
    })?;
    if let Some(sb) = &sandbox {
        // A host-network or host-IPC sandbox's namespaces are the host's:
        // no sysctl of theirs may be set from a container.
        super::spec::check_sysctls(&cspec.security.sysctls, sb.host_network, sb.host_ipc)?;
        cspec.namespaces.ipc = Namespace::Path(sb.ipc.clone());
        cspec.namespaces.uts = Namespace::Path(sb.uts.clone());
        if let Some(pid) = &sb.pid {
            cspec.namespaces.pid = Namespace::Path(pid.clone());
        }
        cspec.namespaces.host_ipc = sb.host_ipc;
    }
    cspec.namespaces.network = spec_network;
    // Our own static binary is the init (`skiff init`, see init.rs).
    let init_binary = if cspec.process.init {
        let exe = std::env::current_exe().map_err(io_err(Path::new("/proc/self/exe")))?;
        Some(exe.to_string_lossy().into_owned())
    } else {
        None
    };
    let mut spec = spec::build(&SpecInputs {
        image: &process,
        spec: &cspec,
        identity: &identity,
        hostname: &hostname,
        rootfs: &rootfs,
        cgroups_path: &cgroups_path,
        etc_files: &etc_files,
        nofile_hard: nofile_hard(),
        init: init_binary.as_deref(),
        cgroup_mounts: &cgroups::container_mounts().map_err(ContainerError::CgroupMounts)?,
    })?;
    super::executor::defer_rlimits(&mut spec).map_err(|e| ContainerError::Shim(e.to_string()))?;
    let config_path = dir.join("config.json");
    let spec_json =
        serde_json::to_vec_pretty(&spec).map_err(|e| ContainerError::Shim(e.to_string()))?;
    // The spec holds the environment (`-e DB_PASSWORD=…`): 0600.
    crate::runtime::private::write_file(&config_path, &spec_json).map_err(io_err(&config_path))?;
    Ok(name)
}

/// Spawn the shim of container `id`, whose bundle is written, and record it.
fn start_shim(
    paths: &Paths,
    state: &Records,
    id: &str,
    name: String,
    launch: &Launch,
) -> Result<Created, ContainerError> {
    let (shim, shim_stdout, pid) = spawn_shim(paths, id, launch)?;
    let _ = state.set_shim(id, shim.id() as i32);
    Ok(Created {
        id: id.to_string(),
        name,
        pid,
        shim,
        shim_stdout,
    })
}

/// Bind sources must exist, tmpfs targets be absolute (a filesystem check:
/// not in the pure translation).
fn check_mounts(spec: &ContainerSpec) -> Result<(), ContainerError> {
    for m in &spec.mounts {
        let bad = match &m.source {
            MountSource::Host(source) if !source.exists() => {
                super::options::OptionsError::BindSpec(format!(
                    "{}:{} (the host path does not exist)",
                    source.display(),
                    m.destination
                ))
            }
            MountSource::Tmpfs if !m.destination.starts_with('/') => {
                super::options::OptionsError::Tmpfs(m.destination.clone())
            }
            _ => continue,
        };
        return Err(bad.into());
    }
    Ok(())
}

/// The namespace the spec joins for the chosen network, and the bridge
/// attachment when there is one.
fn resolve_network(
    paths: &Paths,
    state: &super::records::Records,
    id: &str,
    network: &NetworkNamespace,
) -> Result<(NetworkNamespace, Option<Attachment>), ContainerError> {
    match network {
        NetworkNamespace::Bridge { ports, cidr } => {
            let a = super::host_bridge(paths, *cidr).attach(id, ports)?;
            Ok((NetworkNamespace::Path(a.netns.clone()), Some(a)))
        }
        NetworkNamespace::Container(query) => {
            let other = state.find(query)?;
            match (other.status, other.pid) {
                (Status::Running, Some(pid)) => Ok((
                    NetworkNamespace::Path(PathBuf::from(format!("/proc/{pid}/ns/net"))),
                    None,
                )),
                _ => Err(ContainerError::JoinNotRunning(query.clone())),
            }
        }
        // `lo` up, as docker's: made (and pinned until the shim has started
        // the container in it) by skiff, since the container cannot.
        NetworkNamespace::Isolated => {
            let handle = isolated_netns(paths, id);
            crate::net::create_isolated(&handle)?;
            Ok((NetworkNamespace::Path(handle), None))
        }
        other => Ok((other.clone(), None)),
    }
}

/// Where the pinned namespace of a `--network none` container is, until
/// its shim has created the container in it.
pub fn isolated_netns(paths: &Paths, id: &str) -> PathBuf {
    paths.run_dir(id).join("netns")
}

/// What the /etc files of a container are written from.
struct EtcFilesFor<'a> {
    /// The container's directory, where they are written.
    dir: &'a Path,
    hostname: &'a str,
    spec: &'a ContainerSpec,
    host_network: bool,
    /// The address its hostname maps to (127.0.1.1 when it has none).
    own_ip: Option<std::net::IpAddr>,
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf, written per container and
/// bound in as docker does.
fn write_etc_files(input: &EtcFilesFor) -> Result<Vec<(String, String)>, ContainerError> {
    let EtcFilesFor {
        dir,
        hostname,
        spec,
        host_network,
        own_ip,
    } = *input;
    let own = own_ip.map_or_else(|| "127.0.1.1".to_string(), |ip| ip.to_string());
    let mut hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{hostname}\n"
    );
    for (host, ip) in &spec.etc.hosts {
        hosts.push_str(&format!("{ip}\t{host}\n"));
    }
    let mut files = vec![
        ("hostname", format!("{hostname}\n"), "/etc/hostname"),
        ("hosts", hosts, "/etc/hosts"),
    ];
    if let Some(resolv) = resolv_conf(&spec.etc, host_network) {
        files.push(("resolv.conf", resolv, "/etc/resolv.conf"));
    }
    let mut out = Vec::new();
    for (file, content, dest) in files {
        let p = dir.join(file);
        fs::write(&p, content).map_err(io_err(&p))?;
        out.push((p.to_string_lossy().into_owned(), dest.to_string()));
    }
    Ok(out)
}

/// Exactly what is given when it is whole (`dns_exact`: a pod's, by
/// kubelet's rules). Else the host's resolv.conf, as Docker does: verbatim
/// on the host network; elsewhere without loopback name servers
/// (unreachable from the container's namespace), falling back to public
/// ones; `--dns` replaces the name servers and search domains given
/// replace the node's.
fn resolv_conf(etc: &super::containerspec::EtcFiles, host_network: bool) -> Option<String> {
    if etc.dns_exact {
        let mut out = String::new();
        if !etc.dns_search.is_empty() {
            out.push_str(&format!("search {}\n", etc.dns_search.join(" ")));
        }
        for ip in &etc.dns_servers {
            out.push_str(&format!("nameserver {ip}\n"));
        }
        if !etc.dns_options.is_empty() {
            out.push_str(&format!("options {}\n", etc.dns_options.join(" ")));
        }
        return Some(out);
    }
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if host_network
        && etc.dns_servers.is_empty()
        && etc.dns_search.is_empty()
        && etc.dns_options.is_empty()
    {
        return (!host.is_empty()).then_some(host);
    }
    let mut out = String::new();
    let mut servers = 0;
    if !etc.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", etc.dns_search.join(" ")));
    }
    for line in host.lines() {
        let mut words = line.split_whitespace();
        let first = words.next();
        if first == Some("search") && !etc.dns_search.is_empty() {
            continue;
        }
        if first == Some("options") && !etc.dns_options.is_empty() {
            continue;
        }
        if first == Some("nameserver") {
            let keep = etc.dns_servers.is_empty()
                && words
                    .next()
                    .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|ip| !ip.is_loopback());
            if keep {
                servers += 1;
                out.push_str(line);
                out.push('\n');
            }
        } else if !line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    for ip in &etc.dns_servers {
        servers += 1;
        out.push_str(&format!("nameserver {ip}\n"));
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    if !etc.dns_options.is_empty() {
        out.push_str(&format!("options {}\n", etc.dns_options.join(" ")));
    }
    Some(out)
}

/// Start `skiff shim run` and wait for its readiness line.
fn spawn_shim(
    paths: &Paths,
    id: &str,
    req: &Launch,
) -> Result<(Child, Option<ChildStdout>, i32), ContainerError> {
    let shim_log = paths.dir(id).join("shim.log");
    let log = crate::runtime::private::create_file(&shim_log).map_err(io_err(&shim_log))?;
    let exe = req
        .shim_binary
        .clone()
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    let mut cmd = Command::new(exe);
    cmd.arg("shim")
        .arg("run")
        .arg("--root")
        .arg(paths.node_root())
        .arg("--run-dir")
        .arg(paths.run())
        .args(["--id", id])
        .args(["--log-max-size", &req.log_max_size.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .env_remove("RUST_LOG")
        // The service manager's socket is skiff's, not its shims' (a shim
        // outlives the service and must never speak for it).
        .env_remove("NOTIFY_SOCKET");
    if req.wait_start {
        cmd.arg("--wait-start");
    }
    if req.debug {
        cmd.arg("--debug");
    }
    if req.restart_count > 0 {
        cmd.args(["--restart-count", &req.restart_count.to_string()]);
        cmd.args([
            "--restart-delay-ms",
            &req.restart_delay.as_millis().to_string(),
        ]);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ContainerError::Shim(format!("spawning the shim: {e}")))?;
    let stdout = child.stdout.take();
    let mut line = String::new();
    let mut reader = stdout.map(BufReader::new);
    if let Some(r) = reader.as_mut() {
        let _ = r.read_line(&mut line);
    }
    let line = line.trim();
    if let Some(pid) = line.strip_prefix("ok ").and_then(|p| p.parse().ok()) {
        return Ok((child, reader.map(BufReader::into_inner), pid));
    }
    let _ = child.wait();
    let detail = match line.strip_prefix("error ") {
        Some(msg) => msg.to_string(),
        None => {
            let log = fs::read_to_string(&shim_log).unwrap_or_default();
            format!("the shim exited without reporting: {}", log.trim())
        }
    };
    if let Some((code, message)) = super::executor::exec_failure_in(&detail) {
        return Err(ContainerError::Exec { code, message });
    }
    Err(ContainerError::Shim(detail))
}
