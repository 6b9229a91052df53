//! The engine: one object the CLI (and later the node agent) drives, owning
//! the node's paths, its container records, its image store and its network.
//!
//! It stays blocking (the CLI and the shim are synchronous; an async agent
//! calls it through `spawn_blocking`). Every part is opened on first use, so
//! a command pays only for what it touches: `skiff run --rm`'s start-up is on
//! the benchmark (bench/run-container.sh), `skiff images` never opens the
//! container records and `skiff ps` never opens the image store. It is Send
//! but not Sync (the records are one SQLite connection): a multi-threaded
//! caller keeps it behind a mutex or opens one per worker.
//!
//! ```text
//! Engine::open(root, run)   no I/O
//!   .records()               <root>/containers/containers.db, reconciled once
//!   .images()                <root>/images (image/store.rs)
//!   .network(cidr)           the host bridge (src/net), the one place named
//!   .volumes()               <root>/volumes
//! ```

use std::cell::OnceCell;
use std::path::Path;

use crate::runtime::container::records::Records;
use crate::runtime::container::{lifecycle, ContainerError, Paths};
use crate::runtime::image::store::{ImageStoreError, Store};
use crate::runtime::sandbox::{self, Sandbox, SandboxError, SandboxRequest};
use crate::runtime::volume::Volumes;

pub struct Engine {
    paths: Paths,
    records: OnceCell<Records>,
    images: OnceCell<Store>,
}

impl Engine {
    /// The engine of the node rooted at `root` (`--root`) whose runtime
    /// state is under `run` (`--run-dir`). Nothing is opened yet.
    pub fn open(root: &Path, run: &Path) -> Engine {
        Engine {
            paths: Paths::new(root, run),
            records: OnceCell::new(),
            images: OnceCell::new(),
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn root(&self) -> &Path {
        self.paths.node_root()
    }

    /// The container records, with containers whose shim died meanwhile
    /// marked exited (once per engine).
    pub fn records(&self) -> Result<&Records, ContainerError> {
        if let Some(r) = self.records.get() {
            return Ok(r);
        }
        let records = self.paths.open_records()?;
        lifecycle::reconcile(&self.paths, &records)?;
        Ok(self.records.get_or_init(|| records))
    }

    /// The image store.
    pub fn images(&self) -> Result<&Store, ImageStoreError> {
        if let Some(s) = self.images.get() {
            return Ok(s);
        }
        let store = Store::open(self.root())?;
        Ok(self.images.get_or_init(|| store))
    }

    /// The host bridge the bridge network attaches to: for `cidr` when
    /// attaching, otherwise the subnet it was set up with.
    pub fn network(&self, cidr: Option<crate::net::cidr::Ipv4Cidr>) -> crate::net::HostBridge {
        crate::runtime::container::host_bridge(&self.paths, cidr)
    }

    /// A pod sandbox (sandbox.rs): pinned net, IPC and UTS namespaces on
    /// the bridge, joined by containers created with `sandbox: Some(name)`.
    pub fn create_sandbox(&self, req: &SandboxRequest) -> Result<Sandbox, SandboxError> {
        sandbox::create(&self.paths, req)
    }

    pub fn remove_sandbox(&self, name: &str) -> Result<(), SandboxError> {
        sandbox::remove(&self.paths, name)
    }

    pub fn sandbox_names(&self) -> Vec<String> {
        sandbox::names(&self.paths)
    }

    /// Every sandbox with the number of containers recorded in it, newest
    /// first.
    pub fn sandboxes(&self) -> Result<Vec<(Sandbox, usize)>, ContainerError> {
        let records = self.records()?.list()?;
        let mut out = Vec::new();
        for name in self.sandbox_names() {
            let sb = match sandbox::find(&self.paths, &name) {
                Ok(sb) => sb,
                // Being removed meanwhile.
                Err(SandboxError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let n = records
                .iter()
                .filter(|r| r.config.spec.sandbox.as_deref() == Some(name.as_str()))
                .count();
            out.push((sb, n));
        }
        out.sort_by_key(|(sb, _)| std::cmp::Reverse(sb.created));
        Ok(out)
    }

    pub fn volumes(&self) -> Volumes {
        Volumes::new(self.root())
    }

    /// Every image ID (config digest) with its size and whether a
    /// container (running or not) is made from it.
    pub fn image_usage(&self) -> Result<Vec<ImageUse>, ContainerError> {
        let in_use = self.records()?.images_in_use()?;
        let mut out: Vec<ImageUse> = Vec::new();
        for row in self.images()?.meta()?.list()? {
            match out.iter_mut().find(|u| u.id == row.config_digest) {
                Some(u) => u.names.push(row.name),
                None => out.push(ImageUse {
                    used: in_use
                        .containers
                        .iter()
                        .any(|(_, i)| *i == row.config_digest),
                    id: row.config_digest,
                    names: vec![row.name],
                    size: row.size,
                }),
            }
        }
        Ok(out)
    }

    /// Remove image `id` (every name of it) and what only it needed,
    /// unless a container is made from it meanwhile; the bytes freed, or
    /// None when it was kept. Never waits: while a container is being made
    /// or an image pulled, it keeps the image (a collector holding the
    /// launch lock through a long pull would stop every start on the node;
    /// waiting on both locks in either order could deadlock with `rmi`).
    pub fn remove_unused_image(&self, id: &str) -> Result<Option<u64>, ContainerError> {
        // No container is being made from an image without a record yet.
        let Some(_launch) = lifecycle::LaunchLock::try_exclusive(&self.paths)? else {
            return Ok(None);
        };
        let store = self.images()?;
        let Some(lock) = store.try_lock_exclusive()? else {
            return Ok(None);
        };
        let in_use = self.records()?.images_in_use()?;
        if in_use.containers.iter().any(|(_, i)| i == id) {
            return Ok(None);
        }
        let removed = crate::runtime::image::catalog::remove_locked(
            store,
            &lock,
            &[id.to_string()],
            false,
            &in_use,
        )?;
        if let Some(e) = removed.refused.into_iter().next() {
            return Err(e.into());
        }
        Ok(Some(removed.pruned.bytes))
    }
}

/// One image as the image garbage collector sees it.
#[derive(Debug, Clone)]
pub struct ImageUse {
    /// The config digest.
    pub id: String,
    pub names: Vec<String>,
    pub size: u64,
    pub used: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_open_on_first_use_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let engine = Engine::open(&root, &dir.path().join("run"));
        assert!(!root.exists(), "open must not touch the disk");
        assert!(engine.records().unwrap().list().unwrap().is_empty());
        assert!(root.join("containers/containers.db").exists());
        assert!(
            !root.join("images").exists(),
            "records alone opened the store"
        );
        let a: *const Records = engine.records().unwrap();
        let b: *const Records = engine.records().unwrap();
        assert_eq!(a, b, "records are opened once");
        engine.images().unwrap();
    }
}
