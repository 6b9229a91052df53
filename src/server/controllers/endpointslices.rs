//! A Service's EndpointSlices: its endpoints grouped by the ports they
//! resolve to (pods may name a target port differently), each group cut
//! into slices of at most 100 (upstream's default
//! `--max-endpoints-per-slice`), in address order. Slice names are derived
//! from the Service's UID, the port set and the slice's place, so a pass
//! that runs before the informer shows the last one's slices cannot make
//! duplicates; slices of ours no longer wanted are deleted.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};

use super::endpoints::{address, Ctx, Error, Member, MANAGED_BY, MANAGER, SERVICE_NAME};
use super::podutil;
use super::runtime::Key;

/// Endpoints per slice.
pub const MAX_PER_SLICE: usize = 100;

type PortSet = Vec<(Option<String>, i32, String)>;

/// `<service>-<hash>`: of the UID alone for the first slice of the first
/// port set (the name one slice always had), else of the UID, ports and
/// place too.
pub fn slice_name(service: &str, uid: &str, ports: &PortSet, place: usize, first: bool) -> String {
    use sha2::Digest;
    let seed = if first {
        uid.to_string()
    } else {
        format!("{uid}/{ports:?}/{place}")
    };
    let hash = sha2::Sha256::digest(seed.as_bytes());
    let suffix: String = hex::encode(&hash[..3]);
    // Within the 63 characters a label-like name may take.
    let keep = service.len().min(63 - suffix.len() - 1);
    format!("{}-{suffix}", &service[..keep])
}

/// As upstream: `serving` is the pod's readiness, `ready` that and not
/// terminating, or always with `publishNotReadyAddresses`.
fn endpoint(m: &Member, service: &str, publish: bool) -> Endpoint {
    let serving = podutil::is_ready(&m.pod);
    Endpoint {
        addresses: vec![m.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !m.terminating)),
            serving: Some(serving),
            terminating: Some(m.terminating),
        }),
        hostname: address(m, service).hostname,
        node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: address(m, service).target_ref,
        ..Default::default()
    }
}

/// The slices the Service should have: (name, ports, endpoints).
pub(super) fn desired(
    service: &str,
    uid: &str,
    publish: bool,
    members: &[Member],
) -> Vec<(String, Vec<SlicePort>, Vec<Endpoint>)> {
    let mut groups: BTreeMap<&PortSet, Vec<&Member>> = BTreeMap::new();
    for m in members {
        groups.entry(&m.ports).or_default().push(m);
    }
    let mut out = Vec::new();
    for (g, (ports, group)) in groups.into_iter().enumerate() {
        let slice_ports: Vec<SlicePort> = ports
            .iter()
            .map(|(name, port, proto)| SlicePort {
                name: Some(name.clone().unwrap_or_default()),
                port: Some(*port),
                protocol: Some(proto.clone()),
                app_protocol: None,
            })
            .collect();
        for (place, chunk) in group.chunks(MAX_PER_SLICE).enumerate() {
            let name = slice_name(service, uid, ports, place, g == 0 && place == 0);
            let endpoints = chunk
                .iter()
                .map(|m| endpoint(m, service, publish))
                .collect();
            out.push((name, slice_ports.clone(), endpoints));
        }
    }
    // A Service with no endpoints still has its (empty) slice.
    if out.is_empty() {
        out.push((
            slice_name(service, uid, &Vec::new(), 0, true),
            Vec::new(),
            Vec::new(),
        ));
    }
    out
}

pub(super) async fn write(
    ctx: &Ctx,
    key: &Key,
    svc: &Service,
    members: &[Member],
) -> Result<(), Error> {
    let uid = svc.metadata.uid.clone().unwrap_or_default();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let want = desired(&key.name, &uid, publish, members);
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
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), key.name.clone());
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    let names: HashSet<String> = want.iter().map(|(n, _, _)| n.clone()).collect();
    for (name, ports, endpoints) in want {
        let mine = managed
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()));
        match mine {
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(key.namespace.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Service".into(),
                            name: key.name.clone(),
                            uid: uid.clone(),
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
                    // Made by an earlier pass the informer has not shown
                    // yet: its event brings the Service back.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Some(cur) => {
                if cur.endpoints != endpoints
                    || cur.ports.as_ref() != Some(&ports)
                    || cur.metadata.labels.as_ref() != Some(&labels)
                {
                    let mut next = (**cur).clone();
                    next.endpoints = endpoints;
                    next.ports = Some(ports);
                    next.metadata.labels = Some(labels.clone());
                    api.replace(&name, &PostParams::default(), &next).await?;
                }
            }
        }
    }
    // Surplus slices go last, once their endpoints are in the others.
    for extra in managed
        .iter()
        .filter(|s| !names.contains(s.metadata.name.as_deref().unwrap_or_default()))
    {
        let name = extra.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn member(i: usize, port: i32) -> Member {
        Member {
            pod: Arc::new(Pod {
                metadata: ObjectMeta {
                    name: Some(format!("p{i}")),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ip: format!("10.42.{}.{}", i / 250, i % 250),
            ready: true,
            terminating: false,
            ports: vec![(Some("http".into()), port, "TCP".into())],
        }
    }

    #[test]
    fn a_hundred_per_slice_and_one_group_per_port_set() {
        let mut members: Vec<Member> = (0..250).map(|i| member(i, 8080)).collect();
        members.extend((250..253).map(|i| member(i, 9090)));
        let slices = desired("web", "uid-1", false, &members);
        let sizes: Vec<usize> = slices.iter().map(|(_, _, e)| e.len()).collect();
        assert_eq!(sizes, [100, 100, 50, 3]);
        let names: HashSet<&str> = slices.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names.len(), 4, "distinct names");
        assert_eq!(
            slices[0].0,
            slice_name("web", "uid-1", &Vec::new(), 0, true)
        );
        assert_eq!(slices[3].1[0].port, Some(9090));
        // The same input names the same slices: no duplicates on a lagging
        // informer.
        let again = desired("web", "uid-1", false, &members);
        assert_eq!(
            again.iter().map(|(n, _, _)| n).collect::<Vec<_>>(),
            slices.iter().map(|(n, _, _)| n).collect::<Vec<_>>()
        );
        // Conditions as upstream: the pods here are not ready.
        let c = slices[0].2[0].conditions.clone().unwrap_or_default();
        assert_eq!((c.ready, c.serving), (Some(false), Some(false)));
        let published = desired("web", "uid-1", true, &members);
        let c = published[0].2[0].conditions.clone().unwrap_or_default();
        assert_eq!((c.ready, c.serving), (Some(true), Some(false)));
        // No endpoints: one empty slice.
        let none = desired("web", "uid-1", false, &[]);
        assert_eq!(none.len(), 1);
        assert!(none[0].2.is_empty());
    }
}
