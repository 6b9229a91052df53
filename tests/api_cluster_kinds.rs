//! The kinds kubectl and tooling assume every cluster has, and the
//! admission that comes with them: `kubectl create quota|priorityclass|
//! pdb|ingress`, tables as upstream prints them, ResourceQuota charged and
//! enforced, LimitRange defaults and bounds, PriorityClass resolution and
//! the two system classes, `apply --prune` with its default allowlist
//! (which reads ReplicationControllers and Ingresses), and
//! `kubectl cluster-info dump`.

mod support;

use support::{json, stderr, stdout, Server};

fn apply(s: &Server, manifest: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], manifest);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn kubectl_creates_the_policy_kinds_and_prints_them_as_upstream() {
    let s = Server::start();
    s.kubectl_ok(&[
        "create",
        "quota",
        "q1",
        "--hard=pods=2,requests.cpu=1,limits.memory=1Gi",
    ]);
    s.kubectl_ok(&[
        "create",
        "priorityclass",
        "high",
        "--value=1000",
        "--description=x",
    ]);
    s.kubectl_ok(&[
        "create",
        "pdb",
        "p1",
        "--selector=app=x",
        "--min-available=1",
    ]);
    s.kubectl_ok(&[
        "create",
        "ingress",
        "i1",
        "--rule=foo.com/bar=svc1:8080,tls=my-cert",
    ]);
    let quota = s.kubectl_ok(&["get", "quota", "q1"]);
    assert!(
        quota.contains("pods: 0/2, requests.cpu: 0/1   limits.memory: 0/1Gi"),
        "{quota}"
    );
    let pdb = s.kubectl_ok(&["get", "pdb", "p1"]);
    assert!(
        pdb.contains("p1     1               N/A               0"),
        "{pdb}"
    );
    let ing = s.kubectl_ok(&["get", "ing", "i1"]);
    assert!(
        ing.contains("i1     <none>   foo.com             80, 443"),
        "{ing}"
    );
    let pc = s.kubectl_ok(&["get", "pc"]);
    for line in [
        "high                      1000         false",
        "system-cluster-critical   2000000000   false",
        "system-node-critical      2000001000   false",
    ] {
        assert!(pc.contains(line), "{pc}");
    }
    // The other kinds are served and printed with their own columns.
    apply(
        &s,
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: local, annotations: {storageclass.kubernetes.io/is-default-class: 'true'}}\nprovisioner: skiff.io/local\n---\n\
         apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: fast}\nhandler: runc\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: web}\nspec: {controller: example.com/ingress}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec: {podSelector: {matchLabels: {app: db}}}\n---\n\
         apiVersion: v1\nkind: ReplicationController\nmetadata: {name: rc1}\nspec: {replicas: 2, template: {metadata: {labels: {app: r}}, spec: {containers: [{name: c, image: busybox}]}}}\n---\n\
         apiVersion: v1\nkind: PodTemplate\nmetadata: {name: t1}\ntemplate: {metadata: {labels: {app: t}}, spec: {containers: [{name: c, image: busybox}]}}\n",
    );
    let sc = s.kubectl_ok(&["get", "sc"]);
    assert!(
        sc.contains("local (default)   skiff.io/local   Delete          Immediate"),
        "{sc}"
    );
    assert!(s
        .kubectl_ok(&["get", "runtimeclass"])
        .contains("fast   runc"));
    assert!(s
        .kubectl_ok(&["get", "ingressclass"])
        .contains("web    example.com/ingress   <none>"));
    assert!(s.kubectl_ok(&["get", "netpol"]).contains("deny   app=db"));
    let rc = s.kubectl_ok(&["get", "rc", "rc1", "-o", "json"]);
    assert_eq!(json(&rc)["spec"]["selector"]["app"], "r", "{rc}");
    assert!(s
        .kubectl_ok(&["get", "rc"])
        .contains("rc1    2         0         0"));
    assert!(s
        .kubectl_ok(&["get", "podtemplates"])
        .contains("t1         c            busybox   app=t"));
    // `get all` includes ReplicationControllers, as upstream's does.
    assert!(s
        .kubectl_ok(&["get", "all"])
        .contains("replicationcontroller/rc1"));

    // Validation with upstream's messages.
    let out = s.kubectl_err(&["create", "priorityclass", "system-mine", "--value=5"]);
    assert!(
        stderr(&out).contains(
            "priority class names with 'system-' prefix are reserved for system use only"
        ),
        "{}",
        stderr(&out)
    );
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: both}\nspec: {minAvailable: 1, maxUnavailable: 1}\n",
    );
    assert!(
        stderr(&out).contains("minAvailable and maxUnavailable cannot be both set"),
        "{}",
        stderr(&out)
    );
    let out = s.kubectl_err(&["delete", "pc", "system-node-critical"]);
    assert!(
        stderr(&out).contains("this is a system priority class and cannot be deleted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn quotas_are_charged_enforced_and_given_back() {
    let mut s = Server::start();
    // kube-root-ca.crt counts too, as upstream.
    s.wait_root_ca("default");
    s.kubectl_ok(&[
        "create",
        "quota",
        "q",
        "--hard=pods=2,requests.cpu=1,count/configmaps=2",
    ]);
    s.kubectl_ok(&["run", "p1", "--image=busybox", "--overrides", r#"{"spec":{"containers":[{"name":"p1","image":"busybox","resources":{"requests":{"cpu":"300m"}}}]}}"#]);
    // A pod without the requests a quota tracks is refused with the names.
    let out = s.kubectl_err(&["run", "p2", "--image=busybox"]);
    assert!(
        stderr(&out).contains(
            "pods \"p2\" is forbidden: failed quota: q: must specify requests.cpu for: p2"
        ),
        "{}",
        stderr(&out)
    );
    let over = r#"{"spec":{"containers":[{"name":"p3","image":"busybox","resources":{"requests":{"cpu":"800m"}}}]}}"#;
    let out = s.kubectl_err(&["run", "p3", "--image=busybox", "--overrides", over]);
    assert!(
        stderr(&out).contains("pods \"p3\" is forbidden: exceeded quota: q, requested: requests.cpu=800m, used: requests.cpu=300m, limited: requests.cpu=1"),
        "{}",
        stderr(&out)
    );
    let used = json(&s.kubectl_ok(&["get", "quota", "q", "-o", "json"]));
    assert_eq!(used["status"]["used"]["pods"], "1", "{used}");
    assert_eq!(used["status"]["used"]["requests.cpu"], "300m", "{used}");
    // count/<resource> covers any kind.
    s.kubectl_ok(&["create", "configmap", "c1"]);
    let out = s.kubectl_err(&["create", "configmap", "c2"]);
    assert!(
        stderr(&out).contains("exceeded quota: q, requested: count/configmaps=1"),
        "{}",
        stderr(&out)
    );
    // A delete gives back what the object used; then the create fits.
    s.kubectl_ok(&["delete", "pod", "p1"]);
    let used = json(&s.kubectl_ok(&["get", "quota", "q", "-o", "json"]));
    assert_eq!(used["status"]["used"]["requests.cpu"], "0", "{used}");
    s.kubectl_ok(&["run", "p3", "--image=busybox", "--overrides", over]);
    // A quota created over existing objects counts them.
    s.kubectl_ok(&["create", "quota", "late", "--hard=pods=5"]);
    let late = json(&s.kubectl_ok(&["get", "quota", "late", "-o", "json"]));
    assert_eq!(late["status"]["used"]["pods"], "1", "{late}");
    assert_eq!(late["status"]["hard"]["pods"], "5", "{late}");
    // After a restart the quotas still hold.
    s.restart();
    let out = s.kubectl_err(&["create", "configmap", "c3"]);
    assert!(
        stderr(&out).contains("exceeded quota: q"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn concurrent_creates_never_exceed_a_quota() {
    let s = Server::start();
    // Three and kube-root-ca.crt, which counts too, as upstream.
    s.wait_root_ca("default");
    s.kubectl_ok(&["create", "quota", "q", "--hard=configmaps=4"]);
    let created = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || s.kubectl(&["create", "configmap", &format!("c{i}")]))
            })
            .collect();
        runs.into_iter()
            .filter_map(|h| h.join().ok())
            .filter(|out| out.status.success())
            .count()
    });
    let n = stdout(&s.kubectl(&["get", "cm", "-o", "name"]))
        .lines()
        .filter(|l| l.starts_with("configmap/c"))
        .count();
    assert_eq!(n, 3, "stored");
    assert!(created <= 3, "{created} reported created");
}

#[test]
fn limit_ranges_default_and_bound_container_resources() {
    let s = Server::start();
    apply(
        &s,
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: lr}\nspec:\n  limits:\n  - type: Container\n    default: {memory: 256Mi}\n    defaultRequest: {cpu: 250m}\n    max: {cpu: '2'}\n",
    );
    s.kubectl_ok(&["run", "p1", "--image=busybox"]);
    let pod = json(&s.kubectl_ok(&["get", "pod", "p1", "-o", "json"]));
    let res = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(res["requests"]["cpu"], "250m", "{res}");
    assert_eq!(
        res["limits"]["cpu"], "2",
        "the max is the default limit: {res}"
    );
    assert_eq!(res["limits"]["memory"], "256Mi", "{res}");
    assert_eq!(pod["status"]["qosClass"], "Burstable");
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container p1; cpu, memory limit for container p1"
    );
    let big = r#"{"spec":{"containers":[{"name":"p2","image":"busybox","resources":{"limits":{"cpu":"3"}}}]}}"#;
    let out = s.kubectl_err(&["run", "p2", "--image=busybox", "--overrides", big]);
    assert!(
        stderr(&out).contains(
            "pods \"p2\" is forbidden: maximum cpu usage per Container is 2, but limit is 3"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pods_take_their_priority_from_their_class() {
    let s = Server::start();
    let with_class = |name: &str, class: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{priorityClassName: {class}, containers: [{{name: c, image: busybox}}]}}\n")
    };
    apply(&s, &with_class("crit", "system-cluster-critical"));
    let pod = json(&s.kubectl_ok(&["get", "pod", "crit", "-o", "json"]));
    assert_eq!(pod["spec"]["priority"], 2_000_000_000i64);
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &with_class("bad", "nope"));
    assert!(
        stderr(&out)
            .contains("pods \"bad\" is forbidden: no PriorityClass with name nope was found"),
        "{}",
        stderr(&out)
    );
    // The global default applies to pods that name no class; only one
    // class can be it.
    apply(
        &s,
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: dflt}\nvalue: 7\nglobalDefault: true\npreemptionPolicy: Never\n",
    );
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: other}\nvalue: 8\nglobalDefault: true\n",
    );
    assert!(
        stderr(&out).contains(
            "PriorityClass dflt is already marked as default. Only one default can exist"
        ),
        "{}",
        stderr(&out)
    );
    s.kubectl_ok(&["run", "plain", "--image=busybox"]);
    let pod = json(&s.kubectl_ok(&["get", "pod", "plain", "-o", "json"]));
    assert_eq!(pod["spec"]["priority"], 7);
    assert_eq!(pod["spec"]["priorityClassName"], "dflt");
    assert_eq!(pod["spec"]["preemptionPolicy"], "Never");
}

