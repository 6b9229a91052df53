//! Pods on this node: the manager follows the pods bound here and gives
//! each a worker (manager.rs, worker.rs), which pulls images (images.rs),
//! runs containers built from the pod (spec.rs, pure) and reports what
//! kubelet would (status.rs, pure).

pub mod images;
pub mod manager;
pub mod spec;
pub mod status;
pub mod worker;
