//! How `skiff agent` joins a cluster: the agent's side of `server::join`.
//!
//! 1. The token is `K10<sha256 of the cluster CA>::<secret>`. The CA is
//!    fetched from `/cacerts` without trusting anything, and used only if
//!    its hash is the token's: from then on the server is verified against
//!    it, before the secret is sent. (A bare secret joins only a server whose
//!    CA this node pinned at an earlier join.)
//! 2. Two keys are made here and never leave the node; their certificate
//!    requests go with the secret (Basic `node:<token>`) and the node's
//!    password to `/v1-skiff/node-certificates`.
//! 3. The answer's certificates are written beside the keys: the agent's
//!    kubeconfig, the kubelet API's serving pair, the CA of its callers.
//!
//! A node whose credentials are current (for this server, this name and
//! these addresses, far from expiry) does not ask again. Everything is
//! written 0600 in the agent's private directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_util::sync::CancellationToken;

use crate::server::join::{
    CertificatesAnswer, CertificatesRequest, CACERTS_PATH, CERTIFICATES_PATH,
};
use crate::server::pki::{self, PRIVATE, PUBLIC};

/// What the agent keeps in its directory.
pub const PASSWORD_FILE: &str = "node-password";
pub const SERVER_CA_FILE: &str = "server-ca.crt";
pub const KUBECONFIG_FILE: &str = "kubelet.kubeconfig";
/// The cluster's configuration as the server last gave it.
pub const CLUSTER_FILE: &str = "cluster.json";
/// A request that takes longer than this has failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Answers are a CA or two certificates: a few KiB.
const MAX_ANSWER: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the join token is malformed: expected K10<sha256 of the cluster CA>::<secret> as the server's <data-dir>/server/token holds it, or as `skiff token create` prints it")]
    Token,
    #[error("the join token has no CA hash and this node has pinned no CA yet: use the full token (K10<hash>::<secret>)")]
    Unpinned,
    #[error("--server {0:?} is not an https:// URL with a host")]
    Url(String),
    #[error("the server at {url} presents a cluster CA whose sha256 is {got}, not {want} as the join token says: the token is for another cluster, or something between this node and the server answers in its place")]
    CaMismatch {
        url: String,
        got: String,
        want: String,
    },
    #[error("cannot reach the server at {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("the server at {url} refused to join this node: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the server at {url} did not give this node the cluster's configuration: {message}")]
    ConfigRefused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Local(String),
}

impl JoinError {
    /// Whether trying again later may succeed (the server is down or
    /// starting); a refusal or a forged CA will not change by waiting.
    pub fn is_transient(&self) -> bool {
        match self {
            JoinError::Unreachable { .. } => true,
            JoinError::Refused { status, .. } | JoinError::ConfigRefused { status, .. } => {
                *status >= 500 || *status == 429
            }
            _ => false,
        }
    }
}

fn local(what: &str) -> impl FnOnce(pki::PkiError) -> JoinError + '_ {
    move |e| JoinError::Local(format!("{what}: {e}"))
}

/// What a join needs.
#[derive(Clone)]
pub struct Join {
    /// `https://host:port` of a server.
    pub server: String,
    pub token: String,
    pub node_name: String,
    /// Named in the kubelet's serving certificate.
    pub addresses: Vec<IpAddr>,
    /// The agent's private directory.
    pub dir: PathBuf,
}

impl Join {
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join(KUBECONFIG_FILE)
    }
}

/// The cluster's address plan and pod network, as the server gives them
/// to its nodes (asked with the node's certificate, after `ensure`): an
/// agent takes the server's, so no flag is repeated on every node. Kept
/// in `<dir>/cluster.json`, which stands in for it while the server cannot
/// be reached: a node whose server is down still starts its pods (the plan
/// cannot change once a cluster is made).
pub async fn cluster_config(j: &Join) -> Result<crate::cluster::ClusterConfig, JoinError> {
    let cached = j.dir.join(CLUSTER_FILE);
    match fetch_cluster_config(j).await {
        Ok(plan) => {
            let text =
                serde_json::to_vec_pretty(&plan).map_err(|e| JoinError::Local(e.to_string()))?;
            pki::write_atomic(&cached, &text, PUBLIC).map_err(|e| {
                JoinError::Local(format!("keeping the cluster's configuration: {e}"))
            })?;
            Ok(plan)
        }
        Err(e) if e.is_transient() => {
            let Some(plan) = std::fs::read(&cached)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            else {
                return Err(e);
            };
            tracing::warn!("{e}; starting on the cluster configuration kept from before");
            Ok(plan)
        }
        Err(e) => Err(e),
    }
}

