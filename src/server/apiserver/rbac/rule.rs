//! One PolicyRule: what it allows (upstream's RuleAllows), and whether a
//! set of rules covers another (upstream's Covers, for the escalation
//! checks).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Deserializer};

use crate::server::apiserver::auth::Target;

/// `*`: every verb, group, resource or path.
const ALL: &str = "*";

/// The most (owner rule, granted combination) pairs an escalation check
/// compares: a rule listing many verbs, groups, resources and names
/// multiplies out, and the check runs inside a request.
pub const MAX_CHECKS: u64 = 20_000_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Rule {
    #[serde(deserialize_with = "nullable")]
    pub verbs: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub api_groups: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub resources: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub resource_names: Vec<String>,
    #[serde(rename = "nonResourceURLs", deserialize_with = "nullable")]
    pub non_resource_urls: Vec<String>,
}

/// A list given as `null` is an empty one, as Go reads it.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
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
    p == ALL || p == path || (p.ends_with('*') && path.starts_with(p.trim_end_matches('*')))
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

    /// Whether this (owner's) rule holds `atom` (upstream's ruleCovers for
    /// one verb on one group's resource, perhaps one name, or one path).
    fn covers(&self, atom: &Atom<'_>) -> bool {
        let verb = match atom {
            Atom::Resource { verb, .. } | Atom::Url { verb, .. } => verb,
        };
        if !has(&self.verbs, verb) {
            return false;
        }
        match *atom {
            Atom::Resource {
                group,
                resource,
                name,
                ..
            } => {
                let resources = has_exact(&self.resources, ALL)
                    || has_exact(&self.resources, resource)
                    || resource.split_once('/').is_some_and(|(_, s)| {
                        self.resources
                            .iter()
                            .any(|r| r.strip_prefix("*/") == Some(s))
                    });
                let names = self.resource_names.is_empty()
                    || name.is_some_and(|n| has_exact(&self.resource_names, n));
                has(&self.api_groups, group) && resources && names
            }
            Atom::Url { url, .. } => self.non_resource_urls.iter().any(|p| {
                p == url || (p.ends_with('*') && url.starts_with(p.trim_end_matches('*')))
            }),
        }
    }

    /// Whether this rule holds everything of every kind (verbs, groups and
    /// resources all `*`, no names; or verbs and paths `*`).
    fn holds_all(&self, urls: bool) -> bool {
        let all = |l: &[String]| has_exact(l, ALL);
        all(&self.verbs)
            && if urls {
                all(&self.non_resource_urls)
            } else {
                all(&self.api_groups) && all(&self.resources) && self.resource_names.is_empty()
            }
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

/// The smallest thing a rule grants: one verb on one group's resource
/// (perhaps one name of it), or one verb on one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Atom<'a> {
    Resource {
        group: &'a str,
        resource: &'a str,
        name: Option<&'a str>,
        verb: &'a str,
    },
    Url {
        url: &'a str,
        verb: &'a str,
    },
}

fn unique(l: &[String]) -> Vec<&str> {
    let set: BTreeSet<&str> = l.iter().map(String::as_str).collect();
    set.into_iter().collect()
}

