//! Cluster PKI: the cluster CA, the API server's serving certificate, the admin
//! client certificate and kubeconfig, node client certificates, the node join
//! token, static bearer tokens and the service-account signing key.
//!
//! Everything lives under `<data-dir>/server/tls` (directory 0700, keys 0600,
//! written atomically). The first start creates it all (ECDSA P-256, a few
//! milliseconds); later starts reuse it, re-issuing a leaf certificate from the
//! same CA only when it no longer fits (new SANs, expiry within 90 days, key or
//! issuer mismatch). Key material and tokens are never logged.

mod certs;
mod der;
mod files;
mod kubelet;
mod sa_key;
mod sans;
pub mod shared;
mod tokens;

pub use kubelet::{
    key_matches, leaf_fits, node_user, renewal_due, validity, NodeCertificates, SignError,
    KUBELET_CERT_FILE, KUBELET_CLIENT_CA_FILE, KUBELET_CLIENT_USER, KUBELET_KEY_FILE, NODES_GROUP,
};

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{Issuer, KeyPair};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;

pub use sa_key::{ServiceAccountKey, SA_KEY_FILE};
pub use sans::{default_sans, KUBERNETES_SERVICE_IP};
pub use tokens::{
    ca_hash, cluster_secret, keep_cluster_secret, load_or_create_join_token,
    load_or_create_token_file, parse_join_token, TokenAuth, ADMIN_TOKEN_GROUP, ADMIN_TOKEN_USER,
};

use certs::{Purpose, CA_LIFETIME, LEAF_LIFETIME};
use files::read_optional;
pub(crate) use files::{ensure_dir, write_atomic, PRIVATE, PUBLIC};
use sans::SanSet;

pub const CA_CERT_FILE: &str = "server-ca.crt";
pub const CA_KEY_FILE: &str = "server-ca.key";
pub const SERVING_CERT_FILE: &str = "serving.crt";
pub const SERVING_KEY_FILE: &str = "serving.key";
pub const ADMIN_CERT_FILE: &str = "client-admin.crt";
pub const ADMIN_KEY_FILE: &str = "client-admin.key";
/// The CA of kubelets' serving certificates. Only the API server trusts
/// it, to call kubelets: a node that gets a serving certificate for any
/// name or address it claims can then impersonate nothing that clients of
/// the cluster CA (kubectl, pods) talk to.
pub const KUBELET_CA_CERT_FILE: &str = "kubelet-ca.crt";
pub const KUBELET_CA_KEY_FILE: &str = "kubelet-ca.key";

/// User and group of the admin client certificate.
pub const ADMIN_USER: &str = "system:admin";
pub const MASTERS_GROUP: &str = "system:masters";

/// Name of the cluster, context and user in written kubeconfigs (as k3s).
const KUBECONFIG_NAME: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: String },
    #[error("{}:{line}: {problem}", path.display())]
    TokenFile {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("invalid TLS SAN {0:?}: neither an IP address nor a DNS name")]
    InvalidSan(String),
    #[error("generating {what}: {problem}")]
    Generate { what: &'static str, problem: String },
    #[error("building the TLS configuration: {0}")]
    Tls(String),
}

