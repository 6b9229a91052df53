//! The server's credentials at start: its certificates and join token, the
//! bearer tokens and the service-account key, loaded (made on a fresh data
//! directory) off the async threads; on a shared datastore, first settled
//! with the cluster's (pki::shared).

use std::sync::mpsc::Receiver;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;

use super::pki::{self, ClusterPki, PkiOptions, ServiceAccountKey, TokenAuth};
use super::store::Backend;
use super::ServerPaths;

pub type Certificates = (Arc<ClusterPki>, Arc<rustls::ServerConfig>, String);
pub type Tokens = (TokenAuth, ServiceAccountKey);

/// Load the certificates and the join token (after `gate` lets them: the
/// address plan checked), and beside them the bearer tokens and the
/// service-account key. `given_ca_hash`: the CA a full `--token` names.
pub fn load(
    opts: PkiOptions,
    paths: ServerPaths,
    gate: Option<Receiver<()>>,
    given_ca_hash: Option<String>,
) -> (
    JoinHandle<anyhow::Result<Certificates>>,
    JoinHandle<anyhow::Result<Tokens>>,
) {
    let token_path = paths.token.clone();
    let certificates = tokio::task::spawn_blocking(move || {
        if gate.is_some_and(|g| g.recv().is_err()) {
            anyhow::bail!("the cluster's address plan was refused");
        }
        let pki = pki::load_or_init(&opts)
            .with_context(|| format!("setting up certificates in {}", opts.tls_dir.display()))?;
        if let Some(hash) = given_ca_hash {
            if hash != pki::ca_hash(pki.ca_cert_pem()) {
                anyhow::bail!(
                    "--token names another cluster's CA than this one's ({}): give this \
                     cluster's token, or a bare secret",
                    opts.tls_dir.join(pki::CA_CERT_FILE).display()
                );
            }
        }
        let token = pki::load_or_create_join_token(&token_path, pki.ca_cert_pem())
            .with_context(|| format!("writing the join token {}", token_path.display()))?;
        let tls = pki.server_tls_config()?;
        anyhow::Ok((Arc::new(pki), tls, token))
    });
    let tokens = tokio::task::spawn_blocking(move || {
        let tokens = pki::load_or_create_token_file(&paths.tokens_csv)
            .with_context(|| format!("reading bearer tokens {}", paths.tokens_csv.display()))?;
        let sa_key = ServiceAccountKey::load_or_create(&paths.tls).with_context(|| {
            format!(
                "setting up the service-account signing key in {}",
                paths.tls.display()
            )
        })?;
        anyhow::Ok((tokens, sa_key))
    });
    (certificates, tokens)
}

/// What settling a shared datastore's credentials needs.
pub struct Shared<'a> {
    pub store: &'a Arc<dyn Backend>,
    /// The cluster's secret, and whether the token file still lacks it.
    pub secret: (String, bool),
    /// The CA hash a full `--token` names.
    pub want_ca: Option<String>,
    pub files: &'a [pki::shared::SharedFile],
    /// `--secrets-encryption` with no provider file of the user's: the
    /// generated configuration is made (once for every server) if missing.
    pub make_encryption_key: bool,
}

/// Make the data directory hold the cluster's CAs and keys from the
/// shared datastore, or make them here and publish them there; then the
/// secrets' encryption configuration, the same on every server; then keep
/// the token.
pub async fn settle_shared(
    s: Shared<'_>,
    opts: PkiOptions,
    paths: ServerPaths,
) -> anyhow::Result<()> {
    let init = {
        let paths = paths.clone();
        move || {
            pki::load_or_init(&opts)?;
            ServiceAccountKey::load_or_create(&paths.tls)?;
            pki::load_or_create_token_file(&paths.tokens_csv)?;
            Ok(())
        }
    };
    let (secret, unwritten) = &s.secret;
    let outcome = pki::shared::reconcile(s.store, secret, s.want_ca.as_deref(), s.files, init)
        .await
        .context("the cluster's shared CAs and keys")?;
    tracing::info!(?outcome, "the cluster's CAs and keys are the datastore's");
    if let Some(file) = s.files.iter().find(|f| f.path == paths.encryption_config) {
        let make = s.make_encryption_key;
        pki::shared::ensure_file(s.store, secret, file, move || {
            if !make {
                return Ok(None);
            }
            crate::server::store::encrypt::manage::generated_config_text()
                .map(Some)
                .map_err(|e| pki::shared::SharedError::Corrupt(e.to_string()))
        })
        .await
        .context("the secrets' shared encryption configuration")?;
    }
    if *unwritten {
        pki::keep_cluster_secret(&paths.token, secret).context("keeping the cluster's token")?;
    }
    Ok(())
}
