//! Join tokens: which secrets let a box join the cluster as a node.
//!
//! Two kinds, as under k3s: the server's own token (`<data-dir>/server/token`,
//! `K10<ca hash>::<secret>`), and bootstrap tokens made with `skiff token
//! create` — Secrets `kube-system/bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token` (upstream's format, so `kubeadm`-style
//! tools read them), joined with as `K10<ca hash>::<id>.<secret>`. A
//! bootstrap token joins while it has `usage-bootstrap-authentication:
//! "true"` and its `expiration` has not passed.

use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};

/// Where bootstrap tokens live, and what their Secrets are called and typed.
pub const NAMESPACE: &str = "kube-system";
pub const SECRET_PREFIX: &str = "bootstrap-token-";
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// A bootstrap token's `<id>.<secret>` (upstream's `[a-z0-9]{6}.[a-z0-9]{16}`).
pub fn split_bootstrap(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// The secret part of what a client sent: a full `K10<hash>::<secret>`
/// token (its hash is the client's business: it pinned our CA with it) or
/// the secret alone.
pub fn secret_part(token: &str) -> &str {
    let token = token.trim();
    match token.strip_prefix("K10").and_then(|t| t.split_once("::")) {
        Some((_, secret)) => secret,
        None => token,
    }
}

/// Equality that takes as long whatever the inputs (compared as hashes,
/// so lengths leak nothing either).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// The keys of a bootstrap token's Secret (upstream's `bootstrapapi`).
pub const ID_KEY: &str = "token-id";
pub const SECRET_KEY: &str = "token-secret";
pub const EXPIRATION_KEY: &str = "expiration";
pub const DESCRIPTION_KEY: &str = "description";
pub const GROUPS_KEY: &str = "auth-extra-groups";
/// `usage-bootstrap-<usage>: "true"` for each usage.
pub const USAGE_PREFIX: &str = "usage-bootstrap-";
/// The usages upstream knows: joining (authentication) and signing the
/// cluster-info ConfigMap (kept for kubeadm-style tools; skiff's joins
/// pin the CA by the token's hash instead).
pub const USAGES: &[&str] = &["authentication", "signing"];
/// What extra groups must look like (upstream's `BootstrapGroupPattern`).
pub const GROUP_PREFIX: &str = "system:bootstrappers:";

/// A text value of a Secret's data.
pub fn data(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// When a bootstrap token stops joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    At(chrono::DateTime<chrono::Utc>),
    /// An `expiration` that is not RFC 3339: treated as passed, as
    /// upstream does (a token nobody can read the end of is not trusted).
    Unreadable,
}

impl Expiry {
    pub fn of(secret: &Secret) -> Expiry {
        match data(secret, EXPIRATION_KEY) {
            None => Expiry::Never,
            Some(text) => match chrono::DateTime::parse_from_rfc3339(&text) {
                Ok(t) => Expiry::At(t.with_timezone(&chrono::Utc)),
                Err(_) => Expiry::Unreadable,
            },
        }
    }

    /// How long until it has passed: None never, zero when it has.
    pub fn left(self, now: chrono::DateTime<chrono::Utc>) -> Option<std::time::Duration> {
        match self {
            Expiry::Never => None,
            Expiry::Unreadable => Some(std::time::Duration::ZERO),
            Expiry::At(t) => Some((t - now).to_std().unwrap_or(std::time::Duration::ZERO)),
        }
    }
}

/// Whether `s` is a bootstrap token's id (`[a-z0-9]{6}`).
pub fn is_token_id(s: &str) -> bool {
    s.len() == 6
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Why a bootstrap token's Secret does not let it join, if it does not.
pub fn bootstrap_problem(
    secret: &Secret,
    presented: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<&'static str> {
    if secret.type_.as_deref() != Some(SECRET_TYPE) {
        return Some("not a bootstrap token");
    }
    if !data(secret, SECRET_KEY).is_some_and(|s| same_secret(&s, presented)) {
        return Some("wrong secret");
    }
    if data(secret, &format!("{USAGE_PREFIX}authentication")).as_deref() != Some("true") {
        return Some("not usable for authentication");
    }
    if Expiry::of(secret).left(now).is_some_and(|d| d.is_zero()) {
        return Some("expired");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn token_secret(data: &[(&str, &str)], type_: &str) -> Secret {
        Secret {
            type_: Some(type_.into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn tokens_are_split_as_written() {
        assert_eq!(
            split_bootstrap("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef0123456789abcdef",
            "abcde.0123456789abcdefg",
        ] {
            assert_eq!(split_bootstrap(bad), None, "{bad}");
        }
        let hash = "a".repeat(64);
        assert_eq!(secret_part(&format!("K10{hash}::s3cret\n")), "s3cret");
        assert_eq!(secret_part("s3cret"), "s3cret");
        assert!(
            same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "abcd")
        );
    }

    #[test]
    fn a_bootstrap_token_joins_while_valid_and_meant_for_it() {
        let now = chrono::Utc::now();
        let later = (now + chrono::Duration::hours(1)).to_rfc3339();
        let earlier = (now - chrono::Duration::hours(1)).to_rfc3339();
        let good = [
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
        ];
        assert_eq!(
            bootstrap_problem(&token_secret(&good, SECRET_TYPE), "0123456789abcdef", now),
            None
        );
        assert_eq!(
            bootstrap_problem(&token_secret(&good, SECRET_TYPE), "0123456789abcdee", now),
            Some("wrong secret")
        );
        assert_eq!(
            bootstrap_problem(&token_secret(&good, "Opaque"), "0123456789abcdef", now),
            Some("not a bootstrap token")
        );
        let mut timed = good.to_vec();
        timed.push(("expiration", &later));
        assert_eq!(
            bootstrap_problem(&token_secret(&timed, SECRET_TYPE), "0123456789abcdef", now),
            None
        );
        let mut old = good.to_vec();
        old.push(("expiration", &earlier));
        assert_eq!(
            bootstrap_problem(&token_secret(&old, SECRET_TYPE), "0123456789abcdef", now),
            Some("expired")
        );
        let signing_only = [
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-signing", "true"),
        ];
        assert_eq!(
            bootstrap_problem(
                &token_secret(&signing_only, SECRET_TYPE),
                "0123456789abcdef",
                now
            ),
            Some("not usable for authentication")
        );
    }
}
