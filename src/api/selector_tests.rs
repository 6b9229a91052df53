use super::*;
use proptest::prelude::*;
use serde_json::json;

fn labels(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn parses_and_matches_every_operator() {
    let l = labels(json!({"app": "web", "tier": "fe", "n": "5"}));
    let cases: &[(&str, bool)] = &[
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app!=web", false),
        ("app!=db", true),
        ("missing!=x", true),
        ("app in (web,db)", true),
        ("app in (db)", false),
        ("app notin (db)", true),
        ("missing notin (db)", true),
        ("app", true),
        ("missing", false),
        ("!missing", true),
        ("!app", false),
        ("app=web,tier=fe", true),
        ("app=web, tier=be", false),
        ("  app = web ,tier in ( fe , be ) ", true),
        ("n>4", true),
        ("n<5", false),
        ("app>4", false),
        ("x in (in)", false),
        ("app=", false),
    ];
    for (s, want) in cases {
        let sel = LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(sel.matches(&l), *want, "selector {s:?}");
    }
}

#[test]
fn empty_values_and_canonical_string() {
    let sel = LabelSelector::parse("z notin (), b in (y,,x), a, !c, d=").unwrap_or_default();
    assert_eq!(sel.to_string(), "a,b in (,x,y),!c,d=,z notin ()");
    assert!(LabelSelector::parse("").unwrap_or_default().is_empty());
    assert!(!sel.is_empty());
    let l = labels(json!({"a": "1", "b": "", "d": ""}));
    assert!(sel.matches(&l));
}

#[test]
fn parse_errors_carry_the_real_messages() {
    let cases: &[(&str, &str)] = &[
        ("a=b,", "found '', expected: identifier after ','"),
        (
            ",a",
            "found ',', expected: !, identifier, or 'end of string'",
        ),
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        (
            "a in x",
            "unable to parse requirement: found 'x' expected: '('",
        ),
        (
            "a in (x",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "a in (x y)",
            "unable to parse requirement: found 'y', expected: ',' or ')'",
        ),
        (
            "a in (=)",
            "unable to parse requirement: found '=', expected: ',', ')' or identifier",
        ),
        (
            "a==!",
            "unable to parse requirement: found '!', expected: identifier",
        ),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        (
            "!=x",
            "found '!=', expected: !, identifier, or 'end of string'",
        ),
    ];
    for (s, want) in cases {
        match LabelSelector::parse(s) {
            Err(e) => assert_eq!(e.to_string(), *want, "selector {s:?}"),
            Ok(v) => panic!("{s:?} parsed as {v}"),
        }
    }
}

#[test]
fn validation_errors() {
    let e = LabelSelector::parse("-bad=x")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"-bad\": name part must consist"
        ),
        "{e}"
    );
    let e = LabelSelector::parse("a=b@c")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"b@c\": a valid label must be"),
        "{e}"
    );
    let e = LabelSelector::parse("a>x")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        e,
        "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
    );
    assert!(LabelSelector::parse(&format!("a={}", "v".repeat(64))).is_err());
}

#[test]
fn structured_selectors() {
    let sel = LabelSelector::from_label_selector_json(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "Exists"},
            {"key": "zone", "operator": "NotIn", "values": ["x"]}
        ]
    }))
    .unwrap_or_default();
    assert_eq!(
        sel.to_string(),
        "app=web,!canary,env,tier in (be,fe),zone notin (x)"
    );
    assert!(sel.matches(&labels(json!({"app": "web", "tier": "fe", "env": "prod"}))));
    assert!(!sel.matches(&labels(json!({"app": "web", "tier": "fe"}))));
    assert!(!sel.matches(&labels(
        json!({"app": "web", "tier": "fe", "env": "p", "canary": "1"})
    )));

    let everything = LabelSelector::from_label_selector_json(&json!({})).unwrap_or_default();
    assert!(everything.is_empty() && everything.matches(&Map::new()));
    let nothing = LabelSelector::from_label_selector_json(&Value::Null).unwrap_or_default();
    assert!(!nothing.is_empty() && !nothing.matches(&Map::new()));
    assert_eq!(nothing.to_string(), "");

    let err = |v: Value| {
        LabelSelector::from_label_selector_json(&v)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        err(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
        "\"Gt\" is not a valid label selector operator"
    );
    assert!(
        err(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}))
            .contains("values set can't be empty")
    );
    assert!(err(
        json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
    )
    .contains("values set must be empty"));
    assert!(err(json!({"matchLabels": {"a": 1}})).contains("must be a string"));
    assert!(err(json!({"matchLabels": {"a b": "x"}})).starts_with("key: Invalid value: \"a b\""));
    assert!(err(json!([])).contains("must be an object"));
}

#[test]
fn matches_object_reads_metadata_labels() {
    let sel = LabelSelector::parse("app=web").unwrap_or_default();
    assert!(sel.matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
    assert!(!sel.matches_object(&json!({"metadata": {}})));
    assert!(LabelSelector::default().matches_object(&json!({})));
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]([a-z0-9.-]{0,5}[a-z0-9])?",
        "[a-z]{1,4}\\.io/[A-Za-z]([A-Za-z0-9_.-]{0,5}[A-Za-z0-9])?",
    ]
}

fn value_strategy() -> impl Strategy<Value = String> {
    "([A-Za-z0-9]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?)?"
}

fn requirement_strategy() -> impl Strategy<Value = String> {
    (
        key_strategy(),
        0..7usize,
        prop::collection::vec(value_strategy(), 1..4),
    )
        .prop_map(|(k, op, vals)| match op {
            0 => format!("{k}={}", vals[0]),
            1 => format!("{k}!={}", vals[0]),
            2 => format!("{k}=={}", vals[0]),
            3 => format!("{k} in ({})", vals.join(",")),
            4 => format!("{k} notin ({})", vals.join(",")),
            5 => k,
            _ => format!("!{k}"),
        })
}

proptest! {
    #[test]
    fn never_panics_on_random_input(s in "\\PC{0,40}") {
        let _ = LabelSelector::parse(&s);
    }

    #[test]
    fn never_panics_on_selector_alphabet(s in "[a-z0-9=!(), <>./_-]{0,30}") {
        if let Ok(sel) = LabelSelector::parse(&s) {
            // Whatever parses must print to something that parses back the same.
            let again = LabelSelector::parse(&sel.to_string());
            prop_assert_eq!(again.ok(), Some(sel));
        }
    }

    #[test]
    fn valid_selectors_round_trip(reqs in prop::collection::vec(requirement_strategy(), 1..5)) {
        let text = reqs.join(",");
        let sel = LabelSelector::parse(&text);
        prop_assert!(sel.is_ok(), "{} -> {:?}", text, sel);
        let sel = sel.unwrap_or_default();
        let again = LabelSelector::parse(&sel.to_string()).unwrap_or_default();
        prop_assert_eq!(again, sel);
    }
}
