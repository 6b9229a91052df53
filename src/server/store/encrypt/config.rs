//! Upstream's `EncryptionConfiguration` (apiserver.config.k8s.io/v1), read
//! from JSON or YAML, checked as kube-apiserver checks it, and turned into
//! [`Transformers`]: which storage keys are encrypted, and how.
//!
//! ```yaml
//! apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//!   - resources: [secrets, configmaps, "*.apps"]
//!     providers:
//!       - aesgcm: {keys: [{name: key1, secret: <base64 of 16, 24 or 32 bytes>}]}
//!       - identity: {}
//! ```
//!
//! Resource names map to storage prefixes as the registry lays them out:
//! `secrets` → `/registry/secrets/`, `deployments.apps` →
//! `/registry/apps/deployments/`; `*.apps` is every resource of a group,
//! `*.` every core resource, `*.*` everything. The first entry that names a
//! key's resource decides (a name masked by an earlier wildcard is refused,
//! as upstream). Errors name the field and the key's name; a secret is never
//! echoed.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::resources::{group_resource, Selector};
use super::transform::{Chain, Cipher, KeyEntry, Kind, Provider};

pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
pub const KIND: &str = "EncryptionConfiguration";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptionConfiguration {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub resources: Vec<ResourceConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
}

/// One element of `providers`: exactly one of these is set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aescbc: Option<KeysConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aesgcm: Option<KeysConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Refused: named so that the error says so, not "unknown field".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secretbox: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Identity {}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

/// A named key; `secret` is the base64 of the key bytes.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub secret: String,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("the encryption configuration does not parse: {0}")]
    Parse(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("the system's random number generator failed")]
    Random,
}

pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A checked configuration, ready to transform values.
#[derive(Debug)]
pub struct Transformers {
    /// Each resource name with its entry's chain, in configuration order.
    rules: Vec<(Selector, Arc<Chain>)>,
    /// One chain per resource entry.
    chains: Vec<Arc<Chain>>,
    /// The configuration it was made from (kept for status and rotation).
    pub config: EncryptionConfiguration,
}

impl Transformers {
    /// The chain for a storage key (None: stored as it is, untouched).
    pub fn for_key(&self, key: &str) -> Option<&Chain> {
        let (group, resource) = group_resource(key)?;
        self.rules
            .iter()
            .find(|(sel, _)| sel.matches(group, resource))
            .map(|(_, chain)| chain.as_ref())
    }

    /// The storage prefixes that hold every key some rule covers, none
    /// inside another.
    pub fn prefixes(&self) -> Vec<String> {
        let mut all: Vec<String> = self.rules.iter().map(|(s, _)| s.prefix()).collect();
        all.sort();
        all.dedup();
        let mut out: Vec<String> = Vec::new();
        for p in all {
            if !out.iter().any(|q| p.starts_with(q.as_str())) {
                out.push(p);
            }
        }
        out
    }

    /// The chains in configuration order, with the resource names they
    /// serve.
    pub fn rules(&self) -> impl Iterator<Item = (&[String], &Chain)> {
        self.config
            .resources
            .iter()
            .zip(&self.chains)
            .map(|(rc, chain)| (rc.resources.as_slice(), chain.as_ref()))
    }

    /// Whether anything is written encrypted.
    pub fn encrypts(&self) -> bool {
        self.rules.iter().any(|(_, c)| c.writer().is_some())
    }
}

/// Parses a configuration file's text (JSON is YAML too).
pub fn parse(text: &str) -> Result<EncryptionConfiguration, ConfigError> {
    serde_saphyr::from_str::<EncryptionConfiguration>(text)
        // The parser's message quotes the offending text, which may be a
        // secret: say only where it is.
        .map_err(|e| ConfigError::Parse(redacted_parse_error(&e.to_string())))
}

/// The parser's message without any quoted input: the first line, cut
/// before the first quote.
fn redacted_parse_error(msg: &str) -> String {
    let line = msg.lines().next().unwrap_or_default();
    match line.find(['"', '\'', '`']) {
        Some(i) => format!("{}…", line[..i].trim_end()),
        None => line.to_string(),
    }
}

