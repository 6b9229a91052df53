//! CustomResourceDefinitions (apiextensions.k8s.io/v1): the kinds users
//! add to the API.
//!
//! - `definition`: the CRD kind itself (defaulting, validation, deletion).
//! - `schema`: a version's structural schema, read once per CRD change.
//! - `validate`, `prune`: custom resources checked, pruned and defaulted
//!   against it.
//! - `printer`: additionalPrinterColumns.
//! - `follow`: the registry kept current from the store, as RBAC's cache.
//! - `controller`: status (NamesAccepted, Established, Terminating) and the
//!   cleanup of a deleted CRD's objects.
//!
//! Each served version of a CRD is a [`ResourceDef`] like a built-in one,
//! so every handler serves custom resources unchanged. Handlers hold
//! `&ResourceDef` for a request's duration while CRDs come and go, so a
//! custom def is allocated once per distinct shape (group, version, names,
//! scope, subresources) and kept: a CRD changed back and forth reuses its
//! defs, and [`MAX_DEFS`] bounds what is ever kept. What changes with a CRD
//! without changing its shape (schema, columns, scale paths) is swapped
//! behind the def's [`Custom`].

pub mod controller;
pub mod definition;
pub mod follow;
pub mod printer;
pub mod prune;
pub mod schema;
pub mod validate;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use super::kinds::{self, KindRef};
use super::object_store::Follower;
use super::registry::{ResourceDef, SubresourceDef, ALL_VERBS};
use crate::api::rules;

/// Where CRDs are stored.
pub const PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";
/// Held by a deleted CRD until its objects are gone (upstream's name).
pub const FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// Distinct custom resource shapes kept over the server's life (each a few
/// hundred bytes); a CRD past it is not served, and says so in its status.
pub const MAX_DEFS: usize = 4096;

/// What a served version of a CRD is now.
#[derive(Debug)]
pub struct Served {
    /// The CRD's name (`crontabs.stable.example.com`).
    pub crd: String,
    pub schema: schema::Schema,
    /// The schema as the CRD wrote it (for the OpenAPI documents).
    pub raw_schema: Value,
    /// Name first, then the CRD's columns (or Age when it has none).
    pub columns: Vec<printer::Column>,
    pub scale: Option<ScalePaths>,
    /// The version objects are stored in.
    pub storage_version: String,
    /// Marked for deletion: no new objects.
    pub terminating: bool,
    /// `deprecationWarning` (or upstream's default one) when deprecated.
    pub deprecation: Option<String>,
}

/// The scale subresource's paths (`.spec.replicas`, …).
#[derive(Debug, Clone)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// A custom def's changing part, shared by every request using the def.
pub struct Custom {
    served: RwLock<Arc<Served>>,
}

impl Custom {
    pub fn get(&self) -> Arc<Served> {
        match self.served.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, served: Arc<Served>) {
        match self.served.write() {
            Ok(mut g) => *g = served,
            Err(poisoned) => *poisoned.into_inner() = served,
        }
    }
}

/// Compared by identity, as registry entries are.
impl PartialEq for Custom {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Custom {}

impl std::fmt::Debug for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Custom({})", self.get().crd)
    }
}

/// The shape of a custom def: what its [`ResourceDef`] is made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status: bool,
    pub scale: bool,
}

/// The strategy of every custom resource: generation tracked, status
/// owned by `/status` when the CRD has it.
pub struct CustomStrategy;

impl kinds::Strategy for CustomStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }
}

pub static CUSTOM: CustomStrategy = CustomStrategy;

/// `/scale` of a custom resource answers an autoscaling/v1 Scale, as the
/// built-in kinds' does.
const SCALE: SubresourceDef = SubresourceDef {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: &["get", "patch", "update"],
};

/// The custom defs being served, and every def ever made (see the module).
pub struct Installed {
    live: RwLock<Arc<Vec<&'static ResourceDef>>>,
    made: Mutex<Made>,
    /// The CRDs as last served, for the controller.
    known: RwLock<Arc<follow::Known>>,
    /// Bumped whenever `known` changes.
    pub changed: tokio::sync::watch::Sender<u64>,
    /// CRD writes are answered once the registry serves them.
    pub follower: Arc<Follower>,
    /// Each CRD's served versions as last read (by name), with the
    /// revision and accepted names they were read at: a change of one CRD
    /// reads that one again, not every CRD.
    pub(super) parsed: Mutex<HashMap<String, follow::Parsed>>,
}

#[derive(Default)]
struct Made {
    defs: HashMap<Shape, (&'static ResourceDef, &'static Custom)>,
    strings: HashSet<&'static str>,
}

