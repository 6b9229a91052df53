//! `skiff server --datastore-endpoint postgres://…`: the cluster's state in
//! a real PostgreSQL server (one this test starts, on a unix socket),
//! driven with the real kubectl.

mod support;

use support::postgres::PgCluster;
use support::Server;

#[test]
fn a_server_keeps_its_state_in_postgresql() {
    let pg = PgCluster::start();
    let db = pg.create_database();
    let url = pg.url(&db);
    // From the environment, as a password would be given.
    let mut s = Server::start_with_env(
        &["--disable-agent"],
        &[("SKIFF_DATASTORE_ENDPOINT", url.as_str())],
    );
    s.kubectl_ok(&["create", "configmap", "c1", "--from-literal=k=v1"]);
    s.kubectl_ok(&["create", "namespace", "team"]);
    s.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: team}\n\
         spec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    \
         metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    // The controllers work on it as on SQLite: the Deployment's pods are made.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pods = s.kubectl_ok(&["get", "pods", "-n", "team", "-o", "name"]);
        if pods.lines().count() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pods: {pods}\n{}",
            s.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    s.kubectl_ok(&["patch", "configmap", "c1", "-p", r#"{"data":{"k":"v2"}}"#]);
    // Nothing of the state is in the data directory's database file.
    assert!(
        !s.data_dir().join("server/db/state.db").exists(),
        "a SQLite file was made beside the PostgreSQL datastore"
    );
    // The rows are PostgreSQL's, and survive the server.
    let rows = std::process::Command::new("psql")
        .arg("-h")
        .arg(pg.socket_dir())
        .args(["-U", "postgres", "-d", &db, "-Atc"])
        .arg("SELECT count(*) FROM skiff_kv WHERE key LIKE '%/configmaps/default/c1'")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "2");
    s.restart();
    let out = s.kubectl_ok(&["get", "configmap", "c1", "-o", "jsonpath={.data.k}"]);
    assert_eq!(out, "v2");
    let out = s.kubectl_ok(&["get", "deployment", "web", "-n", "team", "-o", "name"]);
    assert_eq!(out.trim(), "deployment.apps/web");
}

#[test]
fn a_bad_datastore_endpoint_is_named_and_the_server_does_not_start() {
    let pg = PgCluster::start();
    let mut s = Server::start_with_args(&["--disable-agent"]);
    let log = s.restart_fails_with_args(&[
        "--disable-agent",
        "--datastore-endpoint",
        "mysql://root:hunter2@db/skiff",
    ]);
    assert!(log.contains("unknown scheme mysql"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    let log = s.restart_fails_with_args(&[
        "--disable-agent",
        "--datastore-endpoint",
        "postgres://skiff:hunter2@db.example.com/skiff?sslmode=disable",
    ]);
    assert!(log.contains("must be encrypted"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    // A database that does not exist: PostgreSQL's own words.
    let missing = pg.url("nosuchdb");
    let log = s.restart_fails_with_args(&["--disable-agent", "--datastore-endpoint", &missing]);
    assert!(
        log.contains("nosuchdb") && log.contains("does not exist"),
        "{log}"
    );
}
