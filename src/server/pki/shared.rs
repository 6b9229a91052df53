//! The cluster's secrets, shared by every server of a datastore that
//! several servers use (PostgreSQL): the CAs and their keys, the
//! service-account signing key, the static bearer tokens and the secrets'
//! encryption keys. The first server seals them into one record of the
//! datastore with a key derived from the cluster's token (PBKDF2-SHA256,
//! then AES-256-GCM, the record's key as associated data); a server that
//! starts later with the same token opens the record and writes the files
//! into its own data directory before its certificates are loaded, so
//! every server signs with the same CA and accepts the same tokens. Someone
//! who can read the database but lacks the token learns nothing of them.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::files::{ensure_dir, write_atomic, PRIVATE, PUBLIC};
use super::PkiError;
use crate::server::store::{Backend, Error as StoreError};

/// The record's key: outside `/registry/`, so no API list ever shows it.
pub const KEY: &str = "/bootstrap/cluster";
/// PBKDF2 rounds: a guessed token costs this many HMACs to try, and a
/// server on a shared datastore pays them once per start (~0.1 s).
const ROUNDS: u32 = 200_000;
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error(
        "the datastore already holds a cluster whose secrets are sealed with another token: \
         start this server with that cluster's token (--token, or SKIFF_TOKEN; the first \
         server's is in its <data-dir>/server/token)"
    )]
    WrongToken,
    #[error("the cluster's shared secrets in the datastore ({KEY}) are unreadable: {0}")]
    Corrupt(String),
    #[error(
        "{} differs from the copy the servers of this datastore share: this data directory \
         belongs to another cluster, or the file was changed on this server only (such \
         changes are not shared); put the shared copy back (from another server of the \
         cluster), or start this server on a data directory of its own cluster",
        .0.display()
    )]
    Differs(PathBuf),
    #[error(
        "the datastore already holds a cluster's objects but not its shared CAs and keys: \
         start a server of that cluster (on its own data directory, with this token) first, \
         which puts them there; a new CA would make what is stored unusable"
    )]
    Occupied,
    #[error(
        "--token names the cluster CA with sha256 {want}, but this cluster's is {got}: it is \
         another cluster's token"
    )]
    CaMismatch { want: String, got: String },
    #[error(transparent)]
    Files(#[from] PkiError),
    #[error("the datastore: {0}")]
    Store(#[from] StoreError),
}

/// One file of the shared set: its name in the record, where it lives, and
/// the mode it is written with.
#[derive(Debug, Clone)]
pub struct SharedFile {
    pub name: &'static str,
    pub path: PathBuf,
    pub mode: u32,
}

/// The shared set, in the server's data directory (`tls`, `cred`).
pub fn files(tls: &Path, tokens_csv: &Path, encryption_config: &Path) -> Vec<SharedFile> {
    let tls_file = |name: &'static str, mode| SharedFile {
        name,
        path: tls.join(name),
        mode,
    };
    vec![
        tls_file(super::CA_CERT_FILE, PUBLIC),
        tls_file(super::CA_KEY_FILE, PRIVATE),
        tls_file(super::KUBELET_CA_CERT_FILE, PUBLIC),
        tls_file(super::KUBELET_CA_KEY_FILE, PRIVATE),
        tls_file(super::SA_KEY_FILE, PRIVATE),
        SharedFile {
            name: "tokens.csv",
            path: tokens_csv.to_path_buf(),
            mode: PRIVATE,
        },
        SharedFile {
            name: "encryption-config.json",
            path: encryption_config.to_path_buf(),
            mode: PRIVATE,
        },
    ]
}

/// The record as stored: what it takes to derive the key, and the sealed
/// files.
#[derive(Serialize, Deserialize)]
struct Sealed {
    version: u32,
    rounds: u32,
    salt: String,
    nonce: String,
    data: String,
}

fn derive(secret: &str, salt: &[u8], rounds: u32) -> Result<Aes256Gcm, SharedError> {
    let rounds = NonZeroU32::new(rounds).ok_or_else(|| SharedError::Corrupt("0 rounds".into()))?;
    let mut key = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        secret.as_bytes(),
        &mut key,
    );
    Aes256Gcm::new_from_slice(&key).map_err(|e| SharedError::Corrupt(e.to_string()))
}

