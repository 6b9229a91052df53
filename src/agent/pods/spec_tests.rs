use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use serde_json::{json, Value};

use super::*;

pub(super) const UID: &str = "0f3c6c1e-5a8e-4a43-9d3b-2b8d5f6f7a10";

pub(super) fn pod(spec: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web", "namespace": "shop", "uid": UID,
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "say \"hi\"\n"}
        },
        "spec": spec
    }))
    .expect("a Pod")
}

/// A pod with one container `c`, made from `container`'s fields.
pub(super) fn pod_with(container: Value) -> Pod {
    let mut c = json!({"name": "c", "image": "nginx:1.27"});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), container.as_object()) {
        c.extend(extra.clone());
    }
    pod(json!({"nodeName": "node-1", "serviceAccountName": "robot", "containers": [c]}))
}

fn objects() -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let data = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    BTreeMap::from([
        (
            ("ConfigMap".into(), "cfg".into()),
            data(&[("MODE", "prod"), ("LEVEL", "3"), ("1st", "x")]),
        ),
        (
            ("ConfigMap".into(), "more".into()),
            data(&[("MODE", "dev")]),
        ),
        (
            ("Secret".into(), "creds".into()),
            data(&[("password", "s3cret")]),
        ),
    ])
}

pub(super) struct Fixture {
    pub(super) objects: BTreeMap<(String, String), BTreeMap<String, String>>,
    services: BTreeMap<String, String>,
    pub(super) allocatable: Option<crate::agent::node::host::Resources>,
    dns: super::ClusterDns,
    pub(super) host_dns: Option<super::HostDns>,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        Fixture {
            objects: objects(),
            services: BTreeMap::from([
                (
                    "KUBERNETES_SERVICE_HOST".to_string(),
                    "10.43.0.1".to_string(),
                ),
                ("KUBERNETES_SERVICE_PORT".to_string(), "443".to_string()),
            ]),
            allocatable: None,
            dns: super::ClusterDns {
                server: IpAddr::V4(Ipv4Addr::new(10, 43, 0, 10)),
                domain: "cluster.local".into(),
            },
            host_dns: None,
        }
    }

    pub(super) fn ctx(&self) -> SpecContext<'_> {
        SpecContext {
            cgroup_parent: None,
            cgroup_root: "skiff",
            node_name: "node-1",
            pod_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 42, 0, 7))),
            host_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5)),
            log_dir: Path::new("/var/log/pods/shop_web_uid"),
            attempt: 2,
            objects: &self.objects,
            service_env: &self.services,
            memory_capacity: 8 << 30,
            min_oom_score_adj: -1000,
            allocatable: self.allocatable.as_ref(),
            image_user: "",
            cluster_dns: Some(&self.dns),
            host_dns: self.host_dns.as_ref(),
        }
    }

    pub(super) fn spec(&self, pod: &Pod) -> Result<ContainerSpec, SpecError> {
        let c = pod
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .expect("a container");
        container_spec(pod, &c, &self.ctx())
    }

    pub(super) fn env(&self, container: Value) -> Vec<String> {
        self.spec(&pod_with(container)).expect("a spec").process.env
    }
}

#[test]
fn referenced_objects_of_all_containers() {
    let p = pod(json!({
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s1"}}]}],
        "containers": [{"name": "c",
            "envFrom": [{"configMapRef": {"name": "c1", "optional": true}}],
            "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c2", "key": "k"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}},
                {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ]}]
    }));
    let refs: Vec<(String, String)> = referenced_objects(&p).into_iter().collect();
    let want = [("ConfigMap", "c1"), ("ConfigMap", "c2"), ("Secret", "s1")];
    assert_eq!(refs, want.map(|(k, n)| (k.to_string(), n.to_string())));
}

