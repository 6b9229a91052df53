//! Round trips for apps, batch, coordination, discovery, events and autoscaling
//! kinds, plus gogo-style dense encodings (every scalar written, even when empty).

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::autoscaling::v1 as autoscaling;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::discovery::v1 as discovery;
use k8s_pb::api::events::v1 as events;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{json, Value};

use super::decode_body;
use super::tests::wrap;
use super::tests_kinds::{int, map, meta, pod_spec, pod_spec_json, roundtrip, s, string};
use super::wire::encode;

fn selector() -> Option<meta::LabelSelector> {
    Some(meta::LabelSelector {
        match_labels: map(&[("app", "web")]),
        ..Default::default()
    })
}

fn template() -> Option<core::PodTemplateSpec> {
    Some(core::PodTemplateSpec {
        metadata: Some(meta::ObjectMeta {
            labels: map(&[("app", "web")]),
            ..Default::default()
        }),
        spec: Some(pod_spec()),
    })
}

fn template_json() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": pod_spec_json()})
}

fn micro(seconds: i64, nanos: i32) -> Option<meta::MicroTime> {
    Some(meta::MicroTime {
        seconds: Some(seconds),
        nanos: Some(nanos),
    })
}

#[test]
fn deployment() {
    let d = apps::Deployment {
        metadata: meta("web"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: selector(),
            template: template(),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: int(0),
                    max_surge: string("25%"),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(3),
            conditions: vec![apps::DeploymentCondition {
                r#type: s("Available"),
                status: s("True"),
                last_update_time: Some(meta::Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(999),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&d),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                // an explicit 0 stays: replicas is a pointer field
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template_json(),
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600
            },
            "status": {
                "observedGeneration": 2, "replicas": 3,
                // metav1.Time keeps whole seconds only
                "conditions": [{"type": "Available", "status": "True",
                                "lastUpdateTime": "2023-11-14T22:13:20Z"}]
            }
        })
    );
}

