use std::net::{IpAddr, Ipv4Addr};

use chrono::TimeZone;
use serde_json::{json, Value};

use super::*;

pub(super) const UID: &str = "0f3c6c1e-5a8e-4a43-9d3b-2b8d5f6f7a10";

pub(super) fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("a time")
}

pub(super) fn time(secs: i64) -> Value {
    serde_json::to_value(to_time(at(secs))).expect("json")
}

/// A pod with `policy`, init containers and containers by name (an init
/// name ending in "-sidecar" gets restartPolicy Always), and `status`.
pub(super) fn pod(policy: &str, init: &[&str], containers: &[&str], status: Value) -> Pod {
    let init: Vec<Value> = init
        .iter()
        .map(|n| match n.ends_with("-sidecar") {
            true => json!({"name": n, "image": "busybox", "restartPolicy": "Always"}),
            false => json!({"name": n, "image": "busybox"}),
        })
        .collect();
    let containers: Vec<Value> = containers
        .iter()
        .map(|n| json!({"name": n, "image": "nginx"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": UID},
        "spec": {"nodeName": "node-1", "restartPolicy": policy, "initContainers": init, "containers": containers},
        "status": status
    }))
    .expect("a Pod")
}

pub(super) fn observed(name: &str, state: State) -> ContainerObserved {
    ContainerObserved {
        name: name.to_string(),
        image: "docker.io/library/nginx:latest".to_string(),
        image_id: "docker.io/library/nginx@sha256:abc".to_string(),
        container_id: Some(format!("skiff://{name}-id")),
        state,
        last_state: None,
        restart_count: 0,
        ready: true,
        started: None,
    }
}

pub(super) fn running(name: &str) -> ContainerObserved {
    observed(name, State::Running { started_at: at(10) })
}

pub(super) fn exited(name: &str, code: i32) -> ContainerObserved {
    observed(
        name,
        State::Terminated {
            exit_code: code,
            signal: None,
            reason: terminated_reason(code, false).to_string(),
            message: None,
            started_at: Some(at(10)),
            finished_at: at(20),
            container_id: None,
        },
    )
}

pub(super) fn waiting(name: &str, reason: &str) -> ContainerObserved {
    observed(
        name,
        State::Waiting {
            reason: reason.to_string(),
            message: None,
        },
    )
}

/// Waiting to restart after exiting with `code`.
pub(super) fn crashed(name: &str, code: i32) -> ContainerObserved {
    let mut o = waiting(name, "CrashLoopBackOff");
    o.last_state = Some(exited(name, code).state);
    o.restart_count = 1;
    o
}

pub(super) fn seen(
    init: Vec<ContainerObserved>,
    containers: Vec<ContainerObserved>,
) -> PodObserved {
    PodObserved {
        sandbox_ready: true,
        pod_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 42, 0, 7))),
        host_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5)),
        started_at: Some(at(5)),
        init,
        containers,
        initialized: false,
    }
}

