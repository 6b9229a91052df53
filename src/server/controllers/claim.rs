//! Adoption and release, as upstream's ControllerRefManager: a controller
//! owns the objects whose controller reference names it; it adopts orphans
//! its selector picks (unless it is being deleted) and lets go of the ones
//! it owns that its selector no longer picks. Each change is a patch
//! guarded by the object's UID and resourceVersion, so an object replaced
//! or changed meanwhile is left for the next pass.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::podutil;

/// The controller doing the claiming.
pub struct Owner<'a> {
    /// The controller reference put on what it adopts.
    pub reference: OwnerReference,
    pub selector: Option<&'a LabelSelector>,
    /// Being deleted: adopts nothing.
    pub deleting: bool,
}

impl Owner<'_> {
    /// Of `objects`, the ones the owner controls once orphans that match
    /// (and that `adoptable` accepts) are adopted and owned ones that no
    /// longer match are released.
    pub async fn claim<K>(
        &self,
        api: &Api<K>,
        objects: Vec<Arc<K>>,
        adoptable: impl Fn(&K) -> bool,
    ) -> Result<Vec<Arc<K>>, kube::Error>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        let uid = self.reference.uid.as_str();
        let mut owned = Vec::new();
        for obj in objects {
            let meta = obj.meta();
            let matches = podutil::selects(self.selector, meta.labels.as_ref());
            let name = meta.name.clone().unwrap_or_default();
            let guard = |refs: Vec<&OwnerReference>| {
                json!({"metadata": {"ownerReferences": refs, "uid": meta.uid,
                    "resourceVersion": meta.resource_version}})
            };
            match podutil::controller_of(meta) {
                Some(r) if r.uid == uid => {
                    if matches {
                        owned.push(obj);
                    } else if meta.deletion_timestamp.is_none() {
                        let refs: Vec<&OwnerReference> = meta
                            .owner_references
                            .iter()
                            .flatten()
                            .filter(|r| r.uid != uid)
                            .collect();
                        gone_ok(
                            api.patch(&name, &PatchParams::default(), &Patch::Merge(guard(refs)))
                                .await,
                        )?;
                    }
                }
                Some(_) => {}
                None if matches
                    && !self.deleting
                    && meta.deletion_timestamp.is_none()
                    && adoptable(&obj) =>
                {
                    let refs = meta.owner_references.iter().flatten();
                    let refs = refs.chain(std::iter::once(&self.reference)).collect();
                    let patched = gone_ok(
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(guard(refs)))
                            .await,
                    )?;
                    if patched.is_some() {
                        owned.push(obj);
                    }
                }
                None => {}
            }
        }
        Ok(owned)
    }
}

/// Ok(None) when the object is gone or changed meanwhile (the next pass
/// sees it as it is).
fn gone_ok<T>(r: Result<T, kube::Error>) -> Result<Option<T>, kube::Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => Ok(None),
        Err(e) => Err(e),
    }
}
