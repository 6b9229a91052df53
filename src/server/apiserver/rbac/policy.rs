//! The RBAC policy as the authorizer reads it: every Role and ClusterRole's
//! rules, and the bindings indexed by the users and groups they name, so a
//! decision looks up only the bindings of the caller.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::rule::Rule;
use crate::server::pki::Identity;

/// Where the four RBAC resources are stored.
pub const PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// What a binding grants: a ClusterRole, or a Role of its own namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoleRef {
    Cluster(String),
    Local(String),
}

#[derive(Debug, Clone)]
struct Binding {
    role: RoleRef,
    users: Vec<String>,
    groups: Vec<String>,
}

/// The bindings of one scope (the cluster, or one namespace), by the names
/// they bind.
#[derive(Debug, Clone, Default)]
struct Index {
    users: HashMap<String, Vec<RoleRef>>,
    groups: HashMap<String, Vec<RoleRef>>,
}

impl Index {
    fn add(&mut self, b: &Binding) {
        for u in &b.users {
            self.users
                .entry(u.clone())
                .or_default()
                .push(b.role.clone());
        }
        for g in &b.groups {
            self.groups
                .entry(g.clone())
                .or_default()
                .push(b.role.clone());
        }
    }

    /// The roles bound to `who`.
    fn of<'a>(&'a self, who: &'a Identity) -> impl Iterator<Item = &'a RoleRef> + 'a {
        let users = self.users.get(&who.user).into_iter().flatten();
        let groups = who
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flatten();
        users.chain(groups)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    cluster_roles: HashMap<String, Arc<[Rule]>>,
    /// Roles by namespace, then name.
    roles: HashMap<String, HashMap<String, Arc<[Rule]>>>,
    cluster_bindings: HashMap<String, Binding>,
    /// Bindings by namespace, then name.
    bindings: HashMap<String, HashMap<String, Binding>>,
    /// Rebuilt from the bindings after each batch of changes.
    cluster_index: Index,
    indexes: HashMap<String, Index>,
}

#[derive(Deserialize)]
struct RoleObject {
    #[serde(default)]
    rules: Option<Vec<Rule>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingObject {
    role_ref: RoleRefObject,
    #[serde(default)]
    subjects: Option<Vec<SubjectObject>>,
}

#[derive(Deserialize)]
struct RoleRefObject {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct SubjectObject {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// A binding as the index keeps it; `namespace` is the binding's own (for
/// a RoleBinding), where a ServiceAccount subject without one lives.
fn binding(obj: BindingObject, namespace: Option<&str>) -> Binding {
    let role = match obj.role_ref.kind.as_str() {
        "Role" => RoleRef::Local(obj.role_ref.name),
        _ => RoleRef::Cluster(obj.role_ref.name),
    };
    let mut users = Vec::new();
    let mut groups = Vec::new();
    for s in obj.subjects.unwrap_or_default() {
        match s.kind.as_str() {
            "User" => users.push(s.name),
            "Group" => groups.push(s.name),
            "ServiceAccount" => {
                let ns = s.namespace.filter(|n| !n.is_empty());
                if let Some(ns) = ns.as_deref().or(namespace) {
                    users.push(format!("system:serviceaccount:{ns}:{}", s.name));
                }
            }
            _ => {}
        }
    }
    Binding {
        role,
        users,
        groups,
    }
}

/// Which object a key names: its resource, namespace and name.
fn parse_key(key: &str) -> Option<(&str, Option<&str>, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (plural, rest) = rest.split_once('/')?;
    match plural {
        "roles" | "rolebindings" => {
            let (ns, name) = rest.split_once('/')?;
            Some((plural, Some(ns), name))
        }
        _ => Some((plural, None, rest)),
    }
}

impl Policy {
    /// Take in the object stored at `key` (`None`: it was deleted). What
    /// does not decode counts as absent: it grants nothing.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        let Some((plural, ns, name)) = parse_key(key) else {
            return;
        };
        let decoded = |what| move |e: serde_json::Error| tracing::warn!(key = %key, "an RBAC {what} does not decode and grants nothing: {e}");
        match (plural, ns) {
            ("clusterroles", None) => {
                let rules = value.and_then(|v| {
                    serde_json::from_slice::<RoleObject>(v)
                        .map_err(decoded("role"))
                        .ok()
                });
                match rules {
                    Some(r) => {
                        let rules: Arc<[Rule]> = r.rules.unwrap_or_default().into();
                        self.cluster_roles.insert(name.to_string(), rules);
                    }
                    None => {
                        self.cluster_roles.remove(name);
                    }
                }
            }
            ("roles", Some(ns)) => {
                let rules = value.and_then(|v| {
                    serde_json::from_slice::<RoleObject>(v)
                        .map_err(decoded("role"))
                        .ok()
                });
                let in_ns = self.roles.entry(ns.to_string()).or_default();
                match rules {
                    Some(r) => {
                        in_ns.insert(name.to_string(), r.rules.unwrap_or_default().into());
                    }
                    None => {
                        in_ns.remove(name);
                    }
                }
                if in_ns.is_empty() {
                    self.roles.remove(ns);
                }
            }
            ("clusterrolebindings" | "rolebindings", _) => {
                let b = value.and_then(|v| {
                    serde_json::from_slice::<BindingObject>(v)
                        .map_err(decoded("binding"))
                        .ok()
                });
                let b = b.map(|b| binding(b, ns));
                let map = match ns {
                    None => &mut self.cluster_bindings,
                    Some(ns) => self.bindings.entry(ns.to_string()).or_default(),
                };
                match b {
                    Some(b) => {
                        map.insert(name.to_string(), b);
                    }
                    None => {
                        map.remove(name);
                    }
                }
                if let Some(ns) = ns {
                    if self.bindings.get(ns).is_some_and(HashMap::is_empty) {
                        self.bindings.remove(ns);
                    }
                }
            }
            _ => {}
        }
    }