#[test]
fn replicaset_daemonset_statefulset() {
    let rs = apps::ReplicaSet {
        metadata: meta("web-5d4"),
        spec: Some(apps::ReplicaSetSpec {
            replicas: Some(2),
            min_ready_seconds: Some(5),
            selector: selector(),
            template: template(),
        }),
        status: Some(apps::ReplicaSetStatus {
            replicas: Some(2),
            ready_replicas: Some(1),
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&rs),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": "web-5d4", "namespace": "default"},
               "spec": {"replicas": 2, "minReadySeconds": 5,
                        "selector": {"matchLabels": {"app": "web"}}, "template": template_json()},
               "status": {"replicas": 2, "readyReplicas": 1}})
    );

    let ds = apps::DaemonSet {
        metadata: meta("agent"),
        spec: Some(apps::DaemonSetSpec {
            selector: selector(),
            template: template(),
            update_strategy: Some(apps::DaemonSetUpdateStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDaemonSet {
                    max_unavailable: int(1),
                    max_surge: int(0),
                }),
            }),
            ..Default::default()
        }),
        status: Some(apps::DaemonSetStatus {
            current_number_scheduled: Some(1),
            desired_number_scheduled: Some(1),
            number_misscheduled: Some(0),
            number_ready: Some(1),
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&ds),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "agent", "namespace": "default"},
               "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template_json(),
                        "updateStrategy": {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}},
               // these status counters have no omitempty: zeros stay
               "status": {"currentNumberScheduled": 1, "numberMisscheduled": 0,
                          "desiredNumberScheduled": 1, "numberReady": 1}})
    );

    let sts = apps::StatefulSet {
        metadata: meta("db"),
        spec: Some(apps::StatefulSetSpec {
            replicas: Some(1),
            selector: selector(),
            template: template(),
            service_name: s("db"),
            pod_management_policy: s("Parallel"),
            volume_claim_templates: vec![core::PersistentVolumeClaim {
                metadata: Some(meta::ObjectMeta {
                    name: s("data"),
                    ..Default::default()
                }),
                spec: Some(core::PersistentVolumeClaimSpec {
                    access_modes: vec!["ReadWriteOnce".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            persistent_volume_claim_retention_policy: Some(
                apps::StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: s("Retain"),
                    when_scaled: s("Delete"),
                },
            ),
            ordinals: Some(apps::StatefulSetOrdinals { start: Some(0) }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        roundtrip(&sts),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "db", "namespace": "default"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": template_json(),
                        "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                                  "spec": {"accessModes": ["ReadWriteOnce"]}}],
                        "serviceName": "db", "podManagementPolicy": "Parallel",
                        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain",
                                                                 "whenScaled": "Delete"},
                        // ordinals.start has no omitempty: the zero stays
                        "ordinals": {"start": 0}}})
    );
}

#[test]
fn job_and_cronjob() {
    let job_spec = batch::JobSpec {
        parallelism: Some(1),
        completions: Some(3),
        backoff_limit: Some(6),
        active_deadline_seconds: Some(600),
        ttl_seconds_after_finished: Some(100),
        completion_mode: s("Indexed"),
        suspend: Some(false),
        template: template(),
        pod_failure_policy: Some(batch::PodFailurePolicy {
            rules: vec![batch::PodFailurePolicyRule {
                action: s("FailJob"),
                on_exit_codes: Some(batch::PodFailurePolicyOnExitCodesRequirement {
                    container_name: s("web"),
                    operator: s("In"),
                    values: vec![42, -1],
                }),
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    let job_spec_json = json!({
        "parallelism": 1, "completions": 3, "activeDeadlineSeconds": 600,
        "podFailurePolicy": {"rules": [{"action": "FailJob",
            "onExitCodes": {"containerName": "web", "operator": "In", "values": [42, -1]}}]},
        "backoffLimit": 6, "template": template_json(), "ttlSecondsAfterFinished": 100,
        "completionMode": "Indexed", "suspend": false
    });
    let job = batch::Job {
        metadata: meta("j"),
        spec: Some(job_spec.clone()),
        status: Some(batch::JobStatus {
            active: Some(1),
            succeeded: Some(2),
            completed_indexes: s("0,1"),
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&job),
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "j", "namespace": "default"},
               "spec": job_spec_json,
               "status": {"active": 1, "succeeded": 2, "completedIndexes": "0,1"}})
    );

    let cj = batch::CronJob {
        metadata: meta("cj"),
        spec: Some(batch::CronJobSpec {
            schedule: s("*/5 * * * *"),
            time_zone: s("Etc/UTC"),
            concurrency_policy: s("Forbid"),
            successful_jobs_history_limit: Some(3),
            job_template: Some(batch::JobTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: map(&[("app", "web")]),
                    ..Default::default()
                }),
                spec: Some(job_spec),
            }),
            ..Default::default()
        }),
        status: Some(batch::CronJobStatus {
            last_schedule_time: Some(meta::Time {
                seconds: Some(1_700_000_000),
                nanos: None,
            }),
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&cj),
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
               "metadata": {"name": "cj", "namespace": "default"},
               "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC",
                        "concurrencyPolicy": "Forbid",
                        "jobTemplate": {"metadata": {"labels": {"app": "web"}},
                                        "spec": job_spec_json},
                        "successfulJobsHistoryLimit": 3},
               "status": {"lastScheduleTime": "2023-11-14T22:13:20Z"}})
    );
}

