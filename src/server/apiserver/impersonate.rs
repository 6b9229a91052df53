//! User impersonation (`kubectl --as`, `--as-group`, `--as-uid`): a caller
//! allowed the `impersonate` verb on a user (or service account), on each
//! group, uid and extra value it names acts as that identity for the rest
//! of the request, as upstream's impersonation filter does.
//!
//! Headers: `Impersonate-User`, `Impersonate-Group` (repeated),
//! `Impersonate-Uid`, `Impersonate-Extra-<key>` (repeated). Uid and extra
//! are checked like the rest but not carried further: nothing in skiff
//! decides on them yet.

use http::HeaderMap;

use super::auth::{self, Target};
use super::rbac::Rbac;
use super::serviceaccount;
use crate::api::status::ApiError;
use crate::server::pki::Identity;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";

/// How many groups and extra values one request may ask for: each is an
/// authorization decision.
const MAX_ASKED: usize = 64;

fn text<'h>(v: &'h http::HeaderValue, header: &str) -> Result<&'h str, ApiError> {
    v.to_str()
        .map_err(|_| ApiError::bad_request(format!("the {header} header is not valid text")))
}

/// An extra key as upstream reads it from a header name: percent-decoded.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who the request acts as: `who` itself when it asks for no one else,
/// else the identity it impersonates once every part of that is allowed.
pub fn resolve(rbac: &Rbac, who: Identity, headers: &HeaderMap) -> Result<Identity, ApiError> {
    // An empty value asks for no one, as upstream reads it.
    let user = headers
        .get(USER)
        .map(|v| text(v, "Impersonate-User"))
        .transpose()?
        .filter(|u| !u.is_empty());
    let groups = headers
        .get_all(GROUP)
        .iter()
        .map(|v| text(v, "Impersonate-Group"))
        .collect::<Result<Vec<_>, _>>()?;
    let uid = headers
        .get(UID)
        .map(|v| text(v, "Impersonate-Uid"))
        .transpose()?;
    let mut extra = Vec::new();
    for (name, v) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA) {
            extra.push((unescape(key), text(v, name.as_str())?));
        }
    }
    let Some(user) = user else {
        if groups.is_empty() && uid.is_none() && extra.is_empty() {
            return Ok(who);
        }
        return Err(ApiError::bad_request(
            "impersonating groups, a uid or extra values needs Impersonate-User as well",
        ));
    };
    if groups.len() + extra.len() > MAX_ASKED {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_ASKED} groups and extra values may be impersonated at once"
        )));
    }
    let check = |target: Target<'_>| auth::authorize(rbac, &who, "impersonate", &target);
    let sa = serviceaccount::parse_user(user);
    match sa {
        Some((ns, name)) => check(Target::Resource {
            group: "",
            resource: "serviceaccounts",
            subresource: None,
            namespace: Some(ns),
            name: Some(name),
        })?,
        None => check(Target::Resource {
            group: "",
            resource: "users",
            subresource: None,
            namespace: None,
            name: Some(user),
        })?,
    }
    for g in &groups {
        check(Target::Resource {
            group: "",
            resource: "groups",
            subresource: None,
            namespace: None,
            name: Some(g),
        })?;
    }
    if let Some(uid) = uid {
        check(Target::Resource {
            group: "authentication.k8s.io",
            resource: "uids",
            subresource: None,
            namespace: None,
            name: Some(uid),
        })?;
    }
    for (key, value) in &extra {
        check(Target::Resource {
            group: "authentication.k8s.io",
            resource: "userextras",
            subresource: Some(key),
            namespace: None,
            name: Some(value),
        })?;
    }
    let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    // A service account without groups asked for gets its own, as
    // upstream's.
    if groups.is_empty() {
        if let Some((ns, name)) = sa {
            groups = serviceaccount::identity(ns, name).groups;
        }
    }
    let acting = Identity {
        user: user.to_string(),
        groups,
    };
    tracing::debug!(user = %who.user, as_user = %acting.user, "impersonating");
    // Upstream's rule: anyone but the anonymous user (or whoever is asked
    // for as unauthenticated) is authenticated.
    let anonymous = acting.user == "system:anonymous"
        || acting.groups.iter().any(|g| g == "system:unauthenticated");
    Ok(if anonymous {
        acting
    } else {
        auth::authenticated(acting)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn alice() -> Identity {
        auth::authenticated(Identity {
            user: "alice".into(),
            groups: vec![],
        })
    }

    fn policy(rules: serde_json::Value) -> Rbac {
        Rbac::of(&[
            json!({"kind": "ClusterRole", "metadata": {"name": "imp"}, "rules": rules}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "imp"},
                   "roleRef": {"kind": "ClusterRole", "name": "imp"},
                   "subjects": [{"kind": "User", "name": "alice"}]}),
        ])
    }

    #[test]
    fn impersonation_needs_the_verb_on_each_part() {
        let none = policy(json!([]));
        let asks = headers(&[("Impersonate-User", "bob")]);
        let e = resolve(&none, alice(), &asks).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
        );
        let users = policy(
            json!([{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["bob"]}]),
        );
        let bob = resolve(&users, alice(), &asks).unwrap();
        assert_eq!(bob.user, "bob");
        assert_eq!(bob.groups, ["system:authenticated"]);
        let with_group = headers(&[("Impersonate-User", "bob"), ("Impersonate-Group", "admins")]);
        let e = resolve(&users, alice(), &with_group).unwrap_err();
        assert!(
            e.message.starts_with(r#"groups "admins" is forbidden"#),
            "{}",
            e.message
        );
        let both = policy(
            json!([{"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}]),
        );
        let acting = resolve(&both, alice(), &with_group).unwrap();
        assert_eq!(acting.groups, ["admins", "system:authenticated"]);
    }

    #[test]
    fn a_service_account_is_impersonated_in_its_namespace_with_its_groups() {
        let sa = policy(
            json!([{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}]),
        );
        let asks = headers(&[("Impersonate-User", "system:serviceaccount:demo:app")]);
        let acting = resolve(&sa, alice(), &asks).unwrap();
        assert_eq!(
            acting.groups,
            serviceaccount::identity("demo", "app").groups,
        );
        // Users alone do not grant it.
        let users =
            policy(json!([{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}]));
        assert!(resolve(&users, alice(), &asks).is_err());
    }

    #[test]
    fn groups_without_a_user_and_no_headers() {
        let none = policy(json!([]));
        assert_eq!(resolve(&none, alice(), &HeaderMap::new()).unwrap(), alice());
        let e = resolve(&none, alice(), &headers(&[("Impersonate-Group", "x")])).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(unescape("example.com%2fteam"), "example.com/team");
        assert_eq!(unescape("a%zz%2"), "a%zz%2");
    }
}
