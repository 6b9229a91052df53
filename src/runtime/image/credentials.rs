//! Credentials saved by `skiff login`: `<root>/credentials.json`, mode 0600,
//! in the shape of docker's config.json (`{"auths": {"host": {"auth":
//! base64(user:password)}}}`) so that users can read it with tools they know.
//! Registry configuration stays in `/etc/skiff/registries.yaml` (k3s's
//! place); pulls and pushes look there first and fall back to this file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::registries::Credentials;

pub const FILE_NAME: &str = "credentials.json";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a credentials file: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Default, Serialize, Deserialize)]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identitytoken: Option<String>,
}

/// The saved logins, by registry host (`host[:port]` as in image names).
#[derive(Clone, Default)]
pub struct Logins {
    by_host: BTreeMap<String, Credentials>,
}

// Never print secrets, not even in debug output.
impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_host.keys()).finish()
    }
}

pub fn path(root: &Path) -> PathBuf {
    root.join(FILE_NAME)
}

impl Logins {
    /// Read the file; a missing file means no logins.
    pub fn load(path: &Path) -> Result<Logins, CredentialsError> {
        let text = match fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Logins::default()),
            Err(source) => {
                return Err(CredentialsError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let file: File = serde_json::from_slice(&text).map_err(|e| CredentialsError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut by_host = BTreeMap::new();
        for (host, entry) in file.auths {
            if let Some(token) = entry.identitytoken {
                by_host.insert(host, Credentials::IdentityToken(token));
                continue;
            }
            // A malformed entry is skipped rather than failing every pull;
            // the entry's value is never echoed.
            let decoded = entry.auth.and_then(|a| {
                base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
            });
            match decoded.as_deref().and_then(|d| d.split_once(':')) {
                Some((u, p)) => {
                    by_host.insert(
                        host,
                        Credentials::Basic {
                            username: u.to_string(),
                            password: p.to_string(),
                        },
                    );
                }
                None => {
                    tracing::warn!(path = %path.display(), %host, "ignoring a malformed login entry")
                }
            }
        }
        Ok(Logins { by_host })
    }

    /// The logins of a pod's image pull Secret: the `.dockerconfigjson`
    /// shape (`{"auths": {...}}`) or the older `.dockercfg` one (the map
    /// itself). Keys may be URLs (`https://index.docker.io/v1/`), name a
    /// path (`registry.example.com/team`: only repositories under it) or
    /// a wildcard (`*.example.com`), as kubelet's keyring reads them; each
    /// entry has `username`/`password`, `auth` or `identitytoken`.
    /// [`Logins::for_image`] picks among them.
    /// Malformed entries are skipped; nothing of a secret is ever echoed.
    pub fn from_docker_config(data: &[u8]) -> Result<Logins, String> {
        let value: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| format!("not a docker configuration: {e}"))?;
        let map = match value.get("auths") {
            Some(auths) => auths.as_object(),
            None => value.as_object(),
        }
        .ok_or("not a docker configuration: no map of registries")?;
        let mut by_host = BTreeMap::new();
        for (key, entry) in map {
            let Some(host) = registry_key(key) else {
                continue;
            };
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(serde_json::Value::as_str)
                    .filter(|v| !v.is_empty())
            };
            let credentials = if let Some(token) = field("identitytoken") {
                Credentials::IdentityToken(token.to_string())
            } else if let (Some(u), Some(p)) = (field("username"), field("password")) {
                Credentials::Basic {
                    username: u.to_string(),
                    password: p.to_string(),
                }
            } else {
                let decoded = field("auth").and_then(|a| {
                    base64::engine::general_purpose::STANDARD
                        .decode(a.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                });
                match decoded.as_deref().and_then(|d| d.split_once(':')) {
                    Some((u, p)) => Credentials::Basic {
                        username: u.to_string(),
                        password: p.to_string(),
                    },
                    None => continue,
                }
            };
            by_host.insert(host, credentials);
        }
        Ok(Logins { by_host })
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// Add `other`'s logins for hosts this has none for.
    pub fn extend_missing(&mut self, other: Logins) {
        for (host, c) in other.by_host {
            self.by_host.entry(host).or_insert(c);
        }
    }

    /// The most specific login for `repository` at `host` (the
    /// registry's endpoint): an exact host before a wildcard one, a longer
    /// path before a shorter. Docker Hub's endpoint is docker.io here.
    pub fn for_image(&self, host: &str, repository: &str) -> Option<&Credentials> {
        let host = if host == super::reference::DOCKER_HUB_API_HOST {
            super::reference::DOCKER_HUB
        } else {
            host
        };
        let host = host.to_ascii_lowercase();
        self.by_host
            .iter()
            .filter_map(|(key, c)| {
                let (khost, kpath) = key.split_once('/').unwrap_or((key.as_str(), ""));
                let exact = khost == host;
                if !exact && !host_matches(khost, &host) {
                    return None;
                }
                let under = kpath.is_empty()
                    || repository == kpath
                    || repository.starts_with(&format!("{kpath}/"));
                under.then_some(((exact, kpath.len()), c))
            })
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, c)| c)
    }

