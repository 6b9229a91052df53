//! Keeping the RBAC policy current: the four RBAC resources mirrored from
//! the store (`mirror`), the policy swapped whole after each batch of
//! changes.

use std::sync::Arc;

use super::policy::Policy;
use super::Rbac;
use crate::server::apiserver::mirror::{self, Mirror};
use crate::server::apiserver::object_store::Follower;
use crate::server::apiserver::ApiState;
use crate::server::store::{self, Revision};

impl Mirror for Rbac {
    type Draft = Policy;
    const WHAT: &'static str = "the RBAC policy";

    fn follower(&self) -> &Follower {
        &self.follower
    }

    fn empty(&self) -> Policy {
        Policy::default()
    }

    fn current(&self) -> Policy {
        Policy::clone(&self.policy())
    }

    fn apply(&self, policy: &mut Policy, key: &str, value: Option<&[u8]>, _rev: Revision) {
        policy.apply(key, value);
    }

    fn publish(&self, _state: &ApiState, mut policy: Policy) {
        policy.reindex();
        self.replace(policy);
    }
}

/// Load the policy, then follow the store in a task that ends with the
/// store. Returns once the policy is loaded: requests are decided on it.
pub async fn start(state: &Arc<ApiState>) -> Result<(), store::Error> {
    mirror::start(state, |s: &ApiState| &s.rbac).await
}
