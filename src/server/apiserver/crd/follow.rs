//! Keeping the served custom resources current: the CRDs mirrored from
//! the store (`mirror`), as the RBAC policy is; every change serves
//! the CRDs anew (names settled in creation order, conflicts left out)
//! and wakes the controller, which writes their status.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{definition, Installed, Served, Shape, PREFIX};
use crate::server::apiserver::mirror::{self, Mirror};
use crate::server::apiserver::object_store::Follower;
use crate::server::apiserver::ApiState;
use crate::server::store::{self, Revision};

/// The CRDs as stored, by name, and what serving them decided.
#[derive(Default)]
pub struct Known {
    /// Each CRD with the revision it was stored at.
    pub crds: BTreeMap<String, (Revision, Arc<Value>)>,
    /// Per CRD: the names it is served under, or why it is not.
    pub accepted: BTreeMap<String, Result<Map<String, Value>, Conflict>>,
    /// CRDs that could not be served for want of room (see `MAX_DEFS`).
    pub refused: HashSet<String>,
}

/// A CRD's served versions as read at one revision with one set of names.
pub struct Parsed {
    rev: Revision,
    names: Map<String, Value>,
    versions: Vec<(Shape, Arc<Served>)>,
}

/// Why a CRD's names were not accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub reason: &'static str,
    pub message: String,
}

/// Load the CRDs and serve them, then follow the store in a task that
/// ends with the store.
pub async fn start(state: &Arc<ApiState>) -> Result<(), store::Error> {
    mirror::start(state, |s: &ApiState| &s.registry.custom).await
}

/// The CRDs as stored, mirrored from the store; each change serves them
/// anew.
impl Mirror for Installed {
    type Draft = BTreeMap<String, (Revision, Arc<Value>)>;
    const WHAT: &'static str = "the CRDs";

    fn follower(&self) -> &Follower {
        &self.follower
    }

    fn empty(&self) -> Self::Draft {
        BTreeMap::new()
    }

    fn current(&self) -> Self::Draft {
        self.known().crds.clone()
    }

    fn apply(&self, crds: &mut Self::Draft, key: &str, value: Option<&[u8]>, rev: Revision) {
        apply(crds, key, value, rev);
    }

    fn publish(&self, state: &ApiState, crds: Self::Draft) {
        install(state, crds);
    }
}

fn apply(
    crds: &mut BTreeMap<String, (Revision, Arc<Value>)>,
    key: &str,
    value: Option<&[u8]>,
    rev: Revision,
) {
    let Some(name) = key.strip_prefix(PREFIX) else {
        return;
    };
    match value.map(serde_json::from_slice::<Value>) {
        Some(Ok(v)) => {
            crds.insert(name.to_string(), (rev, Arc::new(v)));
        }
        Some(Err(e)) => {
            tracing::error!(crd = name, error = %e, "stored CRD is not valid JSON; not served");
            crds.remove(name);
        }
        None => {
            crds.remove(name);
        }
    }
}

/// Serve `crds` and publish what was decided.
fn install(state: &ApiState, crds: BTreeMap<String, (Revision, Arc<Value>)>) {
    let accepted = accept(state, &crds);
    let mut versions: Vec<(Shape, Arc<Served>)> = Vec::new();
    {
        let mut parsed = match state.registry.custom.parsed.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        parsed.retain(|name, _| matches!(accepted.get(name), Some(Ok(_))));
        for (name, (rev, crd)) in &crds {
            let Some(Ok(names)) = accepted.get(name) else {
                continue;
            };
            let fresh = parsed
                .get(name)
                .is_some_and(|p| p.rev == *rev && &p.names == names);
            if !fresh {
                let read = definition::served(crd, names)
                    .into_iter()
                    .map(|(shape, served)| (shape, Arc::new(served)))
                    .collect();
                parsed.insert(
                    name.clone(),
                    Parsed {
                        rev: *rev,
                        names: names.clone(),
                        versions: read,
                    },
                );
            }
            if let Some(p) = parsed.get(name) {
                versions.extend(p.versions.iter().cloned());
            }
        }
    }
    let refused = state.registry.custom.serve(versions).into_iter().collect();
    state.registry.custom.publish(Known {
        crds,
        accepted,
        refused,
    });
}

/// Names settled as upstream's naming controller does: the oldest CRD
/// keeps a contested plural, singular, kind or short name; built-in kinds
/// of the same group always win.
fn accept(
    state: &ApiState,
    crds: &BTreeMap<String, (Revision, Arc<Value>)>,
) -> BTreeMap<String, Result<Map<String, Value>, Conflict>> {
    // Names already accepted stay with their CRD: a CRD made later (or at
    // the same second) never takes them away.
    let mut order: Vec<(&String, &Value)> = crds.iter().map(|(n, (_, v))| (n, &**v)).collect();
    order.sort_by_key(|(name, crd)| {
        let settled = crd
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "NamesAccepted" && c["status"] == "True")
            });
        let created = crd
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        (!settled, created, (*name).clone())
    });
    // Per group: every resource and kind name taken so far.
    let mut taken: BTreeMap<String, (HashSet<String>, HashSet<String>)> = BTreeMap::new();
    for def in state.registry.builtins() {
        let (res, kinds) = taken.entry(def.group.to_string()).or_default();
        res.insert(def.plural.to_string());
        res.insert(def.singular.to_string());
        res.extend(def.short_names.iter().map(|s| s.to_string()));
        kinds.insert(def.kind.to_string());
        kinds.insert(def.list_kind());
    }
    let mut out = BTreeMap::new();
    for (name, crd) in order {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(names) = crd.pointer("/spec/names").and_then(Value::as_object) else {
            continue;
        };
        let s = |k: &str| {
            names
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let shorts = crate::server::apiserver::metadata::string_list(names.get("shortNames"));
        let (res, kinds) = taken.entry(group).or_default();
        let conflict = if res.contains(&s("plural")) {
            Some((
                "PluralConflict",
                format!("{:?} is already in use", s("plural")),
            ))
        } else if res.contains(&s("singular")) {
            Some((
                "SingularConflict",
                format!("{:?} is already in use", s("singular")),
            ))
        } else if let Some(short) = shorts.iter().find(|x| res.contains(*x)) {
            Some(("ShortNamesConflict", format!("{short:?} is already in use")))
        } else if kinds.contains(&s("kind")) {
            Some(("KindConflict", format!("{:?} is already in use", s("kind"))))
        } else if kinds.contains(&s("listKind")) {
            Some((
                "ListKindConflict",
                format!("{:?} is already in use", s("listKind")),
            ))
        } else {
            None
        };
        match conflict {
            Some((reason, message)) => {
                out.insert(name.clone(), Err(Conflict { reason, message }));
            }
            None => {
                res.insert(s("plural"));
                res.insert(s("singular"));
                res.extend(shorts);
                kinds.insert(s("kind"));
                kinds.insert(s("listKind"));
                out.insert(name.clone(), Ok(names.clone()));
            }
        }
    }
    out
}
