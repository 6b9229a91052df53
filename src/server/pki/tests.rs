use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn opts(dir: &Path, extra: &[&str]) -> PkiOptions {
    PkiOptions {
        tls_dir: dir.join("server/tls"),
        extra_sans: extra.iter().map(|s| s.to_string()).collect(),
        cluster: Default::default(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn cert_sans(pem: &str) -> sans::SanSet {
    let der = certs::first_cert_der(pem).unwrap();
    let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
    sans::SanSet::from_cert(&x)
}

#[test]
fn init_then_reload_keeps_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(tmp.path(), &[]);
    let start = std::time::Instant::now();
    let a = load_or_init(&o).unwrap();
    eprintln!("first init took {:?}", start.elapsed());
    let serving = read(&o.tls_dir.join(SERVING_CERT_FILE));
    let b = load_or_init(&o).unwrap();
    assert_eq!(a.ca_cert_pem(), b.ca_cert_pem());
    assert_eq!(read(&o.tls_dir.join(SERVING_CERT_FILE)), serving);
    assert_eq!(a.admin_cert_pem(), b.admin_cert_pem());
    assert_eq!(a.serving_cert_pem(), b.serving_cert_pem());
    // Nothing left behind but the eight files.
    let mut names: Vec<String> = std::fs::read_dir(&o.tls_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ADMIN_CERT_FILE,
            ADMIN_KEY_FILE,
            KUBELET_CA_CERT_FILE,
            KUBELET_CA_KEY_FILE,
            CA_CERT_FILE,
            CA_KEY_FILE,
            SERVING_CERT_FILE,
            SERVING_KEY_FILE
        ]
    );
}

#[test]
fn key_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(tmp.path(), &[]);
    load_or_init(&o).unwrap();
    assert_eq!(mode(&o.tls_dir), 0o700);
    for key in [CA_KEY_FILE, SERVING_KEY_FILE, ADMIN_KEY_FILE] {
        assert_eq!(mode(&o.tls_dir.join(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&o.tls_dir.join(CA_CERT_FILE)), 0o644);
}

#[test]
fn san_change_reissues_serving_cert_keeps_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let a = load_or_init(&opts(tmp.path(), &[])).unwrap();
    let admin_before = a.admin_cert_pem().0.to_string();
    let have = cert_sans(a.serving_cert_pem());
    assert!(have.dns.contains("kubernetes.default.svc.cluster.local"));
    assert!(have.ips.contains(&"10.43.0.1".parse().unwrap()));
    assert!(have.ips.contains(&"127.0.0.1".parse().unwrap()));

    let b = load_or_init(&opts(tmp.path(), &["skiff.example.com", "192.0.2.7"])).unwrap();
    assert_eq!(a.ca_cert_pem(), b.ca_cert_pem());
    assert_ne!(a.serving_cert_pem(), b.serving_cert_pem());
    assert_eq!(b.admin_cert_pem().0, admin_before);
    let have = cert_sans(b.serving_cert_pem());
    assert!(have.dns.contains("skiff.example.com"));
    assert!(have.ips.contains(&"192.0.2.7".parse().unwrap()));

    // Same SANs (in another case/order) again: reused.
    let c = load_or_init(&opts(tmp.path(), &["192.0.2.7", "Skiff.Example.com"])).unwrap();
    assert_eq!(b.serving_cert_pem(), c.serving_cert_pem());
    // Fewer SANs are still covered: reused.
    let d = load_or_init(&opts(tmp.path(), &[])).unwrap();
    assert_eq!(b.serving_cert_pem(), d.serving_cert_pem());
}

#[test]
fn invalid_san_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_or_init(&opts(tmp.path(), &["not a name"])).unwrap_err();
    assert!(matches!(err, PkiError::InvalidSan(_)), "{err}");
}

