//! ControllerRevisions: the template history of DaemonSets and
//! StatefulSets, as upstream keeps it. Each revision holds the template as
//! a strategic merge patch that replaces it (`kubectl rollout undo` applies
//! the chosen one), is named `<owner>-<hash>`, and is numbered; going back
//! to an earlier template renumbers its revision as the newest rather than
//! copying it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{json, Value};

/// On each revision: its hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// On each pod: the revision it was made from.
pub const POD_REVISION_LABEL: &str = "controller-revision-hash";
/// Name collisions tried before giving up.
const COLLISIONS: i32 = 5;

/// Characters of a hash as upstream writes them (no vowels, no
/// look-alikes, so that no word is spelled).
pub const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A short name-safe hash of `value` (and of the owner's collision count,
/// which changes the name when two templates hash alike).
pub fn hash(value: &Value, collisions: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    if let Some(c) = collisions {
        bytes.extend_from_slice(c.to_string().as_bytes());
    }
    let mut h = fnv1a(&bytes);
    let mut out = String::new();
    // Ten characters at most, as upstream's.
    while out.len() < 10 {
        out.push(ALPHABET[(h % ALPHABET.len() as u32) as usize] as char);
        h /= ALPHABET.len() as u32;
        if h == 0 {
            break;
        }
    }
    out
}

/// A revision's data: the patch that puts `template` back.
pub fn data_of(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template a revision holds.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

pub fn number(rev: &ControllerRevision) -> i64 {
    rev.revision
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("no free name for a new revision after {COLLISIONS} hash collisions")]
    NoFreeName,
}

/// The owner's revision for `data`: the existing one (renumbered newest if
/// an older template came back) or a new one. `collisions` is the owner's
/// `status.collisionCount`, raised when a name is taken by other data.
pub async fn ensure(
    api: &Api<ControllerRevision>,
    owner: &OwnerReference,
    labels: &BTreeMap<String, String>,
    revisions: &[Arc<ControllerRevision>],
    data: Value,
    collisions: &mut i32,
) -> Result<ControllerRevision, Error> {
    let newest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let same = |r: &ControllerRevision| r.data.as_ref().map(|d| &d.0) == Some(&data);
    if let Some(r) = revisions
        .iter()
        .filter(|r| same(r))
        .max_by_key(|r| r.revision)
    {
        if r.revision == newest {
            return Ok(r.as_ref().clone());
        }
        let name = r.metadata.name.clone().unwrap_or_default();
        let patch = json!({"metadata": {"resourceVersion": r.metadata.resource_version},
            "revision": newest + 1});
        return Ok(api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?);
    }
    for _ in 0..COLLISIONS {
        let h = hash(&data, Some(*collisions).filter(|c| *c > 0));
        let mut labels = labels.clone();
        labels.insert(HASH_LABEL.into(), h.clone());
        let rev = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(format!("{}-{h}", owner.name)),
                labels: Some(labels),
                owner_references: Some(vec![owner.clone()]),
                ..Default::default()
            },
            data: Some(RawExtension(data.clone())),
            revision: newest + 1,
        };
        match api.create(&PostParams::default(), &rev).await {
            Ok(r) => return Ok(r),
            Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" => {
                let existing = api
                    .get(rev.metadata.name.as_deref().unwrap_or_default())
                    .await?;
                let ours = existing
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == owner.uid && r.controller == Some(true));
                if ours && same(&existing) {
                    return Ok(existing);
                }
                *collisions += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::NoFreeName)
}

/// Delete the oldest revisions beyond `limit`, sparing the `live` ones
/// (named by a pod or by the owner's status).
pub async fn truncate(
    api: &Api<ControllerRevision>,
    revisions: &[Arc<ControllerRevision>],
    live: &[String],
    limit: i32,
) -> Result<(), Error> {
    let mut dead: Vec<&Arc<ControllerRevision>> = revisions
        .iter()
        .filter(|r| !live.iter().any(|l| Some(l) == r.metadata.name.as_ref()))
        .collect();
    let excess = dead.len().saturating_sub(limit.max(0) as usize);
    dead.sort_by_key(|r| r.revision);
    for r in dead.into_iter().take(excess) {
        let dp = DeleteParams {
            preconditions: r.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(r.metadata.name.as_deref().unwrap_or_default(), &dp)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_the_template_and_replaces_on_patch() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        let d = data_of(&t);
        assert_eq!(d["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            data: Some(RawExtension(d.clone())),
            ..Default::default()
        };
        assert_eq!(template_of(&rev), Some(t));
        assert_eq!(hash(&d, None), hash(&d.clone(), None));
        assert_ne!(hash(&d, None), hash(&d, Some(1)));
    }
}