/// What of `wanted` the `owner` rules do not hold, merged per resource
/// (or path) and sorted, as upstream lists them; `Err` with the number of
/// comparisons it would take when that passes [`MAX_CHECKS`].
pub fn uncovered(owner: &[Rule], wanted: &[Rule]) -> Result<Vec<Rule>, u64> {
    let owner: Vec<&Rule> = {
        let mut seen = HashSet::new();
        owner.iter().filter(|r| seen.insert(*r)).collect()
    };
    let all_resources = owner.iter().any(|r| r.holds_all(false));
    let all_urls = owner.iter().any(|r| r.holds_all(true));
    // Count first: nothing is multiplied out that would not be checked.
    let mut combinations: u64 = 0;
    for w in wanted {
        let n = |l: &[String]| unique(l).len() as u64;
        let verbs = n(&w.verbs);
        if !all_resources {
            combinations = combinations.saturating_add(
                n(&w.api_groups)
                    .saturating_mul(n(&w.resources))
                    .saturating_mul(verbs)
                    .saturating_mul(n(&w.resource_names).max(1)),
            );
        }
        if !all_urls {
            combinations =
                combinations.saturating_add(n(&w.non_resource_urls).saturating_mul(verbs));
        }
    }
    let checks = combinations.saturating_mul(owner.len().max(1) as u64);
    if checks > MAX_CHECKS {
        return Err(checks);
    }
    let mut missing: BTreeSet<Atom<'_>> = BTreeSet::new();
    for w in wanted {
        let verbs = unique(&w.verbs);
        let names: Vec<Option<&str>> = if w.resource_names.is_empty() {
            vec![None]
        } else {
            unique(&w.resource_names).into_iter().map(Some).collect()
        };
        let mut check = |atom| {
            if !owner.iter().any(|o| o.covers(&atom)) {
                missing.insert(atom);
            }
        };
        if !all_resources {
            for group in unique(&w.api_groups) {
                for resource in unique(&w.resources) {
                    for &name in &names {
                        for &verb in &verbs {
                            check(Atom::Resource {
                                group,
                                resource,
                                name,
                                verb,
                            });
                        }
                    }
                }
            }
        }
        if !all_urls {
            for url in unique(&w.non_resource_urls) {
                for &verb in &verbs {
                    check(Atom::Url { url, verb });
                }
            }
        }
    }
    // One rule per resource (or path) with all its missing verbs.
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum What<'a> {
        Resource(&'a str, &'a str, Option<&'a str>),
        Url(&'a str),
    }
    let mut merged: BTreeMap<What<'_>, Vec<String>> = BTreeMap::new();
    for atom in missing {
        let (what, verb) = match atom {
            Atom::Resource {
                group,
                resource,
                name,
                verb,
            } => (What::Resource(group, resource, name), verb),
            Atom::Url { url, verb } => (What::Url(url), verb),
        };
        merged.entry(what).or_default().push(verb.to_string());
    }
    let one = |s: &str| vec![s.to_string()];
    let mut out: Vec<Rule> = merged
        .into_iter()
        .map(|(what, verbs)| match what {
            What::Resource(group, resource, name) => Rule {
                verbs,
                api_groups: one(group),
                resources: one(resource),
                resource_names: name.map(one).unwrap_or_default(),
                ..Rule::default()
            },
            What::Url(url) => Rule {
                verbs,
                non_resource_urls: one(url),
                ..Rule::default()
            },
        })
        .collect();
    out.sort_by_cached_key(Rule::compact);
    Ok(out)
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
        assert!(uncovered(&owner, &fits).unwrap().is_empty());
        let more = vec![
            rule(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]})),
            // No names: every deployment, more than the owner's one.
            rule(json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]})),
            rule(json!({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]})),
        ];
        let missing: Vec<String> = uncovered(&owner, &more)
            .unwrap()
            .iter()
            .map(Rule::compact)
            .collect();
        assert_eq!(
            missing,
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#,
                r#"{APIGroups:["*"], Resources:["pods"], Verbs:["get"]}"#,
                r#"{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}"#,
            ]
        );
        // Missing verbs of one resource come as one rule.
        let many = vec![rule(
            json!({"apiGroups": [""], "resources": ["nodes"], "verbs": ["watch", "get", "list", "get"]}),
        )];
        let missing: Vec<String> = uncovered(&owner, &many)
            .unwrap()
            .iter()
            .map(Rule::compact)
            .collect();
        assert_eq!(
            missing,
            [r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list" "watch"]}"#]
        );
    }

    #[test]
    fn a_rule_that_multiplies_out_is_refused_unless_everything_is_held() {
        let list = |prefix: &str, n: usize| -> Vec<String> {
            (0..n).map(|i| format!("{prefix}{i}")).collect()
        };
        let huge = vec![Rule {
            verbs: list("v", 1000),
            api_groups: list("g", 1000),
            resources: list("r", 1000),
            ..Rule::default()
        }];
        let some = vec![rule(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}),
        )];
        assert!(uncovered(&some, &huge).is_err());
        let admin = vec![rule(
            json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
        )];
        assert!(uncovered(&admin, &huge).unwrap().is_empty());
        // Repeats are counted once.
        let repeated = vec![Rule {
            verbs: vec!["get".into(); 1000],
            api_groups: vec!["".into(); 1000],
            resources: vec!["pods".into(); 1000],
            ..Rule::default()
        }];
        assert!(uncovered(&some, &repeated).unwrap().is_empty());
    }

    #[test]
    fn null_lists_are_empty() {
        let r = rule(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": null, "nonResourceURLs": null}),
        );
        assert!(r.resource_names.is_empty());
        assert!(r.allows("get", &res("", "pods", None, Some("a"))));
    }
}
