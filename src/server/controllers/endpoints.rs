//! The Endpoints and EndpointSlice controllers (upstream's two, in one
//! pass): for each Service with a selector, the pods it picks, as an
//! Endpoints object named after the Service and one EndpointSlice
//! (`<service>-<hash>`, label `kubernetes.io/service-name`, managed by
//! `endpointslice-controller.k8s.io`, owned by the Service).
//!
//! - Ready pods are `addresses` and `ready: true`; pods not ready are
//!   `notReadyAddresses` and `ready: false` (both listed as ready when the
//!   Service says `publishNotReadyAddresses`); terminating pods are left out
//!   of Endpoints and kept in the slice as `serving`/`terminating`, as
//!   upstream does.
//! - Ports are resolved per pod: a named targetPort is looked up in the
//!   pod's containers, and a pod without that port is left out.
//! - A pod with `hostname` and `subdomain` equal to the Service's name gets
//!   its hostname in the addresses (for StatefulSets' DNS).
//! - Services without a selector are the user's (or the API server's, for
//!   `default/kubernetes`): left alone.
//!
//! Not yet: several slices (one slice per Service holds at most 1,000
//! endpoints, as upstream's maximum per slice, and Endpoints is cut at
//! 1,000 with the `endpoints.kubernetes.io/over-capacity` annotation),
//! dual-stack slices, topology hints.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use super::podutil;
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};

pub const AGENT: &str = "skiff-endpoint-controller";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGER: &str = "endpointslice-controller.k8s.io";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MAX_ENDPOINTS: usize = 1000;
const WORKERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

pub struct Ctx {
    client: kube::Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    endpoints: Arc<Informer<Endpoints>>,
    slices: Arc<Informer<EndpointSlice>>,
}

fn selected_by(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    if sel.is_empty() {
        return false;
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let queue = Arc::new(Queue::<Key>::default());
    let ctx = Arc::new(Ctx {
        client,
        services: informers.get::<Service>(),
        pods: informers.get::<Pod>(),
        endpoints: informers.get::<Endpoints>(),
        slices: informers.get::<EndpointSlice>(),
    });
    let q = queue.clone();
    ctx.services.on_change(move |c: &Change<'_, Service>| {
        if let Some(s) = c.latest() {
            q.add(Key::of(s.as_ref()));
        }
    });
    let (q, services) = (queue.clone(), ctx.services.clone());
    ctx.pods.on_change(move |c: &Change<'_, Pod>| {
        // Only what Endpoints show: address, readiness, labels, ports,
        // deletion, node, hostname.
        if let (Some(o), Some(n)) = (c.old, c.new) {
            let shown = |p: &Pod| {
                (
                    p.status.as_ref().and_then(|s| s.pod_ip.clone()),
                    podutil::is_ready(p),
                    p.metadata.labels.clone(),
                    p.metadata.deletion_timestamp.is_some(),
                    p.status.as_ref().and_then(|s| s.phase.clone()),
                    p.spec.clone(),
                )
            };
            if shown(o) == shown(n) {
                return;
            }
        }
        for p in [c.old, c.new].into_iter().flatten() {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            for svc in services.list(ns) {
                if selected_by(&svc, p) {
                    q.add(Key::of(svc.as_ref()));
                }
            }
        }
    });
    // Someone else changed what we keep: put it back.
    let q = queue.clone();
    ctx.endpoints.on_change(move |c: &Change<'_, Endpoints>| {
        if let Some(e) = c.latest() {
            q.add(Key::of(e.as_ref()));
        }
    });
    let q = queue.clone();
    ctx.slices.on_change(move |c: &Change<'_, EndpointSlice>| {
        let Some(s) = c.latest() else { return };
        let managed = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY))
            .map(String::as_str)
            == Some(MANAGER);
        if let (true, Some(svc)) = (
            managed,
            s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME)),
        ) {
            q.add(Key::new(
                s.metadata.namespace.as_deref().unwrap_or_default(),
                svc,
            ));
        }
    });
    ctx.services.synced().await;
    ctx.pods.synced().await;
    ctx.endpoints.synced().await;
    ctx.slices.synced().await;
    let c = ctx.clone();
    runtime::run_workers(
        "endpoint-controller",
        queue,
        WORKERS,
        cancel,
        move |key: Key| {
            let c = c.clone();
            async move { reconcile(&c, &key).await }
        },
    )
    .await;
}

/// The port number a Service port reaches on `pod` (None: the pod has no
/// such named port).
fn target_port(sp: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name)
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

struct Member {
    pod: Arc<Pod>,
    ip: String,
    ready: bool,
    terminating: bool,
    ports: Vec<(Option<String>, i32, String)>,
}

fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(svc) = ctx.services.get_key(key) else {
        // Gone: its Endpoints and slices are the garbage collector's (the
        // slices are owned) or go with the namespace.
        return Ok(Action::Done);
    };
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
        return Ok(Action::Done);
    }
    let publish = spec.publish_not_ready_addresses == Some(true);
    let mut members: Vec<Member> = Vec::new();
    for pod in ctx.pods.list(&key.namespace) {
        if !selected_by(&svc, &pod) {
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|i| !i.is_empty())
        else {
            continue;
        };
        let ports: Vec<(Option<String>, i32, String)> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|sp| {
                let n = target_port(sp, &pod)?;
                Some((
                    sp.name.clone(),
                    n,
                    sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ))
            })
            .collect();
        if ports.is_empty() && spec.ports.as_ref().is_some_and(|p| !p.is_empty()) {
            continue;
        }
        members.push(Member {
            terminating: pod.metadata.deletion_timestamp.is_some(),
            ready: podutil::is_ready(&pod) || publish,
            pod,
            ip,
            ports,
        });
    }
    members.sort_by(|a, b| a.ip.cmp(&b.ip));
    members.truncate(MAX_ENDPOINTS);
    write_endpoints(ctx, key, &svc, &members).await?;
    write_slice(ctx, key, &svc, &members).await?;
    Ok(Action::Done)
}

