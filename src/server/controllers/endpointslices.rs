//! A Service's EndpointSlices: its endpoints grouped by the ports they
//! resolve to (pods may name a target port differently), each group in
//! slices of at most 100 (upstream's default `--max-endpoints-per-slice`).
//! An endpoint stays in the slice it is in; new ones fill the fullest
//! slices first (`desired`). New slice names are the first free ones in a
//! sequence derived from the Service's UID and the port set, so a pass
//! that runs before the informer shows the last one's slices cannot make
//! duplicates; slices of ours left empty are deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort as SlicePort, EndpointSlice, ForZone,
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

/// How a Service's endpoints are written.
#[derive(Clone, Copy, Default)]
pub(super) struct Style {
    /// `publishNotReadyAddresses`.
    pub publish: bool,
    /// Each endpoint hinted for its own zone.
    pub hints: bool,
}

/// Whether the endpoints get zone hints: for `trafficDistribution:
/// PreferClose`, as upstream's heuristic (each ready endpoint with a zone
/// hinted for it; the proxy uses hints only when every endpoint it would
/// choose has one). The older `service.kubernetes.io/topology-mode: Auto`
/// gets none: its proportional allocation is not computed.
pub(super) fn hinted(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.traffic_distribution.as_deref())
        == Some("PreferClose")
}

/// As upstream: `serving` is the pod's readiness, `ready` that and not
/// terminating, or always with `publishNotReadyAddresses`.
fn endpoint(m: &Member, service: &str, style: Style) -> Endpoint {
    let serving = podutil::is_ready(&m.pod);
    let ready = style.publish || (serving && !m.terminating);
    Endpoint {
        addresses: vec![m.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(m.terminating),
        }),
        hostname: address(m, service).hostname,
        node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: address(m, service).target_ref,
        zone: m.zone.clone(),
        hints: m
            .zone
            .clone()
            .filter(|_| style.hints && ready)
            .map(|z| EndpointHints {
                for_zones: Some(vec![ForZone { name: z }]),
                ..Default::default()
            }),
        ..Default::default()
    }
}

/// A slice the Service should have: name, ports, endpoints.
pub(super) type Want = (String, Vec<SlicePort>, Vec<Endpoint>);

