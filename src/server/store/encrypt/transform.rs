//! The value transformers, byte for byte as kube-apiserver's, so a database
//! written here holds what etcd would under the same EncryptionConfiguration:
//!
//! - `aescbc`: `k8s:enc:aescbc:v1:<key name>:` + a random 16-byte IV + AES-CBC
//!   ciphertext with PKCS#7 padding. No authentication (as upstream, which
//!   keeps it for compatibility and recommends aesgcm or KMS): a tampered
//!   value decrypts to garbage or fails its padding check.
//! - `aesgcm`: `k8s:enc:aesgcm:v1:<key name>:` + a random 12-byte nonce +
//!   ciphertext and its 16-byte tag, with the storage key
//!   (`/registry/secrets/<ns>/<name>`) as additional authenticated data, so a
//!   value copied under another key does not decrypt. Random nonces are safe
//!   for about 2^32 writes per key; rotate before that (upstream's advice).
//! - `identity`: the value as it is (the object's JSON).
//!
//! A [`Chain`] is one resource entry's providers in order: the first one
//! writes; reads pick the provider by the value's prefix. Errors name the
//! key's name and the storage key, never key material.

use aes::cipher::{
    block_padding::Pkcs7, BlockCipher, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit,
};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use bytes::Bytes;

/// What every encrypted value starts with (upstream's marker).
pub const ENCRYPTED_MARKER: &[u8] = b"k8s:enc:";

const CBC_IV_LEN: usize = 16;
const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

type Aes192Gcm = AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransformError {
    #[error(
        "{storage_key} is encrypted with {provider} key {name:?}, which the encryption \
         configuration does not hold (add the key back to the configuration)"
    )]
    UnknownKey {
        storage_key: String,
        provider: String,
        name: String,
    },
    #[error(
        "{storage_key} is stored unencrypted, and the encryption configuration for it has no \
         identity provider to read it (add `identity: {{}}` after the others)"
    )]
    NoIdentity { storage_key: String },
    // The reason stays out of the message clients see (a padding error
    // told apart from others would be an oracle); it is logged.
    #[error("{storage_key} does not decrypt with {provider} key {name:?} (a wrong key or a damaged value)")]
    Decrypt {
        storage_key: String,
        provider: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("encrypting {storage_key} with {provider} key {name:?} failed")]
    Encrypt {
        storage_key: String,
        provider: &'static str,
        name: String,
    },
}

/// An AES key as a provider uses it; the key bytes live only inside the
/// cipher state (never printed: no Debug of the key).
#[derive(Clone)]
pub enum Cipher {
    Cbc128(aes::Aes128),
    Cbc192(aes::Aes192),
    Cbc256(aes::Aes256),
    Gcm128(Box<Aes128Gcm>),
    Gcm192(Box<Aes192Gcm>),
    Gcm256(Box<Aes256Gcm>),
}

/// The provider kinds that encrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Aescbc,
    Aesgcm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Aescbc => "aescbc",
            Kind::Aesgcm => "aesgcm",
        }
    }
}

impl Cipher {
    /// The cipher for `key` (16, 24 or 32 bytes; config.rs checks that
    /// first and names the key when it is not).
    pub fn new(kind: Kind, key: &[u8]) -> Option<Cipher> {
        Some(match (kind, key.len()) {
            (Kind::Aescbc, 16) => Cipher::Cbc128(aes::Aes128::new_from_slice(key).ok()?),
            (Kind::Aescbc, 24) => Cipher::Cbc192(aes::Aes192::new_from_slice(key).ok()?),
            (Kind::Aescbc, 32) => Cipher::Cbc256(aes::Aes256::new_from_slice(key).ok()?),
            (Kind::Aesgcm, 16) => Cipher::Gcm128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            (Kind::Aesgcm, 24) => Cipher::Gcm192(Box::new(Aes192Gcm::new_from_slice(key).ok()?)),
            (Kind::Aesgcm, 32) => Cipher::Gcm256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            _ => return None,
        })
    }
}

