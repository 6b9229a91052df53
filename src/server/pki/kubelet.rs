//! The certificates of nodes: each node's serving certificate for its
//! kubelet API (from the kubelet CA, which only the API server trusts) and
//! the CA of the callers the kubelet must check, the client certificate the
//! API server presents to kubelets (the only identity a kubelet serves),
//! and the certificates a joining agent asks for with its requests.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::certs::{Purpose, LEAF_LIFETIME};
use super::files::{ensure_dir, write_atomic, PUBLIC};
use super::{client_tls_config, ClusterPki, PkiError};

/// Nodes' group, in their client certificates.
pub const NODES_GROUP: &str = "system:nodes";

/// The user a node's credentials name.
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// What a joining node is given, signed from its requests.
#[derive(Debug)]
pub struct NodeCertificates {
    /// For `system:node:<name>` in `system:nodes`, from the cluster CA.
    pub client_pem: String,
    /// For the kubelet API, from the kubelet CA.
    pub serving_pem: String,
}

/// Why a node's certificate requests were refused.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{0}")]
    Request(String),
    #[error("the serving certificate cannot name {0:?}: only the node's name and IP addresses")]
    Name(String),
}

/// The API server's user towards kubelets (upstream's conventional name).
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// In the agent's directory: its serving pair and the CA of its callers.
pub const KUBELET_CERT_FILE: &str = "kubelet.crt";
pub const KUBELET_KEY_FILE: &str = "kubelet.key";
pub const KUBELET_CLIENT_CA_FILE: &str = "client-ca.crt";

impl ClusterPki {
    /// Write node `node`'s kubelet serving certificate (for its name and
    /// addresses) and the client CA into `dir` (private, 0700); the key 0600.
    pub fn write_kubelet_serving(
        &self,
        dir: &Path,
        node: &str,
        addresses: &[IpAddr],
    ) -> Result<(), PkiError> {
        let mut sans: Vec<String> = vec![node.to_string(), "localhost".to_string()];
        sans.extend(addresses.iter().map(IpAddr::to_string));
        sans.sort();
        sans.dedup();
        ensure_dir(dir, 0o700)?;
        // Kept across restarts while it is from this CA, covers the node's
        // names and addresses and is far from expiry.
        let wanted = super::sans::SanSet::parse(&sans)?;
        let ca_der = super::certs::first_cert_der(&self.kubelet_ca_pem)
            .ok_or_else(|| PkiError::invalid(dir, "the kubelet CA does not parse"))?;
        let ca = x509_parser::parse_x509_certificate(&ca_der)
            .map_err(|e| PkiError::invalid(dir, format!("the kubelet CA does not parse: {e}")))?
            .1;
        super::load_or_issue_leaf(
            dir,
            KUBELET_CERT_FILE,
            KUBELET_KEY_FILE,
            false,
            &ca,
            Some(&wanted),
            || {
                super::certs::issue(
                    &self.kubelet_issuer,
                    &node_user(node),
                    &[],
                    Purpose::Server { sans: &wanted },
                    LEAF_LIFETIME,
                )
                .map_err(PkiError::generate("kubelet serving certificate"))
            },
        )?;
        write_atomic(
            &dir.join(KUBELET_CLIENT_CA_FILE),
            self.ca_cert_pem().as_bytes(),
            PUBLIC,
        )
    }

