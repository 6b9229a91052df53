//! The audit policy (upstream's `audit.k8s.io/v1` Policy file): which
//! requests are recorded, at which level, at which stages. The first rule
//! that matches a request decides; none matching records nothing.

use serde::Deserialize;

/// How much of a request an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// When in a request's life an event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    pub group: String,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: bool,
    #[serde(default)]
    pub metadata: serde::de::IgnoredAny,
}

/// What a request is, in the terms the rules match.
pub struct Attributes<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub verb: &'a str,
    /// `Some` for a resource request: (group, resource, subresource,
    /// namespace, name).
    pub resource: Option<ResourceAttrs<'a>>,
    pub path: &'a str,
}

pub struct ResourceAttrs<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// What the policy decides for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading the audit policy {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the audit policy {path} is not a valid audit.k8s.io/v1 Policy: {why}")]
    Invalid { path: String, why: String },
}

impl Policy {
    /// Without a policy file every request is recorded at Metadata level,
    /// once it is answered: who did what to which object, and the answer's
    /// code, never a body.
    pub fn default_metadata() -> Policy {
        Policy {
            api_version: "audit.k8s.io/v1".into(),
            kind: "Policy".into(),
            rules: vec![Rule {
                level: Level::Metadata,
                users: Vec::new(),
                user_groups: Vec::new(),
                verbs: Vec::new(),
                resources: Vec::new(),
                namespaces: Vec::new(),
                non_resource_urls: Vec::new(),
                omit_stages: Vec::new(),
                omit_managed_fields: None,
            }],
            omit_stages: vec![Stage::RequestReceived],
            omit_managed_fields: true,
            metadata: serde::de::IgnoredAny,
        }
    }

    pub fn parse(text: &str, path: &str) -> Result<Policy, PolicyError> {
        let invalid = |why: String| PolicyError::Invalid {
            path: path.to_string(),
            why,
        };
        let p: Policy = serde_saphyr::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if !matches!(p.api_version.as_str(), "audit.k8s.io/v1") || p.kind != "Policy" {
            return Err(invalid(format!(
                "apiVersion {:?} kind {:?}: must be audit.k8s.io/v1 Policy",
                p.api_version, p.kind
            )));
        }
        if p.rules.is_empty() {
            return Err(invalid("rules: Required value: at least one rule".into()));
        }
        for (i, r) in p.rules.iter().enumerate() {
            let resource_rule = !r.resources.is_empty() || !r.namespaces.is_empty();
            if resource_rule && !r.non_resource_urls.is_empty() {
                return Err(invalid(format!(
                    "rules[{i}]: rules cannot apply to both regular resources and non-resource URLs"
                )));
            }
            for u in &r.non_resource_urls {
                if u.contains('*') && !u.ends_with('*') {
                    return Err(invalid(format!(
                        "rules[{i}].nonResourceURLs: {u:?}: a wildcard may only end a path"
                    )));
                }
            }
        }
        Ok(p)
    }

    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: shown.clone(),
            source,
        })?;
        Policy::parse(&text, &shown)
    }

    /// The level and stages of `a`: the first matching rule's.
    pub fn decide(&self, a: &Attributes<'_>) -> Decision {
        let Some(rule) = self.rules.iter().find(|r| r.matches(a)) else {
            return Decision {
                level: Level::None,
                omit_stages: Vec::new(),
                omit_managed_fields: self.omit_managed_fields,
            };
        };
        let mut omit = self.omit_stages.clone();
        for s in &rule.omit_stages {
            if !omit.contains(s) {
                omit.push(*s);
            }
        }
        Decision {
            level: rule.level,
            omit_stages: omit,
            omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
        }
    }
}

fn listed(list: &[String], v: &str) -> bool {
    list.is_empty() || list.iter().any(|x| x == v)
}

impl Rule {
    fn matches(&self, a: &Attributes<'_>) -> bool {
        if !listed(&self.users, a.user) || !listed(&self.verbs, a.verb) {
            return false;
        }
        if !self.user_groups.is_empty() && !a.groups.iter().any(|g| self.user_groups.contains(g)) {
            return false;
        }
        if !self.resources.is_empty() || !self.namespaces.is_empty() {
            let Some(r) = &a.resource else {
                return false;
            };
            // "" names the cluster scope.
            if !listed(&self.namespaces, r.namespace.unwrap_or_default()) {
                return false;
            }
            return self.resources.is_empty() || self.resources.iter().any(|g| g.matches(r));
        }
        if !self.non_resource_urls.is_empty() {
            return a.resource.is_none()
                && self.non_resource_urls.iter().any(|u| {
                    u == a.path
                        || u.strip_suffix('*')
                            .is_some_and(|prefix| a.path.starts_with(prefix))
                });
        }
        true
    }
}

