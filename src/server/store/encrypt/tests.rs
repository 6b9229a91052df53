//! The wrapper over a real SQLite store: the raw store holds ciphertext,
//! the wrapper hands out plaintext on every read path, other prefixes are
//! untouched, and re-encryption after a rotation rewrites exactly the stale
//! values.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::config::{self, EncryptionConfiguration, KeyConfig};
use super::manage::{Manager, Options};
use super::transform::ENCRYPTED_MARKER;
use super::Encrypted;
use crate::server::store::sqlite::SqliteBackend;
use crate::server::store::{Backend, Error, EventKind, ListOptions, WatchReceiver};

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // 32 bytes
const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="; // 32 bytes

fn key(name: &str, secret: &str) -> KeyConfig {
    KeyConfig {
        name: name.into(),
        secret: secret.into(),
    }
}

fn transformers(cfg: EncryptionConfiguration) -> config::Transformers {
    config::build(cfg).unwrap()
}

fn open() -> (tempfile::TempDir, Arc<SqliteBackend>, Encrypted) {
    let dir = tempfile::tempdir().unwrap();
    let raw = SqliteBackend::open(&dir.path().join("db/state.db")).unwrap();
    let enc = Encrypted::new(
        raw.clone(),
        transformers(EncryptionConfiguration::generated(key("k1", K1))),
    );
    (dir, raw, enc)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next(rx: &mut WatchReceiver) -> Result<crate::server::store::Event, Error> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("watch event timed out")
        .expect("watch ended")
}

