//! The webhook configurations (admissionregistration.k8s.io/v1
//! `MutatingWebhookConfiguration`, `ValidatingWebhookConfiguration`):
//! their defaults and validation as upstream's, and a stored configuration
//! read into the [`Hook`]s requests are matched against.
//!
//! `ValidatingAdmissionPolicy` is served so bundles that list it get a
//! clear answer, but its rules are CEL, which skiff does not evaluate: a
//! policy is refused at creation rather than stored and silently ignored.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::api::rules::{KindRules, NameRule};
use crate::api::selector::LabelSelector;
use crate::api::status::Cause;
use crate::api::validation::causes::{self, go_str};
use crate::api::validation::{is_dns1123_subdomain, is_valid_port_num};
use crate::server::apiserver::metadata::string_list;

pub static MUTATING_RULES: KindRules = KindRules {
    name: NameRule::Subdomain,
    name_max: None,
    defaults: Some(defaults_mutating),
    validate: Some(validate_mutating),
    validate_update: None,
};

pub static VALIDATING_RULES: KindRules = KindRules {
    name: NameRule::Subdomain,
    name_max: None,
    defaults: Some(defaults_validating),
    validate: Some(validate_validating),
    validate_update: None,
};

/// `ValidatingAdmissionPolicy`: refused (CEL).
pub static POLICY_RULES: KindRules = KindRules {
    name: NameRule::Subdomain,
    name_max: None,
    defaults: None,
    validate: Some(refuse_policy),
    validate_update: None,
};

pub const OPERATIONS: &[&str] = &["*", "CREATE", "UPDATE", "DELETE", "CONNECT"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
/// Upstream's bounds on `timeoutSeconds`.
const MAX_TIMEOUT: i64 = 30;
const DEFAULT_TIMEOUT: i64 = 10;

fn refuse_policy(_obj: &Value) -> Vec<Cause> {
    vec![causes::forbidden(
        "spec.validations",
        "ValidatingAdmissionPolicy rules are CEL expressions, which skiff does not evaluate; \
         use a ValidatingWebhookConfiguration instead",
    )]
}

fn defaults_mutating(obj: &mut Value) {
    defaults(obj, true);
}

fn defaults_validating(obj: &mut Value) {
    defaults(obj, false);
}

/// Upstream's v1 defaults (`SetDefaults_*Webhook`, `SetDefaults_Rule`,
/// `SetDefaults_ServiceReference`).
fn defaults(obj: &mut Value, mutating: bool) {
    let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for hook in hooks.iter_mut() {
        let Some(h) = hook.as_object_mut() else {
            continue;
        };
        h.entry("failurePolicy").or_insert_with(|| json!("Fail"));
        h.entry("matchPolicy")
            .or_insert_with(|| json!("Equivalent"));
        h.entry("namespaceSelector").or_insert_with(|| json!({}));
        h.entry("objectSelector").or_insert_with(|| json!({}));
        h.entry("timeoutSeconds")
            .or_insert_with(|| json!(DEFAULT_TIMEOUT));
        if mutating {
            h.entry("reinvocationPolicy")
                .or_insert_with(|| json!("Never"));
        }
        if let Some(rules) = h.get_mut("rules").and_then(Value::as_array_mut) {
            for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                r.entry("scope").or_insert_with(|| json!("*"));
            }
        }
        if let Some(svc) = h
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            svc.entry("port").or_insert_with(|| json!(443));
        }
    }
}

fn validate_mutating(obj: &Value) -> Vec<Cause> {
    validate(obj, true)
}

fn validate_validating(obj: &Value) -> Vec<Cause> {
    validate(obj, false)
}

