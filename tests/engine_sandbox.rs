//! Pod sandboxes (runtime/sandbox.rs): two containers in one sandbox share
//! its address, reach each other on 127.0.0.1, share the hostname and IPC
//! namespace; removing the sandbox releases its address (no attachment
//! left) and its pinned namespaces.

#[path = "support/containers.rs"]
mod containers;
mod support;

use containers::Engine;
use support::stderr;

#[test]
fn containers_in_one_sandbox_share_network_ipc_and_hostname() {
    let e = Engine::new();
    let ip = e.ok(&["sandbox", "create", "--hostname", "podhost", "pod1"]);
    let ip = ip.trim().to_string();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    assert!(
        e.root().join("net/ipam").join(&ip).exists(),
        "no lease for {ip}"
    );
    let out = e.err(&["sandbox", "create", "pod1"]);
    assert!(stderr(&out).contains("already in use"), "{}", stderr(&out));

    // The server answers once on 127.0.0.1:7000 of the pod.
    e.ok(&[
        "run",
        "-d",
        "--sandbox",
        "pod1",
        "--name",
        "server",
        "busybox",
        "sh",
        "-c",
        "echo hello | nc -l -p 7000; sleep 30",
    ]);
    let client = e.ok(&[
        "run",
        "--rm",
        "--sandbox",
        "pod1",
        "busybox",
        "sh",
        "-c",
        "hostname; ip -4 -o addr show | grep -v ' lo ' | awk '{print $4}'; \
         for i in $(seq 100); do nc 127.0.0.1 7000 2>/dev/null && break; sleep 0.1; done",
    ]);
    let lines: Vec<&str> = client.lines().collect();
    assert_eq!(lines.first(), Some(&"podhost"), "{client}");
    assert!(
        lines
            .get(1)
            .is_some_and(|a| a.starts_with(&format!("{ip}/"))),
        "{client}"
    );
    assert_eq!(lines.last(), Some(&"hello"), "{client}");
    assert_eq!(e.ok(&["exec", "server", "hostname"]).trim(), "podhost");
    assert_eq!(
        e.inspect("server")["HostConfig"]["NetworkMode"],
        "sandbox:pod1"
    );
    // One IPC namespace: a file in the server's /proc/sysvipc view is the
    // same namespace the client had (compare the namespace links).
    let ipc_server = e.ok(&["exec", "server", "readlink", "/proc/self/ns/ipc"]);
    let ipc_other = e.ok(&[
        "run",
        "--rm",
        "--sandbox",
        "pod1",
        "busybox",
        "readlink",
        "/proc/self/ns/ipc",
    ]);
    assert_eq!(ipc_server, ipc_other);

    let bad = e.err(&[
        "run",
        "--rm",
        "--sandbox",
        "pod1",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&bad).contains("--sandbox joins the sandbox's network"),
        "{}",
        stderr(&bad)
    );
    let missing = e.err(&["run", "--rm", "--sandbox", "nope", "busybox", "true"]);
    assert!(
        stderr(&missing).contains("no such sandbox: nope"),
        "{}",
        stderr(&missing)
    );

    e.ok(&["rm", "-f", "server"]);
    e.ok(&["sandbox", "rm", "pod1"]);
    let nets = e.ok(&["network", "inspect"]);
    assert!(
        !nets.contains("sandbox-pod1") && !nets.contains(&format!("\"{ip}/")),
        "{nets}"
    );
    let gone = e.err(&["sandbox", "rm", "pod1"]);
    assert!(
        stderr(&gone).contains("no such sandbox: pod1"),
        "{}",
        stderr(&gone)
    );
    // The address went back to the pool (src/net/ipam.rs: one file per
    // address in use).
    let lease = e.root().join("net/ipam").join(&ip);
    assert!(!lease.exists(), "{} still held", lease.display());
    e.assert_clean();
}

#[test]
fn killall_removes_sandboxes() {
    let e = Engine::new();
    e.ok(&["sandbox", "create", "pod3"]);
    e.ok(&[
        "run",
        "-d",
        "--sandbox",
        "pod3",
        "--name",
        "s",
        "busybox",
        "sleep",
        "1000",
    ]);
    e.ok(&["killall"]);
    assert!(e.mounts().is_empty(), "{:?}", e.mounts());
    let gone = e.err(&["sandbox", "rm", "pod3"]);
    assert!(
        stderr(&gone).contains("no such sandbox: pod3"),
        "{}",
        stderr(&gone)
    );
    e.assert_clean();
}

#[test]
fn a_sandbox_container_is_named_by_the_sandbox_address() {
    let e = Engine::new();
    let ip = e.ok(&["sandbox", "create", "--hostname", "podhost", "pod4"]);
    let ip = ip.trim();
    let hosts = e.ok(&[
        "run",
        "--rm",
        "--sandbox",
        "pod4",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(
        hosts.lines().any(|l| l == format!("{ip}\tpodhost")),
        "the hostname must map to the sandbox's address:\n{hosts}"
    );
    assert!(!hosts.contains("127.0.1.1"), "{hosts}");
    e.ok(&["sandbox", "rm", "pod4"]);
    e.assert_clean();
}

#[test]
fn run_in_a_sandbox_refuses_a_hostname_of_its_own() {
    let e = Engine::new();
    e.ok(&["sandbox", "create", "pod5"]);
    let out = e.err(&[
        "run",
        "--rm",
        "--sandbox",
        "pod5",
        "--hostname",
        "mine",
        "busybox",
        "true",
    ]);
    let msg = stderr(&out);
    assert!(
        msg.contains("conflicting options: hostname") && msg.contains("sandbox create --hostname"),
        "{msg}"
    );
    // Nothing was made.
    assert!(e.ok(&["ps", "-aq"]).trim().is_empty());
    e.ok(&["sandbox", "rm", "pod5"]);
    e.assert_clean();
}

#[test]
fn sandbox_ls_lists_id_name_ip_created_and_containers() {
    let e = Engine::new();
    let ip6 = e.ok(&["sandbox", "create", "pod6"]).trim().to_string();
    let ip7 = e.ok(&["sandbox", "create", "pod7"]).trim().to_string();
    for name in ["a", "b"] {
        e.ok(&[
            "run",
            "-d",
            "--sandbox",
            "pod6",
            "--name",
            name,
            "busybox",
            "sleep",
            "1000",
        ]);
    }
    let rows = support::table(&e.ok(&["sandbox", "ls"]));
    assert_eq!(
        rows[0],
        ["SANDBOX ID", "NAME", "IP", "CREATED", "CONTAINERS"],
        "{rows:?}"
    );
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.get(1).map(String::as_str) == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("no row for {name}: {rows:?}"))
    };
    let (r6, r7) = (row("pod6"), row("pod7"));
    assert_eq!(r6[0].len(), 12, "a short ID: {r6:?}");
    assert_ne!(r6[0], r7[0]);
    assert_eq!((r6[2].as_str(), r6[4].as_str()), (ip6.as_str(), "2"));
    assert_eq!((r7[2].as_str(), r7[4].as_str()), (ip7.as_str(), "0"));
    assert!(r6[3].ends_with("ago"), "{r6:?}");
    let quiet = e.ok(&["sandbox", "ls", "-q"]);
    assert_eq!(quiet.lines().count(), 2, "{quiet}");
    e.ok(&["rm", "-f", "a", "b"]);
    e.ok(&["sandbox", "rm", "pod6", "pod7"]);
    let rows = support::table(&e.ok(&["sandbox", "ls"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    e.assert_clean();
}