/// The Service's slice: its name and a hash of its UID (a Service made
/// again under the same name gets another).
fn slice_name(service: &str, uid: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(uid.as_bytes());
    let suffix: String = hex::encode(&hash[..3]);
    // Within the 63 characters a label-like name may take.
    let keep = service.len().min(63 - suffix.len() - 1);
    format!("{}-{suffix}", &service[..keep])
}

fn address(m: &Member, svc_name: &str) -> EndpointAddress {
    let spec = m.pod.spec.as_ref();
    let hostname = spec
        .filter(|s| s.subdomain.as_deref() == Some(svc_name))
        .and_then(|s| s.hostname.clone());
    EndpointAddress {
        ip: m.ip.clone(),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        target_ref: Some(pod_ref(&m.pod)),
    }
}

async fn write_endpoints(
    ctx: &Ctx,
    key: &Key,
    svc: &Service,
    members: &[Member],
) -> Result<(), Error> {
    // One subset per distinct port set, as upstream's repacking.
    let mut subsets: BTreeMap<Vec<(Option<String>, i32, String)>, EndpointSubset> = BTreeMap::new();
    for m in members.iter().filter(|m| !m.terminating) {
        let e = subsets
            .entry(m.ports.clone())
            .or_insert_with(|| EndpointSubset {
                ports: Some(
                    m.ports
                        .iter()
                        .map(|(name, port, proto)| EndpointPort {
                            name: name.clone(),
                            port: *port,
                            protocol: Some(proto.clone()),
                            app_protocol: None,
                        })
                        .collect(),
                )
                .filter(|p: &Vec<EndpointPort>| !p.is_empty()),
                ..Default::default()
            });
        let list = if m.ready {
            e.addresses.get_or_insert_with(Vec::new)
        } else {
            e.not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(address(m, &key.name));
    }
    let subsets: Vec<EndpointSubset> = subsets.into_values().collect();
    let want = Endpoints {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            labels: svc.metadata.labels.clone(),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &key.namespace);
    match ctx.endpoints.get_key(key) {
        None => match api.create(&PostParams::default(), &want).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        },
        Some(cur) if cur.subsets != want.subsets || cur.metadata.labels != want.metadata.labels => {
            let mut next = (*cur).clone();
            next.subsets = want.subsets;
            next.metadata.labels = want.metadata.labels;
            api.replace(&key.name, &PostParams::default(), &next)
                .await?;
        }
        Some(_) => {}
    }
    Ok(())
}

async fn write_slice(ctx: &Ctx, key: &Key, svc: &Service, members: &[Member]) -> Result<(), Error> {
    let ports: Vec<SlicePort> = members
        .first()
        .map(|m| {
            m.ports
                .iter()
                .map(|(name, port, proto)| SlicePort {
                    name: Some(name.clone().unwrap_or_default()),
                    port: Some(*port),
                    protocol: Some(proto.clone()),
                    app_protocol: None,
                })
                .collect()
        })
        .unwrap_or_default();
    let endpoints: Vec<Endpoint> = members
        .iter()
        .map(|m| {
            let ready = m.ready && !m.terminating;
            Endpoint {
                addresses: vec![m.ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(ready),
                    serving: Some(m.ready || (m.terminating && podutil::is_ready(&m.pod))),
                    terminating: Some(m.terminating),
                }),
                hostname: address(m, &key.name).hostname,
                node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(pod_ref(&m.pod)),
                ..Default::default()
            }
        })
        .collect();
    // One name per Service (not generateName): a pass that runs before the
    // informer shows the slice the last one made cannot make a second.
    let slice_name = slice_name(&key.name, svc.metadata.uid.as_deref().unwrap_or_default());
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let managed: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .list(&key.namespace)
        .into_iter()
        .filter(|s| {
            let l = s.metadata.labels.clone().unwrap_or_default();
            l.get(SERVICE_NAME) == Some(&key.name)
                && l.get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
        })
        .collect();
    // Any other slice of ours for this Service is surplus.
    for extra in managed
        .iter()
        .filter(|s| s.metadata.name.as_deref() != Some(slice_name.as_str()))
    {
        let name = extra.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mine = managed
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some(slice_name.as_str()));
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), key.name.clone());
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    match mine {
        None => {
            let slice = EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(slice_name.clone()),
                    namespace: Some(key.namespace.clone()),
                    labels: Some(labels),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Service".into(),
                        name: key.name.clone(),
                        uid: svc.metadata.uid.clone().unwrap_or_default(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints,
                ports: Some(ports),
            };
            match api.create(&PostParams::default(), &slice).await {
                Ok(_) => {}
                // Made by an earlier pass the informer has not shown yet:
                // its event brings the Service back.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(cur) => {
            if cur.endpoints != endpoints
                || cur.ports.as_ref() != Some(&ports)
                || cur.metadata.labels.as_ref() != Some(&labels)
            {
                let mut next = (*cur).clone();
                next.endpoints = endpoints;
                next.ports = Some(ports);
                next.metadata.labels = Some(labels);
                let name = next.metadata.name.clone().unwrap_or_default();
                api.replace(&name, &PostParams::default(), &next).await?;
            }
        }
    }
    Ok(())
}