/// Upstream's `validateWebhook` checks, with its wording.
fn validate(obj: &Value, mutating: bool) -> Vec<Cause> {
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    let hooks = obj
        .get("webhooks")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, h) in hooks.iter().enumerate() {
        let at = |f: &str| format!("webhooks[{i}].{f}");
        let name = h.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            out.push(causes::required(&at("name"), ""));
        } else {
            for msg in is_dns1123_subdomain(name) {
                out.push(causes::invalid(&at("name"), &go_str(name), &msg));
            }
            if name.split('.').count() < 3 {
                out.push(causes::invalid(
                    &at("name"),
                    &go_str(name),
                    "should be a domain with at least three segments separated by dots",
                ));
            }
            if !names.insert(name) {
                out.push(causes::duplicate(&at("name"), &go_str(name)));
            }
        }
        check_rules(h, &at("rules"), &mut out);
        check_enum(h, "failurePolicy", &at, &["Fail", "Ignore"], &mut out);
        check_enum(h, "matchPolicy", &at, &["Equivalent", "Exact"], &mut out);
        if mutating {
            check_enum(
                h,
                "reinvocationPolicy",
                &at,
                &["Never", "IfNeeded"],
                &mut out,
            );
        }
        match h.get("sideEffects").and_then(Value::as_str) {
            None => out.push(causes::required(
                &at("sideEffects"),
                "must specify one of None, NoneOnDryRun",
            )),
            Some(s) if !["None", "NoneOnDryRun"].contains(&s) => out.push(causes::not_supported(
                &at("sideEffects"),
                s,
                &["None", "NoneOnDryRun"],
            )),
            Some(_) => {}
        }
        let versions: Vec<&str> = h
            .get("admissionReviewVersions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if versions.is_empty() {
            out.push(causes::required(
                &at("admissionReviewVersions"),
                "must specify one of v1, v1beta1",
            ));
        } else if !versions.iter().any(|v| REVIEW_VERSIONS.contains(v)) {
            out.push(causes::invalid(
                &at("admissionReviewVersions"),
                &go_slice(&versions),
                "must include at least one of v1, v1beta1",
            ));
        }
        if let Some(t) = h.get("timeoutSeconds").and_then(Value::as_i64) {
            if !(1..=MAX_TIMEOUT).contains(&t) {
                out.push(causes::invalid(
                    &at("timeoutSeconds"),
                    &t.to_string(),
                    "the timeout value must be between 1 and 30 seconds",
                ));
            }
        }
        for sel in ["namespaceSelector", "objectSelector"] {
            if let Some(s) = h.get(sel) {
                if let Err(e) = LabelSelector::from_label_selector_json(s) {
                    out.push(causes::invalid(&at(sel), "", &e.to_string()));
                }
            }
        }
        if h.get("matchConditions")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            out.push(causes::forbidden(
                &at("matchConditions"),
                "match conditions are CEL expressions, which skiff does not evaluate",
            ));
        }
        check_client(h.get("clientConfig"), &at("clientConfig"), &mut out);
    }
    out
}

fn go_slice(items: &[&str]) -> String {
    causes::go_string_slice(items)
}

fn check_enum(
    h: &Value,
    key: &str,
    at: &dyn Fn(&str) -> String,
    allowed: &[&str],
    out: &mut Vec<Cause>,
) {
    if let Some(v) = h.get(key).and_then(Value::as_str) {
        if !allowed.contains(&v) {
            out.push(causes::not_supported(&at(key), v, allowed));
        }
    }
}

fn check_rules(h: &Value, at: &str, out: &mut Vec<Cause>) {
    let rules = h
        .get("rules")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (j, r) in rules.iter().enumerate() {
        let field = |f: &str| format!("{at}[{j}].{f}");
        let list = |k: &str| -> Vec<&str> {
            r.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default()
        };
        let ops = list("operations");
        if ops.is_empty() {
            out.push(causes::required(&field("operations"), ""));
        }
        for (k, op) in ops.iter().enumerate() {
            if !OPERATIONS.contains(op) {
                out.push(causes::not_supported(
                    &format!("{}[{k}]", field("operations")),
                    op,
                    OPERATIONS,
                ));
            }
        }
        if ops.len() > 1 && ops.contains(&"*") {
            out.push(causes::invalid(
                &field("operations"),
                &go_slice(&ops),
                "if '*' is present, must not specify other operations",
            ));
        }
        for k in ["apiGroups", "apiVersions", "resources"] {
            let items = list(k);
            if items.is_empty() {
                out.push(causes::required(&field(k), ""));
            }
            if items.len() > 1 && items.contains(&"*") {
                out.push(causes::invalid(
                    &field(k),
                    &go_slice(&items),
                    "if '*' is present, must not specify other API groups, versions or resources",
                ));
            }
        }
        for res in list("resources") {
            if res.is_empty() || res.starts_with('/') || res.split('/').count() > 2 {
                out.push(causes::invalid(
                    &field("resources"),
                    &go_str(res),
                    "must be a resource or resource/subresource",
                ));
            }
        }
        if let Some(s) = r.get("scope").and_then(Value::as_str) {
            if !SCOPES.contains(&s) {
                out.push(causes::not_supported(&field("scope"), s, SCOPES));
            }
        }
        warn_unsent(&list("resources"), &field("resources"));
    }
}