#[test]
fn mismatched_or_foreign_leaf_is_reissued() {
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(tmp.path(), &[]);
    let a = load_or_init(&o).unwrap();
    // A serving key that does not belong to the certificate.
    std::fs::copy(
        o.tls_dir.join(ADMIN_KEY_FILE),
        o.tls_dir.join(SERVING_KEY_FILE),
    )
    .unwrap();
    // An admin certificate from another CA.
    let other_dir = tempfile::tempdir().unwrap();
    let other = load_or_init(&opts(other_dir.path(), &[])).unwrap();
    let (c, k) = other.admin_cert_pem();
    std::fs::write(o.tls_dir.join(ADMIN_CERT_FILE), c).unwrap();
    std::fs::write(o.tls_dir.join(ADMIN_KEY_FILE), k).unwrap();

    let b = load_or_init(&o).unwrap();
    assert_eq!(a.ca_cert_pem(), b.ca_cert_pem());
    assert_ne!(a.serving_cert_pem(), b.serving_cert_pem());
    assert_ne!(b.admin_cert_pem().0, c);
    assert_eq!(mode(&o.tls_dir.join(SERVING_KEY_FILE)), 0o600);
}

/// A client leaf from `issuer` without an authority key identifier, as
/// certificates made by other tools may be.
fn leaf_without_key_id(issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let key = certs::new_key().unwrap();
    let mut p =
        certs::params(ADMIN_USER, &[MASTERS_GROUP], Purpose::Client, LEAF_LIFETIME).unwrap();
    p.use_authority_key_identifier_extension = false;
    (
        p.signed_by(&key, issuer).unwrap().pem(),
        key.serialize_pem(),
    )
}

#[test]
fn leaf_without_key_identifier_is_checked_by_its_signature() {
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(tmp.path(), &[]);
    load_or_init(&o).unwrap();
    let ca_pem = read(&o.tls_dir.join(CA_CERT_FILE));
    let ca_key = KeyPair::from_pem(&read(&o.tls_dir.join(CA_KEY_FILE))).unwrap();
    let ca_der = certs::first_cert_der(&ca_pem).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let ca_name = ca
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let write = |(c, k): &(String, String)| {
        std::fs::write(o.tls_dir.join(ADMIN_CERT_FILE), c).unwrap();
        std::fs::write(o.tls_dir.join(ADMIN_KEY_FILE), k).unwrap();
    };

    // From the current CA: kept.
    let ours = leaf_without_key_id(&Issuer::from_ca_cert_der(&ca_der, ca_key).unwrap());
    write(&ours);
    assert_eq!(load_or_init(&o).unwrap().admin_cert_pem().0, ours.0);

    // From another CA of the same name: its issuer name matches, its
    // signature does not, so it is re-issued.
    let other_key = certs::new_key().unwrap();
    let other_ca = certs::params(&ca_name, &[], Purpose::Ca, CA_LIFETIME)
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let other = Issuer::from_ca_cert_der(other_ca.der(), other_key).unwrap();
    let foreign = leaf_without_key_id(&other);
    write(&foreign);
    let reloaded = load_or_init(&o).unwrap();
    assert_ne!(reloaded.admin_cert_pem().0, foreign.0);
    assert_ne!(reloaded.admin_cert_pem().0, ours.0);

    // With its key identifier, the same: the name matches, the identifier
    // (the other CA's key) does not.
    let with_id = certs::issue(
        &other,
        ADMIN_USER,
        &[MASTERS_GROUP],
        Purpose::Client,
        LEAF_LIFETIME,
    )
    .unwrap();
    write(&with_id);
    assert_ne!(load_or_init(&o).unwrap().admin_cert_pem().0, with_id.0);
}

#[test]
fn half_a_ca_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(tmp.path(), &[]);
    load_or_init(&o).unwrap();
    std::fs::remove_file(o.tls_dir.join(CA_KEY_FILE)).unwrap();
    let err = load_or_init(&o).unwrap_err().to_string();
    assert!(err.contains(CA_KEY_FILE), "{err}");

    std::fs::write(o.tls_dir.join(CA_KEY_FILE), "garbage").unwrap();
    let err = load_or_init(&o).unwrap_err().to_string();
    assert!(
        err.contains(CA_KEY_FILE) && err.contains("bad private key"),
        "{err}"
    );
}

