//! The resource registry: each built-in kind described once. Handlers,
//! discovery, tables and field selectors are generic over these entries;
//! what a kind does differently is its strategy (`kinds`) and its
//! defaulting and validation rules (`crate::api::rules`).

use super::kinds::KindRef;
use super::table::Printer;
use crate::api::rules::KindRules;

/// A subresource such as `pods/status` or `deployments/scale`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubresourceDef {
    /// e.g. `status`, `scale`, `log`, `exec`.
    pub name: &'static str,
    /// The kind a request to it returns (`Scale` in `autoscaling/v1` for scale).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// One resource of one group/version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// Lower-case plural used in URLs (`deployments`).
    pub plural: &'static str,
    /// Lower-case singular (`deployment`).
    pub singular: &'static str,
    /// Kind (`Deployment`); lists are `<Kind>List`.
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// `all` makes `kubectl get all` include it.
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [SubresourceDef],
    /// What the kind does beyond storing JSON (see `kinds`).
    pub strategy: KindRef,
    /// Its defaulting and validation (`crate::api::rules`).
    pub rules: &'static KindRules,
    /// Its Table columns and cells; `None`: the default table.
    pub printer: Option<&'static Printer>,
    /// Set when its objects are another resource's, seen through this API
    /// (upstream's events.k8s.io Events are the core Events).
    pub stored_as: Option<&'static StoredAs>,
    /// Set for a version of a CustomResourceDefinition: its schema, columns
    /// and scale paths as they are now.
    pub custom: Option<&'static super::crd::Custom>,
}

/// Where a resource's objects are kept when they are another resource's,
/// and the conversions between the two forms.
pub struct StoredAs {
    /// The resource whose storage holds them.
    pub group: &'static str,
    pub plural: &'static str,
    /// This API's form into the stored form (apiVersion included).
    pub to_stored: fn(&mut serde_json::Value),
    /// The stored form into this API's form.
    pub from_stored: fn(&mut serde_json::Value),
}

/// Compared by identity, as function pointers do not compare reliably.
impl PartialEq for StoredAs {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for StoredAs {}

impl std::fmt::Debug for StoredAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredAs({}/{})", self.group, self.plural)
    }
}

/// The verbs of an ordinary read/write resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceDef {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn subresource(&self, name: &str) -> Option<&SubresourceDef> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether its objects are kept in the store (metrics.k8s.io's are
    /// read from the kubelets, reviews are answered and forgotten):
    /// controllers that walk every kind's objects skip the others.
    pub fn stored(&self) -> bool {
        self.group != "metrics.k8s.io" && self.strategy.review().is_none()
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresource(name).is_some()
    }

    /// The storage key prefix of this resource: `/registry/<group>/<plural>/`
    /// (`/registry/<plural>/` for the core group).
    pub fn key_prefix(&self) -> String {
        let (group, plural) = self
            .stored_as
            .map_or((self.group, self.plural), |s| (s.group, s.plural));
        if group.is_empty() {
            format!("/registry/{plural}/")
        } else {
            format!("/registry/{group}/{plural}/")
        }
    }

    /// A stored object as this API shows it.
    pub fn from_stored(&self, obj: &mut serde_json::Value) {
        if let Some(s) = self.stored_as {
            (s.from_stored)(obj);
        }
        // Custom resources convert between versions by their apiVersion
        // alone (conversion strategy None).
        if let Some(c) = self.custom {
            if let Some(m) = obj.as_object_mut() {
                m.insert("apiVersion".into(), self.api_version().into());
            }
            // Defaults the schema gained since an object was stored show
            // when it is read, as upstream defaults what it reads.
            super::crd::prune::default(&c.get().schema, obj);
        }
    }

    /// An object of this API as it is stored.
    pub fn to_stored(&self, obj: &mut serde_json::Value) {
        if let Some(s) = self.stored_as {
            (s.to_stored)(obj);
        }
        if let (Some(c), Some(m)) = (self.custom, obj.as_object_mut()) {
            let storage = format!("{}/{}", self.group, c.get().storage_version);
            m.insert("apiVersion".into(), storage.into());
        }
    }

    /// Whether stored objects differ from what this API shows (so they
    /// cannot be sent as stored).
    pub fn converts(&self) -> bool {
        self.stored_as.is_some() || self.custom.is_some()
    }

    /// Storage key of one object (`namespace` is ignored for cluster-scoped kinds).
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }

    /// Prefix of every object of this resource in one namespace (or all).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }
}

/// Every kind this server serves, grouped by group/version in the order
/// discovery lists them (this order is what `kubectl get all` follows).
pub struct Registry {
    resources: Vec<ResourceDef>,
    /// The versions of CustomResourceDefinitions served now.
    pub custom: super::crd::Installed,
}

impl Registry {
    pub fn new(resources: Vec<ResourceDef>) -> Self {
        Registry {
            resources,
            custom: Default::default(),
        }
    }

    pub fn builtin() -> Self {
        Registry::new(super::builtin::builtin_resources())
    }

    /// The built-in kinds only.
    pub fn builtins(&self) -> &[ResourceDef] {
        &self.resources
    }

    /// Every kind served now: the built-in ones, then the custom ones.
    pub fn all(&self) -> Vec<&ResourceDef> {
        let custom = self.custom.live();
        let mut out: Vec<&ResourceDef> = self.resources.iter().collect();
        out.extend(custom.iter().copied());
        out
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        let matches =
            |r: &ResourceDef| r.group == group && r.version == version && r.plural == plural;
        if let Some(r) = self.resources.iter().find(|r| matches(r)) {
            return Some(r);
        }
        self.custom.live().iter().copied().find(|r| matches(r))
    }

    /// The kind of namespaces themselves (its strategy says so).
    pub fn namespaces(&self) -> Option<&ResourceDef> {
        self.resources.iter().find(|r| r.strategy.is_namespace())
    }

    /// Group/versions in first-seen order, each with its resources.
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for r in self.all() {
            if !out.contains(&(r.group, r.version)) {
                out.push((r.group, r.version));
            }
        }
        out
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceDef> {
        self.all()
            .into_iter()
            .filter(|r| r.group == group && r.version == version)
            .collect()
    }
}
