//! Secrets encryption at rest (`--secrets-encryption`,
//! `--encryption-provider-config`, `skiff secrets-encrypt`): a Secret's
//! value is nowhere in the database file or its WAL (its ciphertext is),
//! kubectl reads it back, ConfigMaps stay plaintext unless configured, a key
//! rotation and a restart keep it readable, a Secret stored before
//! encryption was turned on is encrypted by `reencrypt` (and gone from disk
//! after `--compact` and a clean stop), a user's file is reloaded when it
//! changes, and only cluster admins may drive any of it.

mod support;

use std::path::Path;
use std::process::Output;

use base64::Engine as _;
use support::{stderr, stdout, Server};

/// The raw bytes of the database and its WAL (either may hold a row).
fn raw_db(s: &Server) -> Vec<u8> {
    let db = s.data_dir().join("server/db/state.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let wal = Path::new(&format!("{}-wal", db.display())).to_path_buf();
    bytes.extend(std::fs::read(&wal).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn skiff(s: &Server, args: &[&str]) -> Output {
    skiff_as(s, &s.kubeconfig(), args)
}

fn skiff_as(s: &Server, kubeconfig: &Path, args: &[&str]) -> Output {
    let mut cmd = s.net().command(env!("CARGO_BIN_EXE_skiff"));
    cmd.arg("--root")
        .arg(s.dir().join("engine"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig);
    cmd.output().expect("run skiff")
}

fn skiff_ok(s: &Server, args: &[&str]) -> String {
    let out = skiff(s, args);
    assert!(
        out.status.success(),
        "skiff {args:?} failed: {}\n{}\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The value after `label` on the status's line that starts with it.
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
        .trim()
        .to_string()
}

fn password(s: &Server, name: &str) -> String {
    let b64 = s.kubectl_ok(&["get", "secret", name, "-o", "jsonpath={.data.password}"]);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn marker(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// SIGTERM, then wait until the process has exited (a zombie until the
/// harness reaps it at the next restart).
fn stop_gracefully(s: &Server) {
    let pid = s.pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command name in parentheses.
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        if state.is_none_or(|st| st.starts_with('Z') || st.starts_with('X')) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_encrypted_secret_is_unreadable_on_disk_and_readable_after_a_rotation() {
    let mut s = Server::start_with_args(&["--disable-agent", "--secrets-encryption"]);
    let config = s.data_dir().join("server/cred/encryption-config.json");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let secret = marker("hunter2-secret");
    let plain = marker("plain-configmap");
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s",
        &format!("--from-literal=password={secret}"),
    ]);
    s.kubectl_ok(&[
        "create",
        "configmap",
        "c",
        &format!("--from-literal=greeting={plain}"),
    ]);

    let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
    let raw = raw_db(&s);
    assert!(!contains(&raw, &secret), "the Secret's value is on disk");
    assert!(
        !contains(&raw, &b64),
        "the Secret's base64 value is on disk"
    );
    // Not vacuous: the ciphertext is there, and a ConfigMap is plaintext.
    assert!(contains(&raw, "k8s:enc:aescbc:v1:aescbckey-"));
    assert!(
        contains(&raw, &plain),
        "the ConfigMap is not stored as it is"
    );
    assert_eq!(password(&s, "s"), secret);

    let status = skiff_ok(&s, &["secrets-encrypt", "status"]);
    assert_eq!(field(&status, "Encryption Status:"), "Enabled", "{status}");
    assert_eq!(field(&status, "Active Key Type:"), "AES-CBC", "{status}");
    let first = field(&status, "Active Key:");
    assert!(first.starts_with("aescbckey-"), "{status}");
    assert!(
        field(&status, "Stored Objects:").contains(" 0 stale"),
        "{status}"
    );

    // Only cluster admins may look or rotate (non-resource URLs).
    let jane = s.user_kubeconfig("jane", "jane", &[]);
    for args in [
        &["secrets-encrypt", "status"][..],
        &["secrets-encrypt", "rotate-keys"],
    ] {
        let refused = skiff_as(&s, &jane, args);
        assert!(!refused.status.success());
        assert!(
            stderr(&refused).contains("forbidden"),
            "{}",
            stderr(&refused)
        );
    }

    let rotated = skiff_ok(&s, &["secrets-encrypt", "rotate-keys"]);
    assert!(rotated.contains("Older keys removed"), "{rotated}");
    let status = skiff_ok(&s, &["secrets-encrypt", "status"]);
    let second = field(&status, "Active Key:");
    assert_ne!(first, second, "{status}");
    assert!(
        !status.contains(&first),
        "the old key is still listed:\n{status}"
    );
    assert!(
        field(&status, "Stored Objects:").contains(" 0 stale"),
        "{status}"
    );
    assert_eq!(password(&s, "s"), secret);
    let raw = raw_db(&s);
    assert!(contains(&raw, &format!("k8s:enc:aescbc:v1:{second}:")));
    assert!(!contains(&raw, &secret) && !contains(&raw, &b64));
    // The key file never leaks into the answer.
    let json = skiff_ok(&s, &["secrets-encrypt", "status", "-o", "json"]);
    let file = std::fs::read_to_string(&config).unwrap();
    let v: serde_json::Value = serde_json::from_str(&file).unwrap();
    let key = v["resources"][0]["providers"][0]["aescbc"]["keys"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!json.contains(&key) && !rotated.contains(&key));

    s.restart();
    assert_eq!(password(&s, "s"), secret);
    let status = skiff_ok(&s, &["secrets-encrypt", "status"]);
    assert_eq!(field(&status, "Active Key:"), second, "{status}");
}

#[test]
fn a_secret_stored_before_encryption_is_encrypted_by_reencrypt() {
    let mut s = Server::start_with_args(&["--disable-agent"]);
    // Without encryption the commands say so.
    let status = skiff_ok(&s, &["secrets-encrypt", "status"]);
    assert_eq!(field(&status, "Encryption Status:"), "Disabled", "{status}");
    let refused = skiff(&s, &["secrets-encrypt", "reencrypt"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--secrets-encryption"),
        "{}",
        stderr(&refused)
    );

    let secret = marker("before-encryption");
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "early",
        &format!("--from-literal=password={secret}"),
    ]);
    // Before encryption the value is on disk as stored (so the check of
    // its absence below can fail).
    stop_gracefully(&s);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
    assert!(
        contains(&raw_db(&s), &b64),
        "the plaintext was never on disk"
    );
    s.restart_with_args(&["--disable-agent", "--secrets-encryption"]);
    assert_eq!(password(&s, "early"), secret);
    let status = skiff_ok(&s, &["secrets-encrypt", "status"]);
    let objects = field(&status, "Stored Objects:");
    assert!(!objects.contains(" 0 stale"), "{status}");

    let done = skiff_ok(&s, &["secrets-encrypt", "reencrypt", "--compact"]);
    assert!(done.contains(" 0 failed"), "{done}");
    assert!(done.contains("History compacted"), "{done}");
    let status = skiff_ok(&s, &["secrets-encrypt", "status"]);
    assert!(
        field(&status, "Stored Objects:").contains(" 0 stale"),
        "{status}"
    );
    assert_eq!(password(&s, "early"), secret);
    // The purge as documented: re-encrypted, history compacted (the old
    // version's bytes zeroed), then a clean stop checkpoints the WAL into
    // the file and removes it. The plaintext is gone from both.
    stop_gracefully(&s);
    let raw = raw_db(&s);
    assert!(contains(&raw, "k8s:enc:aescbc:v1:aescbckey-"));
    assert!(
        !contains(&raw, &secret) && !contains(&raw, &b64),
        "plaintext left on disk"
    );
    s.restart();
    assert_eq!(password(&s, "early"), secret);
    // rotate-keys is refused for a user's own configuration file.
    let own = s.dir().join("own.json");
    std::fs::copy(
        s.data_dir().join("server/cred/encryption-config.json"),
        &own,
    )
    .unwrap();
    s.restart_with_args(&[
        "--disable-agent",
        "--encryption-provider-config",
        own.to_str().unwrap(),
    ]);
    assert_eq!(password(&s, "early"), secret);
    let refused = skiff(&s, &["secrets-encrypt", "rotate-keys"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--encryption-provider-config"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn an_unsupported_provider_stops_the_start_without_echoing_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("encryption.yaml");
    let secret = "c2VjcmV0IGlzIHNlY3VyZSwgc2VjcmV0IGlzIHNlY3I=";
    std::fs::write(
        &config,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n- resources: [secrets]\n  providers:\n  \
             - secretbox: {{keys: [{{name: k1, secret: {secret}}}]}}\n"
        ),
    )
    .unwrap();
    let err = support::refused_start(
        dir.path(),
        &["--encryption-provider-config".as_ref(), config.as_os_str()],
    );
    assert!(
        err.contains("secretbox provider is not supported")
            && err.contains("aescbc, aesgcm, identity"),
        "{err}"
    );
    assert!(!err.contains(secret), "{err}");
}

fn gcm_config(keys: &[(&str, [u8; 32])]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(name, bytes)| {
            serde_json::json!({
                "name": name,
                "secret": base64::engine::general_purpose::STANDARD.encode(bytes),
            })
        })
        .collect();
    serde_json::json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{
            "resources": ["secrets", "configmaps"],
            "providers": [{"aesgcm": {"keys": keys}}, {"identity": {}}],
        }],
    })
    .to_string()
}

#[test]
fn a_users_aesgcm_configuration_is_followed_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("encryption.json");
    std::fs::write(&config, gcm_config(&[("one", [1; 32])])).unwrap();
    let s = Server::start_with_args(&[
        "--disable-agent",
        "--encryption-provider-config",
        config.to_str().unwrap(),
    ]);
    let value = marker("gcm-configmap");
    s.kubectl_ok(&[
        "create",
        "configmap",
        "c",
        &format!("--from-literal=v={value}"),
    ]);
    let raw = raw_db(&s);
    assert!(contains(&raw, "k8s:enc:aesgcm:v1:one:"));
    assert!(
        !contains(&raw, &value),
        "the ConfigMap is stored in the clear"
    );
    let read = |s: &Server| s.kubectl_ok(&["get", "configmap", "c", "-o", "jsonpath={.data.v}"]);
    assert_eq!(read(&s).trim(), value);

    // A new key first: the server reloads the file by itself.
    std::fs::write(&config, gcm_config(&[("two", [2; 32]), ("one", [1; 32])])).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = skiff_ok(&s, &["secrets-encrypt", "status"]);
        if field(&status, "Active Key:") == "two" {
            assert_eq!(field(&status, "Active Key Type:"), "AES-GCM");
            assert!(field(&status, "Configuration:").contains("--encryption-provider-config"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not reloaded:\n{status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // A broken file keeps the configuration in force.
    std::fs::write(&config, "resources: [").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !s
        .logs()
        .contains("the changed encryption configuration is not used")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no error logged:\n{}",
            s.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let done = skiff_ok(&s, &["secrets-encrypt", "reencrypt"]);
    assert!(done.contains(" 0 failed"), "{done}");
    let status = skiff_ok(&s, &["secrets-encrypt", "status"]);
    assert_eq!(field(&status, "Active Key:"), "two", "{status}");
    assert!(
        field(&status, "Stored Objects:").contains(" 0 stale"),
        "{status}"
    );
    assert!(contains(&raw_db(&s), "k8s:enc:aesgcm:v1:two:"));
    assert_eq!(read(&s).trim(), value);
    // Key material never reaches the log.
    for key in [[1u8; 32], [2; 32]] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        assert!(!s.logs().contains(&b64));
    }
}
