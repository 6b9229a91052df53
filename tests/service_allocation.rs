//! Cluster IPs and node ports are each given to one Service only, however
//! many creates arrive at once: they are taken from a record in the store
//! by compare-and-swap, given back when the Service goes, and a dry run
//! takes nothing. (They were picked from a list of the Services read
//! before the create, so concurrent creates could get the same address,
//! and a node port asked for by number was never checked at all.)

mod support;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde_json::Value;
use support::{json, stderr, stdout, Server};

const NS: &str = "alloc";

/// Sends every body in `bodies` as a POST to the Services of `NS`, over
/// up to 64 connections at once; the status codes, counted. The messages
/// of the refusals go to the test's output, shown when it fails.
fn create_at_once(s: &Server, token: &str, bodies: &[String]) -> BTreeMap<String, usize> {
    let url = s.url(&format!("/api/v1/namespaces/{NS}/services"));
    let mut cfg = String::new();
    for (i, body) in bodies.iter().enumerate() {
        let file = s.write_file(&format!("svc-{i}.json"), body);
        // No answer of an earlier batch can pass for this one's.
        let _ = std::fs::remove_file(format!("{file}.out"));
        if !cfg.is_empty() {
            cfg.push_str("next\n");
        }
        let _ = write!(
            cfg,
            "url = \"{url}\"\nheader = \"Authorization: Bearer {token}\"\nheader = \"Content-Type: application/json\"\ndata-binary = \"@{file}\"\noutput = \"{file}.out\"\nwrite-out = \"%{{http_code}}\\n\"\nmax-time = 120\ninsecure\nsilent\nshow-error\n"
        );
    }
    let path = s.write_file("creates.cfg", &cfg);
    let out = s
        .net()
        .command("curl")
        .args(["-sS", "--parallel", "--parallel-max", "64", "-K", &path])
        .output()
        .expect("run curl");
    let mut codes = BTreeMap::new();
    for code in stdout(&out).lines() {
        *codes.entry(code.trim().to_string()).or_default() += 1;
    }
    let mut refusals = BTreeMap::<String, usize>::new();
    for i in 0..bodies.len() {
        let answer = std::fs::read_to_string(s.dir().join(format!("svc-{i}.json.out")));
        let status: Value = serde_json::from_str(&answer.unwrap_or_default()).unwrap_or_default();
        if status["kind"] == "Status" {
            *refusals.entry(status["message"].to_string()).or_default() += 1;
        }
    }
    eprintln!("refusals: {refusals:#?}");
    assert_eq!(
        codes.values().sum::<usize>(),
        bodies.len(),
        "curl: {codes:?} {}",
        stderr(&out)
    );
    codes
}

fn service(name: &str, spec: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{name}"}},"spec":{spec}}}"#
    )
}

/// Creates `n` Services `<prefix>-<i>` with `spec`, all at once (see
/// [`create_at_once`]); the status codes, counted.
fn create_many(
    s: &Server,
    token: &str,
    (prefix, n): (&str, usize),
    spec: &str,
) -> BTreeMap<String, usize> {
    let bodies: Vec<String> = (0..n)
        .map(|i| service(&format!("{prefix}-{i}"), spec))
        .collect();
    create_at_once(s, token, &bodies)
}

fn create_ok(s: &Server, args: &[&str], stdin: &str) {
    let out = s.kubectl_stdin(args, stdin);
    assert!(out.status.success(), "kubectl {args:?}: {}", stderr(&out));
}

