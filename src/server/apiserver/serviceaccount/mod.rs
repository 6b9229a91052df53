//! ServiceAccount tokens, server side, as kube-apiserver does them:
//!
//! - `jwt`: the bound token itself (ES256 JWS, upstream's claims), signed
//!   and checked with the key of `pki::ServiceAccountKey`;
//! - `token_request`: `POST …/serviceaccounts/<name>/token` (TokenRequest),
//!   what `kubectl create token` and a node's agent call;
//! - `authn`: the bearer-token authenticator — signature, time, issuer and
//!   audience, then the service account and the object the token is bound
//!   to must still exist with the uids it names; verified tokens are
//!   remembered for a few seconds;
//! - `review`: TokenReview and SelfSubjectReview (`kubectl auth whoami`).
//!
//! Tokens are never logged: errors and traces name the service account,
//! never the token.

pub mod authn;
pub mod jwt;
pub mod review;
pub mod token_request;

use crate::server::pki::{Identity, ServiceAccountKey};

/// The issuer (`iss`) of the tokens, and the API server's one audience
/// (upstream's default `--service-account-issuer` with cluster.local).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// `system:serviceaccount:<namespace>:<name>`.
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// Every service account is in this group …
pub const ALL_GROUP: &str = "system:serviceaccounts";
/// … and in `system:serviceaccounts:<namespace>`, and in this one.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// A TokenRequest's `expirationSeconds` when it gives none (upstream's
/// defaulting).
pub const DEFAULT_EXPIRATION_SECS: i64 = 3600;
/// The least a TokenRequest may ask for (upstream's validation).
pub const MIN_EXPIRATION_SECS: i64 = 600;
/// The most a TokenRequest may ask for before it is refused (upstream's
/// validation: 2^32).
pub const MAX_VALID_EXPIRATION_SECS: i64 = 1 << 32;
/// Longer requests are shortened to this, with a warning (upstream's
/// `--service-account-max-token-expiration`, unset there; a day here).
pub const MAX_EXPIRATION_SECS: i64 = 24 * 3600;

/// The user name of service account `name` in `namespace`.
pub fn username(namespace: &str, name: &str) -> String {
    format!("{USER_PREFIX}{namespace}:{name}")
}

/// The identity of a service account, with upstream's groups.
pub fn identity(namespace: &str, name: &str) -> Identity {
    Identity {
        user: username(namespace, name),
        groups: vec![
            ALL_GROUP.to_string(),
            format!("{ALL_GROUP}:{namespace}"),
            AUTHENTICATED_GROUP.to_string(),
        ],
    }
}

/// The (namespace, name) of a service account's user name.
pub fn parse_user(user: &str) -> Option<(&str, &str)> {
    let (ns, name) = user.strip_prefix(USER_PREFIX)?.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// The (namespace, name) an identity speaks for as a service account: user
/// `system:serviceaccount:<ns>:<name>` in group `system:serviceaccounts`
/// (both, as for nodes).
pub fn service_account_of(who: &Identity) -> Option<(&str, &str)> {
    if !who.groups.iter().any(|g| g == ALL_GROUP) {
        return None;
    }
    parse_user(&who.user)
}

/// What issues and checks tokens: the signing key, the issuer, the API
/// server's audiences and the cache of verified tokens.
pub struct Tokens {
    key: ServiceAccountKey,
    pub issuer: String,
    /// A token must name one of these to be accepted here; a TokenRequest
    /// without audiences gets them.
    pub audiences: Vec<String>,
    /// See [`MAX_EXPIRATION_SECS`].
    pub max_expiration_secs: i64,
    cache: authn::Cache,
}

impl Tokens {
    pub fn new(key: ServiceAccountKey) -> Tokens {
        Tokens {
            key,
            issuer: ISSUER.to_string(),
            audiences: vec![ISSUER.to_string()],
            max_expiration_secs: MAX_EXPIRATION_SECS,
            cache: authn::Cache::default(),
        }
    }

    pub(crate) fn key(&self) -> &ServiceAccountKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_and_need_the_group() {
        let who = identity("dev", "builder");
        assert_eq!(who.user, "system:serviceaccount:dev:builder");
        assert_eq!(
            who.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:dev",
                "system:authenticated"
            ]
        );
        assert_eq!(service_account_of(&who), Some(("dev", "builder")));
        let bare = Identity {
            user: who.user.clone(),
            groups: vec![],
        };
        assert_eq!(service_account_of(&bare), None);
        for user in [
            "system:serviceaccount:dev",
            "system:serviceaccount::x",
            "system:serviceaccount:a:b:c",
        ] {
            let odd = Identity {
                user: user.into(),
                groups: vec![ALL_GROUP.into()],
            };
            assert_eq!(service_account_of(&odd), None, "{user}");
        }
    }
}
