//! What every cluster has from the start: the system namespaces and the
//! `default/kubernetes` Service. Written through the loopback client as
//! `auth::BOOTSTRAP_USER`, so these objects pass the same admission,
//! defaulting, validation and managedFields as any other.

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::cluster::ClusterConfig;

/// Namespaces every cluster has from the start.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The managedFields manager of what bootstrap writes.
pub const AGENT: &str = "skiff-bootstrap";

/// Bootstrap, with `beside` (the allocation repair's first pass, which
/// must see no allocating create in flight) run beside its reads and its
/// namespace creates and finished before its one allocating create, the
/// Service's.
pub async fn run(
    client: kube::Client,
    cluster: &ClusterConfig,
    https_port: u16,
    beside: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let services: Api<Service> = Api::namespaced(client, "default");
    // What exists, in two reads (on a restart that is all bootstrap does).
    let all = ListParams::default();
    let reads_and_namespaces = async {
        let (existing, service) =
            tokio::join!(namespaces.list(&all), services.get_opt("kubernetes"));
        let existing = existing.context("listing namespaces")?;
        let missing = SYSTEM_NAMESPACES.iter().filter(|ns| {
            !existing
                .items
                .iter()
                .any(|n| n.metadata.name.as_deref() == Some(**ns))
        });
        // The missing ones at once: concurrent creates share one commit of
        // the store's writer (one fsync, not four). The loopback client is
        // not held to the in-flight limits, so this holds under any of them.
        futures::future::try_join_all(missing.map(|ns| system_namespace(&namespaces, ns))).await?;
        anyhow::Ok(service)
    };
    let (service, ()) = tokio::join!(reads_and_namespaces, beside);
    let service = service?;
    // The Service only after its namespace exists.
    if service.context("reading the kubernetes Service")?.is_none() {
        kubernetes_service(&services, cluster, https_port)
            .await
            .context("creating the kubernetes Service")?;
    }
    Ok(())
}

async fn system_namespace(namespaces: &Api<Namespace>, ns: &'static str) -> anyhow::Result<()> {
    let obj: Namespace = serde_json::from_value(json!({
        "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}
    }))?;
    if create(namespaces, &obj)
        .await
        .with_context(|| format!("creating the namespace {ns}"))?
    {
        tracing::info!(namespace = ns, "created system namespace");
    }
    Ok(())
}

/// The `default/kubernetes` Service: the API server at the first address of
/// the service range.
async fn kubernetes_service(
    services: &Api<Service>,
    cluster: &ClusterConfig,
    https_port: u16,
) -> anyhow::Result<()> {
    let obj: Service = serde_json::from_value(json!({
        "metadata": {
            "name": "kubernetes",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster.kubernetes_service_ip().to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": https_port}],
        },
    }))?;
    create(services, &obj).await?;
    Ok(())
}

/// Create `obj`, known missing a moment ago: true when this call created
/// it, false when another writer did in between.
async fn create<K>(api: &Api<K>, obj: &K) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
        Err(e) => Err(e),
    }
}
