//! Defaulting that needs the cluster's state, done on write after the field
//! defaults of `api::defaulting`: Services get a free cluster IP and node
//! ports, and keep their cluster IP across updates.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rand::Rng;
use serde_json::{json, Value};

use super::registry::ResourceDef;
use super::ApiState;
use crate::api::status::{ApiError, Cause};
use crate::server::store::ListOptions;

/// The service CIDR 10.43.0.0/16; .1 is the `kubernetes` Service and .10
/// cluster DNS, so random allocation skips them.
const SERVICE_NET: [u8; 2] = [10, 43];
const RESERVED_HOSTS: [u16; 3] = [0, 1, 10];
const NODE_PORT_MIN: u16 = 30000;
const NODE_PORT_MAX: u16 = 32767;

fn is(def: &ResourceDef, group: &str, plural: &str) -> bool {
    def.group == group && def.plural == plural
}

pub async fn on_create(
    state: &ApiState,
    def: &ResourceDef,
    obj: &mut Value,
) -> Result<(), ApiError> {
    // Field defaults (api::defaulting) were applied by prepare_create; what
    // is left here needs the cluster's state: address and port allocation.
    if is(def, "", "services") {
        service_defaults(state, def, obj).await?;
    }
    Ok(())
}

pub fn on_update(def: &ResourceDef, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    if is(def, "", "services") {
        // clusterIP is immutable; an update that leaves it out keeps it.
        let old_ip = old.pointer("/spec/clusterIP").cloned();
        if let (Some(ip), Some(spec)) = (old_ip, new.get_mut("spec").and_then(Value::as_object_mut))
        {
            match spec.get("clusterIP").and_then(Value::as_str) {
                None | Some("") => {
                    spec.insert("clusterIP".into(), ip.clone());
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
                Some(new_ip) if Some(new_ip) != ip.as_str() => {
                    let name = super::objects::name_of(old).unwrap_or("");
                    return Err(ApiError::invalid(
                        "",
                        "Service",
                        name,
                        vec![Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!("Invalid value: \"{new_ip}\": field is immutable"),
                            field: "spec.clusterIP".into(),
                        }],
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

async fn used_service_ips_and_ports(
    state: &ApiState,
    def: &ResourceDef,
) -> Result<(HashSet<String>, HashSet<u64>), ApiError> {
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    let res = state
        .objects
        .list_raw(&def.key_prefix(), ListOptions::default())
        .await
        .map_err(|e| super::storage::store_error(def, "", e))?;
    for kv in res.items {
        let v: Value = match serde_json::from_slice(&kv.value) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if let Some(ip) = v.pointer("/spec/clusterIP").and_then(Value::as_str) {
            ips.insert(ip.to_string());
        }
        if let Some(list) = v.pointer("/spec/ports").and_then(Value::as_array) {
            for p in list {
                if let Some(n) = p.get("nodePort").and_then(Value::as_u64) {
                    ports.insert(n);
                }
            }
        }
    }
    Ok((ips, ports))
}

async fn service_defaults(
    state: &ApiState,
    def: &ResourceDef,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let (used_ips, used_ports) = used_service_ips_and_ports(state, def).await?;
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
            .unwrap_or("");
        let ip = if wanted.is_empty() {
            allocate_ip(&used_ips)?
        } else {
            wanted.to_string()
        };
        if ip != "None" && used_ips.contains(&ip) {
            return Err(ApiError::invalid(
                "",
                "Service",
                super::objects::name_of(obj).unwrap_or(""),
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: \"{ip}\": failed to allocate IP {ip}: provided IP is already allocated"
                    ),
                    field: "spec.clusterIPs".into(),
                }],
            ));
        }
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
            spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
            spec.entry("ipFamilyPolicy")
                .or_insert_with(|| json!("SingleStack"));
        }
    }
    let needs_node_port = svc_type == "NodePort" || svc_type == "LoadBalancer";
    if !needs_node_port {
        return Ok(());
    }
    let mut taken = used_ports;
    if let Some(Value::Array(ports)) = obj.pointer_mut("/spec/ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if !p.contains_key("nodePort") {
                let n = allocate_node_port(&taken)?;
                taken.insert(n as u64);
                p.insert("nodePort".into(), json!(n));
            }
        }
    }
    Ok(())
}

fn allocate_ip(used: &HashSet<String>) -> Result<String, ApiError> {
    let mut rng = rand::rng();
    for _ in 0..4096 {
        let host: u16 = rng.random_range(2..=0xfffe);
        if RESERVED_HOSTS.contains(&host) {
            continue;
        }
        let ip = Ipv4Addr::new(
            SERVICE_NET[0],
            SERVICE_NET[1],
            (host >> 8) as u8,
            host as u8,
        )
        .to_string();
        if !used.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a service IP: the range 10.43.0.0/16 is full",
    ))
}

fn allocate_node_port(used: &HashSet<u64>) -> Result<u16, ApiError> {
    let mut rng = rand::rng();
    for _ in 0..4096 {
        let p = rng.random_range(NODE_PORT_MIN..=NODE_PORT_MAX);
        if !used.contains(&(p as u64)) {
            return Ok(p);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a node port: the range 30000-32767 is full",
    ))
}
