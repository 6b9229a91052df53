use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::super::tests::{pod_with, Fixture, UID};
use super::super::{container_spec, SpecError};
use super::*;

#[test]
fn expansion_as_kubelet() {
    let vars = BTreeMap::from([
        ("VAR_A", "A"),
        ("VAR_B", "B"),
        ("VAR_REF", "$(VAR_A)"),
        ("VAR_EMPTY", ""),
    ]);
    let lookup = |name: &str| vars.get(name).copied();
    for (input, want) in [
        ("$(VAR_A)", "A"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("___$(VAR_B)___", "___B___"),
        ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("foo\\$(VAR_A)bar", "foo\\Abar"),
        ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
        ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
        ("$(VAR_REF)", "$(VAR_A)"),
        ("foo$(VAR_EMPTY)bar", "foobar"),
        ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
        ("$?_boo_$!", "$?_boo_$!"),
        ("$VAR_A", "$VAR_A"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),
        ("$()", "$()"),
        ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
        ("$$$$$$$(VAR_A)", "$$$A"),
        ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
        ("${VAR_A}", "${VAR_A}"),
        ("$(VAR_B)_______$(A", "B_______$(A"),
        ("$(VAR_A)_______$(", "A_______$("),
        ("$(VAR_A)foobarzab$", "Afoobarzab$"),
        ("--$($($($($--", "--$($($($($--"),
        ("$(foo$$var)", "$(foo$$var)"),
        ("\n", "\n"),
        ("$é$(VAR_A)é", "$éAé"),
    ] {
        assert_eq!(expand(input, lookup), want, "{input:?}");
    }
}

#[test]
fn env_order_overrides_and_expansion() {
    let f = Fixture::new();
    let env = f.env(json!({
        "envFrom": [{"configMapRef": {"name": "cfg"}}, {"configMapRef": {"name": "more"}}],
        "env": [
            {"name": "A", "value": "a"},
            {"name": "B", "value": "$(A)-$(MODE)-$(C)"},
            {"name": "C", "value": "c"},
            {"name": "LEVEL", "value": "$(LEVEL)0"},
            {"name": "EMPTY"},
            {"name": "A", "value": "again"},
            {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}
        ]
    }));
    assert_eq!(
        env,
        [
            "1st=x",
            "LEVEL=30",
            "MODE=dev",
            "A=again",
            "B=a-dev-$(C)",
            "C=c",
            "EMPTY=",
            "API=https://10.43.0.1:443",
            "KUBERNETES_SERVICE_HOST=10.43.0.1",
            "KUBERNETES_SERVICE_PORT=443",
        ]
    );
}

#[test]
fn the_container_overrides_a_service_variable() {
    let f = Fixture::new();
    let env = f.env(json!({"env": [{"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}]}));
    assert_eq!(
        env,
        [
            "KUBERNETES_SERVICE_PORT=6443",
            "KUBERNETES_SERVICE_HOST=10.43.0.1"
        ]
    );
}

#[test]
fn env_from_prefix_and_secrets() {
    let f = Fixture::new();
    let env = f.env(json!({"envFrom": [
        {"prefix": "CFG_", "configMapRef": {"name": "cfg"}},
        {"secretRef": {"name": "creds"}},
        {"secretRef": {"name": "absent", "optional": true}}
    ]}));
    // kubelet 1.32 passes keys that are not strict env names ("CFG_1st" is
    // fine, so is "1st" unprefixed: see env_order_overrides_and_expansion).
    assert_eq!(
        &env[..4],
        [
            "CFG_1st=x",
            "CFG_LEVEL=3",
            "CFG_MODE=prod",
            "password=s3cret"
        ]
    );
}

#[test]
fn a_key_that_cannot_be_a_variable_is_left_out() {
    let mut f = Fixture::new();
    f.objects.insert(
        ("ConfigMap".into(), "odd".into()),
        BTreeMap::from([
            ("A=B".to_string(), "x".to_string()),
            ("OK".to_string(), "y".to_string()),
        ]),
    );
    let env = f.env(json!({"envFrom": [{"configMapRef": {"name": "odd"}}]}));
    assert_eq!(&env[..1], ["OK=y"]);
}

#[test]
fn key_refs_and_missing_objects() {
    let f = Fixture::new();
    let env = f.env(json!({"env": [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
        {"name": "OPT1", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
        {"name": "OPT2", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nokey", "optional": true}}}
    ]}));
    assert_eq!(&env[..2], ["PW=s3cret", "M=prod"]);
    assert_eq!(env.len(), 4, "optional references set nothing: {env:?}");

    let err = |container: Value| {
        f.spec(&pod_with(container))
            .expect_err("an error")
            .to_string()
    };
    assert_eq!(
        err(
            json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}]})
        ),
        "configmap \"x\" not found"
    );
    assert_eq!(
        err(json!({"envFrom": [{"secretRef": {"name": "s"}}]})),
        "secret \"s\" not found"
    );
    assert_eq!(
        err(
            json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]})
        ),
        "couldn't find key k in ConfigMap shop/cfg"
    );
    assert_eq!(
        err(
            json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}]})
        ),
        "couldn't find key user in Secret shop/creds"
    );
}

