//! Services on a real node: the agent's proxy puts them in the kernel
//! (its own nftables table in the node's namespace), and busybox pods and
//! a test namespace outside the node reach them. The node's namespace is
//! joined to an "outside" namespace by a veth (192.168.77.1 on the node,
//! .2 outside), the node's default route pointing there.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{run_ok, Server, TestNet};

const NODE: &str = "svc-node";
const NODE_IP: &str = "192.168.77.1";
const OUTSIDE_IP: &str = "192.168.77.2";

/// A node whose namespace has a link to `outside`.
fn node_with_outside() -> (Server, TestNet) {
    node_with_outside_and(&[])
}

fn node_with_outside_and(extra: &[&str]) -> (Server, TestNet) {
    let node = TestNet::new();
    let outside = TestNet::new();
    let ip = |net: &TestNet, args: &[&str]| {
        run_ok(Command::new("ip").arg("-n").arg(net.name()).args(args));
    };
    ip(
        &node,
        &[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            outside.name(),
        ],
    );
    ip(
        &node,
        &["addr", "add", &format!("{NODE_IP}/24"), "dev", "eth0"],
    );
    ip(&node, &["link", "set", "eth0", "up"]);
    ip(
        &outside,
        &["addr", "add", &format!("{OUTSIDE_IP}/24"), "dev", "eth0"],
    );
    ip(&outside, &["link", "set", "eth0", "up"]);
    ip(&node, &["route", "add", "default", "via", OUTSIDE_IP]);
    let mut args = vec!["--node-name", NODE, "--node-ip", NODE_IP];
    args.extend_from_slice(extra);
    let s = Server::start_in(node, &args);
    let archive = containers::build_busybox_archive(s.dir());
    pods::skiff(&s, &["load", "-i", archive.to_str().expect("utf-8 path")]);
    (s, outside)
}

/// busybox httpd answering with its pod's name, ready while /tmp/ready is
/// there; `-v` logs each client's address.
fn web_deployment(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -v -p 8080 -h /www"]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          exec: {{command: ["test", "-f", "/tmp/ready"]}}
          periodSeconds: 1
          failureThreshold: 1
"#
    )
}

const CLIENT: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "3600"]
"#;