    pub fn get(&self, host: &str) -> Option<&Credentials> {
        self.by_host.get(host).or_else(|| {
            // Docker Hub is written docker.io in names but served elsewhere.
            (host == super::reference::DOCKER_HUB_API_HOST)
                .then(|| self.by_host.get(super::reference::DOCKER_HUB))
                .flatten()
        })
    }

    pub fn set(&mut self, host: &str, credentials: Credentials) {
        self.by_host.insert(host.to_string(), credentials);
    }

    pub fn remove(&mut self, host: &str) -> bool {
        self.by_host.remove(host).is_some()
    }

    /// Write atomically (temp file, fsync, rename), created 0600 so the
    /// secret is never readable by others, not even for a moment.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let io = |source| CredentialsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::default();
        for (host, c) in &self.by_host {
            let entry = match c {
                Credentials::Basic { username, password } => Entry {
                    auth: Some(
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{username}:{password}")),
                    ),
                    identitytoken: None,
                },
                Credentials::IdentityToken(t) => Entry {
                    auth: None,
                    identitytoken: Some(t.clone()),
                },
            };
            file.auths.insert(host.clone(), entry);
        }
        let data = serde_json::to_vec_pretty(&file).map_err(|e| CredentialsError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io)
    }
}

/// `host[:port][/path]` as a docker configuration key names it: a bare
/// host or a URL (its scheme dropped, and an API version path such as
/// `/v1/`); Docker Hub's index is docker.io.
fn registry_key(key: &str) -> Option<String> {
    let key = key.trim();
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let host = match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => super::reference::DOCKER_HUB.to_string(),
        _ => host,
    };
    let path = path.trim_matches('/');
    let path = match path.split_once('/') {
        Some(("v1" | "v2", rest)) => rest,
        None if matches!(path, "v1" | "v2") => "",
        _ => path,
    };
    Some(if path.is_empty() {
        host
    } else {
        format!("{host}/{path}")
    })
}

/// kubelet's keyring match of a host pattern: the same port, the same
/// number of labels, each a glob (`*.example.com`, `registry-*.io`).
fn host_matches(pattern: &str, host: &str) -> bool {
    let split = |h: &str| -> (String, String) {
        match h.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (h.to_string(), String::new()),
        }
    };
    let ((ph, pp), (hh, hp)) = (split(pattern), split(host));
    if pp != hp || !ph.contains('*') {
        return false;
    }
    let (pl, hl): (Vec<&str>, Vec<&str>) = (ph.split('.').collect(), hh.split('.').collect());
    pl.len() == hl.len() && pl.iter().zip(&hl).all(|(p, h)| glob(p, h))
}

