//! A container's environment as kubelet's makeEnvironmentVariables makes
//! it: envFrom, then env in order (values expanded against what came
//! before and the services' variables, sources resolved), each name set
//! once with its last value.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    Container, ObjectFieldSelector, Pod, PodSpec, ResourceFieldSelector,
};

use super::{
    ceil_div, namespace, nanos, pod_name, pod_uid, SpecContext, SpecError, KIND_CONFIG_MAP,
    KIND_SECRET, NANOS_PER_MILLI, NANOS_PER_UNIT,
};

/// kubelet's `$(VAR)` expansion (third_party/forked/golang/expansion): `$$`
/// is a literal `$`, a reference `lookup` does not know is left as written,
/// an unterminated `$(` and any other `$` pass through.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let (mut checkpoint, mut cursor) = (0, 0);
    while cursor < bytes.len() {
        if bytes[cursor] != b'$' || cursor + 1 == bytes.len() {
            cursor += 1;
            continue;
        }
        out.push_str(&input[checkpoint..cursor]);
        match bytes[cursor + 1] {
            b'$' => {
                out.push('$');
                cursor += 2;
            }
            b'(' => match input[cursor + 2..].find(')') {
                Some(len) => {
                    let name = &input[cursor + 2..cursor + 2 + len];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    cursor += len + 3;
                }
                None => {
                    out.push_str("$(");
                    cursor += 2;
                }
            },
            // The character after the '$' is copied with the rest (kept
            // whole when it is not ASCII, where Go's copy would mangle it).
            _ => {
                out.push('$');
                cursor += 1;
            }
        }
        checkpoint = cursor;
    }
    out.push_str(&input[checkpoint..]);
    out
}

/// The container's variables in the order they were first defined, each
/// with its last value: kubelet keeps them in a map, so its order is
/// arbitrary and only the values matter.
#[derive(Default)]
pub(super) struct Env {
    pub(super) vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Env {
    fn set(&mut self, name: &str, value: String) {
        match self.index.get(name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.to_string(), self.vars.len());
                self.vars.push((name.to_string(), value));
            }
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }
}

/// kubelet's makeEnvironmentVariables up to the services' variables, which
/// are looked up here but appended by `container_spec`.
pub(super) fn environment(
    pod: &Pod,
    spec: &PodSpec,
    c: &Container,
    ctx: &SpecContext,
) -> Result<Env, SpecError> {
    let ns = namespace(pod);
    let mut env = Env::default();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let data = if let Some(r) = &from.config_map_ref {
            object(ctx, KIND_CONFIG_MAP, &r.name, r.optional)?
        } else if let Some(r) = &from.secret_ref {
            object(ctx, KIND_SECRET, &r.name, r.optional)?
        } else {
            None
        };
        // kubelet 1.30+ no longer skips keys that are not strict env names
        // (RelaxedEnvironmentVariableValidation); only a name that cannot be
        // written as K=V at all is left out.
        for (key, value) in data.into_iter().flatten() {
            let name = format!("{prefix}{key}");
            if !name.is_empty() && !name.contains(['=', '\0']) {
                env.set(&name, value.clone());
            }
        }
    }
    for var in c.env.iter().flatten() {
        let value = var.value.as_deref().unwrap_or("");
        let value = if !value.is_empty() {
            let lookup = |name: &str| {
                env.get(name)
                    .or_else(|| ctx.service_env.get(name).map(String::as_str))
            };
            Some(expand(value, lookup))
        } else if let Some(source) = &var.value_from {
            if let Some(fs) = &source.field_ref {
                Some(field_value(pod, spec, fs, ctx)?)
            } else if let Some(rs) = &source.resource_field_ref {
                resource_value(spec, c, rs, ctx.allocatable)?
            } else if let Some(r) = &source.config_map_key_ref {
                key_value(ctx, KIND_CONFIG_MAP, ns, &r.name, &r.key, r.optional)?
            } else if let Some(r) = &source.secret_key_ref {
                key_value(ctx, KIND_SECRET, ns, &r.name, &r.key, r.optional)?
            } else {
                Some(String::new())
            }
        } else {
            Some(String::new())
        };
        // A missing optional source sets nothing: an envFrom value of the
        // same name stays.
        if let Some(value) = value {
            env.set(&var.name, value);
        }
    }
    Ok(env)
}

/// A referenced object's data; None when it is missing but optional.
fn object<'c>(
    ctx: &'c SpecContext,
    kind: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<&'c BTreeMap<String, String>>, SpecError> {
    match ctx.objects.get(&(kind.to_string(), name.to_string())) {
        Some(data) => Ok(Some(data)),
        None if optional == Some(true) => Ok(None),
        None if kind == KIND_SECRET => Err(SpecError::SecretNotFound(name.to_string())),
        None => Err(SpecError::ConfigMapNotFound(name.to_string())),
    }
}