#[test]
fn command_args_and_process() {
    let f = Fixture::new();
    let p = pod_with(json!({
        "command": ["/bin/sh", "-c", "echo $(GREETING) $$(HOME) $(NOPE)"],
        "args": ["$(GREETING)", "$(KUBERNETES_SERVICE_PORT)"],
        "env": [{"name": "GREETING", "value": "hi"}],
        "workingDir": "/srv",
        "tty": true,
        "stdin": true
    }));
    let s = f.spec(&p).expect("spec");
    assert_eq!(
        s.process.command,
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo hi $(HOME) $(NOPE)".into()
        ])
    );
    assert_eq!(s.process.args, ["hi", "443"]);
    assert_eq!(s.process.cwd.as_deref(), Some("/srv"));
    assert!(s.process.tty && s.process.stdin && !s.process.init);
    assert_eq!(s.image, "nginx:1.27");
    assert_eq!(
        s.name.as_deref(),
        Some(format!("k8s_c_web_shop_{UID}_2").as_str())
    );
    assert_eq!(
        s.log_path.as_deref(),
        Some(Path::new("/var/log/pods/shop_web_uid/c/2.log"))
    );
    assert_eq!(s.labels[LABEL_POD_UID], UID);
    assert_eq!(s.labels[LABEL_POD_NAME], "web");
    assert_eq!(s.labels[LABEL_POD_NAMESPACE], "shop");
    assert_eq!(s.labels[LABEL_CONTAINER_NAME], "c");
    assert_eq!(s.labels[LABEL_ATTEMPT], "2");
    assert_eq!(s.sandbox, None, "the caller's");

    let plain = f
        .spec(&pod_with(json!({"command": [], "args": []})))
        .expect("spec");
    assert_eq!(
        (
            plain.process.command,
            plain.process.args.len(),
            plain.process.cwd
        ),
        (None, 0, None)
    );
}

#[test]
fn user_from_the_security_contexts() {
    let f = Fixture::new();
    let user = |pod_sc: Value, c_sc: Value| {
        let p = pod(
            json!({"securityContext": pod_sc, "containers": [{"name": "c", "securityContext": c_sc}]}),
        );
        f.spec(&p).map(|s| s.process.user)
    };
    assert_eq!(user(json!({}), json!({})), Ok(None));
    assert_eq!(
        user(json!({"runAsUser": 1000}), json!({})),
        Ok(Some("1000".into()))
    );
    assert_eq!(
        user(
            json!({"runAsUser": 1000, "runAsGroup": 50}),
            json!({"runAsUser": 7})
        ),
        Ok(Some("7:50".into()))
    );
    // A group alone goes with the image's user (the fixture's image names
    // none: root).
    assert_eq!(
        user(json!({"runAsGroup": 50}), json!({})),
        Ok(Some("0:50".into()))
    );
    let p = pod(json!({"securityContext": {"runAsGroup": 50}, "containers": [{"name": "c"}]}));
    let c = &p.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        super::user(&p, c, "nobody:nogroup").as_deref(),
        Some("nobody:50")
    );
    assert_eq!(super::user(&p, c, "1000").as_deref(), Some("1000:50"));
    assert_eq!(
        user(json!({"runAsNonRoot": true}), json!({"runAsUser": 0})),
        Err(SpecError::RunAsNonRoot(format!(
            "container's runAsUser breaks non-root policy (pod: \"web_shop({UID})\", container: c)"
        )))
    );
}

#[test]
fn run_as_non_root_against_the_image_user() {
    let p = pod(json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}));
    let c = p.spec.as_ref().map(|s| s.containers[0].clone()).expect("c");
    assert_eq!(verify_run_as_non_root(&p, &c, "1000:1000"), Ok(()));
    let who = format!("(pod: \"web_shop({UID})\", container: c)");
    for root in ["", "0", "0:0"] {
        assert_eq!(
            verify_run_as_non_root(&p, &c, root),
            Err(SpecError::RunAsNonRoot(format!(
                "container has runAsNonRoot and image will run as root {who}"
            ))),
            "{root:?}"
        );
    }
    assert_eq!(
        verify_run_as_non_root(&p, &c, "nobody:nogroup"),
        Err(SpecError::RunAsNonRoot(format!(
            "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root {who}"
        )))
    );
    let given = pod(
        json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 5}, "containers": [{"name": "c"}]}),
    );
    assert_eq!(verify_run_as_non_root(&given, &c, ""), Ok(()));
    let unset = pod(json!({"containers": [{"name": "c"}]}));
    assert_eq!(verify_run_as_non_root(&unset, &c, "root"), Ok(()));
}