#[test]
fn apply_prune_and_cluster_info_dump_work_with_the_default_allowlist() {
    let s = Server::start();
    let both = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1, labels: {app: x}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c2, labels: {app: x}}\n";
    let one = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1, labels: {app: x}}\n";
    apply(&s, both);
    let path = s.write_file("one.yaml", one);
    let out = s.kubectl_ok(&["apply", "--prune", "-l", "app=x", "-f", &path]);
    assert!(out.contains("configmap/c2 pruned"), "{out}");
    let names = s.kubectl_ok(&["get", "cm", "-l", "app=x", "-o", "name"]);
    assert_eq!(names.trim(), "configmap/c1");

    s.kubectl_ok(&["create", "deployment", "d", "--image=busybox"]);
    let dump = s.kubectl_ok(&["cluster-info", "dump"]);
    for kind in [
        "NodeList",
        "EventList",
        "ReplicationControllerList",
        "ServiceList",
        "DeploymentList",
        "ReplicaSetList",
        "PodList",
    ] {
        assert!(
            dump.contains(&format!("\"kind\": \"{kind}\"")),
            "{kind} missing"
        );
    }
}

/// What the first review found: a quota on requests alone still makes a
/// pod state them; updates that use more are charged and ones that use
/// less give back; huge quantities neither crash nor slip through; claims
/// are bounded by LimitRanges; one global default PriorityClass, also on
/// update.
#[test]
fn admission_holds_for_updates_and_edge_cases() {
    let s = Server::start();
    s.kubectl_ok(&["create", "quota", "rq", "--hard=requests.cpu=1"]);
    let out = s.kubectl_err(&["run", "bare", "--image=busybox"]);
    assert!(
        stderr(&out).contains("failed quota: rq: must specify requests.cpu for: bare"),
        "{}",
        stderr(&out)
    );

    s.kubectl_ok(&[
        "create",
        "quota",
        "svc",
        "--hard=services.loadbalancers=0,services.nodeports=1,pods=2",
    ]);
    s.kubectl_ok(&["create", "service", "clusterip", "s1", "--tcp=80:80,81:81"]);
    let out = s.kubectl_err(&[
        "patch",
        "svc",
        "s1",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ]);
    assert!(
        stderr(&out).contains(
            "exceeded quota: svc, requested: services.loadbalancers=1,services.nodeports=2"
        ),
        "{}",
        stderr(&out)
    );

    // A pod that finishes stops counting at once.
    let req = r#"{"spec":{"containers":[{"name":"p","image":"busybox","resources":{"requests":{"cpu":"100m"}}}]}}"#;
    s.kubectl_ok(&["run", "p", "--image=busybox", "--overrides", req]);
    let used = |q: &str, r: &str| {
        json(&s.kubectl_ok(&["get", "quota", q, "-o", "json"]))["status"]["used"][r].clone()
    };
    assert_eq!(used("svc", "pods"), "1");
    s.kubectl_ok(&[
        "patch",
        "pod",
        "p",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Succeeded"}}"#,
    ]);
    assert_eq!(used("svc", "pods"), "0");
    assert_eq!(used("rq", "requests.cpu"), "0");

    // Quantities near the largest that validate: refused, not a crash.
    s.kubectl_ok(&[
        "create",
        "quota",
        "eph",
        "--hard=requests.ephemeral-storage=1Gi",
    ]);
    // (Through a manifest: `kubectl run --overrides` rounds such values.)
    let big = "'100000000000000000000000000000'";
    let huge = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: huge}}\nspec:\n  containers:\n  - {{name: a, image: busybox, resources: {{requests: {{cpu: 1m, ephemeral-storage: {big}}}}}}}\n  - {{name: b, image: busybox, resources: {{requests: {{cpu: 1m, ephemeral-storage: {big}}}}}}}\n"
    );
    let out = s.kubectl_stdin(&["create", "-f", "-"], &huge);
    assert!(
        stderr(&out).contains("exceeded quota: eph"),
        "{}",
        stderr(&out)
    );
    assert!(
        s.kubectl(&["get", "ns"]).status.success(),
        "the server still serves"
    );

    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: claims}\nspec:\n  limits:\n  - type: PersistentVolumeClaim\n    max: {storage: 1Gi}\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: big}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}}\n",
    );
    assert!(
        stderr(&out).contains("persistentvolumeclaims \"big\" is forbidden: maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 5Gi"),
        "{}",
        stderr(&out)
    );

    s.kubectl_ok(&[
        "create",
        "priorityclass",
        "d1",
        "--value=1",
        "--global-default",
    ]);
    s.kubectl_ok(&["create", "priorityclass", "d2", "--value=2"]);
    let out = s.kubectl_err(&[
        "patch",
        "pc",
        "d2",
        "--type=merge",
        "-p",
        r#"{"globalDefault":true}"#,
    ]);
    assert!(
        stderr(&out)
            .contains("PriorityClass d1 is already marked as default. Only one default can exist"),
        "{}",
        stderr(&out)
    );
    // deletecollection leaves the system classes alone.
    s.kubectl_ok(&["delete", "pc", "d1", "d2"]);
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let (code, body) = s.curl_get(
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        &["-X", "DELETE", "-H", &auth],
    );
    assert_eq!(code, 200, "{body}");
    let left = s.kubectl_ok(&["get", "pc", "-o", "name"]);
    assert_eq!(left.lines().count(), 2, "{left}");
}