const S: &str = "/registry/secrets/default/s";
const CM: &str = "/registry/configmaps/default/c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_store_holds_ciphertext_and_the_wrapper_plaintext() {
    let (_dir, raw, enc) = open();
    let created = enc.create(S, b(r#"{"v":1}"#)).await.unwrap();
    assert_eq!(created.value, b(r#"{"v":1}"#));
    enc.create(CM, b(r#"{"c":1}"#)).await.unwrap();

    let stored = raw.get(S, None).await.unwrap().unwrap();
    assert!(stored.value.starts_with(b"k8s:enc:aescbc:v1:k1:"));
    assert!(!String::from_utf8_lossy(&stored.value).contains(r#""v":1"#));
    // Other resources are stored as they are.
    assert_eq!(
        raw.get(CM, None).await.unwrap().unwrap().value,
        b(r#"{"c":1}"#)
    );

    assert_eq!(
        enc.get(S, None).await.unwrap().unwrap().value,
        b(r#"{"v":1}"#)
    );
    let updated = enc
        .update(S, b(r#"{"v":2}"#), created.mod_revision)
        .await
        .unwrap();
    assert_eq!(updated.value, b(r#"{"v":2}"#));
    // Reads at an older revision decrypt the older version too.
    let old = enc
        .get(S, Some(created.mod_revision))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.value, b(r#"{"v":1}"#));
    let listed = enc
        .list("/registry/", ListOptions::default())
        .await
        .unwrap();
    let values: Vec<_> = listed.items.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(values, vec![b(r#"{"c":1}"#), b(r#"{"v":2}"#)]);
    let deleted = enc.delete(S, None).await.unwrap();
    assert_eq!(deleted.value, b(r#"{"v":2}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_decrypt_history_and_live_events_with_their_prev() {
    let (_dir, _raw, enc) = open();
    let a = enc.create(S, b("one")).await.unwrap();
    let mut rx = enc.watch("/registry/secrets/", 0).await.unwrap();
    let ev = next(&mut rx).await.unwrap();
    assert_eq!(
        (ev.kind, ev.kv.value.clone()),
        (EventKind::Create, b("one"))
    );
    enc.update(S, b("two"), a.mod_revision).await.unwrap();
    let ev = next(&mut rx).await.unwrap();
    assert_eq!(ev.kind, EventKind::Update);
    assert_eq!(ev.kv.value, b("two"));
    assert_eq!(ev.prev.unwrap().value, b("one"));
    enc.delete(S, None).await.unwrap();
    let ev = next(&mut rx).await.unwrap();
    assert_eq!((ev.kind, ev.kv.value), (EventKind::Delete, b("two")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecryptable_value_fails_its_reads_only() {
    let (_dir, raw, enc) = open();
    enc.create(S, b("x")).await.unwrap();
    enc.create(CM, b("c")).await.unwrap();
    // The key that wrote it is gone.
    enc.swap(transformers(EncryptionConfiguration::generated(key(
        "k2", K2,
    ))))
    .await;
    let e = enc.get(S, None).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(S) && msg.contains("\"k1\""), "{msg}");
    assert!(!msg.contains(K1) && !msg.contains(K2));
    assert!(enc
        .list("/registry/secrets/", ListOptions::default())
        .await
        .is_err());
    assert_eq!(enc.get(CM, None).await.unwrap().unwrap().value, b("c"));
    // A watch ends with the error as its last item.
    let mut rx = enc.watch("/registry/secrets/", 0).await.unwrap();
    assert!(matches!(next(&mut rx).await, Err(Error::Backend(_))));
    assert!(rx.recv().await.is_none());
    // The raw store is untouched.
    assert!(raw
        .get(S, None)
        .await
        .unwrap()
        .unwrap()
        .value
        .starts_with(ENCRYPTED_MARKER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencrypt_after_rotation_rewrites_exactly_the_stale_values() {
    let (_dir, raw, enc) = open();
    // One written before encryption (plaintext), two under k1.
    raw.create("/registry/secrets/a/plain", b("p"))
        .await
        .unwrap();
    enc.create("/registry/secrets/a/one", b("1")).await.unwrap();
    enc.create("/registry/secrets/a/two", b("2")).await.unwrap();
    enc.create(CM, b("c")).await.unwrap();
    let census = enc.census().await.unwrap();
    assert_eq!((census.active, census.stale, census.unreadable), (2, 1, 0));

    let rotated = EncryptionConfiguration::generated(key("k1", K1)).with_first_key(key("k2", K2));
    enc.swap(transformers(rotated)).await;
    enc.create("/registry/secrets/a/three", b("3"))
        .await
        .unwrap();
    let census = enc.census().await.unwrap();
    assert_eq!((census.active, census.stale), (1, 3));

    let cm_rev = raw.get(CM, None).await.unwrap().unwrap().mod_revision;
    let done = enc.reencrypt().await.unwrap();
    assert_eq!(
        (done.rewritten, done.unchanged, done.skipped, done.failed),
        (3, 1, 0, 0)
    );
    let census = enc.census().await.unwrap();
    assert_eq!((census.active, census.stale), (4, 0));
    for (name, v) in [("plain", "p"), ("one", "1"), ("two", "2"), ("three", "3")] {
        let k = format!("/registry/secrets/a/{name}");
        assert!(raw
            .get(&k, None)
            .await
            .unwrap()
            .unwrap()
            .value
            .starts_with(b"k8s:enc:aescbc:v1:k2:"));
        assert_eq!(enc.get(&k, None).await.unwrap().unwrap().value, b(v));
    }
    // Not configured: never rewritten.
    assert_eq!(
        raw.get(CM, None).await.unwrap().unwrap().mod_revision,
        cm_rev
    );
    // Nothing left to do.
    assert_eq!(enc.reencrypt().await.unwrap().rewritten, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_keys_rewrites_the_file_and_drops_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let raw = SqliteBackend::open(&dir.path().join("db/state.db")).unwrap();
    let generated = dir.path().join("cred/encryption-config.json");
    let opts = Options {
        secrets_encryption: true,
        provider_config: None,
        generated: generated.clone(),
        shared: false,
    };
    let m = Manager::setup(&opts, raw.clone()).await.unwrap().unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        (mode(&generated), mode(generated.parent().unwrap())),
        (0o600, 0o700)
    );
    let first = m.status().await.unwrap().active_key.unwrap().name;
    let written = m.backend().create(S, b("hunter2")).await.unwrap();

    let r = m.rotate_keys().await.unwrap();
    assert_ne!(r.new_key, first);
    assert!(r.old_keys_removed);
    assert_eq!((r.reencrypted.rewritten, r.objects.stale), (1, 0));
    let status = m.status().await.unwrap();
    assert_eq!(status.active_key.unwrap().name, r.new_key);
    assert_eq!(status.keys.len(), 1);
    assert_eq!(
        m.backend().get(S, None).await.unwrap().unwrap().value,
        b("hunter2")
    );
    // The file in force is the one on disk: a restart reads it back.
    let again = Manager::setup(&opts, raw.clone()).await.unwrap().unwrap();
    assert_eq!(
        again.backend().get(S, None).await.unwrap().unwrap().value,
        b("hunter2")
    );
    let text = std::fs::read_to_string(&generated).unwrap();
    assert!(!text.contains(&first), "{text}");
    // The version written under the dropped key is history no one can
    // read back any more: compacted before the key went.
    assert!(matches!(
        raw.get(S, Some(written.mod_revision)).await,
        Err(Error::Compacted { .. })
    ));

    // A user's own file is not rewritten.
    let custom = Options {
        secrets_encryption: false,
        provider_config: Some(generated.clone()),
        generated: dir.path().join("unused.json"),
        shared: false,
    };
    let c = Manager::setup(&custom, raw.clone()).await.unwrap().unwrap();
    let e = c.rotate_keys().await.unwrap_err().to_string();
    assert!(e.contains("--encryption-provider-config"), "{e}");

    // Without its file, the stored ciphertext is not met with a new key.
    std::fs::remove_file(&generated).unwrap();
    let e = Manager::setup(&opts, raw.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is missing: restore it"), "{e}");
    assert!(!generated.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_reloaded_and_a_broken_one_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let raw = SqliteBackend::open(&dir.path().join("db/state.db")).unwrap();
    let path = dir.path().join("enc.json");
    super::manage::write_config_for_test(&path, &EncryptionConfiguration::generated(key("k1", K1)))
        .unwrap();
    let opts = Options {
        secrets_encryption: false,
        provider_config: Some(path.clone()),
        generated: dir.path().join("unused.json"),
        shared: false,
    };
    let m = Manager::setup(&opts, raw).await.unwrap().unwrap();
    assert!(!m.reload_if_changed().await);
    m.backend().create(S, b("x")).await.unwrap();

    std::fs::write(&path, "apiVersion: nope\n").unwrap();
    assert!(!m.reload_if_changed().await);
    assert_eq!(m.status().await.unwrap().active_key.unwrap().name, "k1");

    let rotated = EncryptionConfiguration::generated(key("k1", K1)).with_first_key(key("k2", K2));
    std::fs::write(&path, serde_json::to_string(&rotated).unwrap()).unwrap();
    assert!(m.reload_if_changed().await);
    let status = m.status().await.unwrap();
    assert_eq!(status.active_key.unwrap().name, "k2");
    assert_eq!((status.objects.active, status.objects.stale), (0, 1));
    assert_eq!(
        m.backend().get(S, None).await.unwrap().unwrap().value,
        b("x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_version_under_a_dropped_key_does_not_end_a_watch() {
    let (_dir, _raw, enc) = open();
    let created = enc.create(S, b("one")).await.unwrap();
    let both = EncryptionConfiguration::generated(key("k1", K1)).with_first_key(key("k2", K2));
    enc.swap(transformers(both)).await;
    enc.update(S, b("two"), created.mod_revision).await.unwrap();
    enc.swap(transformers(EncryptionConfiguration::generated(key(
        "k2", K2,
    ))))
    .await;
    // Replayed from history: the new version reads, the old one is left out.
    let mut rx = enc
        .watch("/registry/secrets/", created.mod_revision)
        .await
        .unwrap();
    let ev = next(&mut rx).await.unwrap();
    assert_eq!((ev.kv.value, ev.prev), (b("two"), None));
}
