//! apps and batch kinds: their controllers report
//! `status.observedGeneration`, so they track `metadata.generation`.

use serde_json::Value;

use super::{int_at, Strategy};

/// Deployments, StatefulSets, DaemonSets, CronJobs.
pub struct Workload;
pub static WORKLOAD: Workload = Workload;

impl Strategy for Workload {
    fn tracks_generation(&self) -> bool {
        true
    }
}

pub struct ReplicaSet;
pub static REPLICA_SET: ReplicaSet = ReplicaSet;

impl Strategy for ReplicaSet {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn field_labels(&self) -> &'static [&'static str] {
        &["metadata.name", "metadata.namespace", "status.replicas"]
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "status.replicas").then(|| int_at(obj, "/status/replicas"))
    }
}

pub struct Job;
pub static JOB: Job = Job;

impl Strategy for Job {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn field_labels(&self) -> &'static [&'static str] {
        &["metadata.name", "metadata.namespace", "status.successful"]
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "status.successful").then(|| int_at(obj, "/status/succeeded"))
    }
}