async fn fetch_cluster_config(j: &Join) -> Result<crate::cluster::ClusterConfig, JoinError> {
    let url = j.server.clone();
    let (client, _) = crate::agent::client::from_kubeconfig(&j.kubeconfig())
        .await
        .map_err(|e| JoinError::Local(e.to_string()))?;
    let req = http::Request::get(crate::server::join::CONFIG_PATH)
        .body(Vec::new())
        .map_err(|e| JoinError::Local(e.to_string()))?;
    match tokio::time::timeout(REQUEST_TIMEOUT, client.request(req)).await {
        Err(_) => Err(JoinError::Unreachable {
            url,
            why: format!("no answer in {REQUEST_TIMEOUT:?}"),
        }),
        Ok(Ok(c)) => Ok(c),
        Ok(Err(kube::Error::Api(s))) => Err(JoinError::ConfigRefused {
            url,
            status: s.code,
            message: s.message,
        }),
        Ok(Err(kube::Error::SerdeError(e))) => Err(JoinError::Local(format!(
            "the server's cluster configuration does not decode: {e}"
        ))),
        Ok(Err(e)) => Err(JoinError::Unreachable {
            url,
            why: e.to_string(),
        }),
    }
}

/// Join (or renew) unless the credentials in `j.dir` are current.
pub async fn ensure(j: &Join) -> Result<(), JoinError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    pki::ensure_dir(&j.dir, 0o700).map_err(local("making the agent's directory"))?;
    let password = node_password(&j.dir)?;
    let uri: http::Uri = j
        .server
        .parse()
        .map_err(|_| JoinError::Url(j.server.clone()))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(JoinError::Url(j.server.clone()));
    }
    let (want_hash, secret) = match pki::parse_join_token(&j.token) {
        Some((hash, _)) => (Some(hash.to_ascii_lowercase()), j.token.trim().to_string()),
        None if j.token.trim().starts_with("K10") || j.token.trim().is_empty() => {
            return Err(JoinError::Token)
        }
        None => (None, j.token.trim().to_string()),
    };
    let pinned = std::fs::read_to_string(j.dir.join(SERVER_CA_FILE)).ok();
    if current(j, pinned.as_deref(), want_hash.as_deref()) {
        return Ok(());
    }
    // Credentials of this node for this cluster that are due, or name
    // other addresses: renewed with themselves first (a bootstrap token may
    // have expired since the join), the token only if that fails.
    if let Some(pinned) = pinned
        .as_deref()
        .filter(|p| want_hash.as_deref().is_none_or(|h| pki::ca_hash(p) == h))
    {
        match renew_with_certificate(j, &uri, pinned).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                tracing::info!(node = %j.node_name, "renewing with the node's certificate: {e}; joining with the token")
            }
        }
    }
    let ca = match (&want_hash, &pinned) {
        (Some(want), _) => {
            let fetched = fetch_ca(&uri, &j.server).await?;
            let got = pki::ca_hash(&fetched);
            if &got != want {
                return Err(JoinError::CaMismatch {
                    url: j.server.clone(),
                    got,
                    want: want.clone(),
                });
            }
            fetched
        }
        (None, Some(pinned)) => pinned.clone(),
        (None, None) => return Err(JoinError::Unpinned),
    };
    let tls = pki::client_tls_config(&ca, None).map_err(local("the cluster CA"))?;
    let auth = crate::server::join::basic_auth(&secret);
    obtain(j, &uri, &ca, tls, Some(&auth), password).await?;
    tracing::info!(node = %j.node_name, server = %j.server, "joined the cluster");
    Ok(())
}

