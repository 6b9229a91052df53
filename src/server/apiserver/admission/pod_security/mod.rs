//! Pod Security admission, as upstream's `PodSecurity` plugin: a
//! namespace's `pod-security.kubernetes.io/{enforce,warn,audit}` labels
//! (with `-version`) pick a Pod Security Standard — privileged, baseline or
//! restricted — and pods that break the enforced one are refused with
//! upstream's 403; those that break the warned one (a workload's template
//! too: Deployments and the other controllers are warned, never refused)
//! get upstream's `Warning`. Namespaces with an invalid label are refused
//! (422). An unlabelled namespace is privileged. Without an audit
//! annotation in skiff's audit events, the `audit` label is validated and
//! otherwise has no effect. No exemptions are configurable.

pub mod checks;

use serde_json::Value;

use self::checks::{Failure, PodView, LATEST_MINOR};
use super::super::registry::ResourceDef;
use super::super::ApiState;
use crate::api::status::{ApiError, Cause};
use crate::api::validation::causes;

const PREFIX: &str = "pod-security.kubernetes.io/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a version (`None`: latest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub minor: Option<u32>,
}

impl std::fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.minor {
            None => write!(f, "{}:latest", self.level.as_str()),
            Some(m) => write!(f, "{}:v1.{m}", self.level.as_str()),
        }
    }
}

const PRIVILEGED: LevelVersion = LevelVersion {
    level: Level::Privileged,
    minor: None,
};

/// `latest` or `v1.N`; `Err` for anything else.
fn parse_version(s: &str) -> Result<Option<u32>, ()> {
    if s == "latest" {
        return Ok(None);
    }
    let minor = s.strip_prefix("v1.").ok_or(())?;
    if minor.is_empty()
        || !minor.bytes().all(|b| b.is_ascii_digit())
        || (minor.len() > 1 && minor.starts_with('0'))
    {
        return Err(());
    }
    minor.parse().map(Some).map_err(|_| ())
}

/// What a namespace's labels ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub warn: LevelVersion,
    pub audit: LevelVersion,
}

fn label<'a>(labels: Option<&'a serde_json::Map<String, Value>>, key: &str) -> Option<&'a str> {
    labels?.get(&format!("{PREFIX}{key}"))?.as_str()
}

impl Policy {
    /// The policy of a namespace with `labels`, as upstream reads it: an
    /// invalid enforce level is restricted, an invalid warn or audit level
    /// privileged, an invalid version latest; warn follows a stricter
    /// enforce unless it is labelled itself.
    pub fn of(labels: Option<&serde_json::Map<String, Value>>) -> Policy {
        let mode = |name: &str, invalid: Level| {
            let level = match label(labels, name) {
                None => Level::Privileged,
                Some(l) => Level::parse(l).unwrap_or(invalid),
            };
            let minor = label(labels, &format!("{name}-version"))
                .and_then(|v| parse_version(v).ok())
                .flatten();
            LevelVersion { level, minor }
        };
        let enforce = mode("enforce", Level::Restricted);
        let mut warn = mode("warn", Level::Privileged);
        let enforce_valid = label(labels, "enforce").and_then(Level::parse).is_some();
        if label(labels, "warn").is_none() && enforce_valid && enforce.level > warn.level {
            warn.level = enforce.level;
            if label(labels, "warn-version").is_none() {
                warn.minor = enforce.minor;
            }
        }
        Policy {
            enforce,
            warn,
            audit: mode("audit", Level::Privileged),
        }
    }
}

/// Upstream's 422 causes for a namespace's invalid Pod Security labels.
pub fn label_problems(labels: Option<&serde_json::Map<String, Value>>) -> Vec<Cause> {
    let mut out = Vec::new();
    for mode in ["enforce", "audit", "warn"] {
        for (key, ok, detail) in [
            (
                mode.to_string(),
                label(labels, mode).is_none_or(|l| Level::parse(l).is_some()),
                "must be one of privileged, baseline, restricted",
            ),
            (
                format!("{mode}-version"),
                label(labels, &format!("{mode}-version")).is_none_or(|v| parse_version(v).is_ok()),
                "must be \"latest\" or \"v1.x\"",
            ),
        ] {
            if !ok {
                let value = label(labels, &key).unwrap_or_default();
                out.push(causes::invalid(
                    &format!("metadata.labels[{PREFIX}{key}]"),
                    &causes::go_str(value),
                    detail,
                ));
            }
        }
    }
    out
}

