//! Round trips for the kinds skiff serves: objects are encoded by an independent
//! implementation (k8s-pb's prost types) and decoded back, to check the field
//! numbers, JSON names and special types of the schema table.

use std::collections::BTreeMap;

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::decode_body;
use super::tests::wrap;

pub(super) fn roundtrip<T: prost::Message + k8s_pb::Resource>(obj: &T) -> Value {
    decode_body(&wrap(T::API_VERSION, T::KIND, &obj.encode_to_vec())).expect("decodes")
}

pub(super) fn s(x: &str) -> Option<String> {
    Some(x.to_string())
}

pub(super) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn q(x: &str) -> Quantity {
    Quantity { string: s(x) }
}

pub(super) fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs.iter().map(|(k, v)| (k.to_string(), q(v))).collect()
}

pub(super) fn time(seconds: i64) -> Option<meta::Time> {
    Some(meta::Time {
        seconds: Some(seconds),
        nanos: Some(0),
    })
}

pub(super) fn int(i: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(i),
        str_val: None,
    })
}

pub(super) fn string(x: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: s(x),
    })
}

pub(super) fn meta(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        namespace: s("default"),
        ..Default::default()
    })
}

/// A PodSpec touching most of its parts; `pod_spec_json` is its JSON.
pub(super) fn pod_spec() -> core::PodSpec {
    let probe = core::Probe {
        handler: Some(core::ProbeHandler {
            http_get: Some(core::HttpGetAction {
                path: s("/healthz"),
                port: string("http"),
                http_headers: vec![core::HttpHeader {
                    name: s("X-A"),
                    value: s("b"),
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(3),
        period_seconds: Some(10),
        ..Default::default()
    };
    core::PodSpec {
        containers: vec![core::Container {
            name: s("web"),
            image: s("nginx:1.27"),
            command: vec!["nginx".into()],
            args: vec!["-g".into(), "daemon off;".into()],
            ports: vec![core::ContainerPort {
                name: s("http"),
                container_port: Some(80),
                protocol: s("TCP"),
                ..Default::default()
            }],
            env: vec![
                core::EnvVar {
                    name: s("A"),
                    value: s("1"),
                    ..Default::default()
                },
                core::EnvVar {
                    name: s("POD"),
                    value_from: Some(core::EnvVarSource {
                        field_ref: Some(core::ObjectFieldSelector {
                            field_path: s("metadata.name"),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            resources: Some(core::ResourceRequirements {
                limits: quantities(&[("cpu", "500m"), ("memory", "128Mi")]),
                requests: quantities(&[("cpu", "100m")]),
                ..Default::default()
            }),
            volume_mounts: vec![core::VolumeMount {
                name: s("data"),
                mount_path: s("/data"),
                read_only: Some(true),
                ..Default::default()
            }],
            liveness_probe: Some(probe),
            readiness_probe: Some(core::Probe {
                handler: Some(core::ProbeHandler {
                    tcp_socket: Some(core::TcpSocketAction {
                        port: int(80),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            image_pull_policy: s("IfNotPresent"),
            security_context: Some(core::SecurityContext {
                run_as_user: Some(1000),
                allow_privilege_escalation: Some(false),
                capabilities: Some(core::Capabilities {
                    drop: vec!["ALL".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        volumes: vec![
            core::Volume {
                name: s("data"),
                volume_source: Some(core::VolumeSource {
                    empty_dir: Some(core::EmptyDirVolumeSource {
                        medium: s("Memory"),
                        size_limit: Some(q("1Gi")),
                    }),
                    ..Default::default()
                }),
            },
            core::Volume {
                name: s("cfg"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference { name: s("c1") }),
                        default_mode: Some(0o644),
                        items: vec![core::KeyToPath {
                            key: s("k"),
                            path: s("k.txt"),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
        ],
        restart_policy: s("Always"),
        termination_grace_period_seconds: Some(30),
        node_selector: map(&[("kubernetes.io/os", "linux")]),
        host_network: Some(false),
        affinity: Some(core::Affinity {
            node_affinity: Some(core::NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(core::NodeSelector {
                    node_selector_terms: vec![core::NodeSelectorTerm {
                        match_expressions: vec![core::NodeSelectorRequirement {
                            key: s("zone"),
                            operator: s("In"),
                            values: vec!["a".into(), "b".into()],
                        }],
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        tolerations: vec![core::Toleration {
            key: s("node.kubernetes.io/not-ready"),
            operator: s("Exists"),
            effect: s("NoExecute"),
            toleration_seconds: Some(300),
            ..Default::default()
        }],
        dns_policy: s("ClusterFirst"),
        ..Default::default()
    }
}

pub(super) fn pod_spec_json() -> Value {
    json!({
        "volumes": [
            {"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            {"name": "cfg", "configMap": {"name": "c1", "items": [{"key": "k", "path": "k.txt"}],
                                          "defaultMode": 420}}
        ],
        "containers": [{
            "name": "web",
            "image": "nginx:1.27",
            "command": ["nginx"],
            "args": ["-g", "daemon off;"],
            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
            "volumeMounts": [{"name": "data", "readOnly": true, "mountPath": "/data"}],
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "http",
                            "httpHeaders": [{"name": "X-A", "value": "b"}]},
                "initialDelaySeconds": 3,
                "periodSeconds": 10
            },
            "readinessProbe": {"tcpSocket": {"port": 80}},
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsUser": 1000,
                                "allowPrivilegeEscalation": false}
        }],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a", "b"]}
            ]}]
        }}},
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300}]
    })
}

#[test]
fn pod() {
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("p"),
            namespace: s("default"),
            uid: s("0b1f"),
            resource_version: s("12"),
            creation_timestamp: time(1_700_000_000),
            labels: map(&[("app", "web")]),
            annotations: map(&[("a", "b")]),
            owner_references: vec![meta::OwnerReference {
                api_version: s("apps/v1"),
                kind: s("ReplicaSet"),
                name: s("rs"),
                uid: s("u1"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            finalizers: vec!["f".into()],
            ..Default::default()
        }),
        spec: Some(pod_spec()),
        status: Some(core::PodStatus {
            phase: s("Running"),
            pod_ip: s("10.42.0.5"),
            pod_ips: vec![core::PodIp { ip: s("10.42.0.5") }],
            start_time: time(1_700_000_001),
            conditions: vec![core::PodCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_transition_time: time(1_700_000_002),
                ..Default::default()
            }],
            container_statuses: vec![core::ContainerStatus {
                name: s("web"),
                ready: Some(true),
                restart_count: Some(0),
                image: s("nginx:1.27"),
                state: Some(core::ContainerState {
                    running: Some(core::ContainerStateRunning {
                        started_at: time(1_700_000_003),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&pod),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "default", "uid": "0b1f", "resourceVersion": "12",
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "labels": {"app": "web"}, "annotations": {"a": "b"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                     "uid": "u1", "controller": true, "blockOwnerDeletion": true}],
                "finalizers": ["f"]
            },
            // hostNetwork: false is left out (non-pointer omitempty bool)
            "spec": pod_spec_json(),
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True",
                                "lastTransitionTime": "2023-11-14T22:13:22Z"}],
                "podIP": "10.42.0.5",
                "podIPs": [{"ip": "10.42.0.5"}],
                "startTime": "2023-11-14T22:13:21Z",
                "containerStatuses": [{"name": "web",
                    "state": {"running": {"startedAt": "2023-11-14T22:13:23Z"}},
                    "ready": true, "restartCount": 0, "image": "nginx:1.27"}]
            }
        })
    );
}
