//! nftables tables programmed over NETLINK_NETFILTER without the `nft`
//! binary.
//!
//! One owner per table: the engine's is `ip skiff` (published ports as
//! elements of two DNAT maps, pod egress NAT, forwarding; built from a
//! [`Config`]); the service proxy will own another. An owner states the whole content it wants (chains, rules,
//! sets, maps and verdict maps with elements) and [`diff`](diff::diff)
//! turns what it had into what it wants, so a change costs what changed,
//! not a table rewrite. Each change goes to the kernel as one nfnetlink
//! batch (one transaction): if any part is refused, nothing changes. Only
//! the owner's table is touched; the ruleset is never flushed.
//!
//! Layout: `config` (what the engine asks for, validation), `ruleset` (a
//! table as data) with one file per concern of the engine's table (`nat`,
//! `filter`), `set` (sets and maps with elements), `diff` (old and new
//! table to changes), `expr` (the nf_tables expressions), `batch` (netlink
//! encoding), `reply` (acks and errors), `socket` (the only part that talks
//! to the kernel; `fake` records batches instead, in tests).

mod batch;
mod config;
mod diff;
mod error;
mod expr;
mod expr_svc;
mod filter;
mod nat;
mod reply;
mod ruleset;
mod set;
mod socket;
pub mod svc;

pub use crate::net::cidr::Ipv4Cidr;
pub use config::{Config, PortMapping, Proto};
pub use error::NftError;

/// The layout of the table built from a config. Callers that skip
/// re-applying an unchanged config record it beside the config, so that a
/// node upgraded to a new layout (2: the input chain that keeps pods off the
/// node's loopback; 3: published ports as map elements; 4: pods' hairpin
/// masquerade only for connections the engine marked as published) rebuilds
/// its table. Bump it whenever `ruleset::build` changes.
pub const LAYOUT: u32 = 4;

/// Make table `ip skiff` exactly what `cfg` describes, atomically.
///
/// Works in the network namespace of the calling thread. Needs
/// CAP_NET_ADMIN there. Masquerading host localhost towards the bridge also
/// needs `net.ipv4.conf.<bridge>.route_localnet=1`, which the caller sets.
pub fn apply(cfg: &Config) -> Result<(), NftError> {
    update(None, cfg)
}

/// [`apply`] for a table that `old` was the last config applied to: only
/// what differs is sent (the chains whose rules changed). `None`, or an
/// `old` the table no longer holds, rewrites every chain; an `old` the
/// kernel refuses to be changed from is retried as `None`.
pub fn update(old: Option<&Config>, new: &Config) -> Result<(), NftError> {
    config::validate(new)?;
    let old = old
        .filter(|o| config::validate(o).is_ok())
        .map(ruleset::build);
    sync(old.as_ref(), &ruleset::build(new))
}

/// Make table `new.table` hold `new`, given that its owner made it `old`
/// last (`None`: unknown).
pub(crate) fn sync(old: Option<&ruleset::Ruleset>, new: &ruleset::Ruleset) -> Result<(), NftError> {
    sync_with(&mut socket::NetfilterSocket, old, new)
}

fn sync_with(
    nf: &mut dyn socket::Netfilter,
    old: Option<&ruleset::Ruleset>,
    new: &ruleset::Ruleset,
) -> Result<(), NftError> {
    let changes = diff::diff(old, new);
    if changes.is_empty() {
        return Ok(());
    }
    match nf.transact(&batch::ops(&new.table, &changes)) {
        // The table is not what `old` says (changed behind its owner's back,
        // or gone); the batch was aborted as a whole, so state it in full.
        Err(e @ NftError::Kernel { .. }) if old.is_some() => {
            tracing::debug!(table = %new.table, "nftables diff refused ({e}); rewriting the table");
            nf.transact(&batch::replace_table(new))
        }
        other => other,
    }
}

/// Whether table `ip skiff` exists.
pub fn table_exists() -> Result<bool, NftError> {
    socket::table_exists(ruleset::TABLE)
}

/// Remove table `ip skiff`; a table that is already gone is not an error.
pub fn delete() -> Result<(), NftError> {
    match socket::transact(&batch::delete_table(ruleset::TABLE)) {
        Err(NftError::Kernel {
            errno: nix::errno::Errno::ENOENT,
            ..
        }) => Ok(()),
        other => other,
    }
}

/// [`apply`], plus one last rule that the kernel refuses (a jump to a chain
/// that does not exist). Only for tests: it shows on the real kernel that a
/// refusal at the very end of the batch, after the old table was deleted and
/// the new one built, still leaves the old table in place.
#[doc(hidden)]
pub fn apply_with_refused_last_rule(cfg: &Config) -> Result<(), NftError> {
    config::validate(cfg)?;
    let mut rs = ruleset::build(cfg);
    rs.rules.push(ruleset::Rule::new(
        nat::PUBLISHED,
        vec![expr::jump("no-such-chain")],
    ));
    socket::transact(&batch::replace_table(&rs))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod test_bytes;