fn ready_web_pods(s: &Server) -> Vec<String> {
    let v = support::json(&s.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"]));
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect()
}

fn wait_ready_web(s: &Server, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = ready_web_pods(s);
        if ready.len() == n {
            return ready;
        }
        assert!(
            Instant::now() < deadline,
            "{n} ready web pods never came: {ready:?}\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `n` requests from the client pod to `url`: the answers, counted by
/// pod name; failures counted under "". (Bounded with `timeout`: the
/// static busybox's `wget -T` crashes.)
fn hits(s: &Server, url: &str, n: u32) -> BTreeMap<String, u32> {
    let script =
        format!("for i in $(seq {n}); do timeout 5 wget -qO- {url} 2>/dev/null || echo; done");
    let out = s.kubectl_ok(&["exec", "client", "--", "sh", "-c", &script]);
    let mut counts = BTreeMap::new();
    for line in out.lines() {
        *counts.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    counts
}

fn cluster_ip(s: &Server, svc: &str) -> String {
    s.kubectl_ok(&["get", "service", svc, "-o", "jsonpath={.spec.clusterIP}"])
}

/// What the node holds, for a failure's message.
fn diagnose(s: &Server) -> String {
    let kubectl = s.kubectl(&["get", "pods,services,endpointslices", "-o", "wide"]);
    let nft = s
        .net()
        .command("nft")
        .args(["list", "table", "ip", "skiff-proxy"])
        .output()
        .expect("nft");
    format!(
        "{}\n{}\n{}",
        support::stdout(&kubectl),
        support::stdout(&nft),
        s.logs()
    )
}

fn wait_until(s: &Server, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}\n{}", diagnose(s));
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn cluster_ips_spread_follow_scaling_and_readiness_and_refuse_without_endpoints() {
    let (s, outside) = node_with_outside();
    s.kubectl_stdin(&["apply", "-f", "-"], &web_deployment(3));
    s.kubectl_stdin(&["apply", "-f", "-"], CLIENT);
    // Named target port: the Service sends to the pods' "http" port.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#,
    );
    let pods = wait_ready_web(&s, 3);
    pods::wait_pod(&s, "client", "running", |v| {
        v["status"]["phase"] == "Running"
    });
    let ip = cluster_ip(&s, "web");
    let url = format!("http://{ip}:80/");

    // Endpoints follow readiness a moment later.
    wait_until(&s, "the Service answers", || {
        hits(&s, &url, 3).keys().all(|k| !k.is_empty())
    });

    // Spread over all three.
    let got = hits(&s, &url, 90);
    assert_eq!(got.get(""), None, "every request answered: {got:?}");
    for p in &pods {
        assert!(
            got.get(p).is_some_and(|&n| n >= 5),
            "{p} got a share: {got:?}"
        );
    }

    // The backends see the client pod's own address (no masquerade
    // between pods).
    let client_ip = s.kubectl_ok(&["get", "pod", "client", "-o", "jsonpath={.status.podIP}"]);
    let logs: String = pods.iter().map(|p| s.kubectl_ok(&["logs", p])).collect();
    assert!(
        logs.contains(&client_ip),
        "client {client_ip} not in the logs:\n{logs}"
    );

    // A pod reaching its own Service (hairpin).
    let own = s.kubectl_ok(&[
        "exec",
        &pods[0],
        "--",
        "sh",
        "-c",
        &format!("for i in $(seq 30); do timeout 5 wget -qO- {url} || echo failed; done"),
    ]);
    assert!(!own.contains("failed"), "{own}");
    assert!(
        own.contains(pods[0].as_str()),
        "it reached itself too: {own}"
    );

    // A pod failing readiness gets no more traffic.
    s.kubectl_ok(&["exec", &pods[1], "--", "rm", "/tmp/ready"]);
    wait_until(&s, "the pod is unready", || {
        !ready_web_pods(&s).contains(&pods[1])
    });
    wait_until(&s, "traffic avoids the unready pod", || {
        let got = hits(&s, &url, 30);
        !got.contains_key(&pods[1]) && !got.contains_key("")
    });
    s.kubectl_ok(&["exec", &pods[1], "--", "touch", "/tmp/ready"]);

    // Scaled to one and back to five: followed.
    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=1"]);
    let one = wait_ready_web(&s, 1);
    wait_until(&s, "all traffic on the one pod", || {
        let got = hits(&s, &url, 20);
        got.len() == 1 && got.contains_key(&one[0])
    });
    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]);
    let five = wait_ready_web(&s, 5);
    wait_until(&s, "traffic on all five", || {
        let got = hits(&s, &url, 100);
        five.iter().all(|p| got.contains_key(p))
    });

    // No ready endpoints: refused at once, not timed out.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
"#,
    );
    let nobody = cluster_ip(&s, "nobody");
    let out = s.kubectl(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        &format!("timeout 20 wget -qO- http://{nobody}:80/ 2>&1; echo rc=$?"),
    ]);
    let text = support::stdout(&out);
    assert!(text.contains("refused"), "refused, not timed out: {text}");

    // NodePort, from outside the node.
    s.kubectl_ok(&[
        "expose",
        "deployment",
        "web",
        "--name",
        "web-np",
        "--type",
        "NodePort",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let np = s.kubectl_ok(&[
        "get",
        "service",
        "web-np",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let from_outside = |port: &str| {
        let out = outside
            .command("curl")
            .args(["-s", "-m", "5", &format!("http://{NODE_IP}:{port}/")])
            .output()
            .expect("curl");
        support::stdout(&out).trim().to_string()
    };
    wait_until(&s, "the NodePort answers from outside", || {
        five.contains(&from_outside(&np))
    });

    // A LoadBalancer: the node's address as its ingress, answering there.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Service
metadata: {name: lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8081, targetPort: 8080}]
"#,
    );
    wait_until(&s, "the load balancer gets its ingress", || {
        s.kubectl_ok(&[
            "get",
            "service",
            "lb",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ]) == NODE_IP
    });
    wait_until(&s, "the load balancer answers", || {
        five.contains(&from_outside("8081"))
    });
    // Another one on the same port stays pending, with an event saying why.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Service
metadata: {name: lb2}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8081, targetPort: 8080}]
"#,
    );
    wait_until(&s, "the clash is reported", || {
        s.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=lb2",
            "-o",
            "name",
        ])
        .contains("event")
    });
    let pending = s.kubectl_ok(&[
        "get",
        "service",
        "lb2",
        "-o",
        "jsonpath={.status.loadBalancer.ingress}",
    ]);
    assert!(pending.is_empty(), "{pending}");

    // Session affinity: one client, one backend.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
