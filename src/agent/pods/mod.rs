//! Pods on this node: the manager follows the pods bound here and gives
//! each a worker (manager.rs, worker.rs), which pulls images (images.rs),
//! runs containers built from the pod (spec.rs, pure) and reports what
//! kubelet would (status.rs, pure); volumes.rs lays out the pod's volumes;
//! static_pods/ runs pods from manifest files, with their mirror pods.

pub mod admission;
pub mod grpc_health;
pub mod images;
pub mod manager;
pub mod pod_cgroup;
pub mod probe;
pub mod spec;
pub mod static_pods;
pub mod status;
pub mod sweep;
pub mod termination_message;
pub mod volumes;
pub mod worker;
