//! Services: a cluster IP from the service range and node ports from the
//! NodePort range, both taken through `alloc` (compare-and-swap on a
//! record in the store) on create and given back on delete; the cluster
//! IP cannot change afterwards. A LoadBalancer Service with
//! `externalTrafficPolicy: Local` also gets a `healthCheckNodePort` from
//! the NodePort range (kept while it needs one, dropped when it stops).

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::alloc::{self, AllocError, Range, Want};
use super::{BoxFuture, Reallocation, Reservation, Strategy};
use crate::api::status::{ApiError, Cause};
use crate::cluster::ClusterConfig;
use crate::server::apiserver::object_store::Objects;

pub struct Service;

pub static SERVICE: Service = Service;

/// Cluster IPs, as offsets into the service CIDR. Never handed out
/// unasked: the network and broadcast addresses, the first (the
/// `kubernetes` Service) and cluster DNS's.
pub fn cluster_ip_range(plan: &ClusterConfig) -> Range {
    let net = plan.service_cidr;
    let dns = plan
        .cluster_dns
        .to_bits()
        .wrapping_sub(net.network().to_bits());
    Range {
        key: "/registry/ranges/serviceips",
        describe: net.to_string(),
        what: "Service cluster IPs (--service-cidr)",
        base: net.network().to_bits(),
        size: net.size(),
        reserved: vec![0, 1, dns, net.size() - 1],
        holders_prefix: "/registry/services/",
        held_by: |r, svc| cluster_ip_of(r, svc).into_iter().collect(),
        in_order: false,
    }
}

/// Node ports, as offsets from the range's lowest.
pub fn node_port_range(plan: &ClusterConfig) -> Range {
    let (lo, hi) = (*plan.node_ports.start(), *plan.node_ports.end());
    Range {
        key: "/registry/ranges/servicenodeports",
        describe: format!("{lo}-{hi}"),
        what: "node ports (--service-node-port-range)",
        base: u32::from(lo),
        size: u32::from(hi) - u32::from(lo) + 1,
        reserved: Vec::new(),
        holders_prefix: "/registry/services/",
        held_by: node_ports_of,
        in_order: false,
    }
}

/// The offset of `ip` in the service range, if it is in it.
fn ip_offset(r: &Range, ip: &str) -> Option<u32> {
    let ip: Ipv4Addr = ip.parse().ok()?;
    let offset = u32::from(ip).wrapping_sub(r.base);
    (offset < r.size).then_some(offset)
}

fn ip_at(r: &Range, offset: u32) -> String {
    Ipv4Addr::from(r.base + offset).to_string()
}

fn cluster_ip_of(r: &Range, svc: &Value) -> Option<u32> {
    svc.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip_offset(r, ip))
}

/// Whether `svc` needs a health check node port: upstream's rule.
fn needs_health_check(svc: &Value) -> bool {
    svc.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer")
        && svc
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

/// `spec.healthCheckNodePort`, when set (0 is unset).
fn health_port_of(svc: &Value) -> Option<i64> {
    svc.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .filter(|p| *p != 0)
}

/// The offset of node port `n` in the range, if it is in it.
fn node_port_offset(r: &Range, n: i64) -> Option<u32> {
    let lo = i64::from(r.base);
    (lo..lo + i64::from(r.size))
        .contains(&n)
        .then(|| (n - lo) as u32)
}

/// The node ports of `svc`'s ports (not its health check's).
fn port_node_ports_of(r: &Range, svc: &Value) -> Vec<u32> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .filter_map(|n| node_port_offset(r, n))
        .collect()
}

/// Every node port `svc` holds: its ports' and its health check's.
fn node_ports_of(r: &Range, svc: &Value) -> Vec<u32> {
    let mut all = port_node_ports_of(r, svc);
    all.extend(health_port_of(svc).and_then(|n| node_port_offset(r, n)));
    all
}

fn invalid(svc: &Value, field: String, message: String) -> ApiError {
    let name = crate::server::apiserver::metadata::name_of(svc).unwrap_or("");
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field,
        }],
    )
}

fn alloc_error(e: AllocError, full: &str, taken: impl FnOnce(usize, u32) -> ApiError) -> ApiError {
    match e {
        AllocError::Api(e) => e,
        AllocError::Full => ApiError::internal(full.to_string()),
        AllocError::Taken { index, member } => taken(index, member),
    }
}