"#,
    );
    let sticky = format!("http://{}:80/", cluster_ip(&s, "sticky"));
    wait_until(&s, "the sticky Service answers", || {
        hits(&s, &sticky, 1).keys().all(|k| !k.is_empty())
    });
    let got = hits(&s, &sticky, 30);
    assert_eq!(got.len(), 1, "one backend: {got:?}");

    // externalTrafficPolicy Local: the client's address is kept.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#,
    );
    let local_np = s.kubectl_ok(&[
        "get",
        "service",
        "local",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    wait_until(&s, "the Local NodePort answers", || {
        five.contains(&from_outside(&local_np))
    });
    let logs: String = five.iter().map(|p| s.kubectl_ok(&["logs", p])).collect();
    assert!(
        logs.contains(OUTSIDE_IP),
        "the outside client's address reached a pod:\n{logs}"
    );

    // Its health check port, for an outside load balancer: healthy while
    // the node has endpoints, 503 when it has none.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Service
metadata: {name: local-lb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 8082, targetPort: 8080}]
"#,
    );
    let hc = s.kubectl_ok(&[
        "get",
        "service",
        "local-lb",
        "-o",
        "jsonpath={.spec.healthCheckNodePort}",
    ]);
    let health = || {
        let out = outside
            .command("curl")
            .args(["-s", "-m", "5", "-w", " %{http_code}"])
            .arg(format!("http://{NODE_IP}:{}/", hc.trim()))
            .output()
            .expect("curl");
        support::stdout(&out).trim().to_string()
    };
    wait_until(&s, "the health check port says 5 local endpoints", || {
        let h = health();
        h.contains(r#""localEndpoints":5"#) && h.ends_with(" 200")
    });

    // Endpoints only on another node (a slice written by hand, naming a
    // node that is not this one): under the Local policy this node's
    // NodePort drops outside traffic, under Cluster it forwards it.
    let pod_ip = s.kubectl_ok(&["get", "pod", &five[0], "-o", "jsonpath={.status.podIP}"]);
    for (name, policy) in [("remote-local", "Local"), ("remote-cluster", "Cluster")] {
        s.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!(
                r#"apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  type: NodePort
  externalTrafficPolicy: {policy}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints: [{{addresses: ["{pod_ip}"], nodeName: elsewhere}}]
"#
            ),
        );
    }
    let node_port = |name: &str| {
        s.kubectl_ok(&[
            "get",
            "service",
            name,
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
    };
    let cluster_np = node_port("remote-cluster");
    wait_until(
        &s,
        "the Cluster NodePort forwards to the other node's endpoint",
        || five.contains(&from_outside(&cluster_np)),
    );
    // remote-local was applied first: the proxy, which takes each watch's
    // events in order, has its rules by now. Dropped, so curl times out
    // (28); refused (7) would mean no rule, an answer a black hole missed.
    let local_np = node_port("remote-local");
    let out = outside
        .command("curl")
        .args(["-s", "-m", "3"])
        .arg(format!("http://{NODE_IP}:{local_np}/"))
        .output()
        .expect("curl");
    assert_eq!(
        out.status.code(),
        Some(28),
        "the Local NodePort of a node without a local endpoint must drop: {} {}",
        support::stdout(&out),
        support::stderr(&out)
    );

    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=0"]);
    wait_until(&s, "the health check port says none", || {
        let h = health();
        h.contains(r#""localEndpoints":0"#) && h.ends_with(" 503")
    });
}

/// Run `f` on a thread of its own inside network namespace `net`.
fn in_net<T: Send + 'static>(
    net: &TestNet,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{}", net.name());
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("open the namespace");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

#[test]
fn a_udp_client_moves_on_when_its_endpoint_goes() {
    let (s, outside) = node_with_outside();
    // Two UDP responders outside the node, each answering with its name,
    // as the endpoints of a Service without a selector.
    let stop = Arc::new(AtomicBool::new(false));
    let responders: Vec<_> = [("a", 9001u16), ("b", 9002)]
        .into_iter()
        .map(|(name, port)| {
            let stop = stop.clone();
            in_net(&outside, move || {
                let sock = UdpSocket::bind((Ipv4Addr::new(192, 168, 77, 2), port)).expect("bind");
                sock.set_read_timeout(Some(Duration::from_millis(100)))
                    .expect("timeout");
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = sock.recv_from(&mut buf) {
                        let _ = sock.send_to(name.as_bytes(), from);
                    }
                }
            })
        })
        .collect();
    let mut manifest = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec:\n  ports: [{name: echo, port: 5000, protocol: UDP}]\n",
    );
    for (name, port) in [("a", 9001), ("b", 9002)] {
        manifest.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: echo-{name}\n  labels: {{kubernetes.io/service-name: echo}}\naddressType: IPv4\nports: [{{name: echo, port: {port}, protocol: UDP}}]\nendpoints: [{{addresses: [{OUTSIDE_IP}]}}]\n"
        ));
    }
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    let ip: Ipv4Addr = cluster_ip(&s, "echo").parse().expect("cluster IP");

    // One client socket (one source port: one conntrack entry) on the node.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let client_stop = stop.clone();
    let client = in_net(s.net(), move || {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 40000)).expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        while !client_stop.load(Ordering::Relaxed) {
            let _ = sock.send_to(b"?", SocketAddrV4::new(ip, 5000));
            if let Ok(n) = sock.recv(&mut buf) {
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("an answer through the Service");
    // The same flow keeps its endpoint...
    for _ in 0..5 {
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).expect("answers"),
            first
        );
    }
    // ...until that endpoint goes: then the next packets reach the other.
    s.kubectl_ok(&["delete", "endpointslice", &format!("echo-{first}")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let moved = loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(who) if who != first => break true,
            _ if Instant::now() > deadline => break false,
            _ => {}
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = client.join();
    for r in responders {
        let _ = r.join();
    }
    assert!(
        moved,
        "the client stayed on the deleted endpoint\n{}",
        diagnose(&s)
    );
}

/// A resolver outside the node answering for `outside.test`, as an
/// upstream of the cluster DNS.
struct Upstream(Child);

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cluster_dns_answers_services_pods_and_forwards_the_rest() {
    let conf = tempfile::tempdir().expect("temp dir");
    let resolv = conf.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver 127.0.0.53\nnameserver {OUTSIDE_IP}\n"),
    )
    .expect("resolv.conf");
    let (s, outside) =
        node_with_outside_and(&["--resolv-conf", resolv.to_str().expect("utf-8 path")]);
    let _upstream = Upstream(
        outside
            .command("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &format!("--listen-address={OUTSIDE_IP}"),
                "--except-interface=lo",
                "--address=/outside.test/192.0.2.99",
                &format!("--pid-file={}", conf.path().join("dnsmasq.pid").display()),
                "--user=root",
            ])
            .spawn()
            .expect("dnsmasq (tests/support/install-image-deps.sh installs it)"),
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &web_deployment(2));
    s.kubectl_stdin(&["apply", "-f", "-"], CLIENT);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-h}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: web.default.svc.cluster.local
