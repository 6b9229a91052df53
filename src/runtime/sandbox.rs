//! Pod sandboxes: the network, IPC and UTS namespaces a pod's containers
//! share, made once and pinned (bind-mounted, as `ip netns` does) so they
//! outlive any one container; the network one is attached to the bridge once
//! (src/net), under the attachment ID `sandbox-<name>`.
//!
//! ```text
//! <run-dir>/sandboxes/<name>/ipc uts   pinned namespaces (this file)
//!                            pid       a shared PID namespace, pinned,
//!                            pid-holder  and its PID 1's PID (pid_holder.rs)
//!                            hostname  the pod's hostname, set in uts
//!                            id        its ID (64 hex digits), for listings
//!                            net       a host-network sandbox's: the
//!                                      engine's own network namespace
//! the bridge's netns handle            pinned by src/net on attach
//! ```
//!
//! A host-network sandbox (a pod's `hostNetwork`) has no address of its own
//! and is not on the bridge: its `net` and `uts` pin the engine's own
//! namespaces (the host's hostname), and only IPC is the pod's.
//!
//! A container joins with `run --sandbox NAME`: the spec names the three
//! namespaces by path (spec.rs) and the container's hostname is the pod's.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::net::ports::PublishedPort;
use crate::runtime::container::{host_bridge, Paths};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no such sandbox: {0}")]
    NotFound(String),
    #[error("the sandbox name {0:?} is already in use")]
    Exists(String),
    #[error(transparent)]
    Name(#[from] crate::runtime::container::options::OptionsError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("sandbox {name}: {op}: {errno}")]
    Sys {
        name: String,
        op: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("sandbox network: {0}")]
    Network(#[from] crate::net::NetError),
    #[error("the thread pinning the sandbox's namespaces panicked")]
    Panicked,
}

/// What a new sandbox gets.
pub struct SandboxRequest<'a> {
    /// Unique among sandboxes (docker's name rule).
    pub name: &'a str,
    /// Defaults to the name.
    pub hostname: Option<&'a str>,
    pub ports: &'a [PublishedPort],
    pub cidr: Option<crate::net::cidr::Ipv4Cidr>,
    /// Share the engine's network and UTS namespaces (no address, no
    /// ports to publish: its servers listen on the host's own).
    pub host_network: bool,
    /// Share the engine's IPC namespace (a pod's hostIPC).
    pub host_ipc: bool,
    /// One PID namespace for every container (a pod's
    /// shareProcessNamespace), held by this binary run as `pid-holder`.
    pub pid_holder: Option<&'a Path>,
}

/// A sandbox as its containers join it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Made when it is created (empty for one made before sandboxes had
    /// IDs).
    pub id: String,
    /// When it was made (its directory's time).
    pub created: chrono::DateTime<chrono::Utc>,
    pub name: String,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub net: PathBuf,
    pub ipc: PathBuf,
    pub uts: PathBuf,
    /// The shared PID namespace, when the containers share one.
    pub pid: Option<PathBuf>,
    /// Its IPC namespace is the engine's own (a pod's hostIPC).
    pub host_ipc: bool,
    /// The engine's network namespace, `ip` unspecified.
    pub host_network: bool,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The bridge attachment ID of sandbox `name` (never a container ID, which
/// is 64 hex digits).
pub fn attachment_id(name: &str) -> String {
    format!("sandbox-{name}")
}

fn dir(paths: &Paths, name: &str) -> PathBuf {
    paths.run().join("sandboxes").join(name)
}

/// Make sandbox `req`: pin its IPC and UTS namespaces (the hostname set),
/// attach its network namespace to the bridge. A failure undoes every step.
pub fn create(paths: &Paths, req: &SandboxRequest) -> Result<Sandbox, SandboxError> {
    crate::runtime::container::options::check_name(req.name)?;
    let dir = dir(paths, req.name);
    if let Some(parent) = dir.parent() {
        crate::runtime::private::ensure_dir(parent).map_err(io_err(parent))?;
    }
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(SandboxError::Exists(req.name.to_string()))
        }
        Err(e) => return Err(io_err(&dir)(e)),
    }
    let hostname = if req.host_network {
        host_hostname()
    } else {
        req.hostname.unwrap_or(req.name).to_string()
    };
    let id = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let made = pin(req.name, &dir, &hostname, req.host_network, req.host_ipc)
        .and_then(|()| {
            for (file, content) in [("id", &id), ("hostname", &hostname)] {
                let p = dir.join(file);
                fs::write(&p, content).map_err(io_err(&p))?;
            }
            if req.host_ipc {
                let p = dir.join("host-ipc");
                fs::write(&p, "").map_err(io_err(&p))?;
            }
            if req.host_network {
                return Ok((Ipv4Addr::UNSPECIFIED, dir.join("net")));
            }
            let a = host_bridge(paths, req.cidr).attach(&attachment_id(req.name), req.ports)?;
            Ok((a.ip, a.netns))
        })
        .and_then(|(ip, net)| {
            // The holder lives in the sandbox's namespaces, so it is made
            // once they all exist.
            if let Some(binary) = req.pid_holder {
                if let Err(e) = hold_pid_namespace(req.name, &dir, binary, &net) {
                    if !req.host_network {
                        let _ = host_bridge(paths, None).release(&attachment_id(req.name));
                    }
                    return Err(e);
                }
            }
            Ok((ip, net))
        });
    match made {
        Ok((ip, net)) => Ok(Sandbox {
            id,
            created: created(&dir),
            name: req.name.to_string(),
            hostname,
            ip,
            net,
            ipc: dir.join("ipc"),
            uts: dir.join("uts"),
            pid: req.pid_holder.map(|_| dir.join("pid")),
            host_ipc: req.host_ipc,
            host_network: req.host_network,
        }),
        Err(e) => {
            unpin(&dir);
            Err(e)
        }
    }
}