#[test]
fn identity_from_issued_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = load_or_init(&opts(tmp.path(), &[])).unwrap();
    let (cert, key) = pki
        .issue_client_cert("system:node:n1", &["system:nodes", "extra"])
        .unwrap();
    assert!(key.contains("PRIVATE KEY"));
    let der = certs::first_cert_der(&cert).unwrap();
    assert_eq!(
        identity_from_cert(&der),
        Some(Identity {
            user: "system:node:n1".into(),
            groups: vec!["system:nodes".into(), "extra".into()],
        })
    );
    let admin = certs::first_cert_der(pki.admin_cert_pem().0).unwrap();
    assert_eq!(
        identity_from_cert(&admin),
        Some(Identity {
            user: ADMIN_USER.into(),
            groups: vec![MASTERS_GROUP.into()],
        })
    );
    assert_eq!(identity_from_cert(b"not a certificate"), None);
    // The re-signed multi-group certificate is well-formed and verifies.
    let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
    let ca_der = pki.ca_cert_der().clone();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    x.verify_signature(Some(ca.public_key())).unwrap();
    let key = rcgen::KeyPair::from_pem(&key).unwrap();
    assert_eq!(certs::leaf_problem(&x, &key, &ca, None), None);
}

#[test]
fn kubeconfig_is_private_and_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = load_or_init(&opts(tmp.path(), &[])).unwrap();
    let path = tmp.path().join("etc/skiff/skiff.yaml");
    pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
        .unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let first = inode(&path);
    // The same again (a restart) leaves the file alone.
    pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
        .unwrap();
    assert_eq!(inode(&path), first);
    // A loosened mode is not left: the file is replaced, private again.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
        .unwrap();
    assert_ne!(inode(&path), first);
    assert_eq!(mode(&path), 0o600);
    // Nor a symlink, even to the same content.
    let elsewhere = tmp.path().join("elsewhere.yaml");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
        .unwrap();
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    std::fs::remove_file(&elsewhere).unwrap();
    // Nor other content (another port here).
    pki.write_kubeconfig(&path, "https://127.0.0.1:7443")
        .unwrap();
    assert!(read(&path).contains("https://127.0.0.1:7443"));
    pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
        .unwrap();
    assert_eq!(mode(&path), 0o600);
    let text = read(&path);
    assert!(text.contains("\n    client-key-data: LS0t"), "{text}");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(doc["current-context"], "default");
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"],
        "https://127.0.0.1:6443"
    );
    assert_eq!(doc["contexts"][0]["context"]["user"], "default");
    use base64::Engine as _;
    let b64 = |v: &serde_json::Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        b64(&doc["clusters"][0]["cluster"]["certificate-authority-data"]),
        pki.ca_cert_pem()
    );
    let (cert, key) = pki.admin_cert_pem();
    assert_eq!(
        b64(&doc["users"][0]["user"]["client-certificate-data"]),
        cert
    );
    assert_eq!(b64(&doc["users"][0]["user"]["client-key-data"]), key);
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
}

#[test]
fn join_token_format_and_reuse() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("server/token");
    let ca = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";
    let t1 = load_or_create_join_token(&path, ca).unwrap();
    let (hash, secret) = parse_join_token(&t1).unwrap();
    assert_eq!(hash, ca_hash(ca));
    assert_eq!(secret.len(), 32);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(t1, format!("K10{}::{}", ca_hash(ca), secret));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(load_or_create_join_token(&path, ca).unwrap(), t1);

    // A new CA keeps the secret and updates the hash.
    let t2 = load_or_create_join_token(&path, "other ca").unwrap();
    assert_eq!(
        parse_join_token(&t2).unwrap(),
        (ca_hash("other ca").as_str(), secret)
    );

    // An operator-written bare secret is completed.
    std::fs::write(&path, "mysecret\n").unwrap();
    let t3 = load_or_create_join_token(&path, ca).unwrap();
    assert_eq!(t3, format!("K10{}::mysecret", ca_hash(ca)));
    assert_eq!(read(&path).trim(), t3);

    std::fs::write(&path, "K10nothex::x").unwrap();
    let err = load_or_create_join_token(&path, ca)
        .unwrap_err()
        .to_string();
    assert!(err.contains("token"), "{err}");
    assert_eq!(parse_join_token("K10abc::x"), None);
}