/// Ask for new certificates with the node's current ones (no token: a
/// bootstrap token may have expired long since) when they are due: a third
/// of their lifetime left, or less. Whether they were renewed.
pub async fn renew(j: &Join) -> Result<bool, JoinError> {
    let creds = read_credentials(&j.kubeconfig()).map_err(JoinError::Local)?;
    let serving = std::fs::read(j.dir.join(pki::KUBELET_CERT_FILE)).unwrap_or_default();
    if !pki::renewal_due(creds.cert_pem.as_bytes()) && !pki::renewal_due(&serving) {
        return Ok(false);
    }
    // Through the load balancer when the agent runs: any server renews.
    let uri: http::Uri = crate::agent::client::api_url(&j.server)
        .parse()
        .map_err(|_| JoinError::Url(j.server.clone()))?;
    let password = node_password(&j.dir)?;
    let tls = pki::client_tls_config(&creds.ca_pem, Some((&creds.cert_pem, &creds.key_pem)))
        .map_err(local("the node's credentials"))?;
    obtain(j, &uri, &creds.ca_pem, tls, None, password).await?;
    tracing::info!(node = %j.node_name, "renewed the node's certificates");
    Ok(true)
}

/// Renew the node's certificates whenever they are due, until `cancel`;
/// `renewed` is cancelled after each renewal (the agent then starts again
/// on them: its pods are not touched). Checked ten times per lifetime, at
/// least every 5 s and at most every hour.
pub async fn keep_renewed(j: &Join, renewed: &CancellationToken, cancel: &CancellationToken) {
    loop {
        let every = read_credentials(&j.kubeconfig())
            .ok()
            .and_then(|c| pki::validity(c.cert_pem.as_bytes()))
            .map(|(from, until)| Duration::from_secs(((until - from).max(0) as u64) / 10))
            .unwrap_or(Duration::from_secs(60))
            .clamp(Duration::from_secs(5), Duration::from_secs(3600));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match renew(j).await {
            Ok(true) => {
                renewed.cancel();
                return;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(node = %j.node_name, "renewing the node's certificates: {e}"),
        }
    }
}

/// Ask for certificates with the node's current client certificate, if it
/// is one of this node's for this CA and server and has not expired.
async fn renew_with_certificate(
    j: &Join,
    uri: &http::Uri,
    pinned: &str,
) -> Result<bool, JoinError> {
    let Ok(creds) = read_credentials(&j.kubeconfig()) else {
        return Ok(false);
    };
    let user = pki::node_user(&j.node_name);
    if creds.server != j.server
        || creds.ca_pem != pinned
        || !pki::leaf_fits(creds.cert_pem.as_bytes(), &user, pinned, &[])
    {
        return Ok(false);
    }
    let password = node_password(&j.dir)?;
    let tls = pki::client_tls_config(&creds.ca_pem, Some((&creds.cert_pem, &creds.key_pem)))
        .map_err(local("the node's credentials"))?;
    // Through the load balancer once it runs: the server the node joined
    // may be the one that is gone.
    let via: http::Uri = crate::agent::client::api_url(&j.server)
        .parse()
        .unwrap_or_else(|_| uri.clone());
    obtain(j, &via, &creds.ca_pem, tls, None, password).await?;
    tracing::info!(node = %j.node_name, "renewed the node's certificates with its current ones");
    Ok(true)
}

/// One request for the node's certificates, written once answered.
async fn obtain(
    j: &Join,
    uri: &http::Uri,
    ca: &str,
    tls: Arc<rustls::ClientConfig>,
    auth: Option<&str>,
    password: String,
) -> Result<(), JoinError> {
    let client_key = new_key()?;
    let serving_key = new_key()?;
    let request = CertificatesRequest {
        node_name: j.node_name.clone(),
        password,
        client_request: csr(&client_key, &pki::node_user(&j.node_name), &[])?,
        serving_request: csr(&serving_key, &pki::node_user(&j.node_name), &[])?,
        addresses: j.addresses.clone(),
    };
    let body = serde_json::to_vec(&request).map_err(|e| JoinError::Local(e.to_string()))?;
    let mut req = http::Request::post(CERTIFICATES_PATH)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(auth) = auth {
        req = req.header(http::header::AUTHORIZATION, auth);
    }
    let (status, answer) = send(uri, &j.server, tls, req, Bytes::from(body)).await?;
    if !status.is_success() {
        return Err(refused(&j.server, status, &answer));
    }
    let answer: CertificatesAnswer =
        serde_json::from_slice(&answer).map_err(|e| JoinError::Refused {
            url: j.server.clone(),
            status: status.as_u16(),
            message: format!("its answer does not decode: {e}"),
        })?;
    write_credentials(j, ca, &answer, &client_key, &serving_key)
}

/// The node's password: made once, kept.
fn node_password(dir: &Path) -> Result<String, JoinError> {
    let path = dir.join(PASSWORD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim();
            if crate::server::join::password::acceptable(text) {
                return Ok(text.to_string());
            }
            return Err(JoinError::Local(format!(
                "{} does not hold a usable node password: remove it only if this node is to join as a new host",
                path.display()
            )));
        }
        // Only a password that is not there is made anew: one that cannot
        // be read now would cost the node its name.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(JoinError::Local(format!(
                "reading the node password {}: {e}",
                path.display()
            )))
        }
    }
    let made = hex::encode(rand::random::<[u8; 24]>());
    pki::write_atomic(&path, format!("{made}\n").as_bytes(), PRIVATE)
        .map_err(local("writing the node password"))?;
    Ok(made)
}