/// Sandbox `name` as created.
pub fn find(paths: &Paths, name: &str) -> Result<Sandbox, SandboxError> {
    let dir = dir(paths, name);
    let hostname = fs::read_to_string(dir.join("hostname"))
        .map_err(|_| SandboxError::NotFound(name.to_string()))?;
    let host_network = dir.join("net").exists();
    let (ip, net) = if host_network {
        (Ipv4Addr::UNSPECIFIED, dir.join("net"))
    } else {
        let a = host_bridge(paths, None)
            .attachment(&attachment_id(name))?
            .ok_or_else(|| SandboxError::NotFound(name.to_string()))?;
        (a.ip, a.netns)
    };
    Ok(Sandbox {
        id: fs::read_to_string(dir.join("id")).unwrap_or_default(),
        created: created(&dir),
        name: name.to_string(),
        hostname,
        ip,
        net,
        ipc: dir.join("ipc"),
        uts: dir.join("uts"),
        pid: Some(dir.join("pid")).filter(|p| p.exists()),
        host_ipc: dir.join("host-ipc").exists(),
        host_network,
    })
}

/// When the sandbox in `dir` was made: the directory is made first and its
/// entries never renamed, so its change time would move; the ID file's
/// modification time does not.
fn created(dir: &Path) -> chrono::DateTime<chrono::Utc> {
    fs::metadata(dir.join("id"))
        .or_else(|_| fs::metadata(dir))
        .and_then(|m| m.modified())
        .map(chrono::DateTime::<chrono::Utc>::from)
        .unwrap_or_else(|_| chrono::Utc::now())
}

