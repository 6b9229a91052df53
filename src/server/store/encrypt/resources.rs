//! Resource names of an EncryptionConfiguration and the storage keys they
//! select, as the registry lays keys out: `/registry/<resource>/…` for the
//! core group, `/registry/<group>/<resource>/…` for the others.

use super::config::{invalid, ConfigError};

/// The groups without a dot in their name; any other first path segment
/// without a dot is a core resource (custom groups always have a dot).
const DOTLESS_GROUPS: &[&str] = &["apps", "autoscaling", "batch", "policy", "extensions"];

/// Which resources a name in `resources` selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    One {
        group: String,
        resource: String,
    },
    /// `*.<group>`; `*.` is the core group (`""`).
    Group(String),
    /// `*.*`
    All,
}

impl Selector {
    pub(super) fn parse(name: &str, field: &str) -> Result<Selector, ConfigError> {
        if name.is_empty() {
            return Err(invalid(field, "a resource name must not be empty"));
        }
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(
                field,
                format!("resource name {name:?} should not contain capital letters"),
            ));
        }
        if name == "*" {
            return Err(invalid(
                field,
                "\"*\" is not allowed: use '*.' to encrypt all the resources of the core API \
                 group or '*.*' to encrypt all resources",
            ));
        }
        let (resource, group) = name.split_once('.').unwrap_or((name, ""));
        if group == "extensions" {
            return Err(invalid(
                field,
                "the 'extensions' group has been removed and cannot be used for encryption",
            ));
        }
        if group == "events.k8s.io" {
            return Err(invalid(
                field,
                format!(
                    "{name:?}: events.k8s.io Events are stored as core Events: use 'events' instead"
                ),
            ));
        }
        if group.is_empty()
            && matches!(
                resource,
                "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
            )
        {
            return Err(invalid(
                field,
                format!("{name:?}: resources which do not have REST API/s cannot be encrypted"),
            ));
        }
        let wild_group = group.contains('*') && !(group == "*" && resource == "*");
        if wild_group || (resource.contains('*') && resource != "*") {
            return Err(invalid(
                field,
                format!("{name:?}: only '*.<group>', '*.' and '*.*' may use '*'"),
            ));
        }
        Ok(match (resource, group) {
            ("*", "*") => Selector::All,
            ("*", g) => Selector::Group(g.to_string()),
            (r, g) => Selector::One {
                group: g.to_string(),
                resource: r.to_string(),
            },
        })
    }

    pub(super) fn matches(&self, group: &str, resource: &str) -> bool {
        match self {
            Selector::All => true,
            Selector::Group(g) => g == group,
            Selector::One {
                group: g,
                resource: r,
            } => g == group && r == resource,
        }
    }

    /// Whether every resource `other` selects is selected by `self` too.
    pub(super) fn covers(&self, other: &Selector) -> bool {
        match (self, other) {
            (Selector::All, _) => true,
            (Selector::Group(g), Selector::Group(h)) => g == h,
            (Selector::Group(g), Selector::One { group, .. }) => g == group,
            (Selector::One { .. }, Selector::One { .. }) => self == other,
            _ => false,
        }
    }

    /// The storage prefix holding every key this selects.
    pub(super) fn prefix(&self) -> String {
        match self {
            Selector::One { group, resource } if group.is_empty() => {
                format!("/registry/{resource}/")
            }
            Selector::One { group, resource } => format!("/registry/{group}/{resource}/"),
            Selector::Group(g) if !g.is_empty() => format!("/registry/{g}/"),
            // Core resources sit directly under /registry/, beside the groups.
            Selector::Group(_) | Selector::All => "/registry/".to_string(),
        }
    }
}

/// The group and resource a storage key belongs to
/// (`/registry/<resource>/…` or `/registry/<group>/<resource>/…`).
pub fn group_resource(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("/registry/")?;
    let mut segs = rest.splitn(3, '/');
    let first = segs.next().filter(|s| !s.is_empty())?;
    if first.contains('.') || DOTLESS_GROUPS.contains(&first) {
        let resource = segs.next().filter(|s| !s.is_empty())?;
        Some((first, resource))
    } else {
        Some(("", first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_selectors_and_prefixes() {
        let p = |n: &str| Selector::parse(n, "f").unwrap();
        assert_eq!(p("secrets").prefix(), "/registry/secrets/");
        assert_eq!(
            p("deployments.apps").prefix(),
            "/registry/apps/deployments/"
        );
        assert_eq!(p("*.apps").prefix(), "/registry/apps/");
        assert_eq!(p("*.").prefix(), "/registry/");
        assert_eq!(p("*.*"), Selector::All);
        assert_eq!(
            p("crontabs.stable.example.com"),
            Selector::One {
                group: "stable.example.com".into(),
                resource: "crontabs".into()
            }
        );
        assert!(p("*.apps").covers(&p("deployments.apps")));
        assert!(!p("*.apps").covers(&p("secrets")));
        assert!(p("*.").covers(&p("secrets")));
        assert!(p("*.*").covers(&p("*.batch")));
        assert!(Selector::parse("se*rets", "f").is_err());
        assert!(Selector::parse("*.a*", "f").is_err());
    }

    #[test]
    fn storage_keys_name_their_group_and_resource() {
        assert_eq!(
            group_resource("/registry/policy/poddisruptionbudgets/a/b"),
            Some(("policy", "poddisruptionbudgets"))
        );
        assert_eq!(
            group_resource("/registry/secrets/a/b"),
            Some(("", "secrets"))
        );
        assert_eq!(
            group_resource("/registry/stable.example.com/crontabs/a/b"),
            Some(("stable.example.com", "crontabs"))
        );
        assert_eq!(group_resource("/registry/"), None);
        assert_eq!(group_resource("/elsewhere/secrets/a"), None);
    }
}
