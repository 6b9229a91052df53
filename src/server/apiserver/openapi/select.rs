//! What of the upstream documents this server serves, and the documents
//! built from it. Upstream's v3 document of a group/version lists a path per
//! resource, subresource and scope with an operation per verb; here a path
//! is kept when the registry serves its resource (and subresource), and an
//! operation when the registry lists its verb (the same rule keeps v2's
//! paths). The schemas are those the kept paths reach, as upstream's
//! documents hold exactly those. Documents are written as text from the
//! stored JSON; only a path item that loses an operation is parsed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::artifact::{Artifact, ArtifactError, Frame};
use crate::server::apiserver::discovery::KUBE_GIT_VERSION;
use crate::server::apiserver::registry::{Registry, ResourceDef};

const V3_REF: &str = "\"$ref\":\"#/components/schemas/";
const V2_REF: &str = "\"$ref\":\"#/definitions/";
const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "options", "head"];

/// `api/v1` or `apis/<group>/<version>`: the document's name under
/// /openapi/v3 and its paths' prefix.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// What one upstream path addresses, after its group/version prefix.
#[derive(Debug, PartialEq, Eq)]
enum Target<'p> {
    /// `/apis/<g>/<v>/`: the group/version's resource list.
    Root,
    Collection {
        plural: &'p str,
        under_namespace: bool,
    },
    Item {
        plural: &'p str,
        under_namespace: bool,
        sub: Option<&'p str>,
    },
}

/// `None` for what the server has no route for (the deprecated `watch/`
/// paths, a pod's or service's proxy `{path}` tail).
fn classify(rest: &str) -> Option<Target<'_>> {
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Target::Root);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let (under_namespace, segs) = match segs.as_slice() {
        ["namespaces", "{namespace}", tail @ ..] if !tail.is_empty() => (true, tail),
        all => (false, all),
    };
    match segs {
        [plural] => Some(Target::Collection {
            plural,
            under_namespace,
        }),
        [plural, "{name}"] => Some(Target::Item {
            plural,
            under_namespace,
            sub: None,
        }),
        [plural, "{name}", sub] => Some(Target::Item {
            plural,
            under_namespace,
            sub: Some(sub),
        }),
        // nodes/proxy takes the kubelet's path after it.
        [plural @ "nodes", "{name}", sub @ "proxy", "{path}"] if !under_namespace => {
            Some(Target::Item {
                plural,
                under_namespace,
                sub: Some(sub),
            })
        }
        _ => None,
    }
}

/// The verb a method of a path needs, as the apiserver installs them.
fn verb(target: &Target<'_>, method: &str) -> Option<&'static str> {
    let collection = matches!(target, Target::Collection { .. });
    Some(match method {
        "get" if collection => "list",
        "get" => "get",
        "post" => "create",
        "put" => "update",
        "patch" => "patch",
        "delete" if collection => "deletecollection",
        "delete" => "delete",
        _ => return None,
    })
}

/// The verbs the registry serves at a target; `None`: not served at all.
fn served_verbs<'r>(
    registry: &'r Registry,
    group: &str,
    version: &str,
    target: &Target<'_>,
) -> Option<&'r [&'static str]> {
    let find = |plural: &str| -> Option<&'r ResourceDef> { registry.find(group, version, plural) };
    match *target {
        Target::Root => None,
        Target::Collection {
            plural,
            under_namespace,
        } => {
            let def = find(plural)?;
            (def.namespaced || !under_namespace).then_some(def.verbs)
        }
        Target::Item {
            plural,
            under_namespace,
            sub,
        } => {
            let def = find(plural)?;
            if def.namespaced != under_namespace {
                return None;
            }
            match sub {
                None => Some(def.verbs),
                Some(sub) => def.subresource(sub).map(|s| s.verbs),
            }
        }
    }
}