impl PkiError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> PkiError {
        PkiError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, problem: impl Into<String>) -> PkiError {
        PkiError::Invalid {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    fn generate<E: fmt::Display>(what: &'static str) -> impl FnOnce(E) -> PkiError {
        move |e| PkiError::Generate {
            what,
            problem: e.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PkiOptions {
    /// `<data-dir>/server/tls`.
    pub tls_dir: PathBuf,
    /// `--tls-san` values: extra IPs or DNS names for the serving certificate.
    pub extra_sans: Vec<String>,
    /// The cluster's plan: the `kubernetes` Service's address and names.
    pub cluster: crate::cluster::ClusterConfig,
}

/// User and groups of an authenticated client (certificate: CN → user, O → groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// The identity in a (verified) client certificate: CN is the user, each O a group.
/// `None` if the DER does not parse or has no non-empty CN.
pub fn identity_from_cert(der: &[u8]) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if user.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .filter(|o| !o.is_empty())
        .map(String::from)
        .collect();
    Some(Identity { user, groups })
}

/// The loaded cluster PKI.
pub struct ClusterPki {
    tls_dir: PathBuf,
    ca_cert_pem: String,
    ca_cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    serving_cert_pem: String,
    serving_key_pem: String,
    admin_cert_pem: String,
    admin_key_pem: String,
    kubelet_ca_pem: String,
    kubelet_issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterPki {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPki")
            .field("tls_dir", &self.tls_dir)
            .finish_non_exhaustive()
    }
}

/// Loads the PKI under `opts.tls_dir`, creating what is missing and re-issuing
/// leaf certificates that no longer fit (see the module docs).
pub fn load_or_init(opts: &PkiOptions) -> Result<ClusterPki, PkiError> {
    let dir = &opts.tls_dir;
    ensure_dir(dir, 0o700)?;
    let (ca_cert_pem, ca_cert_der, ca_key, fresh_ca) =
        load_or_create_ca(dir, CA_CERT_FILE, CA_KEY_FILE, "skiff-server-ca")?;
    let (kubelet_ca_pem, kubelet_ca_der, kubelet_ca_key, _) = load_or_create_ca(
        dir,
        KUBELET_CA_CERT_FILE,
        KUBELET_CA_KEY_FILE,
        "skiff-kubelet-ca",
    )?;
    let kubelet_issuer =
        Issuer::from_ca_cert_der(&kubelet_ca_der, kubelet_ca_key).map_err(|e| {
            PkiError::invalid(
                &dir.join(KUBELET_CA_CERT_FILE),
                format!("unusable as issuer: {e}"),
            )
        })?;
    let ca_path = dir.join(CA_CERT_FILE);
    let (_, ca_x509) = x509_parser::parse_x509_certificate(&ca_cert_der)
        .map_err(|e| PkiError::invalid(&ca_path, format!("bad certificate: {e}")))?;
    let issuer = Issuer::from_ca_cert_der(&ca_cert_der, ca_key)
        .map_err(|e| PkiError::invalid(&ca_path, format!("unusable as issuer: {e}")))?;

    let mut wanted = default_sans(&opts.cluster);
    wanted.extend(opts.extra_sans.iter().cloned());
    let wanted = SanSet::parse(&wanted)?;

    let (serving_cert_pem, serving_key_pem) = load_or_issue_leaf(
        dir,
        SERVING_CERT_FILE,
        SERVING_KEY_FILE,
        fresh_ca,
        &ca_x509,
        Some(&wanted),
        || {
            certs::issue(
                &issuer,
                "skiff",
                &["skiff"],
                Purpose::Server { sans: &wanted },
                LEAF_LIFETIME,
            )
            .map_err(PkiError::generate("serving certificate"))
        },
    )?;
    let (admin_cert_pem, admin_key_pem) = load_or_issue_leaf(
        dir,
        ADMIN_CERT_FILE,
        ADMIN_KEY_FILE,
        fresh_ca,
        &ca_x509,
        None,
        || issue_client(&issuer, ADMIN_USER, &[MASTERS_GROUP]),
    )?;

    Ok(ClusterPki {
        tls_dir: dir.clone(),
        ca_cert_pem,
        ca_cert_der,
        issuer,
        serving_cert_pem,
        serving_key_pem,
        admin_cert_pem,
        admin_key_pem,
        kubelet_ca_pem,
        kubelet_issuer,
    })
}

/// The CA in `cert_file` and `key_file`, made (named `<name>@<time>`) when
/// neither exists. Returns (PEM, DER, key, freshly created).
fn load_or_create_ca(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
    name: &str,
) -> Result<(String, CertificateDer<'static>, KeyPair, bool), PkiError> {
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert_pem), Some(key_pem)) => {
            let der = certs::first_cert_der(&cert_pem)
                .ok_or_else(|| PkiError::invalid(&cert_path, "no PEM certificate in the file"))?;
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|e| PkiError::invalid(&key_path, format!("bad private key: {e}")))?;
            let (_, x509) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| PkiError::invalid(&cert_path, format!("bad certificate: {e}")))?;
            if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
                return Err(PkiError::invalid(
                    &key_path,
                    format!("does not match the CA certificate {}", cert_path.display()),
                ));
            }
            if x509.validity().not_after.timestamp() < certs::unix_now() {
                return Err(PkiError::invalid(&cert_path, "the cluster CA has expired"));
            }
            Ok((cert_pem, der, key, false))
        }
        (None, None) => {
            let key = certs::new_key().map_err(PkiError::generate("CA key"))?;
            let name = format!("{name}@{}", certs::unix_now());
            let params = certs::params(&name, &[], Purpose::Ca, CA_LIFETIME)
                .map_err(PkiError::generate("CA certificate"))?;
            let cert = params
                .self_signed(&key)
                .map_err(PkiError::generate("CA certificate"))?;
            write_atomic(&key_path, key.serialize_pem().as_bytes(), PRIVATE)?;
            let pem = cert.pem();
            write_atomic(&cert_path, pem.as_bytes(), PUBLIC)?;
            tracing::info!(cert = %cert_path.display(), "created a CA");
            Ok((pem, cert.der().clone(), key, true))
        }
        (Some(_), None) => Err(PkiError::invalid(
            &key_path,
            format!(
                "missing while {} exists; refusing to replace the CA",
                cert_path.display()
            ),
        )),
        (None, Some(_)) => Err(PkiError::invalid(
            &cert_path,
            format!(
                "missing while {} exists; refusing to replace the CA",
                key_path.display()
            ),
        )),
    }
}