#[test]
fn an_optional_miss_keeps_the_env_from_value() {
    let f = Fixture::new();
    let env = f.env(json!({
        "envFrom": [{"configMapRef": {"name": "more"}}],
        "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}}}]
    }));
    assert_eq!(env[0], "MODE=dev");
}

fn field(path: &str) -> Value {
    json!({"env": [{"name": "V", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}]})
}

#[test]
fn field_refs() {
    let f = Fixture::new();
    for (path, want) in [
        ("metadata.name", "web"),
        ("metadata.namespace", "shop"),
        ("metadata.uid", UID),
        ("metadata.labels['app']", "web"),
        ("metadata.labels['none']", ""),
        ("metadata.annotations['note']", "say \"hi\"\n"),
        ("metadata.labels", "app=\"web\"\ntier=\"front\""),
        ("metadata.annotations", "note=\"say \\\"hi\\\"\\n\""),
        ("spec.nodeName", "node-1"),
        ("spec.serviceAccountName", "robot"),
        ("status.podIP", "10.42.0.7"),
        ("status.podIPs", "10.42.0.7"),
        ("status.hostIP", "192.168.1.5"),
        ("status.hostIPs", "192.168.1.5"),
    ] {
        assert_eq!(f.env(field(path))[0], format!("V={want}"), "{path}");
    }
    for (path, message) in [
        ("status.phase", "unsupported fieldPath: status.phase"),
        ("spec.hostname", "field label not supported: spec.hostname"),
        ("spec.x['y']", "field subscript not supported: spec.x['y']"),
    ] {
        let e = f.spec(&pod_with(field(path))).expect_err(path);
        assert_eq!(e, SpecError::FieldRef(message.to_string()));
    }
    let v2 = json!({"env": [{"name": "V", "valueFrom": {"fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.name"}}}]});
    assert_eq!(
        f.spec(&pod_with(v2)),
        Err(SpecError::FieldRef(
            "unsupported pod version: v2".to_string()
        ))
    );
}

#[test]
fn a_host_network_pod_has_the_node_address() {
    let f = Fixture::new();
    let mut p = pod_with(field("status.podIP"));
    if let Some(s) = p.spec.as_mut() {
        s.host_network = Some(true);
    }
    let mut ctx = f.ctx();
    ctx.pod_ip = None;
    let c = p.spec.as_ref().map(|s| s.containers[0].clone()).expect("c");
    assert_eq!(
        container_spec(&p, &c, &ctx).expect("spec").process.env[0],
        "V=192.168.1.5"
    );
}

#[test]
fn resource_field_refs() {
    let f = Fixture::new();
    let env = f.env(json!({
        "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "100M"}},
        "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "REQ_MEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}}},
            {"name": "EPH", "valueFrom": {"resourceFieldRef": {"resource": "requests.ephemeral-storage"}}},
            {"name": "EPH_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage"}}},
            {"name": "HUGE", "valueFrom": {"resourceFieldRef": {"resource": "limits.hugepages-2Mi"}}}
        ]
    }));
    assert_eq!(
        &env[..7],
        [
            "CPU=2",
            "CPU_M=1500",
            "REQ_CPU=1",
            "MEM_MI=1024",
            "REQ_MEM=96",
            "EPH=0",
            "HUGE=0"
        ],
        "EPH_LIMIT (the node's allocatable, not measured here) is left out"
    );
    // With the node's allocatable known, an unset limit reads it.
    let mut f = Fixture::new();
    f.allocatable = Some(crate::agent::node::host::Resources {
        cpu_millis: 2500,
        memory_bytes: 4 << 30,
        ephemeral_storage_bytes: 10 << 30,
        ..Default::default()
    });
    let env = f.env(json!({
        "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "EPH_GI", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}}}
        ]
    }));
    assert_eq!(&env[..3], ["CPU=3", "MEM_MI=4096", "EPH_GI=10"]);
    let bad = json!({"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]});
    assert_eq!(
        f.spec(&pod_with(bad)),
        Err(SpecError::ResourceFieldRef(
            "unsupported container resource : limits.gpu".to_string()
        ))
    );
}
