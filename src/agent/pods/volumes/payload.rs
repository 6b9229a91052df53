//! What kubelet writes into configMap, secret, downwardAPI and projected
//! volumes: the files and their modes, from the objects already read.
//! Errors carry kubelet's messages (they end up in FailedMount events).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccountTokenProjection, Volume,
};

use super::atomic::{File, Payload};
use super::VolumeError;
use crate::agent::pods::spec;

/// kubelet's default mode for every kind of these volumes.
pub const DEFAULT_MODE: i32 = 0o644;
/// A token's lifetime when the projection does not say (upstream's).
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// A token a projection asks for: (audience, expirationSeconds).
pub type TokenKey = (String, i64);

/// The objects the pod's volumes read, as found (absent ones are missing).
#[derive(Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
    pub tokens: BTreeMap<TokenKey, String>,
    /// The node's allocatable, for resourceFieldRefs of unset limits.
    pub allocatable: Option<crate::agent::node::host::Resources>,
}

pub fn token_key(p: &ServiceAccountTokenProjection) -> TokenKey {
    (
        p.audience.clone().unwrap_or_default(),
        p.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
    )
}

/// The payload of `volume` (one of the kinds with files), or None for
/// another kind.
pub fn of(pod: &Pod, volume: &Volume, src: &Sources) -> Option<Result<Payload, VolumeError>> {
    if let Some(cm) = &volume.config_map {
        let mode = cm.default_mode.unwrap_or(DEFAULT_MODE);
        let mut out = Payload::new();
        return Some(
            config_map(
                &cm.name,
                cm.items.as_deref(),
                cm.optional,
                mode,
                src,
                &mut out,
            )
            .map(|()| out),
        );
    }
    if let Some(s) = &volume.secret {
        let mode = s.default_mode.unwrap_or(DEFAULT_MODE);
        let mut out = Payload::new();
        let name = s.secret_name.as_deref().unwrap_or_default();
        return Some(
            secret(name, s.items.as_deref(), s.optional, mode, src, &mut out).map(|()| out),
        );
    }
    if let Some(d) = &volume.downward_api {
        let mode = d.default_mode.unwrap_or(DEFAULT_MODE);
        let mut out = Payload::new();
        return Some(downward(pod, src, d.items.as_deref(), mode, &mut out).map(|()| out));
    }
    if let Some(p) = &volume.projected {
        let mode = p.default_mode.unwrap_or(DEFAULT_MODE);
        let mut out = Payload::new();
        let made = (|| {
            for s in p.sources.iter().flatten() {
                if let Some(cm) = &s.config_map {
                    config_map(
                        &cm.name,
                        cm.items.as_deref(),
                        cm.optional,
                        mode,
                        src,
                        &mut out,
                    )?;
                }
                if let Some(sec) = &s.secret {
                    secret(
                        &sec.name,
                        sec.items.as_deref(),
                        sec.optional,
                        mode,
                        src,
                        &mut out,
                    )?;
                }
                if let Some(d) = &s.downward_api {
                    downward(pod, src, d.items.as_deref(), mode, &mut out)?;
                }
                if let Some(t) = &s.service_account_token {
                    let token = src.tokens.get(&token_key(t)).ok_or_else(|| {
                        VolumeError::Token("the service account token was not issued".into())
                    })?;
                    out.insert(
                        t.path.clone(),
                        File {
                            data: token.as_bytes().to_vec(),
                            mode: mode as u32,
                        },
                    );
                }
                if s.cluster_trust_bundle.is_some() {
                    return Err(VolumeError::Unsupported(
                        "clusterTrustBundle projections".into(),
                    ));
                }
            }
            Ok(())
        })();
        return Some(made.map(|()| out));
    }
    None
}

