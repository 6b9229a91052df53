//! Registry client: resolves a reference to a manifest and config (trying the
//! mirrors from registries.yaml before the registry itself), and streams blobs
//! to files while checking their size and sha256.
//!
//! HTTP is done by `oci-client` (reqwest over rustls with the ring provider,
//! hickory for DNS: a static glibc binary cannot use NSS). It handles the
//! `/v2/` challenge, Bearer tokens and Basic auth. One `oci_client::Client` is
//! kept per (scheme, host) since protocol, CA files and credentials are per
//! endpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::credentials::Logins;
use super::manifest::{self, Descriptor, Fetched, ImageConfig, Manifest, ManifestError};
use super::reference::Reference;
use super::registries::{Credentials, Endpoint, RegistriesConfig, RegistriesError, Scheme};

/// Manifests and configs are small; anything larger is hostile or broken.
const MAX_DOCUMENT_SIZE: u64 = 8 << 20;

/// Whether the registry refused the credentials (or their absence).
pub fn is_unauthorized(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => true,
        E::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| x.code == oci_client::errors::OciErrorCode::Unauthorized),
        E::ServerError { code, .. } => *code == 401,
        _ => false,
    }
}

/// Why a connection to `host` failed, read from the error's causes (the
/// HTTP client's own text is only `error sending request for url (…)`):
/// connection refused, a failed name lookup, a TLS failure, a timeout.
/// None when the causes say none of these.
pub fn connection_problem(err: &(dyn std::error::Error + 'static), host: &str) -> Option<String> {
    let mut texts = Vec::new();
    let mut kind = None;
    let mut cur = Some(err);
    while let Some(e) = cur {
        texts.push(e.to_string());
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            kind = kind.or(Some(io.kind()));
        }
        cur = e.source();
    }
    let all = texts.join(": ").to_lowercase();
    // The innermost cause that says something the outer ones do not.
    let detail = texts.last().cloned().unwrap_or_default();
    if kind == Some(std::io::ErrorKind::ConnectionRefused) || all.contains("connection refused") {
        return Some(format!("cannot connect to {host}: connection refused"));
    }
    if all.contains("dns error")
        || all.contains("failed to lookup")
        || all.contains("no record found")
        || all.contains("no connections available")
    {
        return Some(format!(
            "cannot resolve {host} (DNS lookup failed: {detail})"
        ));
    }
    if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        return Some(format!("TLS handshake with {host} failed: {detail}"));
    }
    if kind == Some(std::io::ErrorKind::TimedOut) || all.contains("timed out") {
        return Some(format!("cannot connect to {host}: connection timed out"));
    }
    if all.contains("unreachable") {
        return Some(format!("cannot connect to {host}: {detail}"));
    }
    None
}