#[test]
fn token_file_created_once_with_admin() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("server/cred/tokens.csv");
    let a = load_or_create_token_file(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    let token = a.admin_token().unwrap().to_string();
    assert_eq!(token.len(), 64);
    let id = a.authenticate(&token).unwrap();
    assert_eq!(id.user, ADMIN_TOKEN_USER);
    assert_eq!(id.groups, vec![ADMIN_TOKEN_GROUP.to_string()]);
    let b = load_or_create_token_file(&path).unwrap();
    assert_eq!(b.admin_token(), Some(token.as_str()));
    assert_eq!(a.authenticate("wrong"), None);
    assert_eq!(a.authenticate(""), None);
    assert!(!format!("{a:?}").contains(&token));
}

#[test]
fn token_file_parsing() {
    let src = Path::new("/x/tokens.csv");
    let text = "# comment\n\
                \n\
                tok1,alice,u1,\"g1,g2\"\n\
                  # indented comment\n\
                tok2,bob,u2\n\
                \"tok,3\",carol,u3,\"\"\"q\"\"\"\n\
                tok4, dave , u4 , \"system:masters\"\n";
    let auth = TokenAuth::parse(text, src).unwrap();
    assert_eq!(auth.len(), 4);
    let alice = auth.authenticate("tok1").unwrap();
    assert_eq!(alice.user, "alice");
    assert_eq!(alice.groups, vec!["g1", "g2"]);
    assert_eq!(auth.uid_of("tok1"), Some("u1"));
    assert_eq!(
        auth.authenticate("tok2").unwrap().groups,
        Vec::<String>::new()
    );
    let carol = auth.authenticate("tok,3").unwrap();
    assert_eq!(carol.groups, vec!["\"q\""]);
    assert_eq!(auth.authenticate("tok4").unwrap().user, "dave");
    assert_eq!(auth.admin_token(), Some("tok4"));
    assert_eq!(auth.authenticate("tok"), None);

    for (bad, line, what) in [
        ("ok,a,b\nonly,two\n", 2, "at least 3 columns"),
        ("# c\n\n\"unterminated,a,b\n", 3, "unterminated"),
        (",a,b\n", 1, "empty token"),
        ("t,a,b\nt,c,d\n", 2, "duplicate"),
        ("t\"x,a,b\n", 1, "quote"),
    ] {
        let err = TokenAuth::parse(bad, src).unwrap_err();
        match &err {
            PkiError::TokenFile { line: l, .. } => assert_eq!(*l, line, "{bad:?}: {err}"),
            other => panic!("{bad:?}: {other}"),
        }
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("/x/tokens.csv:{line}: ")), "{msg}");
        assert!(msg.contains(what), "{msg}");
    }
}

#[test]
fn default_sans_have_the_fixed_names() {
    let sans = default_sans(&Default::default());
    for want in [
        "127.0.0.1",
        "::1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.43.0.1",
    ] {
        assert!(
            sans.iter().any(|s| s == want),
            "{want} missing from {sans:?}"
        );
    }
    sans::SanSet::parse(&sans).unwrap();
}

/// Runs one TLS handshake: the server accepts with `server_tls_config`, reads a
/// byte and reports the peer's identity; the client connects to `server_name`.
async fn handshake(
    pki: &ClusterPki,
    client: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> (Result<Option<Identity>, String>, Option<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_tls_config().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let id = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| identity_from_cert(c));
        tls.write_all(b"!").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.ok();
        Ok::<_, String>(id)
    });
    let mut client = Arc::unwrap_or_clone(client);
    client.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let alpn = match connector.connect(name, tcp).await {
        Ok(mut tls) => {
            let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
            let _ = tls.write_all(b"?").await;
            let mut buf = [0u8; 1];
            let _ = tls.read_exact(&mut buf).await;
            alpn
        }
        Err(_) => None,
    };
    (server.await.unwrap(), alpn)
}