#[test]
fn container_statuses_as_kubelet_writes_them() {
    let p = pod(
        "Always",
        &["setup"],
        &["web", "api"],
        json!({"qosClass": "BestEffort"}),
    );
    let mut api = crashed("api", 2);
    api.restart_count = 3;
    let s = pod_status(
        &p,
        &seen(vec![exited("setup", 0)], vec![running("web"), api]),
        at(100),
    );
    let statuses = serde_json::to_value(&s.container_statuses).expect("json");
    assert_eq!(
        statuses,
        json!([
            {"name": "api", "image": "docker.io/library/nginx:latest", "imageID": "docker.io/library/nginx@sha256:abc",
             "containerID": "skiff://api-id", "ready": false, "started": false, "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "startedAt": time(10), "finishedAt": time(20)}}},
            {"name": "web", "image": "docker.io/library/nginx:latest", "imageID": "docker.io/library/nginx@sha256:abc",
             "containerID": "skiff://web-id", "ready": true, "started": true, "restartCount": 0,
             "state": {"running": {"startedAt": time(10)}}, "lastState": {}}
        ]),
        "sorted by name"
    );
    let init = serde_json::to_value(&s.init_container_statuses).expect("json");
    assert_eq!(
        init[0]["ready"], true,
        "an init container that completed is ready"
    );
    assert_eq!(
        init[0]["state"]["terminated"],
        json!({"exitCode": 0, "reason": "Completed", "startedAt": time(10), "finishedAt": time(20), "containerID": "skiff://setup-id"})
    );
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    assert_eq!(s.host_ip.as_deref(), Some("192.168.1.5"));
    assert_eq!(
        serde_json::to_value(&s.host_ips).expect("json"),
        json!([{"ip": "192.168.1.5"}])
    );
    assert_eq!(
        (s.pod_ip.as_deref(), s.pod_ips.map(|v| v[0].ip.clone())),
        (Some("10.42.0.7"), Some("10.42.0.7".into()))
    );
    assert_eq!(serde_json::to_value(&s.start_time).expect("json"), time(5));
}

#[test]
fn containers_not_made_yet() {
    let p = pod("Always", &["setup"], &["app"], json!({}));
    let s = pod_status(&p, &seen(vec![], vec![]), at(100));
    let both = [&s.init_container_statuses, &s.container_statuses]
        .map(|v| serde_json::to_value(v).expect("json")[0].clone());
    for (v, name, image) in [(&both[0], "setup", "busybox"), (&both[1], "app", "nginx")] {
        assert_eq!(
            *v,
            json!({"name": name, "image": image, "imageID": "", "ready": false, "started": false, "restartCount": 0,
                   "state": {"waiting": {"reason": "PodInitializing"}}, "lastState": {}})
        );
    }
    let plain = pod("Always", &[], &["app"], json!({}));
    let s = pod_status(&plain, &seen(vec![], vec![]), at(100));
    assert_eq!(
        s.container_statuses.expect("statuses")[0]
            .state
            .clone()
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .as_deref(),
        Some("ContainerCreating")
    );
}

#[test]
fn what_the_runtime_forgot_is_taken_from_the_old_status() {
    let old = json!({
        "containerStatuses": [
            {"name": "done", "image": "nginx", "imageID": "i", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "gone", "image": "nginx", "imageID": "i", "ready": true, "restartCount": 2,
             "state": {"running": {"startedAt": time(1)}}}
        ],
        "podIP": "10.42.0.9", "podIPs": [{"ip": "10.42.0.9"}],
        "startTime": time(0),
    });
    let p = pod("OnFailure", &[], &["done", "gone"], old);
    let mut s = seen(vec![], vec![]);
    s.pod_ip = None;
    let status = pod_status(&p, &s, at(100));
    let statuses = status.container_statuses.clone().expect("statuses");
    assert_eq!(
        statuses[0]
            .state
            .clone()
            .and_then(|s| s.terminated)
            .map(|t| t.exit_code),
        Some(0)
    );
    let gone = serde_json::to_value(&statuses[1]).expect("json");
    assert_eq!(gone["restartCount"], 3);
    assert_eq!(
        gone["state"],
        json!({"waiting": {"reason": "ContainerCreating"}})
    );
    assert_eq!(
        gone["lastState"]["terminated"],
        json!({"exitCode": 137, "reason": "ContainerStatusUnknown",
               "message": "The container could not be located when the pod was deleted.  The container used to be Running"})
    );
    assert_eq!(
        status.phase.as_deref(),
        Some(RUNNING),
        "not back to Pending"
    );
    assert_eq!(status.pod_ip.as_deref(), Some("10.42.0.9"));
    assert_eq!(
        serde_json::to_value(&status.start_time).expect("json"),
        time(0)
    );
}

#[test]
fn a_host_network_pod_has_the_node_address() {
    let mut p = pod("Always", &[], &["a"], json!({}));
    if let Some(spec) = p.spec.as_mut() {
        spec.host_network = Some(true);
    }
    let mut s = seen(vec![], vec![running("a")]);
    s.pod_ip = None;
    let status = pod_status(&p, &s, at(100));
    assert_eq!(status.pod_ip.as_deref(), Some("192.168.1.5"));
}

#[test]
fn reason_and_message_stay_with_their_phase() {
    let p = pod(
        "Always",
        &[],
        &["a"],
        json!({"phase": "Running", "reason": "R", "message": "M"}),
    );
    let s = pod_status(&p, &seen(vec![], vec![running("a")]), at(100));
    assert_eq!(
        (s.reason.as_deref(), s.message.as_deref()),
        (Some("R"), Some("M"))
    );
    let s = pod_status(
        &p,
        &seen(vec![], vec![waiting("a", "ErrImagePull")]),
        at(100),
    );
    assert_eq!(
        (s.phase.as_deref(), s.reason, s.message),
        (Some(PENDING), None, None)
    );
}

#[test]
fn backoff_doubles_to_five_minutes_and_resets() {
    let seq: Vec<u64> = (0..=7)
        .map(|n| backoff(n, Duration::from_secs(1)).as_secs())
        .collect();
    assert_eq!(seq, [0, 10, 20, 40, 80, 160, 300, 300]);
    assert_eq!(backoff(i32::MAX, Duration::ZERO), Duration::from_secs(300));
    assert_eq!(
        backoff(5, Duration::from_secs(601)),
        Duration::ZERO,
        "ran over 10 min"
    );
    assert_eq!(
        backoff(5, Duration::from_secs(600)),
        Duration::from_secs(160)
    );
}

#[test]
fn restart_rules() {
    let container = |policy: Option<&str>| -> Container {
        serde_json::from_value(json!({"name": "c", "restartPolicy": policy})).expect("container")
    };
    let (plain, sidecar) = (container(None), container(Some("Always")));
    for (policy, init, c, code, want) in [
        ("Always", false, &plain, 0, true),
        ("Always", false, &plain, 1, true),
        ("OnFailure", false, &plain, 0, false),
        ("OnFailure", false, &plain, 1, true),
        ("Never", false, &plain, 1, false),
        ("Always", true, &plain, 0, false),
        ("Always", true, &plain, 1, true),
        ("OnFailure", true, &plain, 1, true),
        ("Never", true, &plain, 1, false),
        ("Never", true, &sidecar, 0, true),
        ("OnFailure", true, &sidecar, 1, true),
    ] {
        let p = pod(policy, &[], &["c"], json!({}));
        assert_eq!(
            should_restart(&p, c, init, code),
            want,
            "{policy} init={init} {code}"
        );
    }
    let mut deleted = pod("Always", &[], &["c"], json!({}));
    deleted.metadata.deletion_timestamp = Some(to_time(at(0)));
    assert!(!should_restart(&deleted, &plain, false, 1));
}

#[test]
fn crash_loop_messages() {
    let p = pod("Always", &[], &["c"], json!({}));
    assert_eq!(
        crash_loop_message(&p, "c", backoff(1, Duration::ZERO)),
        format!("back-off 10s restarting failed container=c pod=web_shop({UID})")
    );
    assert!(crash_loop_message(&p, "c", backoff(6, Duration::ZERO)).starts_with("back-off 5m0s "));
    for (d, want) in [
        (Duration::ZERO, "0s"),
        (Duration::from_secs(40), "40s"),
        (Duration::from_secs(80), "1m20s"),
        (Duration::from_secs(160), "2m40s"),
        (Duration::from_secs(3600), "1h0m0s"),
        (Duration::from_millis(1500), "1.5s"),
        (Duration::from_millis(500), "500ms"),
        (Duration::from_micros(1), "1µs"),
    ] {
        assert_eq!(go_duration(d), want);
    }
}

#[test]
fn terminated_reasons() {
    assert_eq!(terminated_reason(0, false), "Completed");
    assert_eq!(terminated_reason(1, false), "Error");
    assert_eq!(terminated_reason(137, true), "OOMKilled");
    assert_eq!(terminated_reason(0, true), "OOMKilled");
}

#[test]
fn a_deleted_pod_ends_with_every_container_ended() {
    let st = |name: &str, state: Value, last: Value| -> Value {
        json!({"name": name, "image": "i", "imageID": "", "ready": true, "restartCount": 0,
               "state": state, "lastState": last})
    };
    let new: PodStatus = serde_json::from_value(json!({
        "phase": "Running",
        "initContainerStatuses": [
            st("init-a", json!({"terminated": {"exitCode": 0}}), json!({})),
            st("init-b", json!({"waiting": {"reason": "PodInitializing"}}), json!({"terminated": {"exitCode": 1}})),
            st("init-c", json!({"waiting": {"reason": "PodInitializing"}}), json!({})),
        ],
        "containerStatuses": [
            st("done", json!({"waiting": {"reason": "ContainerCreating"}}), json!({})),
            st("lost", json!({"running": {}}), json!({})),
            st("ok", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), json!({})),
        ],
    }))
    .unwrap();
    // What an earlier worker wrote: "done" ended with 0 (this worker never
    // saw its container).
    let old: PodStatus = serde_json::from_value(json!({
        "phase": "Running",
        "containerStatuses": [st("done", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), json!({}))],
    }))
    .unwrap();
    let mut old = old;
    old.container_statuses.as_mut().unwrap()[0].container_id = Some("skiff://gone".into());
    let init: Vec<Container> = ["init-a", "init-b", "init-c"]
        .iter()
        .map(|n| serde_json::from_value(json!({"name": n, "image": "i"})).unwrap())
        .collect();
    let out = serde_json::to_value(terminated(new.clone(), Some(&old), &init)).unwrap();
    assert_eq!(out["phase"], "Failed");
    let c = &out["containerStatuses"];
    assert_eq!(c[0]["state"]["terminated"]["reason"], "Completed", "{c}");
    assert_eq!(c[0]["containerID"], "skiff://gone", "{c}");
    assert_eq!(c[1]["state"]["terminated"]["exitCode"], 137);
    assert_eq!(
        c[1]["state"]["terminated"]["reason"],
        "ContainerStatusUnknown"
    );
    assert_eq!(c[1]["ready"], false);
    assert_eq!(c[2]["state"]["terminated"]["exitCode"], 0);
    let i = &out["initContainerStatuses"];
    assert_eq!(i[0]["state"]["terminated"]["exitCode"], 0);
    // init-b had run (its last state): ended; init-c never started.
    assert_eq!(
        i[1]["state"]["terminated"]["reason"],
        "ContainerStatusUnknown"
    );
    assert_eq!(i[2]["state"]["waiting"]["reason"], "PodInitializing", "{i}");
    // A terminal phase stays.
    let mut succeeded = new;
    succeeded.phase = Some("Succeeded".into());
    assert_eq!(
        terminated(succeeded, None, &init).phase.as_deref(),
        Some("Succeeded")
    );
}