/// One key of one provider: writes and reads values starting with
/// `k8s:enc:<kind>:v1:<name>:`.
#[derive(Clone)]
pub struct KeyEntry {
    pub kind: Kind,
    pub name: String,
    prefix: Vec<u8>,
    cipher: Cipher,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl KeyEntry {
    pub fn new(kind: Kind, name: &str, cipher: Cipher) -> KeyEntry {
        KeyEntry {
            kind,
            name: name.to_string(),
            prefix: format!("k8s:enc:{}:v1:{name}:", kind.as_str()).into_bytes(),
            cipher,
        }
    }

    fn encrypt(&self, storage_key: &str, plain: &[u8]) -> Result<Vec<u8>, TransformError> {
        let mut out = self.prefix.clone();
        match &self.cipher {
            Cipher::Cbc128(c) => cbc_encrypt(c, plain, &mut out),
            Cipher::Cbc192(c) => cbc_encrypt(c, plain, &mut out),
            Cipher::Cbc256(c) => cbc_encrypt(c, plain, &mut out),
            Cipher::Gcm128(c) => gcm_encrypt(c.as_ref(), storage_key, plain, &mut out),
            Cipher::Gcm192(c) => gcm_encrypt(c.as_ref(), storage_key, plain, &mut out),
            Cipher::Gcm256(c) => gcm_encrypt(c.as_ref(), storage_key, plain, &mut out),
        }
        .map_err(|()| TransformError::Encrypt {
            storage_key: storage_key.to_string(),
            provider: self.kind.as_str(),
            name: self.name.clone(),
        })?;
        Ok(out)
    }

    fn decrypt(&self, storage_key: &str, sealed: &[u8]) -> Result<Vec<u8>, TransformError> {
        let body = &sealed[self.prefix.len()..];
        match &self.cipher {
            Cipher::Cbc128(c) => cbc_decrypt(c, body),
            Cipher::Cbc192(c) => cbc_decrypt(c, body),
            Cipher::Cbc256(c) => cbc_decrypt(c, body),
            Cipher::Gcm128(c) => gcm_decrypt(c.as_ref(), storage_key, body),
            Cipher::Gcm192(c) => gcm_decrypt(c.as_ref(), storage_key, body),
            Cipher::Gcm256(c) => gcm_decrypt(c.as_ref(), storage_key, body),
        }
        .map_err(|reason| TransformError::Decrypt {
            storage_key: storage_key.to_string(),
            provider: self.kind.as_str(),
            name: self.name.clone(),
            reason,
        })
    }
}

fn cbc_encrypt<C>(cipher: &C, plain: &[u8], out: &mut Vec<u8>) -> Result<(), ()>
where
    C: BlockCipher + BlockEncryptMut + Clone,
{
    let iv: [u8; CBC_IV_LEN] = rand::random();
    let enc = cbc::Encryptor::<C>::inner_iv_slice_init(cipher.clone(), &iv).map_err(|_| ())?;
    out.extend_from_slice(&iv);
    out.extend_from_slice(&enc.encrypt_padded_vec_mut::<Pkcs7>(plain));
    Ok(())
}

fn cbc_decrypt<C>(cipher: &C, body: &[u8]) -> Result<Vec<u8>, &'static str>
where
    C: BlockCipher + BlockDecryptMut + Clone,
{
    if body.len() < CBC_IV_LEN {
        return Err("the value is shorter than its IV");
    }
    let (iv, data) = body.split_at(CBC_IV_LEN);
    if data.is_empty() || data.len() % CBC_IV_LEN != 0 {
        return Err("the ciphertext is not a whole number of blocks");
    }
    let dec = cbc::Decryptor::<C>::inner_iv_slice_init(cipher.clone(), iv)
        .map_err(|_| "bad IV length")?;
    dec.decrypt_padded_vec_mut::<Pkcs7>(data)
        .map_err(|_| "invalid padding (wrong key, or the value was altered)")
}

fn gcm_encrypt<A: Aead>(
    aead: &A,
    storage_key: &str,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ()> {
    let nonce: [u8; GCM_NONCE_LEN] = rand::random();
    let sealed = aead
        .encrypt(
            aes_gcm::Nonce::<A::NonceSize>::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: storage_key.as_bytes(),
            },
        )
        .map_err(|_| ())?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(())
}

fn gcm_decrypt<A: Aead>(aead: &A, storage_key: &str, body: &[u8]) -> Result<Vec<u8>, &'static str> {
    if body.len() < GCM_NONCE_LEN + GCM_TAG_LEN {
        return Err("the value is shorter than its nonce and tag");
    }
    let (nonce, sealed) = body.split_at(GCM_NONCE_LEN);
    aead.decrypt(
        aes_gcm::Nonce::<A::NonceSize>::from_slice(nonce),
        Payload {
            msg: sealed,
            aad: storage_key.as_bytes(),
        },
    )
    .map_err(|_| "authentication failed (wrong key, another storage key, or the value was altered)")
}