/// The served paths of one group/version in one form (`v3 ` or `v2 `),
/// each with its path item as JSON text, in upstream's order.
fn served_paths(
    registry: &Registry,
    group: &str,
    version: &str,
    frame: &Frame,
    form: &str,
) -> Vec<(String, String)> {
    let prefix = format!("/{}", gv_path(group, version));
    let mut out = Vec::new();
    let entries = frame
        .entries()
        .filter_map(|(k, v)| Some((k.strip_prefix(form)?, v)));
    for (path, item) in entries {
        let Some(target) = path.strip_prefix(&prefix).and_then(classify) else {
            continue;
        };
        if target == Target::Root {
            out.push((path.to_string(), item.to_string()));
            continue;
        }
        let Some(verbs) = served_verbs(registry, group, version, &target) else {
            continue;
        };
        let Ok(Value::Object(mut ops)) = serde_json::from_str::<Value>(item) else {
            continue;
        };
        let before = ops.len();
        ops.retain(|key, _| {
            !METHODS.contains(&key.as_str())
                || verb(&target, key).is_some_and(|v| verbs.contains(&v))
        });
        if !ops.keys().any(|k| METHODS.contains(&k.as_str())) {
            continue;
        }
        let text = if ops.len() == before {
            item.to_string()
        } else {
            Value::Object(ops).to_string()
        };
        out.push((path.to_string(), text));
    }
    out
}

/// The names `$ref`s in `text` point at.
fn refs<'t>(text: &'t str, marker: &str) -> Vec<&'t str> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = &text[at + marker.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// Every schema reachable from `roots`, sorted by name, with its text.
fn closure<'f>(
    roots: BTreeSet<String>,
    index: &HashMap<&'f str, &'f str>,
    marker: &str,
) -> BTreeMap<&'f str, &'f str> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(name) = todo.pop() {
        let Some((&key, &text)) = index.get_key_value(name.as_str()) else {
            continue;
        };
        if out.insert(key, text).is_none() {
            todo.extend(refs(text, marker).into_iter().map(str::to_string));
        }
    }
    out
}

/// The schemas frame's entries of one form (`v3 ` or `v2 `), by name.
fn index<'f>(frame: &'f Frame, form: &str) -> HashMap<&'f str, &'f str> {
    frame
        .entries()
        .filter_map(|(k, v)| Some((k.strip_prefix(form)?, v)))
        .collect()
}

fn extra(artifact: &Artifact<'_>, key: &str) -> Result<String, ArtifactError> {
    let frame = artifact
        .frame("extra")?
        .ok_or(ArtifactError::Malformed("no extra frame"))?;
    let found = frame
        .entries()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string());
    found.ok_or(ArtifactError::Malformed(
        "an entry of the extra frame is missing",
    ))
}

fn schemas_frame(artifact: &Artifact<'_>) -> Result<Frame, ArtifactError> {
    artifact
        .frame("schemas")?
        .ok_or(ArtifactError::Malformed("no schemas frame"))
}

fn json_str(s: &str) -> String {
    Value::from(s).to_string()
}

/// `"k":v,"k":v` of the pairs.
fn members<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&json_str(k));
        out.push(':');
        out.push_str(v);
    }
    out
}

fn info() -> String {
    format!(
        "{{\"title\":\"Kubernetes\",\"version\":{}}}",
        json_str(KUBE_GIT_VERSION)
    )
}

/// The schemas frame, decompressed once for the documents built from it.
pub struct Schemas(Frame);

impl Schemas {
    pub fn load(artifact: &Artifact<'_>) -> Result<Schemas, ArtifactError> {
        schemas_frame(artifact).map(Schemas)
    }
}

/// The OpenAPI v3 document of one served group/version; `None` if the
/// registry serves nothing there.
pub fn v3_document(
    registry: &Registry,
    artifact: &Artifact<'_>,
    schemas: &Schemas,
    group: &str,
    version: &str,
) -> Result<Option<String>, ArtifactError> {
    if registry.in_group_version(group, version).is_empty() {
        return Ok(None);
    }
    let paths = match artifact.frame(&format!("paths:{}", gv_path(group, version)))? {
        Some(frame) => served_paths(registry, group, version, &frame, "v3 "),
        None => Vec::new(),
    };
    let roots = paths
        .iter()
        .flat_map(|(_, item)| refs(item, V3_REF).into_iter().map(str::to_string))
        .collect();
    let schemas = closure(roots, &index(&schemas.0, "v3 "), V3_REF);
    let security = extra(artifact, "v3.securitySchemes")?;
    Ok(Some(format!(
        "{{\"openapi\":\"3.0.0\",\"info\":{},\"paths\":{{{}}},\"components\":{{\"schemas\":{{{}}},\"securitySchemes\":{security}}}}}",
        info(),
        members(paths.iter().map(|(p, i)| (p.as_str(), i.as_str()))),
        members(schemas.into_iter()),
    )))
}

/// The shared schemas `roots` reach, as `"name":{…}` members of a v3
/// document's schemas.
pub fn common_members(schemas: &Schemas, roots: &[&str]) -> String {
    let roots = roots.iter().map(|r| r.to_string()).collect();
    members(closure(roots, &index(&schemas.0, "v3 "), V3_REF).into_iter())
}

