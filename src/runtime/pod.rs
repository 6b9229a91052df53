//! The runtime as the node agent drives it: an async `PodRuntime` over the
//! blocking Engine. Pods are a sandbox (sandbox.rs) and containers made in
//! it from ContainerSpecs; exits arrive as a stream (container/exits.rs, no
//! thread per container); records carry labels so a restarted agent finds
//! its containers again (`list_containers`).
//!
//! ```text
//! PodRuntime (trait)        what the agent (issue 13) calls
//!   EnginePodRuntime        the real one: each call runs on tokio's blocking
//!                           pool with an Engine from a small pool (an Engine
//!                           is Send, not Sync: one per concurrent call)
//!   testing::FakePodRuntime records calls, lets a test script exits and
//!                           failures (no root, no kernel)
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, ChildStdout};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;

use crate::runtime::container::containerspec::ContainerSpec;
use crate::runtime::container::create::{self, CreateRequest};
use crate::runtime::container::exec::{self, ExecRequest};
use crate::runtime::container::exits::Exit;
use crate::runtime::container::records::{Record, Status};
use crate::runtime::container::{lifecycle, ContainerError, DEFAULT_LOG_MAX_SIZE};
use crate::runtime::engine::Engine;
use crate::runtime::sandbox::{Sandbox, SandboxError, SandboxRequest};

#[cfg(test)]
pub mod testing;

#[derive(Debug, thiserror::Error)]
pub enum PodRuntimeError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("the engine's worker failed: {0}")]
    Worker(String),
    #[error(transparent)]
    Cgroup(#[from] crate::runtime::container::cgroups::CgroupError),
    #[error("running a command in container {id}: {source}")]
    Exec {
        id: String,
        #[source]
        source: std::io::Error,
    },
    /// Only from a fake: a failure a test asked for.
    #[error("{0}")]
    Scripted(String),
}

impl PodRuntimeError {
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            PodRuntimeError::NotFound(_)
                | PodRuntimeError::Sandbox(SandboxError::NotFound(_))
                | PodRuntimeError::Container(ContainerError::Records(
                    crate::runtime::container::records::RecordsError::NotFound(_),
                ))
        )
    }
}

/// What a new sandbox gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxConfig {
    pub name: String,
    /// The name when unset.
    pub hostname: Option<String>,
    pub ports: Vec<crate::net::ports::PublishedPort>,
    /// The bridge's subnet; the one it was set up with when unset.
    pub cidr: Option<crate::net::cidr::Ipv4Cidr>,
    /// The node's own network (a pod's hostNetwork).
    pub host_network: bool,
    /// The node's own IPC namespace (a pod's hostIPC).
    pub host_ipc: bool,
    /// One PID namespace for all its containers (a pod's
    /// shareProcessNamespace).
    pub share_pid: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
}

/// A container as the agent reports it in a Pod's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub exit_code: Option<i32>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub oom_killed: bool,
    pub sandbox: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl ContainerStatus {
    pub fn of(r: &Record) -> ContainerStatus {
        ContainerStatus {
            id: r.id.clone(),
            name: r.name.clone(),
            image: r.image.clone(),
            state: match r.status {
                Status::Created => ContainerState::Created,
                Status::Running | Status::Paused => ContainerState::Running,
                // The agent restarts a pod's containers itself; a shim's
                // back-off is not a state the kubelet knows.
                Status::Exited | Status::Restarting => ContainerState::Exited,
            },
            exit_code: r.exit_code,
            started_at: r.started_at,
            finished_at: r.finished_at,
            oom_killed: r.oom_killed,
            sandbox: r.config.spec.sandbox.clone(),
            labels: r.labels.clone(),
        }
    }
}

/// What a command run to its end in a container gave (CRI's ExecSync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// None when it was killed at its timeout.
    pub exit_code: Option<i32>,
    /// stdout and stderr together, at most [`EXEC_OUTPUT_MAX`] bytes.
    pub output: Vec<u8>,
}

/// What is kept of an exec's output (kubelet keeps 10 KiB of a probe's).
pub const EXEC_OUTPUT_MAX: usize = 10 * 1024;

/// Exits as they happen: (container ID, how it ended).
pub type ExitStream = Pin<Box<dyn Stream<Item = (String, Result<Exit, PodRuntimeError>)> + Send>>;

