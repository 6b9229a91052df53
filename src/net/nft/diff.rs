//! From the table a producer had to the table it wants: the changes, in the
//! order one transaction must make them. Pure; batch.rs encodes them.
//!
//! Cost follows the change, not the table: a set's elements are diffed one
//! by one, a chain is replaced (flushed and refilled) only when its rules
//! differ, and unchanged chains and sets are not mentioned. With no known
//! previous state (`old` is `None`: first use, or the kernel may hold
//! something else) everything is stated in full: chains and sets are created
//! if missing (kept if present, so no netfilter hook is unregistered),
//! flushed and refilled.
//!
//! Order, so that every message finds what it names and nothing is deleted
//! while still referenced: chains being replaced or removed are flushed
//! (their jumps and set lookups go), redefined chains deleted, new ones
//! created, sets removed or redefined deleted, sets created and filled,
//! element changes (deletes before adds, so a changed value is a delete plus
//! an add), new rules, and last the chains no longer wanted.

use std::collections::{HashMap, HashSet};

use super::ruleset::{Chain, Rule, Ruleset};
use super::set::{Set, SetDef, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Create the table if missing.
    AddTable,
    /// Create the chain if missing.
    AddChain(Chain),
    FlushChain(String),
    DelChain(String),
    AddRule(Rule),
    /// Create the set if missing.
    AddSet(SetDef),
    /// Remove every element (the set's content before is unknown).
    FlushSet(String),
    DelSet(String),
    AddElements {
        set: String,
        elements: Vec<(Vec<u8>, Value)>,
    },
    DelElements {
        set: String,
        keys: Vec<Vec<u8>>,
    },
}

/// The changes that make table `new.table`, last made `old` by the same
/// owner, hold exactly `new`.
pub(crate) fn diff(old: Option<&Ruleset>, new: &Ruleset) -> Vec<Change> {
    let Some(old) = old.filter(|o| o.table == new.table) else {
        return full(new);
    };
    // Indexed by name: a Service of thousands of endpoints has thousands
    // of chains, and looking each one up by a walk made a one-endpoint
    // change quadratic in the Service's size.
    let old_chains: HashMap<&str, &Chain> =
        old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    let new_chains: HashSet<&str> = new.chains.iter().map(|c| c.name.as_str()).collect();
    let old_rules = rules_by_chain(old);
    let new_rules = rules_by_chain(new);
    let old_chain = |name: &str| old_chains.get(name).copied();
    let old_set = |name: &str| old.sets.iter().find(|s| s.name() == name);

    // A chain whose hook changed cannot be changed in place; nor can a set
    // whose definition changed be deleted while rules still look it up.
    // Both are rare (a layout change): then every chain is replaced.
    let redefined: Vec<&Chain> = new
        .chains
        .iter()
        .filter(|c| old_chain(&c.name).is_some_and(|o| o != *c))
        .collect();
    let set_redefined = new
        .sets
        .iter()
        .any(|s| old_set(s.name()).is_some_and(|o| o.def != s.def));
    let everything = !redefined.is_empty() || set_redefined;

    let replaced: Vec<&Chain> = new
        .chains
        .iter()
        .filter(|c| {
            everything
                || old_chain(&c.name).is_none()
                || old_rules.get(c.name.as_str()) != new_rules.get(c.name.as_str())
        })
        .collect();
    let removed: Vec<&Chain> = old
        .chains
        .iter()
        .filter(|c| !new_chains.contains(c.name.as_str()))
        .collect();

    // The table is there (`old` says so; if not, the kernel refuses the
    // batch and the caller states everything).
    let mut out = Vec::new();
    // Emptied first: a chain is deleted only when empty and unreferenced,
    // and a set only when no rule looks it up any more.
    let flushed = if everything {
        old.chains.iter().collect::<Vec<_>>()
    } else {
        replaced.iter().chain(&removed).copied().collect()
    };
    out.extend(
        flushed
            .iter()
            .filter(|c| old_chain(&c.name).is_some())
            .map(|c| Change::FlushChain(c.name.clone())),
    );
    out.extend(redefined.iter().map(|c| Change::DelChain(c.name.clone())));
    out.extend(
        new.chains
            .iter()
            .filter(|c| old_chain(&c.name).is_none() || redefined.contains(c))
            .cloned()
            .map(Change::AddChain),
    );

    for s in &old.sets {
        let keep = new.sets.iter().any(|n| n.def == s.def);
        if !keep {
            out.push(Change::DelSet(s.name().to_string()));
        }
    }
    for s in &new.sets {
        match old_set(s.name()) {
            Some(o) if o.def == s.def => elements(o, s, &mut out),
            _ => {
                out.push(Change::AddSet(s.def.clone()));
                add_all(s, &mut out);
            }
        }
    }
    for c in &replaced {
        let rules = new_rules.get(c.name.as_str()).into_iter().flatten();
        out.extend(rules.map(|r| Change::AddRule((*r).clone())));
    }
    out.extend(removed.iter().map(|c| Change::DelChain(c.name.clone())));
    out
}

/// A ruleset's rules by chain, each chain's in order.
fn rules_by_chain(rs: &Ruleset) -> HashMap<&str, Vec<&Rule>> {
    let mut by: HashMap<&str, Vec<&Rule>> = HashMap::new();
    for r in &rs.rules {
        by.entry(r.chain.as_str()).or_default().push(r);
    }
    by
}

fn full(new: &Ruleset) -> Vec<Change> {
    let mut out = vec![Change::AddTable];
    out.extend(new.chains.iter().cloned().map(Change::AddChain));
    out.extend(
        new.chains
            .iter()
            .map(|c| Change::FlushChain(c.name.clone())),
    );
    for s in &new.sets {
        out.push(Change::AddSet(s.def.clone()));
        out.push(Change::FlushSet(s.name().to_string()));
        add_all(s, &mut out);
    }
    out.extend(new.rules.iter().cloned().map(Change::AddRule));
    out
}

fn add_all(s: &Set, out: &mut Vec<Change>) {
    if !s.elements.is_empty() {
        out.push(Change::AddElements {
            set: s.name().to_string(),
            elements: s
                .elements
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    }
}

/// Element by element: O(changed) work and messages, after an O(n) walk of
/// two ordered maps in memory.
fn elements(old: &Set, new: &Set, out: &mut Vec<Change>) {
    let (mut del, mut add) = (Vec::new(), Vec::new());
    for (k, v) in &old.elements {
        match new.elements.get(k) {
            Some(n) if n == v => {}
            // A changed value: delete, then add under the same key.
            Some(_) | None => del.push(k.clone()),
        }
    }
    for (k, v) in &new.elements {
        if old.elements.get(k) != Some(v) {
            add.push((k.clone(), v.clone()));
        }
    }
    if !del.is_empty() {
        out.push(Change::DelElements {
            set: new.name().to_string(),
            keys: del,
        });
    }
    if !add.is_empty() {
        out.push(Change::AddElements {
            set: new.name().to_string(),
            elements: add,
        });
    }
}

/// Only for the tests' bookkeeping: how many elements a change list touches.
#[cfg(test)]
pub(crate) fn element_count(changes: &[Change]) -> usize {
    changes
        .iter()
        .map(|c| match c {
            Change::AddElements { elements, .. } => elements.len(),
            Change::DelElements { keys, .. } => keys.len(),
            _ => 0,
        })
        .sum()
}