#[tokio::test]
async fn tls_handshake_with_client_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = load_or_init(&opts(tmp.path(), &[])).unwrap();
    for groups in [&["system:nodes"][..], &[], &["g1", "g2", "g3"]] {
        let (cert, key) = pki.issue_client_cert("system:node:n1", groups).unwrap();
        let client = client_tls_config(pki.ca_cert_pem(), Some((&cert, &key))).unwrap();
        for name in ["localhost", "127.0.0.1", "kubernetes.default.svc"] {
            let (res, alpn) = handshake(&pki, client.clone(), name).await;
            assert_eq!(
                res.unwrap(),
                Some(Identity {
                    user: "system:node:n1".into(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                }),
                "{groups:?} {name}"
            );
            assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        }
    }
}

#[tokio::test]
async fn tls_handshake_without_client_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = load_or_init(&opts(tmp.path(), &[])).unwrap();
    let client = client_tls_config(pki.ca_cert_pem(), None).unwrap();
    let (res, _) = handshake(&pki, client, "localhost").await;
    assert_eq!(res.unwrap(), None);
}

#[tokio::test]
async fn tls_handshake_with_foreign_client_cert_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = load_or_init(&opts(tmp.path(), &[])).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = load_or_init(&opts(other_dir.path(), &[])).unwrap();
    let (cert, key) = other
        .issue_client_cert("mallory", &[MASTERS_GROUP])
        .unwrap();
    let client = client_tls_config(pki.ca_cert_pem(), Some((&cert, &key))).unwrap();
    let (res, _) = handshake(&pki, client, "localhost").await;
    assert!(res.is_err(), "{res:?}");
}

#[tokio::test]
async fn issued_serving_cert_works() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = load_or_init(&opts(tmp.path(), &[])).unwrap();
    let (cert, _key) = pki
        .issue_serving_cert("n1", &["n1".into(), "10.0.0.5".into()])
        .unwrap();
    let have = cert_sans(&cert);
    assert!(have.dns.contains("n1") && have.ips.contains(&"10.0.0.5".parse().unwrap()));
}

/// A restart finds the node's kubeconfig still good and keeps it; another
/// node name, server or a loosened mode gets a fresh one.
#[test]
fn the_node_kubeconfig_is_kept_while_it_fits() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_init(&opts(dir.path(), &[])).unwrap();
    let path = dir.path().join("agent/kubelet.kubeconfig");
    let url = "https://127.0.0.1:6443";
    pki.write_node_kubeconfig(&path, url, "n1").unwrap();
    let first = std::fs::read(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    pki.write_node_kubeconfig(&path, url, "n1").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), first, "kept");
    pki.write_node_kubeconfig(&path, url, "n2").unwrap();
    let second = std::fs::read(&path).unwrap();
    assert_ne!(second, first, "another node");
    pki.write_node_kubeconfig(&path, "https://10.0.0.1:6443", "n2")
        .unwrap();
    let third = std::fs::read(&path).unwrap();
    assert_ne!(third, second, "another server");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    pki.write_node_kubeconfig(&path, "https://10.0.0.1:6443", "n2")
        .unwrap();
    assert_ne!(std::fs::read(&path).unwrap(), third, "a loosened file");
    assert_eq!(mode(&path), 0o600);
}