/// Seal `contents` (name → bytes) with `secret`.
pub fn seal(secret: &str, contents: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, SharedError> {
    let plain: BTreeMap<&str, String> = contents
        .iter()
        .map(|(k, v)| (k.as_str(), B64.encode(v)))
        .collect();
    let plain = serde_json::to_vec(&plain).map_err(|e| SharedError::Corrupt(e.to_string()))?;
    let salt: [u8; 16] = rand::random();
    let nonce: [u8; 12] = rand::random();
    let cipher = derive(secret, &salt, ROUNDS)?;
    let data = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: &plain,
                aad: KEY.as_bytes(),
            },
        )
        .map_err(|_| SharedError::Corrupt("sealing failed".into()))?;
    let sealed = Sealed {
        version: VERSION,
        rounds: ROUNDS,
        salt: B64.encode(salt),
        nonce: B64.encode(nonce),
        data: B64.encode(data),
    };
    serde_json::to_vec(&sealed).map_err(|e| SharedError::Corrupt(e.to_string()))
}

/// Open a record sealed by [`seal`]; `WrongToken` when `secret` is not the
/// one it was sealed with.
pub fn open(secret: &str, record: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, SharedError> {
    let bad = |what: &str| SharedError::Corrupt(what.to_string());
    let sealed: Sealed = serde_json::from_slice(record).map_err(|e| bad(&e.to_string()))?;
    if sealed.version != VERSION {
        return Err(bad(&format!("version {} is not known", sealed.version)));
    }
    // A record written by someone else must not make every start spin.
    if sealed.rounds > 10 * ROUNDS || sealed.rounds < 10_000 {
        return Err(bad("PBKDF2 rounds out of bounds"));
    }
    let salt = B64.decode(&sealed.salt).map_err(|_| bad("salt"))?;
    let nonce: [u8; 12] = B64
        .decode(&sealed.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| bad("nonce"))?;
    let data = B64.decode(&sealed.data).map_err(|_| bad("data"))?;
    let plain = derive(secret, &salt, sealed.rounds)?
        .decrypt(
            (&nonce).into(),
            Payload {
                msg: &data,
                aad: KEY.as_bytes(),
            },
        )
        .map_err(|_| SharedError::WrongToken)?;
    let encoded: BTreeMap<String, String> =
        serde_json::from_slice(&plain).map_err(|e| bad(&e.to_string()))?;
    encoded
        .into_iter()
        .map(|(k, v)| Ok((k, B64.decode(v).map_err(|_| bad("file contents"))?)))
        .collect()
}

fn read_local(files: &[SharedFile]) -> Result<BTreeMap<String, Vec<u8>>, SharedError> {
    let mut out = BTreeMap::new();
    for f in files {
        match std::fs::read(&f.path) {
            Ok(bytes) => {
                out.insert(f.name.to_string(), bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PkiError::io("reading", &f.path, e).into()),
        }
    }
    Ok(out)
}

/// Write the record's files that are missing here; a file here that
/// differs from the record's is refused (this directory is another
/// cluster's), and then nothing is written.
fn materialize(
    files: &[SharedFile],
    shared: &BTreeMap<String, Vec<u8>>,
) -> Result<usize, SharedError> {
    let local = read_local(files)?;
    let mut missing = Vec::new();
    for f in files {
        let Some(want) = shared.get(f.name) else {
            continue;
        };
        match local.get(f.name) {
            Some(have) if have == want => {}
            Some(_) => return Err(SharedError::Differs(f.path.clone())),
            None => missing.push((f, want)),
        }
    }
    for (f, want) in &missing {
        write_file(f, want)?;
    }
    Ok(missing.len())
}

fn write_file(f: &SharedFile, bytes: &[u8]) -> Result<(), SharedError> {
    if let Some(dir) = f.path.parent() {
        ensure_dir(dir, 0o700)?;
    }
    write_atomic(&f.path, bytes, f.mode)?;
    Ok(())
}

/// The CA named by a full token must be the one in `shared`.
fn check_ca(shared: &BTreeMap<String, Vec<u8>>, want: Option<&str>) -> Result<(), SharedError> {
    let Some(want) = want else { return Ok(()) };
    let ca = shared
        .get(super::CA_CERT_FILE)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let got = super::ca_hash(&ca);
    if got.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(SharedError::CaMismatch {
            want: want.to_string(),
            got,
        })
    }
}

/// What [`reconcile`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This server made the cluster's secrets and published them.
    Published,
    /// They came from the datastore (`n` files written here).
    Joined(usize),
}

