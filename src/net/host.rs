//! The host bridge a node's containers sit on (`HostBridge`), and each
//! container's attachment to it (namespace, veth, address, published ports).
//! Not a Kubernetes Node: one `HostBridge` per skiff root.
//!
//! State lives in `<root>/net`: `ipam/` (ipam.rs) and `attachments/<id>.json`,
//! both changed only under `<root>/net/lock`. Namespace handles are pinned
//! under `<run>/netns/<id>`; after a reboot the run directory is empty, so
//! every attach first releases whatever the records still claim. `cidr`
//! holds the subnet the bridge was set up with.
//!
//! The steps (what to do, in which order, what to undo when one fails) are
//! here; the kernel work each step is goes through `Kernel` (kernel.rs), so
//! host_tests.rs runs them against `FakeKernel` without root. The pod
//! subnet, the bridge name and the host-port range are parameters
//! (`HostBridge::new`, `pick_range`); the constants below are only the
//! defaults a cluster configuration will replace.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::attachment::Attachment;
use super::bridge::{self, Bridge};
use super::cidr::Ipv4Cidr;
use super::error::{io_err, NetError};
use super::ipam::Ipam;
use super::kernel::{Kernel, System};
use super::ports::{PortRange, PublishedPort};
use super::veth;

pub const DEFAULT_BRIDGE: &str = "skiff0";
pub const DEFAULT_NODE_CIDR: &str = "10.42.0.0/24";

/// How container ids appear in messages (as `docker ps` shows them).
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

pub fn default_cidr() -> Ipv4Cidr {
    DEFAULT_NODE_CIDR.parse().unwrap_or_else(|_| unreachable!())
}