#[test]
fn security_mapping() {
    let f = Fixture::new();
    let sec = |sc: Value| {
        f.spec(&pod_with(json!({"securityContext": sc})))
            .map(|s| s.security)
    };
    let default = sec(json!({})).expect("spec");
    assert_eq!(
        (
            default.privileged,
            default.no_new_privileges,
            default.read_only_rootfs,
            default.seccomp
        ),
        (false, false, false, Choice::Default),
        "kubelet sets no_new_privs only for an explicit allowPrivilegeEscalation: false; \
         seccomp is the default profile unless Unconfined is asked for"
    );
    let open = sec(json!({"seccompProfile": {"type": "Unconfined"}})).expect("spec");
    assert_eq!(open.seccomp, Choice::Unconfined);
    let s = sec(json!({
        "privileged": false,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}
    }))
    .expect("spec");
    assert_eq!(
        (s.cap_add, s.cap_drop),
        (vec!["NET_ADMIN".to_string()], vec!["ALL".to_string()])
    );
    assert!(s.no_new_privileges && s.read_only_rootfs && !s.privileged);
    assert_eq!(s.seccomp, Choice::Default);
    let p = sec(json!({"privileged": true, "allowPrivilegeEscalation": true})).expect("spec");
    assert!(p.privileged && !p.no_new_privileges);
    assert!(matches!(
        sec(json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})),
        Err(SpecError::Unsupported(_))
    ));
    let from_pod = pod(
        json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "c"}]}),
    );
    assert_eq!(
        f.spec(&from_pod).expect("spec").security.seccomp,
        Choice::Default
    );
}

#[test]
fn resources_from_limits() {
    let f = Fixture::new();
    let res = |r: Value| {
        f.spec(&pod_with(json!({"resources": r})))
            .map(|s| s.resources)
    };
    let r = res(json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}}))
        .expect("spec");
    assert_eq!(r.memory, Some(128 << 20));
    assert_eq!(r.cpu, Some(CpuQuota::of_cpus(0.5)));
    let r = res(json!({"limits": {"cpu": "2"}})).expect("spec");
    assert_eq!(r.cpu.map(|c| c.quota), Some(200_000));
    let tiny = res(json!({"limits": {"cpu": "1m", "memory": "0"}})).expect("spec");
    assert_eq!(
        (tiny.cpu.map(|c| c.quota), tiny.memory),
        (Some(1000), None),
        "kubelet's 1 ms minimum"
    );
    assert_eq!(r.cpu_shares, Some(2), "no request: kubelet's minimum");
    assert_eq!(
        res(json!({})).expect("spec"),
        Resources {
            cpu_shares: Some(2),
            ..Resources::default()
        }
    );
    assert!(matches!(
        res(json!({"limits": {"memory": "lots"}})),
        Err(SpecError::Quantity { .. })
    ));
    // 1024 shares per CPU requested.
    let r = res(json!({"requests": {"cpu": "250m"}})).expect("spec");
    assert_eq!(r.cpu_shares, Some(256));
    let r = res(json!({"requests": {"cpu": "1"}})).expect("spec");
    assert_eq!(r.cpu_shares, Some(1024));
}

#[test]
fn oom_scores_follow_the_qos_class_and_groups_the_pod() {
    let f = Fixture::new();
    // The fixture's node has 8 GiB.
    let adj = |r: Value, qos: &str| {
        let mut p = pod_with(json!({"resources": r}));
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            qos_class: Some(qos.into()),
            ..Default::default()
        });
        f.spec(&p).expect("spec").process.oom_score_adj
    };
    assert_eq!(adj(json!({}), "BestEffort"), Some(1000));
    let both = json!({"cpu": "1", "memory": "1Gi"});
    assert_eq!(
        adj(json!({"limits": both, "requests": both}), "Guaranteed"),
        Some(-997)
    );
    // 1 GiB of 8: 1000 - 1000/8.
    assert_eq!(
        adj(json!({"requests": {"memory": "1Gi"}}), "Burstable"),
        Some(875)
    );
    assert_eq!(
        adj(json!({"requests": {"cpu": "1"}}), "Burstable"),
        Some(999)
    );
    assert_eq!(
        adj(json!({"requests": {"memory": "8Gi"}}), "Burstable"),
        Some(3)
    );
    // Without a recorded class it is worked out as the API server would.
    let p = pod_with(json!({"resources": {"requests": {"memory": "1Gi"}}}));
    assert_eq!(f.spec(&p).expect("spec").process.oom_score_adj, Some(875));

    let mut p = pod_with(json!({}));
    p.spec.as_mut().unwrap().security_context = Some(
        serde_json::from_value(json!({
            "supplementalGroups": [2000, 3000, 2000], "fsGroup": 4000
        }))
        .unwrap(),
    );
    assert_eq!(
        f.spec(&p).expect("spec").process.groups,
        vec![2000, 3000, 4000]
    );
}

