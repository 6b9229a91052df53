//! The Pod Security Standards' checks (upstream's pod-security-admission
//! policy checks for 1.32), each giving upstream's reason and detail when a
//! pod spec fails it. Containers are visited as upstream visits them: init
//! containers, then containers, then ephemeral containers. The baseline
//! level's checks are in `baseline`, the ones restricted adds in
//! `restricted`; this file holds what both use.

use std::collections::BTreeSet;

use serde_json::Value;

mod baseline;
mod restricted;

pub use self::baseline::*;
pub use self::restricted::*;

/// One failed check: upstream's forbidden reason and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub detail: String,
}

/// A pod spec (a Pod's or a template's) and its metadata, as the checks
/// read them.
pub struct PodView<'a> {
    pub meta: &'a Value,
    pub spec: &'a Value,
    /// Policy version (the minor of `v1.N`; `latest` is the newest).
    pub minor: u32,
}

/// The newest version whose checks are known here.
pub const LATEST_MINOR: u32 = 32;

pub(super) fn fail(reason: impl Into<String>, detail: impl Into<String>) -> Option<Failure> {
    Some(Failure {
        reason: reason.into(),
        detail: detail.into(),
    })
}

pub(super) fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn plural<'s>(one: &'s str, many: &'s str, n: usize) -> &'s str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `container "a"` or `containers "a", "b"`.
pub(super) fn containers(names: &[&str]) -> String {
    format!(
        "{} {}",
        plural("container", "containers", names.len()),
        join_quote(names)
    )
}

/// `pod`, `container(s) "…"`, joined with " and ".
pub(super) fn setters(pod: bool, names: &[&str]) -> String {
    let mut parts = Vec::new();
    if pod {
        parts.push("pod".to_string());
    }
    if !names.is_empty() {
        parts.push(containers(names));
    }
    parts.join(" and ")
}

pub(super) fn sorted(values: BTreeSet<String>) -> Vec<String> {
    values.into_iter().collect()
}

impl<'a> PodView<'a> {
    /// (name, container) of every container, in upstream's visit order.
    pub(super) fn containers(&self) -> Vec<(&'a str, &'a Value)> {
        let mut out = Vec::new();
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in self
                .spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                out.push((name, c));
            }
        }
        out
    }

    pub(super) fn pod_sc(&self, field: &str) -> Option<&'a Value> {
        self.spec
            .get("securityContext")
            .and_then(|s| s.get(field))
            .filter(|v| !v.is_null())
    }

    pub(super) fn windows(&self) -> bool {
        self.minor >= 25 && self.spec.pointer("/os/name").and_then(Value::as_str) == Some("windows")
    }
}

pub(super) fn sc<'v>(c: &'v Value, field: &str) -> Option<&'v Value> {
    c.get("securityContext")
        .and_then(|s| s.get(field))
        .filter(|v| !v.is_null())
}

pub(super) fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool) == Some(true)
}

pub(super) fn str_list(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub(super) fn volumes<'a>(p: &PodView<'a>) -> Vec<(&'a str, &'a Value)> {
    p.spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| (v.get("name").and_then(Value::as_str).unwrap_or_default(), v))
        .collect()
}

pub(super) fn seccomp_type(v: Option<&Value>) -> Option<&str> {
    v.map(|prof| prof.get("type").and_then(Value::as_str).unwrap_or_default())
}

pub(super) fn seccomp_ok(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
}
