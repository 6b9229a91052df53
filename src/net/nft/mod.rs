//! Table `ip skiff`, programmed over NETLINK_NETFILTER without the `nft`
//! binary.
//!
//! [`apply`] replaces the whole table in one nfnetlink batch (one kernel
//! transaction): if any part is refused, nothing changes. Only table
//! `ip skiff` is ever touched; the ruleset is never flushed.
//!
//! Layout: `config` (what the caller asks for, validation), `ruleset` (the
//! table as data) with one file per concern (`nat`, `filter`), `expr` (the
//! nf_tables expressions), `batch` (netlink encoding), `reply` (acks and
//! errors), `socket` (the only part that talks to the kernel).

mod batch;
mod config;
mod error;
mod expr;
mod filter;
mod nat;
mod reply;
mod ruleset;
mod socket;

pub use crate::net::cidr::Ipv4Cidr;
pub use config::{Config, PortMapping, Proto};
pub use error::NftError;

/// The layout of the table built from a config. Callers that skip
/// re-applying an unchanged config record it beside the config, so that a
/// node upgraded to a new layout (2: the input chain that keeps pods off the
/// node's loopback) rebuilds its table. Bump it whenever `ruleset::build`
/// changes.
pub const LAYOUT: u32 = 2;

/// Make table `ip skiff` exactly what `cfg` describes, atomically.
///
/// Works in the network namespace of the calling thread. Needs
/// CAP_NET_ADMIN there. Masquerading host localhost towards the bridge also
/// needs `net.ipv4.conf.<bridge>.route_localnet=1`, which the caller sets.
pub fn apply(cfg: &Config) -> Result<(), NftError> {
    config::validate(cfg)?;
    let rs = ruleset::build(cfg);
    socket::transact(&batch::replace_table(&rs))
}

/// Whether table `ip skiff` exists.
pub fn table_exists() -> Result<bool, NftError> {
    socket::table_exists()
}

/// Remove table `ip skiff`; a table that is already gone is not an error.
pub fn delete() -> Result<(), NftError> {
    match socket::transact(&batch::delete_table()) {
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
