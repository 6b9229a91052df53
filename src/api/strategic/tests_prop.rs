//! Property tests: agreement with JSON merge patch where the two must agree,
//! idempotence, and no panics on arbitrary patch bodies.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::apply;
use super::tests::{assert_no_directives, deploy, live};

/// JSON without lists: nested maps of scalars and nulls.
fn no_lists(nulls: bool) -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        any::<i32>().prop_map(Value::from),
        "[a-c]{0,3}".prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ];
    let leaf = if nulls {
        prop_oneof![3 => scalar, 1 => Just(Value::Null)].boxed()
    } else {
        scalar.boxed()
    };
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop::collection::btree_map("[a-e]|metadata|spec", inner, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    })
}

fn no_lists_object(nulls: bool) -> impl Strategy<Value = Value> {
    no_lists(nulls).prop_map(|v| if v.is_object() { v } else { json!({ "a": v }) })
}

fn kind() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop::sample::select(vec![
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        ("v1", "Pod"),
        ("example.com/v1", "Widget"),
    ])
}

/// Deployment patches with lists but no deletions (no nulls, no `$patch`).
fn deploy_patch() -> impl Strategy<Value = Value> {
    let env = prop::collection::btree_map("[A-D]", "[a-c]{0,2}", 0..3).prop_map(|m| {
        Value::Array(
            m.into_iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect(),
        )
    });
    let container = (
        "[a-c]",
        "[a-z:.0-9]{1,6}",
        env,
        prop::collection::vec(1u16..4, 0..3),
    )
        .prop_map(|(n, img, env, ports)| {
            let mut seen = std::collections::BTreeSet::new();
            let ports: Vec<Value> = ports
                .into_iter()
                .filter(|p| seen.insert(*p))
                .map(|p| json!({"containerPort": p}))
                .collect();
            json!({"name": n, "image": img, "env": env, "ports": ports})
        });
    let containers = prop::collection::vec(container, 0..3).prop_map(|cs| {
        let mut seen = std::collections::BTreeSet::new();
        Value::Array(
            cs.into_iter()
                .filter(|c| seen.insert(c["name"].to_string()))
                .collect(),
        )
    });
    (containers, prop::collection::vec("[a-d]", 0..3), no_lists_object(false), any::<bool>())
        .prop_map(|(cs, fins, labels, order)| {
            let mut p = json!({"metadata": {"finalizers": fins, "labels": labels},
                               "spec": {"template": {"spec": {"containers": cs.clone(), "tolerations": [{"key": "t"}]}}}});
            if order {
                let names: Vec<Value> = cs.as_array().unwrap().iter().map(|c| json!({"name": c["name"]})).collect();
                p["spec"]["template"]["spec"]["$setElementOrder/containers"] = Value::Array(names);
            }
            p
        })
}

/// Arbitrary JSON whose keys include the directives and merge keys.
fn arbitrary_patch() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$deleteFromPrimitiveList/finalizers",
        "$setElementOrder/env",
        "$deleteFromPrimitiveList/args",
        "$setElementOrder/",
        "containers",
        "env",
        "name",
        "finalizers",
        "metadata",
        "spec",
        "template",
        "ports",
        "containerPort",
        "volumes",
        "args",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..3).prop_map(Value::from),
        prop::sample::select(vec!["replace", "delete", "merge", "app", "name", "x"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..4).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #[test]
    fn without_lists_it_is_json_merge_patch(orig in no_lists_object(false), patch in no_lists_object(true), (av, k) in kind()) {
        let mut want = orig.clone();
        json_patch::merge(&mut want, &patch);
        prop_assert_eq!(apply(&orig, &patch, av, k).unwrap(), want);
    }

    #[test]
    fn empty_patch_changes_nothing(p in deploy_patch()) {
        let orig = deploy(p, &live());
        prop_assert_eq!(deploy(json!({}), &orig), orig);
    }

    #[test]
    fn patches_without_deletions_are_idempotent(p in deploy_patch()) {
        let once = deploy(p.clone(), &live());
        assert_no_directives(&once);
        prop_assert_eq!(deploy(p, &once.clone()), once);
    }

    #[test]
    fn arbitrary_patches_never_panic(p in arbitrary_patch(), (av, k) in kind()) {
        let wrapped = json!({"spec": {"template": {"spec": p.clone()}}, "metadata": p.clone()});
        for patch in [&p, &wrapped] {
            if let Ok(out) = apply(&live(), patch, av, k) {
                prop_assert!(out.is_object());
            }
        }
    }
}
