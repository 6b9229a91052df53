//! The Endpoints and EndpointSlice controllers (upstream's two, in one
//! pass): for each Service with a selector, the pods it picks, as an
//! Endpoints object named after the Service and EndpointSlices
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
//! - Slices (`endpointslices.rs`): one per distinct port set and per 100
//!   endpoints (upstream's default `--max-endpoints-per-slice`); Endpoints
//!   holds 1,000 addresses at most and says
//!   `endpoints.kubernetes.io/over-capacity: truncated` beyond.
//!
//! - Slice endpoints carry their node's zone (`topology.kubernetes.io/zone`)
//!   and, for Services with `trafficDistribution: PreferClose`, a hint for
//!   that zone when every endpoint has one (upstream's PreferClose
//!   heuristic); the proxy keeps a zone's traffic in the zone by them.
//!
//! Not yet: dual-stack slices; the `topology-mode: Auto` annotation's
//! proportional hints (its zones' CPU shares) are not computed.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Node, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use super::podutil;
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};

pub const AGENT: &str = "skiff-endpoint-controller";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGER: &str = "endpointslice-controller.k8s.io";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Endpoints holds this many addresses at most (upstream's maxCapacity);
/// the slices hold them all.
const MAX_ENDPOINTS: usize = 1000;
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
const WORKERS: usize = 4;
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

pub struct Ctx {
    pub(super) client: kube::Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    endpoints: Arc<Informer<Endpoints>>,
    pub(super) slices: Arc<Informer<EndpointSlice>>,
    nodes: Arc<Informer<Node>>,
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
        nodes: informers.get::<Node>(),
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
            // Compared in place, not cloned: this runs for every pod change.
            fn ip(p: &Pod) -> Option<&str> {
                p.status.as_ref().and_then(|s| s.pod_ip.as_deref())
            }
            fn phase(p: &Pod) -> Option<&str> {
                p.status.as_ref().and_then(|s| s.phase.as_deref())
            }
            let same = ip(o) == ip(n)
                && podutil::is_ready(o) == podutil::is_ready(n)
                && o.metadata.labels == n.metadata.labels
                && o.metadata.deletion_timestamp.is_some()
                    == n.metadata.deletion_timestamp.is_some()
                && phase(o) == phase(n)
                && o.spec == n.spec;
            if same {
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
    // A node's zone is in its endpoints: a change of it rewrites every
    // Service's slices (zones change seldom; the passes write nothing when
    // no endpoint is on that node).
    let (q, services) = (queue.clone(), ctx.services.clone());
    ctx.nodes.on_change(move |c: &Change<'_, Node>| {
        let zone = |n: Option<&Arc<Node>>| {
            n.and_then(|n| n.metadata.labels.as_ref()?.get(ZONE_LABEL).cloned())
        };
        if c.old.is_some() && c.new.is_some() && zone(c.old) == zone(c.new) {
            return;
        }
        for svc in services.list_all() {
            q.add(Key::of(svc.as_ref()));
        }
    });
    ctx.services.synced().await;
    ctx.pods.synced().await;
    ctx.nodes.synced().await;
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

pub(super) struct Member {
    pub(super) pod: Arc<Pod>,
    pub(super) ip: String,
    pub(super) ready: bool,
    pub(super) terminating: bool,
    pub(super) ports: Vec<(Option<String>, i32, String)>,
    /// The zone of the pod's node, if it has one.
    pub(super) zone: Option<String>,
}

pub(super) fn pod_ref(pod: &Pod) -> ObjectReference {
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
        // Gone: its slices are the garbage collector's (they are owned);
        // its Endpoints are removed here, as upstream's controller does.
        if ctx.endpoints.get_key(key).is_some() {
            let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &key.namespace);
            match api.delete(&key.name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
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
        let zone = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| ctx.nodes.get("", n))
            .and_then(|n| n.metadata.labels.as_ref()?.get(ZONE_LABEL).cloned());
        members.push(Member {
            zone,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            ready: podutil::is_ready(&pod) || publish,
            pod,
            ip,
            ports,
        });
    }
    members.sort_by(|a, b| a.ip.cmp(&b.ip));
    write_endpoints(ctx, key, &svc, &members).await?;
    super::endpointslices::write(ctx, key, &svc, &members).await?;
    Ok(Action::Done)
}

fn note(e: &Endpoints) -> Option<&str> {
    e.metadata
        .annotations
        .as_ref()?
        .get(OVER_CAPACITY)
        .map(String::as_str)
}

pub(super) fn address(m: &Member, svc_name: &str) -> EndpointAddress {
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

/// The subsets `members` make: one per distinct port set, as upstream's
/// repacking; at most MAX_ENDPOINTS addresses, and whether some were cut.
/// Ready ones are kept first, as upstream's truncation fills with not-ready
/// ones only the room the ready ones leave. The sort is stable: each list
/// keeps its order.
fn subsets_of(members: &[Member], svc_name: &str) -> (Vec<EndpointSubset>, bool) {
    let mut live: Vec<&Member> = members.iter().filter(|m| !m.terminating).collect();
    live.sort_by_key(|m| !m.ready);
    let over = live.len() > MAX_ENDPOINTS;
    let mut subsets: BTreeMap<Vec<(Option<String>, i32, String)>, EndpointSubset> = BTreeMap::new();
    for m in live.into_iter().take(MAX_ENDPOINTS) {
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
        list.push(address(m, svc_name));
    }
    (subsets.into_values().collect(), over)
}

async fn write_endpoints(
    ctx: &Ctx,
    key: &Key,
    svc: &Service,
    members: &[Member],
) -> Result<(), Error> {
    let (subsets, over) = subsets_of(members, &key.name);
    let want = Endpoints {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            labels: svc.metadata.labels.clone(),
            annotations: over
                .then(|| BTreeMap::from([(OVER_CAPACITY.to_string(), "truncated".to_string())])),
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
        Some(cur)
            if cur.subsets != want.subsets
                || cur.metadata.labels != want.metadata.labels
                || note(&cur) != note(&want) =>
        {
            let mut next = (*cur).clone();
            let over = note(&want).map(str::to_string);
            next.subsets = want.subsets;
            next.metadata.labels = want.metadata.labels;
            let notes = next.metadata.annotations.get_or_insert_with(BTreeMap::new);
            match over {
                Some(v) => notes.insert(OVER_CAPACITY.to_string(), v.to_string()),
                None => notes.remove(OVER_CAPACITY),
            };
            api.replace(&key.name, &PostParams::default(), &next)
                .await?;
        }
        Some(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: usize, ready: bool) -> Member {
        Member {
            pod: Arc::new(Pod {
                metadata: ObjectMeta {
                    name: Some(format!("p{i}")),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ip: format!("10.42.{}.{}", i / 250, i % 250),
            ready,
            terminating: false,
            ports: vec![(None, 80, "TCP".into())],
            zone: None,
        }
    }

    #[test]
    fn a_cut_keeps_the_ready_addresses() {
        // 1,100 not ready, then 5 ready: the ready ones stay.
        let mut members: Vec<Member> = (0..1100).map(|i| member(i, false)).collect();
        members.extend((1100..1105).map(|i| member(i, true)));
        let (subsets, over) = subsets_of(&members, "web");
        assert!(over);
        let ready = subsets[0].addresses.as_deref().unwrap_or_default();
        let not_ready = subsets[0]
            .not_ready_addresses
            .as_deref()
            .unwrap_or_default();
        assert_eq!((ready.len(), not_ready.len()), (5, 995));
        assert_eq!(ready[0].ip, "10.42.4.100");
        // Under the limit nothing is cut.
        let (subsets, over) = subsets_of(&members[..1000], "web");
        assert!(!over);
        assert_eq!(
            subsets[0].not_ready_addresses.as_ref().map(Vec::len),
            Some(1000)
        );
    }
}