/// The kubelet's serving pair is kept across restarts while it covers the
/// node's names and addresses; a new address gets a new one.
#[test]
fn the_kubelet_serving_pair_is_kept_while_it_fits() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_init(&opts(dir.path(), &[])).unwrap();
    let agent = dir.path().join("agent");
    let ip: std::net::IpAddr = "10.0.0.5".parse().unwrap();
    pki.write_kubelet_serving(&agent, "n1", &[ip]).unwrap();
    let cert = || std::fs::read(agent.join(KUBELET_CERT_FILE)).unwrap();
    let first = cert();
    assert_eq!(mode(&agent.join(KUBELET_KEY_FILE)), 0o600);
    pki.write_kubelet_serving(&agent, "n1", &[ip]).unwrap();
    assert_eq!(cert(), first, "kept");
    let moved: std::net::IpAddr = "10.0.0.6".parse().unwrap();
    pki.write_kubelet_serving(&agent, "n1", &[moved]).unwrap();
    assert_ne!(cert(), first, "a new address");
}

#[test]
fn node_certificates_take_only_the_key_from_a_request() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = load_or_init(&opts(tmp.path(), &[])).unwrap();
    // A request asking for far more than a node may have.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["kubernetes.default.svc".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:masters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:admin");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let got = pki
        .sign_node_certificates(
            "n1",
            &csr,
            &csr,
            &[ip],
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
    let client = certs::first_cert_der(&got.client_pem).unwrap();
    assert_eq!(
        identity_from_cert(&client),
        Some(Identity {
            user: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
        })
    );
    let (_, c) = x509_parser::parse_x509_certificate(&client).unwrap();
    assert!(!c.is_ca());
    assert_eq!(
        c.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    let serving = certs::first_cert_der(&got.serving_pem).unwrap();
    let (_, s) = x509_parser::parse_x509_certificate(&serving).unwrap();
    let sans = sans::SanSet::from_cert(&s);
    assert!(
        sans.dns.contains("n1") && !sans.dns.contains("kubernetes.default.svc"),
        "{:?}",
        sans.dns
    );
    assert!(sans.ips.contains(&ip));
    // From the kubelet CA, not the cluster CA.
    assert!(leaf_fits(
        got.serving_pem.as_bytes(),
        "system:node:n1",
        pki.kubelet_ca_pem(),
        &[]
    ));
    assert!(!leaf_fits(
        got.serving_pem.as_bytes(),
        "system:node:n1",
        pki.ca_cert_pem(),
        &[]
    ));
    // A tampered request is refused.
    let bad = csr.replace('A', "B");
    assert!(pki
        .sign_node_certificates("n1", &bad, &csr, &[], std::time::Duration::from_secs(3600))
        .is_err());
    assert!(!renewal_due(got.client_pem.as_bytes()));
    assert!(renewal_due(b"not a certificate"));
    assert!(key_matches(got.client_pem.as_bytes(), &key.serialize_pem()));
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    assert!(!key_matches(
        got.client_pem.as_bytes(),
        &other.serialize_pem()
    ));
    assert!(!key_matches(got.client_pem.as_bytes(), "not a key"));
    // Keys the cluster signs, and keys it does not (made by the real
    // openssl: ring makes no RSA keys).
    let dir = tempfile::tempdir().unwrap();
    for (i, (genkey, ok)) in [
        (
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
            ][..],
            false,
        ),
        (
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ][..],
            true,
        ),
        (
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-521",
            ][..],
            false,
        ),
        (
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
            ][..],
            true,
        ),
        (&["genpkey", "-algorithm", "ED25519"][..], true),
    ]
    .into_iter()
    .enumerate()
    {
        let key = dir.path().join(format!("{i}.key"));
        let out = std::process::Command::new("openssl")
            .args(genkey)
            .arg("-out")
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let out = std::process::Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=n1", "-key"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let csr = String::from_utf8(out.stdout).unwrap();
        let got =
            pki.sign_node_certificates("n1", &csr, &csr, &[], std::time::Duration::from_secs(3600));
        match got {
            Ok(_) => assert!(ok, "{genkey:?} was signed"),
            Err(e) => {
                assert!(!ok, "{genkey:?}: {e}");
                assert!(e.to_string().contains("not one the cluster signs"), "{e}");
            }
        }
    }
}
