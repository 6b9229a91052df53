use super::*;
use crate::server::apiserver::builtin::builtin_resources;
use serde_json::json;

#[path = "pod_tests.rs"]
mod pod_tests;

pub(super) fn now() -> DateTime<Utc> {
    duration::parse_time("2026-11-25T09:00:00Z").unwrap_or_default()
}

pub(super) fn def(group: &str, plural: &str) -> ResourceDef {
    builtin_resources()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap_or_else(|| panic!("no {plural}"))
}

pub(super) fn row(group: &str, plural: &str, obj: Value) -> Vec<Value> {
    cells(&def(group, plural), &obj, now())
}

pub(super) const CREATED: &str = "2026-11-25T07:58:00Z"; // 62m before now()

#[test]
fn every_builtin_has_one_cell_per_column() {
    let empty = json!({"metadata": {"name": "x"}});
    for d in builtin_resources() {
        let cols = columns(&d);
        let name_cols = cols.iter().filter(|c| c.format == "name").count();
        assert_eq!(name_cols, 1, "{}", d.plural);
        assert_eq!(cells(&d, &empty, now()).len(), cols.len(), "{}", d.plural);
    }
}

#[test]
fn services() {
    let svc = |spec: Value, status: Value| json!({"metadata": {"name": "web", "creationTimestamp": CREATED}, "spec": spec, "status": status});
    let r = row(
        "",
        "services",
        svc(
            json!({"type": "NodePort", "clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"],
                   "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                   "selector": {"tier": "fe", "app": "web"}}),
            json!({}),
        ),
    );
    assert_eq!(
        r,
        vec![
            json!("web"),
            json!("NodePort"),
            json!("10.43.0.7"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("62m"),
            json!("app=web,tier=fe")
        ]
    );
    let r = row("", "services", svc(json!({"clusterIP": "None"}), json!({})));
    assert_eq!(
        (r[1].as_str(), r[2].as_str(), r[4].as_str(), r[6].as_str()),
        (
            Some("ClusterIP"),
            Some("None"),
            Some("<none>"),
            Some("<none>")
        )
    );
    let r = row(
        "",
        "services",
        svc(
            json!({"type": "LoadBalancer", "ports": [{"port": 443}]}),
            json!({}),
        ),
    );
    assert_eq!(
        (r[3].as_str(), r[4].as_str()),
        (Some("<pending>"), Some("443/TCP"))
    );
    let r = row(
        "",
        "services",
        svc(
            json!({"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}),
        ),
    );
    assert_eq!(r[3], json!("5.6.7.8,lb.example.com,1.2.3.4"));
    let r = row(
        "",
        "services",
        svc(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
        ),
    );
    assert_eq!(r[3], json!("db.example.com"));
}

#[test]
fn endpoints_and_slices() {
    let ep = json!({"metadata": {"name": "web"}, "subsets": [
        {"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}], "ports": [{"port": 80}, {"port": 443}]}]});
    assert_eq!(
        row("", "endpoints", ep)[1],
        json!("10.42.0.5:80,10.42.0.6:80,10.42.0.5:443 + 1 more...")
    );
    let ep = json!({"metadata": {"name": "h"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
    assert_eq!(row("", "endpoints", ep)[1], json!("[fd00::1]:80"));
    let ep = json!({"metadata": {"name": "h"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
    assert_eq!(row("", "endpoints", ep)[1], json!("10.0.0.1"));
    assert_eq!(
        row("", "endpoints", json!({"metadata": {"name": "e"}}))[1],
        json!("<none>")
    );

    let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
        "ports": [{"port": 80}, {"name": "dns"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"]}]});
    let r = row("discovery.k8s.io", "endpointslices", slice);
    assert_eq!(
        r[1..4],
        [
            json!("IPv4"),
            json!("80,dns,*"),
            json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")
        ]
    );
    let r = row(
        "discovery.k8s.io",
        "endpointslices",
        json!({"metadata": {"name": "e"}}),
    );
    assert_eq!(r[2..4], [json!("<unset>"), json!("<unset>")]);
}

#[test]
fn nodes() {
    let node = json!({
        "metadata": {"name": "node-1", "creationTimestamp": "2026-11-23T06:00:00Z",
                     "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "true",
                                "kubernetes.io/role": "edge"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "node-1"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.0-skiff", "osImage": "Debian GNU/Linux 12 (bookworm)"}}
    });
    assert_eq!(
        row("", "nodes", node),
        vec![
            json!("node-1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,edge,master"),
            json!("2d3h"),
            json!("v1.32.0-skiff"),
            json!("192.168.1.10"),
            json!("<none>"),
            json!("Debian GNU/Linux 12 (bookworm)"),
            json!("<unknown>"),
            json!("<unknown>")
        ]
    );
    let r = row(
        "",
        "nodes",
        json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
    );
    assert_eq!(
        (r[1].as_str(), r[2].as_str(), r[3].as_str()),
        (Some("NotReady"), Some("<none>"), Some("<unknown>"))
    );
    assert_eq!(
        row("", "nodes", json!({"metadata": {"name": "n"}}))[1],
        json!("Unknown")
    );
}

#[test]
fn events_core_and_v1() {
    let ev = json!({
        "metadata": {"name": "manual.1", "namespace": "default", "creationTimestamp": "2026-11-25T08:56:41Z"},
        "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
        "reason": "Manual", "message": " event posted during watch\n", "type": "Warning",
        "source": {"component": "driver"},
        "firstTimestamp": "2026-11-25T08:50:00Z", "lastTimestamp": "2026-11-25T09:00:00Z", "count": 3
    });
    assert_eq!(
        row("", "events", ev),
        vec![
            json!("0s"),
            json!("Warning"),
            json!("Manual"),
            json!("pod/web-0"),
            json!("spec.containers{app}"),
            json!("driver"),
            json!("event posted during watch"),
            json!("10m"),
            json!(3),
            json!("manual.1")
        ]
    );
    let ev1 = json!({
        "metadata": {"name": "x.1"},
        "regarding": {"kind": "Node"},
        "note": "rebooted", "reason": "Rebooted", "type": "Normal",
        "reportingController": "skiff-agent", "reportingInstance": "node-1",
        "eventTime": "2026-11-25T08:30:00.000000Z",
        "series": {"count": 4, "lastObservedTime": "2026-11-25T08:58:00.000000Z"}
    });
    let r = row("events.k8s.io", "events", ev1);
    assert_eq!(
        r,
        vec![
            json!("2m"),
            json!("Normal"),
            json!("Rebooted"),
            json!("node"),
            json!(""),
            json!("skiff-agent, node-1"),
            json!("rebooted"),
            json!("30m"),
            json!(4),
            json!("x.1")
        ]
    );
    let singleton = json!({"metadata": {"name": "s"}, "eventTime": "2026-11-25T08:59:00.000000Z"});
    let r = row("", "events", singleton);
    assert_eq!(
        (r[0].as_str(), r[7].as_str(), r[8].as_i64()),
        (Some("60s"), Some("60s"), Some(1))
    );
}

#[test]
fn workloads() {
    let template = json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "side", "image": "busybox"}]}});
    let deploy = json!({"metadata": {"name": "web", "creationTimestamp": CREATED},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    assert_eq!(
        row("apps", "deployments", deploy),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("62m"),
            json!("app,side"),
            json!("nginx:1.27,busybox"),
            json!("app=web")
        ]
    );
    let rs = json!({"metadata": {"name": "web-5d8"}, "spec": {"replicas": 2, "template": template,
        "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}},
        "status": {"replicas": 2, "readyReplicas": 1}});
    let r = row("apps", "replicasets", rs);
    assert_eq!(r[1..4], [json!(2), json!(2), json!(1)]);
    assert_eq!(r[7], json!("app in (web)"));
    let sts = json!({"metadata": {"name": "db"}, "spec": {"template": template}, "status": {"readyReplicas": 1}});
    assert_eq!(row("apps", "statefulsets", sts)[1], json!("1/1"));
    let ds = json!({"metadata": {"name": "agent"}, "spec": {"template": {"spec": {"nodeSelector": {"os": "linux"}}}},
        "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                   "updatedNumberScheduled": 2, "numberAvailable": 1}});
    let r = row("apps", "daemonsets", ds);
    assert_eq!(
        r[1..7],
        [
            json!(2),
            json!(2),
            json!(1),
            json!(2),
            json!(1),
            json!("os=linux")
        ]
    );
    assert_eq!(r[10], json!("<none>"));
}

#[test]
fn jobs_and_cronjobs() {
    let job = |spec: Value, status: Value| json!({"metadata": {"name": "pi", "creationTimestamp": CREATED}, "spec": spec, "status": status});
    let r = row(
        "batch",
        "jobs",
        job(
            json!({"completions": 1}),
            json!({"succeeded": 1, "startTime": "2026-11-25T08:00:00Z", "completionTime": "2026-11-25T08:00:42Z",
               "conditions": [{"type": "Complete", "status": "True"}]}),
        ),
    );
    assert_eq!(
        r[1..5],
        [json!("Complete"), json!("1/1"), json!("42s"), json!("62m")]
    );
    let r = row(
        "batch",
        "jobs",
        job(
            json!({"parallelism": 3}),
            json!({"startTime": "2026-11-25T08:57:00Z"}),
        ),
    );
    assert_eq!(r[1..4], [json!("Running"), json!("0/1 of 3"), json!("3m")]);
    let r = row(
        "batch",
        "jobs",
        job(
            json!({}),
            json!({"conditions": [{"type": "Failed", "status": "True"}]}),
        ),
    );
    assert_eq!(r[1..4], [json!("Failed"), json!("0/1"), json!("")]);
    let r = row(
        "batch",
        "jobs",
        job(
            json!({}),
            json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
        ),
    );
    assert_eq!(r[1], json!("Suspended"));

    let cj = json!({"metadata": {"name": "tick", "creationTimestamp": CREATED},
        "spec": {"schedule": "*/5 * * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": "2026-11-25T08:55:00Z"}});
    assert_eq!(
        row("batch", "cronjobs", cj),
        vec![
            json!("tick"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("5m"),
            json!("62m"),
            json!("c"),
            json!("busybox"),
            json!("<none>")
        ]
    );
}

#[test]
fn small_core_kinds() {
    let meta = json!({"name": "x", "creationTimestamp": CREATED});
    let cm = json!({"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
    assert_eq!(
        row("", "configmaps", cm),
        vec![json!("x"), json!(3), json!("62m")]
    );
    let secret = json!({"metadata": meta, "type": "Opaque", "data": {"a": ""}});
    assert_eq!(
        row("", "secrets", secret),
        vec![json!("x"), json!("Opaque"), json!(1), json!("62m")]
    );
    let sa = json!({"metadata": meta});
    assert_eq!(
        row("", "serviceaccounts", sa),
        vec![json!("x"), json!(0), json!("62m")]
    );
    let ns = json!({"metadata": meta, "status": {"phase": "Active"}});
    assert_eq!(
        row("", "namespaces", ns),
        vec![json!("x"), json!("Active"), json!("62m")]
    );
    let lease = json!({"metadata": meta, "spec": {"holderIdentity": "node-1"}});
    assert_eq!(
        row("coordination.k8s.io", "leases", lease),
        vec![json!("x"), json!("node-1"), json!("62m")]
    );
}

#[test]
fn volumes() {
    let pv = json!({"metadata": {"name": "pv1", "creationTimestamp": CREATED},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "default", "name": "data"},
                 "storageClassName": "local"},
        "status": {"phase": "Bound"}});
    assert_eq!(
        row("", "persistentvolumes", pv),
        vec![
            json!("pv1"),
            json!("1Gi"),
            json!("RWO,RWX"),
            json!("Retain"),
            json!("Bound"),
            json!("default/data"),
            json!("local"),
            json!("<unset>"),
            json!(""),
            json!("62m"),
            json!("<unset>")
        ]
    );
    let pvc = json!({"metadata": {"name": "data", "creationTimestamp": CREATED,
                                  "annotations": {"volume.beta.kubernetes.io/storage-class": "beta"}},
        "spec": {"volumeName": "pv1", "storageClassName": "local", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(
        row("", "persistentvolumeclaims", pvc),
        vec![
            json!("data"),
            json!("Bound"),
            json!("pv1"),
            json!("1Gi"),
            json!("RWO"),
            json!("beta"),
            json!("<unset>"),
            json!("62m"),
            json!("Filesystem")
        ]
    );
    let pending = json!({"metadata": {"name": "d", "deletionTimestamp": CREATED}, "status": {"phase": "Pending",
        "capacity": {"storage": "1Gi"}}});
    let r = row("", "persistentvolumeclaims", pending);
    assert_eq!(
        r[1..5],
        [json!("Terminating"), json!(""), json!(""), json!("")]
    );
}

#[test]
fn default_table_for_unknown_kinds() {
    let d = ResourceDef {
        group: "example.com",
        version: "v1",
        plural: "widgets",
        singular: "widget",
        kind: "Widget",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: &[],
        subresources: &[],
        strategy: crate::server::apiserver::kinds::KindRef(&crate::server::apiserver::kinds::PLAIN),
        rules: &crate::api::rules::PLAIN,
        printer: None,
        stored_as: None,
        custom: None,
    };
    let cols = columns(&d);
    assert_eq!(
        cols.iter()
            .map(|c| (&*c.name, &*c.type_))
            .collect::<Vec<_>>(),
        [("Name", "string"), ("Created At", "date")]
    );
    let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2026-11-25T07:58:00.5Z"}});
    assert_eq!(
        cells(&d, &obj, now()),
        vec![json!("w"), json!("2026-11-25T07:58:00Z")]
    );
}
