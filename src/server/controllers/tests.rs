//! Controllers driven end to end without TCP: the API state over a
//! temporary SQLite store, skiff's components and an admin as loopback
//! clients.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterConfig;
use crate::server::apiserver::auth::{self, Authenticator};
use crate::server::apiserver::object_store::Objects;
use crate::server::apiserver::registry::Registry;
use crate::server::apiserver::{loopback, ApiState, Inflight, InflightLimits};
use crate::server::pki::{Identity, TokenAuth, MASTERS_GROUP};
use crate::server::store::sqlite::SqliteBackend;
use crate::server::{bootstrap, controllers};

/// The API server's address as bootstrap is told it.
pub(crate) const API: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 6443);

pub(crate) fn api_state(dir: &Path) -> (Arc<ApiState>, Arc<SqliteBackend>) {
    let store = SqliteBackend::open(&dir.join("db/state.db")).unwrap();
    let state = Arc::new(ApiState {
        registry: Registry::builtin(),
        objects: Objects::new(store.clone()),
        auth: Authenticator {
            tokens: TokenAuth::parse("", Path::new("tokens.csv")).unwrap(),
            service_accounts: crate::server::apiserver::serviceaccount::Tokens::new(
                crate::server::pki::ServiceAccountKey::generate().unwrap(),
            ),
        },
        inflight: Inflight::new(&InflightLimits {
            read_only: 0,
            mutating: 0,
            body_bytes: 0,
        }),
        ready: Default::default(),
        usage_writes: Default::default(),
        gc: Default::default(),
        openapi: Default::default(),
        kubelet: Default::default(),
        metrics: Default::default(),
        tolerations: Default::default(),
        rbac: Default::default(),
        audit: None,
        webhooks: Default::default(),
        encryption: None,
        join: Default::default(),
        tunnels: Default::default(),
        control_plane_node: Default::default(),
    });
    (state, store)
}

pub(crate) fn admin(state: &Arc<ApiState>) -> kube::Client {
    let who = Identity {
        user: "test-admin".into(),
        groups: vec![MASTERS_GROUP.into()],
    };
    loopback::client(state.clone(), who, "test")
}

/// Namespace `name` with its `default` ServiceAccount (what pod admission
/// needs), made by `admin`.
pub(crate) async fn namespace_with_account(admin: &kube::Client, name: &str) {
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin.clone(), name);
    sa.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}})).unwrap(),
    )
    .await
    .unwrap();
}

/// Poll `f` until it answers Ok (10 s at most); panic with its last error.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::new();
    for _ in 0..200 {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {what}: {last}");
}