    /// TLS for calling kubelets: the kubelet CA as the only root, and a
    /// client certificate for [`KUBELET_CLIENT_USER`], issued now (it lives
    /// in memory only, for as long as the server runs).
    pub fn kubelet_client_config(&self) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        let (cert, key) = self.issue_client_cert(KUBELET_CLIENT_USER, &[])?;
        let config = client_tls_config(&self.kubelet_ca_pem, Some((&cert, &key)))?;
        let mut config = Arc::unwrap_or_clone(config);
        // Upgrades (exec, attach, port-forward) need HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Sign a joining node's two certificate requests: the client one for
    /// `system:node:<node>` (whatever subject it asks for), the serving one
    /// for the node's name and `addresses`. Only the requests' keys are
    /// used, so the node's private keys never leave it.
    pub fn sign_node_certificates(
        &self,
        node: &str,
        client_csr: &str,
        serving_csr: &str,
        addresses: &[IpAddr],
        lifetime: std::time::Duration,
    ) -> Result<NodeCertificates, SignError> {
        let mut sans: Vec<String> = vec![node.to_string()];
        sans.extend(addresses.iter().map(IpAddr::to_string));
        sans.sort();
        sans.dedup();
        let sans = super::sans::SanSet::parse(&sans).map_err(|_| SignError::Name(node.into()))?;
        let user = node_user(node);
        let client_pem = super::certs::sign_request(
            &self.issuer,
            client_csr,
            &user,
            Some(NODES_GROUP),
            Purpose::Client,
            lifetime,
        )
        .map_err(SignError::Request)?;
        let serving_pem = super::certs::sign_request(
            &self.kubelet_issuer,
            serving_csr,
            &user,
            None,
            Purpose::Server { sans: &sans },
            lifetime,
        )
        .map_err(SignError::Request)?;
        Ok(NodeCertificates {
            client_pem,
            serving_pem,
        })
    }

    /// The kubelet CA (PEM), which signs kubelets' serving certificates.
    pub fn kubelet_ca_pem(&self) -> &str {
        &self.kubelet_ca_pem
    }
}

/// Whether the certificate `cert_pem` is missing, unreadable, or has a
/// third of its lifetime left or less: when an agent asks for new ones (as
/// kubelet rotates its certificates at 70–90 % of theirs).
pub fn renewal_due(cert_pem: &[u8]) -> bool {
    let Some((from, until)) = validity(cert_pem) else {
        return true;
    };
    let left = until - super::certs::unix_now();
    left * 3 < until - from
}

/// Whether `key_pem` is the private key of the certificate `cert_pem`
/// (the two are written one after the other: a crash between them leaves
/// a pair that no TLS stack will load).
pub fn key_matches(cert_pem: &[u8], key_pem: &str) -> bool {
    let Some(der) = std::str::from_utf8(cert_pem)
        .ok()
        .and_then(super::certs::first_cert_der)
    else {
        return false;
    };
    let (Ok((_, cert)), Ok(key)) = (
        x509_parser::parse_x509_certificate(&der),
        rcgen::KeyPair::from_pem(key_pem),
    ) else {
        return false;
    };
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

/// A certificate's notBefore and notAfter, in seconds since the epoch.
pub fn validity(cert_pem: &[u8]) -> Option<(i64, i64)> {
    let der = super::certs::first_cert_der(std::str::from_utf8(cert_pem).ok()?)?;
    let (_, c) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some((
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    ))
}

/// Whether the certificate `cert_pem` names `common_name`, covers `names`
/// (IPs or DNS names), has not expired and, when `ca_pem` is not empty, was
/// issued by that CA: what an agent asks of the credentials it keeps
/// before it asks for new ones.
pub fn leaf_fits(cert_pem: &[u8], common_name: &str, ca_pem: &str, names: &[String]) -> bool {
    let Ok(text) = std::str::from_utf8(cert_pem) else {
        return false;
    };
    let Some(der) = super::certs::first_cert_der(text) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    let cn_ok = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        == Some(common_name);
    if !cn_ok || cert.validity().not_after.timestamp() < super::certs::unix_now() {
        return false;
    }
    if !names.is_empty() {
        let Ok(wanted) = super::sans::SanSet::parse(names) else {
            return false;
        };
        if !super::sans::SanSet::from_cert(&cert).covers(&wanted) {
            return false;
        }
    }
    if ca_pem.is_empty() {
        return true;
    }
    let Some(ca_der) = super::certs::first_cert_der(ca_pem) else {
        return false;
    };
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(&ca_der) else {
        return false;
    };
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}
