//! `/etc/skiff/registries.yaml`: mirrors, rewrites, credentials and TLS per
//! registry, in the same shape as k3s's file so that users can copy theirs:
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000", "https://mirror.example"]
//!     rewrite: {"^library/(.*)": "mirror/$1"}
//! configs:
//!   "registry.example:5443":
//!     auth: {username: u, password: p}        # or auth: base64(u:p), or identitytoken
//!     tls: {ca_file: /etc/ssl/test-ca.pem, insecure_skip_verify: false}
//! ```
//!
//! Plain HTTP is used only where the user said so: for a loopback registry
//! (127.0.0.0/8, ::1, localhost) without a `tls` entry, and for mirror
//! endpoints written as `http://…` (k3s's way of marking a registry insecure).
//! Everything else is HTTPS. The upstream registry is always tried last, after
//! the mirrors, so a dead mirror never makes a pull fail by itself.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::reference::Reference;

/// Where the file lives unless `--registries` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/skiff/registries.yaml";

#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("mirror endpoint {0:?} is not a valid URL (want [http[s]://]host[:port])")]
    BadEndpoint(String),
    #[error("rewrite pattern {pattern:?} for {registry} is not a valid regex: {message}")]
    BadRewrite {
        registry: String,
        pattern: String,
        message: String,
    },
    #[error("auth for {0}: `auth` is not base64 of user:password")]
    BadAuth(String),
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Regex on the repository path → replacement (`$1` etc.), applied on mirror endpoints.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// base64 of `user:password`, as in docker's config.json.
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub identitytoken: Option<String>,
}

// Credentials must never reach a log line, not even at debug level.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Credentials for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`).
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

/// One place to try for an image: a mirror or the upstream registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// `host[:port]`, the authority the HTTP requests go to.
    pub host: String,
    /// The repository path on this endpoint (after any rewrite).
    pub repository: String,
    pub is_mirror: bool,
}