    /// Index the bindings again, after a batch of [`Policy::apply`].
    pub fn reindex(&mut self) {
        let mut cluster = Index::default();
        for b in self.cluster_bindings.values() {
            // A ClusterRoleBinding to a Role has no namespace to find it in.
            if matches!(b.role, RoleRef::Cluster(_)) {
                cluster.add(b);
            }
        }
        let mut indexes: HashMap<String, Index> = HashMap::new();
        for (ns, in_ns) in &self.bindings {
            let index = indexes.entry(ns.clone()).or_default();
            for b in in_ns.values() {
                index.add(b);
            }
        }
        self.cluster_index = cluster;
        self.indexes = indexes;
    }

    fn rules_of(&self, role: &RoleRef, namespace: Option<&str>) -> Option<&Arc<[Rule]>> {
        match role {
            RoleRef::Cluster(name) => self.cluster_roles.get(name),
            RoleRef::Local(name) => self.roles.get(namespace?)?.get(name),
        }
    }

    /// The rules granted to `who` by the cluster's bindings and, given a
    /// namespace, by that namespace's: each role's once, until `visit`
    /// returns true (and then true).
    pub fn any_rule(
        &self,
        who: &Identity,
        namespace: Option<&str>,
        mut visit: impl FnMut(&Rule) -> bool,
    ) -> bool {
        let local = namespace.and_then(|ns| self.indexes.get(ns));
        for index in std::iter::once(&self.cluster_index).chain(local) {
            for role in index.of(who) {
                let rules = self.rules_of(role, namespace);
                if rules.is_some_and(|rules| rules.iter().any(&mut visit)) {
                    return true;
                }
            }
        }
        false
    }

    /// Every rule `who` holds in `namespace` (the cluster's alone for
    /// none), as SelfSubjectRulesReview and the escalation checks read them.
    pub fn rules_for(&self, who: &Identity, namespace: Option<&str>) -> Vec<Rule> {
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<Rule> = Vec::new();
        self.any_rule(who, namespace, |r| {
            if seen.insert(r.clone()) {
                out.push(r.clone());
            }
            false
        });
        out
    }

