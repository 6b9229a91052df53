//! Pods on this node: what the pod worker runs (spec.rs: a Pod's container
//! as the engine's ContainerSpec) and what it reports (status.rs: the Pod's
//! status, restart policy and back-off), both pure, as kubelet computes them.

pub mod spec;
pub mod status;
