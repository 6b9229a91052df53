//! The service-account signing key: the ECDSA P-256 key (JWS `ES256`) that
//! signs the ServiceAccount tokens the API server issues and checks
//! (kube-apiserver's `--service-account-signing-key-file`, with its public
//! half as `--service-account-key-file`).
//!
//! Kept as PKCS#8 PEM at `<tls dir>/service-account.key` (0600 in the 0700
//! directory), made on first start and reused later, so that tokens stay
//! valid across restarts. Its key id is what upstream puts in a token's
//! `kid` header: the unpadded base64url SHA-256 of the public key's
//! SubjectPublicKeyInfo DER.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use sha2::{Digest, Sha256};

use super::files::{ensure_dir, read_optional, write_atomic, PRIVATE};
use super::PkiError;

/// The file, in the PKI directory.
pub const SA_KEY_FILE: &str = "service-account.key";

/// The SubjectPublicKeyInfo DER of a P-256 key, less the 65 bytes of the
/// point: SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The signing key with its public half and key id.
pub struct ServiceAccountKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
}

impl fmt::Debug for ServiceAccountKey {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// A new random key (not written anywhere).
    pub fn generate() -> Result<ServiceAccountKey, PkiError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| PkiError::Generate {
                what: "service-account key",
                problem: e.to_string(),
            })?;
        Self::from_pkcs8(pkcs8.as_ref()).map_err(|problem| PkiError::Generate {
            what: "service-account key",
            problem,
        })
    }

    fn from_pkcs8(der: &[u8]) -> Result<ServiceAccountKey, String> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| format!("not a PKCS#8 ECDSA P-256 private key: {e}"))?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&spki));
        Ok(ServiceAccountKey { pair, rng, kid })
    }

    fn to_pem(pkcs8: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    /// The key at `dir/service-account.key`, made (and written, 0600) when
    /// missing. A file that is there but unusable is an error, never
    /// replaced: every token issued with it would stop working.
    pub fn load_or_create(dir: &Path) -> Result<ServiceAccountKey, PkiError> {
        ensure_dir(dir, 0o700)?;
        let path = dir.join(SA_KEY_FILE);
        if let Some(pem) = read_optional(&path)? {
            let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| PkiError::invalid(&path, format!("no PEM private key: {e}")))?;
            let PrivateKeyDer::Pkcs8(der) = der else {
                return Err(PkiError::invalid(
                    &path,
                    "not a PKCS#8 private key (want -----BEGIN PRIVATE KEY-----)",
                ));
            };
            return Self::from_pkcs8(der.secret_pkcs8_der())
                .map_err(|problem| PkiError::invalid(&path, problem));
        }
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| PkiError::Generate {
                what: "service-account key",
                problem: e.to_string(),
            })?;
        write_atomic(&path, Self::to_pem(pkcs8.as_ref()).as_bytes(), PRIVATE)?;
        tracing::info!(path = %path.display(), "created the service-account signing key");
        Self::from_pkcs8(pkcs8.as_ref()).map_err(|problem| PkiError::invalid(&path, problem))
    }

    /// The key id (`kid`) of tokens it signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// An ES256 signature of `msg`: r and s, 32 bytes each (JWS form).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.pair
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| PkiError::Generate {
                what: "token signature",
                problem: e.to_string(),
            })
    }

    /// Whether `sig` (JWS form) is this key's signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.pair.public_key().as_ref(),
        )
        .verify(msg, sig)
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let a = ServiceAccountKey::load_or_create(&tls).unwrap();
        let path = tls.join(SA_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&tls).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let b = ServiceAccountKey::load_or_create(&tls).unwrap();
        assert_eq!(a.kid(), b.kid());
        let sig = a.sign(b"msg").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(b.verify(b"msg", &sig));
        assert!(!b.verify(b"msh", &sig));
        let other = ServiceAccountKey::generate().unwrap();
        assert_ne!(other.kid(), a.kid());
        assert!(!other.verify(b"msg", &sig));
        assert!(!format!("{a:?}").contains("BEGIN"));
    }

    #[test]
    fn a_broken_key_file_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SA_KEY_FILE), "garbage").unwrap();
        let e = ServiceAccountKey::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains(SA_KEY_FILE), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(SA_KEY_FILE)).unwrap(),
            "garbage"
        );
    }
}
