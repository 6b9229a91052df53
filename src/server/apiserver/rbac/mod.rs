//! Role-based access control (rbac.authorization.k8s.io/v1) as upstream's
//! RBAC authorizer decides: a request is allowed when a rule of a role
//! bound to the caller (its user name, any of its groups; service accounts
//! by their `system:serviceaccount:<ns>:<name>` user) allows its verb on
//! its resource or path, in its namespace or cluster-wide.
//!
//! The policy is a cache of the four RBAC resources fed by the store's
//! watch (`follow`), swapped whole after each batch of changes so a
//! decision reads one consistent snapshot without a lock held across it.
//! Writes of RBAC objects are answered once the cache has them
//! (`object_store::Follower`).

pub mod escalation;
mod follow;
pub mod policy;
pub mod rule;

use std::sync::{Arc, RwLock};

use self::policy::Policy;
use super::auth::Target;
use super::object_store::Follower;
use crate::server::pki::Identity;

pub use self::follow::start;

pub struct Rbac {
    policy: RwLock<Arc<Policy>>,
    follower: Arc<Follower>,
}

impl Default for Rbac {
    fn default() -> Self {
        Rbac {
            policy: Default::default(),
            follower: Arc::new(Follower::new(policy::PREFIX)),
        }
    }
}

impl Rbac {
    /// What RBAC writes wait for; give it to the objects they go through.
    pub fn follower(&self) -> Arc<Follower> {
        self.follower.clone()
    }

    /// The policy as of now.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, next: Policy) {
        let next = Arc::new(next);
        match self.policy.write() {
            Ok(mut p) => *p = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// A policy of `objects` (Roles, ClusterRoles and their bindings), for
    /// tests of decisions.
    #[cfg(test)]
    pub fn of(objects: &[serde_json::Value]) -> Rbac {
        let rbac = Rbac::default();
        let mut p = Policy::default();
        for o in objects {
            let plural = match o["kind"].as_str().unwrap_or_default() {
                "Role" => "roles",
                "ClusterRole" => "clusterroles",
                "RoleBinding" => "rolebindings",
                _ => "clusterrolebindings",
            };
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            let key = match o["metadata"]["namespace"].as_str() {
                Some(ns) => format!("{}{plural}/{ns}/{name}", policy::PREFIX),
                None => format!("{}{plural}/{name}", policy::PREFIX),
            };
            p.apply(&key, serde_json::to_vec(o).ok().as_deref());
        }
        p.reindex();
        rbac.replace(p);
        rbac
    }

    /// Whether a role bound to `who` lets it do `verb` to `target`.
    pub fn allows(&self, who: &Identity, verb: &str, target: &Target<'_>) -> bool {
        let namespace = match target {
            Target::Resource { namespace, .. } => *namespace,
            Target::Path(_) => None,
        };
        self.policy()
            .any_rule(who, namespace, |rule| rule.allows(verb, target))
    }
}
