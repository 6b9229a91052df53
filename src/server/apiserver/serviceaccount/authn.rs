//! The service-account token authenticator, as upstream's: a bearer JWT
//! this server signed ([`jwt::verify`]: ES256 only, issuer, `exp`/`nbf`
//! with a minute's leeway, an audience of the API server's), whose service
//! account still exists with the uid the token names, and whose bound
//! object (pod, secret, or node for a node-bound token) still exists with
//! its uid and was not deleted more than the leeway ago. A pod-bound token
//! stops working once its pod is gone.
//!
//! The object checks read the store (a key lookup each); a verified token
//! is remembered for [`CACHE_TTL`] (upstream's token cache keeps successes
//! 10 s too), keyed by the SHA-256 of the token, never the token itself.
//! At most [`CACHE_MAX`] entries are kept; when full, the expired ones go,
//! and if none had, all of them do. Failures are not remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jwt::{self, Claims, Expect, JwtError, LEEWAY_SECS};
use super::Tokens;
use crate::api::status::ApiError;
use crate::server::apiserver::object_store::Objects;
use crate::server::apiserver::registry::Registry;
use crate::server::pki::Identity;

/// How long a verified token is taken without looking at the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// The most verified tokens remembered at once.
pub const CACHE_MAX: usize = 4096;

/// Why a token was refused (for the server's debug log; the client gets a
/// plain 401, as upstream's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Token(#[from] JwtError),
    #[error("service account {0} not found")]
    ServiceAccountGone(String),
    #[error("service account {0} was deleted and re-created (uid differs)")]
    ServiceAccountUid(String),
    #[error("service account token has been invalidated: its {0} is gone")]
    BoundGone(&'static str),
    #[error("{0} uid does not match the token's claim")]
    BoundUid(&'static str),
    #[error("looking the token's objects up: {0}")]
    Lookup(String),
}

/// The kinds a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ServiceAccount,
    Pod,
    Secret,
    Node,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::ServiceAccount => "serviceaccounts",
            Kind::Pod => "pods",
            Kind::Secret => "secrets",
            Kind::Node => "nodes",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::ServiceAccount => "service account",
            Kind::Pod => "pod",
            Kind::Secret => "secret",
            Kind::Node => "node",
        }
    }
}

/// What the checks need of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub uid: String,
    /// `deletionTimestamp`, Unix seconds.
    pub deleted_at: Option<i64>,
}

impl Meta {
    pub fn of(obj: &Value) -> Meta {
        let meta = &obj["metadata"];
        Meta {
            uid: meta["uid"].as_str().unwrap_or_default().to_string(),
            deleted_at: meta["deletionTimestamp"]
                .as_str()
                .and_then(crate::api::duration::parse_time)
                .map(|t| t.timestamp()),
        }
    }
}

/// Where the objects a token names are looked up: the store, or a fake in
/// tests.
#[async_trait]
pub trait Lookup: Sync {
    async fn meta(&self, kind: Kind, namespace: &str, name: &str)
        -> Result<Option<Meta>, ApiError>;
}

/// The store, through the API server's objects.
pub struct StoreLookup<'a> {
    pub objects: &'a Objects,
    pub registry: &'a Registry,
}

#[async_trait]
impl Lookup for StoreLookup<'_> {
    async fn meta(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Meta>, ApiError> {
        let Some(def) = self.registry.find("", "v1", kind.plural()) else {
            return Ok(None);
        };
        let ns = def.namespaced.then_some(namespace);
        Ok(self
            .objects
            .get(def, ns, name)
            .await?
            .map(|s| Meta::of(&s.obj)))
    }
}

/// Who a verified token speaks for (upstream's ServiceAccountInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub pod: Option<jwt::Ref>,
    pub node: Option<jwt::Ref>,
    /// The token's `jti`, for upstream's credential id.
    pub jti: Option<String>,
}

impl ServiceAccountInfo {
    pub fn identity(&self) -> Identity {
        super::identity(&self.namespace, &self.name)
    }

