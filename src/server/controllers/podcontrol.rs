//! Making and removing a controller's pods, as upstream's controllers do:
//! creates in slow-start batches (1, 2, 4…, so a template the API refuses
//! fails once, not a thousand times), deletes guarded by the pod's UID,
//! each announced to the expectations first so a lagging watch never makes
//! a pass act twice, and each recorded as an event on the owner.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::expectations::Expectations;
use super::runtime::Key;
use crate::events::{Recorder, NORMAL, WARNING};

pub struct PodControl<'a> {
    pub api: Api<Pod>,
    pub events: &'a Recorder,
    /// The owner, for events.
    pub owner: ObjectReference,
    pub expectations: &'a Expectations,
    pub key: &'a Key,
}

impl PodControl<'_> {
    /// Create `pods`; the first error stops the rest (they are then not
    /// expected).
    pub async fn create_all(&self, pods: Vec<Pod>) -> Result<(), kube::Error> {
        if pods.is_empty() {
            return Ok(());
        }
        self.expectations.expect(self.key, pods.len() as i64, 0);
        let pp = PostParams::default();
        let mut rest = pods.into_iter();
        let mut batch = 1;
        loop {
            let now: Vec<Pod> = rest.by_ref().take(batch).collect();
            if now.is_empty() {
                return Ok(());
            }
            let results =
                futures::future::join_all(now.iter().map(|p| self.api.create(&pp, p))).await;
            let mut first_err = None;
            for r in results {
                match r {
                    Ok(p) => self.events.object(
                        self.owner.clone(),
                        NORMAL,
                        "SuccessfulCreate",
                        format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
                    ),
                    Err(e) => {
                        self.expectations.created(self.key);
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_err {
                // Never created, never to be seen.
                for _ in rest {
                    self.expectations.created(self.key);
                }
                self.events.object(
                    self.owner.clone(),
                    WARNING,
                    "FailedCreate",
                    format!("Error creating: {e}"),
                );
                return Err(e);
            }
            batch *= 2;
        }
    }

    /// Delete `pods` (those already gone count as deleted).
    pub async fn delete_all(&self, pods: &[Arc<Pod>]) -> Result<(), kube::Error> {
        if pods.is_empty() {
            return Ok(());
        }
        self.expectations.expect(self.key, 0, pods.len() as i64);
        let results = futures::future::join_all(pods.iter().map(|p| {
            let dp = DeleteParams {
                preconditions: p.metadata.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let name = p.metadata.name.clone().unwrap_or_default();
            async move { (self.api.delete(&name, &dp).await, name) }
        }))
        .await;
        let mut first_err = None;
        for (r, name) in results {
            match r {
                Ok(_) => self.events.object(
                    self.owner.clone(),
                    NORMAL,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    self.expectations.deleted(self.key);
                    if !matches!(&e, kube::Error::Api(s) if s.is_not_found() || s.code == 409) {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        if let Some(e) = first_err {
            self.events.object(
                self.owner.clone(),
                WARNING,
                "FailedDelete",
                format!("Error deleting: {e}"),
            );
            return Err(e);
        }
        Ok(())
    }
}
