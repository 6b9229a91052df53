//! Walking what is stored under the encrypted resources: counting how it
//! stands ([`Encrypted::census`]) and rewriting what the first provider did
//! not write ([`Encrypted::reencrypt`]).
//!
//! Re-encryption rewrites each stale value (same plaintext, sealed by the
//! provider that writes now) with a compare-and-swap on the version it read,
//! as upstream's `kubectl get secrets -A -o json | kubectl replace -f -`
//! does: each rewrite is a new version, so the object's resourceVersion
//! moves and watchers see a MODIFIED event with an unchanged object. A
//! `Conflict` or `NotFound` means someone wrote or deleted the key
//! meanwhile, through this same wrapper and so with the current provider:
//! skipped. It goes to the wrapped store directly, not through the API's
//! `Objects`: the followers there (the RBAC and CRD caches) only wait for
//! writes to be seen, and these writes change nothing they read.
//!
//! The walk reads bounded pages (by count and bytes), each at the newest
//! revision; keys created while it runs are written with the current
//! provider anyway.

use serde::Serialize;

use super::transform::Standing;
use super::Encrypted;
use crate::server::store::{Backend, Error, KeyValue, ListOptions, Result};

const PAGE_ITEMS: usize = 256;
const PAGE_BYTES: usize = 4 << 20;

/// How the stored values of the encrypted resources stand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Written by the provider (and key) that writes now.
    pub active: u64,
    /// Readable, but written by another provider or key (or plaintext).
    pub stale: u64,
    /// Under a key the configuration no longer holds (or plaintext without
    /// identity): reads of these fail.
    pub unreadable: u64,
}

/// What a re-encryption did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Rewritten {
    /// Rewritten with the provider that writes now.
    pub rewritten: u64,
    /// Already written by it.
    pub unchanged: u64,
    /// Written or deleted by someone else meanwhile.
    pub skipped: u64,
    /// Could not be read (named in the server's log): left as they are.
    pub failed: u64,
}

/// Pages of one prefix, in key order.
struct Pages<'a> {
    store: &'a dyn Backend,
    prefix: &'a str,
    after: Option<String>,
    done: bool,
}

impl<'a> Pages<'a> {
    fn new(store: &'a dyn Backend, prefix: &'a str) -> Self {
        Pages {
            store,
            prefix,
            after: None,
            done: false,
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<KeyValue>>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .list(
                self.prefix,
                ListOptions {
                    start_after: self.after.clone(),
                    limit: Some(PAGE_ITEMS),
                    max_bytes: Some(PAGE_BYTES),
                    ..Default::default()
                },
            )
            .await?;
        self.done = !page.more || page.items.is_empty();
        self.after = page.items.last().map(|kv| kv.key.clone());
        Ok(Some(page.items))
    }
}

impl Encrypted {
    /// Counts the stored values of the encrypted resources by how they
    /// stand (from their prefixes; nothing is decrypted).
    pub async fn census(&self) -> Result<Census> {
        let mut census = Census::default();
        for prefix in self.transformers().prefixes() {
            let mut pages = Pages::new(self.inner().as_ref(), &prefix);
            while let Some(items) = pages.next().await? {
                let t = self.transformers();
                for kv in items {
                    let Some(chain) = t.for_key(&kv.key) else {
                        continue;
                    };
                    match chain.standing(&kv.value) {
                        Standing::Active => census.active += 1,
                        Standing::Stale => census.stale += 1,
                        Standing::Unreadable => census.unreadable += 1,
                    }
                }
            }
        }
        Ok(census)
    }

    /// Rewrites every stored value of the encrypted resources that the
    /// first provider did not write (see the module doc).
    pub async fn reencrypt(&self) -> Result<Rewritten> {
        let mut done = Rewritten::default();
        for prefix in self.transformers().prefixes() {
            let mut pages = Pages::new(self.inner().as_ref(), &prefix);
            while let Some(items) = pages.next().await? {
                let t = self.transformers();
                for kv in items {
                    let Some(chain) = t.for_key(&kv.key) else {
                        continue;
                    };
                    let opened = match chain.open(&kv.key, kv.value) {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot re-encrypt a stored value");
                            done.failed += 1;
                            continue;
                        }
                    };
                    if !opened.stale {
                        done.unchanged += 1;
                        continue;
                    }
                    let sealed = chain
                        .seal(&kv.key, opened.plain)
                        .map_err(|e| Error::Backend(e.to_string()))?;
                    match self.inner().update(&kv.key, sealed, kv.mod_revision).await {
                        Ok(_) => done.rewritten += 1,
                        Err(Error::Conflict { .. } | Error::NotFound { .. }) => done.skipped += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        tracing::info!(
            rewritten = done.rewritten,
            unchanged = done.unchanged,
            skipped = done.skipped,
            failed = done.failed,
            "re-encrypted the stored values of the encrypted resources"
        );
        Ok(done)
    }
}