    /// Upstream's `extra` of a service-account user.
    pub fn extra(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(jti) = &self.jti {
            out.push((
                "authentication.kubernetes.io/credential-id",
                format!("JTI={jti}"),
            ));
        }
        if let Some(n) = &self.node {
            out.push(("authentication.kubernetes.io/node-name", n.name.clone()));
            if !n.uid.is_empty() {
                out.push(("authentication.kubernetes.io/node-uid", n.uid.clone()));
            }
        }
        if let Some(p) = &self.pod {
            out.push(("authentication.kubernetes.io/pod-name", p.name.clone()));
            out.push(("authentication.kubernetes.io/pod-uid", p.uid.clone()));
        }
        out
    }
}

struct Cached {
    info: Arc<ServiceAccountInfo>,
    until: Instant,
}

/// Verified tokens by the SHA-256 of the token (see the module docs).
#[derive(Default)]
pub struct Cache(Mutex<HashMap<[u8; 32], Cached>>);

impl Cache {
    fn get(&self, key: &[u8; 32], now: Instant) -> Option<Arc<ServiceAccountInfo>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|c| c.until > now)
            .map(|c| c.info.clone())
    }

    fn put(&self, key: [u8; 32], info: Arc<ServiceAccountInfo>, until: Instant) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            let now = Instant::now();
            map.retain(|_, c| c.until > now);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(key, Cached { info, until });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Tokens {
    /// The service account a bearer JWT stands for, or why it does not.
    pub async fn authenticate(
        &self,
        lookup: &dyn Lookup,
        token: &str,
    ) -> Result<Arc<ServiceAccountInfo>, Refused> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(info) = self.cache.get(&hash, now) {
            return Ok(info);
        }
        let (info, claims) = self.check(lookup, token, &self.audiences).await?;
        let unix = unix_now();
        // Never past the token's own end.
        let left = u64::try_from(claims.exp.saturating_add(LEEWAY_SECS) - unix).unwrap_or(0);
        let until = now + CACHE_TTL.min(Duration::from_secs(left));
        self.cache.put(hash, info.clone(), until);
        Ok(info)
    }

    /// As [`Tokens::authenticate`] for a token meant for one of
    /// `audiences` rather than for the API server (a TokenReview's); not
    /// cached.
    pub async fn authenticate_for(
        &self,
        lookup: &dyn Lookup,
        token: &str,
        audiences: &[String],
    ) -> Result<(Arc<ServiceAccountInfo>, Vec<String>), Refused> {
        let (info, claims) = self.check(lookup, token, audiences).await?;
        let matched = claims
            .aud
            .into_iter()
            .filter(|a| audiences.contains(a))
            .collect();
        Ok((info, matched))
    }

    async fn check(
        &self,
        lookup: &dyn Lookup,
        token: &str,
        audiences: &[String],
    ) -> Result<(Arc<ServiceAccountInfo>, Claims), Refused> {
        let unix = unix_now();
        let expect = Expect {
            issuer: &self.issuer,
            audiences,
            now: unix,
        };
        let claims = jwt::verify(self.key(), token, &expect)?;
        let info = Arc::new(check_objects(lookup, &claims, unix).await?);
        Ok((info, claims))
    }

    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// The objects `claims` names still exist with their uids (upstream's