/// Checks `config` as kube-apiserver does and makes its transformers.
pub fn build(config: EncryptionConfiguration) -> Result<Transformers, ConfigError> {
    if config.api_version != API_VERSION {
        return Err(invalid(
            "apiVersion",
            format!("must be {API_VERSION:?}, not {:?}", config.api_version),
        ));
    }
    if config.kind != KIND {
        return Err(invalid(
            "kind",
            format!("must be {KIND:?}, not {:?}", config.kind),
        ));
    }
    if config.resources.is_empty() {
        return Err(invalid(
            "resources",
            "at least one resource entry is required",
        ));
    }
    let mut rules: Vec<(Selector, Arc<Chain>)> = Vec::new();
    let mut chains = Vec::with_capacity(config.resources.len());
    let mut seen: Vec<(Selector, String)> = Vec::new();
    for (i, rc) in config.resources.iter().enumerate() {
        let field = format!("resources[{i}]");
        if rc.resources.is_empty() {
            return Err(invalid(
                format!("{field}.resources"),
                "at least one resource is required",
            ));
        }
        let chain = Arc::new(chain(&rc.providers, &format!("{field}.providers"))?);
        let mut mine: Vec<(Selector, String)> = Vec::new();
        for (j, name) in rc.resources.iter().enumerate() {
            let f = format!("{field}.resources[{j}]");
            let sel = Selector::parse(name, &f)?;
            if seen.iter().chain(&mine).any(|(s, _)| *s == sel) {
                return Err(invalid(
                    f,
                    format!("{name:?}: the same resource cannot be specified multiple times"),
                ));
            }
            if let Some((_, wide)) = mine.iter().find(|(s, _)| s.covers(&sel) || sel.covers(s)) {
                return Err(invalid(
                    f,
                    format!(
                        "using overlapping resources such as {name:?} and {wide:?} in the same \
                         resource list is not allowed as they will be masked"
                    ),
                ));
            }
            if let Some((_, wide)) = seen.iter().find(|(s, _)| s.covers(&sel)) {
                return Err(invalid(
                    f,
                    format!("{name:?} is masked by {wide:?}, named in an earlier entry"),
                ));
            }
            mine.push((sel.clone(), name.clone()));
            rules.push((sel, chain.clone()));
        }
        seen.extend(mine);
        chains.push(chain);
    }
    Ok(Transformers {
        rules,
        chains,
        config,
    })
}

fn chain(providers: &[ProviderConfig], field: &str) -> Result<Chain, ConfigError> {
    if providers.is_empty() {
        return Err(invalid(field, "at least one provider is required"));
    }
    let mut out = Vec::with_capacity(providers.len());
    for (i, p) in providers.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let set = [
            p.aescbc.is_some(),
            p.aesgcm.is_some(),
            p.identity.is_some(),
            p.secretbox.is_some(),
            p.kms.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set == 0 {
            return Err(invalid(
                f,
                "provider does not contain any of the expected providers: KMS, secretbox, \
                 identity, aesgcm, aescbc",
            ));
        }
        if set > 1 {
            return Err(invalid(
                f,
                "more than one provider specified in a single element, should split into \
                 different list elements",
            ));
        }
        let unsupported = |name: &str| {
            invalid(
                format!("{f}.{name}"),
                format!(
                    "the {name} provider is not supported by skiff (supported: aescbc, \
                     aesgcm, identity)"
                ),
            )
        };
        out.push(if let Some(k) = &p.aescbc {
            Provider::Keys(keys(Kind::Aescbc, k, &format!("{f}.aescbc"))?)
        } else if let Some(k) = &p.aesgcm {
            Provider::Keys(keys(Kind::Aesgcm, k, &format!("{f}.aesgcm"))?)
        } else if p.identity.is_some() {
            Provider::Identity
        } else if p.secretbox.is_some() {
            return Err(unsupported("secretbox"));
        } else {
            return Err(unsupported("kms"));
        });
    }
    Ok(Chain::new(out))
}