fn config_map(
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: i32,
    src: &Sources,
    out: &mut Payload,
) -> Result<(), VolumeError> {
    let Some(cm) = src.config_maps.get(name) else {
        return if optional == Some(true) {
            Ok(())
        } else {
            Err(VolumeError::Missing(format!(
                "configmap \"{name}\" not found"
            )))
        };
    };
    let mut data: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (k, v) in cm.data.iter().flatten() {
        data.insert(k, v.as_bytes().to_vec());
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k, v.0.clone());
    }
    project(&data, items, optional, mode, out, |key| {
        format!("configmap references non-existent config key: {key}")
    })
}

fn secret(
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: i32,
    src: &Sources,
    out: &mut Payload,
) -> Result<(), VolumeError> {
    let Some(s) = src.secrets.get(name) else {
        return if optional == Some(true) {
            Ok(())
        } else {
            Err(VolumeError::Missing(format!("secret \"{name}\" not found")))
        };
    };
    let mut data: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (k, v) in s.data.iter().flatten() {
        data.insert(k, v.0.clone());
    }
    // stringData is write-only upstream, but an object stored without the
    // conversion still means it.
    for (k, v) in s.string_data.iter().flatten() {
        data.entry(k).or_insert_with(|| v.as_bytes().to_vec());
    }
    project(&data, items, optional, mode, out, |key| {
        format!("secret references non-existent secret key: {key}")
    })
}

/// Every key under its own name, or just `items` under their paths.
fn project(
    data: &BTreeMap<&str, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: i32,
    out: &mut Payload,
    missing: impl Fn(&str) -> String,
) -> Result<(), VolumeError> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(
                    k.to_string(),
                    File {
                        data: v.clone(),
                        mode: mode as u32,
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(v) = data.get(item.key.as_str()) else {
                    if optional == Some(true) {
                        continue;
                    }
                    return Err(VolumeError::Missing(missing(&item.key)));
                };
                out.insert(
                    item.path.clone(),
                    File {
                        data: v.clone(),
                        mode: item.mode.unwrap_or(mode) as u32,
                    },
                );
            }
        }
    }
    Ok(())
}

fn downward(
    pod: &Pod,
    src: &Sources,
    items: Option<&[DownwardAPIVolumeFile]>,
    mode: i32,
    out: &mut Payload,
) -> Result<(), VolumeError> {
    for item in items.into_iter().flatten() {
        let value = if let Some(f) = &item.field_ref {
            field(pod, &f.field_path)?
        } else if let Some(r) = &item.resource_field_ref {
            let default = Default::default();
            let pod_spec = pod.spec.as_ref().unwrap_or(&default);
            let c = r
                .container_name
                .as_deref()
                .and_then(|n| {
                    pod_spec
                        .containers
                        .iter()
                        .chain(pod_spec.init_containers.iter().flatten())
                        .find(|c| c.name == n)
                })
                .ok_or_else(|| {
                    VolumeError::Invalid(format!(
                        "{}: resourceFieldRef needs the name of one of the pod's containers",
                        item.path
                    ))
                })?;
            spec::resource_value(pod_spec, c, r, src.allocatable.as_ref())
                .map_err(|e| VolumeError::Invalid(e.to_string()))?
                .unwrap_or_default()
        } else {
            continue;
        };
        out.insert(
            item.path.clone(),
            File {
                data: value.into_bytes(),
                mode: item.mode.unwrap_or(mode) as u32,
            },
        );
    }
    Ok(())
}

/// The fields a downwardAPI volume may show (the API allows only these).
fn field(pod: &Pod, path: &str) -> Result<String, VolumeError> {
    let meta = &pod.metadata;
    if let Some((map, key)) = spec::subscript(path) {
        let map = match map {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => None,
        };
        return map
            .map(|m| m.get(key).cloned().unwrap_or_default())
            .ok_or_else(|| VolumeError::Invalid(format!("unsupported fieldPath: {path}")));
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => spec::format_map(meta.labels.as_ref()),
        "metadata.annotations" => spec::format_map(meta.annotations.as_ref()),
        _ => {
            return Err(VolumeError::Invalid(format!(
                "unsupported fieldPath: {path}"
            )))
        }
    })
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
