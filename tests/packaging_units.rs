//! The systemd units skiff is installed with (packaging/systemd/) are what
//! systemd itself accepts (`systemd-analyze verify`, with the binary that
//! ExecStart names present), and say what running skiff as a service
//! needs: readiness over sd_notify, its own cgroup subtree, pods that
//! outlive a stop of the service, restarts, and room for file handles.
//! skiff's side of Type=notify, READY=1 on NOTIFY_SOCKET once it serves,
//! is checked here too, with a datagram socket standing in for systemd's.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{stderr, Server};

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    for (unit, command, kind) in [
        ("skiff.service", "server", "notify"),
        ("skiff-agent.service", "agent", "exec"),
    ] {
        let text = std::fs::read_to_string(Path::new("packaging/systemd").join(unit)).unwrap();
        for line in [
            &format!("Type={kind}"),
            "Delegate=yes",
            "KillMode=process",
            "Restart=always",
            "LimitNOFILE=1048576",
            "WantedBy=multi-user.target",
            &format!("ExecStart=/usr/local/bin/skiff {command}"),
        ] {
            assert!(text.lines().any(|l| l == line), "{unit} lacks {line:?}");
        }
        // The binary ExecStart names must exist for verify: this build's.
        let here = text.replace("/usr/local/bin/skiff", env!("CARGO_BIN_EXE_skiff"));
        let path = dir.path().join(unit);
        std::fs::write(&path, here).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze (Debian's systemd package)");
        // verify exits 0 on an unknown setting, but says so.
        assert!(
            out.status.success() && stderr(&out).trim().is_empty(),
            "{unit}: {out:?}"
        );
    }
}

#[test]
fn the_server_tells_the_service_manager_it_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let server = Server::start_with_env(
        &["--disable-agent"],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("READY=1 on NOTIFY_SOCKET");
    let message = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(message.lines().any(|l| l == "READY=1"), "{message}");
    assert!(
        message.lines().any(|l| l.starts_with("STATUS=")),
        "{message}"
    );
    drop(server);
}

/// `skiff kubeconfig` prints the admin kubeconfig the server wrote, with
/// another server address when asked (to copy it elsewhere), and names
/// the problem when there is none.
#[test]
fn skiff_kubeconfig_prints_the_admin_kubeconfig() {
    let server = Server::start_with_args(&["--disable-agent"]);
    let skiff = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .arg("kubeconfig")
            .args(args)
            .output()
            .unwrap()
    };
    let path = server.kubeconfig();
    let path = path.to_str().unwrap();
    let out = skiff(&["--kubeconfig", path]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        support::stdout(&out),
        std::fs::read_to_string(path).unwrap()
    );
    // With the address a workstation would use: kubectl works with it.
    let url = server.url("").replace("127.0.0.1", "localhost");
    let out = skiff(&["--kubeconfig", path, "--server", &url]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        support::stdout(&out).contains(&format!("server: {url}")),
        "{out:?}"
    );
    let copied = server.write_file("copied.yaml", &support::stdout(&out));
    let view = server.kubectl_with(Path::new(&copied), &["get", "namespaces", "-o", "name"]);
    assert!(view.status.success(), "{view:?}");
    assert!(support::stdout(&view).contains("namespace/default"));
    let out = skiff(&["--kubeconfig", path, "--server", "http://plain:80"]);
    assert!(
        !out.status.success() && stderr(&out).contains("is not an https:// URL"),
        "{out:?}"
    );
    let out = skiff(&["--kubeconfig", "/nonexistent/skiff.yaml"]);
    assert!(
        !out.status.success() && stderr(&out).contains("start `skiff server` first"),
        "{out:?}"
    );
}
