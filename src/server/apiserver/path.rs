//! Parsing of Kubernetes API paths into what they address.
//!
//! axum's router cannot express the apiserver's path grammar (a namespaced
//! collection and a namespace's subresource share a shape), so requests are
//! classified here once, against the registry.

use super::registry::{Registry, ResourceDef};

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath<'r> {
    Version,
    Healthz(&'static str),
    /// `/readyz/<check>` and the like: one named check (health.rs knows
    /// which exist).
    HealthCheck {
        endpoint: &'static str,
        check: String,
    },
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    ResourceList {
        group: String,
        version: String,
    },
    OpenApiV3Root,
    /// `/openapi/v3/<api/v1 | apis/g/v>`
    OpenApiV3 {
        group: String,
        version: String,
    },
    OpenApiV2,
    /// `/skiff/v1/secrets-encryption[/<action>]` (encryption.rs).
    SecretsEncryption(super::encryption::Action),
    /// A collection, an object or an object's subresource.
    Resource(ResourceRef<'r>),
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef<'r> {
    pub def: &'r ResourceDef,
    /// The namespace in the URL (None: cluster-scoped kind or all namespaces).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// What follows `nodes/<name>/proxy/` (with its leading `/`): the
    /// kubelet's path.
    pub proxy_path: Option<String>,
}

/// Names in paths are percent-decoded by the client only where needed; the
/// apiserver rejects names that are not valid path segments later on.
fn decode(seg: &str) -> String {
    if !seg.contains('%') {
        return seg.to_string();
    }
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse<'r>(registry: &'r Registry, path: &str) -> ApiPath<'r> {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => return ApiPath::Version,
        ["healthz"] => return ApiPath::Healthz("healthz"),
        ["readyz"] => return ApiPath::Healthz("readyz"),
        ["livez"] => return ApiPath::Healthz("livez"),
        [endpoint @ ("healthz" | "readyz" | "livez"), check @ ..]
            if matches!(check, [_] | ["poststarthook", _]) =>
        {
            let endpoint = match *endpoint {
                "healthz" => "healthz",
                "readyz" => "readyz",
                _ => "livez",
            };
            return ApiPath::HealthCheck {
                endpoint,
                check: check.join("/"),
            };
        }
        ["api"] => return ApiPath::CoreVersions,
        ["apis"] => return ApiPath::Groups,
        ["apis", group] => return ApiPath::Group(group.to_string()),
        ["api", "v1"] => {
            return ApiPath::ResourceList {
                group: String::new(),
                version: "v1".into(),
            }
        }
        ["apis", group, version] => {
            return ApiPath::ResourceList {
                group: group.to_string(),
                version: version.to_string(),
            }
        }
        ["openapi", "v3"] => return ApiPath::OpenApiV3Root,
        ["openapi", "v3", "api", "v1"] => {
            return ApiPath::OpenApiV3 {
                group: String::new(),
                version: "v1".into(),
            }
        }
        ["openapi", "v3", "apis", group, version] => {
            return ApiPath::OpenApiV3 {
                group: group.to_string(),
                version: version.to_string(),
            }
        }
        ["openapi", "v2"] => return ApiPath::OpenApiV2,
        ["skiff", "v1", "secrets-encryption", rest @ ..] => {
            return super::encryption::Action::parse(rest)
                .map_or(ApiPath::NotFound, ApiPath::SecretsEncryption)
        }
        _ => {}
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return ApiPath::NotFound,
    };
    let mut parsed = resource_path(registry, group, version, rest);
    // A kubelet path keeps its trailing slash (`/logs/` lists a directory).
    if let ApiPath::Resource(ResourceRef {
        proxy_path: Some(p),
        ..
    }) = &mut parsed
    {
        if path.ends_with('/') && !p.ends_with('/') {
            p.push('/');
        }
    }
    parsed
}