impl Strategy for Service {
    fn allocate<'a>(
        &'a self,
        objects: &'a Objects,
        obj: &'a mut Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Reservation, ApiError>> {
        Box::pin(allocate(objects, obj, dry_run))
    }

    fn reallocate<'a>(
        &'a self,
        objects: &'a Objects,
        old: &'a Value,
        new: &'a mut Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Reallocation, ApiError>> {
        Box::pin(reallocate(objects, old, new, dry_run))
    }

    fn release<'a>(&'a self, objects: &'a Objects, obj: &'a Value) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let r = objects.ranges;
            let held = [
                (&r.cluster_ips, r.cluster_ips.held(obj)),
                (&r.node_ports, r.node_ports.held(obj)),
            ];
            for (range, members) in held {
                if let Err(e) = alloc::release(objects, range, &members).await {
                    // Kept taken: a member lost, never one given twice.
                    tracing::warn!(key = range.key, error = %e, "could not release the members of a deleted Service");
                }
            }
        })
    }

    fn on_update(&self, old: &Value, new: &mut Value) -> Result<(), ApiError> {
        drop_node_ports(old, new);
        // clusterIP is immutable; an update that leaves it out keeps it.
        let Some(ip) = old.pointer("/spec/clusterIP").cloned() else {
            return Ok(());
        };
        let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        match spec.get("clusterIP").and_then(Value::as_str) {
            None | Some("") => {
                spec.insert("clusterIP".into(), ip.clone());
                spec.insert("clusterIPs".into(), json!([ip]));
            }
            Some(new_ip) if Some(new_ip) != ip.as_str() => {
                return Err(invalid(
                    old,
                    "spec.clusterIP".into(),
                    format!("Invalid value: \"{new_ip}\": field is immutable"),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }
}

/// As upstream's dropTypeDependentFields: a Service that stops being a
/// NodePort or LoadBalancer gives up the node ports it had, when the
/// update left them as they were (a patch of `type` alone); ports it sets
/// anew are the user's, and validation refuses them.
fn drop_node_ports(old: &Value, new: &mut Value) {
    let wants = |v: &Value| {
        matches!(
            v.pointer("/spec/type").and_then(Value::as_str),
            Some("NodePort" | "LoadBalancer")
        )
    };
    if !wants(old) || wants(new) {
        return;
    }
    let node_port = |v: &Value, i: usize| v.pointer(&format!("/spec/ports/{i}/nodePort")).cloned();
    let count = new
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let same = (0..count).all(|i| {
        let now = node_port(new, i);
        now.is_none() || now == node_port(old, i)
    });
    if !same {
        return;
    }
    if let Some(Value::Array(ports)) = new.pointer_mut("/spec/ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.remove("nodePort");
        }
    }
}

async fn allocate(
    objects: &Objects,
    obj: &mut Value,
    dry_run: bool,
) -> Result<Reservation, ApiError> {
    let mut reserved = Reservation::default();
    let ips = &objects.ranges.cluster_ips;
    let svc_type = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if svc_type != "ExternalName" {
        // clusterIP, or else the first of clusterIPs (validation has
        // checked that the two agree when both are given).
        let wanted = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|ip| !ip.is_empty())
            .or_else(|| obj.pointer("/spec/clusterIPs/0").and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        let ip = match wanted.as_str() {
            "None" => "None".to_string(),
            ip => {
                let want = if ip.is_empty() {
                    Want::Any
                } else {
                    Want::Exactly(ip_offset(ips, ip).ok_or_else(|| {
                        invalid(obj, "spec.clusterIPs".into(), format!(
                            "Invalid value: \"{ip}\": failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                            ips.describe
                        ))
                    })?)
                };
                let got = alloc::allocate(objects, ips, &[want], dry_run)
                    .await
                    .map_err(|e| {
                        alloc_error(
                            e,
                            &format!("failed to allocate a service IP: the range {} is full", ips.describe),
                            |_, m| {
                                let ip = ip_at(ips, m);
                                invalid(obj, "spec.clusterIPs".into(), format!(
                                    "Invalid value: \"{ip}\": failed to allocate IP {ip}: provided IP is already allocated"
                                ))
                            },
                        )
                    })?;
                if !dry_run {
                    reserved.taken.push((ips, got.clone()));
                }
                got.first().map(|m| ip_at(ips, *m)).unwrap_or_default()
            }
        };
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
            spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
            spec.entry("ipFamilyPolicy")
                .or_insert_with(|| json!("SingleStack"));
        }
    }
    if let Err(e) = health_port_rule(obj) {
        reserved.release(objects).await;
        return Err(e);
    }
    if svc_type != "NodePort" && svc_type != "LoadBalancer" {
        return Ok(reserved);
    }
    if let Err(e) = node_ports(objects, obj, dry_run, (&[], None), &mut reserved).await {
        reserved.release(objects).await;
        return Err(e);
    }
    Ok(reserved)
}

/// An update keeps the node ports the Service held, takes those it now
/// asks for (or needs, after a change to type NodePort), and frees the
/// rest once stored. The cluster IP cannot change (see `on_update`).
async fn reallocate(
    objects: &Objects,
    old: &Value,
    new: &mut Value,
    dry_run: bool,
) -> Result<Reallocation, ApiError> {
    health_port_update(old, new)?;
    let ports = &objects.ranges.node_ports;
    let mut out = Reallocation::default();
    let svc_type = new
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if svc_type == "NodePort" || svc_type == "LoadBalancer" {
        let held = (
            port_node_ports_of(ports, old),
            health_port_of(old).and_then(|n| node_port_offset(ports, n)),
        );
        node_ports(objects, new, dry_run, (&held.0, held.1), &mut out.taken).await?;
    }
    if !dry_run {
        let now = node_ports_of(ports, new);
        let freed: Vec<u32> = node_ports_of(ports, old)
            .into_iter()
            .filter(|m| !now.contains(m))
            .collect();
        out.freed.taken.push((ports, freed));
    }
    Ok(out)
}

const HEALTH_PORT_RULE: &str =
    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'";

/// A health check node port only where one is needed.
fn health_port_rule(svc: &Value) -> Result<(), ApiError> {
    match health_port_of(svc) {
        Some(p) if !needs_health_check(svc) => Err(invalid(
            svc,
            "spec.healthCheckNodePort".into(),
            format!("Invalid value: {p}: {HEALTH_PORT_RULE}"),
        )),
        _ => Ok(()),
    }
}

/// As upstream: an update that leaves the health check port out keeps the
/// one held, one that no longer needs it drops it (when unchanged), and
/// the port cannot move while it is needed.
fn health_port_update(old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let held = health_port_of(old).filter(|_| needs_health_check(old));
    let asked = health_port_of(new);
    if needs_health_check(new) {
        match (held, asked) {
            (Some(h), None) => {
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("healthCheckNodePort".into(), json!(h));
                }
            }
            (Some(h), Some(a)) if h != a => {
                return Err(invalid(
                    new,
                    "spec.healthCheckNodePort".into(),
                    format!("Invalid value: {a}: cannot change healthCheckNodePort on a LoadBalancer Service with externalTrafficPolicy Local (it is {h})"),
                ));
            }
            _ => {}
        }
        return Ok(());
    }
    if asked.is_some() && asked == health_port_of(old) {
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("healthCheckNodePort");
        }
    }
    health_port_rule(new)
}