/// The slices the Service should have, given the ones it has (`existing`,
/// ours) and every slice name taken in the namespace (`taken`). As
/// upstream's reconciler, an endpoint stays in the slice it is in (only
/// that slice is rewritten when it changes or goes), new endpoints fill the
/// fullest slices with room first, and only then go to new slices; a slice
/// left empty goes. So one pod coming or going rewrites one slice, not
/// every slice after it.
pub(super) fn desired(
    service: &str,
    uid: &str,
    style: Style,
    members: &[Member],
    existing: &[Arc<EndpointSlice>],
    taken: &HashSet<String>,
) -> Vec<Want> {
    let mut groups: BTreeMap<&PortSet, Vec<&Member>> = BTreeMap::new();
    for m in members {
        groups.entry(&m.ports).or_default().push(m);
    }
    let mut existing: Vec<&Arc<EndpointSlice>> = existing.iter().collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut claimed: HashSet<&str> = HashSet::new();
    let mut names: HashSet<String> = taken.clone();
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
        // An endpoint is its address and its pod (two hostNetwork pods
        // share an address), as upstream's.
        let id = |m: &Member| (m.ip.clone(), m.pod.metadata.uid.clone().unwrap_or_default());
        let by_id: HashMap<(String, String), &Member> = group.iter().map(|m| (id(m), *m)).collect();
        let mut placed: HashSet<(String, String)> = HashSet::new();
        // The slices of this port set, each keeping the endpoints it has.
        let mut slots: Vec<(String, Vec<Endpoint>)> = Vec::new();
        for cur in &existing {
            let name = cur.metadata.name.as_deref().unwrap_or_default();
            if claimed.contains(name) || cur.ports.as_deref().unwrap_or_default() != slice_ports {
                continue;
            }
            claimed.insert(name);
            let kept = cur
                .endpoints
                .iter()
                .filter_map(|e| {
                    let ip = e.addresses.first()?.clone();
                    let uid = e.target_ref.as_ref().and_then(|r| r.uid.clone());
                    Some((ip, uid.unwrap_or_default()))
                })
                .filter_map(|k| by_id.get(&k).copied().filter(|_| placed.insert(k)))
                .map(|m| endpoint(m, service, style))
                .collect();
            slots.push((name.to_string(), kept));
        }
        let mut fresh = group.iter().filter(|m| !placed.contains(&id(m)));
        // The fullest slices with room first.
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(slots[i].1.len()));
        for i in order {
            while slots[i].1.len() < MAX_PER_SLICE {
                let Some(m) = fresh.next() else { break };
                slots[i].1.push(endpoint(m, service, style));
            }
        }
        let rest: Vec<&&Member> = fresh.collect();
        let mut place = 0;
        for chunk in rest.chunks(MAX_PER_SLICE) {
            // The first free name in a fixed sequence: a pass that runs
            // before the informer shows the last one's new slice picks the
            // same name again, and its create fails instead of duplicating.
            let name = loop {
                let n = slice_name(service, uid, ports, place, g == 0 && place == 0);
                place += 1;
                if !names.contains(&n) {
                    break n;
                }
            };
            names.insert(name.clone());
            let endpoints = chunk.iter().map(|m| endpoint(m, service, style)).collect();
            slots.push((name, endpoints));
        }
        for (name, endpoints) in slots.into_iter().filter(|(_, e)| !e.is_empty()) {
            out.push((name, slice_ports.clone(), endpoints));
        }
    }
    // A Service with no endpoints still has its (empty) slice: the one it
    // has, if any.
    if out.is_empty() {
        let name = existing
            .first()
            .and_then(|s| s.metadata.name.clone())
            .unwrap_or_else(|| slice_name(service, uid, &Vec::new(), 0, true));
        out.push((name, Vec::new(), Vec::new()));
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
    let style = Style {
        publish: svc
            .spec
            .as_ref()
            .and_then(|s| s.publish_not_ready_addresses)
            == Some(true),
        hints: hinted(svc),
    };
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let all = ctx.slices.list(&key.namespace);
    let taken: HashSet<String> = all.iter().filter_map(|s| s.metadata.name.clone()).collect();
    let managed: Vec<Arc<EndpointSlice>> = all
        .into_iter()
        .filter(|s| {
            let l = s.metadata.labels.clone().unwrap_or_default();
            l.get(SERVICE_NAME) == Some(&key.name)
                && l.get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
        })
        .collect();
    let want = desired(&key.name, &uid, style, members, &managed, &taken);
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), key.name.clone());
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    let names: HashSet<String> = want.iter().map(|(n, _, _)| n.clone()).collect();
    let mut conflict = None;
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
                    // yet, or (seldom) a name someone else took: the pass
                    // is tried again after a back-off, when the informer
                    // has the slice and the name is skipped if it is not
                    // ours. The other slices are written meanwhile.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        conflict.get_or_insert(kube::Error::Api(s));
                    }
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
    if let Some(e) = conflict {
        return Err(e.into());
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
                    uid: Some(format!("u{i}")),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ip: format!("10.42.{}.{}", i / 250, i % 250),
            ready: true,
            terminating: false,
            ports: vec![(Some("http".into()), port, "TCP".into())],
            zone: None,
        }
    }

    #[test]
    fn a_hundred_per_slice_and_one_group_per_port_set() {
        let mut members: Vec<Member> = (0..250).map(|i| member(i, 8080)).collect();
        members.extend((250..253).map(|i| member(i, 9090)));
        let slices = desired(
            "web",
            "uid-1",
            Style::default(),
            &members,
            &[],
            &HashSet::new(),
        );
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
        let again = desired(
            "web",
            "uid-1",
            Style::default(),
            &members,
            &[],
            &HashSet::new(),
        );
        assert_eq!(
            again.iter().map(|(n, _, _)| n).collect::<Vec<_>>(),
            slices.iter().map(|(n, _, _)| n).collect::<Vec<_>>()
        );
        // Conditions as upstream: the pods here are not ready.
        let c = slices[0].2[0].conditions.clone().unwrap_or_default();
        assert_eq!((c.ready, c.serving), (Some(false), Some(false)));
        let published = desired(
            "web",
            "uid-1",
            Style {
                publish: true,
                hints: false,
            },
            &members,
            &[],
            &HashSet::new(),
        );
        let c = published[0].2[0].conditions.clone().unwrap_or_default();
        assert_eq!((c.ready, c.serving), (Some(true), Some(false)));
        // No endpoints: one empty slice.
        let none = desired("web", "uid-1", Style::default(), &[], &[], &HashSet::new());
        assert_eq!(none.len(), 1);
        assert!(none[0].2.is_empty());
    }

    fn as_slices(want: &[Want]) -> Vec<Arc<EndpointSlice>> {
        want.iter()
            .map(|(name, ports, endpoints)| {
                Arc::new(EndpointSlice {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints: endpoints.clone(),
                    ports: Some(ports.clone()),
                })
            })
            .collect()
    }

    #[test]
    fn a_pod_coming_or_going_rewrites_one_slice() {
        let members: Vec<Member> = (0..250).map(|i| member(i, 8080)).collect();
        let first = desired(
            "web",
            "uid-1",
            Style::default(),
            &members,
            &[],
            &HashSet::new(),
        );
        let have = as_slices(&first);
        let taken: HashSet<String> = first.iter().map(|(n, _, _)| n.clone()).collect();
        // Pod 5 (in the first slice) goes, pod 250 comes: it takes the
        // room in the fullest slice with room, which is the first.
        let mut next: Vec<Member> = members
            .into_iter()
            .filter(|m| m.ip != "10.42.0.5")
            .collect();
        next.push(member(250, 8080));
        next.sort_by(|a, b| a.ip.cmp(&b.ip));
        let second = desired("web", "uid-1", Style::default(), &next, &have, &taken);
        let changed: Vec<&str> = second
            .iter()
            .filter(|w| !first.contains(w))
            .map(|(n, _, _)| n.as_str())
            .collect();
        assert_eq!(changed, [first[0].0.as_str()]);
        assert_eq!(second.len(), 3);
        let ips: Vec<&str> = second[0]
            .2
            .iter()
            .map(|e| e.addresses[0].as_str())
            .collect();
        assert!(
            !ips.contains(&"10.42.0.5") && ips.contains(&"10.42.1.0"),
            "{ips:?}"
        );
        // More than fit: the first slice with room fills up, the rest goes
        // to a new slice whose name skips every name taken in the namespace.
        let mut more: Vec<Member> = (0..310)
            .filter(|i| *i != 5)
            .map(|i| member(i, 8080))
            .collect();
        more.sort_by(|a, b| a.ip.cmp(&b.ip));
        let mut taken2 = taken.clone();
        let would_be = slice_name("web", "uid-1", &members_ports(), 3, false);
        taken2.insert(would_be.clone());
        let third = desired(
            "web",
            "uid-1",
            Style::default(),
            &more,
            &as_slices(&second),
            &taken2,
        );
        let sizes: Vec<usize> = third.iter().map(|(_, _, e)| e.len()).collect();
        assert_eq!(sizes, [100, 100, 100, 9]);
        assert!(third.iter().all(|(n, _, _)| *n != would_be));
        assert_eq!(third[0], second[0], "a full slice is left alone");
        // Every endpoint gone: one slice stays, the one there was, empty.
        let none = desired(
            "web",
            "uid-1",
            Style::default(),
            &[],
            &as_slices(&third),
            &taken2,
        );
        assert_eq!(none.len(), 1);
        assert_eq!(
            none[0].0,
            third[0]
                .0
                .clone()
                .min(third[1].0.clone())
                .min(third[2].0.clone())
                .min(third[3].0.clone())
        );
        assert!(none[0].2.is_empty());
    }

    fn members_ports() -> PortSet {
        vec![(Some("http".into()), 8080, "TCP".into())]
    }

    #[test]
    fn pods_sharing_an_address_are_two_endpoints() {
        // Two hostNetwork pods of one node.
        let mut a = member(1, 8080);
        let mut b = member(2, 8080);
        a.ip = "192.168.1.10".into();
        b.ip = "192.168.1.10".into();
        let members = vec![a, b];
        let first = desired(
            "web",
            "uid-1",
            Style::default(),
            &members,
            &[],
            &HashSet::new(),
        );
        assert_eq!(first[0].2.len(), 2);
        let taken: HashSet<String> = first.iter().map(|(n, _, _)| n.clone()).collect();
        let again = desired(
            "web",
            "uid-1",
            Style::default(),
            &members,
            &as_slices(&first),
            &taken,
        );
        assert_eq!(again, first);
    }

    #[test]
    fn prefer_close_hints_each_ready_endpoint_with_a_zone() {
        let svc = |td: Option<&str>| Service {
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                traffic_distribution: td.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(hinted(&svc(Some("PreferClose"))));
        assert!(!hinted(&svc(None)), "hints only for PreferClose");
        let ready = |i: usize, zone: Option<&str>| {
            let mut m = member(i, 8080);
            let mut pod = (*m.pod).clone();
            pod.status = serde_json::from_value(
                serde_json::json!({"conditions": [{"type": "Ready", "status": "True"}]}),
            )
            .ok();
            m.pod = Arc::new(pod);
            m.zone = zone.map(String::from);
            m
        };
        let mut not_ready = member(3, 8080);
        not_ready.zone = Some("z1".into());
        let members = vec![
            ready(1, Some("z1")),
            ready(2, Some("z2")),
            not_ready,
            ready(4, None),
        ];
        let style = Style {
            publish: false,
            hints: true,
        };
        let slices = desired("web", "uid-1", style, &members, &[], &HashSet::new());
        let zones: Vec<(Option<String>, Option<String>)> = slices[0]
            .2
            .iter()
            .map(|e| {
                let hint = e
                    .hints
                    .as_ref()
                    .and_then(|h| h.for_zones.as_ref())
                    .map(|z| z[0].name.clone());
                (e.zone.clone(), hint)
            })
            .collect();
        assert_eq!(
            zones,
            [
                (Some("z1".into()), Some("z1".into())),
                (Some("z2".into()), Some("z2".into())),
                // Not ready: its zone, no hint.
                (Some("z1".into()), None),
                // No zone: no hint.
                (None, None),
            ]
        );
        let plain = desired(
            "web",
            "uid-1",
            Style::default(),
            &members,
            &[],
            &HashSet::new(),
        );
        assert!(plain[0].2.iter().all(|e| e.hints.is_none()));
        assert_eq!(plain[0].2[0].zone.as_deref(), Some("z1"));
    }
}