    /// The rules a binding's roleRef grants in `namespace` (`None` when the
    /// role does not exist).
    pub fn role_rules(&self, kind: &str, name: &str, namespace: Option<&str>) -> Option<Vec<Rule>> {
        let role = match kind {
            "Role" => RoleRef::Local(name.to_string()),
            _ => RoleRef::Cluster(name.to_string()),
        };
        self.rules_of(&role, namespace).map(|r| r.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::apiserver::auth::Target;
    use serde_json::json;

    fn put(p: &mut Policy, key: &str, v: serde_json::Value) {
        p.apply(
            &format!("{PREFIX}{key}"),
            Some(&serde_json::to_vec(&v).unwrap()),
        );
    }

    fn user(name: &str, groups: &[&str]) -> Identity {
        Identity {
            user: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn may(p: &Policy, who: &Identity, verb: &str, ns: Option<&str>, res: &str) -> bool {
        let t = Target::Resource {
            group: "",
            resource: res,
            subresource: None,
            namespace: ns,
            name: None,
        };
        p.any_rule(who, ns, |r| r.allows(verb, &t))
    }

    #[test]
    fn bindings_grant_their_roles_to_users_groups_and_service_accounts() {
        let mut p = Policy::default();
        put(
            &mut p,
            "clusterroles/reader",
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
        );
        put(
            &mut p,
            "roles/demo/writer",
            json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]}),
        );
        put(
            &mut p,
            "rolebindings/demo/a",
            json!({"roleRef": {"kind": "ClusterRole", "name": "reader"}, "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "app"}]}),
        );
        put(
            &mut p,
            "rolebindings/demo/b",
            json!({"roleRef": {"kind": "Role", "name": "writer"}, "subjects": [{"kind": "Group", "name": "devs"}]}),
        );
        put(
            &mut p,
            "clusterrolebindings/c",
            json!({"roleRef": {"kind": "ClusterRole", "name": "reader"}, "subjects": [{"kind": "Group", "name": "auditors"}]}),
        );
        p.reindex();
        let alice = user("alice", &[]);
        assert!(may(&p, &alice, "list", Some("demo"), "pods"));
        assert!(!may(&p, &alice, "list", Some("other"), "pods"));
        assert!(!may(&p, &alice, "list", None, "pods"));
        let sa = user(
            "system:serviceaccount:demo:app",
            &["system:serviceaccounts"],
        );
        assert!(may(&p, &sa, "list", Some("demo"), "pods"));
        let dev = user("bob", &["devs"]);
        assert!(may(&p, &dev, "create", Some("demo"), "configmaps"));
        assert!(!may(&p, &dev, "create", Some("other"), "configmaps"));
        let auditor = user("carol", &["auditors"]);
        assert!(may(&p, &auditor, "list", None, "pods"));
        assert!(may(&p, &auditor, "list", Some("any"), "pods"));
        assert_eq!(p.rules_for(&dev, Some("demo")).len(), 1);

        // Deletes take effect at the next index.
        p.apply(&format!("{PREFIX}rolebindings/demo/b"), None);
        p.reindex();
        assert!(!may(&p, &dev, "create", Some("demo"), "configmaps"));
        p.apply(&format!("{PREFIX}clusterroles/reader"), None);
        assert!(!may(&p, &auditor, "list", None, "pods"));
    }

    #[test]
    fn what_does_not_decode_grants_nothing() {
        let mut p = Policy::default();
        put(
            &mut p,
            "clusterroles/r",
            json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        );
        put(
            &mut p,
            "clusterrolebindings/b",
            json!({"roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "User", "name": "u"}]}),
        );
        p.reindex();
        let u = user("u", &[]);
        assert!(may(&p, &u, "get", None, "pods"));
        p.apply(&format!("{PREFIX}clusterroles/r"), Some(b"{\"rules\": 3}"));
        assert!(!may(&p, &u, "get", None, "pods"));
    }
}