/// A registry error as the user should read it: the connection problem
/// when there was one, else the client's text; a refusal names the fix.
pub fn registry_message(e: &oci_client::errors::OciDistributionError, host: &str) -> String {
    if let Some(problem) = connection_problem(e, host) {
        return problem;
    }
    // A refusal may also come as the HTTP client's status error.
    if is_unauthorized(e) || e.to_string().contains("401 Unauthorized") {
        return format!("{e} (log in with `skiff login {host}`)");
    }
    e.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Config(#[from] RegistriesError),
    #[error("{image}: {endpoint}: {message}")]
    Registry {
        image: String,
        endpoint: String,
        message: String,
    },
    #[error("{image}: no endpoint could serve it: {}", attempts.join("; "))]
    AllEndpointsFailed {
        image: String,
        attempts: Vec<String>,
    },
    #[error("{image}: {what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        image: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{image}: {what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        image: String,
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{image}: {message}")]
    Manifest { image: String, message: String },
    #[error("{image}: no manifest for linux/{arch} in the index (has: {available})")]
    NoPlatform {
        image: String,
        arch: String,
        available: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS setup for {host}: {message}")]
    Tls { host: String, message: String },
}

/// Where an image was found; blobs are fetched from the same place.
#[derive(Clone)]
pub struct Source {
    pub endpoint: Endpoint,
    pub(super) client: oci_client::Client,
    pub(super) oci_ref: oci_client::Reference,
    pub(super) auth: oci_client::secrets::RegistryAuth,
}

/// A reference resolved to one platform's manifest.
pub struct Resolved {
    pub source: Source,
    pub manifest_digest: String,
    pub manifest_raw: Vec<u8>,
    pub manifest: Manifest,
    /// The index's digest when the reference pointed at a multi-platform index.
    pub index_digest: Option<String>,
    pub config_raw: Vec<u8>,
    pub config: ImageConfig,
}

pub struct RegistryClient {
    config: RegistriesConfig,
    /// `skiff login` credentials, consulted after registries.yaml.
    logins: Logins,
    /// A pod's image pull Secrets, consulted first (as kubelet does).
    pod_logins: Logins,
    clients: Mutex<HashMap<(Scheme, String), oci_client::Client>>,
}

impl RegistryClient {
    pub fn new(config: RegistriesConfig) -> RegistryClient {
        // reqwest is built without a compiled-in provider so that aws-lc never
        // gets in; ring must be the process default before any client exists.
        // An error only means another part of skiff installed it already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        RegistryClient {
            config,
            logins: Logins::default(),
            pod_logins: Logins::default(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Use these saved logins where registries.yaml has no credentials.
    pub fn with_logins(mut self, logins: Logins) -> RegistryClient {
        self.logins = logins;
        self
    }

    /// Try these (a pod's image pull Secrets) before anything else. A
    /// client with them is for that pod's pulls only: registry tokens are
    /// cached per client.
    pub fn with_pod_logins(mut self, logins: Logins) -> RegistryClient {
        self.pod_logins = logins;
        self
    }

    fn client_for(&self, endpoint: &Endpoint) -> Result<oci_client::Client, ClientError> {
        let key = (endpoint.scheme, endpoint.host.clone());
        if let Ok(clients) = self.clients.lock() {
            if let Some(c) = clients.get(&key) {
                return Ok(c.clone());
            }
        }
        let mut cfg = oci_client::client::ClientConfig {
            protocol: match endpoint.scheme {
                Scheme::Http => oci_client::client::ClientProtocol::Http,
                Scheme::Https => oci_client::client::ClientProtocol::Https,
            },
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("skiff/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        // Indexes are resolved here (we need the index digest and a clear error).
        cfg.platform_resolver = None;
        if let Some(tls) = self
            .config
            .host_config(&endpoint.host)
            .and_then(|c| c.tls.as_ref())
        {
            if let Some(ca) = &tls.ca_file {
                let data = std::fs::read(ca).map_err(|source| ClientError::Io {
                    path: ca.clone(),
                    source,
                })?;
                cfg.extra_root_certificates
                    .push(oci_client::client::Certificate {
                        encoding: oci_client::client::CertificateEncoding::Pem,
                        data,
                    });
            }
            if tls.insecure_skip_verify {
                tracing::warn!(host = %endpoint.host, "TLS certificate verification is off (insecure_skip_verify)");
                cfg.accept_invalid_certificates = true;
            }
            if tls.cert_file.is_some() || tls.key_file.is_some() {
                // oci-client offers no client identity; better to say so than to
                // fail later with an opaque handshake error.
                return Err(ClientError::Tls {
                    host: endpoint.host.clone(),
                    message: "client certificates (cert_file/key_file) are not supported yet"
                        .into(),
                });
            }
        }
        let client = oci_client::Client::try_from(cfg).map_err(|e| ClientError::Tls {
            host: endpoint.host.clone(),
            message: e.to_string(),
        })?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key, client.clone());
        }
        Ok(client)
    }

    fn auth_for(
        &self,
        endpoint: &Endpoint,
    ) -> Result<oci_client::secrets::RegistryAuth, ClientError> {
        use oci_client::secrets::RegistryAuth;
        let host = endpoint.host.as_str();
        let credentials = match self.pod_logins.for_image(host, &endpoint.repository) {
            Some(c) => Some(c.clone()),
            None => match self.config.credentials(host)? {
                Some(c) => Some(c),
                None => self.logins.get(host).cloned(),
            },
        };
        Ok(match credentials {
            None => RegistryAuth::Anonymous,
            Some(Credentials::Basic { username, password }) => {
                RegistryAuth::Basic(username, password)
            }
            Some(Credentials::IdentityToken(token)) => RegistryAuth::Bearer(token),
        })
    }

    /// Where a push of `image` goes: the registry itself, never a mirror
    /// (mirrors are read-only caches in k3s's model).
    pub fn push_target(&self, image: &Reference) -> Result<Source, ClientError> {
        let endpoints = self.config.endpoints(image)?;
        let Some(endpoint) = endpoints.into_iter().find(|e| !e.is_mirror) else {
            return Err(ClientError::Manifest {
                image: image.to_string(),
                message: "no registry endpoint to push to".into(),
            });
        };
        let client = self.client_for(&endpoint)?;
        let auth = self.auth_for(&endpoint)?;
        let oci_ref = oci_client::Reference::with_tag(
            endpoint.host.clone(),
            endpoint.repository.clone(),
            image.tag().unwrap_or("latest").to_string(),
        );
        Ok(Source {
            endpoint,
            client,
            oci_ref,
            auth,
        })
    }

    /// Check credentials against a registry as `docker login` does: run the
    /// auth handshake (a token registry refuses bad ones there), then make
    /// one authenticated request (a Basic-auth registry refuses them there).
    /// Returns false for a clear refusal; errors are for everything else.
    pub async fn check_login(
        &self,
        host: &str,
        credentials: &Credentials,
    ) -> Result<bool, ClientError> {
        use oci_client::errors::OciDistributionError as E;
        use oci_client::secrets::RegistryAuth;
        let probe = Reference::parse(&format!("{host}/skiff-login-check")).map_err(|e| {
            ClientError::Manifest {
                image: host.to_string(),
                message: e.to_string(),
            }
        })?;
        let endpoint = self.push_target(&probe)?.endpoint;
        let client = self.client_for(&endpoint)?;
        let auth = match credentials {
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::IdentityToken(t) => RegistryAuth::Bearer(t.clone()),
        };
        let oci_ref = oci_client::Reference::with_tag(
            endpoint.host.clone(),
            endpoint.repository.clone(),
            "latest".into(),
        );
        let refused = is_unauthorized;
        let err = |e: E| ClientError::Registry {
            image: host.to_string(),
            endpoint: format!("{}://{}", scheme_str(endpoint.scheme), endpoint.host),
            message: registry_message(&e, &endpoint.host),
        };
        match client
            .auth(&oci_ref, &auth, oci_client::RegistryOperation::Pull)
            .await
        {
            Ok(_) => {}
            Err(e) if refused(&e) => return Ok(false),
            Err(e) => return Err(err(e)),
        }
        match client.catalog(&oci_ref, &auth, Some(1), None).await {
            Ok(_) => Ok(true),
            Err(e) if refused(&e) => Ok(false),
            // Many registries (Docker Hub among them) do not offer the
            // catalog; the handshake above has vouched for the credentials.
            Err(e) => {
                tracing::debug!(%host, error = %e, "catalog not available to check the login");
                Ok(true)
            }
        }
    }

    /// Find the image on the first endpoint that has it (mirrors first).
    pub async fn resolve(&self, image: &Reference) -> Result<Resolved, ClientError> {
        let mut attempts = Vec::new();
        for endpoint in self.config.endpoints(image)? {
            match self.resolve_at(image, &endpoint).await {
                Ok(resolved) => return Ok(resolved),
                // Content errors are not the endpoint's availability: a mirror
                // that serves a bad manifest must not be papered over silently.
                Err(
                    e @ (ClientError::DigestMismatch { .. } | ClientError::SizeMismatch { .. }),
                ) if !endpoint.is_mirror => return Err(e),
                Err(e) => {
                    if !endpoint.is_mirror && attempts.is_empty() {
                        return Err(e);
                    }
                    // The final error lists every attempt; this says only
                    // that the next endpoint is tried (--debug shows it).
                    tracing::info!(image = %image, endpoint = %endpoint.host, error = %e, "endpoint failed; trying the next");
                    attempts.push(format!("{}: {e}", endpoint.host));
                }
            }
        }
        Err(ClientError::AllEndpointsFailed {
            image: image.to_string(),
            attempts,
        })
    }

    async fn resolve_at(
        &self,
        image: &Reference,
        endpoint: &Endpoint,
    ) -> Result<Resolved, ClientError> {
        let client = self.client_for(endpoint)?;
        let auth = self.auth_for(endpoint)?;
        let name = image.to_string();
        let oci_ref = match image.digest() {
            Some(d) => oci_client::Reference::with_digest(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                d.to_string(),
            ),
            None => oci_client::Reference::with_tag(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                image.manifest_ref().to_string(),
            ),
        };
        let reg_err = |e: oci_client::errors::OciDistributionError| ClientError::Registry {
            image: name.clone(),
            endpoint: format!("{}://{}", scheme_str(endpoint.scheme), endpoint.host),
            message: registry_message(&e, &endpoint.host),
        };
        let mut source = Source {
            endpoint: endpoint.clone(),
            client,
            oci_ref,
            auth,
        };
        let (raw, _) = source
            .client
            .pull_manifest_raw(&source.oci_ref, &source.auth, manifest::ACCEPTED)
            .await
            .map_err(reg_err)?;
        let mut raw = raw.to_vec();
        let mut digest = manifest::sha256_digest(&raw);
        if let Some(want) = image.digest() {
            check_digest(&name, "manifest", want, &digest)?;
        }
        let bad = |e: ManifestError| ClientError::Manifest {
            image: name.clone(),
            message: e.to_string(),
        };
        let mut index_digest = None;
        let manifest = match manifest::parse(&raw, None).map_err(bad)? {
            Fetched::Manifest(m) => m,
            Fetched::Index(index) => {
                let arch = manifest::host_arch();
                let Some(entry) = manifest::pick_platform(&index, arch) else {
                    let available = index
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(ClientError::NoPlatform {
                        image: name.clone(),
                        arch: arch.to_string(),
                        available,
                    });
                };
                index_digest = Some(digest.clone());
                source.oci_ref = oci_client::Reference::with_digest(
                    endpoint.host.clone(),
                    endpoint.repository.clone(),
                    entry.digest.clone(),
                );
                let (bytes, _) = source
                    .client
                    .pull_manifest_raw(&source.oci_ref, &source.auth, manifest::ACCEPTED)
                    .await
                    .map_err(reg_err)?;
                raw = bytes.to_vec();
                digest = manifest::sha256_digest(&raw);
                check_digest(&name, "platform manifest", &entry.digest, &digest)?;
                match manifest::parse(&raw, Some(&entry.media_type)).map_err(bad)? {
                    Fetched::Manifest(m) => m,
                    Fetched::Index(_) => {
                        return Err(ClientError::Manifest {
                            image: name,
                            message: "an index nested in an index is not supported".into(),
                        })
                    }
                }
            }
        };
        let config_raw = self.fetch_small(&source, &name, &manifest.config).await?;
        let config = manifest::parse_config(&config_raw, manifest.layers.len()).map_err(bad)?;
        tracing::debug!(image = %name, endpoint = %endpoint.host, digest = %digest, "resolved");
        Ok(Resolved {
            source,
            manifest_digest: digest,
            manifest_raw: raw,
            manifest,
            index_digest,
            config_raw,
            config,
        })
    }

    /// Fetch a small blob (a config) into memory, checked.
    async fn fetch_small(
        &self,
        source: &Source,
        image: &str,
        desc: &Descriptor,
    ) -> Result<Vec<u8>, ClientError> {
        if desc.size > MAX_DOCUMENT_SIZE {
            return Err(ClientError::Manifest {
                image: image.to_string(),
                message: format!("config {} claims {} bytes", desc.digest, desc.size),
            });
        }
        let what = format!("config {}", desc.digest);
        let mut stream = self.open_blob(source, image, &what, desc).await?;
        let mut out = Vec::with_capacity(desc.size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.stream_err(source, image, e))?;
            out.extend_from_slice(&chunk);
            if out.len() as u64 > desc.size {
                break;
            }
        }
        check_size(image, &what, desc.size, out.len() as u64)?;
        check_digest(
            image,
            "config",
            &desc.digest,
            &manifest::sha256_digest(&out),
        )?;
        Ok(out)
    }

    /// `what` names the blob in errors ("layer 2/3 sha256:…").
    async fn open_blob(
        &self,
        source: &Source,
        image: &str,
        what: &str,
        desc: &Descriptor,
    ) -> Result<futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>, ClientError>
    {
        let oci_desc = oci_client::manifest::OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        // The manifest pull stored the auth for this registry in the client.
        source
            .client
            .store_auth_if_needed(source.oci_ref.resolve_registry(), &source.auth)
            .await;
        let sized = source
            .client
            .pull_blob_stream(&source.oci_ref, &oci_desc)
            .await
            .map_err(|e| ClientError::Registry {
                image: image.to_string(),
                endpoint: source.endpoint.host.clone(),
                message: format!(
                    "{what}: blob {}: {}",
                    desc.digest,
                    registry_message(&e, &source.endpoint.host)
                ),
            })?;
        Ok(Box::pin(sized.stream))
    }

    fn stream_err(&self, source: &Source, image: &str, e: std::io::Error) -> ClientError {
        ClientError::Registry {
            image: image.to_string(),
            endpoint: source.endpoint.host.clone(),
            message: e.to_string(),
        }
    }

    /// Stream a blob into `dest` (created here), checking size as it arrives
    /// and the sha256 at the end; the file is fsynced before returning. The
    /// caller renames it into place only on success. `progress` gets byte counts.
    pub async fn download_blob(
        &self,
        source: &Source,
        image: &str,
        what: &str,
        desc: &Descriptor,
        dest: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), ClientError> {
        let io = |source: std::io::Error| ClientError::Io {
            path: dest.to_path_buf(),
            source,
        };
        let mut stream = self.open_blob(source, image, what, desc).await?;
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // oci-client's verifying stream reports a short body as a
                // digest mismatch at its end; the size says more.
                Err(_) if written < desc.size => {
                    return Err(ClientError::SizeMismatch {
                        image: image.to_string(),
                        what: format!("{what} (truncated)"),
                        expected: desc.size,
                        actual: written,
                    })
                }
                Err(e) => {
                    return Err(self.stream_err(
                        source,
                        image,
                        std::io::Error::other(format!("{what}: {e}")),
                    ))
                }
            };
            written += chunk.len() as u64;
            if written > desc.size {
                return Err(ClientError::SizeMismatch {
                    image: image.to_string(),
                    what: what.to_string(),
                    expected: desc.size,
                    actual: written,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
            progress(chunk.len() as u64);
        }
        check_size(image, what, desc.size, written)?;
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        check_digest(image, what, &desc.digest, &actual)?;
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        Ok(())
    }
}

fn scheme_str(s: Scheme) -> &'static str {
    match s {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

fn check_digest(image: &str, what: &str, expected: &str, actual: &str) -> Result<(), ClientError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ClientError::DigestMismatch {
            image: image.to_string(),
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

fn check_size(image: &str, what: &str, expected: u64, actual: u64) -> Result<(), ClientError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ClientError::SizeMismatch {
            image: image.to_string(),
            what: what.to_string(),
            expected,
            actual,
        })
    }
}

/// Shared between parallel layer downloads.
pub type SharedClient = Arc<RegistryClient>;
