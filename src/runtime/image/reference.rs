//! Image references, parsed and normalised the way Docker does it.
//!
//! `busybox` means `docker.io/library/busybox:latest`; the first path
//! component is a registry host only when it looks like one (it has a `.` or a
//! `:`, or is `localhost`), so `user/app` is a Docker Hub repository while
//! `host:5000/app` and `registry.example/app` are not. A reference may carry a
//! tag, a digest, or both (`name:tag@sha256:…`, where the digest wins when
//! pulling). Users see the short ("familiar") form in tables, exactly as with
//! docker.

use std::fmt;
use std::str::FromStr;

/// The registry Docker Hub images live on, as users write it.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: empty reference")]
    Empty,
    #[error("invalid reference format: repository name must be lowercase: {0:?}")]
    Uppercase(String),
    #[error("invalid reference format: {0:?} is not a valid repository path component")]
    BadComponent(String),
    #[error("invalid reference format: {0:?} is not a valid registry host")]
    BadDomain(String),
    #[error("invalid reference format: {0:?} is not a valid tag")]
    BadTag(String),
    #[error(
        "invalid reference format: {0:?} is not a valid digest (want sha256:<64 lowercase hex>)"
    )]
    BadDigest(String),
    #[error("invalid reference format: repository name is longer than 255 characters")]
    NameTooLong,
    #[error("invalid repository name ({0}): cannot be a 64-character hexadecimal string")]
    HexName(String),
}

/// A fully normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parse and normalise a reference as `docker pull` accepts it.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest)?;
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A tag is a `:` after the last `/`; an earlier `:` is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                validate_tag(tag)?;
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (registry, repository) = split_domain(name)?;
        for component in repository.split('/') {
            validate_component(component)?;
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong);
        }
        if registry == DOCKER_HUB && is_hex64(name) {
            return Err(ReferenceError::HexName(name.to_string()));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host as normalised (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host that serves the registry API (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short name Docker shows: `busybox` for `docker.io/library/busybox`,
    /// `user/app` for `docker.io/user/app`, the full name elsewhere.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag)?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to a digest (no tag): what a pull resolves to.
    pub fn with_digest(&self, digest: &str) -> Result<Reference, ReferenceError> {
        validate_digest(digest)?;
        Ok(Reference {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        })
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Split `name` into (registry, repository), applying Docker Hub's defaults.
fn split_domain(name: &str) -> Result<(String, String), ReferenceError> {
    let (first, rest) = match name.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    let is_domain = rest.is_some() && (first.contains(['.', ':']) || first == "localhost");
    if !is_domain {
        let repository = if rest.is_none() {
            format!("library/{name}")
        } else {
            name.to_string()
        };
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(name.to_string()));
        }
        return Ok((DOCKER_HUB.to_string(), repository));
    }
    let rest = rest.unwrap_or_default();
    validate_domain(first)?;
    let registry = if first == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        first.to_string()
    };
    if rest.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(rest.to_string()));
    }
    let repository = if registry == DOCKER_HUB && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest.to_string()
    };
    Ok((registry, repository))
}

