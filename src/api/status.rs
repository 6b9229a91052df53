//! Kubernetes `Status` errors: every failure the API returns is one of these,
//! with the HTTP code, the machine-readable reason and a message a person can
//! act on (kubectl prints `Error from server (<Reason>): <message>`).

use std::borrow::Cow;

use serde_json::{json, Value};

/// How much of what a client sent an error may echo back. The apiserver
/// echoes a bad name in the message, `details.name` and every cause, and a
/// request may carry megabytes: without bounds one bad request makes a
/// response many times its size (a 3 MiB create gave 16 MB back). Names are
/// at most 253 bytes when valid, so 256 shows every valid one whole.
const MAX_ECHO_NAME: usize = 256;
/// Per cause message: the rule it breaks plus a good part of the value.
const MAX_CAUSE_MESSAGE: usize = 512;
/// Causes listed; the rest are counted in the message.
const MAX_CAUSES: usize = 50;
/// The whole message, whatever built it.
const MAX_MESSAGE: usize = 16 * 1024;

/// Room kept for the note of what was left out.
const OMITTED_NOTE: usize = 40;

/// `s` cut (at a character boundary) to at most `max` bytes including a note
/// of how much was left out, or `s` itself when it fits. Cutting again does
/// nothing.
pub fn truncate_echo(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max.saturating_sub(OMITTED_NOTE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...(omitted {} bytes)", &s[..end], s.len() - end))
}

/// One cause of an `Invalid` (422) or other detailed error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// e.g. `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`.
    pub reason: String,
    pub message: String,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
}