impl RegistriesConfig {
    /// Read the file; a missing file means "no mirrors, no credentials".
    pub fn load(path: &Path) -> Result<RegistriesConfig, RegistriesError> {
        match std::fs::read_to_string(path) {
            Ok(text) => RegistriesConfig::from_yaml(&text).map_err(|e| match e {
                RegistriesError::Parse { message, .. } => RegistriesError::Parse {
                    path: path.to_path_buf(),
                    message,
                },
                other => other,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistriesConfig::default()),
            Err(source) => Err(RegistriesError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn from_yaml(text: &str) -> Result<RegistriesConfig, RegistriesError> {
        if text.trim().is_empty() {
            return Ok(RegistriesConfig::default());
        }
        let config: RegistriesConfig =
            serde_saphyr::from_str(text).map_err(|e| RegistriesError::Parse {
                path: PathBuf::from("registries.yaml"),
                message: e.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Catch mistakes at load time rather than on the first pull that needs them.
    fn validate(&self) -> Result<(), RegistriesError> {
        for (registry, mirror) in &self.mirrors {
            for endpoint in &mirror.endpoint {
                parse_endpoint(endpoint)?;
            }
            for pattern in mirror.rewrite.keys() {
                regex::Regex::new(pattern).map_err(|e| RegistriesError::BadRewrite {
                    registry: registry.clone(),
                    pattern: pattern.clone(),
                    message: e.to_string(),
                })?;
            }
        }
        for host in self.configs.keys() {
            self.credentials(host)?;
        }
        Ok(())
    }

    /// The endpoints to try for `reference`, in order: its mirrors (or the
    /// `"*"` mirrors), then the registry itself.
    pub fn endpoints(&self, reference: &Reference) -> Result<Vec<Endpoint>, RegistriesError> {
        let mut out = Vec::new();
        let mirror = self
            .mirrors
            .get(reference.registry())
            .or_else(|| self.mirrors.get("*"));
        let upstream = self.upstream(reference);
        if let Some(mirror) = mirror {
            let repository = rewrite(mirror, reference)?;
            for raw in &mirror.endpoint {
                let (scheme, host) = parse_endpoint(raw)?;
                let endpoint = Endpoint {
                    scheme,
                    host,
                    repository: repository.clone(),
                    is_mirror: true,
                };
                // k3s lists the registry itself among its endpoints at times;
                // then it is the upstream, not a mirror, and keeps the original path.
                if endpoint.host == upstream.host {
                    continue;
                }
                if !out.contains(&endpoint) {
                    out.push(endpoint);
                }
            }
            // An explicit `http://` endpoint for the registry itself marks it insecure.
            if let Some(explicit) = mirror
                .endpoint
                .iter()
                .filter_map(|raw| parse_endpoint(raw).ok())
                .find(|(_, host)| *host == upstream.host)
            {
                out.push(Endpoint {
                    scheme: explicit.0,
                    ..upstream
                });
                return Ok(out);
            }
        }
        out.push(upstream);
        Ok(out)
    }

    fn upstream(&self, reference: &Reference) -> Endpoint {
        let host = reference.api_host().to_string();
        let has_tls = self
            .configs
            .get(&host)
            .or_else(|| self.configs.get(reference.registry()))
            .is_some_and(|c| c.tls.is_some());
        let scheme = if is_loopback(&host) && !has_tls {
            Scheme::Http
        } else {
            Scheme::Https
        };
        Endpoint {
            scheme,
            host,
            repository: reference.repository().to_string(),
            is_mirror: false,
        }
    }

    /// The `configs` entry for an endpoint host (Docker Hub's API host also
    /// answers to `docker.io`).
    pub fn host_config(&self, host: &str) -> Option<&HostConfig> {
        self.configs.get(host).or_else(|| {
            (host == super::reference::DOCKER_HUB_API_HOST)
                .then(|| self.configs.get(super::reference::DOCKER_HUB))
                .flatten()
        })
    }

    pub fn credentials(&self, host: &str) -> Result<Option<Credentials>, RegistriesError> {
        let Some(auth) = self.host_config(host).and_then(|c| c.auth.as_ref()) else {
            return Ok(None);
        };
        if let Some(token) = &auth.identitytoken {
            return Ok(Some(Credentials::IdentityToken(token.clone())));
        }
        if let (Some(username), Some(password)) = (&auth.username, &auth.password) {
            return Ok(Some(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            }));
        }
        if let Some(encoded) = &auth.auth {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| RegistriesError::BadAuth(host.to_string()))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| RegistriesError::BadAuth(host.to_string()))?;
            return Ok(Some(Credentials::Basic {
                username: username.to_string(),
                password: password.to_string(),
            }));
        }
        Ok(None)
    }
}

/// Apply the first rewrite (in key order) whose pattern matches the repository.
fn rewrite(mirror: &Mirror, reference: &Reference) -> Result<String, RegistriesError> {
    for (pattern, replacement) in &mirror.rewrite {
        let re = regex::Regex::new(pattern).map_err(|e| RegistriesError::BadRewrite {
            registry: reference.registry().to_string(),
            pattern: pattern.clone(),
            message: e.to_string(),
        })?;
        if re.is_match(reference.repository()) {
            return Ok(re
                .replace(reference.repository(), replacement.as_str())
                .into_owned());
        }
    }
    Ok(reference.repository().to_string())
}

/// `[http[s]://]host[:port][/][v2]` → (scheme, host[:port]).
fn parse_endpoint(raw: &str) -> Result<(Scheme, String), RegistriesError> {
    let bad = || RegistriesError::BadEndpoint(raw.to_string());
    let (scheme, rest) = if let Some(rest) = raw.strip_prefix("https://") {
        (Some(Scheme::Https), rest)
    } else if let Some(rest) = raw.strip_prefix("http://") {
        (Some(Scheme::Http), rest)
    } else if raw.contains("://") {
        return Err(bad());
    } else {
        (None, raw)
    };
    let rest = rest.trim_end_matches('/');
    let host = rest.strip_suffix("/v2").unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    // Without a scheme, a loopback endpoint speaks HTTP (as the upstream does).
    let scheme = scheme.unwrap_or(if is_loopback(host) {
        Scheme::Http
    } else {
        Scheme::Https
    });
    Ok((scheme, host.to_string()))
}

/// True for `localhost`, 127.0.0.0/8 and ::1, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    const SAMPLE: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "https://mirror.example.com/v2"
    rewrite:
      "^library/(.*)": "hub/$1"
  "insecure.example:8080":
    endpoint: ["http://insecure.example:8080"]
configs:
  "127.0.0.1:5443":
    auth:
      username: alice
      password: s3cret
    tls:
      ca_file: /tmp/ca.pem
  "mirror.example.com":
    auth:
      auth: Ym9iOmh1bnRlcjI=
  "token.example":
    auth:
      identitytoken: tok
"#;

    #[test]
    fn parses_the_k3s_shape() {
        let c = RegistriesConfig::from_yaml(SAMPLE).unwrap();
        assert_eq!(c.mirrors["docker.io"].endpoint.len(), 2);
        let tls = c.configs["127.0.0.1:5443"].tls.as_ref().unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/tmp/ca.pem")));
        assert!(!tls.insecure_skip_verify);
    }

    #[test]
    fn mirrors_then_upstream_with_rewrites() {
        let c = RegistriesConfig::from_yaml(SAMPLE).unwrap();
        let eps = c.endpoints(&r("busybox")).unwrap();
        let got: Vec<_> = eps
            .iter()
            .map(|e| {
                (
                    e.scheme,
                    e.host.as_str(),
                    e.repository.as_str(),
                    e.is_mirror,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Scheme::Http, "127.0.0.1:5000", "hub/busybox", true),
                (Scheme::Https, "mirror.example.com", "hub/busybox", true),
                (
                    Scheme::Https,
                    "registry-1.docker.io",
                    "library/busybox",
                    false
                ),
            ]
        );
        // A repository the rewrite does not match keeps its path.
        let eps = c.endpoints(&r("user/app")).unwrap();
        assert_eq!(eps[0].repository, "user/app");
    }

    #[test]
    fn plain_http_only_for_loopback_or_explicit() {
        let c = RegistriesConfig::from_yaml(SAMPLE).unwrap();
        let up = |s: &str| c.endpoints(&r(s)).unwrap().pop().unwrap();
        assert_eq!(up("127.0.0.1:5000/x").scheme, Scheme::Http);
        assert_eq!(up("127.1.2.3:5000/x").scheme, Scheme::Http);
        assert_eq!(up("localhost:5000/x").scheme, Scheme::Http);
        assert_eq!(up("[::1]:5000/x").scheme, Scheme::Http);
        // A loopback registry with a tls entry is HTTPS.
        assert_eq!(up("127.0.0.1:5443/x").scheme, Scheme::Https);
        assert_eq!(up("registry.example/x").scheme, Scheme::Https);
        assert_eq!(up("10.0.0.1:5000/x").scheme, Scheme::Https);
        // Marked insecure by an explicit http:// endpoint for itself.
        let eps = c.endpoints(&r("insecure.example:8080/x")).unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].scheme, Scheme::Http);
        assert!(!eps[0].is_mirror);
    }

    #[test]
    fn credentials_in_three_forms() {
        let c = RegistriesConfig::from_yaml(SAMPLE).unwrap();
        assert_eq!(
            c.credentials("127.0.0.1:5443").unwrap(),
            Some(Credentials::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            })
        );
        assert_eq!(
            c.credentials("mirror.example.com").unwrap(),
            Some(Credentials::Basic {
                username: "bob".into(),
                password: "hunter2".into()
            })
        );
        assert_eq!(
            c.credentials("token.example").unwrap(),
            Some(Credentials::IdentityToken("tok".into()))
        );
        assert_eq!(c.credentials("other").unwrap(), None);
        let shown = format!("{:?} {:?}", c.credentials("127.0.0.1:5443"), c.configs);
        assert!(
            !shown.contains("s3cret") && !shown.contains("Ym9i"),
            "{shown}"
        );
    }