#[test]
fn hosts_and_dns() {
    let f = Fixture::new();
    let etc = |spec: Value| f.spec(&pod(spec)).map(|s| s.etc);
    let e = etc(json!({
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}, {"ip": "::1", "hostnames": ["six"]}],
        "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["x.y"]},
        "containers": [{"name": "c"}]
    }))
    .expect("spec");
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    assert_eq!(
        e.hosts,
        [
            ("foo.local".into(), ip("10.1.2.3")),
            ("bar.local".into(), ip("10.1.2.3")),
            ("six".into(), ip("::1"))
        ]
    );
    // ClusterFirst: the cluster DNS and the namespace's search path, with
    // dnsConfig merged in.
    assert_eq!(e.dns_servers, [ip("10.43.0.10"), ip("1.1.1.1")]);
    assert_eq!(
        e.dns_search,
        [
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "x.y"
        ]
    );
    assert_eq!(e.dns_options, ["ndots:5"]);
    // On the host network ClusterFirst is Default (the node's resolvers)...
    let host = etc(json!({"hostNetwork": true, "containers": [{"name": "c"}]})).expect("spec");
    assert!(
        host.dns_servers.is_empty() && host.dns_search.is_empty() && host.dns_options.is_empty()
    );
    // ...unless asked for with ClusterFirstWithHostNet.
    let with = etc(json!({
        "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet",
        "dnsConfig": {"options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
        "containers": [{"name": "c"}]
    }))
    .expect("spec");
    assert_eq!(with.dns_servers, [ip("10.43.0.10")]);
    assert_eq!(with.dns_options, ["ndots:2", "edns0"]);
    let default =
        etc(json!({"dnsPolicy": "Default", "containers": [{"name": "c"}]})).expect("spec");
    assert!(default.dns_servers.is_empty() && default.dns_search.is_empty());
    let none = etc(json!({
        "dnsPolicy": "None",
        "dnsConfig": {"nameservers": ["1.1.1.1", "8.8.8.8"], "searches": ["ns.svc.example", "example"]},
        "containers": [{"name": "c"}]
    }))
    .expect("spec");
    assert_eq!(none.dns_servers, [ip("1.1.1.1"), ip("8.8.8.8")]);
    assert_eq!(none.dns_search, ["ns.svc.example", "example"]);
    assert_eq!(e.hostname, None, "the sandbox's");
    assert!(matches!(
        etc(
            json!({"hostAliases": [{"ip": "nope", "hostnames": ["a"]}], "containers": [{"name": "c"}]})
        ),
        Err(SpecError::Address { .. })
    ));
}

/// With the node's resolv.conf known: ClusterFirst adds its search domains
/// after the cluster's; Default is it, with dnsConfig merged in (kubelet's
/// way; the engine's Docker way would replace the node's servers).
#[test]
fn the_nodes_resolv_conf_under_each_policy() {
    let mut f = Fixture::new();
    f.host_dns = Some(super::HostDns::parse(
        "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch corp.example\noptions edns0 timeout:2\n",
    ));
    let etc = |spec: Value| f.spec(&pod(spec)).map(|s| s.etc).expect("spec");
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let first = etc(json!({"containers": [{"name": "c"}]}));
    assert_eq!(first.dns_servers, [ip("10.43.0.10")]);
    assert_eq!(
        first.dns_search,
        [
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "corp.example"
        ]
    );
    assert_eq!(first.dns_options, ["ndots:5"]);
    let default = etc(json!({
        "dnsPolicy": "Default",
        "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["x.y"],
                      "options": [{"name": "timeout", "value": "5"}]},
        "containers": [{"name": "c"}]
    }));
    assert_eq!(default.dns_servers, [ip("192.0.2.1"), ip("1.1.1.1")]);
    assert_eq!(default.dns_search, ["corp.example", "x.y"]);
    assert_eq!(default.dns_options, ["edns0", "timeout:5"]);
    // On the host network the node's loopback stub is reachable: kept.
    let host_net = etc(json!({"hostNetwork": true, "containers": [{"name": "c"}]}));
    assert_eq!(host_net.dns_servers, [ip("127.0.0.53"), ip("192.0.2.1")]);
    assert!(host_net.dns_exact && first.dns_exact && default.dns_exact);
    // None ignores the node.
    let none = etc(json!({
        "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]},
        "containers": [{"name": "c"}]
    }));
    assert_eq!(none.dns_servers, [ip("1.1.1.1")]);
    assert!(none.dns_search.is_empty() && none.dns_options.is_empty());
    // Search domains: 32 at most, 2,048 characters in all.
    let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
    let capped = etc(
        json!({"dnsPolicy": "None", "dnsConfig": {"searches": many}, "containers": [{"name": "c"}]}),
    );
    assert_eq!(capped.dns_search.len(), 32);
    let long: Vec<String> = (0..20).map(|i| format!("{i}{}", "a".repeat(200))).collect();
    let cut = etc(
        json!({"dnsPolicy": "None", "dnsConfig": {"searches": long}, "containers": [{"name": "c"}]}),
    );
    assert_eq!(
        cut.dns_search.len(),
        10,
        "{}",
        cut.dns_search.join(" ").len()
    );
}