impl GroupResources {
    fn matches(&self, r: &ResourceAttrs<'_>) -> bool {
        if self.group != r.group {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let full = match r.subresource {
            Some(s) => format!("{}/{s}", r.resource),
            None => r.resource.to_string(),
        };
        // Upstream's checker: `*`, the resource (and subresource) itself,
        // `*/sub`, and `resource/*` for the resource and all of its
        // subresources.
        let by_resource = self.resources.iter().any(|x| {
            x == "*"
                || *x == full
                || x.strip_suffix("/*") == Some(r.resource)
                || r.subresource
                    .is_some_and(|s| x.strip_prefix("*/") == Some(s))
        });
        by_resource
            && (self.resource_names.is_empty()
                || r.name
                    .is_some_and(|n| self.resource_names.iter().any(|x| x == n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: [watch]
- level: None
  nonResourceURLs: ["/healthz*", /version]
- level: RequestResponse
  resources:
  - group: ""
    resources: [pods/log, "*/status"]
- level: Request
  namespaces: [kube-system]
  omitStages: [ResponseStarted]
- level: Metadata
  resources:
  - group: ""
    resources: [secrets, configmaps]
    resourceNames: [app]
- level: Metadata
  userGroups: [devs]
"#;

    fn res<'a>(
        group: &'a str,
        resource: &'a str,
        sub: Option<&'a str>,
        ns: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Option<ResourceAttrs<'a>> {
        Some(ResourceAttrs {
            group,
            resource,
            subresource: sub,
            namespace: ns,
            name,
        })
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let p = Policy::parse(POLICY, "p.yaml").unwrap();
        let none: [String; 0] = [];
        let devs = ["devs".to_string()];
        let level = |user, groups: &[String], verb, resource, path| {
            p.decide(&Attributes {
                user,
                groups,
                verb,
                resource,
                path,
            })
            .level
        };
        let proxy = "system:kube-proxy";
        assert_eq!(
            level(
                proxy,
                &none,
                "watch",
                res("", "pods", None, None, None),
                "/api/v1/pods"
            ),
            Level::None
        );
        assert_eq!(level("u", &none, "get", None, "/healthz/ping"), Level::None);
        assert_eq!(level("u", &none, "get", None, "/version"), Level::None);
        assert_eq!(
            level(
                "u",
                &none,
                "get",
                res("", "pods", Some("log"), Some("d"), Some("p")),
                "/x"
            ),
            Level::RequestResponse
        );
        assert_eq!(
            level(
                "u",
                &none,
                "patch",
                res("apps", "deployments", Some("status"), Some("d"), Some("p")),
                "/x"
            ),
            Level::None
        );
        assert_eq!(
            level(
                "u",
                &none,
                "update",
                res("", "nodes", Some("status"), None, Some("n")),
                "/x"
            ),
            Level::RequestResponse
        );
        let d = p.decide(&Attributes {
            user: "u",
            groups: &none,
            verb: "create",
            resource: res("apps", "deployments", None, Some("kube-system"), None),
            path: "/x",
        });
        assert_eq!(d.level, Level::Request);
        assert_eq!(
            d.omit_stages,
            [Stage::RequestReceived, Stage::ResponseStarted]
        );
        assert_eq!(
            level(
                "u",
                &none,
                "get",
                res("", "secrets", None, Some("d"), Some("app")),
                "/x"
            ),
            Level::Metadata
        );
        assert_eq!(
            level(
                "u",
                &none,
                "get",
                res("", "secrets", None, Some("d"), Some("other")),
                "/x"
            ),
            Level::None
        );
        assert_eq!(
            level(
                "u",
                &devs,
                "get",
                res("", "secrets", None, Some("d"), Some("other")),
                "/x"
            ),
            Level::Metadata
        );
        // A non-resource rule never takes a resource request, nor the
        // other way round.
        assert_eq!(level("u", &devs, "get", None, "/metrics"), Level::Metadata);
        assert_eq!(level("u", &none, "get", None, "/metrics"), Level::None);
        let wide = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Request\n  resources: [{group: '', resources: ['pods/*']}]\n- level: Metadata\n  resources: [{group: apps, resources: ['*']}]\n",
            "p.yaml",
        )
        .unwrap();
        let wide_level = |resource| {
            wide.decide(&Attributes {
                user: "u",
                groups: &none,
                verb: "get",
                resource,
                path: "/x",
            })
            .level
        };
        assert_eq!(
            wide_level(res("", "pods", None, Some("d"), None)),
            Level::Request
        );
        assert_eq!(
            wide_level(res("", "pods", Some("log"), Some("d"), None)),
            Level::Request
        );
        assert_eq!(
            wide_level(res("apps", "deployments", Some("scale"), Some("d"), None)),
            Level::Metadata
        );
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        for (text, why) in [
            ("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\n", "must be audit.k8s.io/v1 Policy"),
            ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]\n", "unknown variant"),
            (
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, namespaces: [a], nonResourceURLs: [/x]}]\n",
                "both regular resources and non-resource URLs",
            ),
            ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, usres: [a]}]\n", "unknown field"),
            ("apiVersion: audit.k8s.io/v1\nkind: Policy\n", "at least one rule"),
        ] {
            let e = Policy::parse(text, "p.yaml").unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
            assert!(e.contains("p.yaml"), "{e}");
        }
    }
}