    #[test]
    fn wildcard_mirror() {
        let c = RegistriesConfig::from_yaml(
            "mirrors:\n  \"*\":\n    endpoint: [\"http://127.0.0.1:5000\"]\n",
        )
        .unwrap();
        let eps = c.endpoints(&r("quay.io/a/b")).unwrap();
        assert_eq!(eps[0].host, "127.0.0.1:5000");
        assert_eq!(eps[1].host, "quay.io");
    }

    #[test]
    fn rejects_bad_files() {
        for bad in [
            "mirrors: {docker.io: {endpoint: [\"ftp://x\"]}}",
            "mirrors: {docker.io: {endpoint: [\"https://x/some/path\"]}}",
            "mirrors: {docker.io: {rewrite: {\"(\": \"x\"}}}",
            "configs: {h: {auth: {auth: \"%%%\"}}}",
            "configs: {h: {tls: {unknown_key: 1}}}",
            "mirrors: [1, 2]",
        ] {
            assert!(RegistriesConfig::from_yaml(bad).is_err(), "{bad}");
        }
        assert!(RegistriesConfig::from_yaml("").unwrap().mirrors.is_empty());
        let missing = RegistriesConfig::load(Path::new("/nonexistent/registries.yaml")).unwrap();
        assert!(missing.configs.is_empty());
    }
}