#[test]
fn a_pod_deleted_before_it_initialized_keeps_its_containers_waiting() {
    let st = |name: &str, state: Value| -> Value {
        json!({"name": name, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
               "state": state, "lastState": {}})
    };
    let waiting = json!({"waiting": {"reason": "PodInitializing"}});
    let new: PodStatus = serde_json::from_value(json!({
        "phase": "Pending",
        "initContainerStatuses": [st("first", waiting.clone()), st("second", waiting.clone())],
        "containerStatuses": [st("app", waiting.clone())],
    }))
    .unwrap();
    let spec = |n: &str, always: bool| -> Container {
        let mut c = json!({"name": n, "image": "i"});
        if always {
            c["restartPolicy"] = json!("Always");
        }
        serde_json::from_value(c).unwrap()
    };
    let init = [spec("first", false), spec("second", false)];
    let out = serde_json::to_value(terminated(new.clone(), None, &init)).unwrap();
    assert_eq!(out["phase"], "Failed");
    // Nothing started: only the first init container is ended, as kubelet.
    let i = &out["initContainerStatuses"];
    assert_eq!(i[0]["state"]["terminated"]["exitCode"], 137, "{i}");
    assert_eq!(i[1]["state"]["waiting"]["reason"], "PodInitializing", "{i}");
    let c = &out["containerStatuses"];
    assert_eq!(c[0]["state"]["waiting"]["reason"], "PodInitializing", "{c}");
    // The last init container completed: the pod had initialized, and its
    // containers that never reported are ended.
    let mut done = new.clone();
    done.init_container_statuses.as_mut().unwrap()[1] =
        serde_json::from_value(st("second", json!({"terminated": {"exitCode": 0}}))).unwrap();
    let out = serde_json::to_value(terminated(done, None, &init)).unwrap();
    assert_eq!(
        out["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    // A last init container that is a sidecar counts once started.
    let init = [spec("first", false), spec("second", true)];
    let mut started = new;
    let sidecar = &mut started.init_container_statuses.as_mut().unwrap()[1];
    sidecar.started = Some(true);
    sidecar.state = serde_json::from_value(json!({"running": {}})).unwrap();
    let out = serde_json::to_value(terminated(started, None, &init)).unwrap();
    assert_eq!(
        out["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    assert_eq!(
        out["initContainerStatuses"][1]["state"]["terminated"]["exitCode"],
        137
    );
}
