//! Round trips for the other core/v1 kinds (see `tests_kinds` for the helpers).

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::json;

use super::tests_kinds::{int, map, meta, quantities, roundtrip, s, string, time};

#[test]
fn service() {
    let svc = core::Service {
        metadata: meta("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    port: Some(80),
                    target_port: int(8080),
                    ..Default::default()
                },
                core::ServicePort {
                    name: s("admin"),
                    port: Some(9000),
                    target_port: string("admin"),
                    node_port: Some(30900),
                    app_protocol: s("http"),
                    ..Default::default()
                },
            ],
            selector: map(&[("app", "web")]),
            cluster_ip: s("10.43.0.20"),
            cluster_ips: vec!["10.43.0.20".into()],
            r#type: s("NodePort"),
            session_affinity: s("None"),
            ip_families: vec!["IPv4".into()],
            ip_family_policy: s("SingleStack"),
            internal_traffic_policy: s("Cluster"),
            external_traffic_policy: s("Cluster"),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus {
                ingress: vec![core::LoadBalancerIngress {
                    ip: s("192.0.2.1"),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&svc),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "admin", "appProtocol": "http", "port": 9000,
                     "targetPort": "admin", "nodePort": 30900}
                ],
                "selector": {"app": "web"},
                "clusterIP": "10.43.0.20",
                "clusterIPs": ["10.43.0.20"],
                "type": "NodePort",
                "sessionAffinity": "None",
                "externalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster"
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
        })
    );
}

#[test]
fn endpoints() {
    let ep = core::Endpoints {
        metadata: meta("web"),
        subsets: vec![core::EndpointSubset {
            addresses: vec![core::EndpointAddress {
                ip: s("10.42.0.5"),
                node_name: s("n1"),
                target_ref: Some(core::ObjectReference {
                    kind: s("Pod"),
                    name: s("p"),
                    namespace: s("default"),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ports: vec![core::EndpointPort {
                name: s("http"),
                port: Some(8080),
                protocol: s("TCP"),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(
        roundtrip(&ep),
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{
                "addresses": [{"ip": "10.42.0.5", "nodeName": "n1",
                               "targetRef": {"kind": "Pod", "namespace": "default", "name": "p"}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }]
        })
    );
}

#[test]
fn configmap_secret_serviceaccount() {
    let cm = core::ConfigMap {
        metadata: meta("c"),
        immutable: Some(false),
        data: map(&[("a", "1")]),
        binary_data: [("bin".to_string(), vec![0u8, 1, 2, 255])].into(),
    };
    assert_eq!(
        roundtrip(&cm),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "namespace": "default"},
               "immutable": false, "data": {"a": "1"}, "binaryData": {"bin": "AAEC/w=="}})
    );

    let secret = core::Secret {
        metadata: meta("tls"),
        data: [("tls.crt".to_string(), b"CERT".to_vec())].into(),
        string_data: map(&[("extra", "x")]),
        r#type: s("kubernetes.io/tls"),
        ..Default::default()
    };
    assert_eq!(
        roundtrip(&secret),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "tls", "namespace": "default"},
               "data": {"tls.crt": "Q0VSVA=="}, "stringData": {"extra": "x"},
               "type": "kubernetes.io/tls"})
    );

    let sa = core::ServiceAccount {
        metadata: meta("bot"),
        secrets: vec![core::ObjectReference {
            name: s("bot-token"),
            ..Default::default()
        }],
        image_pull_secrets: vec![core::LocalObjectReference { name: s("regcred") }],
        automount_service_account_token: Some(false),
    };
    assert_eq!(
        roundtrip(&sa),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "bot", "namespace": "default"},
               "secrets": [{"name": "bot-token"}],
               "imagePullSecrets": [{"name": "regcred"}],
               "automountServiceAccountToken": false})
    );
}

#[test]
fn core_event() {
    let ev = core::Event {
        metadata: meta("p.1"),
        involved_object: Some(core::ObjectReference {
            kind: s("Pod"),
            name: s("p"),
            namespace: s("default"),
            field_path: s("spec.containers{web}"),
            ..Default::default()
        }),
        reason: s("Pulled"),
        message: s("Successfully pulled image"),
        source: Some(core::EventSource {
            component: s("kubelet"),
            host: s("n1"),
        }),
        first_timestamp: time(1_700_000_000),
        last_timestamp: time(1_700_000_060),
        count: Some(2),
        r#type: s("Normal"),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_789),
        }),
        reporting_component: s("kubelet"),
        reporting_instance: s("n1"),
        ..Default::default()
    };
    assert_eq!(
        roundtrip(&ev),
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "p.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p",
                               "fieldPath": "spec.containers{web}"},
            "reason": "Pulled",
            "message": "Successfully pulled image",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2023-11-14T22:13:20Z",
            "lastTimestamp": "2023-11-14T22:14:20Z",
            "count": 2,
            "type": "Normal",
            "eventTime": "2023-11-14T22:13:20.123456Z",
            "reportingComponent": "kubelet",
            "reportingInstance": "n1"
        })
    );
}