fn resource_path<'r>(
    registry: &'r Registry,
    group: &str,
    version: &str,
    rest: &[&str],
) -> ApiPath<'r> {
    let find = |plural: &str| registry.find(group, version, plural);
    let make = |def: &'r ResourceDef,
                ns: Option<&str>,
                name: Option<&str>,
                sub: Option<&str>|
     -> ApiPath<'r> {
        ApiPath::Resource(ResourceRef {
            def,
            namespace: ns.map(decode),
            name: name.map(decode),
            subresource: sub.map(str::to_string),
            proxy_path: None,
        })
    };
    // `namespaces/<ns>/<plural>...` addresses namespaced resources, unless
    // <plural> is a subresource of the namespace itself (status, finalize).
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(def) = find(plural).filter(|d| d.namespaced) {
            return match tail {
                [] => make(def, Some(ns), None, None),
                [name] => make(def, Some(ns), Some(name), None),
                [name, sub] => make(def, Some(ns), Some(name), Some(sub)),
                _ => ApiPath::NotFound,
            };
        }
    }
    match rest {
        [plural] => match find(plural) {
            Some(def) => make(def, None, None, None),
            None => ApiPath::NotFound,
        },
        [plural, name] => match find(plural).filter(|d| !d.namespaced) {
            Some(def) => make(def, None, Some(name), None),
            None => ApiPath::NotFound,
        },
        [plural, name, sub] => match find(plural).filter(|d| !d.namespaced) {
            Some(def) => make(def, None, Some(name), Some(sub)),
            None => ApiPath::NotFound,
        },
        // nodes/<name>/proxy/<path...>: the rest is the kubelet's.
        [plural, name, "proxy", tail @ ..] if *plural == "nodes" => match find(plural) {
            Some(def) => match make(def, None, Some(name), Some("proxy")) {
                ApiPath::Resource(mut r) => {
                    r.proxy_path = Some(format!("/{}", tail.join("/")));
                    ApiPath::Resource(r)
                }
                other => other,
            },
            None => ApiPath::NotFound,
        },
        _ => ApiPath::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> Registry {
        Registry::builtin()
    }

    #[test]
    fn a_nodes_proxy_path_carries_the_kubelets_path() {
        let r = reg();
        match parse(&r, "/api/v1/nodes/n1/proxy/stats/summary") {
            ApiPath::Resource(rr) => {
                assert_eq!(rr.name.as_deref(), Some("n1"));
                assert_eq!(rr.subresource.as_deref(), Some("proxy"));
                assert_eq!(rr.proxy_path.as_deref(), Some("/stats/summary"));
            }
            other => panic!("{other:?}"),
        }
        match parse(&r, "/api/v1/nodes/n1/proxy/logs/") {
            ApiPath::Resource(rr) => assert_eq!(rr.proxy_path.as_deref(), Some("/logs/")),
            other => panic!("{other:?}"),
        }
        match parse(&r, "/api/v1/nodes/n1/proxy") {
            ApiPath::Resource(rr) => assert_eq!(rr.proxy_path, None),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(&r, "/api/v1/pods/p/proxy/x"), ApiPath::NotFound);
    }

    #[test]
    fn classifies_paths() {
        let r = reg();
        assert_eq!(parse(&r, "/version"), ApiPath::Version);
        assert_eq!(parse(&r, "/api"), ApiPath::CoreVersions);
        assert_eq!(parse(&r, "/apis/"), ApiPath::Groups);
        match parse(&r, "/api/v1/namespaces") {
            ApiPath::Resource(rr) => {
                assert_eq!(rr.def.plural, "namespaces");
                assert_eq!(rr.name, None);
            }
            other => panic!("{other:?}"),
        }
        match parse(&r, "/api/v1/namespaces/demo") {
            ApiPath::Resource(rr) => {
                assert_eq!(rr.def.plural, "namespaces");
                assert_eq!(rr.name.as_deref(), Some("demo"));
                assert_eq!(rr.namespace, None);
            }
            other => panic!("{other:?}"),
        }
        match parse(&r, "/api/v1/namespaces/demo/finalize") {
            ApiPath::Resource(rr) => {
                assert_eq!(rr.def.plural, "namespaces");
                assert_eq!(rr.subresource.as_deref(), Some("finalize"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(&r, "/api/v1/nosuch"), ApiPath::NotFound);
        assert_eq!(parse(&r, "/elsewhere"), ApiPath::NotFound);
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(decode("a%3Ab"), "a:b");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("bad%zz"), "bad%zz");
        assert_eq!(decode("end%4"), "end%4");
    }
}
