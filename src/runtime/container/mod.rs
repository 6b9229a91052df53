//! Containers: OCI spec generation, the overlay rootfs, the per-container
//! shim that creates the container with libcontainer and holds its stdio,
//! CRI logs, and the record of every container in SQLite (typed, labelled:
//! records.rs). Exits are awaited without a thread each (exits.rs).
//!
//! A container is created from a ContainerSpec (containerspec.rs: process,
//! mounts, namespaces, resources, security, /etc files; no front end's
//! words), which `skiff run`'s docker-shaped options translate into
//! (options/translate.rs) and from which alone the OCI spec is rendered
//! (spec.rs) on top of the baseline confinement (baseline.rs).
//!
//! ```text
//! <root>/containers/containers.db       records and labels (records.rs)
//! <root>/containers/<id>/config.json    the OCI bundle's spec
//!                       rootfs/ upper/ work/   the overlay (rootfs.rs)
//!                       ctr.log ctr.log.1      CRI logs (logs.rs)
//!                       shim.log               the shim's own diagnostics
//!                       hostname hosts         files bound into the container
//! <run-dir>/containers/<id>/shim.sock   the shim's control socket (shim/proto.rs)
//! <run-dir>/runtime/<id>/               libcontainer's state
//! ```

pub mod baseline;
pub mod cgroups;
pub mod client;
pub mod containerspec;
pub mod copy;
pub mod create;
pub mod exec;
pub mod executor;
pub mod exits;
pub mod health;
pub mod init;
pub mod lifecycle;
pub mod logs;
pub mod options;
pub mod records;
pub mod restart;
pub mod rootfs;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod user;

use std::path::{Path, PathBuf};

/// Default size at which a container's log is rotated.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 10 << 20;

/// Where a node's containers live.
#[derive(Debug, Clone)]
pub struct Paths {
    node_root: PathBuf,
    root: PathBuf,
    run: PathBuf,
}

impl Paths {
    /// `root` is the node's `--root`, `run` its `--run-dir`.
    pub fn new(root: &Path, run: &Path) -> Paths {
        Paths {
            node_root: root.to_path_buf(),
            root: root.join("containers"),
            run: run.to_path_buf(),
        }
    }

    /// The node's `--root` (images and containers below it).
    pub fn node_root(&self) -> &Path {
        &self.node_root
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn run(&self) -> &Path {
        &self.run
    }

    pub fn db(&self) -> PathBuf {
        self.root.join("containers.db")
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.dir(id).join("rootfs")
    }

    pub fn log(&self, id: &str) -> PathBuf {
        self.dir(id).join("ctr.log")
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.run.join("containers").join(id)
    }

    pub fn socket(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("shim.sock")
    }

    /// libcontainer's state root (one directory per container under it).
    pub fn runtime_root(&self) -> PathBuf {
        self.run.join("runtime")
    }

    pub fn open_records(&self) -> Result<records::Records, ContainerError> {
        // Records, configs and logs hold secrets, and the run directory the
        // exec process specs (see runtime/private.rs).
        for dir in [
            self.node_root.as_path(),
            self.root.as_path(),
            self.run.as_path(),
        ] {
            crate::runtime::private::ensure_dir(dir).map_err(|source| ContainerError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        Ok(records::Records::open(&self.db())?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Records(#[from] records::RecordsError),
    #[error(transparent)]
    Options(#[from] options::OptionsError),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    ContainerSpec(#[from] containerspec::ContainerSpecError),
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error(transparent)]
    Image(#[from] crate::runtime::image::store::ImageStoreError),
    #[error(transparent)]
    ImageMeta(#[from] crate::runtime::image::meta::MetaError),
    #[error("starting the container: {0}")]
    Shim(String),
    /// The command cannot be run (docker's 127: not found, 126: cannot
    /// be executed); the container stays created.
    #[error("{message}")]
    Exec { code: i32, message: String },
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is already paused")]
    AlreadyPaused(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    #[error("container {0} is paused, unpause the container before exec")]
    PausedExec(String),
    #[error("container {0} is restarting, wait until the container is running")]
    Restarting(String),
    #[error("pausing the container: {0}")]
    Freeze(#[from] cgroups::freezer::FreezeError),
    #[error("you cannot remove a running container {0}: stop the container before removing it or use -f")]
    Running(String),
    #[error("talking to the shim of {id}: {source}")]
    Control { id: String, source: std::io::Error },
    #[error("volume: {0}")]
    Volume(String),
    #[error("network: {0}")]
    Network(#[from] crate::net::NetError),
    #[error(transparent)]
    Sandbox(#[from] crate::runtime::sandbox::SandboxError),
    #[error("cannot join the network of container {0}: it is not running")]
    JoinNotRunning(String),
    #[error("invalid --cgroup-parent {parent:?}: {source}")]
    CgroupParent {
        parent: String,
        source: cgroups::CgroupError,
    },
    #[error("cannot tell which cgroup filesystems to make read-only in the container: {0}")]
    CgroupMounts(cgroups::CgroupError),
}

/// The node network as the engine uses it (bridge skiff0): for `cidr` when
/// attaching, otherwise for the subnet the bridge was set up with (the
/// default before any). Releasing rewrites the rules for the pod network,
/// so it must not assume the default.
pub fn host_bridge(
    paths: &Paths,
    cidr: Option<crate::net::cidr::Ipv4Cidr>,
) -> crate::net::HostBridge {
    let cidr = cidr
        .or_else(|| crate::net::host::recorded_cidr(paths.node_root()))
        .unwrap_or_else(crate::net::host::default_cidr);
    crate::net::HostBridge::new(
        paths.node_root(),
        paths.run(),
        crate::net::host::DEFAULT_BRIDGE,
        cidr,
    )
}

/// A short docker-style ID prefix.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}