/// validator): things deleted more than the leeway ago count as gone.
async fn check_objects(
    lookup: &dyn Lookup,
    claims: &Claims,
    now: i64,
) -> Result<ServiceAccountInfo, Refused> {
    let k = &claims.kubernetes;
    let ns = k.namespace.as_str();
    let deleted_long_ago = |m: &Meta| m.deleted_at.is_some_and(|t| t < now - LEEWAY_SECS);
    let sa_name = &k.serviceaccount.name;
    let sa = lookup
        .meta(Kind::ServiceAccount, ns, sa_name)
        .await
        .map_err(|e| Refused::Lookup(e.message))?
        .ok_or_else(|| Refused::ServiceAccountGone(format!("{ns}/{sa_name}")))?;
    if sa.uid != k.serviceaccount.uid {
        return Err(Refused::ServiceAccountUid(format!("{ns}/{sa_name}")));
    }
    if deleted_long_ago(&sa) {
        return Err(Refused::ServiceAccountGone(format!("{ns}/{sa_name}")));
    }
    let bound: [(Kind, Option<&jwt::Ref>); 3] = [
        (Kind::Secret, k.secret.as_ref()),
        (Kind::Pod, k.pod.as_ref()),
        // A node is checked only for a token bound to the node itself; a
        // pod-bound token names its pod's node for information.
        (Kind::Node, k.node.as_ref().filter(|_| k.pod.is_none())),
    ];
    for (kind, r) in bound {
        let Some(r) = r else { continue };
        let m = lookup
            .meta(kind, ns, &r.name)
            .await
            .map_err(|e| Refused::Lookup(e.message))?
            .ok_or(Refused::BoundGone(kind.what()))?;
        if m.uid != r.uid {
            return Err(Refused::BoundUid(kind.what()));
        }
        if deleted_long_ago(&m) {
            return Err(Refused::BoundGone(kind.what()));
        }
    }
    Ok(ServiceAccountInfo {
        namespace: k.namespace.clone(),
        name: sa_name.clone(),
        uid: k.serviceaccount.uid.clone(),
        pod: k.pod.clone(),
        node: k.node.clone(),
        jti: claims.jti.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::apiserver::serviceaccount::jwt::{Kubernetes, Ref};
    use crate::server::apiserver::serviceaccount::ISSUER;
    use crate::server::pki::ServiceAccountKey;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Objects by (kind, name), and how many lookups were made.
    #[derive(Default)]
    struct Fake {
        objects: Mutex<HashMap<(&'static str, String), Meta>>,
        lookups: AtomicUsize,
    }

    impl Fake {
        fn put(&self, kind: Kind, name: &str, uid: &str) {
            let meta = Meta {
                uid: uid.into(),
                deleted_at: None,
            };
            self.objects
                .lock()
                .unwrap()
                .insert((kind.plural(), name.into()), meta);
        }
        fn remove(&self, kind: Kind, name: &str) {
            self.objects
                .lock()
                .unwrap()
                .remove(&(kind.plural(), name.to_string()));
        }
    }

    #[async_trait]
    impl Lookup for Fake {
        async fn meta(&self, kind: Kind, _ns: &str, name: &str) -> Result<Option<Meta>, ApiError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let map = self.objects.lock().unwrap();
            Ok(map.get(&(kind.plural(), name.to_string())).cloned())
        }
    }

    fn token(tokens: &Tokens, pod: Option<(&str, &str)>, exp_in: i64) -> String {
        let now = unix_now();
        let claims = Claims {
            aud: vec![ISSUER.into()],
            exp: now + exp_in,
            iat: now,
            iss: ISSUER.into(),
            jti: Some("id-1".into()),
            kubernetes: Kubernetes {
                namespace: "ns".into(),
                serviceaccount: Ref {
                    name: "default".into(),
                    uid: "sa-uid".into(),
                },
                pod: pod.map(|(name, uid)| Ref {
                    name: name.into(),
                    uid: uid.into(),
                }),
                node: pod.map(|_| Ref {
                    name: "edge-1".into(),
                    uid: String::new(),
                }),
                ..Default::default()
            },
            nbf: now,
            sub: "system:serviceaccount:ns:default".into(),
        };
        jwt::sign(tokens.key(), &claims).unwrap()
    }

    #[tokio::test]
    async fn a_valid_token_is_its_service_account_and_is_remembered() {
        let tokens = Tokens::new(ServiceAccountKey::generate().unwrap());
        let fake = Fake::default();
        fake.put(Kind::ServiceAccount, "default", "sa-uid");
        fake.put(Kind::Pod, "web", "pod-uid");
        let t = token(&tokens, Some(("web", "pod-uid")), 3600);
        let info = tokens.authenticate(&fake, &t).await.unwrap();
        assert_eq!(info.identity().user, "system:serviceaccount:ns:default");
        assert_eq!(
            info.extra(),
            [
                (
                    "authentication.kubernetes.io/credential-id",
                    "JTI=id-1".to_string()
                ),
                (
                    "authentication.kubernetes.io/node-name",
                    "edge-1".to_string()
                ),
                ("authentication.kubernetes.io/pod-name", "web".to_string()),
                (
                    "authentication.kubernetes.io/pod-uid",
                    "pod-uid".to_string()
                ),
            ]
        );
        // The node of a pod-bound token is not looked up.
        assert_eq!(fake.lookups.load(Ordering::SeqCst), 2);
        tokens.authenticate(&fake, &t).await.unwrap();
        assert_eq!(fake.lookups.load(Ordering::SeqCst), 2, "not cached");
        assert_eq!(tokens.cached(), 1);
    }

    #[tokio::test]
    async fn deleted_or_replaced_objects_invalidate_the_token() {
        let tokens = Tokens::new(ServiceAccountKey::generate().unwrap());
        let fake = Fake::default();
        fake.put(Kind::ServiceAccount, "default", "sa-uid");
        let bound = token(&tokens, Some(("web", "pod-uid")), 3600);
        // No such pod.
        assert_eq!(
            tokens.authenticate(&fake, &bound).await,
            Err(Refused::BoundGone("pod"))
        );
        // A pod of that name, but another one.
        fake.put(Kind::Pod, "web", "other-uid");
        assert_eq!(
            tokens.authenticate(&fake, &bound).await,
            Err(Refused::BoundUid("pod"))
        );
        // The service account re-created.
        let plain = token(&tokens, None, 3600);
        fake.put(Kind::ServiceAccount, "default", "new-uid");
        assert!(matches!(
            tokens.authenticate(&fake, &plain).await,
            Err(Refused::ServiceAccountUid(_))
        ));
        fake.remove(Kind::ServiceAccount, "default");
        assert!(matches!(
            tokens.authenticate(&fake, &plain).await,
            Err(Refused::ServiceAccountGone(_))
        ));
        // Failures are not remembered.
        assert_eq!(tokens.cached(), 0);
        // Deleted long ago (still held by a finalizer) counts as gone;
        // just now does not yet.
        fake.put(Kind::ServiceAccount, "default", "sa-uid");
        fake.objects
            .lock()
            .unwrap()
            .get_mut(&("serviceaccounts", "default".to_string()))
            .unwrap()
            .deleted_at = Some(unix_now() - 2 * LEEWAY_SECS);
        assert!(matches!(
            tokens.authenticate(&fake, &plain).await,
            Err(Refused::ServiceAccountGone(_))
        ));
    }

    #[tokio::test]
    async fn expired_and_foreign_tokens_are_refused_before_any_lookup() {
        let tokens = Tokens::new(ServiceAccountKey::generate().unwrap());
        let fake = Fake::default();
        fake.put(Kind::ServiceAccount, "default", "sa-uid");
        let old = token(&tokens, None, -2 * LEEWAY_SECS);
        assert_eq!(
            tokens.authenticate(&fake, &old).await,
            Err(Refused::Token(JwtError::Expired))
        );
        let elsewhere = Tokens::new(ServiceAccountKey::generate().unwrap());
        let foreign = token(&elsewhere, None, 3600);
        assert_eq!(
            tokens.authenticate(&fake, &foreign).await,
            Err(Refused::Token(JwtError::Signature))
        );
        assert_eq!(fake.lookups.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = Cache::default();
        let info = Arc::new(ServiceAccountInfo {
            namespace: "n".into(),
            name: "a".into(),
            uid: "u".into(),
            pod: None,
            node: None,
            jti: None,
        });
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..(CACHE_MAX + 10) {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.put(key, info.clone(), later);
            assert!(cache.len() <= CACHE_MAX);
        }
        let mut last = [0u8; 32];
        last[..8].copy_from_slice(&((CACHE_MAX + 9) as u64).to_le_bytes());
        assert!(cache.get(&last, Instant::now()).is_some());
        assert!(cache.get(&last, later).is_none(), "kept past its time");
    }
}