/// DefaultStorageClass: a claim naming no class gets the default one (the
/// newest when several are marked); `""` and a named class are kept.
#[test]
fn claims_get_the_default_storage_class() {
    let s = Server::start();
    let claim = |name: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n{class}"
        )
    };
    let class_of = |name: &str| {
        s.kubectl_ok(&[
            "get",
            "pvc",
            name,
            "-o",
            "jsonpath={.spec.storageClassName}",
        ])
    };
    apply(&s, &claim("before", ""));
    assert_eq!(class_of("before"), "", "no default class yet");
    let sc = |name: &str| {
        format!("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {name}\n  annotations: {{storageclass.kubernetes.io/is-default-class: \"true\"}}\nprovisioner: example.com/{name}\n")
    };
    apply(&s, &sc("old"));
    apply(&s, &claim("one", ""));
    assert_eq!(class_of("one"), "old");
    // Creation times have whole seconds: the second default is newer.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    apply(&s, &sc("new"));
    apply(&s, &claim("two", ""));
    assert_eq!(class_of("two"), "new");
    apply(&s, &claim("none", "  storageClassName: \"\"\n"));
    assert_eq!(class_of("none"), "");
    apply(&s, &claim("named", "  storageClassName: old\n"));
    assert_eq!(class_of("named"), "old");
}
