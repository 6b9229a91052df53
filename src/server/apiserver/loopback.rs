//! The in-process API client: a `kube::Client` whose transport is a
//! `tower::service_fn` calling [`super::handle`] directly (no TCP, no TLS,
//! no serialisation beyond the JSON kube sends anyway).
//!
//! Skiff's own components (bootstrap, the namespace controller, later the
//! agent, controllers and scheduler when they run in the server) write
//! through it as ordinary callers: each has an identity of its own, which
//! `auth::authorize` decides on like any other, and every write passes the
//! same admission, defaulting, validation and managedFields as kubectl's.
//! Its requests are not counted against the in-flight limits: those bound
//! what remote clients may make the server do, while a component's load is
//! bounded by its own code (upstream's loopback client is likewise exempt,
//! as a member of system:masters). A component that waited on a limit
//! remote clients fill could not keep the server's own objects right, and
//! bootstrap, whose writes go at once, would fail under a limit of one.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderValue, Request};

use super::auth::ConnIdentity;
use super::ApiState;
use crate::server::pki::Identity;

/// A client acting as `who` (for skiff's components `auth::component` of
/// one of the `auth::*_USER` names). Its writes are recorded in
/// managedFields under `agent` (the manager a user agent names, as for
/// kubectl).
pub fn client(state: Arc<ApiState>, who: Identity, agent: &'static str) -> kube::Client {
    let conn = ConnIdentity(Some(who));
    let agent = HeaderValue::from_static(agent);
    let service = tower::service_fn(move |mut req: Request<kube::client::Body>| {
        let state = state.clone();
        let conn = conn.clone();
        req.headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert_with(|| agent.clone());
        req.extensions_mut().insert(InProcess);
        async move { Ok::<_, Infallible>(super::handle(state, conn, req).await) }
    });
    kube::Client::new(service, "default")
}

/// Marks a request as made by the loopback client. Request extensions never
/// come from the wire, so no remote client can claim it.
#[derive(Debug, Clone, Copy)]
pub struct InProcess;

/// `request` (a GET), or None when it answers 404.
pub async fn get_opt(
    client: &kube::Client,
    request: Request<Vec<u8>>,
) -> Result<Option<serde_json::Value>, kube::Error> {
    match client.request(request).await {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