type Check = fn(&PodView<'_>) -> Option<Failure>;

/// The checks of a level, in upstream's order: the baseline ones by ID,
/// then the restricted ones by ID, without the baseline checks a
/// restricted one replaces.
fn checks(level: Level, minor: u32) -> Vec<Check> {
    use checks::*;
    let restricted = level == Level::Restricted;
    let mut out: Vec<Check> = vec![app_armor_profile];
    // Before 1.22 the restricted capabilities check did not exist, and
    // the baseline one ran at restricted too.
    if !restricted || minor < 22 {
        out.push(capabilities_baseline);
    }
    out.push(host_namespaces);
    if !restricted {
        out.push(host_path_volumes);
    }
    out.extend([host_ports, privileged, proc_mount, se_linux_options] as [Check; 4]);
    if !restricted {
        out.push(seccomp_profile_baseline);
    }
    out.extend([sysctls, windows_host_process] as [Check; 2]);
    if restricted {
        if minor >= 8 {
            out.push(allow_privilege_escalation);
        }
        if minor >= 22 {
            out.push(capabilities_restricted);
        }
        out.extend([restricted_volumes, run_as_non_root] as [Check; 2]);
        if minor >= 23 {
            out.push(run_as_user);
        }
        out.push(seccomp_profile_restricted);
    }
    out
}

/// What of `lv` the pod spec `spec` (with metadata `meta`) breaks.
pub fn evaluate(lv: LevelVersion, meta: &Value, spec: &Value) -> Vec<Failure> {
    if lv.level == Level::Privileged {
        return Vec::new();
    }
    let minor = lv.minor.unwrap_or(LATEST_MINOR).min(LATEST_MINOR);
    let view = PodView { meta, spec, minor };
    checks(lv.level, minor)
        .into_iter()
        .filter_map(|check| check(&view))
        .collect()
}

/// `reason (detail), reason (detail)`.
pub fn forbidden_detail(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|f| {
            let reason = if f.reason.is_empty() {
                "unknown forbidden reason"
            } else {
                &f.reason
            };
            if f.detail.is_empty() {
                reason.to_string()
            } else {
                format!("{reason} ({})", f.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pod spec (and its metadata) of a workload's template.
fn template(def: &ResourceDef, obj: &Value) -> Option<(Value, Value)> {
    let tpl = match (def.group, def.plural) {
        ("", "replicationcontrollers")
        | ("apps", "replicasets" | "deployments" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => obj.pointer("/spec/template"),
        ("", "podtemplates") => obj.get("template"),
        ("batch", "cronjobs") => obj.pointer("/spec/jobTemplate/spec/template"),
        _ => return None,
    }?;
    Some((
        tpl.get("metadata").cloned().unwrap_or(Value::Null),
        tpl.get("spec").cloned().unwrap_or(Value::Null),
    ))
}

/// Whether a pod update is one upstream evaluates: containers added or
/// removed, an image changed, an ephemeral container added or changed.
fn significant(old: &Value, new: &Value) -> bool {
    let list = |v: &Value, k: &str| {
        v.pointer(&format!("/spec/{k}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let image = |c: &Value| c.get("image").cloned();
    for k in ["containers", "initContainers"] {
        let (o, n) = (list(old, k), list(new, k));
        if o.len() != n.len() || o.iter().zip(&n).any(|(a, b)| image(a) != image(b)) {
            return true;
        }
    }
    let (o, n) = (
        list(old, "ephemeralContainers"),
        list(new, "ephemeralContainers"),
    );
    n.iter().any(|c| {
        let name = c.get("name");
        !o.iter()
            .any(|d| d.get("name") == name && image(d) == image(c))
    })
}

/// Pod Security admission of a create (`old` None) or an update.
pub async fn admit(
    state: &ApiState,
    def: &ResourceDef,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    let labels = |v: &Value| {
        v.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
    };
    match (def.group, def.plural) {
        ("", "namespaces") => {
            let problems = label_problems(labels(new).as_ref());
            let before = old.map(|o| label_problems(labels(o).as_ref()));
            let refused =
                !problems.is_empty() && before.is_none_or(|b| b.is_empty() || b != problems);
            let name = new
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if refused {
                return Err(ApiError::invalid("", "Namespace", name, problems));
            }
            if let Some(old) = old.filter(|_| problems.is_empty()) {
                let (before, after) = (
                    Policy::of(labels(old).as_ref()).enforce,
                    Policy::of(labels(new).as_ref()).enforce,
                );
                if tightened(before, after) {
                    existing_pods(state, name, after).await;
                }
            }
            Ok(())
        }
        ("", "pods") => {
            if old.is_some_and(|o| !significant(o, new)) {
                return Ok(());
            }
            let policy = namespace_policy(state, new).await?;
            let meta = new.get("metadata").unwrap_or(&Value::Null);
            let spec = new.get("spec").unwrap_or(&Value::Null);
            let failures = evaluate(policy.enforce, meta, spec);
            if !failures.is_empty() {
                let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
                let why = format!(
                    "violates PodSecurity \"{}\": {}",
                    policy.enforce,
                    forbidden_detail(&failures)
                );
                let mut e = ApiError::forbidden(if name.is_empty() {
                    format!("pods is forbidden: {why}")
                } else {
                    format!("pods {name:?} is forbidden: {why}")
                });
                e.kind = Some("pods".into());
                e.name = Some(name.to_string()).filter(|n| !n.is_empty());
                return Err(e);
            }
            warn(policy, meta, spec);
            Ok(())
        }
        _ => {
            let Some((meta, spec)) = template(def, new) else {
                return Ok(());
            };
            let policy = namespace_policy(state, new).await?;
            warn(policy, &meta, &spec);
            Ok(())
        }
    }
}

/// The warn level's Warning, if the spec breaks it.
fn warn(policy: Policy, meta: &Value, spec: &Value) {
    let failures = evaluate(policy.warn, meta, spec);
    if !failures.is_empty() {
        super::super::warnings::add(format!(
            "would violate PodSecurity \"{}\": {}",
            policy.warn,
            forbidden_detail(&failures)
        ));
    }
}

/// Whether a namespace's new enforce level asks upstream's check of the
/// pods already there: it changed, is not privileged, and is stricter or
/// of another version.
fn tightened(before: LevelVersion, after: LevelVersion) -> bool {
    after != before
        && after.level != Level::Privileged
        && !(after.minor == before.minor && after.level <= before.level)
}

/// Pods of a namespace checked when its enforce level tightens, and how
/// long that may take (upstream's bounds).
const EXISTING_PODS: usize = 3000;
const EXISTING_PODS_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Upstream's warnings about a namespace's pods that break its new enforce
/// level (the change itself is allowed).
async fn existing_pods(state: &ApiState, ns: &str, level: LevelVersion) {
    let Some(def) = state.registry.find("", "v1", "pods") else {
        return;
    };
    let mut pods: Vec<Value> = Vec::new();
    let mut total = 0usize;
    let listed = tokio::time::timeout(
        EXISTING_PODS_TIME,
        super::each(&state.objects, def, Some(ns), |pod| {
            total += 1;
            if pods.len() < EXISTING_PODS {
                pods.push(pod);
            }
        }),
    )
    .await;
    let add = super::super::warnings::add;
    if !matches!(listed, Ok(Ok(()))) && pods.is_empty() {
        add("failed to list pods while checking new PodSecurity enforce level".into());
        return;
    }
    if pods.len() < total {
        add(format!(
            "new PodSecurity enforce level only checked against the first {} of {total} existing pods",
            pods.len()
        ));
    }
    // Pods by the reasons they break it: the first name and how many.
    let mut by_reasons: std::collections::BTreeMap<String, (String, usize)> = Default::default();
    for pod in &pods {
        let meta = pod.get("metadata").unwrap_or(&Value::Null);
        let failures = evaluate(level, meta, pod.get("spec").unwrap_or(&Value::Null));
        if failures.is_empty() {
            continue;
        }
        let reasons: Vec<&str> = failures.iter().map(|f| f.reason.as_str()).collect();
        let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
        let entry = by_reasons
            .entry(reasons.join(", "))
            .or_insert_with(|| (name.to_string(), 0));
        if name < entry.0.as_str() {
            entry.0 = name.to_string();
        }
        entry.1 += 1;
    }
    if by_reasons.is_empty() {
        return;
    }
    add(format!(
        "existing pods in namespace {ns:?} violate the new PodSecurity enforce level \"{level}\""
    ));
    let mut lines: Vec<String> = by_reasons
        .into_iter()
        .map(|(reasons, (first, n))| match n {
            1 => format!("{first}: {reasons}"),
            2 => format!("{first} (and 1 other pod): {reasons}"),
            n => format!("{first} (and {} other pods): {reasons}", n - 1),
        })
        .collect();
    lines.sort();
    for l in lines {
        add(l);
    }
}

/// The policy of the object's namespace (privileged when it has none).
async fn namespace_policy(state: &ApiState, obj: &Value) -> Result<Policy, ApiError> {
    let Some(ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str) else {
        return Ok(Policy {
            enforce: PRIVILEGED,
            warn: PRIVILEGED,
            audit: PRIVILEGED,
        });
    };
    let Some(nsdef) = state.registry.namespaces() else {
        return Err(ApiError::internal("namespaces are not registered"));
    };
    let stored = state.objects.get(nsdef, None, ns).await?;
    let labels = stored
        .as_ref()
        .and_then(|s| s.obj.pointer("/metadata/labels"))
        .and_then(Value::as_object);
    Ok(Policy::of(labels))
}

#[cfg(test)]
mod tests;