/// Make this data directory hold the cluster's shared secrets: the
/// datastore's when it has them; else the ones `init` makes here (or finds
/// from an earlier start), published for the next servers. Two first
/// servers racing: the one whose record lands first wins, the other takes
/// its files when its own were new, and stops when they were not.
/// `want_ca`: the CA hash a full token names, checked before anything is
/// written or published.
pub async fn reconcile<F>(
    store: &Arc<dyn Backend>,
    secret: &str,
    want_ca: Option<&str>,
    files: &[SharedFile],
    init: F,
) -> Result<Outcome, SharedError>
where
    F: FnOnce() -> Result<(), PkiError> + Send + 'static,
{
    if let Some(kv) = store.get(KEY, None).await? {
        return join(secret, want_ca, files, kv.value).await;
    }
    let had_any = files.iter().any(|f| f.path.exists());
    // Objects without the record: a cluster from before the record, or
    // one whose record was removed. Only a server that holds its CA may
    // publish it.
    if !had_any && store.count("/registry/").await? > 0 {
        return Err(SharedError::Occupied);
    }
    let set = files.to_vec();
    let secret_owned = secret.to_string();
    let want = want_ca.map(str::to_string);
    let sealed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, SharedError> {
        init()?;
        let local = read_local(&set)?;
        check_ca(&local, want.as_deref())?;
        seal(&secret_owned, &local)
    })
    .await
    .map_err(|e| SharedError::Corrupt(format!("sealing: {e}")))??;
    match store.create(KEY, Bytes::from(sealed)).await {
        Ok(_) => Ok(Outcome::Published),
        Err(StoreError::AlreadyExists { .. }) => {
            let Some(kv) = store.get(KEY, None).await? else {
                return Err(SharedError::Corrupt("the record vanished".into()));
            };
            if !had_any {
                // Ours were made a moment ago and never used: theirs win.
                for f in files {
                    let _ = std::fs::remove_file(&f.path);
                }
            }
            join(secret, want_ca, files, kv.value).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn join(
    secret: &str,
    want_ca: Option<&str>,
    files: &[SharedFile],
    record: Bytes,
) -> Result<Outcome, SharedError> {
    let secret = secret.to_string();
    let want = want_ca.map(str::to_string);
    let files = files.to_vec();
    tokio::task::spawn_blocking(move || {
        let shared = open(&secret, &record)?;
        check_ca(&shared, want.as_deref())?;
        materialize(&files, &shared).map(Outcome::Joined)
    })
    .await
    .map_err(|e| SharedError::Corrupt(format!("opening: {e}")))?
}

/// Make `file` one of the shared set, the same on every server: the
/// record's copy when it has one (written here when missing; a different
/// one here is refused), else this server's, or one `make` makes (None:
/// none is needed), put in
/// the record first (compare-and-swap: of two servers making one at once,
/// one copy wins and both use it). For the secrets' encryption keys,
/// made after the record when encryption is turned on later.
pub async fn ensure_file<M>(
    store: &Arc<dyn Backend>,
    secret: &str,
    file: &SharedFile,
    make: M,
) -> Result<(), SharedError>
where
    M: Fn() -> Result<Option<Vec<u8>>, SharedError> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    for _ in 0..8 {
        let Some(kv) = store.get(KEY, None).await? else {
            return Err(SharedError::Corrupt("the record is missing".into()));
        };
        let (secret_o, file_o, value, make_o) = (
            secret.to_string(),
            file.clone(),
            kv.value.clone(),
            make.clone(),
        );
        let step = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, SharedError> {
            let mut shared = open(&secret_o, &value)?;
            let local = read_local(std::slice::from_ref(&file_o))?.remove(file_o.name);
            match (shared.get(file_o.name), local) {
                (Some(want), Some(have)) if *want == have => Ok(None),
                (Some(_), Some(_)) => Err(SharedError::Differs(file_o.path.clone())),
                (Some(want), None) => write_file(&file_o, want).map(|()| None),
                (None, have) => {
                    let bytes = match have {
                        Some(b) => b,
                        None => match make_o()? {
                            Some(b) => b,
                            // Nothing to share.
                            None => return Ok(None),
                        },
                    };
                    shared.insert(file_o.name.to_string(), bytes);
                    seal(&secret_o, &shared).map(Some)
                }
            }
        })
        .await
        .map_err(|e| SharedError::Corrupt(format!("sealing: {e}")))??;
        let Some(sealed) = step else {
            return Ok(());
        };
        match store
            .update(KEY, Bytes::from(sealed), kv.mod_revision)
            .await
        {
            // In the record now: written here by the next pass if made.
            Ok(_) => continue,
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(SharedError::Corrupt(format!(
        "{KEY} kept changing while {} was added",
        file.name
    )))
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
