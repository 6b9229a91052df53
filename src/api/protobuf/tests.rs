//! Bodies kubectl 1.32 really sent (reference traces), error cases and fuzzing.

use proptest::prelude::*;
use serde_json::json;

use super::wire::encode;
use super::*;

fn body(hex_text: &str) -> Vec<u8> {
    let clean: String = hex_text.split_whitespace().collect();
    hex::decode(clean).expect("valid hex")
}

/// A body with the given envelope around `raw`.
pub(super) fn wrap(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    encode::message(&mut out, 1, |tm| {
        encode::string(tm, 1, api_version);
        encode::string(tm, 2, kind);
    });
    encode::bytes(&mut out, 2, raw);
    encode::string(&mut out, 3, "");
    encode::string(&mut out, 4, "");
    out
}

// `kubectl create secret generic s1 --from-literal=user=admin --from-literal=pass=s3cr3t`
const SECRET_S1: &str = "
6b 38 73 00 0a 0c 0a 02 76 31 12 06 53 65 63 72
65 74 12 35 0a 12 0a 02 73 31 12 00 1a 00 22 00
2a 00 32 00 38 00 42 00 12 0e 0a 04 70 61 73 73
12 06 73 33 63 72 33 74 12 0d 0a 04 75 73 65 72
12 05 61 64 6d 69 6e 1a 00 1a 00 22 00";

// `kubectl create configmap c1 --from-literal=k=v` (trace 20)
const CONFIGMAP_C1: &str = "6b3873000a0f0a0276311209436f6e6669674d6170121c0a120a02633112001a0022002a0032003800420012060a016b1201761a002200";

// `kubectl create namespace team-a` (trace 40)
const NAMESPACE_TEAM_A: &str = "6b3873000a0f0a02763112094e616d657370616365121e0a160a067465616d2d6112001a0022002a0032003800420012001a020a001a002200";

// `kubectl create deployment d2 --image=nginx` (trace 40b)
const DEPLOYMENT_D2: &str = "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412a7010a1d0a02643212001a0022002a003200380042005a090a036170701202643212780801120b0a090a03617070120264321a5f0a1b0a0012001a0022002a003200380042005a090a0361707012026432124012220a056e67696e7812056e67696e782a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200";

// `kubectl auth can-i create pods` (trace 40j)
const SSAR_CAN_I: &str = "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374416363657373526576696577123f0a100a0012001a0022002a0032003800420012210a1f0a0764656661756c7412066372656174651a0022002a04706f647332003a001a08080012001a0020001a002200";

#[test]
fn schema_parses() {
    let schema = schema::schema().expect("schema.txt parses");
    assert!(schema.messages.len() > 400);
}

#[test]
fn secret_from_reference_example() {
    let v = decode_body(&body(SECRET_S1)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s1"},
               "data":{"pass":"czNjcjN0","user":"YWRtaW4="}})
    );
    // apiVersion and kind come first, as in the JSON API.
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "data"]);
}

#[test]
fn configmap_from_trace() {
    let v = decode_body(&body(CONFIGMAP_C1)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c1"},"data":{"k":"v"}})
    );
}

#[test]
fn namespace_from_trace() {
    let v = decode_body(&body(NAMESPACE_TEAM_A)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a"},
               "spec":{},"status":{}})
    );
}

#[test]
fn deployment_from_trace() {
    let v = decode_body(&body(DEPLOYMENT_D2)).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d2", "labels": {"app": "d2"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "d2"}},
                "template": {
                    "metadata": {"labels": {"app": "d2"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
                },
                "strategy": {}
            },
            "status": {}
        })
    );
}

#[test]
fn self_subject_access_review_from_trace() {
    let v = decode_body(&body(SSAR_CAN_I)).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {
                "namespace": "default", "verb": "create", "resource": "pods"
            }},
            "status": {"allowed": false}
        })
    );
}

#[test]
fn missing_magic() {
    let err = decode_body(b"{\"kind\":\"Secret\"}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a Kubernetes protobuf body (missing k8s\\0 magic)"
    );
    assert!(matches!(decode_body(b""), Err(ProtobufError::NotProtobuf)));
}

#[test]
fn unknown_kind() {
    let err = decode_body(&wrap("apps/v1", "Foo", &[])).unwrap_err();
    assert_eq!(err.to_string(), "unknown kind apps/v1 Foo");
    // Nested types are not kinds.
    let err = decode_body(&wrap("v1", "PodSpec", &[])).unwrap_err();
    assert!(matches!(err, ProtobufError::UnknownKind { .. }));
    let err = decode_body(&wrap("example.com/v1", "Widget", &[])).unwrap_err();
    assert!(matches!(err, ProtobufError::UnknownKind { .. }));
}

#[test]
fn missing_type_meta() {
    let mut b = MAGIC.to_vec();
    encode::bytes(&mut b, 2, &[]);
    assert!(matches!(
        decode_body(&b),
        Err(ProtobufError::MissingTypeMeta)
    ));
}

#[test]
fn content_encoding_refused() {
    let mut b = wrap("v1", "ConfigMap", &[]);
    encode::string(&mut b, 3, "gzip");
    let err = decode_body(&b).unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");
}

