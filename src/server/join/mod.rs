//! How a box joins the cluster as a node: the server's side.
//!
//! ```text
//! GET  /cacerts                      the cluster CA (PEM), to anyone: the
//!                                    agent checks it against the hash in
//!                                    its token before it trusts the server
//! POST /v1-skiff/node-certificates   a join token (Basic node:<token>) or
//!                                    the node's own client certificate
//!                                    (renewal), the node's password, and
//!                                    two certificate requests → the node's
//!                                    client and kubelet serving certificates
//! GET  /v1-skiff/config              the cluster's address plan and pod
//!                                    network, to nodes (their certificate)
//!                                    and admins: agents take the server's
//! ```
//!
//! k3s's protocol in spirit (`/cacerts`, `node:<token>` basic auth, node
//! passwords), with certificate requests instead of server-made keys: the
//! node's private keys never leave it. `tokens.rs` says which tokens join,
//! `password.rs` how a node name stays with the box that took it.
//!
//! Every refusal is a Status a person can act on, and the same refusal is
//! logged on the server (without the token or the password).

pub mod password;
pub mod throttle;
pub mod tokens;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};

use crate::api::status::ApiError;
use crate::server::pki::{self, ClusterPki, Identity};

pub const CACERTS_PATH: &str = "/cacerts";
pub const CERTIFICATES_PATH: &str = "/v1-skiff/node-certificates";
pub const CONFIG_PATH: &str = "/v1-skiff/config";
/// Two certificate requests and a few addresses fit many times over.
pub const MAX_BODY: usize = 64 << 10;
/// Addresses a node may name in its serving certificate.
const MAX_ADDRESSES: usize = 16;
/// The user name of Basic authentication with a join token (k3s's).
const TOKEN_USER: &str = "node";

/// What an agent asks for.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesRequest {
    pub node_name: String,
    pub password: String,
    /// PEM certificate requests: their keys are what is signed.
    pub client_request: String,
    pub serving_request: String,
    /// The node's addresses, named in its serving certificate.
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

/// What it is given.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesAnswer {
    pub client_certificate: String,
    pub serving_certificate: String,
    /// The cluster CA: the API's serving certificate and the API server's
    /// client certificate towards kubelets chain to it.
    pub certificate_authority: String,
}

/// The server's side of joins.
pub struct Joiner {
    pki: Arc<ClusterPki>,
    /// The secret of the server's own token.
    secret: String,
    /// Reads tokens and Nodes, records passwords (as NODE_JOIN_USER).
    client: kube::Client,
    /// How long node certificates are valid (agents renew them when a
    /// third is left).
    lifetime: std::time::Duration,
    /// What agents are told at `GET /v1-skiff/config`.
    cluster: crate::cluster::ClusterConfig,
    /// Failed joins per client address.
    throttle: throttle::Throttle,
}

impl Joiner {
    pub fn new(
        pki: Arc<ClusterPki>,
        server_token: &str,
        client: kube::Client,
        lifetime: std::time::Duration,
        cluster: crate::cluster::ClusterConfig,
    ) -> Joiner {
        Joiner {
            pki,
            secret: tokens::secret_part(server_token).to_string(),
            client,
            lifetime,
            cluster,
            throttle: Default::default(),
        }
    }