/// Reuses the leaf pair at (`cert_file`, `key_file`) if it still fits, else
/// issues a new one with `issue` and writes it (key first).
fn load_or_issue_leaf(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
    fresh_ca: bool,
    ca: &X509Certificate<'_>,
    wanted_sans: Option<&SanSet>,
    issue: impl FnOnce() -> Result<(String, String), PkiError>,
) -> Result<(String, String), PkiError> {
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    let reason = if fresh_ca {
        Some("the cluster CA is new".to_string())
    } else {
        match (read_optional(&cert_path)?, read_optional(&key_path)?) {
            (Some(cert_pem), Some(key_pem)) => {
                let problem = match (
                    certs::first_cert_der(&cert_pem),
                    KeyPair::from_pem(&key_pem),
                ) {
                    (None, _) => Some("the certificate does not parse".to_string()),
                    (_, Err(_)) => Some("the key does not parse".to_string()),
                    (Some(der), Ok(key)) => match x509_parser::parse_x509_certificate(&der) {
                        Err(_) => Some("the certificate does not parse".to_string()),
                        Ok((_, x509)) => certs::leaf_problem(&x509, &key, ca, wanted_sans),
                    },
                };
                match problem {
                    None => return Ok((cert_pem, key_pem)),
                    Some(p) => Some(p),
                }
            }
            _ => Some("it is missing".to_string()),
        }
    };
    let (cert_pem, key_pem) = issue()?;
    write_atomic(&key_path, key_pem.as_bytes(), PRIVATE)?;
    write_atomic(&cert_path, cert_pem.as_bytes(), PUBLIC)?;
    tracing::info!(
        cert = %cert_path.display(),
        reason = reason.as_deref().unwrap_or(""),
        "issued certificate"
    );
    Ok((cert_pem, key_pem))
}

fn issue_client(
    issuer: &Issuer<'static, KeyPair>,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), PkiError> {
    certs::issue(issuer, user, groups, Purpose::Client, LEAF_LIFETIME)
        .map_err(PkiError::generate("client certificate"))
}

