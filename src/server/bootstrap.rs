//! What every cluster has from the start: the system namespaces and the
//! `default/kubernetes` Service. Written through the loopback client as
//! `auth::BOOTSTRAP_USER`, so these objects pass the same admission,
//! defaulting, validation and managedFields as any other.

use anyhow::Context;
use kube::api::{ListParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};

use crate::cluster::ClusterConfig;

/// Namespaces every cluster has from the start.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The managedFields manager of what bootstrap writes.
pub const AGENT: &str = "skiff-bootstrap";

const NAMESPACES: &str = "/api/v1/namespaces";
const SERVICES: &str = "/api/v1/namespaces/default/services";

/// Bootstrap, with `beside` (the allocation repair's first pass, which
/// must see no allocating create in flight) run beside its reads and its
/// namespace creates and finished before its one allocating create, the
/// Service's.
///
/// Untyped (JSON values through the client's raw requests): bootstrap reads
/// names and writes two literal objects, and k8s-openapi's typed
/// (de)serialisers for them kept code resident in every server
/// (ARCHITECTURE.md, "Invariants").
pub async fn run(
    client: kube::Client,
    cluster: &ClusterConfig,
    https_port: u16,
    beside: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // What exists, in two reads (on a restart that is all bootstrap does).
    let reads_and_namespaces = async {
        let list = Request::new(NAMESPACES).list(&ListParams::default())?;
        let get = Request::new(SERVICES).get("kubernetes", &Default::default())?;
        let (existing, service) = tokio::join!(
            client.request::<Value>(list),
            crate::server::apiserver::loopback::get_opt(&client, get)
        );
        let existing = existing.context("listing namespaces")?;
        let names: Vec<&str> = existing["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|n| n["metadata"]["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let missing = SYSTEM_NAMESPACES.iter().filter(|ns| !names.contains(ns));
        // The missing ones at once: concurrent creates share one commit of
        // the store's writer (one fsync, not four). The loopback client is
        // not held to the in-flight limits, so this holds under any of them.
        futures::future::try_join_all(missing.map(|ns| system_namespace(&client, ns))).await?;
        anyhow::Ok(service)
    };
    let (service, ()) = tokio::join!(reads_and_namespaces, beside);
    let service = service?;
    // The Service only after its namespace exists.
    if service.context("reading the kubernetes Service")?.is_none() {
        kubernetes_service(&client, cluster, https_port)
            .await
            .context("creating the kubernetes Service")?;
    }
    Ok(())
}

async fn system_namespace(client: &kube::Client, ns: &'static str) -> anyhow::Result<()> {
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}
    });
    if create(client, NAMESPACES, &obj)
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
    client: &kube::Client,
    cluster: &ClusterConfig,
    https_port: u16,
) -> anyhow::Result<()> {
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster.kubernetes_service_ip().to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": https_port}],
        },
    });
    create(client, SERVICES, &obj).await?;
    Ok(())
}

/// Create `obj` in the collection at `path`, known missing a moment ago:
/// true when this call created it, false when another writer did in
/// between.
async fn create(client: &kube::Client, path: &str, obj: &Value) -> Result<bool, kube::Error> {
    let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let req = Request::new(path)
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    match client.request::<Value>(req).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
        Err(e) => Err(e),
    }
}
