//! The token cleaner (upstream's `tokencleaner`): a bootstrap token's
//! Secret is deleted once its `expiration` has passed — at that moment, by
//! a timer on the work queue, not by polling. One whose expiration cannot
//! be read is deleted at once, as upstream does (the join refuses it
//! anyway).
//!
//! It watches only what it may touch: the Secrets of type
//! `bootstrap.kubernetes.io/token` in kube-system, in an informer of its
//! own (the shared ones watch all namespaces, which its identity may not).
//! The Secret is read again before it goes and deleted with its uid and
//! resourceVersion as preconditions, so a token whose expiration was just
//! pushed back stays.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::runtime::{self, Action, Change, Informer, Key, Queue};
use crate::server::join::tokens::{self, Expiry};

pub const AGENT: &str = "skiff-token-cleaner";
pub const COMPONENT: &str = "token-cleaner";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct Ctx {
    api: Api<Secret>,
    tokens: Arc<Informer<Secret>>,
}

/// How long until `secret` is to be deleted: None when never (not a
/// token, no expiration, already going), zero when it is due.
pub fn left(secret: &Secret, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    if secret.metadata.deletion_timestamp.is_some()
        || secret.type_.as_deref() != Some(tokens::SECRET_TYPE)
    {
        return None;
    }
    Expiry::of(secret).left(now)
}

pub async fn run(client: kube::Client, cancel: CancellationToken) {
    let api: Api<Secret> = Api::namespaced(client, tokens::NAMESPACE);
    let informer = Arc::new(Informer::<Secret>::default());
    tokio::spawn(informer.clone().run(
        api.clone(),
        watcher::Config::default().fields(&format!("type={}", tokens::SECRET_TYPE)),
        cancel.clone(),
    ));
    let queue = Arc::new(Queue::<Key>::default());
    let q = queue.clone();
    informer.on_change(move |c: &Change<'_, Secret>| {
        if let Some(s) = c.new.filter(|s| left(s, chrono::Utc::now()).is_some()) {
            q.add(Key::of(s.as_ref()));
        }
    });
    let ctx = Arc::new(Ctx {
        api,
        tokens: informer,
    });
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = ctx.tokens.synced() => {}
    }
    runtime::run_workers(COMPONENT, queue, 1, cancel, move |key: Key| {
        let c = ctx.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(cached) = ctx.tokens.get_key(key) else {
        return Ok(Action::Done);
    };
    match left(&cached, chrono::Utc::now()) {
        None => return Ok(Action::Done),
        Some(d) if !d.is_zero() => return Ok(Action::After(d)),
        Some(_) => {}
    }
    // The cache may be behind: decide on the Secret as it is now.
    let Some(fresh) = ctx.api.get_opt(&key.name).await? else {
        return Ok(Action::Done);
    };
    match left(&fresh, chrono::Utc::now()) {
        None => return Ok(Action::Done),
        Some(d) if !d.is_zero() => return Ok(Action::After(d)),
        Some(_) => {}
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: fresh.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    tracing::info!(secret = %key, "deleting an expired bootstrap token");
    match ctx.api.delete(&key.name, &params).await {
        Ok(_) => Ok(Action::Done),
        Err(kube::Error::Api(s)) if s.reason == "NotFound" => Ok(Action::Done),
        // Changed since it was read: look again.
        Err(kube::Error::Api(s)) if s.reason == "Conflict" => Ok(Action::After(Duration::ZERO)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn token(expiration: Option<&str>, type_: &str) -> Secret {
        let mut data = BTreeMap::from([("token-id".to_string(), ByteString(b"abcdef".to_vec()))]);
        if let Some(e) = expiration {
            data.insert("expiration".into(), ByteString(e.as_bytes().to_vec()));
        }
        Secret {
            type_: Some(type_.into()),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn a_token_is_due_when_its_expiration_passes() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let t = tokens::SECRET_TYPE;
        assert_eq!(left(&token(None, t), now), None);
        assert_eq!(
            left(&token(Some("2026-06-01T12:00:30Z"), t), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            left(&token(Some("2026-06-01T11:00:00Z"), t), now),
            Some(Duration::ZERO)
        );
        assert_eq!(left(&token(Some("tomorrow"), t), now), Some(Duration::ZERO));
        // Only bootstrap tokens, and not twice.
        assert_eq!(
            left(&token(Some("2026-06-01T11:00:00Z"), "Opaque"), now),
            None
        );
        let mut going = token(Some("2026-06-01T11:00:00Z"), t);
        going.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert_eq!(left(&going, now), None);
    }
}