"#,
    );
    let pods = wait_ready_web(&s, 2);
    pods::wait_pod(&s, "client", "running", |v| {
        v["status"]["phase"] == "Running"
    });
    let ip = cluster_ip(&s, "web");
    let exec = |script: &str| {
        let out = s.kubectl(&["exec", "client", "--", "sh", "-c", script]);
        support::stdout(&out)
    };
    let conf = exec("cat /etc/resolv.conf");
    assert!(conf.contains("nameserver 10.43.0.10"), "{conf}");
    assert!(
        conf.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{conf}"
    );
    assert!(conf.contains("options ndots:5"), "{conf}");

    // The short name (search path), the full name and the ClusterIP: every
    // request answered, by both pods.
    wait_until(&s, "the Service answers by name", || {
        hits(&s, "http://web:80/", 1).keys().all(|k| !k.is_empty())
    });
    let mut all = BTreeMap::new();
    for url in [
        "http://web:80/".to_string(),
        "http://web.default.svc.cluster.local:80/".to_string(),
        format!("http://{ip}:80/"),
    ] {
        for (k, n) in hits(&s, &url, 100) {
            *all.entry(k).or_insert(0) += n;
        }
    }
    assert_eq!(all.get(""), None, "every request answered: {all:?}");
    for p in &pods {
        assert!(
            all.get(p).is_some_and(|&n| n >= 30),
            "{p} got a share: {all:?}"
        );
    }

    // Headless: the pods' addresses.
    let pod_ips: Vec<String> = pods
        .iter()
        .map(|p| s.kubectl_ok(&["get", "pod", p, "-o", "jsonpath={.status.podIP}"]))
        .collect();
    let out = exec("nslookup web-h.default.svc.cluster.local");
    for pip in &pod_ips {
        assert!(out.contains(pip.as_str()), "{pip} in {out}");
    }
    assert!(!out.contains(&ip), "{out}");
    // SRV for the named port, PTR for the ClusterIP, a pod's own name.
    let out = exec("nslookup -type=srv _http._tcp.web.default.svc.cluster.local");
    assert!(
        out.contains("0 100 80 web.default.svc.cluster.local"),
        "{out}"
    );
    let out = exec(&format!("nslookup {ip}"));
    assert!(
        out.contains("name = web.default.svc.cluster.local"),
        "{out}"
    );
    let dashed = pod_ips[0].replace('.', "-");
    let out = exec(&format!("nslookup {dashed}.default.pod.cluster.local"));
    assert!(out.contains(&format!("Address: {}", pod_ips[0])), "{out}");
    // ExternalName: its CNAME, and where that leads.
    let out = exec("nslookup ext.default.svc.cluster.local");
    assert!(
        out.contains("canonical name = web.default.svc.cluster.local"),
        "{out}"
    );
    assert!(out.contains(&ip), "{out}");
    // A name outside the cluster: forwarded upstream (the loopback stub in
    // the resolv.conf given was skipped).
    let out = exec("nslookup outside.test");
    assert!(out.contains("192.0.2.99"), "{out}");
    // No such Service: NXDOMAIN, at once.
    let out = exec("nslookup nosuch.default.svc.cluster.local 2>&1");
    assert!(out.contains("NXDOMAIN"), "{out}");
}
