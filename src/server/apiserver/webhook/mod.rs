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
pub mod matching;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Map, Value};

use self::config::{Hook, Phase};
use super::mirror::Mirror;
use super::object_store::Follower;
use super::registry::ResourceDef;
use super::ApiState;
use crate::api::status::ApiError;
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

/// The mutating webhooks that match, called in order on `obj` (`None` for
/// a delete); returns whether they changed it.
pub async fn mutate(
    state: &ApiState,
    req: &Request<'_>,
    mut obj: Option<&mut Value>,
    old: Option<&Value>,
) -> Result<bool, ApiError> {
    if req.exempt() {
        return Ok(false);
    }
    let all = state.webhooks.hooks();
    if all.mutating.is_empty() {
        return Ok(false);
    }
    let mut ns_labels = None;
    let mut changed_at = None;
    let mut reinvocable = Vec::new();
    for (i, hook) in all.mutating.iter().enumerate() {
        if !matches(state, hook, req, obj.as_deref(), old, &mut ns_labels).await? {
            continue;
        }
        if call_mutating(state, hook, req, obj.as_deref_mut(), old).await? {
            changed_at = Some(i);
        }
        if hook.reinvoke {
            reinvocable.push(i);
        }
    }
    let changed = changed_at.is_some();
    // Called once more: the IfNeeded webhooks that ran before the last
    // change (upstream's reinvocation, webhooks only).
    if let Some(last) = changed_at {
        for i in reinvocable.into_iter().filter(|i| *i < last) {
            let hook = &all.mutating[i];
            if matches(state, hook, req, obj.as_deref(), old, &mut ns_labels).await? {
                call_mutating(state, hook, req, obj.as_deref_mut(), old).await?;
            }
        }
    }
    Ok(changed)
}

