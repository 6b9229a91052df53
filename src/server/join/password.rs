//! Node passwords (k3s's): each agent keeps a random password of its own
//! (`<data-dir>/agent/node-password`) and sends it with every join; the
//! server keeps its salted hash in the Secret
//! `kube-system/<node>.node-password.skiff`. A node name is held by the box
//! whose password was recorded first, so a leaked join token does not let
//! another box take over an existing node's name (and with it that node's
//! pods and their Secrets).
//!
//! A name is free again once its Node is deleted (`kubectl delete node`),
//! as under k3s: the next join with that name records its own password. A
//! Node that exists with no password recorded (the server's own, or one
//! registered before) is held by whoever registered it.

use sha2::{Digest, Sha256};

pub const SUFFIX: &str = ".node-password.skiff";
pub const SECRET_TYPE: &str = "skiff.io/node-password";
/// The data key of the hash.
pub const KEY: &str = "hash";
/// What a password may be: long enough not to be guessed, short enough
/// not to be a burden.
pub const MIN_LEN: usize = 16;
pub const MAX_LEN: usize = 256;

/// The Secret holding node `node`'s password hash.
pub fn secret_name(node: &str) -> String {
    format!("{node}{SUFFIX}")
}

/// `sha256$<salt hex>$<digest hex>` of `password` with a fresh salt.
pub fn hash(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    format!("sha256${}${}", hex::encode(salt), digest(&salt, password))
}

fn digest(salt: &[u8], password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

/// Whether `password` is the one `stored` was made from.
pub fn matches(stored: &str, password: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("sha256"), Some(salt), Some(want), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(salt) = hex::decode(salt) else {
        return false;
    };
    super::tokens::same_secret(&digest(&salt, password), want)
}

/// Whether `password` is one an agent may send.
pub fn acceptable(password: &str) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&password.len()) && password.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_its_own_hash_only() {
        let h = hash("correct horse battery staple");
        assert!(matches(&h, "correct horse battery staple"));
        assert!(!matches(&h, "correct horse battery stapl"));
        // Salted: the same password hashes differently each time.
        assert_ne!(h, hash("correct horse battery staple"));
        for bad in ["", "sha256$zz$00", "md5$00$00", "sha256$00$00$00"] {
            assert!(!matches(bad, "x"), "{bad}");
        }
        assert!(acceptable(&"a".repeat(32)));
        assert!(!acceptable("short"));
        assert!(!acceptable(&format!("{}\n", "a".repeat(32))));
    }
}
