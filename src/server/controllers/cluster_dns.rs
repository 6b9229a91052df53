//! The cluster DNS Service: `kube-system/kube-dns` at the cluster DNS
//! address (10.43.0.10), and its endpoints, which are the nodes: every
//! agent answers DNS on its node's address, port 53 (agent/dns). The
//! Service's internalTrafficPolicy is Local, so a pod's queries go to its
//! own node's server and never cross the network. k3s runs CoreDNS pods
//! behind the same Service; skiff runs none.
//!
//! The Service is made when missing (deleted by hand: made again, as k3s
//! re-applies its packaged manifests); its slice follows the Nodes: one
//! endpoint per node with an InternalIP, ready while the node is.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::runtime::{Informer, Informers, Passes};
use crate::cluster::ClusterConfig;

pub const AGENT: &str = "skiff-cluster-dns";
pub const SERVICE: &str = "kube-dns";
pub const NAMESPACE: &str = "kube-system";
/// The slice the controller owns.
pub const SLICE: &str = "kube-dns-nodes";
/// A pass also runs this often, to put back what was changed by hand.
const PERIOD: Duration = Duration::from_secs(60);

/// The Service, as k3s's CoreDNS manifest names it.
pub fn service(cluster: &ClusterConfig) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": SERVICE,
            "namespace": NAMESPACE,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster.cluster_dns.to_string(),
            "internalTrafficPolicy": "Local",
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
        },
    })
}

fn internal_ip(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP" && a.address.parse::<std::net::Ipv4Addr>().is_ok())
        .map(|a| a.address.clone())
}

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The endpoints and ports the slice should hold: the nodes, by name.
pub fn desired(nodes: &[Arc<Node>]) -> (Value, Value) {
    let mut endpoints: Vec<(String, Value)> = nodes
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            let ip = internal_ip(n)?;
            Some((
                name.clone(),
                json!({
                    "addresses": [ip],
                    "conditions": {"ready": ready(n), "serving": ready(n), "terminating": false},
                    "nodeName": name,
                }),
            ))
        })
        .collect();
    endpoints.sort_by(|a, b| a.0.cmp(&b.0));
    let endpoints = Value::Array(endpoints.into_iter().map(|(_, e)| e).collect());
    let ports = json!([
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]);
    (endpoints, ports)
}

fn slice(endpoints: Value, ports: Value) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": SLICE,
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": SERVICE,
                "endpointslice.kubernetes.io/managed-by": AGENT,
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    })
}

pub async fn run(
    client: kube::Client,
    informers: &Informers,
    cancel: CancellationToken,
    cluster: ClusterConfig,
) {
    let nodes: Arc<Informer<Node>> = informers.get::<Node>();
    let mut passes = Passes::every(PERIOD);
    passes.on(&nodes);
    nodes.synced().await;
    loop {
        if let Err(e) = pass(&client, &nodes, &cluster).await {
            tracing::debug!(controller = AGENT, "{e}");
        }
        if !passes.next(&cancel).await {
            return;
        }
    }
}

async fn pass(
    client: &kube::Client,
    nodes: &Informer<Node>,
    cluster: &ClusterConfig,
) -> Result<(), kube::Error> {
    use kube::api::{Api, DynamicObject, PostParams};
    let services: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&()),
    );
    if services.get_opt(SERVICE).await?.is_none() {
        let svc: DynamicObject =
            serde_json::from_value(service(cluster)).map_err(kube::Error::SerdeError)?;
        match services.create(&PostParams::default(), &svc).await {
            Ok(_) => {
                tracing::info!(service = SERVICE, ip = %cluster.cluster_dns, "created the cluster DNS Service")
            }
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    let slices: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &kube::api::ApiResource::erase::<k8s_openapi::api::discovery::v1::EndpointSlice>(&()),
    );
    let (endpoints, ports) = desired(&nodes.list_all());
    let current = slices.get_opt(SLICE).await?;
    let want = slice(endpoints.clone(), ports.clone());
    match current {
        None => {
            let obj: DynamicObject =
                serde_json::from_value(want).map_err(kube::Error::SerdeError)?;
            match slices.create(&PostParams::default(), &obj).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Some(cur) => {
            if cur.data.get("endpoints") == Some(&endpoints)
                && cur.data.get("ports") == Some(&ports)
                && cur.data.get("addressType") == Some(&json!("IPv4"))
            {
                return Ok(());
            }
            let mut obj: DynamicObject =
                serde_json::from_value(want).map_err(kube::Error::SerdeError)?;
            obj.metadata.resource_version = cur.metadata.resource_version.clone();
            slices.replace(SLICE, &PostParams::default(), &obj).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, ready: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {
                    "addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
                    "conditions": [{"type": "Ready", "status": ready}],
                },
            }))
            .unwrap(),
        )
    }

    #[test]
    fn every_node_with_an_address_is_an_endpoint_ready_as_the_node() {
        let (eps, ports) = desired(&[
            node("b", "192.0.2.2", "False"),
            node("a", "192.0.2.1", "True"),
            node("v6", "2001:db8::1", "True"),
        ]);
        assert_eq!(eps.as_array().unwrap().len(), 2);
        assert_eq!(eps[0]["nodeName"], "a");
        assert_eq!(eps[0]["addresses"][0], "192.0.2.1");
        assert_eq!(eps[0]["conditions"]["ready"], true);
        assert_eq!(eps[1]["conditions"]["ready"], false);
        assert_eq!(ports[0]["protocol"], "UDP");
        let svc = service(&ClusterConfig::default());
        assert_eq!(svc["spec"]["clusterIP"], "10.43.0.10");
        assert_eq!(svc["spec"]["internalTrafficPolicy"], "Local");
    }
}