/// The `info` of every document.
pub fn document_info() -> String {
    info()
}

/// The v2 document's parts: the served paths of every served
/// group/version (as upstream's /openapi/v2 holds every served group), the
/// shared parameters and definitions they reach, and the security
/// definitions and requirements, each as JSON text.
pub struct V2 {
    pub paths: Vec<(String, String)>,
    pub parameters: BTreeMap<String, String>,
    pub definitions: BTreeMap<String, String>,
    pub security_definitions: String,
    pub security: String,
}

const PARAMETER_REF: &str = "\"$ref\":\"#/parameters/";

pub fn v2(registry: &Registry, artifact: &Artifact<'_>) -> Result<V2, ArtifactError> {
    let mut paths = Vec::new();
    for (group, version) in registry.group_versions() {
        if let Some(frame) = artifact.frame(&format!("paths:{}", gv_path(group, version)))? {
            paths.extend(served_paths(registry, group, version, &frame, "v2 "));
        }
    }
    paths.sort();
    let all_parameters: Value = serde_json::from_str(&extra(artifact, "v2.parameters")?)
        .map_err(|_| ArtifactError::Malformed("v2 parameters are not JSON"))?;
    let mut parameters = BTreeMap::new();
    for (_, item) in &paths {
        for name in refs(item, PARAMETER_REF) {
            if let Some(p) = all_parameters.get(name) {
                parameters.insert(name.to_string(), p.to_string());
            }
        }
    }
    let roots = paths
        .iter()
        .map(|(_, item)| item)
        .chain(parameters.values())
        .flat_map(|text| refs(text, V2_REF).into_iter().map(str::to_string))
        .collect();
    let frame = schemas_frame(artifact)?;
    let definitions = closure(roots, &index(&frame, "v2 "), V2_REF)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(V2 {
        paths,
        parameters,
        definitions,
        security_definitions: extra(artifact, "v2.securityDefinitions")?,
        security: extra(artifact, "v2.security")?,
    })
}

