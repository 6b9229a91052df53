//! ServiceAccount JWTs as kube-apiserver issues them: a JWS in compact form
//! (`header.claims.signature`, each unpadded base64url), header
//! `{"alg":"ES256","kid":…}`, and the claims of a bound token — `aud`,
//! `exp`, `iat`, `iss`, `jti`, the private `kubernetes.io` object
//! (namespace, serviceaccount, and the pod, secret or node it is bound to),
//! `nbf`, `sub`.
//!
//! Pure: signing and checking take the key and the time, never the store;
//! whether the objects named still exist is `authn`'s business.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::server::pki::ServiceAccountKey;

/// The only algorithm accepted: pinned, never read from the token.
pub const ALG: &str = "ES256";

/// Clock skew allowed on `exp` and `nbf` (go-jose's `DefaultLeeway`, which
/// upstream's validator uses).
pub const LEEWAY_SECS: i64 = 60;

/// Tokens longer than this are not looked at (upstream's are ~1 KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unexpected signing algorithm {0:?} (want ES256)")]
    Algorithm(String),
    #[error("invalid signature")]
    Signature,
    #[error("token issued by another issuer")]
    Issuer,
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotYetValid,
    #[error("token audiences do not include any of the API server's")]
    Audience,
    #[error("token subject does not name its service account")]
    Subject,
    #[error("cannot sign token: {0}")]
    Sign(String),
}

/// `name` and `uid` of an object a token names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub uid: String,
}

/// The private `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubernetes {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    /// Past this the token still works (an extended projected token) but
    /// is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// A token's claims, in the order upstream writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Kubernetes,
    pub nbf: i64,
    pub sub: String,
}

/// `aud` may be one string or a list (RFC 7519 §4.1.3).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(s) => vec![s],
        Aud::Many(v) => v,
    })
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

/// What a token must say to be accepted.
pub struct Expect<'a> {
    pub issuer: &'a str,
    /// The API server's audiences: a token must name at least one.
    pub audiences: &'a [String],
    /// Unix seconds.
    pub now: i64,
}

/// Whether a bearer token has the shape of a JWS (three base64url parts,
/// a JSON header first); static tokens never do.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The compact JWS of `claims`, signed with `key`.
pub fn sign(key: &ServiceAccountKey, claims: &Claims) -> Result<String, JwtError> {
    let header = Header {
        alg: ALG.to_string(),
        kid: Some(key.kid().to_string()),
    };
    let enc = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
    let header = serde_json::to_vec(&header).map_err(|e| JwtError::Sign(e.to_string()))?;
    let body = serde_json::to_vec(claims).map_err(|e| JwtError::Sign(e.to_string()))?;
    let signing_input = format!("{}.{}", enc(&header), enc(&body));
    let sig = key
        .sign(signing_input.as_bytes())
        .map_err(|e| JwtError::Sign(e.to_string()))?;
    Ok(format!("{signing_input}.{}", enc(&sig)))
}