/// A host name or IPv4 address, or a bracketed IPv6 address, with an optional port.
fn validate_domain(domain: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::BadDomain(domain.to_string());
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    if let Some(host) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, Docker's path component grammar.
fn validate_component(component: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::BadComponent(component.to_string());
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__`, or any number of `-`.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LEN
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::BadTag(tag.to_string()))
    }
}

/// Only sha256 digests are accepted: every registry serves them and the store
/// keys blobs by them.
pub fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if is_hex64(hex) => Ok(()),
        _ => Err(ReferenceError::BadDigest(digest.to_string())),
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2d3c4f1a0b9e8d7c6b5a49382716f5e4d3c2b1a09f8e7d6c5b4a392817f6e5d4";

    #[test]
    fn normalises_like_docker() {
        let cases: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("user/app:v1", "docker.io/user/app:v1"),
            ("a/b/c", "docker.io/a/b/c:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:dev", "localhost:5000/app:dev"),
            ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest"),
            ("host:5000/x/y:tag", "host:5000/x/y:tag"),
            ("quay.io/coreos/etcd", "quay.io/coreos/etcd:latest"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            (
                "my-reg.example.com/a.b/c_d/e__f/g--h",
                "my-reg.example.com/a.b/c_d/e__f/g--h:latest",
            ),
            ("UPPER.example/app", "UPPER.example/app:latest"),
            ("app:V1_2.3-x", "docker.io/library/app:V1_2.3-x"),
        ];
        for (input, want) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&r.to_string(), want, "{input}");
            // Normalisation is idempotent.
            assert_eq!(Reference::parse(&r.to_string()).as_ref(), Ok(&r), "{input}");
        }
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));

        let r = Reference::parse(&format!("host:5000/app:v1@{D}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.manifest_ref(), D, "the digest wins over the tag");
        assert_eq!(r.api_host(), "host:5000");
    }

    #[test]
    fn rejects_bad_input() {
        type Check = fn(&ReferenceError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, ReferenceError::Empty)),
            (":tag", |e| matches!(e, ReferenceError::Empty)),
            ("Busybox", |e| matches!(e, ReferenceError::Uppercase(_))),
            ("user/App", |e| matches!(e, ReferenceError::Uppercase(_))),
            ("host:5000/App", |e| {
                matches!(e, ReferenceError::Uppercase(_))
            }),
            ("busybox:", |e| matches!(e, ReferenceError::BadTag(_))),
            ("busybox:-x", |e| matches!(e, ReferenceError::BadTag(_))),
            ("busybox:a/b", |e| matches!(e, ReferenceError::BadDomain(_))),
            ("busybox@sha256:abc", |e| {
                matches!(e, ReferenceError::BadDigest(_))
            }),
            ("busybox@md5:0123", |e| {
                matches!(e, ReferenceError::BadDigest(_))
            }),
            ("busybox@", |e| matches!(e, ReferenceError::BadDigest(_))),
            ("a//b", |e| matches!(e, ReferenceError::BadComponent(_))),
            ("a/b/", |e| matches!(e, ReferenceError::BadComponent(_))),
            ("-a", |e| matches!(e, ReferenceError::BadComponent(_))),
            ("a..b", |e| matches!(e, ReferenceError::BadComponent(_))),
            ("a___b", |e| matches!(e, ReferenceError::BadComponent(_))),
            ("a b", |e| matches!(e, ReferenceError::BadComponent(_))),
            ("host:port/app", |e| {
                matches!(e, ReferenceError::BadDomain(_))
            }),
            ("-host.io/app", |e| {
                matches!(e, ReferenceError::BadDomain(_))
            }),
            ("[zz]:5000/app", |e| {
                matches!(e, ReferenceError::BadDomain(_))
            }),
            ("../etc/app", |e| matches!(e, ReferenceError::BadDomain(_))),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                |e| matches!(e, ReferenceError::HexName(_)),
            ),
        ];
        for (input, want) in cases {
            match Reference::parse(input) {
                Ok(r) => panic!("{input:?} parsed as {r}"),
                Err(e) => assert!(want(&e), "{input:?}: unexpected error {e:?}"),
            }
        }
        let long = format!("x.io/{}", "a".repeat(260));
        assert_eq!(Reference::parse(&long), Err(ReferenceError::NameTooLong));
        let long_tag = format!("app:{}", "t".repeat(129));
        assert!(matches!(
            Reference::parse(&long_tag),
            Err(ReferenceError::BadTag(_))
        ));
    }

    #[test]
    fn familiar_names() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar_name();
        assert_eq!(f("busybox"), "busybox");
        assert_eq!(f("user/app"), "user/app");
        assert_eq!(f("docker.io/library/a/b"), "library/a/b");
        assert_eq!(f("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox");
    }

    #[test]
    fn retagging() {
        let r = Reference::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(
            r.with_tag("2").unwrap().to_string(),
            "docker.io/library/busybox:2"
        );
        assert!(r.with_tag("bad tag").is_err());
        assert_eq!(
            r.with_digest(D).unwrap().to_string(),
            format!("docker.io/library/busybox@{D}")
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = Reference::parse(&s);
        }

        #[test]
        fn parsed_references_round_trip(s in "([a-z0-9.:-]{1,12}/)?[a-z0-9._-]{1,20}(:[A-Za-z0-9_.-]{1,10})?") {
            if let Ok(r) = Reference::parse(&s) {
                proptest::prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r));
            }
        }
    }
}