/// A rule naming a subresource skiff never sends to webhooks gets a
/// warning, so a policy that cannot fire does not pass for one that holds.
fn warn_unsent(resources: &[&str], at: &str) {
    for res in resources {
        let Some((_, sub)) = res.split_once('/') else {
            continue;
        };
        if !SENT_SUBRESOURCES.contains(&sub) && sub != "*" {
            crate::server::apiserver::warnings::add(format!(
                "{at}: skiff does not send {res:?} requests to admission webhooks; this rule never matches"
            ));
        }
    }
}

/// The subresources whose requests go to webhooks: `status` (its kind is
/// its object's) and the CONNECTs of pods.
pub const SENT_SUBRESOURCES: &[&str] = &["status", "exec", "attach", "portforward"];

fn check_client(c: Option<&Value>, at: &str, out: &mut Vec<Cause>) {
    let c = c.unwrap_or(&Value::Null);
    let url = c.get("url").and_then(Value::as_str);
    let svc = c.get("service");
    match (url, svc) {
        (Some(_), Some(_)) | (None, None) => out.push(causes::required(
            at,
            "exactly one of url or service is required",
        )),
        (Some(u), None) => {
            if let Err(why) = parse_url(u) {
                out.push(causes::invalid(&format!("{at}.url"), &go_str(u), &why));
            }
        }
        (None, Some(s)) => {
            for k in ["namespace", "name"] {
                if s.get(k).and_then(Value::as_str).unwrap_or("").is_empty() {
                    out.push(causes::required(&format!("{at}.service.{k}"), ""));
                }
            }
            if let Some(p) = s.get("path").and_then(Value::as_str) {
                if !p.starts_with('/') {
                    out.push(causes::invalid(
                        &format!("{at}.service.path"),
                        &go_str(p),
                        "must start with a '/'",
                    ));
                }
            }
            if let Some(p) = s.get("port").and_then(Value::as_i64) {
                for msg in is_valid_port_num(p) {
                    out.push(causes::invalid(
                        &format!("{at}.service.port"),
                        &p.to_string(),
                        &format!("port is not valid: {msg}"),
                    ));
                }
            }
        }
    }
    // An empty caBundle is an absent one (charts ship `caBundle: ""` for a
    // controller to fill in).
    if let Some(ca) = c
        .get("caBundle")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    {
        if let Err(why) = ca_pem(ca) {
            out.push(causes::invalid(&format!("{at}.caBundle"), "", &why));
        }
    }
}

/// A webhook URL's parts: host (with port) and path; only `https`, with
/// neither user info, fragment nor query, as upstream.
pub fn parse_url(u: &str) -> Result<(String, String), String> {
    let uri: http::Uri = u.parse().map_err(|e| format!("{e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err("'https' is the only allowed URL scheme".into());
    }
    let Some(auth) = uri.authority() else {
        return Err("host must be specified".into());
    };
    if auth.as_str().contains('@') {
        return Err("user information is not permitted in the URL".into());
    }
    if u.contains('#') {
        return Err("fragments are not permitted in the URL".into());
    }
    if uri.query().is_some() {
        return Err("query parameters are not permitted in the URL".into());
    }
    Ok((auth.to_string(), uri.path().to_string()))
}

/// The PEM text of a base64 `caBundle`, checked to hold certificates.
pub fn ca_pem(b64: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("caBundle is not base64: {e}"))?;
    let pem = String::from_utf8(bytes).map_err(|_| "caBundle is not PEM text".to_string())?;
    crate::server::pki::client_tls_config(&pem, None)
        .map_err(|e| format!("caBundle holds no usable certificate: {e}"))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err("caBundle holds no PEM certificate".into());
    }
    Ok(pem)
}