/// A Kubernetes API error, rendered as a `Status` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details.group`, `details.kind`, `details.name` where known.
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `resource.group` as the apiserver names things in messages
/// (`deployments.apps "web" not found`, `configmaps "x" not found`).
pub fn qualified_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            group: None,
            kind: None,
            name: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    /// 404 NotFound.
    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }

    /// 409 Conflict: a write lost a compare-and-swap or failed a
    /// precondition; read again and retry. Not the same 409 as AlreadyExists.
    pub fn is_conflict(&self) -> bool {
        self.code == 409 && self.reason == "Conflict"
    }

    /// 409 AlreadyExists: a create found the name taken.
    pub fn is_already_exists(&self) -> bool {
        self.code == 409 && self.reason == "AlreadyExists"
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.group = Some(group.to_string());
        self.kind = Some(kind.to_string());
        self.name = Some(truncate_echo(name, MAX_ECHO_NAME).into_owned());
        self
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let name = &truncate_echo(name, MAX_ECHO_NAME);
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified_resource(group, plural)),
        )
        .with_details(group, plural, name)
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let name = &truncate_echo(name, MAX_ECHO_NAME);
        Self::new(
            409,
            "AlreadyExists",
            format!(
                "{} \"{name}\" already exists",
                qualified_resource(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let name = &truncate_echo(name, MAX_ECHO_NAME);
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified_resource(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    /// 422 with one cause per problem, as `kubectl` prints them.
    pub fn invalid(group: &str, kind: &str, name: &str, mut causes: Vec<Cause>) -> Self {
        let name = &truncate_echo(name, MAX_ECHO_NAME);
        let more = causes.len().saturating_sub(MAX_CAUSES);
        causes.truncate(MAX_CAUSES);
        for c in &mut causes {
            if let Cow::Owned(short) = truncate_echo(&c.message, MAX_CAUSE_MESSAGE) {
                c.message = short;
            }
            if let Cow::Owned(short) = truncate_echo(&c.field, MAX_ECHO_NAME) {
                c.field = short;
            }
        }
        // The message lists as many causes as fit in its bound; the count of
        // the rest closes it.
        let mut list: Vec<String> = Vec::new();
        let mut len = 0;
        let mut more = more;
        for (i, c) in causes.iter().enumerate() {
            let line = if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            };
            len += line.len() + 2;
            if len > MAX_MESSAGE - 1024 {
                more += causes.len() - i;
                break;
            }
            list.push(line);
        }
        if more > 0 {
            list.push(format!("and {more} more errors"));
        }
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        // The apiserver says `Deployment.apps "x" is invalid`: kind.group.
        let message = if group.is_empty() {
            format!("{kind} \"{name}\" is invalid: {joined}")
        } else {
            format!("{kind}.{group} \"{name}\" is invalid: {joined}")
        };
        let mut e = Self::new(422, "Invalid", message).with_details(group, kind, name);
        e.causes = causes;
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// `NewForbidden`: a write refused by admission, naming the object.
    pub fn forbidden_object(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let shown = truncate_echo(name, MAX_ECHO_NAME);
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{shown}\" is forbidden: {why}",
                qualified_resource(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    pub fn method_not_supported(what: &str, verb: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{what} does not support the {verb} operation"),
        )
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Gone", message)
    }

    /// A watch or list from a compacted resourceVersion.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// The client did not send its request body in time (the connection
    /// layer's body deadline).
    pub fn body_timeout() -> Self {
        Self::new(
            408,
            "Timeout",
            "the request body did not arrive in time; send it without pauses, or a smaller one",
        )
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.causes.push(cause);
        self
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": truncate_echo(&self.message, MAX_MESSAGE),
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.name {
            details.insert("name".into(), json!(truncate_echo(n, MAX_ECHO_NAME)));
        }
        if let Some(g) = &self.group {
            if !g.is_empty() {
                details.insert("group".into(), json!(g));
            }
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            // Causes added one by one (`with_cause`) are bounded here too.
            let causes: Vec<Value> = self
                .causes
                .iter()
                .take(MAX_CAUSES)
                .map(|c| {
                    json!({
                        "reason": c.reason,
                        "message": truncate_echo(&c.message, MAX_CAUSE_MESSAGE),
                        "field": truncate_echo(&c.field, MAX_ECHO_NAME),
                    })
                })
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(s) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(s));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// A `Status` reporting success (e.g. for deletecollection or exec ends).
pub fn success_status(details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_matches_apiserver() {
        let e = ApiError::not_found("apps", "deployments", "web");
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"]["group"], "apps");
        let e = ApiError::not_found("", "configmaps", "nosuch");
        assert_eq!(e.message, "configmaps \"nosuch\" not found");
        assert!(e.to_status()["details"].get("group").is_none());
    }

    #[test]
    fn invalid_lists_every_cause() {
        let e = ApiError::invalid(
            "",
            "ConfigMap",
            "Bad_Name",
            vec![
                Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain".into(),
                    field: "metadata.name".into(),
                },
                Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "data".into(),
                },
            ],
        );
        assert_eq!(e.code, 422);
        assert!(e
            .message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: [metadata.name: "));
        assert_eq!(
            e.to_status()["details"]["causes"]
                .as_array()
                .map(|a| a.len()),
            Some(2)
        );
    }

    #[test]
    fn echoes_are_bounded() {
        let huge = "\u{1}".repeat(3 << 20);
        let long = "\u{1}".repeat(4096);
        let causes: Vec<Cause> = (0..1000)
            .map(|i| Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {long:?}"),
                field: format!("metadata.labels[{i}]"),
            })
            .collect();
        let e = ApiError::invalid("", "ConfigMap", &huge, causes);
        let body = serde_json::to_vec(&e.to_status()).unwrap();
        assert!(body.len() < 256 * 1024, "{} bytes", body.len());
        let s = e.to_status();
        assert_eq!(s["details"]["causes"].as_array().unwrap().len(), MAX_CAUSES);
        let message = s["message"].as_str().unwrap();
        assert!(message.len() <= MAX_MESSAGE, "{}", message.len());
        assert!(message.ends_with(" more errors]"), "{message}");
        let name = s["details"]["name"].as_str().unwrap();
        assert!(name.len() <= MAX_ECHO_NAME, "{}", name.len());
        assert!(name.ends_with(&format!(
            "...(omitted {} bytes)",
            (3 << 20) - (MAX_ECHO_NAME - OMITTED_NOTE)
        )));
        // A cut never splits a character.
        let s = format!("a{}", "é".repeat(100));
        assert_eq!(truncate_echo(&s, 42), "a...(omitted 200 bytes)");
        assert_eq!(truncate_echo("short", 256), "short");
    }
}
