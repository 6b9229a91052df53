//! Authentication: client certificates signed by the cluster CA (verified
//! during the TLS handshake) or static bearer tokens. Health and version
//! endpoints stay readable without credentials, as on a real cluster.

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::server::pki::{Identity, TokenAuth};

/// The identity the TLS layer established for a connection, if any.
#[derive(Clone, Debug, Default)]
pub struct ConnIdentity(pub Option<Identity>);

pub struct Authenticator {
    pub tokens: TokenAuth,
}

/// Paths the apiserver's `system:public-info-viewer` role opens to anyone.
pub fn is_public(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/healthz" | "/livez" | "/readyz" | "/version"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

impl Authenticator {
    pub fn authenticate(&self, conn: &ConnIdentity, headers: &HeaderMap) -> Option<Identity> {
        if let Some(id) = &conn.0 {
            return Some(id.clone());
        }
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.tokens.authenticate(token.trim())
    }
}
