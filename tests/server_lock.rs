//! One server per data directory, a taken port refused before any state is
//! touched, and the open-file limit raised at start.

mod server_proc;
mod support;

use std::fs;

use server_proc::Proc;
use support::{Server, TestNet, PORT};

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let s = Server::start();
    s.kubectl_ok(&["create", "configmap", "before", "--from-literal=a=b"]);
    let kubeconfig = s.dir().join("second-kubeconfig.yaml");
    let mut second = Proc::spawn(
        s.net(),
        &[],
        &s.data_dir(),
        PORT + 1,
        &kubeconfig,
        s.dir().join("second.log"),
        &[],
    );
    let status = second.wait_exit();
    let log = second.log();
    assert!(
        status.is_some_and(|st| !st.success()),
        "a second server on the same data dir did not refuse to start ({status:?}):\n{log}"
    );
    assert!(
        log.contains(&format!(
            "is in use by another skiff server (pid {})",
            s.pid()
        )),
        "the refusal does not name the holder:\n{log}"
    );
    assert!(
        !kubeconfig.exists(),
        "the refused server wrote a kubeconfig"
    );
    // The first server's view is intact: it still reads and writes.
    s.kubectl_ok(&["create", "configmap", "after", "--from-literal=a=b"]);
    let names = s.kubectl_ok(&["get", "configmaps", "-o", "name"]);
    assert!(
        names.contains("configmap/before") && names.contains("configmap/after"),
        "{names}"
    );
}

#[test]
fn a_taken_port_fails_the_start_before_the_store_is_touched() {
    let s = Server::start();
    let fresh = s.dir().join("fresh-data");
    let mut clash = Proc::spawn(
        s.net(),
        &[],
        &fresh,
        PORT,
        &s.dir().join("clash-kubeconfig.yaml"),
        s.dir().join("clash.log"),
        &[],
    );
    let status = clash.wait_exit();
    let log = clash.log();
    assert!(
        status.is_some_and(|st| !st.success()),
        "a server on a taken port did not fail ({status:?}):\n{log}"
    );
    assert!(
        log.contains(&format!("listening on 127.0.0.1:{PORT}")),
        "the error does not name the address:\n{log}"
    );
    for untouched in ["server/db", "server/tls", "server/token", "server/cred"] {
        assert!(
            !fresh.join(untouched).exists(),
            "{untouched} was created before the port was checked:\n{log}"
        );
    }
}

#[test]
fn the_lock_goes_with_the_server_and_names_it() {
    let mut s = Server::start();
    let lock = s.data_dir().join("server/lock");
    assert_eq!(
        fs::read_to_string(&lock).unwrap().trim(),
        s.pid().to_string()
    );
    // SIGKILL leaves no stale lock behind: the kernel drops the flock.
    s.restart();
    assert_eq!(
        fs::read_to_string(&lock).unwrap().trim(),
        s.pid().to_string()
    );
    s.kubectl_ok(&["get", "namespaces"]);
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let net = TestNet::new();
    let dir = tempfile::Builder::new()
        .prefix("skiff-test-")
        .tempdir()
        .unwrap();
    let mut p = Proc::spawn(
        &net,
        &["prlimit", "--nofile=256:4096", "--"],
        &dir.path().join("data"),
        PORT,
        &dir.path().join("kubeconfig.yaml"),
        dir.path().join("server.log"),
        &[],
    );
    p.wait_ready(&net);
    let limits = fs::read_to_string(format!("/proc/{}/limits", p.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-file limit in:\n{limits}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[3..5],
        ["4096", "4096"],
        "soft and hard limit after start: {line}"
    );
}

#[test]
fn the_global_root_is_the_servers_data_dir() {
    // `skiff --root DIR server` is `skiff server --data-dir DIR`: a second
    // server given the first one's directory as --root is refused for it.
    // (The port is taken as well, so that a server that ignored --root
    // could not start on the default directory either.)
    let s = Server::start();
    let out = s
        .net()
        .command(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(s.data_dir())
        .arg("server")
        .args(["--bind-address", "127.0.0.1"])
        .args(["--https-listen-port", &PORT.to_string()])
        .arg("--write-kubeconfig")
        .arg(s.dir().join("root-kubeconfig.yaml"))
        .env_remove("SKIFF_DATA_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "the data dir {} is in use by another skiff server",
            s.data_dir().display()
        )),
        "--root was not taken as the data dir:\n{err}"
    );
}
