//! A table as data: chains, rules and sets, before any netlink encoding.
//!
//! One producer owns one table and states its whole wanted content here;
//! `diff` turns two states into the few changes between them. The engine's
//! table (`skiff`) is built by `build` from a `Config`, each concern adding
//! its own chains and rules (`nat`: pod egress and published ports,
//! `filter`: forwarding); the service proxy will own another table
//! (ClusterIP/NodePort DNAT in maps and verdict maps, set.rs), so neither
//! flushes chains the other fills.

use netlink_packet_netfilter::nftables::InetHookNumber;

use super::config::Config;
use super::expr::{Expr, Stmt};
use super::set::Set;
use super::{filter, nat};

/// The engine's table, in family ip.
pub(crate) const TABLE: &str = "skiff";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChainType {
    Nat,
    Filter,
}

impl ChainType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ChainType::Nat => "nat",
            ChainType::Filter => "filter",
        }
    }
}

/// What makes a chain a base chain: where netfilter calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hook {
    pub ty: ChainType,
    pub hook: InetHookNumber,
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    pub name: String,
    /// `None` for a regular chain, reached only by jump/goto.
    pub hook: Option<Hook>,
}

impl Chain {
    pub(crate) fn base(name: &str, ty: ChainType, hook: InetHookNumber, priority: i32) -> Self {
        Self {
            name: name.to_string(),
            hook: Some(Hook { ty, hook, priority }),
        }
    }

    pub(crate) fn regular(name: &str) -> Self {
        Self {
            name: name.to_string(),
            hook: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub chain: String,
    pub stmts: Vec<Stmt>,
}

impl Rule {
    pub(crate) fn new(chain: &str, stmts: Vec<Stmt>) -> Self {
        Self {
            chain: chain.to_string(),
            stmts,
        }
    }

    /// The rule in nft syntax, for error messages.
    pub(crate) fn text(&self) -> String {
        let parts: Vec<&str> = self.stmts.iter().map(|s| s.text.as_str()).collect();
        parts.join(" ")
    }

    pub(crate) fn exprs(&self) -> Vec<Expr> {
        self.stmts.iter().flat_map(|s| s.exprs.clone()).collect()
    }
}

/// Everything in one table (family ip) that its owner wants there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ruleset {
    pub table: String,
    pub chains: Vec<Chain>,
    /// In order; rules of one chain are appended in this order.
    pub rules: Vec<Rule>,
    pub sets: Vec<Set>,
}

impl Ruleset {
    pub(crate) fn new(table: &str) -> Self {
        Self {
            table: table.to_string(),
            chains: Vec::new(),
            rules: Vec::new(),
            sets: Vec::new(),
        }
    }

    /// The rules of `chain`, in order.
    #[cfg(test)]
    pub(crate) fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

/// The engine's whole table for `cfg`. `cfg` must have passed
/// `config::validate`.
pub(crate) fn build(cfg: &Config) -> Ruleset {
    let mut rs = Ruleset::new(TABLE);
    nat::add(&mut rs, cfg);
    filter::add(&mut rs, cfg);
    rs
}