impl V2 {
    /// The v2 document as JSON.
    pub fn json(&self) -> String {
        format!(
            "{{\"swagger\":\"2.0\",\"info\":{},\"paths\":{{{}}},\"definitions\":{{{}}},\"parameters\":{{{}}},\"securityDefinitions\":{},\"security\":{}}}",
            info(),
            members(self.paths.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            members(
                self.definitions
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
            ),
            members(self.parameters.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            self.security_definitions,
            self.security,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_as_the_apiserver_installs_them() {
        assert_eq!(classify("/"), Some(Target::Root));
        assert_eq!(
            classify("/namespaces/{namespace}/deployments/{name}/scale"),
            Some(Target::Item {
                plural: "deployments",
                under_namespace: true,
                sub: Some("scale")
            })
        );
        assert_eq!(
            classify("/namespaces/{name}/finalize"),
            Some(Target::Item {
                plural: "namespaces",
                under_namespace: false,
                sub: Some("finalize")
            })
        );
        assert_eq!(
            classify("/deployments"),
            Some(Target::Collection {
                plural: "deployments",
                under_namespace: false
            })
        );
        assert_eq!(classify("/watch/namespaces/{namespace}/pods"), None);
        assert_eq!(
            classify("/namespaces/{namespace}/pods/{name}/proxy/{path}"),
            None
        );
    }

    fn doc(group: &str, version: &str) -> Value {
        let registry = Registry::builtin();
        let artifact = Artifact::builtin().unwrap();
        let schemas = Schemas::load(&artifact).unwrap();
        let text = v3_document(&registry, &artifact, &schemas, group, version)
            .unwrap()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_v3_document_holds_what_is_served_and_what_it_reaches() {
        let apps = doc("apps", "v1");
        let paths = apps["paths"].as_object().unwrap();
        let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        // kubectl's checks: PATCH takes fieldValidation and strategic merge patches.
        let patch = &item["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        assert!(patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_some());
        assert!(paths.contains_key("/apis/apps/v1/"));
        assert!(paths.contains_key("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"));
        assert!(
            !paths.keys().any(|p| p.contains("/watch/")),
            "{:?}",
            paths.keys()
        );
        let schemas = apps["components"]["schemas"].as_object().unwrap();
        for name in [
            "io.k8s.api.apps.v1.Deployment",
            "io.k8s.api.apps.v1.DeploymentList",
            "io.k8s.api.core.v1.PodSpec",
            "io.k8s.api.autoscaling.v1.Scale",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
        assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
        let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert!(strategy["allOf"][0]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("DeploymentStrategy"));
    }

    #[test]
    fn unserved_subresources_and_verbs_are_left_out() {
        let core = doc("", "v1");
        let paths = core["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/status"));
        // Not served (yet): pods' and services' proxy; attach, eviction,
        // exec, log and nodes' proxy are.
        assert!(!paths
            .keys()
            .any(|p| p.ends_with("/proxy") && !p.starts_with("/api/v1/nodes/")));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/eviction"));
        assert!(paths.contains_key("/api/v1/nodes/{name}/proxy"));
        assert!(paths.contains_key("/api/v1/nodes/{name}/proxy/{path}"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/attach"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/exec"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/log"));
        // Namespaces have no deletecollection, upstream or here.
        assert!(paths["/api/v1/namespaces"].get("delete").is_none());
        assert!(paths["/api/v1/namespaces"].get("post").is_some());
    }

    #[test]
    fn v2_holds_the_definitions_of_every_served_group_in_their_v2_form() {
        let v2 = v2(&Registry::builtin(), &Artifact::builtin().unwrap()).unwrap();
        let defs = &v2.definitions;
        assert!(defs.contains_key("io.k8s.api.apps.v1.Deployment"));
        assert!(defs.contains_key("io.k8s.api.core.v1.Pod"));
        assert!(defs.contains_key("io.k8s.api.batch.v1.CronJob"));
        let quantity: Value =
            serde_json::from_str(&defs["io.k8s.apimachinery.pkg.api.resource.Quantity"]).unwrap();
        assert_eq!(quantity["type"], "string");
        let deploy: Value = serde_json::from_str(&defs["io.k8s.api.apps.v1.Deployment"]).unwrap();
        assert_eq!(
            deploy["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let doc: Value = serde_json::from_str(&v2.json()).unwrap();
        assert_eq!(doc["swagger"], "2.0");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        let body = patch["parameters"][0]["$ref"].as_str().unwrap();
        let body = body.strip_prefix("#/parameters/").unwrap();
        assert_eq!(doc["parameters"][body]["in"], "body");
        assert!(!doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .any(|p| p.contains("/watch/") || p.contains("/pods/{name}/proxy")));
        assert!(doc["securityDefinitions"]["BearerToken"].is_object());
    }

    #[test]
    fn a_kind_added_to_the_registry_is_described_with_no_change_here() {
        // An entry as the registry would get for Ingress (its strategy and
        // rules are irrelevant here, so a ConfigMap's are borrowed).
        let mut all = Registry::builtin().builtins().to_vec();
        // Whatever the built-in registry serves of the group, only Ingress here.
        all.retain(|d| d.group != "networking.k8s.io");
        let mut ingress = all.iter().find(|d| d.kind == "ConfigMap").unwrap().clone();
        ingress.group = "networking.k8s.io";
        ingress.version = "v1";
        ingress.plural = "ingresses";
        ingress.singular = "ingress";
        ingress.kind = "Ingress";
        ingress.subresources = &[];
        all.push(ingress);
        let registry = Registry::new(all);
        let artifact = Artifact::builtin().unwrap();
        let schemas = Schemas::load(&artifact).unwrap();
        let text = v3_document(&registry, &artifact, &schemas, "networking.k8s.io", "v1")
            .unwrap()
            .unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths
            .contains_key("/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}"));
        // Only what is served: no ingresses/status, no NetworkPolicy.
        assert!(!paths
            .keys()
            .any(|p| p.ends_with("/status") || p.contains("networkpolicies")));
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("io.k8s.api.networking.v1.Ingress"));
        assert!(schemas.contains_key("io.k8s.api.networking.v1.IngressList"));
        assert!(!schemas.contains_key("io.k8s.api.networking.v1.NetworkPolicy"));
        let v2 = v2(&registry, &artifact).unwrap();
        assert!(v2
            .definitions
            .contains_key("io.k8s.api.networking.v1.IngressSpec"));
    }

    #[test]
    fn refs_are_found_in_text() {
        let t = r##"{"a":{"$ref":"#/components/schemas/x.Y"},"b":[{"$ref":"#/components/schemas/z"}]}"##;
        assert_eq!(refs(t, V3_REF), vec!["x.Y", "z"]);
    }
}