fn key_value(
    ctx: &SpecContext,
    kind: &str,
    namespace: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, SpecError> {
    let Some(data) = object(ctx, kind, name, optional)? else {
        return Ok(None);
    };
    match data.get(key) {
        Some(value) => Ok(Some(value.clone())),
        None if optional == Some(true) => Ok(None),
        None => {
            let (key, namespace, name) = (key.to_string(), namespace.to_string(), name.to_string());
            Err(if kind == KIND_SECRET {
                SpecError::SecretKeyNotFound {
                    key,
                    namespace,
                    name,
                }
            } else {
                SpecError::ConfigMapKeyNotFound {
                    key,
                    namespace,
                    name,
                }
            })
        }
    }
}

/// kubelet's podFieldSelectorRuntimeValue with its field-label conversion
/// and fieldpath.ExtractFieldPathAsString.
fn field_value(
    pod: &Pod,
    spec: &PodSpec,
    fs: &ObjectFieldSelector,
    ctx: &SpecContext,
) -> Result<String, SpecError> {
    // The API server defaults apiVersion to v1; an object made without the
    // defaults is read the same way.
    if let Some(version) = fs
        .api_version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "v1")
    {
        return Err(SpecError::FieldRef(format!(
            "unsupported pod version: {version}"
        )));
    }
    let path = fs.field_path.as_str();
    let meta = &pod.metadata;
    if let Some((map, key)) = subscript(path) {
        return match map {
            "metadata.annotations" => Ok(meta
                .annotations
                .as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default()),
            "metadata.labels" => Ok(meta
                .labels
                .as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default()),
            _ => Err(SpecError::FieldRef(format!(
                "field subscript not supported: {path}"
            ))),
        };
    }
    // A host-network pod's address is the node's (kubelet's status rule too).
    let pod_ip = match ctx.pod_ip {
        Some(ip) => ip.to_string(),
        None if spec.host_network == Some(true) => ctx.host_ip.to_string(),
        None => String::new(),
    };
    Ok(match path {
        "metadata.name" => pod_name(pod).to_string(),
        "metadata.namespace" => namespace(pod).to_string(),
        "metadata.uid" => pod_uid(pod).to_string(),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "spec.nodeName" => spec
            .node_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ctx.node_name.to_string()),
        "spec.serviceAccountName" => spec.service_account_name.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip,
        // Labels kubelet converts but cannot extract.
        "spec.restartPolicy" | "spec.schedulerName" | "status.phase" => {
            return Err(SpecError::FieldRef(format!(
                "unsupported fieldPath: {path}"
            )))
        }
        _ => {
            return Err(SpecError::FieldRef(format!(
                "field label not supported: {path}"
            )))
        }
    })
}

/// `metadata.labels['k']` → ("metadata.labels", "k"), as fieldpath's
/// SplitMaybeSubscriptedPath.
pub(crate) fn subscript(path: &str) -> Option<(&str, &str)> {
    let (map, key) = path.strip_suffix("']")?.split_once("['")?;
    (!map.is_empty()).then_some((map, key))
}

/// fieldpath.FormatMap: `k="v"` lines in key order, values Go-quoted.
pub(crate) fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let lines: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", crate::api::validation::causes::go_str(v)))
        .collect();
    lines.join("\n")
}

/// resource.ExtractContainerResourceValue. A limit that is unset (or zero)
/// for cpu, memory or ephemeral-storage is the node's allocatable, as
/// kubelet's defaultPodLimitsForDownwardAPI; where that is not known the
/// value is left out (None) rather than given a wrong number.
pub(crate) fn resource_value(
    spec: &PodSpec,
    c: &Container,
    rs: &ResourceFieldSelector,
    allocatable: Option<&crate::agent::node::host::Resources>,
) -> Result<Option<String>, SpecError> {
    let c = match rs.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => c,
        Some(name) => spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .ok_or_else(|| SpecError::ResourceFieldRef(format!("container {name} not found")))?,
    };
    let field = format!("resourceFieldRef {}", rs.resource);
    let divisor = match rs.divisor.as_ref().map(|q| q.0.as_str()) {
        Some(d) => nanos(&field, d)?,
        None => 0,
    };
    let divisor = if divisor == 0 {
        NANOS_PER_UNIT
    } else {
        divisor
    };
    let unsupported =
        || SpecError::ResourceFieldRef(format!("unsupported container resource : {}", rs.resource));
    let (bag, name) = rs.resource.split_once('.').ok_or_else(unsupported)?;
    let list = c.resources.as_ref().and_then(|r| match bag {
        "limits" => r.limits.as_ref(),
        "requests" => r.requests.as_ref(),
        _ => None,
    });
    if !matches!(bag, "limits" | "requests")
        || !matches!(name, "cpu" | "memory" | "ephemeral-storage")
            && !name.starts_with("hugepages-")
    {
        return Err(unsupported());
    }
    let mut value = match list.and_then(|l| l.get(name)) {
        Some(q) => nanos(&field, &q.0)?,
        None => 0,
    };
    if bag == "limits" && value == 0 && matches!(name, "cpu" | "memory" | "ephemeral-storage") {
        let Some(a) = allocatable else {
            return Ok(None);
        };
        value = match name {
            "cpu" => i128::from(a.cpu_millis) * NANOS_PER_MILLI,
            "memory" => i128::from(a.memory_bytes) * NANOS_PER_UNIT,
            _ => i128::from(a.ephemeral_storage_bytes) * NANOS_PER_UNIT,
        };
    }
    // CPU counts in millicores, the rest in whole units, each rounded up
    // before dividing (Quantity's MilliValue and Value), as kubelet.
    let unit = if name == "cpu" {
        NANOS_PER_MILLI
    } else {
        NANOS_PER_UNIT
    };
    let (value, divisor) = (ceil_div(value, unit), ceil_div(divisor, unit).max(1));
    Ok(Some(ceil_div(value, divisor).to_string()))
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