/// Whether a webhook is called while mutating or validating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Mutating,
    Validating,
}

/// Where a webhook is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `https://<host>/<path>`.
    Url { authority: String, path: String },
    /// A Service in the cluster, reached at one of its ready endpoints.
    Service {
        namespace: String,
        name: String,
        path: String,
        port: u16,
    },
}

/// One rule of a webhook (empty lists never occur: validation refuses
/// them).
#[derive(Debug, Clone)]
pub struct Rule {
    pub operations: Vec<String>,
    pub groups: Vec<String>,
    pub versions: Vec<String>,
    pub resources: Vec<String>,
    pub scope: String,
}

/// One webhook as requests are matched against it and it is called.
pub struct Hook {
    pub name: String,
    /// The configuration it is in (calls are ordered by it).
    pub configuration: String,
    pub phase: Phase,
    pub target: Target,
    /// The PEM of its `caBundle` (`None`: the cluster's CA).
    pub ca: Option<String>,
    pub rules: Vec<Rule>,
    pub fail_open: bool,
    pub namespace_selector: LabelSelector,
    pub object_selector: LabelSelector,
    pub timeout: Duration,
    pub reinvoke: bool,
    /// The AdmissionReview version it is sent (`v1` when it takes it).
    pub review_version: &'static str,
    /// TLS settings made once per configuration revision.
    pub tls: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
}

/// The hooks of a stored configuration. A configuration that no longer
/// validates (written by an older version) keeps its readable hooks;
/// one whose target cannot be read is skipped with a log line.
pub fn read(obj: &Value, phase: Phase) -> Vec<Hook> {
    let configuration = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let hooks = obj
        .get("webhooks")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut out = Vec::new();
    for h in hooks {
        match read_hook(h, &configuration, phase) {
            Ok(hook) => out.push(hook),
            Err(why) => {
                let webhook = h.get("name").and_then(Value::as_str).unwrap_or("");
                tracing::warn!(configuration, webhook, "admission webhook not used: {why}");
            }
        }
    }
    out
}

