//! Nodes. Each takes a pod CIDR, a /24 of the cluster CIDR, when it is
//! stored: upstream's node IPAM controller (the range allocator) does this
//! moments after a Node appears; doing it in the write means the agent has
//! its subnet in the answer to its create, with no wait for a controller,
//! and two Nodes can never be handed one subnet (the range is `alloc`'s
//! compare-and-swap bitmap, repaired from the stored Nodes).
//!
//! A Node may come with `spec.podCIDR` set (an agent re-registering with the
//! subnet its bridge already has, or a user's manifest): that subnet is
//! taken if it is a free /24 of the range. Once set it cannot change, as
//! upstream's validation has it; a Node stored without one (the range was
//! full, or it predates this) takes one at its next update. A full range is
//! not an error: the Node is stored without a subnet and a warning logged,
//! as upstream's allocator reports CIDRNotAvailable and leaves the Node be.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use super::alloc::{self, AllocError, Range, Want};
use super::{bool_at, BoxFuture, Reallocation, Reservation, Strategy};
use crate::api::status::{ApiError, Cause};
use crate::server::apiserver::object_store::Objects;

/// Nodes register with their status (the kubelet creates them so).
pub struct Node;
pub static NODE: Node = Node;

use crate::cluster::NODE_MASK;

/// Node pod CIDRs, as the index of the /24 in the cluster CIDR.
pub fn pod_cidrs(plan: &crate::cluster::ClusterConfig) -> Range {
    let net = plan.cluster_cidr;
    Range {
        key: "/registry/ranges/podcidrs",
        describe: net.to_string(),
        what: "node pod CIDRs (--cluster-cidr)",
        base: net.network().to_bits(),
        size: 1 << (NODE_MASK - net.prefix().min(NODE_MASK)),
        reserved: Vec::new(),
        holders_prefix: "/registry/nodes/",
        held_by: |r, node| pod_cidr_of(r, node).into_iter().collect(),
        in_order: true,
    }
}

const HOST_BITS: u32 = 32 - NODE_MASK as u32;

/// The index of `cidr` in the range, if it is one of its /24s.
fn cidr_index(r: &Range, cidr: &str) -> Option<u32> {
    let (ip, prefix) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    if prefix.parse::<u8>().ok()? != NODE_MASK {
        return None;
    }
    let offset = u32::from(ip).wrapping_sub(r.base);
    (offset & ((1 << HOST_BITS) - 1) == 0 && offset >> HOST_BITS < r.size)
        .then_some(offset >> HOST_BITS)
}

fn cidr_at(r: &Range, index: u32) -> String {
    let ip = Ipv4Addr::from(r.base + (index << HOST_BITS));
    format!("{ip}/{NODE_MASK}")
}

fn given_cidr(node: &Value) -> Option<&str> {
    node.pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .or_else(|| node.pointer("/spec/podCIDRs/0").and_then(Value::as_str))
}

fn pod_cidr_of(r: &Range, node: &Value) -> Option<u32> {
    given_cidr(node).and_then(|c| cidr_index(r, c))
}

fn invalid(node: &Value, message: String) -> ApiError {
    let name = crate::server::apiserver::metadata::name_of(node).unwrap_or("");
    ApiError::invalid(
        "",
        "Node",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: "spec.podCIDRs".into(),
        }],
    )
}

fn set_cidr(node: &mut Value, cidr: &str) {
    if let Some(obj) = node.as_object_mut() {
        let spec = obj.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            spec.insert("podCIDR".into(), json!(cidr));
            spec.insert("podCIDRs".into(), json!([cidr]));
        }
    }
}

/// Take the subnet `node` asks for, or any: the reservation, or none when
/// the range is full.
async fn take(objects: &Objects, node: &mut Value, dry_run: bool) -> Result<Reservation, ApiError> {
    let mut reserved = Reservation::default();
    let range = &objects.ranges.pod_cidrs;
    let want = match given_cidr(node) {
        None => Want::Any,
        Some(cidr) => Want::Exactly(cidr_index(range, cidr).ok_or_else(|| {
            invalid(
                node,
                format!(
                    "Invalid value: \"{cidr}\": not a /{NODE_MASK} of the cluster CIDR {}",
                    range.describe
                ),
            )
        })?),
    };
    match alloc::allocate(objects, range, &[want], dry_run).await {
        Ok(got) => {
            if let Some(index) = got.first() {
                set_cidr(node, &cidr_at(range, *index));
                if !dry_run {
                    reserved.taken.push((range, got));
                }
            }
        }
        Err(AllocError::Full) => {
            let name = crate::server::apiserver::metadata::name_of(node).unwrap_or("");
            tracing::warn!(node = name, range = %range.describe, "CIDRNotAvailable: no pod CIDR is left for the node; its pods cannot have addresses until another node is deleted");
        }
        Err(AllocError::Taken { member, .. }) => {
            return Err(invalid(
                node,
                format!(
                    "Invalid value: \"{}\": the pod CIDR is already allocated to another node",
                    cidr_at(range, member)
                ),
            ))
        }
        Err(AllocError::Api(e)) => return Err(e),
    }
    Ok(reserved)
}