fn services(s: &Server) -> Vec<Value> {
    let list = json(&s.kubectl_ok(&["get", "services", "-n", NS, "-o", "json"]));
    list["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn concurrent_creates_never_share_an_address_or_a_port() {
    let s = Server::start();
    s.namespace(NS);
    let token = s.admin_token();

    // The same address, and the same node port, asked for by 16 at once:
    // one gets each, the rest are told it is taken.
    let codes = create_many(
        &s,
        &token,
        ("ip", 16),
        r#"{"clusterIP":"10.43.200.200","ports":[{"port":80}]}"#,
    );
    assert_eq!(
        (codes.get("201"), codes.get("422")),
        (Some(&1), Some(&15)),
        "{codes:?}"
    );
    let codes = create_many(
        &s,
        &token,
        ("port", 16),
        r#"{"type":"NodePort","ports":[{"port":80,"nodePort":31234}]}"#,
    );
    assert_eq!(
        (codes.get("201"), codes.get("422")),
        (Some(&1), Some(&15)),
        "{codes:?}"
    );

    // Then free picks, 200 Services of three node ports each, beside the
    // members taken above (before them, a free pick took 31234 in one run
    // of eleven, and the race above had no winner).
    let codes = create_many(
        &s,
        &token,
        ("free", 200),
        r#"{"type":"NodePort","ports":[{"name":"a","port":80},{"name":"b","port":81},{"name":"c","port":82}]}"#,
    );
    assert_eq!(codes.get("201"), Some(&200), "{codes:?}");

    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    let all = services(&s);
    assert_eq!(all.len(), 202);
    for svc in &all {
        let ip = svc["spec"]["clusterIP"].as_str().unwrap_or_default();
        assert!(ip.starts_with("10.43."), "{svc}");
        assert!(ips.insert(ip.to_string()), "{ip} given twice");
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(n) = p["nodePort"].as_u64() {
                assert!((30000..=32767).contains(&n), "{svc}");
                assert!(ports.insert(n), "node port {n} given twice");
            }
        }
    }
    assert_eq!(ports.len(), 200 * 3 + 1);
}