fn read_hook(h: &Value, configuration: &str, phase: Phase) -> Result<Hook, String> {
    let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("");
    let c = h.get("clientConfig").unwrap_or(&Value::Null);
    let target = if let Some(u) = c.get("url").and_then(Value::as_str) {
        let (authority, path) = parse_url(u)?;
        Target::Url { authority, path }
    } else if let Some(svc) = c.get("service") {
        let t = |k: &str| svc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Target::Service {
            namespace: t("namespace"),
            name: t("name"),
            path: svc
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string(),
            port: svc
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(443),
        }
    } else {
        return Err("clientConfig names neither url nor service".into());
    };
    let ca = match c.get("caBundle").and_then(Value::as_str) {
        Some(b) if !b.is_empty() => Some(ca_pem(b)?),
        _ => None,
    };
    // Absent or null: upstream's default, `{}`, which matches everything.
    let selector = |k: &str| match h.get(k) {
        None | Some(Value::Null) => Ok(LabelSelector::default()),
        Some(v) => LabelSelector::from_label_selector_json(v).map_err(|e| format!("{k}: {e}")),
    };
    let versions: Vec<&str> = h
        .get("admissionReviewVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let review_version = versions
        .iter()
        .find_map(|v| REVIEW_VERSIONS.iter().find(|k| *k == v).copied())
        .ok_or("admissionReviewVersions names neither v1 nor v1beta1")?;
    let rules = h
        .get("rules")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|r| {
            let list = |k: &str| string_list(r.get(k));
            Rule {
                operations: list("operations"),
                groups: list("apiGroups"),
                versions: list("apiVersions"),
                resources: list("resources"),
                scope: r
                    .get("scope")
                    .and_then(Value::as_str)
                    .unwrap_or("*")
                    .to_string(),
            }
        })
        .collect();
    Ok(Hook {
        name: s("name").to_string(),
        configuration: configuration.to_string(),
        phase,
        target,
        ca,
        rules,
        fail_open: s("failurePolicy") == "Ignore",
        namespace_selector: selector("namespaceSelector")?,
        object_selector: selector("objectSelector")?,
        timeout: Duration::from_secs(
            h.get("timeoutSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(DEFAULT_TIMEOUT as u64)
                .clamp(1, MAX_TIMEOUT as u64),
        ),
        reinvoke: s("reinvocationPolicy") == "IfNeeded",
        review_version,
        tls: std::sync::OnceLock::new(),
    })
}

/// An object's labels (none when it has none).
pub fn labels(obj: Option<&Value>) -> Map<String, Value> {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(extra: Value) -> Value {
        let mut h = json!({
            "name": "check.example.com",
            "clientConfig": {"service": {"namespace": "ns", "name": "svc", "path": "/validate"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        });
        if let (Some(h), Some(e)) = (h.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                h.insert(k.clone(), v.clone());
            }
        }
        h
    }

    fn messages(obj: &Value) -> Vec<String> {
        validate(obj, true)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn defaults_are_upstreams() {
        let mut obj = json!({"webhooks": [hook(json!({}))]});
        defaults(&mut obj, true);
        let h = &obj["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["rules"][0]["scope"], "*");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
        assert!(messages(&obj).is_empty(), "{:?}", messages(&obj));
    }

    #[test]
    fn bad_webhooks_are_refused_with_upstreams_words() {
        let obj = json!({"webhooks": [
            hook(json!({"name": "short", "sideEffects": "Some", "timeoutSeconds": 31,
                "admissionReviewVersions": [],
                "clientConfig": {"url": "http://example.com/x"},
                "rules": [{"operations": ["CREATE", "*"], "apiGroups": [], "apiVersions": ["v1"], "resources": ["pods"], "scope": "Everywhere"}]})),
            hook(json!({"name": "check.example.com", "clientConfig": {}})),
            hook(json!({"name": "check.example.com"})),
        ]});
        let got = messages(&obj);
        let want = [
            "webhooks[0].name: Invalid value: \"short\": should be a domain with at least three segments separated by dots",
            "webhooks[0].rules[0].operations: Invalid value: []string{\"CREATE\", \"*\"}: if '*' is present, must not specify other operations",
            "webhooks[0].rules[0].apiGroups: Required value",
            "webhooks[0].rules[0].scope: Unsupported value: \"Everywhere\": supported values: \"*\", \"Cluster\", \"Namespaced\"",
            "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
            "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
            "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
            "webhooks[0].clientConfig.url: Invalid value: \"http://example.com/x\": 'https' is the only allowed URL scheme",
            "webhooks[1].clientConfig: Required value: exactly one of url or service is required",
            "webhooks[2].name: Duplicate value: \"check.example.com\"",
        ];
        for w in want {
            assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
    }

    #[test]
    fn a_stored_configuration_reads_into_hooks() {
        let mut obj = json!({"metadata": {"name": "c"}, "webhooks": [hook(json!({"failurePolicy": "Ignore", "timeoutSeconds": 3}))]});
        defaults(&mut obj, true);
        let hooks = read(&obj, Phase::Mutating);
        assert_eq!(hooks.len(), 1);
        let h = &hooks[0];
        assert!(h.fail_open);
        assert_eq!(h.timeout, Duration::from_secs(3));
        assert_eq!(
            h.target,
            Target::Service {
                namespace: "ns".into(),
                name: "svc".into(),
                path: "/validate".into(),
                port: 443
            }
        );
        assert_eq!(h.review_version, "v1");
        assert_eq!(h.configuration, "c");
    }

    #[test]
    fn urls_must_be_plain_https() {
        assert_eq!(
            parse_url("https://hook.example.com:8443/mutate").unwrap(),
            ("hook.example.com:8443".into(), "/mutate".into())
        );
        assert!(parse_url("https://u:p@example.com/").is_err());
        assert!(parse_url("https://example.com/?a=b").is_err());
        assert!(parse_url("https://example.com/#f").is_err());
        assert!(parse_url("ftp://example.com/").is_err());
    }

    #[test]
    fn policies_are_refused_for_cel() {
        let c = refuse_policy(&json!({}));
        assert!(c[0].message.contains("CEL"), "{c:?}");
    }
}