impl Strategy for Node {
    fn status_on_create(&self, _obj: &mut Map<String, Value>) {}

    fn field_labels(&self) -> &'static [&'static str] {
        &["metadata.name", "spec.unschedulable"]
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "spec.unschedulable").then(|| bool_at(obj, "/spec/unschedulable"))
    }

    fn allocate<'a>(
        &'a self,
        objects: &'a Objects,
        obj: &'a mut Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Reservation, ApiError>> {
        Box::pin(take(objects, obj, dry_run))
    }

    fn on_update(&self, old: &Value, new: &mut Value) -> Result<(), ApiError> {
        // Set once, then fixed; an update leaving it out keeps it.
        let Some(held) = given_cidr(old).map(str::to_string) else {
            return Ok(());
        };
        match given_cidr(new) {
            None => {}
            Some(c) if c != held => {
                return Err(invalid(
                    old,
                    format!("Invalid value: \"{c}\": node updates may only change podCIDR from unset to a value"),
                ))
            }
            Some(_) => {}
        }
        // podCIDRs with it: the same single subnet (left out: kept).
        match new.pointer("/spec/podCIDRs") {
            None | Some(Value::Null) => {}
            Some(list) if *list == json!([held]) => {}
            Some(list) => {
                return Err(invalid(
                    old,
                    format!("Invalid value: {list}: node updates may not change podCIDRs"),
                ))
            }
        }
        set_cidr(new, &held);
        Ok(())
    }

    fn reallocate<'a>(
        &'a self,
        objects: &'a Objects,
        old: &'a Value,
        new: &'a mut Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Reallocation, ApiError>> {
        Box::pin(async move {
            if given_cidr(old).is_some() {
                return Ok(Reallocation::default());
            }
            Ok(Reallocation {
                taken: take(objects, new, dry_run).await?,
                freed: Reservation::default(),
            })
        })
    }

    fn release<'a>(&'a self, objects: &'a Objects, obj: &'a Value) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let range = &objects.ranges.pod_cidrs;
            if let Err(e) = alloc::release(objects, range, &range.held(obj)).await {
                // Kept taken: a subnet lost, never one given twice.
                tracing::warn!(error = %e, "could not release the pod CIDR of a deleted Node");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_are_the_24s_of_the_cluster_cidr() {
        let r = pod_cidrs(&crate::cluster::ClusterConfig::default());
        assert_eq!(r.size, 256);
        assert_eq!(cidr_index(&r, "10.42.0.0/24"), Some(0));
        assert_eq!(cidr_index(&r, "10.42.7.0/24"), Some(7));
        assert_eq!(cidr_index(&r, "10.42.255.0/24"), Some(255));
        assert_eq!(cidr_at(&r, 7), "10.42.7.0/24");
        for bad in [
            "10.42.7.1/24",
            "10.42.7.0/25",
            "10.43.0.0/24",
            "10.41.255.0/24",
            "10.42.7.0",
            "x/24",
        ] {
            assert_eq!(cidr_index(&r, bad), None, "{bad}");
        }
        // A /14 holds 1,024 nodes; a /24 one.
        let plan = |c: &str| {
            crate::cluster::ClusterConfig::new(c, "10.96.0.0/16", None, "x.y", "30000-32767", None)
                .unwrap()
        };
        let wide = pod_cidrs(&plan("10.64.0.0/14"));
        assert_eq!(wide.size, 1024);
        assert_eq!(cidr_at(&wide, 1023), "10.67.255.0/24");
        assert_eq!(cidr_index(&wide, "10.66.1.0/24"), Some(513));
        assert_eq!(pod_cidrs(&plan("10.70.3.0/24")).size, 1);
    }

    #[test]
    fn a_set_pod_cidr_is_kept_and_cannot_change() {
        let old = json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.42.3.0/24", "podCIDRs": ["10.42.3.0/24"]}});
        let mut new = json!({"metadata": {"name": "n"}, "spec": {}});
        NODE.on_update(&old, &mut new).unwrap();
        assert_eq!(new["spec"]["podCIDRs"], json!(["10.42.3.0/24"]));
        let mut moved = json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.42.4.0/24"}});
        let e = NODE.on_update(&old, &mut moved).unwrap_err();
        assert_eq!(e.code, 422, "{e:?}");
        let mut listed = json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.42.3.0/24", "podCIDRs": ["10.42.3.0/24", "10.42.9.0/24"]}});
        assert_eq!(NODE.on_update(&old, &mut listed).unwrap_err().code, 422);
        let mut only_list =
            json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.42.4.0/24"]}});
        assert_eq!(NODE.on_update(&old, &mut only_list).unwrap_err().code, 422);
        // Unset before: anything goes (the allocation checks it).
        let mut set = json!({"spec": {"podCIDR": "10.42.4.0/24"}});
        NODE.on_update(&json!({"spec": {}}), &mut set).unwrap();
    }
}
