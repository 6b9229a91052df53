//! Pods on this node: the manager follows the pods bound here and gives
//! each a worker (manager.rs, worker.rs), which pulls images (images.rs),
//! runs containers built from the pod (spec.rs, pure) and reports what
//! kubelet would (status.rs, pure); volumes.rs lays out the pod's volumes.

pub mod grpc_health;
pub mod images;
pub mod manager;
pub mod probe;
pub mod spec;
pub mod status;
pub mod volumes;
pub mod worker;
