//! The cluster's address plan as the cluster was made with it, kept in
//! the store (`/registry/skiff/clusterplan`): every address handed out, the
//! `kube-dns` Service, pods' resolv.conf and the nodes' pod network follow
//! it, so a server started later with other values (or a second server on
//! the same store) is refused before it serves, naming what was asked for
//! then and now. k3s asks the same of its "critical configuration values".
//!
//! A data directory from before the record has none: its allocation
//! records and its `kube-dns` Service stand for it, and the record is
//! written once they agree with the flags.

use serde_json::Value;

use crate::cluster::ClusterConfig;
use crate::server::apiserver::object_store::Objects;
use crate::server::store;

pub const KEY: &str = "/registry/skiff/clusterplan";
const KUBE_DNS: &str = "/registry/services/kube-system/kube-dns";

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("this cluster was made with {0}: these cannot change once a cluster is made; start the server with the values it was made with (or on a fresh data directory)")]
    Changed(String),
    #[error(
        "the stored cluster plan {KEY} is corrupt ({0}): restore the data directory from a backup"
    )]
    Corrupt(String),
    #[error("reading the cluster plan: {0}")]
    Store(#[from] store::Error),
}

/// Check `plan` against the one the cluster was made with, recording it
/// on the first start.
pub async fn settle(objects: &Objects, plan: &ClusterConfig) -> Result<(), PlanError> {
    // Two servers starting at once on one store: the loser of the create
    // reads the winner's record.
    for _ in 0..3 {
        if let Some(kv) = objects.store.get(KEY, None).await? {
            let made: ClusterConfig =
                serde_json::from_slice(&kv.value).map_err(|e| PlanError::Corrupt(e.to_string()))?;
            let changes = plan.changes_from(&made);
            return match changes.is_empty() {
                true => Ok(()),
                false => Err(PlanError::Changed(changes.join(", "))),
            };
        }
        legacy_agrees(objects, plan).await?;
        let record = serde_json::to_vec(plan).map_err(|e| PlanError::Corrupt(e.to_string()))?;
        match objects.store.create(KEY, record.into()).await {
            Ok(_) => return Ok(()),
            Err(store::Error::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(PlanError::Corrupt("it changes as it is read".into()))
}

/// A data directory without the record: its ranges' records and its
/// cluster DNS Service must be the flags'.
async fn legacy_agrees(objects: &Objects, plan: &ClusterConfig) -> Result<(), PlanError> {
    let mut changes = Vec::new();
    for range in objects.ranges.all() {
        let Some(kv) = objects.store.get(range.key, None).await? else {
            continue;
        };
        let v: Value =
            serde_json::from_slice(&kv.value).map_err(|e| PlanError::Corrupt(e.to_string()))?;
        let stored = v.get("range").and_then(Value::as_str).unwrap_or("no range");
        if stored != range.describe {
            changes.push(format!(
                "{stored} for {} (now {})",
                range.what, range.describe
            ));
        }
    }
    if let Some(kv) = objects.store.get(KUBE_DNS, None).await? {
        let v: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
        let ip = v.pointer("/spec/clusterIP").and_then(Value::as_str);
        if let Some(ip) = ip.filter(|ip| *ip != plan.cluster_dns.to_string()) {
            changes.push(format!("--cluster-dns {ip} (now {})", plan.cluster_dns));
        }
    }
    match changes.is_empty() {
        true => Ok(()),
        false => Err(PlanError::Changed(changes.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::sqlite::SqliteBackend;
    use crate::server::store::Backend;

    fn objects(store: &std::sync::Arc<SqliteBackend>, plan: &ClusterConfig) -> Objects {
        Objects::new(store.clone()).with_plan(plan)
    }

    #[tokio::test]
    async fn a_plan_is_recorded_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteBackend::open(&dir.path().join("db")).unwrap();
        let made = ClusterConfig::default();
        settle(&objects(&store, &made), &made).await.unwrap();
        settle(&objects(&store, &made), &made).await.unwrap();
        // Cluster DNS served or not may change.
        let quiet = ClusterConfig {
            dns: false,
            ..made.clone()
        };
        settle(&objects(&store, &quiet), &quiet).await.unwrap();
        let other = ClusterConfig::new(
            "10.42.0.0/16",
            "10.43.0.0/16",
            Some("10.43.0.53".parse().unwrap()),
            "cluster.local",
            "30000-32767",
            None,
        )
        .unwrap();
        let e = settle(&objects(&store, &other), &other).await.unwrap_err();
        assert!(
            e.to_string().contains(
                "--cluster-dns 10.43.0.10 (now 10.43.0.53), --pod-network vxlan (now none)"
            ),
            "{e}"
        );
        store.close().await;
    }

    #[tokio::test]
    async fn a_data_directory_from_before_the_record_is_held_to_its_ranges_and_dns() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteBackend::open(&dir.path().join("db")).unwrap();
        let made = ClusterConfig::default();
        let ips = &objects(&store, &made).ranges.cluster_ips;
        let record = super::super::alloc::encode(ips, &super::super::alloc::Bitmap::new(ips.size));
        store.create(ips.key, record).await.unwrap();
        store
            .create(KUBE_DNS, r#"{"spec":{"clusterIP":"10.43.0.10"}}"#.into())
            .await
            .unwrap();
        let other = ClusterConfig::new(
            "10.42.0.0/16",
            "10.44.0.0/16",
            None,
            "cluster.local",
            "30000-32767",
            Some(crate::net::overlay::Backend::Vxlan),
        )
        .unwrap();
        let e = settle(&objects(&store, &other), &other).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(
                "10.43.0.0/16 for Service cluster IPs (--service-cidr) (now 10.44.0.0/16)"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("--cluster-dns 10.43.0.10 (now 10.44.0.10)"),
            "{msg}"
        );
        assert!(
            store.get(KEY, None).await.unwrap().is_none(),
            "a refused plan is not recorded"
        );
        settle(&objects(&store, &made), &made).await.unwrap();
        assert!(store.get(KEY, None).await.unwrap().is_some());
        store.close().await;
    }
}