#[test]
fn deletes_give_back_and_dry_runs_take_nothing() {
    let s = Server::start();
    s.namespace(NS);
    let spec =
        "spec:\n  type: NodePort\n  clusterIP: 10.43.9.9\n  ports: [{port: 80, nodePort: 30999}]\n";
    let manifest = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NS}\n{spec}"
        )
    };
    create_ok(
        &s,
        &["create", "--dry-run=server", "-f", "-"],
        &manifest("a"),
    );
    create_ok(&s, &["create", "-f", "-"], &manifest("a"));
    let out = s.kubectl_stdin(&["create", "-f", "-"], &manifest("b"));
    assert!(
        !out.status.success()
            && stderr(&out).contains(
                r#"spec.clusterIPs: Invalid value: "10.43.9.9": failed to allocate IP 10.43.9.9: provided IP is already allocated"#
            ),
        "{}",
        stderr(&out)
    );
    let other_ip = manifest("b").replace("10.43.9.9", "10.43.9.10");
    let out = s.kubectl_stdin(&["create", "-f", "-"], &other_ip);
    assert!(
        !out.status.success()
            && stderr(&out).contains(
                "spec.ports[0].nodePort: Invalid value: 30999: provided port is already allocated"
            ),
        "{}",
        stderr(&out)
    );
    // The failed create gave back the address it had taken.
    create_ok(
        &s,
        &["create", "-f", "-"],
        &other_ip.replace("nodePort: 30999", "nodePort: 30998"),
    );
    s.kubectl_ok(&["delete", "service", "a", "-n", NS]);
    create_ok(&s, &["create", "-f", "-"], &manifest("c"));
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        &manifest("d").replace("10.43.9.9", "10.96.0.1"),
    );
    assert!(
        stderr(&out).contains("the provided IP (10.96.0.1) is not in the valid range. The range of valid IPs is 10.43.0.0/16"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn updates_take_and_give_back_node_ports() {
    let s = Server::start();
    s.namespace(NS);
    let svc = |name: &str, ty: &str, port: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  type: {ty}\n  ports: [{{port: 80{port}}}]\n")
    };
    create_ok(
        &s,
        &["create", "-f", "-"],
        &svc("a", "NodePort", ", nodePort: 30500"),
    );
    create_ok(&s, &["create", "-f", "-"], &svc("b", "ClusterIP", ""));
    // b asks for a's port: refused.
    let out = s.kubectl(&merge_patch(
        "b",
        r#"{"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30500}]}}"#,
    ));
    assert!(
        stderr(&out).contains(
            "spec.ports[0].nodePort: Invalid value: 30500: provided port is already allocated"
        ),
        "{}",
        stderr(&out)
    );
    // a gives its port up; b can have it.
    s.kubectl_ok(&merge_patch(
        "a",
        r#"{"spec":{"type":"ClusterIP","ports":[{"port":80}]}}"#,
    ));
    s.kubectl_ok(&merge_patch(
        "b",
        r#"{"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30500}]}}"#,
    ));
    // A change of type alone away from NodePort gives the port up (b's
    // 30500 can be had again), as upstream drops the type's fields.
    s.kubectl_ok(&merge_patch("b", r#"{"spec":{"type":"ClusterIP"}}"#));
    let left = s.kubectl_ok(&[
        "get",
        "svc",
        "b",
        "-n",
        NS,
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    assert_eq!(left, "", "no node port left on a ClusterIP Service");
    create_ok(
        &s,
        &["create", "-f", "-"],
        &svc("c", "NodePort", ", nodePort: 30500"),
    );
    // A change to NodePort without a port gets a free one.
    s.kubectl_ok(&merge_patch("a", r#"{"spec":{"type":"NodePort"}}"#));
    let port = s.kubectl_ok(&[
        "get",
        "svc",
        "a",
        "-n",
        NS,
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let port: u32 = port
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no node port: {port:?}"));
    assert!((30000..=32767).contains(&port) && port != 30500, "{port}");
}

/// A LoadBalancer Service with externalTrafficPolicy Local gets a health
/// check port from the NodePort range: held like its node ports, kept
/// across updates that leave it out, given back when it is no longer
/// needed, and refused where upstream refuses it.
#[test]
fn health_check_node_ports_are_allocated_kept_and_given_back() {
    let s = Server::start();
    s.namespace(NS);
    let hc = |name: &str| {
        s.kubectl_ok(&[
            "get",
            "svc",
            name,
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.healthCheckNodePort}",
        ])
        .trim()
        .to_string()
    };
    create_ok(
        &s,
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: lb\n  namespace: {NS}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector: {{app: x}}\n  ports: [{{port: 80}}]\n"),
    );
    let port: u32 = hc("lb")
        .parse()
        .unwrap_or_else(|_| panic!("no health check port: {:?}", hc("lb")));
    assert!((30000..=32767).contains(&port), "{port}");
    // Held: another Service cannot have it as a node port.
    create_ok(&s, &["create", "-f", "-"], &format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: np\n  namespace: {NS}\nspec:\n  type: ClusterIP\n  ports: [{{port: 80}}]\n"));
    let body =
        format!(r#"{{"spec":{{"type":"NodePort","ports":[{{"port":80,"nodePort":{port}}}]}}}}"#);
    let out = s.kubectl(&merge_patch("np", &body));
    assert!(
        stderr(&out).contains("provided port is already allocated"),
        "{}",
        stderr(&out)
    );
    // A replace that leaves it out keeps it; it cannot move.
    let mut cur = json(&s.kubectl_ok(&["get", "svc", "lb", "-n", NS, "-o", "json"]));
    cur["spec"]
        .as_object_mut()
        .unwrap()
        .remove("healthCheckNodePort");
    create_ok(&s, &["replace", "-f", "-"], &cur.to_string());
    assert_eq!(hc("lb"), port.to_string());
    let moved = if port == 32767 { port - 1 } else { port + 1 };
    let out = s.kubectl(&merge_patch(
        "lb",
        &format!(r#"{{"spec":{{"healthCheckNodePort":{moved}}}}}"#),
    ));
    assert!(
        stderr(&out).contains("cannot change healthCheckNodePort"),
        "{}",
        stderr(&out)
    );
    // Nor can one of its ports take it.
    let out = s.kubectl(&merge_patch(
        "lb",
        &format!(r#"{{"spec":{{"ports":[{{"port":80,"nodePort":{port}}}]}}}}"#),
    ));
    assert!(
        stderr(&out).contains("provided port is already allocated"),
        "{}",
        stderr(&out)
    );
    // No longer needed: dropped and given back.
    s.kubectl_ok(&merge_patch(
        "lb",
        r#"{"spec":{"externalTrafficPolicy":"Cluster"}}"#,
    ));
    assert_eq!(hc("lb"), "");
    s.kubectl_ok(&merge_patch("np", &body));
    // Set where it is not needed: refused.
    let out = s.kubectl(&merge_patch(
        "lb",
        r#"{"spec":{"healthCheckNodePort":31999}}"#,
    ));
    assert!(
        stderr(&out).contains("spec.healthCheckNodePort: Invalid value: 31999: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"),
        "{}",
        stderr(&out)
    );
    // One asked for by number, given back on delete, can be had again.
    let lb_asking = |name: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 31234\n  ports: [{{port: 80}}]\n")
    };
    create_ok(&s, &["create", "-f", "-"], &lb_asking("lb2"));
    assert_eq!(hc("lb2"), "31234");
    let out = s.kubectl_stdin(&["create", "-f", "-"], &lb_asking("lb3"));
    assert!(
        stderr(&out).contains(
            "spec.healthCheckNodePort: Invalid value: 31234: provided port is already allocated"
        ),
        "{}",
        stderr(&out)
    );
    s.kubectl_ok(&["delete", "svc", "lb2", "-n", NS]);
    create_ok(&s, &["create", "-f", "-"], &lb_asking("lb3"));
    assert_eq!(hc("lb3"), "31234");
}

/// Sets member `offset` of the cluster IP record in the stopped server's
/// store to `taken`, by compare-and-swap as the server does.
fn set_cluster_ip_bit(s: &Server, offset: u32, taken: bool) {
    use base64::Engine as _;
    use skiff::server::store::sqlite::SqliteBackend;
    use skiff::server::store::Backend;
    const KEY: &str = "/registry/ranges/serviceips";
    let db = s.data_dir().join("server/db/state.db");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let store = SqliteBackend::open(&db).expect("open the store");
        let kv = store.get(KEY, None).await.expect("read").expect("a record");
        let mut rec: Value = serde_json::from_slice(&kv.value).expect("json");
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut bits = b64
            .decode(rec["data"].as_str().expect("data"))
            .expect("base64");
        let (byte, bit) = ((offset / 8) as usize, 1u8 << (offset % 8));
        if taken {
            bits[byte] |= bit;
        } else {
            bits[byte] &= !bit;
        }
        rec["data"] = Value::String(b64.encode(&bits));
        store
            .update(KEY, rec.to_string().into(), kv.mod_revision)
            .await
            .expect("write");
        store.close().await;
    });
}

/// FAULT INJECTED into the store between two runs of the server (a crash
/// between reserving an address and storing its Service cannot be produced
/// deterministically): 10.43.7.7 is marked taken though no Service holds
/// it, and the address of Service "held" is not marked. The start-up repair
/// frees the first and marks the second (before it, the first stayed taken
/// for ever and the second could be given to another Service).
#[test]
fn restart_repairs_leaked_and_unmarked_addresses() {
    let mut s = Server::start();
    s.namespace(NS);
    let svc = |name: &str, ip: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  clusterIP: {ip}\n  ports: [{{port: 80}}]\n")
    };
    create_ok(&s, &["create", "-f", "-"], &svc("held", "10.43.8.8"));
    s.kill();
    set_cluster_ip_bit(&s, 7 * 256 + 7, true);
    set_cluster_ip_bit(&s, 8 * 256 + 8, false);
    s.restart();
    create_ok(&s, &["create", "-f", "-"], &svc("leaked", "10.43.7.7"));
    let out = s.kubectl_stdin(&["create", "-f", "-"], &svc("twice", "10.43.8.8"));
    assert!(
        !out.status.success()
            && stderr(&out)
                .contains("failed to allocate IP 10.43.8.8: provided IP is already allocated"),
        "{}",
        stderr(&out)
    );
}

/// `kubectl patch service NAME --type=merge -p BODY` in the test namespace.
fn merge_patch<'a>(name: &'a str, body: &'a str) -> [&'a str; 8] {
    [
        "patch",
        "service",
        name,
        "-n",
        NS,
        "--type=merge",
        "-p",
        body,
    ]
}

/// `--service-cidr`, `--cluster-dns` and `--service-node-port-range`: the
/// `kubernetes` Service, Services' addresses and node ports come from the
/// ranges asked for; nodes (and admins, not other users) read the plan at
/// `/v1-skiff/config`; a start with other ranges on the same data
/// directory is refused with the ranges it was made with, and changes
/// nothing.
#[test]
fn a_cluster_takes_addresses_and_ports_from_its_own_ranges() {
    let plan = [
        "--disable-agent",
        "--service-cidr",
        "10.96.0.0/24",
        "--cluster-cidr",
        "10.200.0.0/22",
        "--cluster-dns",
        "10.96.0.53",
        "--service-node-port-range",
        "31000-31009",
    ];
    let mut s = Server::start_with_args(&plan);
    let ip_of = |s: &Server, ns: &str, name: &str| {
        s.kubectl_ok(&[
            "get",
            "service",
            name,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
    };
    assert_eq!(ip_of(&s, "default", "kubernetes"), "10.96.0.1");
    s.namespace(NS);
    create_ok(
        &s,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: np, namespace: alloc}\nspec: {type: NodePort, ports: [{port: 80}]}\n",
    );
    let got = s.kubectl_ok(&[
        "get",
        "service",
        "np",
        "-n",
        NS,
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}",
    ]);
    let (ip, port) = got.split_once(' ').unwrap();
    assert!(ip.starts_with("10.96.0."), "{ip}");
    let port: u16 = port.parse().unwrap();
    assert!((31000..=31009).contains(&port), "{port}");
    for (spec, refusal) in [
        (
            "{clusterIP: 10.43.0.7, ports: [{port: 80}]}",
            "The range of valid IPs is 10.96.0.0/24",
        ),
        (
            "{type: NodePort, ports: [{port: 80, nodePort: 30080}]}",
            "The range of valid ports is 31000-31009",
        ),
    ] {
        let out = s.kubectl_stdin(
            &["create", "-f", "-"],
            &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: out, namespace: alloc}}\nspec: {spec}\n"),
        );
        assert!(
            !out.status.success() && stderr(&out).contains(refusal),
            "{}",
            stderr(&out)
        );
    }
    // Nine more node ports fill the range of ten; the next is refused.
    let codes = create_many(
        &s,
        &s.admin_token(),
        ("full", 10),
        r#"{"type":"NodePort","ports":[{"port":80}]}"#,
    );
    assert_eq!(codes.get("201"), Some(&9), "{codes:?}");
    assert_eq!(codes.get("500"), Some(&1), "{codes:?}");

    // The plan, to nodes and admins only.
    let (code, body) = s.curl_get(
        "/v1-skiff/config",
        &["-H", &format!("Authorization: Bearer {}", s.admin_token())],
    );
    assert_eq!(code, 200, "{body}");
    let cfg: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cfg["serviceCidr"], "10.96.0.0/24");
    assert_eq!(cfg["clusterCidr"], "10.200.0.0/22");
    assert_eq!(cfg["clusterDns"], "10.96.0.53");
    assert_eq!(cfg["clusterDomain"], "cluster.local");
    assert_eq!(cfg["nodePorts"], "31000-31009");
    assert_eq!(cfg["podNetwork"], "vxlan");
    let (crt, key) = s.client_cert("node", "system:node:n1", &["system:nodes"]);
    let (crt, key) = (crt.display().to_string(), key.display().to_string());
    let (code, _) = s.curl_get("/v1-skiff/config", &["--cert", &crt, "--key", &key]);
    assert_eq!(code, 200);
    let (crt, key) = s.client_cert("dev", "dev", &["developers"]);
    let (crt, key) = (crt.display().to_string(), key.display().to_string());
    let (code, body) = s.curl_get("/v1-skiff/config", &["--cert", &crt, "--key", &key]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("for nodes"), "{body}");
    let (code, _) = s.curl_get("/v1-skiff/config", &[]);
    assert_eq!(code, 401);

    // Another plan on this data directory: refused, naming what it was
    // made with, before anything is touched.
    let cert = s.data_dir().join("server/tls/serving.crt");
    let before = std::fs::read(&cert).unwrap();
    let mut other = plan.to_vec();
    other[2] = "10.97.0.0/24";
    other[6] = "10.97.0.53";
    let log = s.restart_fails_with_args(&other);
    assert!(
        log.contains("this cluster was made with --service-cidr 10.96.0.0/24 (now 10.97.0.0/24), --cluster-dns 10.96.0.53 (now 10.97.0.53)"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        before,
        "a refused start reissued the serving certificate"
    );
    let mut other = plan.to_vec();
    other[6] = "10.96.0.54";
    let log = s.restart_fails_with_args(&other);
    assert!(
        log.contains("--cluster-dns 10.96.0.53 (now 10.96.0.54)"),
        "{log}"
    );
    let mut other = plan.to_vec();
    other[8] = "30000-32767";
    let log = s.restart_fails_with_args(&other);
    assert!(
        log.contains("--service-node-port-range 31000-31009 (now 30000-32767)"),
        "{log}"
    );
    let mut other = plan.to_vec();
    other.extend(["--pod-network", "host-gw"]);
    let log = s.restart_fails_with_args(&other);
    assert!(log.contains("--pod-network vxlan (now host-gw)"), "{log}");
    let log = s.restart_fails_with_args(&["--disable-agent", "--service-cidr", "10.96.0.0/29"]);
    assert!(
        log.contains("--service-cidr 10.96.0.0/29: its prefix must be /12 to /28"),
        "{log}"
    );
    // The same plan again: served as before.
    s.restart();
    assert_eq!(ip_of(&s, NS, "np"), ip);
}
