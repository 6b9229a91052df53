//! The table as data: chains and rules, before any netlink encoding.
//!
//! Each concern adds its own chains and rules (`nat`: pod egress and published
//! ports, `filter`: forwarding); a later `services` part (ClusterIP/NodePort
//! DNAT with numgen and verdict maps) adds its chains the same way.

use netlink_packet_netfilter::nftables::InetHookNumber;

use super::config::Config;
use super::expr::{Expr, Stmt};
use super::{filter, nat};

/// The one table skiff owns, in family ip.
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

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone, Default)]
pub(crate) struct Ruleset {
    pub chains: Vec<Chain>,
    /// In order; rules of one chain are appended in this order.
    pub rules: Vec<Rule>,
}

/// The whole table for `cfg`. `cfg` must have passed `config::validate`.
pub(crate) fn build(cfg: &Config) -> Ruleset {
    let mut rs = Ruleset::default();
    nat::add(&mut rs, cfg);
    filter::add(&mut rs, cfg);
    rs
}