/// What the node agent needs of a container runtime. Every method may be
/// called concurrently.
pub trait PodRuntime: Send + Sync + 'static {
    /// Make sandbox `config.name`: pinned network (on the bridge), IPC and
    /// UTS namespaces. Fails if the name is taken.
    fn run_sandbox(
        &self,
        config: SandboxConfig,
    ) -> impl Future<Output = Result<Sandbox, PodRuntimeError>> + Send;

    /// The names of every sandbox on the node.
    fn sandbox_names(&self) -> impl Future<Output = Result<Vec<String>, PodRuntimeError>> + Send;

    /// Sandbox `name` as it is now, if it exists (an agent that restarts
    /// finds its pods' sandboxes again).
    fn sandbox_status(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Sandbox>, PodRuntimeError>> + Send;

    /// Remove a sandbox (its address goes back to the pool); not found if
    /// there is none. Its containers are the caller's to remove first.
    fn remove_sandbox(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), PodRuntimeError>> + Send;

    /// Create a container in sandbox `sandbox` from `spec` (the image must
    /// be present: `image::ensure` first); it does not run until started.
    /// Returns its ID.
    fn create_container(
        &self,
        sandbox: &str,
        spec: ContainerSpec,
    ) -> impl Future<Output = Result<String, PodRuntimeError>> + Send;

    fn start_container(&self, id: &str)
        -> impl Future<Output = Result<(), PodRuntimeError>> + Send;

    /// SIGTERM, then SIGKILL after `timeout`; returns the exit code when it
    /// was still running.
    fn stop_container(
        &self,
        id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<i32>, PodRuntimeError>> + Send;

    /// Remove it, killing it first if it runs: nothing of it is left.
    fn remove_container(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<(), PodRuntimeError>> + Send;

    /// The exits of `ids`, as they happen.
    fn exits(&self, ids: Vec<String>) -> ExitStream;

    /// Every container whose labels include all of `labels`.
    fn list_containers(
        &self,
        labels: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<ContainerStatus>, PodRuntimeError>> + Send;

    fn container_status(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<ContainerStatus, PodRuntimeError>> + Send;

    /// The command that runs `command` in running container `id` (the
    /// container's environment and user; a terminal when `tty`, which the
    /// caller must give it as its stdio); the caller sets its stdio and
    /// spawns it.
    fn exec_process(
        &self,
        id: &str,
        command: Vec<String>,
        tty: bool,
    ) -> impl Future<Output = Result<std::process::Command, PodRuntimeError>> + Send;

    /// The usage of container `id`'s cgroup now.
    fn container_stats(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<crate::runtime::container::cgroups::Stats, PodRuntimeError>> + Send;

    /// Attach to running container `id`'s main process through its shim,
    /// as `skiff attach` does (shim/proto.rs): output frames until the
    /// exit frame, and stdin frames in when `stdin` and the container keeps
    /// a stdin open.
    /// With `stdin_once` (the container's `stdinOnce`) the container's
    /// stdin ends with this attachment's; otherwise it stays open for the
    /// next one.
    fn attach(
        &self,
        id: &str,
        stdin: bool,
        stdin_once: bool,
    ) -> impl Future<Output = Result<Attached, PodRuntimeError>> + Send;

    /// Run `command` in running container `id` with the container's
    /// environment and user, killed after `timeout`; its exit and output.
    fn exec_sync(
        &self,
        id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = Result<ExecOutput, PodRuntimeError>> + Send;
}

/// A connection to a container's shim in attach mode (PodRuntime::attach).
pub struct Attached {
    /// The request is sent; frames follow (shim/proto.rs).
    pub stream: std::os::unix::net::UnixStream,
    /// Its process has a terminal (stdout carries stderr too).
    pub tty: bool,
    /// Stdin frames reach the process.
    pub stdin: bool,
    pub terminal: Terminal,
}

/// Resizes a container's terminal through its shim.
#[derive(Clone)]
pub struct Terminal {
    paths: crate::runtime::container::Paths,
    id: String,
}

impl Terminal {
    /// Blocking (a request on the shim's socket).
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        crate::runtime::container::client::request(
            &self.paths,
            &self.id,
            &format!("resize {rows} {cols}"),
        )
        .map(|_| ())
    }
}

/// The real runtime: the Engine on tokio's blocking pool.
#[derive(Clone)]
pub struct EnginePodRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    run: PathBuf,
    shim_binary: Option<PathBuf>,
    log_max_size: u64,
    /// Idle engines; a call takes one (or opens one) and gives it back.
    engines: Mutex<Vec<Engine>>,
    /// Shims spawned and not yet reaped, and the pipe that holds a created
    /// container until it is started (closing it starts it, shim/run.rs).
    shims: Mutex<BTreeMap<String, (Child, Option<ChildStdout>)>>,
}

/// How the runtime is set up.
pub struct EnginePodRuntimeConfig {
    /// The node's `--root` and `--run-dir`.
    pub root: PathBuf,
    pub run: PathBuf,
    /// The skiff binary to run as each container's shim; this program when
    /// unset (the agent is skiff itself).
    pub shim_binary: Option<PathBuf>,
    /// Rotate each container's log at this size (the default when unset).
    pub log_max_size: Option<u64>,
}

impl EnginePodRuntime {
    pub fn new(config: EnginePodRuntimeConfig) -> EnginePodRuntime {
        EnginePodRuntime {
            inner: Arc::new(Inner {
                root: config.root,
                run: config.run,
                shim_binary: config.shim_binary,
                log_max_size: config.log_max_size.unwrap_or(DEFAULT_LOG_MAX_SIZE),
                engines: Mutex::new(Vec::new()),
                shims: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Run `f` with an engine on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner, &Engine) -> Result<T, PodRuntimeError> + Send + 'static,
    ) -> Result<T, PodRuntimeError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let engine = inner
                .engines
                .lock()
                .ok()
                .and_then(|mut idle| idle.pop())
                .unwrap_or_else(|| Engine::open(&inner.root, &inner.run));
            let out = f(&inner, &engine);
            if let Ok(mut idle) = inner.engines.lock() {
                idle.push(engine);
            }
            inner.reap();
            out
        })
        .await
        .map_err(|e| PodRuntimeError::Worker(e.to_string()))?
    }
}

impl Inner {
    /// Collect the shims that have exited (they are our children; an agent
    /// lives long, so they must not stay zombies).
    fn reap(&self) {
        if let Ok(mut shims) = self.shims.lock() {
            shims.retain(|_, (child, held)| {
                held.is_some() || !matches!(child.try_wait(), Ok(Some(_)))
            });
        }
    }

    /// Let a created container start: close the pipe its shim waits on.
    fn release(&self, id: &str) -> bool {
        let Ok(mut shims) = self.shims.lock() else {
            return false;
        };
        match shims.get_mut(id) {
            Some((_, held)) => held.take().is_some(),
            None => false,
        }
    }
}

fn record(engine: &Engine, id: &str) -> Result<Record, PodRuntimeError> {
    engine
        .records()?
        .get(id)
        .map_err(ContainerError::from)?
        .ok_or_else(|| PodRuntimeError::NotFound(id.to_string()))
}

impl PodRuntime for EnginePodRuntime {
    async fn run_sandbox(&self, config: SandboxConfig) -> Result<Sandbox, PodRuntimeError> {
        self.blocking(move |inner, engine| {
            // The holder is our own binary, as the shims are.
            let holder = match (&inner.shim_binary, config.share_pid) {
                (_, false) => None,
                (Some(b), true) => Some(b.clone()),
                (None, true) => Some(
                    std::env::current_exe()
                        .map_err(|e| PodRuntimeError::Worker(format!("our own binary: {e}")))?,
                ),
            };
            Ok(engine.create_sandbox(&SandboxRequest {
                name: &config.name,
                hostname: config.hostname.as_deref(),
                ports: &config.ports,
                cidr: config.cidr,
                host_network: config.host_network,
                host_ipc: config.host_ipc,
                pid_holder: holder.as_deref(),
            })?)
        })
        .await
    }

    async fn sandbox_names(&self) -> Result<Vec<String>, PodRuntimeError> {
        self.blocking(|_, engine| Ok(engine.sandbox_names())).await
    }

    async fn sandbox_status(&self, name: &str) -> Result<Option<Sandbox>, PodRuntimeError> {
        let name = name.to_string();
        self.blocking(
            move |_, engine| match crate::runtime::sandbox::find(engine.paths(), &name) {
                Ok(sb) => Ok(Some(sb)),
                Err(SandboxError::NotFound(_)) => Ok(None),
                Err(e) => Err(e.into()),
            },
        )
        .await
    }

    async fn remove_sandbox(&self, name: &str) -> Result<(), PodRuntimeError> {
        let name = name.to_string();
        self.blocking(move |_, engine| Ok(engine.remove_sandbox(&name)?))
            .await
    }

    async fn create_container(
        &self,
        sandbox: &str,
        spec: ContainerSpec,
    ) -> Result<String, PodRuntimeError> {
        let spec = ContainerSpec {
            sandbox: Some(sandbox.to_string()),
            ..spec
        };
        self.blocking(move |inner, engine| {
            let created = create::create(
                engine.paths(),
                engine.records()?,
                engine.images().map_err(ContainerError::from)?,
                CreateRequest {
                    spec,
                    options: Default::default(),
                    log_max_size: inner.log_max_size,
                    wait_start: true,
                    debug: false,
                    shim_binary: inner.shim_binary.clone(),
                },
            )?;
            if let Ok(mut shims) = inner.shims.lock() {
                shims.insert(created.id.clone(), (created.shim, created.shim_stdout));
            }
            Ok(created.id)
        })
        .await
    }

    async fn start_container(&self, id: &str) -> Result<(), PodRuntimeError> {
        let id = id.to_string();
        self.blocking(move |inner, engine| {
            let rec = record(engine, &id)?;
            if rec.status != Status::Created {
                return Ok(());
            }
            // Not held by us: whoever created it is gone, and its shim
            // starts a container whose spawner went away by itself.
            inner.release(&id);
            // Returned once it runs (as CRI's StartContainer): an exec or
            // a hook right after must find it running.
            let deadline = std::time::Instant::now() + START_WAIT;
            let mut pause = Duration::from_millis(1);
            loop {
                let rec = record(engine, &id)?;
                if rec.status != Status::Created || std::time::Instant::now() > deadline {
                    return Ok(());
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        })
        .await
    }

    async fn stop_container(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<i32>, PodRuntimeError> {
        let id = id.to_string();
        self.blocking(move |inner, engine| {
            let rec = record(engine, &id)?;
            // A created container that never ran: start it so that its
            // shim can take the signal (as docker stop of a created one).
            inner.release(&id);
            Ok(lifecycle::stop(
                engine.paths(),
                engine.records()?,
                &rec,
                timeout,
            )?)
        })
        .await
    }

    async fn remove_container(&self, id: &str) -> Result<(), PodRuntimeError> {
        let id = id.to_string();
        self.blocking(move |inner, engine| {
            let rec = record(engine, &id)?;
            inner.release(&id);
            lifecycle::remove(engine.paths(), engine.records()?, &rec, true)?;
            // Its shim is gone (remove waited for the exit): reap it now.
            if let Ok(mut shims) = inner.shims.lock() {
                if let Some((mut child, _)) = shims.remove(&id) {
                    let _ = child.wait();
                }
            }
            Ok(())
        })
        .await
    }

    fn exits(&self, ids: Vec<String>) -> ExitStream {
        use futures::StreamExt;
        let paths = crate::runtime::container::Paths::new(&self.inner.root, &self.inner.run);
        Box::pin(
            crate::runtime::container::exits::wait_all_owned(paths, ids).map(|(id, exit)| {
                let exit = exit.map_err(|source| {
                    PodRuntimeError::Container(ContainerError::Control {
                        id: id.clone(),
                        source,
                    })
                });
                (id, exit)
            }),
        )
    }

    async fn list_containers(
        &self,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<ContainerStatus>, PodRuntimeError> {
        self.blocking(move |_, engine| {
            let records = engine.records()?;
            // The first label narrows by index; the rest are checked here.
            let found = match labels.iter().next() {
                Some((k, v)) => records.with_label(k, Some(v)),
                None => records.list(),
            }
            .map_err(ContainerError::from)?;
            Ok(found
                .iter()
                .filter(|r| labels.iter().all(|(k, v)| r.labels.get(k) == Some(v)))
                .map(ContainerStatus::of)
                .collect())
        })
        .await
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus, PodRuntimeError> {
        let id = id.to_string();
        self.blocking(move |_, engine| Ok(ContainerStatus::of(&record(engine, &id)?)))
            .await
    }

    async fn container_stats(
        &self,
        id: &str,
    ) -> Result<crate::runtime::container::cgroups::Stats, PodRuntimeError> {
        let id = id.to_string();
        self.blocking(move |_, engine| {
            let rec = record(engine, &id)?;
            let path = rec
                .config
                .cgroup()
                .ok_or_else(|| PodRuntimeError::NotFound(id.clone()))?;
            crate::runtime::container::cgroups::stats(path).map_err(PodRuntimeError::from)
        })
        .await
    }

    async fn exec_process(
        &self,
        id: &str,
        command: Vec<String>,
        tty: bool,
    ) -> Result<std::process::Command, PodRuntimeError> {
        let id = id.to_string();
        self.blocking(move |inner, engine| {
            let rec = record(engine, &id)?;
            let req = ExecRequest {
                command,
                env: crate::runtime::container::spec::exec_env(&rec.config, &[], tty),
                tty,
                ..ExecRequest::default()
            };
            Ok(exec::command(
                engine.paths(),
                inner.shim_binary.as_deref(),
                &rec,
                &req,
            )?)
        })
        .await
    }

    async fn attach(
        &self,
        id: &str,
        stdin: bool,
        stdin_once: bool,
    ) -> Result<Attached, PodRuntimeError> {
        let id = id.to_string();
        self.blocking(move |_, engine| {
            use std::io::Write;
            let rec = record(engine, &id)?;
            let failed = |source| PodRuntimeError::Exec {
                id: id.clone(),
                source,
            };
            if rec.status != Status::Running {
                return Err(failed(std::io::Error::other(
                    "the container is not running",
                )));
            }
            let process = &rec.config.spec.process;
            let stdin = stdin && process.stdin;
            let mut stream = crate::runtime::container::client::connect(engine.paths(), &rec.id)
                .map_err(failed)?;
            let line: &[u8] = match (stdin, stdin_once) {
                (true, true) => b"attach stdin\n",
                (true, false) => b"attach stdin keep\n",
                (false, _) => b"attach\n",
            };
            stream.write_all(line).map_err(failed)?;
            Ok(Attached {
                stream,
                tty: process.tty,
                stdin,
                terminal: Terminal {
                    paths: engine.paths().clone(),
                    id: rec.id.clone(),
                },
            })
        })
        .await
    }

    async fn exec_sync(
        &self,
        id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, PodRuntimeError> {
        let owned = id.to_string();
        let cmd = self
            .blocking(move |inner, engine| {
                let rec = record(engine, &owned)?;
                let req = ExecRequest {
                    command,
                    env: crate::runtime::container::spec::exec_env(&rec.config, &[], false),
                    kill_after: Some(timeout),
                    ..ExecRequest::default()
                };
                Ok(exec::command(
                    engine.paths(),
                    inner.shim_binary.as_deref(),
                    &rec,
                    &req,
                )?)
            })
            .await?;
        exec_to_end(id, cmd, timeout)
            .await
            .map_err(|source| PodRuntimeError::Exec {
                id: id.to_string(),
                source,
            })
    }
}

/// How long start_container waits for the shim to record the start.
const START_WAIT: Duration = Duration::from_secs(10);

/// If the exec shim itself does not end this long after its timeout (a
/// wedged kernel call), it is killed and the command counts as timed out.
const EXEC_GRACE: Duration = Duration::from_secs(5);

/// Run an exec shim with stdout and stderr in one pipe; keep the first
/// EXEC_OUTPUT_MAX bytes and drain the rest (a chatty command must not
/// block on a full pipe, nor fill our memory).
async fn exec_to_end(
    id: &str,
    mut cmd: std::process::Command,
    timeout: Duration,
) -> std::io::Result<ExecOutput> {
    use tokio::io::AsyncReadExt;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let w2 = w.try_clone()?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::from(w2));
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn()?;
    // Our copies of the write end go, so that the read ends with the shim.
    drop(cmd);
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(r)?;
    let run = async {
        let mut output = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = pipe.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let room = EXEC_OUTPUT_MAX.saturating_sub(output.len());
            output.extend_from_slice(&buf[..n.min(room)]);
        }
        let status = child.wait().await?;
        std::io::Result::Ok((status, output))
    };
    let began = std::time::Instant::now();
    match tokio::time::timeout(timeout + EXEC_GRACE, run).await {
        Ok(Ok((status, output))) => {
            // The shim kills the command at its deadline: an end that late
            // is the timeout (as the health prober judges it).
            let killed = began.elapsed() >= timeout;
            Ok(ExecOutput {
                exit_code: if killed {
                    None
                } else {
                    Some(status.code().unwrap_or(137))
                },
                output,
            })
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            tracing::warn!(container = %id, "an exec shim outlived its deadline; killed");
            Ok(ExecOutput {
                exit_code: None,
                output: Vec::new(),
            })
        }
    }
}