fn managers(meta: &kube::api::ObjectMeta) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_and_the_namespace_controller_are_ordinary_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (state, store) = api_state(dir.path());
    let boot = loopback::client(
        state.clone(),
        auth::component(auth::BOOTSTRAP_USER),
        bootstrap::AGENT,
    );
    bootstrap::run(boot.clone(), &ClusterConfig::default(), API, false, async {
    })
    .await
    .unwrap();
    // Twice: what exists is left alone.
    bootstrap::run(boot.clone(), &ClusterConfig::default(), API, false, async {
    })
    .await
    .unwrap();
    // The API server's endpoints, and them moved when its address does.
    let eps = Api::<Endpoints>::namespaced(admin(&state), "default");
    let ep = eps.get("kubernetes").await.unwrap();
    let subset = &ep.subsets.unwrap_or_default()[0];
    assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "127.0.0.1");
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, 6443);
    let slices = Api::<EndpointSlice>::namespaced(admin(&state), "default");
    let slice = slices.get("kubernetes").await.unwrap();
    assert_eq!(slice.endpoints[0].addresses, ["127.0.0.1"]);
    assert_eq!(
        slice.metadata.labels.unwrap_or_default()["kubernetes.io/service-name"],
        "kubernetes"
    );
    let moved: std::net::SocketAddr = "10.9.8.7:7443".parse().unwrap();
    bootstrap::run(boot, &ClusterConfig::default(), moved, false, async {})
        .await
        .unwrap();
    let ep = eps.get("kubernetes").await.unwrap();
    assert_eq!(
        ep.subsets.unwrap_or_default()[0]
            .addresses
            .as_ref()
            .unwrap()[0]
            .ip,
        "10.9.8.7"
    );
    let slice = slices.get("kubernetes").await.unwrap();
    assert_eq!(slice.ports.unwrap_or_default()[0].port, Some(7443));

    let admin = admin(&state);
    // Bootstrap's objects went through admission like kubectl's: defaulted
    // and with managedFields naming their writer.
    let svc = Api::<Service>::namespaced(admin.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap();
    let spec = svc.spec.clone().unwrap_or_default();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.43.0.1"));
    assert_eq!(spec.cluster_ips, Some(vec!["10.43.0.1".to_string()]));
    assert_eq!(managers(&svc.metadata), [bootstrap::AGENT]);
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for ns in bootstrap::SYSTEM_NAMESPACES {
        let ns = namespaces.get(ns).await.unwrap();
        assert_eq!(managers(&ns.metadata), [bootstrap::AGENT]);
    }

    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "doomed");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "doomed");
    for name in ["a", "b"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}))
            .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let cancel = CancellationToken::new();
    let ctx = controllers::namespace::Ctx {
        client: loopback::client(
            state.clone(),
            auth::component(auth::NAMESPACE_CONTROLLER_USER),
            controllers::namespace::AGENT,
        ),
        api: state.clone(),
    };
    let controller = tokio::spawn(controllers::namespace::run(ctx, cancel.clone()));

    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    // The namespace is only marked: its content goes first.
    let marked = namespaces.get("doomed").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());

    // Wait for the controller (it gives kubectl a grace period first); the
    // bound only keeps a broken controller from hanging the test.
    let gone = async {
        while namespaces.get_opt("doomed").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), gone)
        .await
        .expect("the namespace controller did not finish the namespace");
    assert!(cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(secrets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    // Other namespaces are untouched.
    assert!(namespaces.get_opt("default").await.unwrap().is_some());

    cancel.cancel();
    controller.await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn a_components_identity_is_authorized_like_any_callers() {
    let dir = tempfile::tempdir().unwrap();
    let (state, store) = api_state(dir.path());
    let ctl = loopback::client(
        state.clone(),
        auth::component(auth::NAMESPACE_CONTROLLER_USER),
        controllers::namespace::AGENT,
    );
    // It may delete, not create: the loopback does not bypass authorization.
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let err = Api::<ConfigMap>::namespaced(ctl, "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert!(s.is_forbidden(), "{s:?}");
            assert!(
                s.message
                    .contains(r#"User "system:controller:namespace-controller" cannot create resource "configmaps""#),
                "{}",
                s.message
            );
        }
        e => panic!("not a Status: {e}"),
    }
    let boot = loopback::client(
        state.clone(),
        auth::component(auth::BOOTSTRAP_USER),
        bootstrap::AGENT,
    );
    let err = Api::<Namespace>::all(boot)
        .delete("default", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.is_forbidden()));
    store.close().await;
}

/// Background deletion: an object whose only owner is deleted goes too; one
/// with another owner left only loses the reference to the one that went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_a_deleted_owner_are_collected_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let (state, store) = api_state(dir.path());
    let admin = admin(&state);
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    let make = |name: &str, owners: Vec<&ConfigMap>| -> ConfigMap {
        let refs: Vec<_> = owners
            .iter()
            .map(|o| {
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "name": o.metadata.name, "uid": o.metadata.uid})
            })
            .collect();
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": refs}}))
            .unwrap()
    };
    let a = cms
        .create(&PostParams::default(), &make("a", vec![]))
        .await
        .unwrap();
    let b = cms
        .create(&PostParams::default(), &make("b", vec![]))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &make("only-a", vec![&a]))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &make("a-and-b", vec![&a, &b]))
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let gc = controllers::garbage::Ctx::new(
        loopback::client(
            state.clone(),
            auth::component(auth::GARBAGE_COLLECTOR_USER),
            controllers::garbage::AGENT,
        ),
        state.clone(),
    );
    let task = tokio::spawn(controllers::garbage::run(gc, state.clone(), cancel.clone()));
    cms.delete("a", &DeleteParams::background()).await.unwrap();
    let settled = async {
        loop {
            let only = cms.get_opt("only-a").await.unwrap();
            let both = cms.get("a-and-b").await.unwrap();
            let refs = both.metadata.owner_references.clone().unwrap_or_default();
            if only.is_none() && refs.len() == 1 {
                return refs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // Less than the collector's first sweep (30 s): the removal itself
    // must reach it.
    let refs = tokio::time::timeout(Duration::from_secs(20), settled)
        .await
        .expect("the dependents were not collected");
    assert_eq!(refs[0].name, "b");
    cancel.cancel();
    task.await.unwrap();
    store.close().await;
}