fn named(name: &str, namespace: &str, uid: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": {"containers": []}
    }))
    .expect("pod")
}

fn name_rule(name: &str) -> bool {
    crate::runtime::container::options::check_name(name).is_ok()
}

#[test]
fn names_fit_the_engine_rule() {
    let p = named("web", "shop", UID);
    assert_eq!(sandbox_name(&p), format!("k8s_web_shop_{UID}"));
    assert_eq!(
        container_name(&p, "app", 0),
        format!("k8s_app_web_shop_{UID}_0")
    );

    let long_pod = "p".repeat(253);
    let long_ns = "n".repeat(63);
    let long_c = "c".repeat(63);
    let p = named(&long_pod, &long_ns, UID);
    let sandbox = sandbox_name(&p);
    assert!(name_rule(&sandbox) && sandbox.len() == 128, "{sandbox}");
    assert!(sandbox.ends_with(&format!("_{UID}")));
    // The namespace keeps its fair half of what the UID leaves.
    assert!(
        sandbox.contains(&format!("_{}_", "n".repeat(43))),
        "{sandbox}"
    );

    let name = container_name(&p, &long_c, 4_000_000_000);
    assert!(name_rule(&name) && name.len() <= 128, "{name}");
    assert!(
        name.starts_with(&format!("k8s_{long_c}_")),
        "the container's name is kept whole"
    );
    assert!(name.ends_with(&format!("_{UID}_4000000000")));
    assert_ne!(
        container_name(&p, &long_c, 1),
        container_name(&p, &format!("{}d", "c".repeat(62)), 1)
    );

    let short_ns = named(&long_pod, "a", UID);
    let name = sandbox_name(&short_ns);
    assert!(
        name.contains("_a_") && name.len() == 128,
        "a short part leaves its share to the other"
    );

    let odd = named("wéb pod", "shop", UID);
    assert!(name_rule(&sandbox_name(&odd)) && name_rule(&container_name(&odd, "ç", 1)));
}

#[test]
fn host_ports_are_published() {
    use crate::net::ports::Proto;
    use k8s_openapi::api::core::v1::ContainerPort;
    let mut pod = Pod {
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                ports: Some(vec![
                    ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        ..Default::default()
                    },
                    ContainerPort {
                        container_port: 53,
                        host_port: Some(5353),
                        host_ip: Some("127.0.0.1".into()),
                        protocol: Some("UDP".into()),
                        ..Default::default()
                    },
                    ContainerPort {
                        container_port: 9000,
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let ports = host_ports(&pod).unwrap();
    assert_eq!(ports.len(), 2);
    assert_eq!((ports[0].host_port, ports[0].container_port), (8080, 80));
    assert_eq!(ports[0].host_ip, None);
    assert_eq!(ports[1].proto, Proto::Udp);
    assert_eq!(ports[1].host_ip, Some("127.0.0.1".parse().unwrap()));
    pod.spec.as_mut().unwrap().containers[0]
        .ports
        .as_mut()
        .unwrap()[0]
        .protocol = Some("SCTP".into());
    assert!(host_ports(&pod).is_err());
}