    /// `GET /v1-skiff/config`: to a node (any: every node needs it) or an
    /// admin, as k3s serves its agents' configuration.
    pub fn config(&self, who: Option<&Identity>) -> Result<Response, ApiError> {
        let allowed = who.is_some_and(|w| {
            w.groups
                .iter()
                .any(|g| g == pki::NODES_GROUP || g == pki::MASTERS_GROUP)
        });
        if !allowed {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "user {:?} cannot read the cluster configuration at {CONFIG_PATH}: it is for nodes (group {}) and admins",
                    who.map(|w| w.user.as_str()).unwrap_or(""),
                    pki::NODES_GROUP
                ),
            ));
        }
        Ok(axum::Json(&self.cluster).into_response())
    }

    /// `GET /cacerts`.
    pub fn cacerts(&self) -> Response {
        (
            [(http::header::CONTENT_TYPE, "application/x-pem-file")],
            self.pki.ca_cert_pem().to_string(),
        )
            .into_response()
    }

    /// `POST /v1-skiff/node-certificates`.
    pub async fn certificates(
        &self,
        who: Option<&Identity>,
        peer: Option<IpAddr>,
        headers: &http::HeaderMap,
        body: &Bytes,
    ) -> Result<Response, ApiError> {
        let now = std::time::Instant::now();
        self.throttle.admit(peer, now)?;
        if body.len() > MAX_BODY {
            return Err(ApiError::too_large(MAX_BODY));
        }
        let req: CertificatesRequest = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the node certificate request does not decode: {e}"))
        })?;
        let node = req.node_name.as_str();
        if !crate::agent::config::is_dns_subdomain(node) {
            return Err(ApiError::bad_request(format!(
                "invalid node name {node:?}: a node name is a DNS subdomain (lowercase letters, digits, '-' and '.')"
            )));
        }
        if req.addresses.len() > MAX_ADDRESSES {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_ADDRESSES} node addresses, not {}",
                req.addresses.len()
            )));
        }
        if let Err(e) = self.authenticate(who, headers, node).await {
            // A refusal, not the server's own trouble (a 503 while the
            // token's Secret cannot be read).
            if matches!(e.code, 401 | 403) {
                self.throttle.failed(peer, now);
            }
            return Err(e);
        }
        if !password::acceptable(&req.password) {
            return Err(ApiError::bad_request(format!(
                "the node password must be {} to {} printable characters",
                password::MIN_LEN,
                password::MAX_LEN
            )));
        }
        self.hold_name(node, &req.password).await?;
        let signed = self
            .pki
            .sign_node_certificates(
                node,
                &req.client_request,
                &req.serving_request,
                &req.addresses,
                self.lifetime,
            )
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        tracing::info!(node, "issued node certificates");
        let answer = CertificatesAnswer {
            client_certificate: signed.client_pem,
            serving_certificate: signed.serving_pem,
            certificate_authority: self.pki.ca_cert_pem().to_string(),
        };
        Ok(axum::Json(answer).into_response())
    }

    /// A join token in Basic authentication, else the node's own client
    /// certificate.
    async fn authenticate(
        &self,
        who: Option<&Identity>,
        headers: &http::HeaderMap,
        node: &str,
    ) -> Result<(), ApiError> {
        if let Some(token) = basic_token(headers) {
            return self.check_token(&token, node).await;
        }
        let own = who.is_some_and(|w| {
            w.user == pki::node_user(node) && w.groups.iter().any(|g| g == pki::NODES_GROUP)
        });
        if own {
            return Ok(());
        }
        tracing::warn!(
            node,
            user = who.map(|w| w.user.as_str()),
            "refused a join without a token"
        );
        Err(ApiError::new(
            401,
            "Unauthorized",
            format!("joining as node {node:?} needs a join token (or that node's own client certificate to renew it)"),
        ))
    }

    async fn check_token(&self, token: &str, node: &str) -> Result<(), ApiError> {
        let secret = tokens::secret_part(token);
        if tokens::same_secret(secret, &self.secret) {
            return Ok(());
        }
        let why = match tokens::split_bootstrap(secret) {
            None => "not the server's token".to_string(),
            Some((id, secret)) => {
                let secrets: Api<Secret> = Api::namespaced(self.client.clone(), tokens::NAMESPACE);
                match secrets
                    .get_opt(&format!("{}{id}", tokens::SECRET_PREFIX))
                    .await
                {
                    // The Secret must be the token's own (upstream checks
                    // its token-id too).
                    Ok(Some(s)) if tokens::data(&s, tokens::ID_KEY).as_deref() != Some(id) => {
                        format!("bootstrap token {id}: its Secret names another token-id")
                    }
                    Ok(Some(s)) => {
                        match tokens::bootstrap_problem(&s, secret, chrono::Utc::now()) {
                            None => return Ok(()),
                            Some(p) => format!("bootstrap token {id}: {p}"),
                        }
                    }
                    Ok(None) => format!("bootstrap token {id}: no such token"),
                    Err(e) => {
                        tracing::error!(node, "reading bootstrap token {id}: {e}");
                        return Err(ApiError::service_unavailable(
                            "cannot check the join token now: try again",
                        ));
                    }
                }
            }
        };
        tracing::warn!(node, "refused a join: {why}");
        Err(ApiError::new(
            401,
            "Unauthorized",
            "the join token is not valid for this cluster: use the server's token (<data-dir>/server/token) or one from `skiff token create` that has not expired",
        ))
    }

    /// Record `password` for `node`, or check it against the one recorded.
    async fn hold_name(&self, node: &str, pw: &str) -> Result<(), ApiError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), tokens::NAMESPACE);
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = password::secret_name(node);
        let unavailable = |e: kube::Error| {
            tracing::error!(node, "checking the node password: {e}");
            ApiError::service_unavailable("cannot check the node password now: try again")
        };
        let taken = || {
            tracing::warn!(
                node,
                "refused a join: the node name is held by another host"
            );
            ApiError::forbidden(format!(
                "node {node:?} is already registered by another host (its node password differs): choose another --node-name, or if that host is gone, `kubectl delete node {node}` first"
            ))
        };
        for _ in 0..3 {
            let stored = secrets.get_opt(&name).await.map_err(unavailable)?;
            let node_exists = nodes.get_opt(node).await.map_err(unavailable)?.is_some();
            let recorded = stored.as_ref().and_then(|s| {
                s.data
                    .as_ref()?
                    .get(password::KEY)
                    .and_then(|v| String::from_utf8(v.0.clone()).ok())
            });
            // A recorded password that differs is never replaced here: the
            // name is freed only with its Node (controllers::node_password),
            // so two joins at once, or a join between another's and its
            // registration, cannot both hold it.
            match (recorded, node_exists) {
                (Some(h), _) if password::matches(&h, pw) => return Ok(()),
                (Some(_), _) | (None, true) => return Err(taken()),
                (None, false) if stored.is_some() => return Err(taken()),
                (None, false) => {}
            }
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(tokens::NAMESPACE.into()),
                    ..Default::default()
                },
                type_: Some(password::SECRET_TYPE.into()),
                data: Some(BTreeMap::from([(
                    password::KEY.to_string(),
                    ByteString(password::hash(pw).into_bytes()),
                )])),
                ..Default::default()
            };
            let written = secrets.create(&PostParams::default(), &secret).await;
            match written {
                Ok(_) => return Ok(()),
                // Another join of this name at the same moment: look again.
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(taken())
    }
}

/// The token of `Authorization: Basic node:<token>`.
fn basic_token(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, token) = text.split_once(':')?;
    (user == TOKEN_USER).then(|| token.to_string())
}

/// The header an agent sends its token in.
pub fn basic_auth(token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN_USER}:{token}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_travels_as_basic_auth() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            basic_auth("K10abc::s3cret:x").parse().unwrap(),
        );
        assert_eq!(basic_token(&h).as_deref(), Some("K10abc::s3cret:x"));
        h.insert(http::header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_token(&h), None);
        let other = base64::engine::general_purpose::STANDARD.encode("admin:x");
        h.insert(
            http::header::AUTHORIZATION,
            format!("Basic {other}").parse().unwrap(),
        );
        assert_eq!(basic_token(&h), None);
    }
}
