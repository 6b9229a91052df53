//! Query parameters of API requests, parsed once and checked.

use base64::Engine;
use serde_json::json;

use crate::api::status::ApiError;
use crate::server::store::Revision;

#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let pairs = match raw {
            None | Some("") => Vec::new(),
            Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?,
        };
        Ok(Query { pairs })
    }

    /// A parameter's value: its first, when it is given more than once, as
    /// the apiserver's conversion of query parameters takes it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter, read as the apiserver reads one
    /// (`Convert_Slice_string_To_bool`): absent is false; else its first
    /// value decides, false when it is `0` or `false` in any case and true
    /// otherwise, the empty value included. Clients rely on it: the Python
    /// client sends `watch=True`, and `?watch` alone is a watch.
    pub fn flag(&self, key: &str) -> bool {
        match self.pairs.iter().find(|(k, _)| k == key) {
            None => false,
            Some((_, v)) => !(v == "0" || v.eq_ignore_ascii_case("false")),
        }
    }

    pub fn uint(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value {v:?} for {key}: must be a non-negative integer"
                ))
            }),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value {v:?} for {key}: must be an integer"))
            }),
        }
    }

    /// `resourceVersion` of a list or watch, read as upstream's
    /// `ParseResourceVersion` does: absent and empty are None, "0" is 0
    /// (any version); anything but a non-negative integer is a 400.
    pub fn resource_version(&self) -> Result<Option<Revision>, ApiError> {
        match self.get("resourceVersion") {
            None | Some("") => Ok(None),
            Some(v) => match v
                .parse::<u64>()
                .ok()
                .and_then(|n| Revision::try_from(n).ok())
            {
                Some(n) => Ok(Some(n)),
                None => Err(ApiError::bad_request(format!(
                    "invalid resource version {v:?}: must be a non-negative integer"
                ))),
            },
        }
    }

    /// Upstream's `ValidateListOptions`: which `resourceVersionMatch` goes
    /// with which `resourceVersion`, `continue` and `sendInitialEvents`
    /// (a 422 for `ListOptions.meta.k8s.io`, every problem listed). The
    /// WatchList feature (`sendInitialEvents`) is not served: as upstream
    /// with its feature gate off.
    pub fn validate_list_options(&self, watch: bool) -> Result<(), ApiError> {
        use crate::api::validation::causes;
        let field = "resourceVersionMatch";
        let m = self.get(field).unwrap_or("");
        let rv = self.get("resourceVersion").unwrap_or("");
        let has_continue = !self.get("continue").unwrap_or("").is_empty();
        let initial = self.get("sendInitialEvents").is_some();
        let mut out = Vec::new();
        if watch {
            if initial {
                if m != "NotOlderThan" {
                    out.push(causes::forbidden(
                        field,
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    ));
                }
                out.push(causes::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
                ));
            }
            if !m.is_empty() {
                if !initial {
                    out.push(causes::forbidden(
                        field,
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
                if m != "NotOlderThan" {
                    out.push(causes::not_supported(field, m, &["NotOlderThan"]));
                }
                if has_continue {
                    out.push(causes::forbidden(
                        field,
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
            }
        } else {
            if !m.is_empty() {
                if rv.is_empty() {
                    out.push(causes::forbidden(
                        field,
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                if has_continue {
                    out.push(causes::forbidden(
                        field,
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
                if m != "Exact" && m != "NotOlderThan" {
                    out.push(causes::not_supported(
                        field,
                        m,
                        &["Exact", "NotOlderThan", ""],
                    ));
                }
                if m == "Exact" && rv == "0" {
                    out.push(causes::forbidden(
                        field,
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
            }
            if initial {
                out.push(causes::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for list",
                ));
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", out))
        }
    }

    /// `dryRun=All` (the only value the apiserver knows).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        let values = self.all("dryRun");
        for v in &values {
            if *v != "All" {
                return Err(ApiError::bad_request(format!(
                    "unsupported dryRun value {v:?}: supported values are \"All\""
                )));
            }
        }
        Ok(!values.is_empty())
    }
}

/// A continue token: where a paginated list stopped and at which revision it
/// reads, so every page is a consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continue {
    pub rev: Revision,
    pub start_after: String,
}

impl Continue {
    pub fn encode(&self) -> String {
        let raw = json!({"v": 1, "rv": self.rev, "start": self.start_after}).to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(token: &str) -> Result<Continue, ApiError> {
        let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad())?;
        let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let rev = v.get("rv").and_then(|r| r.as_i64()).ok_or_else(bad)?;
        let start_after = v
            .get("start")
            .and_then(|s| s.as_str())
            .ok_or_else(bad)?
            .to_string();
        if rev <= 0 {
            return Err(bad());
        }
        Ok(Continue { rev, start_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let q = Query::parse(Some(
            "limit=500&watch=true&labelSelector=app%3Dweb&dryRun=All",
        ))
        .unwrap();
        assert_eq!(q.uint("limit").unwrap(), Some(500));
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        let twice = Query::parse(Some("limit=5&limit=7")).unwrap();
        assert_eq!(twice.uint("limit").unwrap(), Some(5), "the first counts");
        assert!(q.dry_run().unwrap());
        assert!(Query::parse(Some("limit=x"))
            .unwrap()
            .uint("limit")
            .is_err());
        assert!(Query::parse(Some("dryRun=Some"))
            .unwrap()
            .dry_run()
            .is_err());
    }

    #[test]
    fn flags_read_as_the_apiserver_reads_them() {
        let flag = |q: &str| Query::parse(Some(q)).unwrap().flag("watch");
        for yes in [
            "watch=true",
            "watch=True",
            "watch=TRUE",
            "watch=1",
            "watch",
            "watch=",
            "watch=yes",
        ] {
            assert!(flag(yes), "{yes}");
        }
        for no in [
            "",
            "watch=false",
            "watch=False",
            "watch=FALSE",
            "watch=0",
            "other=true",
        ] {
            assert!(!flag(no), "{no}");
        }
        // The first value decides.
        assert!(flag("watch=1&watch=false"));
        assert!(!flag("watch=0&watch=true"));
    }

    #[test]
    fn resource_versions_are_non_negative_integers() {
        let rv = |q: &str| Query::parse(Some(q)).unwrap().resource_version();
        assert_eq!(rv("resourceVersion=").unwrap(), None);
        assert_eq!(rv("resourceVersion=0").unwrap(), Some(0));
        assert_eq!(rv("resourceVersion=42").unwrap(), Some(42));
        for bad in ["-1", "x", "1.5", "18446744073709551615"] {
            let e = rv(&format!("resourceVersion={bad}")).unwrap_err();
            assert_eq!((e.code, e.reason), (400, "BadRequest"), "{bad}");
        }
    }

    #[test]
    fn list_options_follow_upstream() {
        let check = |q: &str, watch: bool| {
            Query::parse(Some(q))
                .unwrap()
                .validate_list_options(watch)
                .map_err(|e| (e.code, e.message))
        };
        let e = check("resourceVersion=1&resourceVersionMatch=Garbage", false).unwrap_err();
        assert_eq!(e.0, 422);
        assert_eq!(
            e.1,
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Unsupported value: "Garbage": supported values: "Exact", "NotOlderThan", """#
        );
        let e = check("resourceVersionMatch=NotOlderThan", false).unwrap_err();
        assert!(
            e.1.ends_with("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"),
            "{e:?}"
        );
        assert!(check("resourceVersion=0&resourceVersionMatch=Exact", false).is_err());
        assert!(check("resourceVersion=5&resourceVersionMatch=Exact", false).is_ok());
        assert!(check("resourceVersion=0&resourceVersionMatch=NotOlderThan", false).is_ok());
        assert!(check(
            "resourceVersion=5&resourceVersionMatch=NotOlderThan&continue=x",
            false
        )
        .is_err());
        assert!(check("sendInitialEvents=true", false).is_err());
        assert!(check("resourceVersion=5&resourceVersionMatch=NotOlderThan", true).is_err());
        assert!(check(
            "sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
            true
        )
        .is_err());
        assert!(check("resourceVersion=5", true).is_ok());
        assert!(check("", false).is_ok());
    }

    #[test]
    fn continue_round_trips_and_rejects_junk() {
        let c = Continue {
            rev: 42,
            start_after: "/registry/configmaps/default/a".into(),
        };
        assert_eq!(Continue::decode(&c.encode()).unwrap(), c);
        assert!(Continue::decode("!!!").is_err());
        assert!(Continue::decode("e30").is_err());
    }
}