/// The subnet the node's bridge was last set up with (`<root>/net/cidr`):
/// what releasing, reconciling and `network inspect` must use, whatever
/// subnet a later `--node-cidr` asks for.
pub fn recorded_cidr(root: &Path) -> Option<Ipv4Cidr> {
    fs::read_to_string(root.join("net").join("cidr"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What a cluster agent records in `<root>/net/cluster.json` before it
/// makes any pod, read each time the node's network is used, so that
/// `skiff run` on a node of a cluster makes it as the agent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterNet {
    /// The pod subnets of every node: traffic to them is not masqueraded.
    pub cidr: Ipv4Cidr,
    /// The MTU a new bridge (and so its pods) gets: the pod network's
    /// encapsulation takes its share of the uplink's (None: the uplink's).
    pub mtu: Option<u32>,
}

fn recorded_cluster(state: &Path) -> Option<ClusterNet> {
    serde_json::from_slice(&fs::read(state.join("cluster.json")).ok()?).ok()
}

/// Record (or, with None, forget) the node's cluster network for the node
/// at `root` (see [`ClusterNet`]).
pub fn record_cluster(root: &Path, net: Option<ClusterNet>) -> Result<(), NetError> {
    let state = root.join("net");
    let path = state.join("cluster.json");
    match net {
        Some(n) => {
            fs::create_dir_all(&state).map_err(io_err(&state))?;
            if recorded_cluster(&state) != Some(n) {
                let text = serde_json::to_vec(&n).map_err(|e| NetError::Corrupt {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
                let tmp = state.join(".cluster.json.tmp");
                fs::write(&tmp, text).map_err(io_err(&tmp))?;
                fs::rename(&tmp, &path).map_err(io_err(&path))?;
            }
            Ok(())
        }
        None => match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        },
    }
}

pub struct HostBridge {
    state: PathBuf,
    netns_dir: PathBuf,
    bridge: String,
    cidr: Ipv4Cidr,
    /// Where `-p CONTAINER_PORT` picks host ports from.
    pick_range: PortRange,
}

impl HostBridge {
    /// `root`: the node's data root; `run`: its run directory.
    pub fn new(root: &Path, run: &Path, bridge: &str, cidr: Ipv4Cidr) -> HostBridge {
        HostBridge {
            state: root.join("net"),
            netns_dir: run.join("netns"),
            bridge: bridge.to_string(),
            cidr,
            pick_range: PortRange::EPHEMERAL,
        }
    }

    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.netns_dir.join(id)
    }

    fn ipam(&self) -> Ipam {
        Ipam::new(self.state.join("ipam"), self.cidr)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.state.join("attachments").join(format!("{id}.json"))
    }

    fn lock(&self) -> Result<crate::lockfile::Guard, NetError> {
        fs::create_dir_all(&self.state).map_err(io_err(&self.state))?;
        let path = self.state.join("lock");
        crate::lockfile::exclusive(&path).map_err(io_err(&path))
    }

    /// Every recorded attachment.
    pub fn attachments(&self) -> Result<Vec<Attachment>, NetError> {
        let dir = self.state.join("attachments");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_err(&dir))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = fs::read(&path).map_err(io_err(&path))?;
            let a: Attachment = serde_json::from_slice(&text).map_err(|e| NetError::Corrupt {
                path: path.clone(),
                why: e.to_string(),
            })?;
            out.push(a);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    pub fn attachment(&self, id: &str) -> Result<Option<Attachment>, NetError> {
        let path = self.record_path(id);
        match fs::read(&path) {
            Ok(text) => serde_json::from_slice(&text)
                .map(Some)
                .map_err(|e| NetError::Corrupt {
                    path,
                    why: e.to_string(),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Give container `id` a namespace on the bridge with `ports` published.
    /// On any failure nothing of it is left behind.
    pub fn attach(&self, id: &str, ports: &[PublishedPort]) -> Result<Attachment, NetError> {
        self.attach_with(&mut System::default(), id, ports)
    }

    fn attach_with(
        &self,
        kernel: &mut dyn Kernel,
        id: &str,
        ports: &[PublishedPort],
    ) -> Result<Attachment, NetError> {
        let _lock = self.lock()?;
        self.reconcile_locked(kernel)?;
        let existing = self.attachments()?;
        for p in ports {
            if let Some((a, q)) = existing
                .iter()
                .flat_map(|a| a.ports.iter().map(move |q| (a, q)))
                .find(|(_, q)| q.conflicts(p))
            {
                return Err(NetError::PortInUse {
                    port: format!("{}/{}", q.host_port, q.proto),
                    owner: short_id(&a.id).to_string(),
                });
            }
        }
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].iter().any(|q| q.conflicts(p)) {
                return Err(NetError::PortInUse {
                    port: format!("{}/{}", p.host_port, p.proto),
                    owner: "this container (given twice)".into(),
                });
            }
        }
        // `-p CONTAINER_PORT`: pick the host ports now, under the lock.
        let mut ports = ports.to_vec();
        let mut taken: Vec<PublishedPort> = existing.iter().flat_map(|a| a.ports.clone()).collect();
        for p in &mut ports {
            if p.host_port == 0 {
                p.host_port =
                    super::ports::pick_free(p, &taken, self.pick_range, |c| kernel.port_free(c))
                        .ok_or_else(|| NetError::NoFreePort {
                            port: format!("{}/{}", p.container_port, p.proto),
                        })?;
            }
            taken.push(p.clone());
        }
        let bridge_index = kernel.ensure_bridge(&self.bridge_def())?;
        // The bridge has this subnet now (ensure refuses another one).
        let cidr_file = self.state.join("cidr");
        if fs::read_to_string(&cidr_file).ok().as_deref() != Some(&self.cidr.to_string()) {
            fs::write(&cidr_file, self.cidr.to_string()).map_err(io_err(&cidr_file))?;
        }
        let ip = self.ipam().allocate(id)?;
        let attachment = Attachment {
            id: id.to_string(),
            ip,
            prefix: self.cidr.prefix(),
            gateway: self.cidr.gateway(),
            bridge: self.bridge.clone(),
            host_veth: veth::host_veth_name(id),
            netns: self.netns_path(id),
            ports,
        };
        // A failed plumb has undone itself; what fails after it is undone
        // here.
        let result = kernel
            .plumb(&self.bridge, bridge_index, &attachment)
            .and_then(|()| {
                self.write_record(&attachment)
                    .and_then(|()| {
                        let mut all = existing.clone();
                        all.push(attachment.clone());
                        self.sync_rules(kernel, &existing, &all)
                    })
                    .inspect_err(|_| kernel.unplumb(&attachment))
            });
        if let Err(e) = result {
            let _ = fs::remove_file(self.record_path(id));
            let _ = self.ipam().release(id);
            return Err(e);
        }
        Ok(attachment)
    }

    /// Undo `attach` (none recorded is fine).
    pub fn detach(&self, id: &str) -> Result<(), NetError> {
        self.detach_with(&mut System::default(), id)
    }

    fn detach_with(&self, kernel: &mut dyn Kernel, id: &str) -> Result<(), NetError> {
        // A node that never used the bridge has nothing to give back (and
        // cleanup paths of other containers should not create its state).
        if !self.state.exists() {
            return Ok(());
        }
        // The veth's name follows from the id: it is deleted here even when
        // the record was released already (by the shim, which may still be
        // deleting it at this moment).
        let veth = self
            .release_with(kernel, id)?
            .unwrap_or_else(|| veth::host_veth_name(id));
        self.remove_veth_with(kernel, &veth);
        Ok(())
    }

    /// The first, quick half of `detach`: the address, the published ports
    /// and the namespace handle are given back, so a container started right
    /// after may take them. Returns the host veth, which `remove_veth` then
    /// deletes: deleting a link waits for the kernel (an RCU grace period),
    /// so a container's exit is reported between the two halves.
    pub fn release(&self, id: &str) -> Result<Option<String>, NetError> {
        self.release_with(&mut System::default(), id)
    }

    fn release_with(&self, kernel: &mut dyn Kernel, id: &str) -> Result<Option<String>, NetError> {
        let _lock = self.lock()?;
        let Some(a) = self.attachment(id)? else {
            self.ipam().release(id)?;
            return Ok(None);
        };
        if let Err(e) = kernel.remove_netns(&a.netns) {
            tracing::warn!("{e}");
        }
        let all = self.attachments()?;
        let rest: Vec<_> = all.iter().filter(|x| x.id != id).cloned().collect();
        self.sync_rules(kernel, &all, &rest)?;
        let path = self.record_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        self.ipam().release(id)?;
        Ok(Some(a.host_veth))
    }

    /// Delete a container's host veth (its peer goes with it), so that a
    /// container still sharing the namespace (`--network container:`) loses
    /// the address too, as with Docker. Gone already is fine.
    pub fn remove_veth(&self, veth: &str) {
        self.remove_veth_with(&mut System::default(), veth)
    }

    fn remove_veth_with(&self, kernel: &mut dyn Kernel, veth: &str) {
        if let Err(e) = kernel.remove_link(veth) {
            tracing::warn!("{e}");
        }
    }

    /// Release what records claim for containers whose namespace is gone (a
    /// crash before cleanup, or a reboot). Called with the lock held.
    fn reconcile_locked(&self, kernel: &mut dyn Kernel) -> Result<Vec<String>, NetError> {
        let all = self.attachments()?;
        let (live, dead): (Vec<_>, Vec<_>) = all
            .iter()
            .cloned()
            .partition(|a| kernel.netns_pinned(&a.netns));
        let live_ids: Vec<&str> = live.iter().map(|a| a.id.as_str()).collect();
        let mut released = Vec::new();
        let ipam = self.ipam();
        // Addresses whose owner has no live attachment at all.
        for (_, owner) in ipam.list()? {
            if !live_ids.contains(&owner.as_str()) && !released.contains(&owner) {
                released.push(owner);
            }
        }
        if dead.is_empty() && released.is_empty() {
            return Ok(released);
        }
        for a in &dead {
            tracing::info!(container = %a.id, ip = %a.ip, "releasing the network of a container that is gone");
            kernel.unplumb(a);
            let _ = fs::remove_file(self.record_path(&a.id));
            if !released.contains(&a.id) {
                released.push(a.id.clone());
            }
        }
        for owner in &released {
            ipam.release(owner)?;
        }
        self.sync_rules(kernel, &all, &live)?;
        Ok(released)
    }

    /// Remove everything of the node network: every attachment, the
    /// namespace handles, the bridge and table `ip skiff`. For a node that
    /// shuts down (`skiff killall`); containers must be stopped first.
    pub fn teardown(&self) -> Result<(), NetError> {
        self.teardown_with(&mut System::default())
    }

    fn teardown_with(&self, kernel: &mut dyn Kernel) -> Result<(), NetError> {
        let _lock = self.lock()?;
        self.teardown_locked(kernel)
    }

    /// Tear the node network down if no container uses it any more (those
    /// whose namespace is gone are released first): for a node whose
    /// subnet changed, so that the next attachment makes the bridge anew
    /// for the new one. False while some container still holds an address.
    pub fn teardown_if_idle(&self) -> Result<bool, NetError> {
        let mut kernel = System::default();
        let _lock = self.lock()?;
        self.reconcile_locked(&mut kernel)?;
        if !self.attachments()?.is_empty() {
            return Ok(false);
        }
        self.teardown_locked(&mut kernel)?;
        Ok(true)
    }

    fn teardown_locked(&self, kernel: &mut dyn Kernel) -> Result<(), NetError> {
        for a in self.attachments()? {
            kernel.unplumb(&a);
            let _ = fs::remove_file(self.record_path(&a.id));
            self.ipam().release(&a.id)?;
        }
        // Handles without a record (a crash between the two).
        if let Ok(entries) = fs::read_dir(&self.netns_dir) {
            for entry in entries.flatten() {
                kernel.remove_netns(&entry.path())?;
            }
        }
        kernel.remove_link(&self.bridge)?;
        super::rules::forget(&self.state.join("rules.applied"));
        let _ = fs::remove_file(self.state.join("cidr"));
        kernel.delete_rules()?;
        Ok(())
    }

    fn write_record(&self, a: &Attachment) -> Result<(), NetError> {
        let path = self.record_path(&a.id);
        let dir = self.state.join("attachments");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(a).map_err(|e| NetError::Corrupt {
            path: path.clone(),
            why: e.to_string(),
        })?;
        fs::write(&tmp, text).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    fn bridge_def(&self) -> Bridge<'_> {
        Bridge {
            name: &self.bridge,
            cidr: self.cidr,
            owner: bridge::owner_tag(&self.state),
            mtu: recorded_cluster(&self.state).and_then(|c| c.mtu),
        }
    }

    /// Program the nftables table for the attachments `after`, where it
    /// was last programmed for `before` (if its stamp agrees).
    fn sync_rules(
        &self,
        kernel: &mut dyn Kernel,
        before: &[Attachment],
        after: &[Attachment],
    ) -> Result<(), NetError> {
        kernel.sync_rules(&super::rules::Rules {
            stamp: &self.state.join("rules.applied"),
            bridge: &self.bridge,
            cidr: self.cidr,
            cluster: recorded_cluster(&self.state).map(|c| c.cidr),
            before,
            after,
        })
    }
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