#[test]
fn node() {
    let node = core::Node {
        metadata: Some(meta::ObjectMeta {
            name: s("n1"),
            labels: map(&[("kubernetes.io/hostname", "n1")]),
            ..Default::default()
        }),
        spec: Some(core::NodeSpec {
            pod_cidr: s("10.42.0.0/24"),
            pod_cid_rs: vec!["10.42.0.0/24".into()],
            taints: vec![core::Taint {
                key: s("dedicated"),
                value: s("edge"),
                effect: s("NoSchedule"),
                ..Default::default()
            }],
            unschedulable: Some(true),
            ..Default::default()
        }),
        status: Some(core::NodeStatus {
            capacity: quantities(&[("cpu", "2"), ("memory", "2Gi"), ("pods", "110")]),
            allocatable: quantities(&[("cpu", "2")]),
            conditions: vec![core::NodeCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_heartbeat_time: time(1_700_000_000),
                reason: s("KubeletReady"),
                ..Default::default()
            }],
            addresses: vec![core::NodeAddress {
                r#type: s("InternalIP"),
                address: s("192.0.2.10"),
            }],
            node_info: Some(core::NodeSystemInfo {
                kubelet_version: s("v1.32.0"),
                os_image: s("Debian"),
                architecture: s("amd64"),
                ..Default::default()
            }),
            daemon_endpoints: Some(core::NodeDaemonEndpoints {
                kubelet_endpoint: Some(core::DaemonEndpoint { port: Some(10250) }),
            }),
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&node),
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
            "spec": {
                "podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"],
                "unschedulable": true,
                "taints": [{"key": "dedicated", "value": "edge", "effect": "NoSchedule"}]
            },
            "status": {
                "capacity": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "allocatable": {"cpu": "2"},
                "conditions": [{"type": "Ready", "status": "True",
                                "lastHeartbeatTime": "2023-11-14T22:13:20Z",
                                "reason": "KubeletReady"}],
                "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian",
                             "architecture": "amd64"}
            }
        })
    );
}

#[test]
fn persistent_volumes() {
    let pv = core::PersistentVolume {
        metadata: Some(meta::ObjectMeta {
            name: s("pv1"),
            ..Default::default()
        }),
        spec: Some(core::PersistentVolumeSpec {
            capacity: quantities(&[("storage", "5Gi")]),
            persistent_volume_source: Some(core::PersistentVolumeSource {
                host_path: Some(core::HostPathVolumeSource {
                    path: s("/srv/pv1"),
                    r#type: s("DirectoryOrCreate"),
                }),
                ..Default::default()
            }),
            access_modes: vec!["ReadWriteOnce".into()],
            claim_ref: Some(core::ObjectReference {
                name: s("data"),
                namespace: s("default"),
                ..Default::default()
            }),
            persistent_volume_reclaim_policy: s("Retain"),
            storage_class_name: s("local"),
            volume_mode: s("Filesystem"),
            ..Default::default()
        }),
        status: Some(core::PersistentVolumeStatus {
            phase: s("Bound"),
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&pv),
        json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pv1"},
            "spec": {
                "capacity": {"storage": "5Gi"},
                "hostPath": {"path": "/srv/pv1", "type": "DirectoryOrCreate"},
                "accessModes": ["ReadWriteOnce"],
                "claimRef": {"namespace": "default", "name": "data"},
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "local",
                "volumeMode": "Filesystem"
            },
            "status": {"phase": "Bound"}
        })
    );

    let pvc = core::PersistentVolumeClaim {
        metadata: meta("data"),
        spec: Some(core::PersistentVolumeClaimSpec {
            access_modes: vec!["ReadWriteOnce".into()],
            resources: Some(core::VolumeResourceRequirements {
                requests: quantities(&[("storage", "1Gi")]),
                ..Default::default()
            }),
            storage_class_name: s("local"),
            selector: Some(meta::LabelSelector {
                match_labels: map(&[("tier", "db")]),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("env"),
                    operator: s("NotIn"),
                    values: vec!["dev".into()],
                }],
            }),
            ..Default::default()
        }),
        status: Some(core::PersistentVolumeClaimStatus {
            phase: s("Bound"),
            capacity: quantities(&[("storage", "1Gi")]),
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&pvc),
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "selector": {"matchLabels": {"tier": "db"},
                             "matchExpressions": [{"key": "env", "operator": "NotIn",
                                                   "values": ["dev"]}]},
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "local"
            },
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}
        })
    );
}
