use serde_json::{json, Value};

use super::super::tests::{at, crashed, exited, pod, running, seen, time, waiting};
use super::super::*;

fn phase_of(p: &Pod, s: &PodObserved) -> String {
    pod_status(p, s, at(100)).phase.expect("a phase")
}

#[test]
fn phases_under_always() {
    let p = pod("Always", &[], &["a", "b"], json!({}));
    let phase = |a, b| phase_of(&p, &seen(vec![], vec![a, b]));
    assert_eq!(phase(running("a"), running("b")), RUNNING);
    assert_eq!(
        phase(running("a"), waiting("b", "ContainerCreating")),
        PENDING
    );
    assert_eq!(phase(running("a"), crashed("b", 1)), RUNNING);
    assert_eq!(phase(exited("a", 0), exited("b", 0)), RUNNING, "restarting");
    assert_eq!(phase(crashed("a", 2), exited("b", 0)), RUNNING);
    assert_eq!(
        phase_of(&p, &seen(vec![], vec![])),
        PENDING,
        "nothing made yet"
    );
}

#[test]
fn phases_under_on_failure_and_never() {
    for (policy, codes, want) in [
        ("OnFailure", (0, 0), SUCCEEDED),
        ("OnFailure", (0, 1), RUNNING),
        ("Never", (0, 0), SUCCEEDED),
        ("Never", (0, 1), FAILED),
        ("Never", (137, 1), FAILED),
    ] {
        let p = pod(policy, &[], &["a", "b"], json!({}));
        let s = seen(vec![], vec![exited("a", codes.0), exited("b", codes.1)]);
        assert_eq!(phase_of(&p, &s), want, "{policy} {codes:?}");
    }
    let p = pod("Never", &[], &["a", "b"], json!({}));
    assert_eq!(
        phase_of(&p, &seen(vec![], vec![running("a"), exited("b", 1)])),
        RUNNING
    );
    let p = pod("OnFailure", &[], &["a"], json!({}));
    assert_eq!(phase_of(&p, &seen(vec![], vec![crashed("a", 1)])), RUNNING);
}

#[test]
fn a_deleted_pod_ends_terminal_whatever_its_policy() {
    let mut p = pod("Always", &[], &["a", "b"], json!({"phase": "Running"}));
    p.metadata.deletion_timestamp = Some(to_time(at(50)));
    assert_eq!(
        phase_of(&p, &seen(vec![], vec![exited("a", 0), exited("b", 0)])),
        SUCCEEDED
    );
    assert_eq!(
        phase_of(&p, &seen(vec![], vec![exited("a", 0), exited("b", 137)])),
        FAILED
    );
    assert_eq!(
        phase_of(&p, &seen(vec![], vec![running("a"), exited("b", 137)])),
        RUNNING
    );
}

#[test]
fn phases_with_init_containers() {
    let p = pod("Always", &["setup"], &["app"], json!({}));
    assert_eq!(phase_of(&p, &seen(vec![running("setup")], vec![])), PENDING);
    assert_eq!(
        phase_of(&p, &seen(vec![exited("setup", 0)], vec![running("app")])),
        RUNNING
    );
    assert_eq!(
        phase_of(&p, &seen(vec![crashed("setup", 1)], vec![])),
        PENDING,
        "retried"
    );
    let never = pod("Never", &["setup"], &["app"], json!({}));
    assert_eq!(
        phase_of(&never, &seen(vec![exited("setup", 1)], vec![])),
        FAILED
    );
    assert_eq!(
        phase_of(
            &never,
            &seen(vec![exited("setup", 0)], vec![exited("app", 0)])
        ),
        SUCCEEDED
    );
}

#[test]
fn phases_with_sidecars() {
    let p = pod("Never", &["log-sidecar"], &["app"], json!({}));
    let mut unstarted = running("log-sidecar");
    unstarted.started = Some(false);
    assert_eq!(phase_of(&p, &seen(vec![unstarted], vec![])), PENDING);
    assert_eq!(
        phase_of(
            &p,
            &seen(vec![running("log-sidecar")], vec![running("app")])
        ),
        RUNNING
    );
    // The app is done; the sidecar still runs until kubelet stops it.
    assert_eq!(
        phase_of(
            &p,
            &seen(vec![running("log-sidecar")], vec![exited("app", 0)])
        ),
        RUNNING
    );
    assert_eq!(
        phase_of(
            &p,
            &seen(vec![exited("log-sidecar", 137)], vec![exited("app", 0)])
        ),
        SUCCEEDED
    );
    // A sidecar restarting after the app started does not make it Pending.
    let always = pod("Always", &["log-sidecar"], &["app"], json!({}));
    assert_eq!(
        phase_of(
            &always,
            &seen(vec![crashed("log-sidecar", 1)], vec![running("app")])
        ),
        RUNNING
    );
}

#[test]
fn a_terminal_phase_is_final_and_waits_for_running_containers() {
    let done = pod(
        "Never",
        &[],
        &["a"],
        json!({"phase": "Succeeded", "reason": "R", "message": "M"}),
    );
    let s = pod_status(&done, &seen(vec![], vec![running("a")]), at(100));
    assert_eq!(
        (
            s.phase.as_deref(),
            s.reason.as_deref(),
            s.message.as_deref()
        ),
        (Some(SUCCEEDED), Some("R"), Some("M"))
    );
    // A failed init container fails a Never pod, but not while its sidecar runs.
    let p = pod(
        "Never",
        &["log-sidecar", "setup"],
        &["app"],
        json!({"phase": "Pending"}),
    );
    let s = seen(vec![running("log-sidecar"), exited("setup", 1)], vec![]);
    assert_eq!(phase_of(&p, &s), PENDING);
    let s = seen(vec![exited("log-sidecar", 137), exited("setup", 1)], vec![]);
    assert_eq!(phase_of(&p, &s), FAILED);
}