/// The names of every sandbox.
pub fn names(paths: &Paths) -> Vec<String> {
    let Ok(entries) = fs::read_dir(paths.run().join("sandboxes")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Remove sandbox `name`: its address goes back to the pool and its
/// namespaces go away with the last container in them.
pub fn remove(paths: &Paths, name: &str) -> Result<(), SandboxError> {
    let dir = dir(paths, name);
    if !dir.exists() {
        return Err(SandboxError::NotFound(name.to_string()));
    }
    // The holder first: it (and whatever is left in its namespace) must
    // not outlive a removal that fails below.
    stop_pid_holder(&dir);
    if !dir.join("net").exists() {
        host_bridge(paths, None).release(&attachment_id(name))?;
    }
    unpin(&dir);
    Ok(())
}

/// A thread of our own unshares (only that thread changes) and its
/// namespaces are bind-mounted onto files in `dir`: new IPC and UTS ones,
/// or for a host-network sandbox a new IPC one beside the engine's own
/// network and UTS namespaces; with `host_ipc` the IPC one is the
/// engine's own.
fn pin(
    name: &str,
    dir: &Path,
    hostname: &str,
    host_network: bool,
    host_ipc: bool,
) -> Result<(), SandboxError> {
    let kinds: &'static [&'static str] = if host_network {
        &["ipc", "uts", "net"]
    } else {
        &["ipc", "uts"]
    };
    for kind in kinds {
        let p = dir.join(kind);
        fs::File::create(&p).map_err(io_err(&p))?;
    }
    let (name, dir, hostname) = (name.to_string(), dir.to_path_buf(), hostname.to_string());
    std::thread::spawn(move || -> Result<(), SandboxError> {
        let sys = |op, errno| SandboxError::Sys {
            name: name.clone(),
            op,
            errno,
        };
        let mut flags = CloneFlags::empty();
        if !host_ipc {
            flags |= CloneFlags::CLONE_NEWIPC;
        }
        if !host_network {
            flags |= CloneFlags::CLONE_NEWUTS;
        }
        if !flags.is_empty() {
            unshare(flags).map_err(|e| sys("unshare", e))?;
        }
        if !host_network {
            nix::unistd::sethostname(&hostname).map_err(|e| sys("sethostname", e))?;
        }
        for kind in kinds {
            mount(
                Some(format!("/proc/thread-self/ns/{kind}").as_str()),
                &dir.join(kind),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| sys("bind mount", e))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| SandboxError::Panicked)?
}

/// The engine's own hostname.
fn host_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Start the PID 1 of a new PID namespace (`binary pid-holder`, confined
/// to the sandbox's namespaces, see pid_holder.rs) and pin the namespace
/// at `<dir>/pid`, its PID at `<dir>/pid-holder`.
fn hold_pid_namespace(
    name: &str,
    dir: &Path,
    binary: &Path,
    net: &Path,
) -> Result<(), SandboxError> {
    use std::io::BufRead;
    let failed = |op: &'static str| SandboxError::Sys {
        name: name.to_string(),
        op,
        errno: nix::errno::Errno::EIO,
    };
    let root = dir.join("holder-root");
    fs::create_dir_all(&root).map_err(io_err(&root))?;
    let mut child = std::process::Command::new(binary)
        .arg(crate::runtime::pid_holder::ARG)
        .env_clear()
        .envs(crate::runtime::pid_holder::ENV.iter().zip([
            net.to_path_buf(),
            dir.join("ipc"),
            dir.join("uts"),
            root.clone(),
        ]))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(io_err(binary))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = io::BufReader::new(out).read_line(&mut line);
    }
    let status = child.wait().map_err(io_err(binary))?;
    let pid: i32 = match line.trim().parse() {
        Ok(pid) if status.success() && pid > 1 => pid,
        _ => return Err(failed("start the PID namespace holder")),
    };
    let pinned = (|| {
        let p = dir.join("pid");
        fs::File::create(&p).map_err(io_err(&p))?;
        mount(
            Some(format!("/proc/{pid}/ns/pid").as_str()),
            &p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|errno| SandboxError::Sys {
            name: name.to_string(),
            op: "bind mount",
            errno,
        })?;
        let f = dir.join("pid-holder");
        fs::write(&f, pid.to_string()).map_err(io_err(&f))
    })();
    if pinned.is_err() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pinned
}

/// End the PID namespace holder of the sandbox in `dir` (and with it
/// whatever is left in the namespace), if it is still the process that
/// holds the pinned namespace: a PID may have been reused since.
fn stop_pid_holder(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Some(pid) = fs::read_to_string(dir.join("pid-holder"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    let pinned = fs::metadata(dir.join("pid")).map(|m| (m.dev(), m.ino()));
    let theirs = fs::metadata(format!("/proc/{pid}/ns/pid")).map(|m| (m.dev(), m.ino()));
    if let (Ok(a), Ok(b)) = (pinned, theirs) {
        if a == b {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Unmount and delete what `dir` pins; missing parts are fine.
fn unpin(dir: &Path) {
    stop_pid_holder(dir);
    for kind in ["ipc", "uts", "net", "pid"] {
        let p = dir.join(kind);
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => tracing::warn!("{}: unmount: {e}", p.display()),
        }
    }
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!("{}: {e}", dir.display());
        }
    }
}
