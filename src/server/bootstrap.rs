//! What every cluster has from the start: the system namespaces, the
//! system PriorityClasses, the bootstrap ClusterRoles and their bindings
//! (`bootstrap_policy`), and the `default/kubernetes` Service with its
//! Endpoints and EndpointSlice pointing at the API server. Written through the loopback client as
//! `auth::BOOTSTRAP_USER`, so these objects pass the same admission,
//! defaulting, validation and managedFields as any other.

use std::net::SocketAddr;

use anyhow::Context;
use kube::api::{ListParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};

use crate::api::validation::cluster_kinds::SYSTEM_PRIORITY_CLASSES;
use crate::cluster::ClusterConfig;
use crate::server::apiserver::loopback::get_opt;

/// Namespaces every cluster has from the start.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The managedFields manager of what bootstrap writes.
pub const AGENT: &str = "skiff-bootstrap";

const NAMESPACES: &str = "/api/v1/namespaces";
const SERVICES: &str = "/api/v1/namespaces/default/services";
const PRIORITY_CLASSES: &str = "/apis/scheduling.k8s.io/v1/priorityclasses";
pub(crate) const ENDPOINTS: &str = "/api/v1/namespaces/default/endpoints";
const CLUSTER_ROLES: &str = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
const CLUSTER_ROLE_BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
pub(crate) const ENDPOINT_SLICES: &str =
    "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";

