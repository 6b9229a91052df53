//! The certificates of the kubelet API: each node's serving certificate
//! (and the CA its callers must chain to), and the client certificate the
//! API server presents to it, the only identity a kubelet serves.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::files::{ensure_dir, write_atomic, PUBLIC};
use super::{client_tls_config, ClusterPki, PkiError};

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
        let ca = x509_parser::parse_x509_certificate(&self.ca_cert_der)
            .map_err(|e| PkiError::invalid(dir, format!("the cluster CA does not parse: {e}")))?
            .1;
        super::load_or_issue_leaf(
            dir,
            KUBELET_CERT_FILE,
            KUBELET_KEY_FILE,
            false,
            &ca,
            Some(&wanted),
            || self.issue_serving_cert(node, &sans),
        )?;
        write_atomic(
            &dir.join(KUBELET_CLIENT_CA_FILE),
            self.ca_cert_pem().as_bytes(),
            PUBLIC,
        )
    }

    /// TLS for calling kubelets: the cluster CA as the only root, and a
    /// client certificate for [`KUBELET_CLIENT_USER`], issued now (it lives
    /// in memory only, for as long as the server runs).
    pub fn kubelet_client_config(&self) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        let (cert, key) = self.issue_client_cert(KUBELET_CLIENT_USER, &[])?;
        let config = client_tls_config(self.ca_cert_pem(), Some((&cert, &key)))?;
        let mut config = Arc::unwrap_or_clone(config);
        // Upgrades (exec, attach, port-forward) need HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