impl ClusterPki {
    /// The cluster CA certificate (PEM).
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The cluster CA certificate (DER).
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_cert_der
    }

    /// The directory the PKI lives in.
    pub fn tls_dir(&self) -> &Path {
        &self.tls_dir
    }

    /// The admin client certificate and key (PEM), as in the kubeconfig.
    pub fn admin_cert_pem(&self) -> (&str, &str) {
        (&self.admin_cert_pem, &self.admin_key_pem)
    }

    /// The API server's serving certificate (PEM).
    pub fn serving_cert_pem(&self) -> &str {
        &self.serving_cert_pem
    }

    /// rustls configuration for the API server: the serving certificate; client
    /// certificates optional but, when presented, verified against the cluster CA;
    /// ALPN `h2` and `http/1.1` (upgrades need HTTP/1.1).
    pub fn server_tls_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_cert_der.clone())
            .map_err(|e| PkiError::Tls(format!("cluster CA: {e}")))?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| PkiError::Tls(format!("client verifier: {e}")))?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.serving_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| PkiError::Tls(format!("serving certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(self.serving_key_pem.as_bytes())
            .map_err(|e| PkiError::Tls(format!("serving key: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PkiError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| PkiError::Tls(format!("serving certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Writes an admin kubeconfig for `server_url` to `path`: cluster, context
    /// and user all named `default` (as k3s), CA, client certificate and key
    /// embedded; mode 0600, parent directories created, written atomically.
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        let yaml = kubeconfig_yaml(
            server_url,
            &self.ca_cert_pem,
            &self.admin_cert_pem,
            &self.admin_key_pem,
        )
        .map_err(|e| PkiError::invalid(path, format!("serializing kubeconfig: {e}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            ensure_dir(dir, 0o755)?;
        }
        // A restart finds what it would write already there: leave it (the
        // write's fsync was the one a restart waited on). A loosened mode, a
        // symlink or another owner is replaced, as anything else is.
        if files::holds_private(path, yaml.as_bytes()) {
            return Ok(());
        }
        write_atomic(path, yaml.as_bytes(), PRIVATE)
    }

    /// Writes the kubeconfig of node `node`'s agent to `path`: a client
    /// certificate for `system:node:<node>` in group `system:nodes`, freshly
    /// issued; mode 0600 in a private directory, written atomically.
    pub fn write_node_kubeconfig(
        &self,
        path: &Path,
        server_url: &str,
        node: &str,
    ) -> Result<(), PkiError> {
        // One written before, for this node, server and CA, private and far
        // from expiry, is kept: a restart does not mint a credential.
        if self.node_kubeconfig_current(path, server_url, node) {
            return Ok(());
        }
        let (cert, key) =
            self.issue_client_cert(&format!("system:node:{node}"), &["system:nodes"])?;
        let yaml = kubeconfig_yaml(server_url, &self.ca_cert_pem, &cert, &key)
            .map_err(|e| PkiError::invalid(path, format!("serializing kubeconfig: {e}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            ensure_dir(dir, 0o700)?;
        }
        write_atomic(path, yaml.as_bytes(), PRIVATE)
    }

    /// Whether the kubeconfig at `path` is one [`Self::write_node_kubeconfig`]
    /// would write now but for a fresh certificate.
    fn node_kubeconfig_current(&self, path: &Path, server_url: &str, node: &str) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return false;
        };
        if !meta.is_file()
            || meta.mode() & 0o077 != 0
            || meta.uid() != nix::unistd::geteuid().as_raw()
        {
            return false;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            return false;
        };
        let Ok(doc) = serde_saphyr::from_str::<serde_json::Value>(&text) else {
            return false;
        };
        let b64 = |v: &serde_json::Value| -> Option<String> {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str()?)
                .ok()?;
            String::from_utf8(bytes).ok()
        };
        let cluster = &doc["clusters"][0]["cluster"];
        let user = &doc["users"][0]["user"];
        if cluster["server"].as_str() != Some(server_url)
            || b64(&cluster["certificate-authority-data"]).as_deref()
                != Some(self.ca_cert_pem.as_str())
        {
            return false;
        }
        let (Some(cert_pem), Some(key_pem)) = (
            b64(&user["client-certificate-data"]),
            b64(&user["client-key-data"]),
        ) else {
            return false;
        };
        let (Some(der), Ok(key)) = (
            certs::first_cert_der(&cert_pem),
            KeyPair::from_pem(&key_pem),
        ) else {
            return false;
        };
        let wanted = Identity {
            user: format!("system:node:{node}"),
            groups: vec!["system:nodes".to_string()],
        };
        if identity_from_cert(&der).as_ref() != Some(&wanted) {
            return false;
        }
        let (Ok((_, cert)), Ok((_, ca))) = (
            x509_parser::parse_x509_certificate(&der),
            x509_parser::parse_x509_certificate(&self.ca_cert_der),
        ) else {
            return false;
        };
        certs::leaf_problem(&cert, &key, &ca, None).is_none()
    }

    /// Issues a client certificate from the cluster CA: CN = `user`, one O per
    /// group, one year. Returns (certificate PEM, key PEM). Node certificates are
    /// `system:node:<name>` in group `system:nodes`.
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<(String, String), PkiError> {
        issue_client(&self.issuer, user, groups)
    }

    /// Issues a serving certificate from the cluster CA (e.g. for a kubelet
    /// API): CN = `common_name`, SANs (IPs or DNS names), one year.
    /// Returns (certificate PEM, key PEM).
    pub fn issue_serving_cert(
        &self,
        common_name: &str,
        sans: &[String],
    ) -> Result<(String, String), PkiError> {
        let sans = SanSet::parse(sans)?;
        certs::issue(
            &self.issuer,
            common_name,
            &[],
            Purpose::Server { sans: &sans },
            LEAF_LIFETIME,
        )
        .map_err(PkiError::generate("serving certificate"))
    }
}

/// A kubeconfig document (YAML) with embedded credentials, all entries named `default`.
pub fn kubeconfig_yaml(
    server_url: &str,
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> Result<String, serde_saphyr::SerializeError> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": KUBECONFIG_NAME,
            "cluster": {
                "certificate-authority-data": b64(ca_pem),
                "server": server_url,
            },
        }],
        "contexts": [{
            "name": KUBECONFIG_NAME,
            "context": { "cluster": KUBECONFIG_NAME, "user": KUBECONFIG_NAME },
        }],
        "current-context": KUBECONFIG_NAME,
        "preferences": {},
        "users": [{
            "name": KUBECONFIG_NAME,
            "user": {
                "client-certificate-data": b64(client_cert_pem),
                "client-key-data": b64(client_key_pem),
            },
        }],
    });
    // Plain scalars, no `>-` folding of the long base64 values (as kubectl writes them).
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(&doc, options)
}

/// A rustls client configuration trusting only `ca_pem`, optionally presenting
/// a client certificate (cert PEM, key PEM). No ALPN is set.
pub fn client_tls_config(
    ca_pem: &str,
    client_cert: Option<(&str, &str)>,
) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| PkiError::Tls(format!("CA certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| PkiError::Tls(format!("CA certificate: {e}")))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| PkiError::Tls(format!("client certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| PkiError::Tls(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| PkiError::Tls(format!("client certificate: {e}")))?
        }
    };
    Ok(Arc::new(config))
}