#[test]
fn lease_endpointslice_event_scale() {
    let lease = coordination::Lease {
        metadata: meta("n1"),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("n1"),
            lease_duration_seconds: Some(40),
            renew_time: micro(1_700_000_000, 5_000),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    assert_eq!(
        roundtrip(&lease),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "n1", "namespace": "default"},
               "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                        "renewTime": "2023-11-14T22:13:20.000005Z", "leaseTransitions": 0}})
    );

    let slice = discovery::EndpointSlice {
        metadata: meta("web-abc"),
        address_type: s("IPv4"),
        endpoints: vec![discovery::Endpoint {
            addresses: vec!["10.42.0.5".into()],
            conditions: Some(discovery::EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            node_name: s("n1"),
            zone: s("z1"),
            hints: Some(discovery::EndpointHints {
                for_zones: vec![discovery::ForZone { name: s("z1") }],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ports: vec![discovery::EndpointPort {
            name: s(""),
            protocol: s("TCP"),
            port: Some(8080),
            app_protocol: None,
        }],
    };
    assert_eq!(
        roundtrip(&slice),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-abc", "namespace": "default"},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.42.0.5"],
                              "conditions": {"ready": true, "serving": true, "terminating": false},
                              "nodeName": "n1", "zone": "z1",
                              "hints": {"forZones": [{"name": "z1"}]}}],
               // pointer fields keep explicit empty values
               "ports": [{"name": "", "protocol": "TCP", "port": 8080}]})
    );

    let ev = events::Event {
        metadata: meta("e1"),
        event_time: micro(1_700_000_000, 1_500_000),
        series: Some(events::EventSeries {
            count: Some(2),
            last_observed_time: micro(1_700_000_001, 0),
        }),
        reporting_controller: s("skiff/scheduler"),
        reporting_instance: s("skiff-1"),
        action: s("Binding"),
        reason: s("Scheduled"),
        regarding: Some(core::ObjectReference {
            kind: s("Pod"),
            name: s("p"),
            ..Default::default()
        }),
        note: s("assigned"),
        r#type: s("Normal"),
        deprecated_count: Some(0),
        ..Default::default()
    };
    assert_eq!(
        roundtrip(&ev),
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
               "metadata": {"name": "e1", "namespace": "default"},
               "eventTime": "2023-11-14T22:13:20.001500Z",
               "series": {"count": 2, "lastObservedTime": "2023-11-14T22:13:21.000000Z"},
               "reportingController": "skiff/scheduler", "reportingInstance": "skiff-1",
               "action": "Binding", "reason": "Scheduled",
               "regarding": {"kind": "Pod", "name": "p"},
               "note": "assigned", "type": "Normal"})
    );

    let scale = autoscaling::Scale {
        metadata: meta("web"),
        spec: Some(autoscaling::ScaleSpec { replicas: Some(5) }),
        status: Some(autoscaling::ScaleStatus {
            replicas: Some(3),
            selector: s("app=web"),
        }),
    };
    // Scale is a subresource type: k8s-pb gives it no Resource impl.
    let scale = decode_body(&wrap(
        "autoscaling/v1",
        "Scale",
        &prost::Message::encode_to_vec(&scale),
    ));
    assert_eq!(
        scale.unwrap(),
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": 5}, "status": {"replicas": 3, "selector": "app=web"}})
    );
}

/// gogo-protobuf writes every non-pointer field, empty or not: a Service whose
/// port has only `port` set arrives with name "", protocol "", targetPort
/// {0, 0, ""} and nodePort 0 on the wire.
#[test]
fn dense_gogo_encoding_drops_omitempty_zeros() {
    let mut raw = Vec::new();
    encode::message(&mut raw, 1, |m| {
        encode::string(m, 1, "svc");
        for n in [2, 3, 4, 5, 6] {
            encode::string(m, n, "");
        }
        encode::uint(m, 7, 0);
        encode::bytes(m, 8, &[]);
    });
    encode::message(&mut raw, 2, |spec| {
        encode::message(spec, 1, |port| {
            encode::string(port, 1, "");
            encode::string(port, 2, "");
            encode::uint(port, 3, 0);
            encode::message(port, 4, |t| {
                encode::uint(t, 1, 0);
                encode::uint(t, 2, 0);
                encode::string(t, 3, "");
            });
            encode::uint(port, 5, 0);
        });
        encode::string(spec, 3, "");
        encode::string(spec, 4, "");
        encode::string(spec, 7, "");
        encode::uint(spec, 12, 0);
        encode::uint(spec, 13, 0);
    });
    encode::message(&mut raw, 3, |status| {
        encode::message(status, 1, |_| {});
    });
    let v = decode_body(&wrap("v1", "Service", &raw)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
               // port has no omitempty; publishNotReadyAddresses false is left out
               "spec": {"ports": [{"port": 0}]},
               "status": {"loadBalancer": {}}})
    );
}

/// Repeated scalars may arrive packed (proto3 style) as well as one per field.
#[test]
fn packed_repeated_scalars() {
    let mut raw = Vec::new();
    encode::message(&mut raw, 1, |m| encode::string(m, 1, "j"));
    encode::message(&mut raw, 2, |spec| {
        encode::message(spec, 11, |pfp| {
            encode::message(pfp, 1, |rule| {
                encode::string(rule, 1, "Ignore");
                encode::message(rule, 2, |codes| {
                    let mut packed = Vec::new();
                    for v in [1u64, 2, 300] {
                        encode::varint(&mut packed, v);
                    }
                    encode::bytes(codes, 3, &packed);
                    encode::uint(codes, 3, 7);
                });
            });
        });
    });
    let v = decode_body(&wrap("batch/v1", "Job", &raw)).unwrap();
    assert_eq!(
        v["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"],
        json!([1, 2, 300, 7])
    );
}