fn new_key() -> Result<rcgen::KeyPair, JoinError> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| JoinError::Local(format!("making a key: {e}")))
}

fn csr(key: &rcgen::KeyPair, cn: &str, sans: &[String]) -> Result<String, JoinError> {
    let mut params = rcgen::CertificateParams::new(sans.to_vec())
        .map_err(|e| JoinError::Local(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .serialize_request(key)
        .and_then(|r| r.pem())
        .map_err(|e| JoinError::Local(format!("making a certificate request: {e}")))
}

fn refused(url: &str, status: http::StatusCode, body: &[u8]) -> JoinError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    JoinError::Refused {
        url: url.to_string(),
        status: status.as_u16(),
        message: format!("{} ({})", message, status.as_u16()),
    }
}

/// `/cacerts`, trusting nothing: what comes back is checked by its hash.
async fn fetch_ca(uri: &http::Uri, url: &str) -> Result<String, JoinError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| JoinError::Local(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let (status, body) = send(
        uri,
        url,
        Arc::new(tls),
        http::Request::get(CACERTS_PATH),
        Bytes::new(),
    )
    .await?;
    if !status.is_success() {
        return Err(refused(url, status, &body));
    }
    String::from_utf8(body.to_vec()).map_err(|_| JoinError::Refused {
        url: url.to_string(),
        status: status.as_u16(),
        message: "its CA is not text".into(),
    })
}

/// One request on a connection of its own.
async fn send(
    uri: &http::Uri,
    url: &str,
    tls: Arc<rustls::ClientConfig>,
    req: http::request::Builder,
    body: Bytes,
) -> Result<(http::StatusCode, Bytes), JoinError> {
    let unreachable = |why: String| JoinError::Unreachable {
        url: url.to_string(),
        why,
    };
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name = ServerName::try_from(host.clone()).map_err(|e| unreachable(e.to_string()))?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                unreachable(format!(
                    "TLS: {e} (is the address in the server's certificate? see its --tls-san)"
                ))
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = req
            .header(
                http::header::HOST,
                uri.authority().map(|a| a.as_str()).unwrap_or_default(),
            )
            .body(Full::new(body))
            .map_err(|e| JoinError::Local(e.to_string()))?;
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, bytes))
        }
        .await;
        driver.abort();
        result
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(format!("no answer within {REQUEST_TIMEOUT:?}")))?
}

