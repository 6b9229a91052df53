//! Node passwords (`server::join::password`) outlive no Node: the Secret
//! `kube-system/<node>.node-password.skiff` of a Node that is gone is
//! deleted, which frees the name for another box (k3s deletes it with the
//! Node too). The join itself never replaces a password that differs, so
//! this is the only way a name changes hands: `kubectl delete node`.
//!
//! A password recorded by a join whose agent has not registered its Node
//! yet is kept for [`GRACE`], so that a new node's name is not free again
//! between its join and its registration.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};
use crate::server::join::{password, tokens};

pub const AGENT: &str = "skiff-node-password-cleaner";
pub const COMPONENT: &str = "node-password-cleaner";
/// How long a password may wait for its Node.
pub const GRACE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct Ctx {
    api: Api<Secret>,
    passwords: Arc<Informer<Secret>>,
    nodes: Arc<Informer<Node>>,
}

/// The node a password Secret is for.
fn node_of(secret: &Secret) -> Option<&str> {
    if secret.type_.as_deref() != Some(password::SECRET_TYPE) {
        return None;
    }
    secret
        .metadata
        .name
        .as_deref()?
        .strip_suffix(password::SUFFIX)
}

pub async fn run(client: kube::Client, shared: &Informers, cancel: CancellationToken) {
    let api: Api<Secret> = Api::namespaced(client, tokens::NAMESPACE);
    let passwords = Arc::new(Informer::<Secret>::default());
    tokio::spawn(passwords.clone().run(
        api.clone(),
        watcher::Config::default().fields(&format!("type={}", password::SECRET_TYPE)),
        cancel.clone(),
    ));
    let nodes = shared.get::<Node>();
    let queue = Arc::new(Queue::<Key>::default());
    let q = queue.clone();
    passwords.on_change(move |c: &Change<'_, Secret>| {
        if let Some(s) = c.new {
            q.add(Key::of(s.as_ref()));
        }
    });
    let q = queue.clone();
    nodes.on_change(move |c: &Change<'_, Node>| {
        // A Node gone: its password, if any, is looked at.
        if let (Some(old), None) = (c.old, c.new) {
            if let Some(name) = old.metadata.name.as_deref() {
                q.add(Key {
                    namespace: tokens::NAMESPACE.into(),
                    name: password::secret_name(name),
                });
            }
        }
    });
    let ctx = Arc::new(Ctx {
        api,
        passwords,
        nodes,
    });
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = async { ctx.passwords.synced().await; ctx.nodes.synced().await } => {}
    }
    runtime::run_workers(COMPONENT, queue, 1, cancel, move |key: Key| {
        let c = ctx.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(cached) = ctx.passwords.get_key(key) else {
        return Ok(Action::Done);
    };
    let Some(node) = node_of(&cached) else {
        return Ok(Action::Done);
    };
    if ctx.nodes.get("", node).is_some() {
        return Ok(Action::Done);
    }
    let age = cached
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| {
            let secs = k8s_openapi::jiff::Timestamp::now()
                .duration_since(t.0)
                .as_secs()
                .max(0);
            Duration::from_secs(secs as u64)
        })
        .unwrap_or_default();
    if age < GRACE {
        return Ok(Action::After(GRACE - age));
    }
    // Asked again of the API: the caches may be behind a registration.
    let nodes: Api<Node> = Api::all(ctx.api.clone().into_client());
    if nodes.get_opt(node).await?.is_some() {
        return Ok(Action::Done);
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cached.metadata.uid.clone(),
            resource_version: cached.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    tracing::info!(node, "the node is gone: its name is free for another host");
    match ctx.api.delete(&key.name, &params).await {
        Ok(_) => Ok(Action::Done),
        Err(kube::Error::Api(s)) if s.reason == "NotFound" => Ok(Action::Done),
        Err(kube::Error::Api(s)) if s.reason == "Conflict" => Ok(Action::After(Duration::ZERO)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_node_passwords_name_a_node() {
        let s = |name: &str, t: &str| Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            type_: Some(t.into()),
            ..Default::default()
        };
        assert_eq!(
            node_of(&s("a1.node-password.skiff", password::SECRET_TYPE)),
            Some("a1")
        );
        assert_eq!(node_of(&s("a1.node-password.skiff", "Opaque")), None);
        assert_eq!(node_of(&s("other", password::SECRET_TYPE)), None);
    }
}
