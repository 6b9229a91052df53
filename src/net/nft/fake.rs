//! `FakeNetfilter`: records the batches `sync` sends instead of sending
//! them, and refuses the ones it is told to, as the kernel would (the whole
//! batch, naming one message). With it: what `sync` sends, and when it
//! falls back to stating a table in full.

use std::collections::VecDeque;

use nix::errno::Errno;

use super::batch::Op;
use super::diff_tests::{engine_cfg, proxy, PROXY};
use super::error::NftError;
use super::ruleset::build;
use super::socket::Netfilter;
use super::sync_with;

#[derive(Default)]
pub(crate) struct FakeNetfilter {
    /// What each batch held: each op's description.
    pub batches: Vec<Vec<String>>,
    /// The answer to each next batch; none left: taken.
    pub refuse: VecDeque<Option<NftError>>,
}

impl Netfilter for FakeNetfilter {
    fn transact(&mut self, ops: &[Op]) -> Result<(), NftError> {
        self.batches
            .push(ops.iter().map(|o| o.what.clone()).collect());
        match self.refuse.pop_front().flatten() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn kernel_refuses(errno: Errno) -> NftError {
    NftError::Kernel {
        index: 1,
        what: "DELSETELEM".into(),
        errno,
        detail: None,
        also_failed: 0,
    }
}

#[test]
fn nothing_changed_sends_nothing() {
    let mut nf = FakeNetfilter::default();
    sync_with(&mut nf, Some(&proxy(10)), &proxy(10)).unwrap();
    assert!(nf.batches.is_empty());
}

#[test]
fn a_diff_is_one_small_batch() {
    let mut nf = FakeNetfilter::default();
    sync_with(&mut nf, Some(&proxy(1000)), &proxy(1001)).unwrap();
    assert_eq!(nf.batches.len(), 1);
    assert_eq!(
        nf.batches[0],
        [
            "NEWSETELEM service-ports (1 elements)",
            "NEWSETELEM service-ips (1 elements)"
        ]
    );
}

#[test]
fn a_published_port_is_one_message() {
    let mut nf = FakeNetfilter::default();
    sync_with(
        &mut nf,
        Some(&build(&engine_cfg(500))),
        &build(&engine_cfg(501)),
    )
    .unwrap();
    assert_eq!(nf.batches, [["NEWSETELEM published-any (1 elements)"]]);
}

#[test]
fn a_refused_diff_is_retried_as_the_whole_table() {
    let mut nf = FakeNetfilter::default();
    nf.refuse.push_back(Some(kernel_refuses(Errno::ENOENT)));
    sync_with(&mut nf, Some(&proxy(2)), &proxy(3)).unwrap();
    assert_eq!(nf.batches.len(), 2);
    assert_eq!(nf.batches[1][0], format!("NEWTABLE ip {PROXY}"));
    assert!(nf.batches[1].iter().any(|w| w == "flush set service-ports"));
}

#[test]
fn a_refused_full_statement_or_batch_is_not_retried() {
    // Nothing to fall back to.
    let mut nf = FakeNetfilter::default();
    nf.refuse.push_back(Some(kernel_refuses(Errno::EINVAL)));
    assert!(sync_with(&mut nf, None, &proxy(3)).is_err());
    assert_eq!(nf.batches.len(), 1);
    // Refused as a whole (no permission): a full statement would be too.
    let mut nf = FakeNetfilter::default();
    nf.refuse.push_back(Some(NftError::BatchRefused {
        errno: Errno::EPERM,
        detail: None,
    }));
    let e = sync_with(&mut nf, Some(&proxy(2)), &proxy(3)).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::EPERM));
    assert_eq!(nf.batches.len(), 1);
}