fn conditions(status: &PodStatus) -> Vec<Value> {
    let mut out = Vec::new();
    for c in status.conditions.iter().flatten() {
        let mut v = serde_json::to_value(c).expect("json");
        if let Some(o) = v.as_object_mut() {
            o.remove("lastTransitionTime");
        }
        out.push(v);
    }
    out
}

#[test]
fn conditions_in_kubelet_order() {
    let p = pod("Always", &[], &["a", "b"], json!({}));
    let s = pod_status(&p, &seen(vec![], vec![running("a"), running("b")]), at(100));
    assert_eq!(
        conditions(&s),
        [
            json!({"type": "PodReadyToStartContainers", "status": "True"}),
            json!({"type": "Initialized", "status": "True"}),
            json!({"type": "Ready", "status": "True"}),
            json!({"type": "ContainersReady", "status": "True"}),
            json!({"type": "PodScheduled", "status": "True"}),
        ]
    );

    let mut b = running("b");
    b.ready = false;
    let mut a = running("a");
    a.started = Some(false);
    let mut sandbox_gone = seen(vec![], vec![b, a]);
    sandbox_gone.sandbox_ready = false;
    let s = pod_status(&p, &sandbox_gone, at(100));
    let unready = "containers with unready status: [a b]";
    assert_eq!(
        conditions(&s)[..4],
        [
            json!({"type": "PodReadyToStartContainers", "status": "False"}),
            json!({"type": "Initialized", "status": "True"}),
            json!({"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": unready}),
            json!({"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "message": unready}),
        ]
    );
}

#[test]
fn conditions_while_initializing_and_when_done() {
    let p = pod("Never", &["setup", "log-sidecar"], &["app"], json!({}));
    let s = pod_status(&p, &seen(vec![running("setup")], vec![]), at(100));
    let c = conditions(&s);
    assert_eq!(
        c[1],
        json!({"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
               "message": "containers with incomplete status: [setup log-sidecar]"})
    );
    assert_eq!(
        c[3]["message"],
        "containers with unready status: [log-sidecar app]"
    );

    let s = pod_status(
        &p,
        &seen(
            vec![exited("setup", 0), exited("log-sidecar", 137)],
            vec![exited("app", 0)],
        ),
        at(100),
    );
    assert_eq!(
        conditions(&s)[1..4],
        [
            json!({"type": "Initialized", "status": "True", "reason": "PodCompleted"}),
            json!({"type": "Ready", "status": "False", "reason": "PodCompleted"}),
            json!({"type": "ContainersReady", "status": "False", "reason": "PodCompleted"}),
        ]
    );
    let s = pod_status(
        &p,
        &seen(
            vec![exited("setup", 0), exited("log-sidecar", 137)],
            vec![exited("app", 1)],
        ),
        at(100),
    );
    assert_eq!(
        conditions(&s)[3],
        json!({"type": "ContainersReady", "status": "False", "reason": "PodFailed"})
    );
}

#[test]
fn initialized_by_the_worker_when_records_are_gone() {
    let p = pod("Always", &["setup"], &["app"], json!({}));
    let mut s = seen(vec![], vec![waiting("app", "ContainerCreating")]);
    assert_eq!(
        conditions(&pod_status(&p, &s, at(100)))[1]["status"],
        "False"
    );
    s.initialized = true;
    assert_eq!(
        conditions(&pod_status(&p, &s, at(100)))[1]["status"],
        "True"
    );
}

#[test]
fn transition_times_are_kept_while_unchanged() {
    let old = json!({"conditions": [
        {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": time(1)},
        {"type": "Ready", "status": "False", "lastTransitionTime": time(2), "reason": "ContainersNotReady"},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": time(3)},
        {"type": "Initialized", "status": "True", "lastTransitionTime": time(4)},
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "lastTransitionTime": time(5)}
    ]});
    let p = pod("Always", &[], &["a"], old);
    let s = pod_status(&p, &seen(vec![], vec![running("a")]), at(100));
    let times: Vec<(String, Value)> = s
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            (
                c.type_.clone(),
                serde_json::to_value(&c.last_transition_time).expect("json"),
            )
        })
        .collect();
    let want = [
        ("DisruptionTarget", time(5)),
        ("PodReadyToStartContainers", time(100)),
        ("Initialized", time(4)),
        ("Ready", time(100)),
        ("ContainersReady", time(3)),
        ("PodScheduled", time(1)),
    ];
    assert_eq!(times, want.map(|(t, v)| (t.to_string(), v)));
}

#[test]
fn readiness_gates() {
    let mut p = pod(
        "Always",
        &[],
        &["a"],
        json!({"conditions": [{"type": "example.com/lb", "status": "False"}]}),
    );
    if let Some(spec) = p.spec.as_mut() {
        spec.readiness_gates = serde_json::from_value(
            json!([{"conditionType": "example.com/lb"}, {"conditionType": "x/y"}]),
        )
        .ok();
    }
    let s = pod_status(&p, &seen(vec![], vec![running("a")]), at(100));
    let c = conditions(&s);
    assert_eq!(c[0]["type"], "example.com/lb", "kept, first");
    assert_eq!(
        c[3],
        json!({"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
               "message": "the status of pod readiness gate \"example.com/lb\" is not \"True\", but False, corresponding condition of pod readiness gate \"x/y\" does not exist."})
    );
    assert_eq!(c[4], json!({"type": "ContainersReady", "status": "True"}));
}
