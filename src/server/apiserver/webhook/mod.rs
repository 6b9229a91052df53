//! Dynamic admission: the webhooks of `MutatingWebhookConfiguration`s and
//! `ValidatingWebhookConfiguration`s called over HTTPS with an
//! `AdmissionReview`, as upstream's MutatingAdmissionWebhook and
//! ValidatingAdmissionWebhook plugins call them.
//!
//! - The configurations are mirrored from the store (`mirror`), read once
//!   per change into [`config::Hook`]s; a write of a configuration is
//!   answered once requests are matched against it.
//! - A write goes through the mutating webhooks after the built-in
//!   mutating admission, one after another in configuration-name order,
//!   each seeing what the ones before it changed (`reinvocationPolicy:
//!   IfNeeded` ones are called once more when a later one changed the
//!   object); what they changed has the server-owned fields reset and goes
//!   through the built-in admission again (write.rs); then through
//!   validation, the built-in validating admission and the validating
//!   webhooks, called at once. Pods' exec, attach and port-forward are
//!   CONNECTs with their options as the object.
//! - A webhook that cannot be called (down, too slow, a bad answer) fails
//!   the request when its `failurePolicy` is `Fail` (500, upstream's
//!   "failed calling webhook"), and is skipped with a log line when it is
//!   `Ignore`. A denial is the webhook's status (at least 400) with
//!   upstream's "admission webhook … denied the request" message.
//! - The configurations themselves never go through webhooks, so a broken
//!   webhook can always be removed.
//!
//! - `dispatch` calls them; `review` builds what they are sent and reads
//!   their answers; `call` is one HTTPS call; `matching` picks them.
//! - A request's webhooks share one budget (upstream's request timeout);
//!   each call is bounded by the smaller of it and the webhook's timeout.
//!
//! Not done: the subresources whose kind differs from their object's
//! (`scale`, `binding`, `eviction`) are not sent to webhooks (a rule naming
//! one gets a warning at creation); `matchConditions` (CEL) are refused at
//! creation; `matchPolicy: Equivalent` matches as `Exact` (a rule reaches
//! only the versions it names).

pub mod call;
pub mod config;
mod dispatch;
pub mod matching;
mod review;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use self::config::{Hook, Phase};
use super::mirror::Mirror;
use super::object_store::Follower;
use super::registry::ResourceDef;
use super::ApiState;
use crate::server::pki::Identity;
use crate::server::store::{self, Revision};

const PREFIX: &str = "/registry/admissionregistration.k8s.io/";
const MUTATING: &str = "mutatingwebhookconfigurations/";
const VALIDATING: &str = "validatingwebhookconfigurations/";

/// The webhooks requests are matched against.
pub struct Webhooks {
    hooks: RwLock<Arc<Hooks>>,
    follower: Arc<Follower>,
    /// What webhooks without a `caBundle` are trusted by.
    pub cluster_ca: OnceLock<String>,
}

/// Each configuration's hooks, by store key (so in name order per kind).
#[derive(Default, Clone)]
pub struct Hooks {
    by_key: BTreeMap<String, Arc<Vec<Arc<Hook>>>>,
    mutating: Vec<Arc<Hook>>,
    validating: Vec<Arc<Hook>>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            hooks: Default::default(),
            follower: Arc::new(Follower::new(PREFIX)),
            cluster_ca: OnceLock::new(),
        }
    }
}

impl Webhooks {
    /// What configuration writes wait for.
    pub fn follower(&self) -> Arc<Follower> {
        self.follower.clone()
    }

    fn hooks(&self) -> Arc<Hooks> {
        match self.hooks.read() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Mirror for Webhooks {
    type Draft = BTreeMap<String, Arc<Vec<Arc<Hook>>>>;
    const WHAT: &'static str = "the admission webhooks";

    fn follower(&self) -> &Follower {
        &self.follower
    }

    fn empty(&self) -> Self::Draft {
        BTreeMap::new()
    }

    fn current(&self) -> Self::Draft {
        self.hooks().by_key.clone()
    }

    fn apply(&self, draft: &mut Self::Draft, key: &str, value: Option<&[u8]>, _rev: Revision) {
        let Some(rest) = key.strip_prefix(PREFIX) else {
            return;
        };
        let phase = if rest.starts_with(MUTATING) {
            Phase::Mutating
        } else if rest.starts_with(VALIDATING) {
            Phase::Validating
        } else {
            return;
        };
        match value.map(serde_json::from_slice::<Value>) {
            Some(Ok(obj)) => {
                let hooks = config::read(&obj, phase)
                    .into_iter()
                    .map(Arc::new)
                    .collect();
                draft.insert(key.to_string(), Arc::new(hooks));
            }
            Some(Err(e)) => {
                tracing::error!(
                    key,
                    "stored webhook configuration is not JSON ({e}); not used"
                );
                draft.remove(key);
            }
            None => {
                draft.remove(key);
            }
        }
    }

    fn publish(&self, _state: &ApiState, by_key: Self::Draft) {
        let mut next = Hooks::default();
        for hooks in by_key.values() {
            for h in hooks.iter() {
                match h.phase {
                    Phase::Mutating => next.mutating.push(h.clone()),
                    Phase::Validating => next.validating.push(h.clone()),
                }
            }
        }
        next.by_key = by_key;
        let next = Arc::new(next);
        match self.hooks.write() {
            Ok(mut h) => *h = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

/// Load the configurations, then follow the store.
pub async fn start(state: &Arc<ApiState>) -> Result<(), store::Error> {
    super::mirror::start(state, |s: &ApiState| &s.webhooks).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// How long all the webhooks of one request may take together
/// (upstream's default request timeout, which its calls share).
pub const REQUEST_BUDGET: Duration = Duration::from_secs(60);

/// What a webhook is asked about.
pub struct Request<'a> {
    pub op: Operation,
    pub def: &'a ResourceDef,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub who: &'a Identity,
    pub dry_run: bool,
    /// The object's kind when it is not the resource's (a CONNECT's
    /// options: `PodExecOptions`).
    pub kind: Option<&'static str>,
    /// When every webhook of the request must have answered.
    pub deadline: Instant,
}

impl Request<'_> {
    /// Requests no webhook is asked about: the webhook configurations
    /// themselves (so a broken webhook can always be removed), the
    /// server's own bootstrap writes (upstream writes those to storage
    /// directly), and subresources whose kind is not their object's.
    fn exempt(&self) -> bool {
        self.def.group == matching::EXEMPT_GROUP
            || self.who.user == super::auth::BOOTSTRAP_USER
            || !self
                .subresource
                .is_none_or(|s| config::SENT_SUBRESOURCES.contains(&s))
    }
}

/// Whether any webhook of `phase` may be asked about a request on `def`
/// (cheap: lets a caller skip reading what only webhooks need).
pub fn any(state: &ApiState, phase: Phase) -> bool {
    let hooks = state.webhooks.hooks();
    match phase {
        Phase::Mutating => !hooks.mutating.is_empty(),
        Phase::Validating => !hooks.validating.is_empty(),
    }
}

pub use self::dispatch::{admit_connect, mutate, validate};
pub use self::review::connect_options;
