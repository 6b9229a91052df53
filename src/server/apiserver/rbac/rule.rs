//! One PolicyRule: what it allows (upstream's RuleAllows), and whether a
//! set of rules covers another (upstream's Covers, for the escalation
//! checks).

use serde::Deserialize;

use crate::server::apiserver::auth::Target;

/// `*`: every verb, group, resource or path.
const ALL: &str = "*";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    #[serde(rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == ALL || x == want)
}

fn has_exact(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == want)
}

/// A rule's path `p` matches `path`: equal, or `p` ends in `*` and the
/// path starts with what comes before it.
fn url_matches(p: &str, path: &str) -> bool {
    p == ALL
        || p == path
        || p.strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

impl Rule {
    /// Whether this rule lets `verb` be done to `target`.
    pub fn allows(&self, verb: &str, target: &Target<'_>) -> bool {
        if !has(&self.verbs, verb) {
            return false;
        }
        match target {
            Target::Resource {
                group,
                resource,
                subresource,
                name,
                ..
            } => {
                has(&self.api_groups, group)
                    && self.resource_matches(resource, *subresource)
                    && (self.resource_names.is_empty()
                        || name.is_some_and(|n| has_exact(&self.resource_names, n)))
            }
            Target::Path(path) => self.non_resource_urls.iter().any(|p| url_matches(p, path)),
        }
    }

    /// `pods`, `pods/log`, `*` or `*/log` for a request to `pods/log`.
    fn resource_matches(&self, resource: &str, subresource: Option<&str>) -> bool {
        self.resources.iter().any(|r| {
            if r == ALL {
                return true;
            }
            match subresource {
                None => r == resource,
                Some(sub) => {
                    r.strip_prefix(resource)
                        .and_then(|rest| rest.strip_prefix('/'))
                        == Some(sub)
                        || r.strip_prefix("*/") == Some(sub)
                }
            }
        })
    }

    /// Whether this (owner's) rule holds everything `sub` grants, `sub`
    /// being one verb on one group's resource (or one path), and perhaps one
    /// name.
    fn covers(&self, sub: &Rule) -> bool {
        let all_of = |owner: &[String], wanted: &[String]| {
            has_exact(owner, ALL) || wanted.iter().all(|w| has_exact(owner, w))
        };
        let resources = has_exact(&self.resources, ALL)
            || sub.resources.iter().all(|r| {
                has_exact(&self.resources, r)
                    || r.split_once('/')
                        .is_some_and(|(_, s)| has_exact(&self.resources, &format!("*/{s}")))
            });
        let urls = sub.non_resource_urls.iter().all(|u| {
            self.non_resource_urls
                .iter()
                .any(|p| p == u || p.strip_suffix('*').is_some_and(|pre| u.starts_with(pre)))
        });
        let names = if sub.resource_names.is_empty() {
            self.resource_names.is_empty()
        } else {
            self.resource_names.is_empty()
                || sub
                    .resource_names
                    .iter()
                    .all(|n| has_exact(&self.resource_names, n))
        };
        all_of(&self.verbs, &sub.verbs)
            && all_of(&self.api_groups, &sub.api_groups)
            && resources
            && urls
            && names
    }

    /// This rule as the smallest rules it grants: one per verb and group,
    /// resource, name (or path).
    fn atoms(&self) -> Vec<Rule> {
        let one = |s: &String| vec![s.clone()];
        let mut out = Vec::new();
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    let base = Rule {
                        verbs: one(verb),
                        api_groups: one(group),
                        resources: one(resource),
                        ..Rule::default()
                    };
                    if self.resource_names.is_empty() {
                        out.push(base);
                    } else {
                        for name in &self.resource_names {
                            out.push(Rule {
                                resource_names: one(name),
                                ..base.clone()
                            });
                        }
                    }
                }
            }
        }
        for url in &self.non_resource_urls {
            for verb in &self.verbs {
                out.push(Rule {
                    verbs: one(verb),
                    non_resource_urls: one(url),
                    ..Rule::default()
                });
            }
        }
        out
    }

    /// Upstream's compact form of a rule, as the escalation error lists
    /// what is missing: `{APIGroups:["apps"], Resources:["deployments"],
    /// Verbs:["get"]}`.
    pub fn compact(&self) -> String {
        let quoted = |l: &[String]| {
            let items: Vec<String> = l.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", items.join(" "))
        };
        let mut parts = Vec::new();
        for (label, list) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !list.is_empty() {
                parts.push(format!("{label}:{}", quoted(list)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// What of `wanted` the `owner` rules do not hold, as the smallest rules
/// (empty: every rule is covered).
pub fn uncovered(owner: &[Rule], wanted: &[Rule]) -> Vec<Rule> {
    let mut missing: Vec<Rule> = Vec::new();
    for atom in wanted.iter().flat_map(Rule::atoms) {
        if !owner.iter().any(|o| o.covers(&atom)) && !missing.contains(&atom) {
            missing.push(atom);
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> Rule {
        serde_json::from_value(v).unwrap()
    }

    fn res<'a>(
        group: &'a str,
        resource: &'a str,
        sub: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Target<'a> {
        Target::Resource {
            group,
            resource,
            subresource: sub,
            namespace: Some("demo"),
            name,
        }
    }

    #[test]
    fn resources_subresources_and_wildcards() {
        let r = rule(
            json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}),
        );
        assert!(r.allows("get", &res("", "pods", None, Some("a"))));
        assert!(r.allows("get", &res("", "pods", Some("log"), Some("a"))));
        assert!(!r.allows("get", &res("", "pods", Some("exec"), Some("a"))));
        assert!(!r.allows("delete", &res("", "pods", None, Some("a"))));
        assert!(!r.allows("get", &res("apps", "pods", None, Some("a"))));
        assert!(!r.allows("get", &res("", "podsx", None, None)));
        let star = rule(json!({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]}));
        assert!(star.allows(
            "patch",
            &res("apps", "deployments", Some("scale"), Some("d"))
        ));
        assert!(!star.allows("patch", &res("apps", "deployments", None, Some("d"))));
        let all = rule(json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
        assert!(all.allows("escalate", &res("x.io", "things", Some("status"), None)));
        assert!(!all.allows("get", &Target::Path("/healthz")));
    }

    #[test]
    fn resource_names_need_a_named_request() {
        let r = rule(
            json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app"], "verbs": ["get", "list"]}),
        );
        assert!(r.allows("get", &res("", "configmaps", None, Some("app"))));
        assert!(!r.allows("get", &res("", "configmaps", None, Some("other"))));
        assert!(!r.allows("list", &res("", "configmaps", None, None)));
    }

    #[test]
    fn paths_match_exactly_or_by_a_trailing_star() {
        let r = rule(json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}));
        assert!(r.allows("get", &Target::Path("/healthz")));
        assert!(!r.allows("get", &Target::Path("/healthz/etcd")));
        assert!(r.allows("get", &Target::Path("/apis/apps/v1")));
        assert!(!r.allows("post", &Target::Path("/apis/apps")));
        assert!(!r.allows("get", &res("", "pods", None, None)));
    }

    #[test]
    fn covering_lists_only_what_is_missing() {
        let owner = vec![
            rule(
                json!({"apiGroups": [""], "resources": ["pods", "*/status"], "verbs": ["get", "list"]}),
            ),
            rule(
                json!({"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"], "verbs": ["*"]}),
            ),
            rule(json!({"nonResourceURLs": ["/metrics*"], "verbs": ["get"]})),
        ];
        let fits = vec![
            rule(
                json!({"apiGroups": [""], "resources": ["pods", "services/status"], "verbs": ["list"]}),
            ),
            rule(
                json!({"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"], "verbs": ["delete"]}),
            ),
            rule(json!({"nonResourceURLs": ["/metrics/slis"], "verbs": ["get"]})),
        ];
        assert!(uncovered(&owner, &fits).is_empty());
        let more = vec![
            rule(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]})),
            // No names: every deployment, more than the owner's one.
            rule(json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]})),
            rule(json!({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]})),
        ];
        let missing: Vec<String> = uncovered(&owner, &more).iter().map(Rule::compact).collect();
        assert_eq!(
            missing,
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#,
                r#"{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}"#,
                r#"{APIGroups:["*"], Resources:["pods"], Verbs:["get"]}"#,
            ]
        );
    }
}