/// A node port for every port of the Service, and its health check port
/// when it needs one: the one asked for, or a free one. `held`: the node
/// ports of its ports and its health check port it has already (each
/// kept only in its own role: a port cannot move from one to the other
/// unchecked, and the health port is never one of the ports').
async fn node_ports(
    objects: &Objects,
    obj: &mut Value,
    dry_run: bool,
    (held, held_health): (&[u32], Option<u32>),
    reserved: &mut Reservation,
) -> Result<(), ApiError> {
    let range = &objects.ranges.node_ports;
    let mut wants = Vec::new();
    // Which entry of spec.ports each want is for (None: the health check).
    let mut index: Vec<Option<usize>> = Vec::new();
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, p) in ports.iter().enumerate() {
        match p.get("nodePort").and_then(Value::as_i64) {
            None | Some(0) => wants.push(Want::Any),
            Some(n) => {
                if let Some(m) = node_port_offset(range, n) {
                    if held.contains(&m) {
                        continue;
                    }
                    wants.push(Want::Exactly(m));
                    index.push(Some(i));
                    continue;
                }
                return Err(invalid(obj, format!("spec.ports[{i}].nodePort"), format!(
                    "Invalid value: {n}: provided port is not in the valid range. The range of valid ports is {}",
                    range.describe
                )));
            }
        }
        index.push(Some(i));
    }
    if needs_health_check(obj) {
        match health_port_of(obj) {
            None => {
                wants.push(Want::Any);
                index.push(None);
            }
            Some(n) => {
                let Some(m) = node_port_offset(range, n) else {
                    return Err(invalid(obj, "spec.healthCheckNodePort".into(), format!(
                        "Invalid value: {n}: provided port is not in the valid range. The range of valid ports is {}",
                        range.describe
                    )));
                };
                if port_node_ports_of(range, obj).contains(&m) {
                    return Err(invalid(
                        obj,
                        "spec.healthCheckNodePort".into(),
                        format!("Invalid value: {n}: provided port is already allocated (to one of the Service's ports)"),
                    ));
                }
                if held_health != Some(m) {
                    wants.push(Want::Exactly(m));
                    index.push(None);
                }
            }
        }
    }
    let field = |i: Option<usize>| match i {
        Some(i) => format!("spec.ports[{i}].nodePort"),
        None => "spec.healthCheckNodePort".to_string(),
    };
    let got = alloc::allocate(objects, range, &wants, dry_run)
        .await
        .map_err(|e| {
            alloc_error(
                e,
                &format!(
                    "failed to allocate a node port: the range {} is full",
                    range.describe
                ),
                |w, m| {
                    invalid(
                        obj,
                        field(index.get(w).copied().flatten()),
                        format!(
                            "Invalid value: {}: provided port is already allocated",
                            m + range.base
                        ),
                    )
                },
            )
        })?;
    if !dry_run {
        reserved.taken.push((range, got.clone()));
    }
    for (i, m) in index.iter().zip(got) {
        let port = json!(m + range.base);
        match i {
            Some(i) => {
                if let Some(p) = obj
                    .pointer_mut(&format!("/spec/ports/{i}"))
                    .and_then(Value::as_object_mut)
                {
                    p.insert("nodePort".into(), port);
                }
            }
            None => {
                if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("healthCheckNodePort".into(), port);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_in_the_ranges() {
        let plan = ClusterConfig::default();
        let (ips, ports) = (cluster_ip_range(&plan), node_port_range(&plan));
        assert_eq!(ips.describe, "10.43.0.0/16");
        assert_eq!(ips.reserved, vec![0, 1, 10, 0xffff]);
        assert_eq!(ports.describe, "30000-32767");
        assert_eq!(ip_offset(&ips, "10.43.0.1"), Some(1));
        assert_eq!(ip_offset(&ips, "10.43.1.2"), Some(258));
        assert_eq!(ip_offset(&ips, "10.96.0.1"), None);
        assert_eq!(ip_offset(&ips, "fd00::1"), None);
        assert_eq!(ip_at(&ips, 258), "10.43.1.2");
        let svc = json!({"spec": {"clusterIP": "10.43.0.7", "ports": [{"nodePort": 30001}, {"nodePort": 80}, {}]}});
        assert_eq!(ips.held(&svc), vec![7]);
        assert_eq!(ports.held(&svc), vec![1]);
        // Another plan's ranges.
        let other = ClusterConfig::new(
            "10.60.0.0/16",
            "172.20.0.0/24",
            Some("172.20.0.53".parse().unwrap()),
            "x.y",
            "31000-31009",
            None,
        )
        .unwrap();
        let (ips, ports) = (cluster_ip_range(&other), node_port_range(&other));
        assert_eq!(ips.reserved, vec![0, 1, 53, 255]);
        assert_eq!(ip_at(&ips, 7), "172.20.0.7");
        assert_eq!(ip_offset(&ips, "10.43.0.7"), None);
        assert_eq!(ports.size, 10);
        assert_eq!(node_port_offset(&ports, 31009), Some(9));
        assert_eq!(node_port_offset(&ports, 31010), None);
        assert_eq!(node_port_offset(&ports, 30999), None);
    }

    #[test]
    fn a_full_range_never_hands_out_its_reserved_addresses() {
        let plan = ClusterConfig::new(
            "10.60.0.0/16",
            "10.61.0.0/28",
            None,
            "x.y",
            "30000-30001",
            None,
        )
        .unwrap();
        let ips = cluster_ip_range(&plan);
        let mut bitmap = alloc::Bitmap::new(ips.size);
        let mut got = Vec::new();
        let mut start = 0u32;
        loop {
            start = start.wrapping_mul(7).wrapping_add(3);
            match alloc::take(&ips, &mut bitmap, &[Want::Any], || start) {
                Ok(m) => got.extend(m.iter().map(|m| ip_at(&ips, *m))),
                Err(AllocError::Full) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        got.sort_by_key(|ip| ip.parse::<Ipv4Addr>().unwrap());
        let want: Vec<String> = (2..=14)
            .filter(|n| *n != 10)
            .map(|n| format!("10.61.0.{n}"))
            .collect();
        assert_eq!(got, want);
    }
}
