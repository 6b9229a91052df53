//! `FakeKernel`: a recording fake of the kernel edge (kernel.rs), for
//! testing host.rs without root. It keeps the little state the steps leave
//! behind (links, pinned namespaces, the published ports in the table), so
//! a test can check that a failed step left nothing, and it fails the step
//! it is told to, after doing part of it where the real one could.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::attachment::Attachment;
use super::bridge::Bridge;
use super::error::NetError;
use super::kernel::Kernel;
use super::ports::PublishedPort;
use super::rules::Rules;

#[derive(Debug, Default)]
pub(crate) struct FakeKernel {
    /// Every call, as `step arg`.
    pub calls: Vec<String>,
    /// The step to fail (`ensure_bridge`, `plumb`, `sync_rules`, …).
    pub fail: Option<&'static str>,
    pub links: BTreeSet<String>,
    pub pinned: BTreeSet<PathBuf>,
    /// The container ids whose ports the table holds, sorted.
    pub table: Option<Vec<String>>,
    /// Host ports something else on the node holds.
    pub busy: BTreeSet<u16>,
}

impl FakeKernel {
    fn step(&mut self, name: &'static str, arg: &str) -> Result<(), NetError> {
        self.calls.push(format!("{name} {arg}"));
        if self.fail == Some(name) {
            return Err(NetError::Rules(format!("FakeKernel: {name} fails")));
        }
        Ok(())
    }
}

impl Kernel for FakeKernel {
    fn ensure_bridge(&mut self, b: &Bridge<'_>) -> Result<u32, NetError> {
        self.step("ensure_bridge", b.name)?;
        self.links.insert(b.name.to_string());
        Ok(1)
    }

    fn plumb(&mut self, _bridge: &str, _index: u32, a: &Attachment) -> Result<(), NetError> {
        // As the real one: a failure undoes its own steps (their order is
        // veth_tests.rs's business).
        self.step("plumb", &a.id)?;
        self.pinned.insert(a.netns.clone());
        self.links.insert(a.host_veth.clone());
        Ok(())
    }

    fn unplumb(&mut self, a: &Attachment) {
        self.calls.push(format!("unplumb {}", a.id));
        self.links.remove(&a.host_veth);
        self.pinned.remove(&a.netns);
    }

    fn remove_link(&mut self, name: &str) -> Result<(), NetError> {
        self.step("remove_link", name)?;
        self.links.remove(name);
        Ok(())
    }

    fn netns_pinned(&self, handle: &Path) -> bool {
        self.pinned.contains(handle)
    }

    fn remove_netns(&mut self, handle: &Path) -> Result<(), NetError> {
        self.step("remove_netns", &handle.display().to_string())?;
        self.pinned.remove(handle);
        Ok(())
    }

    fn sync_rules(&mut self, r: &Rules<'_>) -> Result<(), NetError> {
        let mut ids: Vec<String> = r
            .after
            .iter()
            .filter(|a| !a.ports.is_empty())
            .map(|a| a.id.clone())
            .collect();
        ids.sort();
        self.step("sync_rules", &ids.join(","))?;
        self.table = Some(ids);
        Ok(())
    }

    fn delete_rules(&mut self) -> Result<(), NetError> {
        self.step("delete_rules", "")?;
        self.table = None;
        Ok(())
    }

    fn port_free(&self, p: &PublishedPort) -> bool {
        !self.busy.contains(&p.host_port)
    }
}
