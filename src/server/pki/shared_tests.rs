use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use super::*;
use crate::server::store::sqlite::SqliteBackend;

fn set(dir: &Path) -> Vec<SharedFile> {
    files(
        &dir.join("tls"),
        &dir.join("cred/tokens.csv"),
        &dir.join("cred/encryption-config.json"),
    )
}

/// What a first server's start makes: the CAs, the SA key, the tokens.
fn init_in(dir: PathBuf) -> impl FnOnce() -> Result<(), PkiError> + Send + 'static {
    move || {
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        std::fs::create_dir_all(dir.join("cred")).unwrap();
        for (name, body) in [
            ("tls/server-ca.crt", "ca cert"),
            ("tls/server-ca.key", "ca key"),
            ("tls/kubelet-ca.crt", "kubelet cert"),
            ("tls/kubelet-ca.key", "kubelet key"),
            ("tls/service-account.key", "sa key"),
            ("cred/tokens.csv", "t,admin,admin\n"),
        ] {
            std::fs::write(dir.join(name), body).unwrap();
        }
        Ok(())
    }
}

fn store() -> (tempfile::TempDir, Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Backend> = SqliteBackend::open(&dir.path().join("state.db")).unwrap();
    (dir, s)
}

#[test]
fn a_record_opens_only_with_its_secret_and_hides_its_contents() {
    let mut contents = BTreeMap::new();
    contents.insert("server-ca.key".to_string(), b"-----BEGIN KEY-----".to_vec());
    let sealed = seal("s3cret", &contents).unwrap();
    let text = String::from_utf8_lossy(&sealed);
    assert!(!text.contains("BEGIN"), "{text}");
    assert_eq!(open("s3cret", &sealed).unwrap(), contents);
    assert!(matches!(
        open("other", &sealed),
        Err(SharedError::WrongToken)
    ));
    // A flipped byte of the ciphertext is caught, not read as other files.
    let mut record: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    let mut data = B64.decode(record["data"].as_str().unwrap()).unwrap();
    data[0] ^= 1;
    record["data"] = B64.encode(data).into();
    let tampered = serde_json::to_vec(&record).unwrap();
    assert!(matches!(
        open("s3cret", &tampered),
        Err(SharedError::WrongToken)
    ));
    assert!(matches!(
        open("s3cret", b"{}"),
        Err(SharedError::Corrupt(_))
    ));
}

#[tokio::test]
async fn a_second_server_takes_the_firsts_files_and_a_wrong_token_is_refused() {
    let (_db, store) = store();
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let out = reconcile(&store, "tok", &set(a.path()), init_in(a.path().into()))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Published);
    let never = || -> Result<(), PkiError> { panic!("the second server made its own CA") };
    let out = reconcile(&store, "tok", &set(b.path()), never)
        .await
        .unwrap();
    assert_eq!(out, Outcome::Joined(6));
    for f in set(b.path()).iter().filter(|f| f.path.exists()) {
        let theirs = a.path().join(f.path.strip_prefix(b.path()).unwrap());
        assert_eq!(
            std::fs::read(&f.path).unwrap(),
            std::fs::read(theirs).unwrap()
        );
        let mode = std::fs::metadata(&f.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, f.mode, "{}", f.path.display());
    }
    // Joining again changes nothing.
    let out = reconcile(&store, "tok", &set(b.path()), never)
        .await
        .unwrap();
    assert_eq!(out, Outcome::Joined(0));
    let err = reconcile(&store, "nope", &set(c.path()), never)
        .await
        .unwrap_err();
    assert!(matches!(err, SharedError::WrongToken), "{err}");
    assert!(!c.path().join("tls").exists());
}

#[tokio::test]
async fn a_directory_of_another_cluster_is_refused_and_left_as_it_was() {
    let (_db, store) = store();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    reconcile(&store, "tok", &set(a.path()), init_in(a.path().into()))
        .await
        .unwrap();
    std::fs::create_dir_all(b.path().join("tls")).unwrap();
    std::fs::write(b.path().join("tls/server-ca.crt"), "another CA").unwrap();
    let err = reconcile(&store, "tok", &set(b.path()), || Ok(()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SharedError::Differs(p) if p.ends_with("server-ca.crt")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(b.path().join("tls/server-ca.crt")).unwrap(),
        "another CA"
    );
}

#[tokio::test]
async fn keys_made_after_the_record_are_added_for_the_next_server() {
    let (_db, store) = store();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    reconcile(&store, "tok", &set(a.path()), init_in(a.path().into()))
        .await
        .unwrap();
    assert_eq!(publish_new(&store, "tok", &set(a.path())).await.unwrap(), 0);
    std::fs::write(a.path().join("cred/encryption-config.json"), "{}").unwrap();
    assert_eq!(publish_new(&store, "tok", &set(a.path())).await.unwrap(), 1);
    reconcile(&store, "tok", &set(b.path()), || Ok(()))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(b.path().join("cred/encryption-config.json")).unwrap(),
        "{}"
    );
}

#[test]
fn the_cluster_secret_is_given_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server/token");
    // Given bare, written bare (the CA hash comes later), 0600.
    assert_eq!(
        crate::server::pki::cluster_secret(&path, Some("s3cret")).unwrap(),
        "s3cret"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "s3cret\n");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A full token's secret is the same secret; none given keeps the file's.
    let full = format!("K10{}::s3cret", "a".repeat(64));
    assert_eq!(
        crate::server::pki::cluster_secret(&path, Some(&full)).unwrap(),
        "s3cret"
    );
    assert_eq!(
        crate::server::pki::cluster_secret(&path, None).unwrap(),
        "s3cret"
    );
    // Another one is refused, and the file is left alone.
    let err = crate::server::pki::cluster_secret(&path, Some("other")).unwrap_err();
    assert!(err.to_string().contains("another token"), "{err}");
    assert!(crate::server::pki::cluster_secret(&path, Some("K10zz::x")).is_err());
    assert!(crate::server::pki::cluster_secret(&path, Some("a b")).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "s3cret\n");
    // None given on a fresh directory: a random one, kept.
    let other = dir.path().join("other/token");
    let made = crate::server::pki::cluster_secret(&other, None).unwrap();
    assert_eq!(made.len(), 32);
    assert_eq!(
        crate::server::pki::cluster_secret(&other, None).unwrap(),
        made
    );
}