#[test]
fn truncated_bodies_fail() {
    let full = body(DEPLOYMENT_D2);
    // magic, then typeMeta (2 + 0x15 bytes), raw, and a 4-byte trailer of the
    // optional contentEncoding/contentType. Every cut inside typeMeta or raw must
    // fail; a cut right after typeMeta is a complete (empty) object, and one in
    // the trailer only loses optional envelope fields.
    let type_meta_end = MAGIC.len() + 2 + 0x15;
    for len in MAGIC.len()..full.len() - 4 {
        if len != type_meta_end {
            assert!(
                decode_body(&full[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }
}

#[test]
fn malformed_error_names_the_field() {
    // spec.replicas sent as a string
    let mut raw = Vec::new();
    encode::message(&mut raw, 2, |spec| encode::string(spec, 1, "three"));
    let err = decode_body(&wrap("apps/v1", "Deployment", &raw)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed protobuf at field Deployment.spec.replicas: expected int32, found a length-delimited value"
    );
    // a truncated container name deep inside the pod template
    let mut raw = Vec::new();
    encode::message(&mut raw, 2, |spec| {
        encode::message(spec, 3, |tmpl| {
            encode::message(tmpl, 2, |pod| {
                encode::message(pod, 2, |c| c.extend_from_slice(&[0x0a, 9, b'x']));
            })
        })
    });
    let err = decode_body(&wrap("apps/v1", "Deployment", &raw)).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "malformed protobuf at field Deployment.spec.template.spec.containers.name: truncated"
        ),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let mut raw = Vec::new();
    encode::message(&mut raw, 1, |m| encode::string(m, 1, "c"));
    encode::string(&mut raw, 999, "from the future");
    encode::uint(&mut raw, 998, 7);
    let v = decode_body(&wrap("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}})
    );
}

/// Builds RawExtension-in-RawExtension nesting `levels` deep (via ControllerRevision.data).
fn nested_revisions(levels: usize) -> Vec<u8> {
    let mut inner = wrap("apps/v1", "ControllerRevision", &[]);
    for _ in 0..levels {
        let mut raw = Vec::new();
        encode::message(&mut raw, 2, |ext| encode::bytes(ext, 1, &inner));
        inner = wrap("apps/v1", "ControllerRevision", &raw);
    }
    inner
}

#[test]
fn nesting_is_bounded() {
    assert!(decode_body(&nested_revisions(5)).is_ok());
    let err = decode_body(&nested_revisions(200)).unwrap_err();
    assert!(err.to_string().contains("nested deeper than"), "{err}");
}

#[test]
fn embedded_json_raw_extension() {
    let mut raw = Vec::new();
    encode::message(&mut raw, 1, |m| encode::string(m, 1, "r1"));
    encode::message(&mut raw, 2, |ext| encode::bytes(ext, 1, br#"{"a":[1,2]}"#));
    encode::uint(&mut raw, 3, 4);
    let v = decode_body(&wrap("apps/v1", "ControllerRevision", &raw)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"r1"},
               "data":{"a":[1,2]},"revision":4})
    );
}

#[test]
fn go_durations() {
    use super::special::go_duration;
    let cases = [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (2_000_000, "2ms"),
        (1_000_000_000, "1s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-5_000_000_000, "-5s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ];
    for (ns, text) in cases {
        assert_eq!(go_duration(ns), text, "{ns}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_after_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&tail);
        let _ = decode_body(&b);
    }

    #[test]
    fn arbitrary_raw_objects_never_panic(
        kind in prop::sample::select(vec![
            ("v1", "Pod"), ("v1", "Service"), ("v1", "Secret"), ("v1", "Node"),
            ("apps/v1", "Deployment"), ("batch/v1", "CronJob"), ("v1", "PersistentVolume"),
            ("events.k8s.io/v1", "Event"), ("coordination.k8s.io/v1", "Lease"),
        ]),
        raw in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = decode_body(&wrap(kind.0, kind.1, &raw));
    }

    #[test]
    fn mutated_real_bodies_never_panic(
        index in 0usize..DEPLOYMENT_D2.len() / 2,
        byte in any::<u8>(),
        cut in 0usize..300,
    ) {
        let mut b = body(DEPLOYMENT_D2);
        let i = index % b.len();
        b[i] = byte;
        b.truncate(cut.max(4));
        let _ = decode_body(&b);
    }
}

#[test]
fn every_served_kind_resolves() {
    let schema = schema::schema().unwrap();
    let kinds = [
        ("v1", "Namespace"),
        ("v1", "Pod"),
        ("v1", "Service"),
        ("v1", "Endpoints"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "ServiceAccount"),
        ("v1", "Event"),
        ("v1", "Node"),
        ("v1", "PersistentVolume"),
        ("v1", "PersistentVolumeClaim"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("events.k8s.io/v1", "Event"),
        ("autoscaling/v1", "Scale"),
        // other kubectl typed-client writes
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("policy/v1", "Eviction"),
        ("policy/v1", "PodDisruptionBudget"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("networking.k8s.io/v1", "Ingress"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("autoscaling/v1", "HorizontalPodAutoscaler"),
        ("v1", "ResourceQuota"),
    ];
    for (api_version, kind) in kinds {
        let msg = message_for_kind(schema, api_version, kind);
        assert!(msg.is_some(), "{api_version} {kind}");
        // and an empty object of the kind decodes
        let v = decode_body(&wrap(api_version, kind, &[])).unwrap();
        assert_eq!(v, json!({"apiVersion": api_version, "kind": kind}));
    }
}