/// `*` in `pattern` matches any run of characters within one label.
fn glob(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        let mut logins = Logins::load(&p).unwrap();
        assert!(logins.get("h:5000").is_none());
        logins.set(
            "h:5000",
            Credentials::Basic {
                username: "u".into(),
                password: "p:w".into(),
            },
        );
        logins.save(&p).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("\"auths\"") && !text.contains("p:w"),
            "{text}"
        );
        let again = Logins::load(&p).unwrap();
        assert_eq!(
            again.get("h:5000"),
            Some(&Credentials::Basic {
                username: "u".into(),
                password: "p:w".into()
            })
        );
        assert!(!format!("{again:?}").contains("p:w"));
        let mut again = again;
        assert!(again.remove("h:5000"));
        again.save(&p).unwrap();
        assert!(Logins::load(&p).unwrap().get("h:5000").is_none());
    }

    #[test]
    fn pull_secrets_match_as_kubelets_keyring() {
        let user = |c: Option<&Credentials>| match c {
            Some(Credentials::Basic { username, .. }) => Some(username.clone()),
            _ => None,
        };
        let json = br#"{"auths": {
            "reg.example.com": {"username": "host", "password": "p"},
            "https://reg.example.com/v2/team": {"username": "team", "password": "p"},
            "reg.example.com/team/special": {"username": "special", "password": "p"},
            "*.azurecr.io": {"username": "wild", "password": "p"},
            "exact.azurecr.io": {"username": "exact", "password": "p"},
            "https://index.docker.io/v1/": {"username": "hub", "password": "p"},
            "h:5000": {"username": "port", "password": "p"}
        }}"#;
        let l = Logins::from_docker_config(json).unwrap();
        assert_eq!(
            user(l.for_image("reg.example.com", "other/app")).as_deref(),
            Some("host")
        );
        assert_eq!(
            user(l.for_image("reg.example.com", "team/app")).as_deref(),
            Some("team")
        );
        assert_eq!(
            user(l.for_image("reg.example.com", "teamx/app")).as_deref(),
            Some("host")
        );
        assert_eq!(
            user(l.for_image("reg.example.com", "team/special/app")).as_deref(),
            Some("special")
        );
        assert_eq!(
            user(l.for_image("me.azurecr.io", "app")).as_deref(),
            Some("wild")
        );
        assert_eq!(
            user(l.for_image("exact.azurecr.io", "app")).as_deref(),
            Some("exact")
        );
        assert_eq!(
            user(l.for_image("a.b.azurecr.io", "app")),
            None,
            "one label per *"
        );
        assert_eq!(
            user(l.for_image("registry-1.docker.io", "library/busybox")).as_deref(),
            Some("hub")
        );
        assert_eq!(user(l.for_image("h:5000", "x")).as_deref(), Some("port"));
        assert_eq!(user(l.for_image("h:5001", "x")), None);
    }

    #[test]
    fn pull_secrets_in_both_docker_shapes() {
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: p.into(),
        };
        let json = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnB3"},
            "127.0.0.1:5000": {"username": "alice", "password": "s:ecret", "auth": "ignored"},
            "https://Reg.Example.com/v2/": {"identitytoken": "tok"},
            "broken.example": {"auth": "@@@"}
        }}"#;
        let l = Logins::from_docker_config(json).unwrap();
        assert!(l.get("docker.io") == Some(&basic("hub", "pw")));
        assert!(l.get("registry-1.docker.io") == Some(&basic("hub", "pw")));
        assert!(l.get("127.0.0.1:5000") == Some(&basic("alice", "s:ecret")));
        assert!(l.get("reg.example.com") == Some(&Credentials::IdentityToken("tok".into())));
        assert!(l.get("broken.example").is_none());
        // .dockercfg: the map itself.
        let l = Logins::from_docker_config(br#"{"quay.io": {"auth": "dTpw"}}"#).unwrap();
        assert!(l.get("quay.io") == Some(&basic("u", "p")));
        let err = Logins::from_docker_config(b"[1]").err().unwrap();
        assert!(err.contains("not a docker configuration"), "{err}");
        // The secret's contents never reach an error message.
        let err = Logins::from_docker_config(b"{\"auths\": \"hunter2")
            .err()
            .unwrap();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