/// The validating webhooks that match, called at once; the first to deny
/// (in configuration order) is the answer.
pub async fn validate(
    state: &ApiState,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if req.exempt() {
        return Ok(());
    }
    let all = state.webhooks.hooks();
    if all.validating.is_empty() {
        return Ok(());
    }
    let mut ns_labels = None;
    let mut called = Vec::new();
    for hook in all.validating.iter() {
        if matches(state, hook, req, obj, old, &mut ns_labels).await? {
            called.push(hook.clone());
        }
    }
    let answers =
        futures::future::join_all(called.iter().map(|h| ask(state, h, req, obj, old))).await;
    for (hook, answer) in called.iter().zip(answers) {
        match answer {
            Ok(Some(response)) => denied(hook, &response)?,
            Ok(None) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `hook` is asked about the request: its rules, then its
/// selectors (the namespace's labels read once per request).
async fn matches(
    state: &ApiState,
    hook: &Hook,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
    ns_labels: &mut Option<Map<String, Value>>,
) -> Result<bool, ApiError> {
    if !matching::rules_match(hook, req) || !matching::object_matches(hook, obj, old) {
        return Ok(false);
    }
    if !matching::needs_namespace(hook, req) {
        return Ok(true);
    }
    if ns_labels.is_none() {
        *ns_labels = Some(namespace_labels(state, req, obj, old).await?);
    }
    Ok(ns_labels
        .as_ref()
        .is_some_and(|l| matching::namespace_matches(hook, l)))
}

/// The labels of the request's namespace; for a namespace itself, of the
/// object being written (or deleted).
async fn namespace_labels(
    state: &ApiState,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<Map<String, Value>, ApiError> {
    if matching::is_namespace(req) {
        return Ok(config::labels(obj.or(old)));
    }
    let ns = req.namespace.unwrap_or("");
    let def = state
        .registry
        .find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces are not served"))?;
    match state.objects.get(def, None, ns).await? {
        Some(stored) => Ok(config::labels(Some(&stored.obj))),
        None => Err(ApiError::not_found("", "namespaces", ns)),
    }
}

/// Call a mutating webhook and apply its patch; whether it changed `obj`.
async fn call_mutating(
    state: &ApiState,
    hook: &Hook,
    req: &Request<'_>,
    obj: Option<&mut Value>,
    old: Option<&Value>,
) -> Result<bool, ApiError> {
    let Some(response) = ask(state, hook, req, obj.as_deref(), old).await? else {
        return Ok(false);
    };
    denied(hook, &response)?;
    // A CONNECT's options are read from the request, not from the object.
    if req.op == Operation::Connect {
        return Ok(false);
    }
    let patch = response.get("patch").and_then(Value::as_str).unwrap_or("");
    let patch_type = response.get("patchType").and_then(Value::as_str);
    if patch.is_empty() {
        return Ok(false);
    }
    let failed = |why: String| -> Result<bool, ApiError> {
        fail(
            hook,
            format!("failed calling webhook {:?}: {why}", hook.name),
        )
    };
    if patch_type.is_some_and(|t| t != "JSONPatch") {
        return failed(format!(
            "unsupported patch type {:?}",
            patch_type.unwrap_or("")
        ));
    }
    let ops: json_patch::Patch = match base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(ops) => ops,
        Err(e) => {
            return failed(format!(
                "received undecodable patch in webhook response: {e}"
            ))
        }
    };
    if ops.0.is_empty() {
        return Ok(false);
    }
    let Some(obj) = obj else {
        return Err(ApiError::internal(format!(
            "Internal error occurred: admission webhook {:?} attempted to modify the object, which is not supported for this operation",
            hook.name
        )));
    };
    let mut patched = obj.clone();
    super::patch::apply_json_patch(&mut patched, &ops.0, req.name)
        .map_err(|e| ApiError::internal(format!("Internal error occurred: {}", e.message)))?;
    for (ptr, what) in [
        ("/apiVersion", "apiVersion"),
        ("/kind", "kind"),
        ("/metadata/name", "metadata.name"),
        ("/metadata/namespace", "metadata.namespace"),
    ] {
        if patched.pointer(ptr) != obj.pointer(ptr) {
            return Err(ApiError::internal(format!(
                "Internal error occurred: admission webhook {:?} attempted to change {what}, which is not supported",
                hook.name
            )));
        }
    }
    // As upstream's decode into the kind: unknown fields go, defaults are set.
    super::crd::prune_and_default(req.def, &mut patched);
    let changed = patched != *obj;
    *obj = patched;
    Ok(changed)
}

/// A denial in `response` as upstream's ToStatusErr words it.
fn denied(hook: &Hook, response: &Value) -> Result<(), ApiError> {
    if response.get("allowed").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let status = response.get("status").unwrap_or(&Value::Null);
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400);
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let denied_by = format!("admission webhook {:?} denied the request", hook.name);
    let text = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    Err(ApiError::new(code, status_reason(reason, code), text))
}

/// The webhook's reason when it is one of the API's, else the code's.
fn status_reason(reason: &str, code: u16) -> &'static str {
    const KNOWN: &[&str] = &[
        "BadRequest",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    if let Some(k) = KNOWN.iter().find(|k| **k == reason) {
        return k;
    }
    match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Gone",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ if code >= 500 => "InternalError",
        _ => "BadRequest",
    }
}

/// A failed call: the request fails (500) unless the webhook fails open.
fn fail<T: Default>(hook: &Hook, why: String) -> Result<T, ApiError> {
    if hook.fail_open {
        tracing::warn!(webhook = %hook.name, "failed calling webhook, failing open: {why}");
        return Ok(T::default());
    }
    tracing::warn!(webhook = %hook.name, "failed calling webhook, failing closed: {why}");
    Err(ApiError::internal(format!(
        "Internal error occurred: {why}"
    )))
}

/// Ask `hook` about the request; its `response` (`None`: it could not be
/// asked and fails open). Warnings it gives go to the client.
async fn ask(
    state: &ApiState,
    hook: &Hook,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<Option<Value>, ApiError> {
    // v1 accepts only webhooks whose sideEffects let them be called on a
    // dry run (None, NoneOnDryRun): nothing to refuse here.
    let left = req.deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ApiError::timeout(
            "request did not complete within requested timeout",
        ));
    }
    let uid = uuid::Uuid::new_v4().to_string();
    let review = review(hook, req, obj, old, &uid);
    match call::call(state, hook, &review, &uid, hook.timeout.min(left)).await {
        Ok(response) => {
            if let Err(why) = check_patch_fields(hook, &response) {
                return fail(
                    hook,
                    format!(
                        "failed calling webhook {:?}: received invalid webhook response: {why}",
                        hook.name
                    ),
                );
            }
            for w in response
                .get("warnings")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(Value::as_str)
                .take(16)
            {
                super::warnings::add(w.to_string());
            }
            Ok(Some(response))
        }
        Err(call::CallError(why)) => fail(
            hook,
            format!("failed calling webhook {:?}: {why}", hook.name),
        ),
    }
}