/// The claims of `token` when `key` signed it with ES256 and it says what
/// `expect` wants: issuer, time window (with [`LEEWAY_SECS`]), an audience
/// of the API server's, and a subject that matches its service account.
pub fn verify(
    key: &ServiceAccountKey,
    token: &str,
    expect: &Expect<'_>,
) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("want three dot-separated parts"));
    };
    let dec = |p: &str, what| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| JwtError::Malformed(what))
    };
    let header: Header = serde_json::from_slice(&dec(h, "header is not base64url")?)
        .map_err(|_| JwtError::Malformed("header is not a JWS header"))?;
    if header.alg != ALG {
        return Err(JwtError::Algorithm(header.alg));
    }
    let sig = dec(s, "signature is not base64url")?;
    let signing_input = &token[..h.len() + 1 + c.len()];
    if !key.verify(signing_input.as_bytes(), &sig) {
        return Err(JwtError::Signature);
    }
    let claims: Claims = serde_json::from_slice(&dec(c, "claims are not base64url")?)
        .map_err(|_| JwtError::Malformed("claims are not those of a service account token"))?;
    if claims.iss != expect.issuer {
        return Err(JwtError::Issuer);
    }
    if expect.now > claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(JwtError::Expired);
    }
    if expect.now < claims.nbf.saturating_sub(LEEWAY_SECS) {
        return Err(JwtError::NotYetValid);
    }
    if !claims.aud.iter().any(|a| expect.audiences.contains(a)) {
        return Err(JwtError::Audience);
    }
    let k = &claims.kubernetes;
    let named = super::username(&k.namespace, &k.serviceaccount.name);
    if k.namespace.is_empty() || k.serviceaccount.name.is_empty() || claims.sub != named {
        return Err(JwtError::Subject);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://kubernetes.default.svc.cluster.local";

    fn claims(now: i64) -> Claims {
        Claims {
            aud: vec![ISS.into()],
            exp: now + 3600,
            iat: now,
            iss: ISS.into(),
            jti: Some("j".into()),
            kubernetes: Kubernetes {
                namespace: "ns".into(),
                serviceaccount: Ref {
                    name: "default".into(),
                    uid: "u1".into(),
                },
                ..Default::default()
            },
            nbf: now,
            sub: "system:serviceaccount:ns:default".into(),
        }
    }

    fn expect(audiences: &[String], now: i64) -> Expect<'_> {
        Expect {
            issuer: ISS,
            audiences,
            now,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_keeps_its_claims() {
        let key = ServiceAccountKey::generate().unwrap();
        let auds = vec![ISS.to_string()];
        let c = claims(1000);
        let t = sign(&key, &c).unwrap();
        assert!(looks_like_jwt(&t));
        assert_eq!(verify(&key, &t, &expect(&auds, 1000)).unwrap(), c);
        // The header names the algorithm and the key, nothing else.
        let header = URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "kid": key.kid()})
        );
        // The claims are in upstream's order.
        let body = URL_SAFE_NO_PAD
            .decode(t.split('.').nth(1).unwrap())
            .unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(r#"{"aud":["#), "{text}");
        assert!(text.contains(r#""kubernetes.io":{"namespace":"ns","serviceaccount":{"name":"default","uid":"u1"}}"#), "{text}");
    }

    #[test]
    fn bad_signatures_algorithms_and_shapes_are_refused() {
        let key = ServiceAccountKey::generate().unwrap();
        let other = ServiceAccountKey::generate().unwrap();
        let auds = vec![ISS.to_string()];
        let e = expect(&auds, 1000);
        let t = sign(&other, &claims(1000)).unwrap();
        assert_eq!(verify(&key, &t, &e), Err(JwtError::Signature));
        // A claim changed after signing.
        let good = sign(&key, &claims(1000)).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let mut forged = claims(1000);
        forged.kubernetes.namespace = "kube-system".into();
        forged.sub = "system:serviceaccount:kube-system:default".into();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let t = format!("{}.{body}.{}", parts[0], parts[2]);
        assert_eq!(verify(&key, &t, &e), Err(JwtError::Signature));
        // alg "none" (and any other) is refused before the signature.
        for alg in ["none", "HS256", "RS256", "ES384"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let t = format!("{h}.{}.{}", parts[1], parts[2]);
            assert_eq!(verify(&key, &t, &e), Err(JwtError::Algorithm(alg.into())));
        }
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &format!("{}.{}.", parts[0], parts[1]),
        ] {
            assert!(verify(&key, bad, &e).is_err(), "{bad}");
        }
        assert!(!looks_like_jwt("0123456789abcdef"));
    }

    #[test]
    fn time_issuer_audience_and_subject_are_checked() {
        let key = ServiceAccountKey::generate().unwrap();
        let auds = vec![ISS.to_string()];
        let c = claims(1000);
        let t = sign(&key, &c).unwrap();
        // Within the leeway either side, and not past it.
        assert!(verify(&key, &t, &expect(&auds, c.exp + LEEWAY_SECS)).is_ok());
        assert_eq!(
            verify(&key, &t, &expect(&auds, c.exp + LEEWAY_SECS + 1)),
            Err(JwtError::Expired)
        );
        assert!(verify(&key, &t, &expect(&auds, c.nbf - LEEWAY_SECS)).is_ok());
        assert_eq!(
            verify(&key, &t, &expect(&auds, c.nbf - LEEWAY_SECS - 1)),
            Err(JwtError::NotYetValid)
        );
        let mut other_iss = c.clone();
        other_iss.iss = "kubernetes/serviceaccount".into();
        let t2 = sign(&key, &other_iss).unwrap();
        assert_eq!(
            verify(&key, &t2, &expect(&auds, 1000)),
            Err(JwtError::Issuer)
        );
        let vault = vec!["vault".to_string()];
        assert_eq!(
            verify(&key, &t, &expect(&vault, 1000)),
            Err(JwtError::Audience)
        );
        let mut two = c.clone();
        two.aud = vec!["vault".into(), ISS.into()];
        let t3 = sign(&key, &two).unwrap();
        assert!(verify(&key, &t3, &expect(&auds, 1000)).is_ok());
        let mut liar = c.clone();
        liar.sub = "system:serviceaccount:kube-system:default".into();
        let t4 = sign(&key, &liar).unwrap();
        assert_eq!(
            verify(&key, &t4, &expect(&auds, 1000)),
            Err(JwtError::Subject)
        );
    }

    #[test]
    fn a_single_string_audience_is_read() {
        let text = r#"{"aud":"x","exp":2,"iat":1,"iss":"i","kubernetes.io":{"namespace":"n","serviceaccount":{"name":"a","uid":"u"}},"nbf":1,"sub":"s"}"#;
        let c: Claims = serde_json::from_str(text).unwrap();
        assert_eq!(c.aud, ["x"]);
        assert_eq!(c.jti, None);
    }
}