/// Accepts any server certificate (the handshake's signatures are still
/// checked): for `/cacerts` only, whose answer is then checked by hash.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn write_credentials(
    j: &Join,
    ca: &str,
    answer: &CertificatesAnswer,
    client_key: &rcgen::KeyPair,
    serving_key: &rcgen::KeyPair,
) -> Result<(), JoinError> {
    let dir = &j.dir;
    let kubeconfig = pki::kubeconfig_yaml(
        &j.server,
        ca,
        &answer.client_certificate,
        &client_key.serialize_pem(),
    )
    .map_err(|e| JoinError::Local(format!("writing the kubeconfig: {e}")))?;
    // The serving key before its certificate, as the server writes its own.
    pki::write_atomic(
        &dir.join(pki::KUBELET_KEY_FILE),
        serving_key.serialize_pem().as_bytes(),
        PRIVATE,
    )
    .map_err(local("writing the kubelet's key"))?;
    pki::write_atomic(
        &dir.join(pki::KUBELET_CERT_FILE),
        answer.serving_certificate.as_bytes(),
        PUBLIC,
    )
    .map_err(local("writing the kubelet's certificate"))?;
    // The API server calls the kubelet with a certificate from the cluster CA.
    pki::write_atomic(
        &dir.join(pki::KUBELET_CLIENT_CA_FILE),
        answer.certificate_authority.as_bytes(),
        PUBLIC,
    )
    .map_err(local("writing the kubelet's client CA"))?;
    pki::write_atomic(&dir.join(SERVER_CA_FILE), ca.as_bytes(), PUBLIC)
        .map_err(local("pinning the cluster CA"))?;
    pki::write_atomic(&j.kubeconfig(), kubeconfig.as_bytes(), PRIVATE)
        .map_err(local("writing the kubeconfig"))
}

/// Whether the credentials in the agent's directory are for this server,
/// node, CA and addresses, and not yet due for renewal.
fn current(j: &Join, pinned: Option<&str>, want_hash: Option<&str>) -> bool {
    let Some(pinned) = pinned else { return false };
    if want_hash.is_some_and(|h| pki::ca_hash(pinned) != h) {
        return false;
    }
    let Ok(creds) = read_credentials(&j.kubeconfig()) else {
        return false;
    };
    if creds.server != j.server || creds.ca_pem != pinned {
        return false;
    }
    let user = pki::node_user(&j.node_name);
    let client = creds.cert_pem.as_bytes();
    // Each key must be its certificate's: a crash between the writes of
    // the two leaves a pair that no TLS stack loads.
    let client_ok = pki::leaf_fits(client, &user, pinned, &[])
        && !pki::renewal_due(client)
        && pki::key_matches(client, &creds.key_pem);
    let serving = std::fs::read(j.dir.join(pki::KUBELET_CERT_FILE)).unwrap_or_default();
    let serving_key =
        std::fs::read_to_string(j.dir.join(pki::KUBELET_KEY_FILE)).unwrap_or_default();
    let mut names: Vec<String> = vec![j.node_name.clone()];
    names.extend(j.addresses.iter().map(IpAddr::to_string));
    // The serving certificate's issuer (the kubelet CA) is not known here:
    // only its names and dates are checked; the server checks the chain.
    let serving_ok = pki::leaf_fits(&serving, &user, "", &names)
        && !pki::renewal_due(&serving)
        && pki::key_matches(&serving, &serving_key);
    client_ok && serving_ok
}

/// What an agent's kubeconfig holds (as `pki::kubeconfig_yaml` writes it).
pub struct Credentials {
    pub server: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// The credentials in the kubeconfig at `path`.
pub fn read_credentials(path: &Path) -> Result<Credentials, String> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let field = |pointer: &str| -> Result<String, String> {
        doc.pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{}: no {pointer}", path.display()))
    };
    let decoded = |pointer: &str| -> Result<String, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(field(pointer)?)
            .map_err(|e| format!("{}: {pointer}: {e}", path.display()))?;
        String::from_utf8(bytes).map_err(|e| format!("{}: {pointer}: {e}", path.display()))
    };
    Ok(Credentials {
        server: field("/clusters/0/cluster/server")?,
        ca_pem: decoded("/clusters/0/cluster/certificate-authority-data")?,
        cert_pem: decoded("/users/0/user/client-certificate-data")?,
        key_pem: decoded("/users/0/user/client-key-data")?,
    })
}