/// One provider of a resource entry, in the configuration's order.
#[derive(Clone, Debug)]
pub enum Provider {
    Identity,
    /// An aescbc or aesgcm provider: its keys in order, the first writes.
    Keys(Vec<KeyEntry>),
}

/// A resource entry's providers: the first writes, all read.
#[derive(Clone, Debug)]
pub struct Chain {
    providers: Vec<Provider>,
}

/// What reading a stored value found.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub plain: Bytes,
    /// Not written by the provider (and key) that writes now: reencrypt
    /// rewrites it.
    pub stale: bool,
}

/// How a stored value stands against the chain, from its prefix alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Written by the provider that writes now.
    Active,
    /// Readable, written by another provider or key.
    Stale,
    /// Encrypted with a key the chain lacks, or plaintext without identity.
    Unreadable,
}

impl Chain {
    /// `providers` must not be empty (config.rs checks).
    pub fn new(providers: Vec<Provider>) -> Chain {
        Chain { providers }
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The key that writes, None when identity does.
    pub fn writer(&self) -> Option<&KeyEntry> {
        match self.providers.first() {
            Some(Provider::Keys(keys)) => keys.first(),
            _ => None,
        }
    }

    fn has_identity(&self) -> bool {
        self.providers
            .iter()
            .any(|p| matches!(p, Provider::Identity))
    }

    fn entry_for(&self, stored: &[u8]) -> Option<&KeyEntry> {
        self.providers
            .iter()
            .filter_map(|p| match p {
                Provider::Keys(keys) => Some(keys),
                Provider::Identity => None,
            })
            .flatten()
            .find(|k| stored.starts_with(&k.prefix))
    }

    /// The value to store for `plain` under `storage_key`.
    pub fn seal(&self, storage_key: &str, plain: Bytes) -> Result<Bytes, TransformError> {
        match self.writer() {
            Some(key) => key.encrypt(storage_key, &plain).map(Bytes::from),
            None => Ok(plain),
        }
    }

    /// The plaintext of a stored value.
    pub fn open(&self, storage_key: &str, stored: Bytes) -> Result<Opened, TransformError> {
        if !stored.starts_with(ENCRYPTED_MARKER) {
            if !self.has_identity() {
                return Err(TransformError::NoIdentity {
                    storage_key: storage_key.to_string(),
                });
            }
            let stale = self.writer().is_some();
            return Ok(Opened {
                plain: stored,
                stale,
            });
        }
        let Some(entry) = self.entry_for(&stored) else {
            let (provider, name) = guess_key(&stored);
            return Err(TransformError::UnknownKey {
                storage_key: storage_key.to_string(),
                provider,
                name,
            });
        };
        let plain = entry.decrypt(storage_key, &stored)?;
        let stale = !self
            .writer()
            .is_some_and(|w| std::ptr::eq(w, entry) || w.prefix == entry.prefix);
        Ok(Opened {
            plain: Bytes::from(plain),
            stale,
        })
    }

    /// Where a stored value stands, from its prefix (no decryption).
    pub fn standing(&self, stored: &[u8]) -> Standing {
        if !stored.starts_with(ENCRYPTED_MARKER) {
            return match (self.has_identity(), self.writer()) {
                (false, _) => Standing::Unreadable,
                (true, None) => Standing::Active,
                (true, Some(_)) => Standing::Stale,
            };
        }
        match (self.entry_for(stored), self.writer()) {
            (None, _) => Standing::Unreadable,
            (Some(e), Some(w)) if e.prefix == w.prefix => Standing::Active,
            (Some(_), _) => Standing::Stale,
        }
    }
}

/// The provider and key name an unknown encrypted value names, for the
/// error: `k8s:enc:<provider>:v1:<name>:…`, the name read up to the next
/// `:` (names with colons show their first part), printable ASCII only.
fn guess_key(stored: &[u8]) -> (String, String) {
    let rest = &stored[ENCRYPTED_MARKER.len()..];
    let mut parts = rest.splitn(4, |b| *b == b':');
    let printable = |s: &[u8]| {
        let s = &s[..s.len().min(64)];
        if s.iter().all(|b| b.is_ascii_graphic()) {
            String::from_utf8_lossy(s).into_owned()
        } else {
            "?".to_string()
        }
    };
    let provider = parts.next().map(printable).unwrap_or_default();
    let _version = parts.next();
    let name = parts.next().map(printable).unwrap_or_default();
    (provider, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: Kind, name: &str, byte: u8, len: usize) -> KeyEntry {
        KeyEntry::new(kind, name, Cipher::new(kind, &vec![byte; len]).unwrap())
    }

    const SK: &str = "/registry/secrets/default/s";
    const PLAIN: &[u8] = br#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}"#;

    #[test]
    fn both_providers_round_trip_for_every_key_length() {
        for kind in [Kind::Aescbc, Kind::Aesgcm] {
            for len in [16, 24, 32] {
                let chain = Chain::new(vec![Provider::Keys(vec![key(kind, "k1", 7, len)])]);
                let sealed = chain.seal(SK, Bytes::from_static(PLAIN)).unwrap();
                assert_ne!(&sealed[..], PLAIN);
                let opened = chain.open(SK, sealed).unwrap();
                assert_eq!(&opened.plain[..], PLAIN, "{kind:?} {len}");
                assert!(!opened.stale);
            }
        }
    }

    #[test]
    fn envelopes_are_laid_out_as_upstream() {
        let cbc = Chain::new(vec![Provider::Keys(vec![key(Kind::Aescbc, "key1", 1, 32)])]);
        let sealed = cbc.seal(SK, Bytes::from_static(PLAIN)).unwrap();
        let prefix = b"k8s:enc:aescbc:v1:key1:";
        assert!(sealed.starts_with(prefix));
        // IV + PKCS#7-padded blocks (a whole block more when already aligned).
        let padded = (PLAIN.len() / 16 + 1) * 16;
        assert_eq!(sealed.len(), prefix.len() + 16 + padded);

        let gcm = Chain::new(vec![Provider::Keys(vec![key(Kind::Aesgcm, "key1", 1, 32)])]);
        let sealed = gcm.seal(SK, Bytes::from_static(PLAIN)).unwrap();
        let prefix = b"k8s:enc:aesgcm:v1:key1:";
        assert!(sealed.starts_with(prefix));
        assert_eq!(sealed.len(), prefix.len() + 12 + PLAIN.len() + 16);
        // Decrypt by hand with the storage key as AAD, as upstream seals.
        let body = &sealed[prefix.len()..];
        let aead = Aes256Gcm::new_from_slice(&[1u8; 32]).unwrap();
        let plain = aead
            .decrypt(
                aes_gcm::Nonce::from_slice(&body[..12]),
                Payload {
                    msg: &body[12..],
                    aad: SK.as_bytes(),
                },
            )
            .unwrap();
        assert_eq!(plain, PLAIN);
        // Random IVs and nonces: the same plaintext never seals the same.
        let again = gcm.seal(SK, Bytes::from_static(PLAIN)).unwrap();
        assert_ne!(sealed, again);
    }

    #[test]
    fn gcm_binds_the_storage_key_and_detects_tampering() {
        let gcm = Chain::new(vec![Provider::Keys(vec![key(Kind::Aesgcm, "k", 3, 16)])]);
        let sealed = gcm.seal(SK, Bytes::from_static(PLAIN)).unwrap();
        let moved = gcm
            .open("/registry/secrets/default/other", sealed.clone())
            .unwrap_err();
        assert!(matches!(moved, TransformError::Decrypt { .. }), "{moved}");
        let mut bad = sealed.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let e = gcm.open(SK, Bytes::from(bad)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(SK) && msg.contains("\"k\"") && msg.contains("aesgcm"),
            "{msg}"
        );
    }

    #[test]
    fn cbc_with_the_wrong_key_fails_its_padding_or_reads_garbage() {
        let right = Chain::new(vec![Provider::Keys(vec![key(Kind::Aescbc, "k", 1, 32)])]);
        let wrong = Chain::new(vec![Provider::Keys(vec![key(Kind::Aescbc, "k", 2, 32)])]);
        let mut padding_errors = 0;
        for _ in 0..32 {
            let sealed = right.seal(SK, Bytes::from_static(PLAIN)).unwrap();
            match wrong.open(SK, sealed) {
                Err(TransformError::Decrypt { reason, .. }) => {
                    assert!(reason.contains("padding"));
                    padding_errors += 1;
                }
                Err(e) => panic!("{e}"),
                // No authentication in CBC: garbage, never the plaintext.
                Ok(o) => assert_ne!(&o.plain[..], PLAIN),
            }
        }
        assert!(padding_errors > 0);
        // A truncated value is refused before decrypting.
        let sealed = right.seal(SK, Bytes::from_static(PLAIN)).unwrap();
        let short = sealed.slice(..sealed.len() - 3);
        assert!(right.open(SK, short).is_err());
    }

    #[test]
    fn an_unknown_key_is_named_without_key_material() {
        let old = Chain::new(vec![Provider::Keys(vec![key(Kind::Aescbc, "old", 1, 32)])]);
        let new = Chain::new(vec![Provider::Keys(vec![key(Kind::Aescbc, "new", 1, 32)])]);
        let sealed = old.seal(SK, Bytes::from_static(PLAIN)).unwrap();
        let e = new.open(SK, sealed).unwrap_err();
        assert_eq!(
            e,
            TransformError::UnknownKey {
                storage_key: SK.into(),
                provider: "aescbc".into(),
                name: "old".into()
            }
        );
    }

    #[test]
    fn identity_reads_plaintext_only_when_configured_and_marks_staleness() {
        let with = Chain::new(vec![
            Provider::Keys(vec![key(Kind::Aescbc, "k", 1, 32)]),
            Provider::Identity,
        ]);
        let opened = with.open(SK, Bytes::from_static(PLAIN)).unwrap();
        assert_eq!((&opened.plain[..], opened.stale), (PLAIN, true));
        assert_eq!(with.standing(PLAIN), Standing::Stale);

        let without = Chain::new(vec![Provider::Keys(vec![key(Kind::Aescbc, "k", 1, 32)])]);
        let e = without.open(SK, Bytes::from_static(PLAIN)).unwrap_err();
        assert_eq!(
            e,
            TransformError::NoIdentity {
                storage_key: SK.into()
            }
        );
        assert_eq!(without.standing(PLAIN), Standing::Unreadable);

        // Identity first (encryption being turned off): it writes, and
        // encrypted values are the stale ones.
        let off = Chain::new(vec![
            Provider::Identity,
            Provider::Keys(vec![key(Kind::Aescbc, "k", 1, 32)]),
        ]);
        let sealed = with.seal(SK, Bytes::from_static(PLAIN)).unwrap();
        assert_eq!(off.standing(&sealed), Standing::Stale);
        assert!(off.open(SK, sealed).unwrap().stale);
        assert_eq!(&off.seal(SK, Bytes::from_static(PLAIN)).unwrap()[..], PLAIN);
        assert_eq!(off.standing(PLAIN), Standing::Active);
    }

    #[test]
    fn a_second_key_reads_and_is_stale_until_rewritten() {
        let rotated = Chain::new(vec![
            Provider::Keys(vec![
                key(Kind::Aescbc, "new", 2, 32),
                key(Kind::Aescbc, "old", 1, 32),
            ]),
            Provider::Keys(vec![key(Kind::Aesgcm, "g", 3, 32)]),
            Provider::Identity,
        ]);
        let old = Chain::new(vec![Provider::Keys(vec![key(Kind::Aescbc, "old", 1, 32)])]);
        let gcm = Chain::new(vec![Provider::Keys(vec![key(Kind::Aesgcm, "g", 3, 32)])]);
        for sealed in [
            old.seal(SK, Bytes::from_static(PLAIN)).unwrap(),
            gcm.seal(SK, Bytes::from_static(PLAIN)).unwrap(),
        ] {
            assert_eq!(rotated.standing(&sealed), Standing::Stale);
            let o = rotated.open(SK, sealed).unwrap();
            assert_eq!((&o.plain[..], o.stale), (PLAIN, true));
        }
        let fresh = rotated.seal(SK, Bytes::from_static(PLAIN)).unwrap();
        assert!(fresh.starts_with(b"k8s:enc:aescbc:v1:new:"));
        assert_eq!(rotated.standing(&fresh), Standing::Active);
    }
}
