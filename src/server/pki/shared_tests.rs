use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use bytes::Bytes;

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

/// A store where a first server (its data dir returned) has published
/// the cluster's files.
async fn published() -> (tempfile::TempDir, Arc<dyn Backend>, tempfile::TempDir) {
    let (db, store) = store();
    let a = tempfile::tempdir().unwrap();
    let out = reconcile(
        &store,
        "tok",
        None,
        &set(a.path()),
        init_in(a.path().into()),
    )
    .await
    .unwrap();
    assert_eq!(out, Outcome::Published);
    (db, store, a)
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
    let out = reconcile(
        &store,
        "tok",
        None,
        &set(a.path()),
        init_in(a.path().into()),
    )
    .await
    .unwrap();
    assert_eq!(out, Outcome::Published);
    let never = || -> Result<(), PkiError> { panic!("the second server made its own CA") };
    let out = reconcile(&store, "tok", None, &set(b.path()), never)
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
    let out = reconcile(&store, "tok", None, &set(b.path()), never)
        .await
        .unwrap();
    assert_eq!(out, Outcome::Joined(0));
    let err = reconcile(&store, "nope", None, &set(c.path()), never)
        .await
        .unwrap_err();
    assert!(matches!(err, SharedError::WrongToken), "{err}");
    assert!(!c.path().join("tls").exists());
}

#[tokio::test]
async fn a_directory_of_another_cluster_is_refused_and_left_as_it_was() {
    let (_db, store, _a) = published().await;
    let b = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(b.path().join("tls")).unwrap();
    std::fs::write(b.path().join("tls/server-ca.crt"), "another CA").unwrap();
    let err = reconcile(&store, "tok", None, &set(b.path()), || Ok(()))
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
async fn an_encryption_key_is_made_once_for_every_server() {
    let (_db, store, a) = published().await;
    let b = tempfile::tempdir().unwrap();
    let key_of = |dir: &Path| set(dir).pop().unwrap();
    // Not asked for: nothing is made or shared.
    ensure_file(&store, "tok", &key_of(a.path()), || Ok(None))
        .await
        .unwrap();
    assert!(!key_of(a.path()).path.exists());
    // Asked for on both at once: one key, the same on both.
    let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let maker = |n: std::sync::Arc<std::sync::atomic::AtomicUsize>| {
        move || {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Some(format!("key-{i}").into_bytes()))
        }
    };
    reconcile(&store, "tok", None, &set(b.path()), || Ok(()))
        .await
        .unwrap();
    let (ka, kb) = (key_of(a.path()), key_of(b.path()));
    let (ra, rb) = tokio::join!(
        ensure_file(&store, "tok", &ka, maker(made.clone())),
        ensure_file(&store, "tok", &kb, maker(made.clone())),
    );
    ra.unwrap();
    rb.unwrap();
    let (one, two) = (
        std::fs::read(&ka.path).unwrap(),
        std::fs::read(&kb.path).unwrap(),
    );
    assert_eq!(one, two);
    let mode = std::fs::metadata(&ka.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A key changed on one server only is refused, not spread.
    std::fs::write(&kb.path, "another key").unwrap();
    let err = ensure_file(&store, "tok", &kb, || Ok(None))
        .await
        .unwrap_err();
    assert!(matches!(err, SharedError::Differs(_)), "{err}");
}

#[tokio::test]
async fn a_datastore_with_objects_but_no_record_is_not_given_a_new_ca() {
    let (_db, store) = store();
    store
        .create("/registry/configmaps/default/c", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let err = reconcile(&store, "tok", None, &set(fresh.path()), || {
        panic!("a CA was made for a datastore that has a cluster")
    })
    .await
    .unwrap_err();
    assert!(matches!(err, SharedError::Occupied), "{err}");
    // A server of that cluster (its files here) publishes them.
    let own = tempfile::tempdir().unwrap();
    init_in(own.path().into())().unwrap();
    let out = reconcile(&store, "tok", None, &set(own.path()), || Ok(()))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Published);
}

#[tokio::test]
async fn a_full_token_must_name_the_clusters_ca() {
    let (_db, store) = store();
    let a = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let err = reconcile(
        &store,
        "tok",
        Some(&wrong),
        &set(a.path()),
        init_in(a.path().into()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SharedError::CaMismatch { .. }), "{err}");
    assert!(store.get(KEY, None).await.unwrap().is_none(), "published");
    let right = crate::server::pki::ca_hash("ca cert");
    reconcile(&store, "tok", Some(&right), &set(a.path()), || Ok(()))
        .await
        .unwrap();
    let b = tempfile::tempdir().unwrap();
    let err = reconcile(&store, "tok", Some(&wrong), &set(b.path()), || Ok(()))
        .await
        .unwrap_err();
    assert!(matches!(err, SharedError::CaMismatch { .. }), "{err}");
    assert!(!b.path().join("tls").exists());
}

#[test]
fn the_cluster_secret_is_given_once_and_kept() {
    use crate::server::pki::{cluster_secret, keep_cluster_secret};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server/token");
    // Given: taken, not yet written (a refused start leaves no file).
    assert_eq!(
        cluster_secret(&path, Some("s3cret")).unwrap(),
        ("s3cret".into(), true)
    );
    assert!(!path.exists());
    keep_cluster_secret(&path, "s3cret").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "s3cret\n");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A full token's secret is the same secret; none given keeps the file's.
    let full = format!("K10{}::s3cret", "a".repeat(64));
    assert_eq!(
        cluster_secret(&path, Some(&full)).unwrap(),
        ("s3cret".into(), false)
    );
    assert_eq!(
        cluster_secret(&path, None).unwrap(),
        ("s3cret".into(), false)
    );
    // Another one is refused, and the file is left alone.
    let err = cluster_secret(&path, Some("other")).unwrap_err();
    assert!(err.to_string().contains("another token"), "{err}");
    assert!(cluster_secret(&path, Some("K10zz::x")).is_err());
    assert!(cluster_secret(&path, Some("a b")).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "s3cret\n");
    // None given on a fresh directory: a random one.
    let (made, unwritten) = cluster_secret(&dir.path().join("other/token"), None).unwrap();
    assert_eq!(made.len(), 32);
    assert!(unwritten);
}

#[tokio::test]
async fn two_first_servers_racing_end_with_one_ca() {
    let (_db, store) = store();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Each makes its own files; one record lands, the other takes it.
    let init_with = |dir: PathBuf, ca: &'static str| {
        move || {
            init_in(dir.clone())()?;
            std::fs::write(dir.join("tls/server-ca.crt"), ca).unwrap();
            Ok(())
        }
    };
    let (sa, sb) = (set(a.path()), set(b.path()));
    let (ra, rb) = tokio::join!(
        reconcile(
            &store,
            "tok",
            None,
            &sa,
            init_with(a.path().into(), "ca of a")
        ),
        reconcile(
            &store,
            "tok",
            None,
            &sb,
            init_with(b.path().into(), "ca of b")
        ),
    );
    let outcomes = [ra.unwrap(), rb.unwrap()];
    assert!(outcomes.contains(&Outcome::Published), "{outcomes:?}");
    let read = |d: &Path| std::fs::read_to_string(d.join("tls/server-ca.crt")).unwrap();
    assert_eq!(read(a.path()), read(b.path()));
}