/// Bootstrap, with `beside` (the allocation repair's first pass, which
/// must see no allocating create in flight) run beside its reads and its
/// namespace creates and finished before its one allocating create, the
/// Service's.
///
/// Untyped (JSON values through the client's raw requests): bootstrap reads
/// names and writes two literal objects, and k8s-openapi's typed
/// (de)serialisers for them kept code resident in every server
/// (ARCHITECTURE.md, "Invariants").
/// With `shared` (a datastore other servers use too) the kubernetes
/// endpoints are only made when missing: `server::peers` keeps them.
pub async fn run(
    client: kube::Client,
    cluster: &ClusterConfig,
    api: SocketAddr,
    shared: bool,
    beside: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // What exists, in five reads at once (on a restart that is all
    // bootstrap does, unless the API server's address changed).
    let reads_and_namespaces = async {
        let list = Request::new(NAMESPACES).list(&ListParams::default())?;
        let classes = Request::new(PRIORITY_CLASSES).list(&ListParams::default())?;
        let get = Request::new(SERVICES).get("kubernetes", &Default::default())?;
        let ep = Request::new(ENDPOINTS).get("kubernetes", &Default::default())?;
        let slice = Request::new(ENDPOINT_SLICES).get("kubernetes", &Default::default())?;
        let roles = Request::new(CLUSTER_ROLES).list(&ListParams::default())?;
        let bindings = Request::new(CLUSTER_ROLE_BINDINGS).list(&ListParams::default())?;
        let (existing, classes, service, ep, slice, roles, bindings) = tokio::join!(
            client.request::<Value>(list),
            client.request::<Value>(classes),
            get_opt(&client, get),
            get_opt(&client, ep),
            get_opt(&client, slice),
            client.request::<Value>(roles),
            client.request::<Value>(bindings),
        );
        let roles = roles.context("listing cluster roles")?;
        let bindings = bindings.context("listing cluster role bindings")?;
        let existing = existing.context("listing namespaces")?;
        let classes = classes.context("listing priority classes")?;
        let names = names_of(&existing);
        let missing = SYSTEM_NAMESPACES.iter().filter(|ns| !names.contains(ns));
        let class_names = names_of(&classes);
        let missing_classes = SYSTEM_PRIORITY_CLASSES
            .iter()
            .filter(|(n, _)| !class_names.contains(n));
        // The missing ones at once: concurrent creates share one commit of
        // the store's writer (one fsync, not six). The loopback client is
        // not held to the in-flight limits, so this holds under any of them.
        let namespaces =
            futures::future::try_join_all(missing.map(|ns| system_namespace(&client, ns)));
        let classes = futures::future::try_join_all(
            missing_classes.map(|(n, v)| system_priority_class(&client, n, *v)),
        );
        // The bootstrap policy, what of it is missing: a role the user
        // changed stays as changed, a deleted one comes back on the next
        // start (as upstream's, without its reconciling of changed ones).
        let (role_names, binding_names) = (names_of(&roles), names_of(&bindings));
        let policy = crate::server::bootstrap_policy::cluster_roles()
            .into_iter()
            .map(|r| (CLUSTER_ROLES, r))
            .chain(
                crate::server::bootstrap_policy::cluster_role_bindings()
                    .into_iter()
                    .map(|b| (CLUSTER_ROLE_BINDINGS, b)),
            )
            .filter(|(path, obj)| {
                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                let have = if *path == CLUSTER_ROLES {
                    &role_names
                } else {
                    &binding_names
                };
                !have.contains(&name)
            })
            .collect::<Vec<_>>();
        let client = &client;
        let policy = futures::future::try_join_all(policy.iter().map(|(path, obj)| async move {
            create(client, path, obj).await.with_context(|| {
                format!(
                    "creating {}",
                    obj["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
        }));
        futures::future::try_join3(namespaces, classes, policy).await?;
        anyhow::Ok((service, ep, slice))
    };
    let (read, ()) = tokio::join!(reads_and_namespaces, beside);
    let (service, ep, slice) = read?;
    let service = service.context("reading the kubernetes Service")?;
    let ep = ep.context("reading the kubernetes Endpoints")?;
    let slice = slice.context("reading the kubernetes EndpointSlice")?;
    // These only after their namespace exists; the three at once.
    let service = async {
        if service.is_none() {
            kubernetes_service(&client, cluster, api.port())
                .await
                .context("creating the kubernetes Service")?;
        }
        anyhow::Ok(())
    };
    let (want_ep, want_slice) = (api_endpoints(&[api]), api_endpoint_slice(&[api]));
    let (ep_fields, slice_fields): (&[&str], &[&str]) = if shared {
        (&[], &[])
    } else {
        (&["subsets"], &["addressType", "endpoints", "ports"])
    };
    let ep = put_if_changed(&client, ENDPOINTS, ep, want_ep, ep_fields);
    let slice = put_if_changed(&client, ENDPOINT_SLICES, slice, want_slice, slice_fields);
    let (service, ep, slice) = tokio::join!(service, ep, slice);
    service?;
    ep.context("writing the kubernetes Endpoints")?;
    slice.context("writing the kubernetes EndpointSlice")?;
    Ok(())
}

/// The `default/kubernetes` Endpoints: the API servers' advertised
/// addresses (upstream's endpoint reconciler writes the same, and marks it
/// not to be mirrored, as the slice is written beside it). One subset per
/// port, the addresses in order.
pub(crate) fn api_endpoints(apis: &[SocketAddr]) -> Value {
    let mut by_port: std::collections::BTreeMap<u16, Vec<Value>> = Default::default();
    for a in apis {
        by_port
            .entry(a.port())
            .or_default()
            .push(json!({"ip": a.ip().to_string()}));
    }
    let subsets: Vec<Value> = by_port
        .into_iter()
        .map(|(port, addresses)| {
            json!({
                "addresses": addresses,
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            })
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": subsets,
    })
}

/// The slice beside it (one port per slice: the first address's; servers
/// of one cluster listen on one port).
pub(crate) fn api_endpoint_slice(apis: &[SocketAddr]) -> Value {
    let family = if apis.first().is_none_or(|a| a.is_ipv4()) {
        "IPv4"
    } else {
        "IPv6"
    };
    let port = apis.first().map_or(6443, |a| a.port());
    let endpoints: Vec<Value> = apis
        .iter()
        .filter(|a| a.port() == port)
        .map(|a| json!({"addresses": [a.ip().to_string()], "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "labels": {"kubernetes.io/service-name": "kubernetes"},
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    })
}

/// Create `want` in `collection`, or replace what is there when one of its
/// `fields` differs (the API server moved).
pub(crate) async fn put_if_changed(
    client: &kube::Client,
    collection: &str,
    have: Option<Value>,
    mut want: Value,
    fields: &[&str],
) -> anyhow::Result<()> {
    let Some(have) = have else {
        create(client, collection, &want).await?;
        return Ok(());
    };
    if fields.iter().all(|f| have.get(*f) == want.get(*f)) {
        return Ok(());
    }
    want["metadata"]["resourceVersion"] = have["metadata"]["resourceVersion"].clone();
    let body = serde_json::to_vec(&want)?;
    let req = Request::new(collection).replace("kubernetes", &PostParams::default(), body)?;
    client.request::<Value>(req).await?;
    tracing::info!(
        collection,
        "the API servers' addresses changed: endpoints updated"
    );
    Ok(())
}

fn names_of(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|n| n["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// The system PriorityClasses (critical node and cluster components).
async fn system_priority_class(
    client: &kube::Client,
    name: &'static str,
    value: i64,
) -> anyhow::Result<()> {
    let description = if name == "system-node-critical" {
        "Used for system critical pods that must not be moved from their current node."
    } else {
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."
    };
    let obj = json!({
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        "description": description,
    });
    if create(client, PRIORITY_CLASSES, &obj)
        .await
        .with_context(|| format!("creating the priority class {name}"))?
    {
        tracing::info!(priority_class = name, "created system priority class");
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