/// Upstream's checks of a response's patch fields: only mutating webhooks
/// patch, and a v1 one says how.
fn check_patch_fields(hook: &Hook, response: &Value) -> Result<(), &'static str> {
    let patch = response
        .get("patch")
        .and_then(Value::as_str)
        .is_some_and(|p| !p.is_empty());
    let patch_type = response.get("patchType").is_some_and(|t| !t.is_null());
    match hook.phase {
        Phase::Validating if patch => Err("validating webhook may not return response.patch"),
        Phase::Validating if patch_type => {
            Err("validating webhook may not return response.patchType")
        }
        Phase::Mutating if hook.review_version == "v1" && patch && !patch_type => {
            Err("webhook returned response.patch but not response.patchType")
        }
        _ => Ok(()),
    }
}

/// The AdmissionReview sent (upstream's CreateV1AdmissionReview).
fn review(
    hook: &Hook,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
    uid: &str,
) -> Value {
    let def = req.def;
    let kind =
        json!({"group": def.group, "version": def.version, "kind": req.kind.unwrap_or(def.kind)});
    let resource = json!({"group": def.group, "version": def.version, "resource": def.plural});
    let options = match req.op {
        Operation::Create => json!({"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}),
        Operation::Update => json!({"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}),
        Operation::Delete => json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"}),
        Operation::Connect => Value::Null,
    };
    let mut r = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": req.name,
        "operation": req.op.as_str(),
        "userInfo": {"username": req.who.user, "groups": req.who.groups},
        "object": obj,
        "oldObject": old,
        "dryRun": req.dry_run,
        "options": options,
    });
    if let Some(sub) = req.subresource {
        r["subResource"] = json!(sub);
        r["requestSubResource"] = json!(sub);
    }
    // A namespace's own requests carry its name as their namespace.
    if let Some(ns) = req
        .namespace
        .or(matching::is_namespace(req).then_some(req.name))
    {
        r["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": format!("admission.k8s.io/{}", hook.review_version),
        "kind": "AdmissionReview",
        "request": r,
    })
}

/// The kind and object a pod CONNECT (`exec`, `attach`, `portforward`) is
/// sent to webhooks as, read from its query; `None` for other subresources.
pub fn connect_options(sub: &str, query: &[(String, String)]) -> Option<(&'static str, Value)> {
    let flag = |k: &str| {
        query
            .iter()
            .any(|(q, v)| q == k && matches!(v.as_str(), "true" | "1"))
    };
    let one = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let all = |k: &str| -> Vec<&str> {
        query
            .iter()
            .filter(|(q, _)| q == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let streams = |kind: &str| {
        let mut o = json!({
            "kind": kind, "apiVersion": "v1",
            "stdin": flag("stdin"), "stdout": flag("stdout"),
            "stderr": flag("stderr"), "tty": flag("tty"),
        });
        if let Some(c) = one("container") {
            o["container"] = json!(c);
        }
        o
    };
    match sub {
        "exec" => {
            let mut o = streams("PodExecOptions");
            o["command"] = json!(all("command"));
            Some(("PodExecOptions", o))
        }
        "attach" => Some(("PodAttachOptions", streams("PodAttachOptions"))),
        "portforward" => {
            let ports: Vec<i64> = all("ports")
                .iter()
                .flat_map(|p| p.split(','))
                .filter_map(|p| p.trim().parse().ok())
                .collect();
            Some((
                "PodPortForwardOptions",
                json!({"kind": "PodPortForwardOptions", "apiVersion": "v1", "ports": ports}),
            ))
        }
        _ => None,
    }
}

/// A pod CONNECT through the webhooks (mutating ones may deny it, not
/// change it).
pub async fn admit_connect(
    state: &ApiState,
    req: &Request<'_>,
    options: &mut Value,
) -> Result<(), ApiError> {
    mutate(state, req, Some(options), None).await?;
    validate(state, req, Some(options), None).await
}