impl Made {
    fn intern(&mut self, s: &str) -> &'static str {
        if let Some(k) = self.strings.get(s) {
            return k;
        }
        let k: &'static str = Box::leak(s.to_string().into_boxed_str());
        self.strings.insert(k);
        k
    }

    fn intern_list(&mut self, items: &[String]) -> &'static [&'static str] {
        if items.is_empty() {
            return &[];
        }
        let list: Vec<&'static str> = items.iter().map(|s| self.intern(s)).collect();
        Box::leak(list.into_boxed_slice())
    }

    /// The def of `shape`, made once; `None` past [`MAX_DEFS`].
    fn def(&mut self, shape: &Shape, served: Arc<Served>) -> Option<&'static ResourceDef> {
        if let Some((def, custom)) = self.defs.get(shape) {
            custom.set(served);
            return Some(*def);
        }
        if self.defs.len() >= MAX_DEFS {
            return None;
        }
        let custom: &'static Custom = Box::leak(Box::new(Custom {
            served: RwLock::new(served),
        }));
        let group = self.intern(&shape.group);
        let version = self.intern(&shape.version);
        let kind = self.intern(&shape.kind);
        let mut subs = Vec::new();
        if shape.scale {
            subs.push(SCALE);
        }
        if shape.status {
            subs.push(SubresourceDef {
                name: "status",
                group,
                version,
                kind,
                verbs: &["get", "patch", "update"],
            });
        }
        let def: &'static ResourceDef = Box::leak(Box::new(ResourceDef {
            group,
            version,
            plural: self.intern(&shape.plural),
            singular: self.intern(&shape.singular),
            kind,
            namespaced: shape.namespaced,
            short_names: self.intern_list(&shape.short_names),
            categories: self.intern_list(&shape.categories),
            verbs: ALL_VERBS,
            subresources: Box::leak(subs.into_boxed_slice()),
            strategy: KindRef(&CUSTOM),
            rules: &rules::PLAIN,
            printer: None,
            stored_as: None,
            custom: Some(custom),
        }));
        self.defs.insert(shape.clone(), (def, custom));
        Some(def)
    }
}

impl Default for Installed {
    fn default() -> Self {
        Installed {
            live: RwLock::new(Arc::new(Vec::new())),
            made: Mutex::new(Made::default()),
            known: RwLock::new(Arc::new(follow::Known::default())),
            changed: tokio::sync::watch::Sender::new(0),
            parsed: Mutex::new(HashMap::new()),
            follower: Arc::new(Follower::new(PREFIX)),
        }
    }
}