fn keys(kind: Kind, cfg: &KeysConfig, field: &str) -> Result<Vec<KeyEntry>, ConfigError> {
    if cfg.keys.is_empty() {
        return Err(invalid(
            format!("{field}.keys"),
            "at least one key is required",
        ));
    }
    let mut out: Vec<KeyEntry> = Vec::with_capacity(cfg.keys.len());
    for (i, k) in cfg.keys.iter().enumerate() {
        let f = format!("{field}.keys[{i}]");
        if k.name.is_empty() {
            return Err(invalid(format!("{f}.name"), "a key name is required"));
        }
        if k.name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid(
                format!("{f}.name"),
                format!(
                    "key name {:?} must not contain spaces or control characters",
                    k.name
                ),
            ));
        }
        if out.iter().any(|e| e.name == k.name) {
            return Err(invalid(
                format!("{f}.name"),
                format!("duplicate key name {:?}", k.name),
            ));
        }
        if k.secret.is_empty() {
            return Err(invalid(
                format!("{f}.secret"),
                format!("the secret of key {:?} is required", k.name),
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(k.secret.trim())
            .map_err(|_| {
                invalid(
                    format!("{f}.secret"),
                    format!("the secret of key {:?} is not valid base64", k.name),
                )
            })?;
        let cipher = Cipher::new(kind, &bytes).ok_or_else(|| {
            invalid(
                format!("{f}.secret"),
                format!(
                    "the secret of key {:?} is {} bytes, expected 16, 24 or 32",
                    k.name,
                    bytes.len()
                ),
            )
        })?;
        out.push(KeyEntry::new(kind, &k.name, cipher));
    }
    Ok(out)
}

impl EncryptionConfiguration {
    /// What `--secrets-encryption` starts with (k3s's): Secrets under one
    /// aescbc key, then identity so that what was stored before stays
    /// readable until it is re-encrypted.
    pub fn generated(key: KeyConfig) -> EncryptionConfiguration {
        EncryptionConfiguration {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            resources: vec![ResourceConfig {
                resources: vec!["secrets".into()],
                providers: vec![
                    ProviderConfig {
                        aescbc: Some(KeysConfig { keys: vec![key] }),
                        ..Default::default()
                    },
                    ProviderConfig {
                        identity: Some(Identity {}),
                        ..Default::default()
                    },
                ],
            }],
        }
    }

    /// `key` first in every entry: prepended to a first aescbc provider's
    /// keys, else as a new first provider. Older keys stay after it, so
    /// what they encrypted stays readable.
    pub fn with_first_key(mut self, key: KeyConfig) -> EncryptionConfiguration {
        for rc in &mut self.resources {
            match rc.providers.first_mut().and_then(|p| p.aescbc.as_mut()) {
                Some(cbc) => cbc.keys.insert(0, key.clone()),
                None => rc.providers.insert(
                    0,
                    ProviderConfig {
                        aescbc: Some(KeysConfig {
                            keys: vec![key.clone()],
                        }),
                        ..Default::default()
                    },
                ),
            }
        }
        self
    }

    /// Only the named key left in each first aescbc provider (after every
    /// value was re-encrypted with it).
    pub fn without_keys_after(mut self, name: &str) -> EncryptionConfiguration {
        for rc in &mut self.resources {
            if let Some(cbc) = rc.providers.first_mut().and_then(|p| p.aescbc.as_mut()) {
                if cbc.keys.first().is_some_and(|k| k.name == name) {
                    cbc.keys.truncate(1);
                }
            }
        }
        self
    }
}

/// A fresh random 32-byte aescbc key named as k3s names them
/// (`aescbckey-<UTC time>`, without colons so that the name is a plain
/// token in the value's prefix).
pub fn new_key() -> Result<KeyConfig, ConfigError> {
    // The kernel's generator directly, for a key that lives for years.
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| ConfigError::Random)?;
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    Ok(KeyConfig {
        name: format!("aescbckey-{now}"),
        secret: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const K32: &str = "c2VjcmV0IGlzIHNlY3VyZSwgc2VjcmV0IGlzIHNlY3I="; // 32 bytes
    const K16: &str = "MDEyMzQ1Njc4OWFiY2RlZg=="; // 16 bytes

    fn yaml(resources: &str, providers: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n  - resources: {resources}\n    providers:\n{providers}"
        )
    }

    fn cbc(name: &str, secret: &str) -> String {
        format!("      - aescbc:\n          keys:\n            - name: {name}\n              secret: \"{secret}\"\n")
    }

    fn err(text: &str) -> String {
        match parse(text).and_then(build) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn upstream_yaml_and_json_parse() {
        let text = yaml(
            "[secrets, configmaps, \"*.apps\"]",
            &(cbc("k1", K32) + "      - identity: {}\n"),
        );
        let t = build(parse(&text).unwrap()).unwrap();
        assert!(t.encrypts());
        assert!(t.for_key("/registry/secrets/default/a").is_some());
        assert!(t.for_key("/registry/configmaps/default/a").is_some());
        assert!(t.for_key("/registry/apps/deployments/default/a").is_some());
        assert!(t.for_key("/registry/pods/default/a").is_none());
        assert!(t.for_key("/registry/batch/jobs/default/a").is_none());
        let json = serde_json::to_string(&t.config).unwrap();
        let again = build(parse(&json).unwrap()).unwrap();
        assert_eq!(again.config, t.config);
        assert!(!json.contains("secretbox"), "{json}");
    }

    #[test]
    fn resources_map_to_storage_prefixes_with_wildcards() {
        let text = |r: &str| yaml(r, &cbc("k", K16));
        let t = build(parse(&text("[deployments.apps, \"*.batch\", \"*.\"]")).unwrap()).unwrap();
        assert!(t.for_key("/registry/apps/deployments/ns/d").is_some());
        assert!(t.for_key("/registry/apps/replicasets/ns/d").is_none());
        assert!(t.for_key("/registry/batch/cronjobs/ns/c").is_some());
        assert!(t.for_key("/registry/secrets/ns/s").is_some());
        assert!(t.for_key("/registry/ranges/serviceips").is_some());
        assert!(t
            .for_key("/registry/rbac.authorization.k8s.io/roles/ns/r")
            .is_none());
        assert_eq!(t.prefixes(), vec!["/registry/".to_string()]);

        let all = build(parse(&text("[\"*.*\"]")).unwrap()).unwrap();
        assert!(all
            .for_key("/registry/stable.example.com/crontabs/ns/c")
            .is_some());
        assert!(all.for_key("/other").is_none());

        let crd = build(parse(&text("[crontabs.stable.example.com, secrets]")).unwrap()).unwrap();
        assert!(crd
            .for_key("/registry/stable.example.com/crontabs/ns/c")
            .is_some());
        assert_eq!(
            crd.prefixes(),
            vec![
                "/registry/secrets/".to_string(),
                "/registry/stable.example.com/crontabs/".to_string()
            ]
        );
    }

    #[test]
    fn bad_secrets_are_named_by_key_and_never_echoed() {
        let short = "c2hvcnQ="; // "short"
        let e = err(&yaml("[secrets]", &cbc("mykey", short)));
        assert!(
            e.contains("\"mykey\"") && e.contains("5 bytes") && e.contains("16, 24 or 32"),
            "{e}"
        );
        assert!(!e.contains(short), "{e}");
        let e = err(&yaml("[secrets]", &cbc("other", "not base64!!")));
        assert!(e.contains("\"other\"") && e.contains("base64"), "{e}");
        assert!(!e.contains("not base64!!"), "{e}");
        assert!(
            e.starts_with("resources[0].providers[0].aescbc.keys[0].secret"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_names_missing_parts_and_unsupported_providers_are_refused() {
        let two = format!(
            "      - aesgcm:\n          keys:\n            - name: a\n              secret: {K32}\n            - name: a\n              secret: {K16}\n"
        );
        assert!(err(&yaml("[secrets]", &two)).contains("duplicate key name \"a\""));
        let sb = format!("      - secretbox:\n          keys: [{{name: s, secret: {K32}}}]\n");
        let e = err(&yaml("[secrets]", &sb));
        assert!(
            e.contains("secretbox provider is not supported")
                && e.contains("aescbc, aesgcm, identity"),
            "{e}"
        );
        assert!(!e.contains(K32));
        let kms = "      - kms: {apiVersion: v2, name: x, endpoint: unix:///k.sock}\n";
        assert!(err(&yaml("[secrets]", kms)).contains("kms provider is not supported"));
        assert!(err(&yaml("[secrets]", "      - {}\n")).contains("expected providers"));
        let both = format!(
            "      - identity: {{}}\n        aescbc: {{keys: [{{name: a, secret: {K32}}}]}}\n"
        );
        assert!(err(&yaml("[secrets]", &both)).contains("more than one provider"));
        assert!(err(&yaml("[secrets]", "      []\n")).contains("at least one provider"));
        assert!(
            err(&yaml("[secrets]", "      - aescbc: {keys: []}\n")).contains("at least one key")
        );
        assert!(err(&yaml("[]", &cbc("k", K32))).contains("at least one resource"));
    }

    #[test]
    fn resource_names_follow_upstreams_rules() {
        let p = cbc("k", K32);
        assert!(err(&yaml("[\"*\"]", &p)).contains("use '*.'"));
        assert!(err(&yaml("[Secrets]", &p)).contains("capital letters"));
        assert!(err(&yaml("[secrets, secrets]", &p)).contains("multiple times"));
        assert!(err(&yaml("[secrets, \"*.\"]", &p)).contains("masked"));
        assert!(err(&yaml("[events.events.k8s.io]", &p)).contains("use 'events'"));
        assert!(err(&yaml("[deployments.extensions]", &p)).contains("'extensions'"));
        assert!(err(&yaml("[serviceipallocations]", &p)).contains("REST API"));
        let masked =
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: [\"*.*\"]\n  providers: [{identity: {}}]\n\
             - resources: [secrets]\n  providers: [{identity: {}}]\n";
        assert!(err(masked).contains("masked by \"*.*\""));
        assert!(
            err("apiVersion: v1\nkind: EncryptionConfiguration\nresources: []\n")
                .contains("apiVersion")
        );
        assert!(err("apiVersion: apiserver.config.k8s.io/v1\nkind: Foo\n").contains("kind"));
        assert!(err("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresourcez: []\n").contains("does not parse"));
    }

    #[test]
    fn rotation_puts_the_new_key_first_and_can_drop_the_rest() {
        let first = new_key().unwrap();
        let cfg = EncryptionConfiguration::generated(first.clone());
        let second = KeyConfig {
            name: "two".into(),
            secret: K32.into(),
        };
        let rotated = cfg.with_first_key(second.clone());
        let keys = &rotated.resources[0].providers[0]
            .aescbc
            .as_ref()
            .unwrap()
            .keys;
        assert_eq!(
            keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
            ["two", first.name.as_str()]
        );
        assert!(rotated.resources[0].providers[1].identity.is_some());
        let t = build(rotated.clone()).unwrap();
        assert_eq!(
            t.for_key("/registry/secrets/a/b")
                .unwrap()
                .writer()
                .unwrap()
                .name,
            "two"
        );
        let dropped = rotated.without_keys_after("two");
        assert_eq!(
            dropped.resources[0].providers[0]
                .aescbc
                .as_ref()
                .unwrap()
                .keys,
            vec![second]
        );
        assert!(!first.name.contains(':'));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&first.secret)
                .unwrap()
                .len(),
            32
        );
        assert!(!format!("{first:?}").contains(&first.secret));
    }
}