impl Installed {
    /// The custom defs served now.
    pub fn live(&self) -> Arc<Vec<&'static ResourceDef>> {
        match self.live.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The CRDs as last served.
    pub fn known(&self) -> Arc<follow::Known> {
        match self.known.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn publish(&self, known: follow::Known) {
        let known = Arc::new(known);
        match self.known.write() {
            Ok(mut g) => *g = known,
            Err(poisoned) => *poisoned.into_inner() = known,
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Serve exactly `versions` (each a def's shape and what it serves);
    /// returns the CRD names that could not be served (past [`MAX_DEFS`]).
    pub fn serve(&self, versions: Vec<(Shape, Arc<Served>)>) -> Vec<String> {
        let mut refused = Vec::new();
        let mut defs = Vec::with_capacity(versions.len());
        {
            let mut made = match self.made.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            for (shape, served) in versions {
                let crd = served.crd.clone();
                match made.def(&shape, served) {
                    Some(def) => defs.push(def),
                    None => refused.push(crd),
                }
            }
        }
        // Discovery lists a group's versions in this order and prefers
        // the first, as upstream: GA, then beta, then alpha, newest first.
        defs.sort_by(|a, b| {
            (a.group, version_priority(a.version)).cmp(&(b.group, version_priority(b.version)))
        });
        let defs = Arc::new(defs);
        match self.live.write() {
            Ok(mut g) => *g = defs,
            Err(poisoned) => *poisoned.into_inner() = defs,
        }
        refused
    }
}

/// Upstream's kube-aware version order as a sort key (smaller first):
/// `v2` < `v1` < `v2beta1` < `v1beta2` < `v1beta1` < `v1alpha1` < others by
/// name.
fn version_priority(v: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    use std::cmp::Reverse;
    let other = (3, Reverse(0), Reverse(0), v.to_string());
    let Some(rest) = v.strip_prefix('v') else {
        return other;
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Ok(major) = rest[..digits].parse::<u64>() else {
        return other;
    };
    let tail = &rest[digits..];
    let (rank, minor) = if tail.is_empty() {
        (0, "0")
    } else if let Some(m) = tail.strip_prefix("beta") {
        (1, m)
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (2, m)
    } else {
        return other;
    };
    match minor.parse::<u64>() {
        Ok(minor) => (rank, Reverse(major), Reverse(minor), String::new()),
        _ => other,
    }
}

/// Whether a CRD is marked for deletion.
pub fn terminating(crd: &Value) -> bool {
    crd.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Prune and default a custom resource as its version's schema says;
/// built-in kinds as their types say.
pub fn prune_and_default(def: &ResourceDef, obj: &mut Value) {
    match def.custom {
        Some(c) => {
            let served = c.get();
            prune::default(&served.schema, obj);
            prune::prune(&served.schema, obj);
        }
        None => {
            crate::api::fieldcheck::prune_unknown_fields(&def.api_version(), def.kind, obj);
            crate::api::defaulting::apply_defaults(def.rules, obj);
        }
    }
}

/// The schema's causes against a custom resource (none for built-ins).
/// On an update (`old` given), a problem at a path whose value did not
/// change is not one (upstream's validation ratcheting, on by default in
/// 1.32): a CRD made stricter does not lock its existing objects.
pub fn schema_causes(
    def: &ResourceDef,
    old: Option<&Value>,
    obj: &Value,
) -> Vec<crate::api::status::Cause> {
    let Some(c) = def.custom else {
        return Vec::new();
    };
    let mut causes = validate::validate(&c.get().schema, obj);
    if let Some(old) = old {
        causes.retain(|cause| match field_pointer(&cause.field) {
            // Only a value found and equal in both ratchets: a path that
            // does not resolve (a key with dots) is checked.
            Some(ptr) => match (old.pointer(&ptr), obj.pointer(&ptr)) {
                (Some(was), Some(now)) => was != now,
                _ => true,
            },
            None => true,
        });
    }
    causes
}

/// A cause's field (`spec.items[0].name`) as a JSON pointer; `None` for
/// what names no single field (`<nil>`).
fn field_pointer(field: &str) -> Option<String> {
    if field.is_empty() || field == "<nil>" {
        return None;
    }
    let mut ptr = String::new();
    for part in field.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        ptr.push('/');
        ptr.push_str(&key.replace('~', "~0").replace('/', "~1"));
        for idx in indexes.split(['[', ']']).filter(|x| !x.is_empty()) {
            idx.parse::<usize>().ok()?;
            ptr.push('/');
            ptr.push_str(idx);
        }
    }
    Some(ptr)
}

/// `fieldValidation` of a create, update or patch body: a 400 for what
/// the decoder rejects and (Strict) unknown fields, else the `Warning`
/// headers to send. Unknown fields of a custom resource are those its
/// schema prunes, as upstream reports them.
pub fn check_fields(
    def: &ResourceDef,
    mode: crate::api::fieldcheck::Mode,
    obj: &Value,
    raw_json: Option<&[u8]>,
) -> Result<Vec<String>, String> {
    use crate::api::fieldcheck::{self, FieldProblem, Mode};
    let Some(c) = def.custom else {
        return fieldcheck::check_body(mode, &def.api_version(), def.kind, obj, raw_json);
    };
    if mode == Mode::Ignore {
        return Ok(Vec::new());
    }
    let mut problems: Vec<FieldProblem> = raw_json
        .map(fieldcheck::duplicate_fields)
        .unwrap_or_default()
        .into_iter()
        .map(FieldProblem::Duplicate)
        .collect();
    problems.extend(
        prune::unknown_fields(&c.get().schema, obj)
            .into_iter()
            .map(FieldProblem::Unknown),
    );
    if problems.is_empty() {
        return Ok(Vec::new());
    }
    match mode {
        Mode::Strict => Err(fieldcheck::cannot_be_handled(
            &def.api_version(),
            def.kind,
            &fieldcheck::strict_error_message(&problems),
        )),
        _ => Ok(problems.iter().map(fieldcheck::warning_header).collect()),
    }
}

/// A create of a custom resource whose CRD is being deleted is refused,
/// as upstream's.
pub fn check_create(def: &ResourceDef) -> Result<(), crate::api::status::ApiError> {
    match def.custom {
        Some(c) if c.get().terminating => Err(crate::api::status::ApiError::new(
            405,
            "MethodNotAllowed",
            "create not allowed while custom resource definition is terminating",
        )),
        _ => Ok(()),
    }
}

/// Whether an update changes what a custom resource's generation counts:
/// anything but metadata, and status where `/status` owns it.
pub fn generation_changed(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    if def.custom.is_none() {
        return old.get("spec") != new.get("spec");
    }
    let status_owned = def.has_subresource("status");
    let strip = |v: &Value| -> serde_json::Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if status_owned {
            m.remove("status");
        }
        m
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_kube_aware_order() {
        let mut vs = vec![
            "v1alpha1", "foo", "v1", "v1beta1", "v2", "v1beta2", "v2beta1", "v10",
        ];
        vs.sort_by_key(|v| version_priority(v));
        assert_eq!(
            vs,
            ["v10", "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn cause_fields_as_pointers() {
        assert_eq!(
            field_pointer("spec.items[0].name").as_deref(),
            Some("/spec/items/0/name")
        );
        assert_eq!(field_pointer("spec.a/b").as_deref(), Some("/spec/a~1b"));
        assert_eq!(field_pointer("<nil>"), None);
        assert_eq!(field_pointer("spec.x[a]"), None);
    }
}
