//! Pod rows: READY, the STATUS reason cases and RESTARTS.

use super::*;

fn pod(spec: Value, status: Value) -> Value {
    json!({
        "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": CREATED},
        "spec": spec,
        "status": status,
    })
}

fn one_container() -> Value {
    json!({"containers": [{"name": "app", "image": "busybox"}]})
}

#[test]
fn pod_running_matches_the_recorded_table() {
    let p = pod(
        one_container(),
        json!({
            "phase": "Running",
            "podIP": "10.244.0.184",
            "podIPs": [{"ip": "10.244.0.184"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                                   "state": {"running": {"startedAt": CREATED}}}]
        }),
    );
    let mut p = p;
    p["spec"]["nodeName"] = json!("node-1");
    assert_eq!(
        row("", "pods", p),
        vec![
            json!("web-0"),
            json!("1/1"),
            json!("Running"),
            json!("0"),
            json!("62m"),
            json!("10.244.0.184"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    let defs = column_definitions_json(&columns(&def("", "pods")));
    let names: Vec<&str> = defs
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(defs[0]["format"], "name");
    assert_eq!(defs[5]["priority"], 1);
    assert_eq!(defs[4]["priority"], 0);
}

/// (status JSON, extra spec, deletion?, expected READY, STATUS, RESTARTS)
#[test]
fn pod_status_reasons() {
    let waiting = |r: &str| json!({"waiting": {"reason": r}});
    let cases: Vec<(Value, Value, bool, &str, &str, &str)> = vec![
        (
            json!({"phase": "Pending"}),
            one_container(),
            false,
            "0/1",
            "Pending",
            "0",
        ),
        (
            json!({"phase": "Pending", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "state": waiting("ContainerCreating")}]}),
            one_container(),
            false,
            "0/1",
            "ContainerCreating",
            "0",
        ),
        (
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 5, "state": waiting("CrashLoopBackOff"),
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                              "finishedAt": "2026-11-25T08:55:00Z"}}}]}),
            one_container(),
            false,
            "0/1",
            "CrashLoopBackOff",
            "5 (5m ago)",
        ),
        (
            json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            one_container(),
            false,
            "0/1",
            "Completed",
            "0",
        ),
        (
            json!({"phase": "Failed", "containerStatuses": [
                {"name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
            one_container(),
            false,
            "0/1",
            "Signal:9",
            "0",
        ),
        (
            json!({"phase": "Failed", "containerStatuses": [
                {"name": "app", "state": {"terminated": {"exitCode": 3}}}]}),
            one_container(),
            false,
            "0/1",
            "ExitCode:3",
            "0",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "init", "ready": false, "restartCount": 0, "state": waiting("PodInitializing")}],
                "containerStatuses": [{"name": "app", "state": waiting("PodInitializing")}]}),
            json!({"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]}),
            false,
            "0/1",
            "Init:0/1",
            "0",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "i2", "restartCount": 2, "state": waiting("CrashLoopBackOff")}]}),
            json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]}),
            false,
            "0/1",
            "Init:CrashLoopBackOff",
            "2",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 2}}}]}),
            json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "app"}]}),
            false,
            "0/1",
            "Init:ExitCode:2",
            "0",
        ),
        (
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": true, "state": {"running": {}}}]}),
            one_container(),
            true,
            "1/1",
            "Terminating",
            "0",
        ),
        (
            json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            one_container(),
            true,
            "0/1",
            "Completed",
            "0",
        ),
        (
            json!({"phase": "Running", "reason": "NodeLost"}),
            one_container(),
            true,
            "0/1",
            "Unknown",
            "0",
        ),
        (
            // One container finished, one still running and ready.
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "state": {"running": {}}},
                    {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            false,
            "1/2",
            "Running",
            "0",
        ),
        (
            json!({"phase": "Running", "containerStatuses": [
                    {"name": "a", "ready": true, "state": {"running": {}}},
                    {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            false,
            "1/2",
            "NotReady",
            "0",
        ),
        (
            // A started, ready sidecar counts towards READY.
            json!({"phase": "Running",
                "initContainerStatuses": [{"name": "side", "started": true, "ready": true, "restartCount": 1,
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-25T08:00:00Z"}},
                    "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}]}),
            json!({"initContainers": [{"name": "side", "restartPolicy": "Always"}], "containers": [{"name": "app"}]}),
            false,
            "2/2",
            "Running",
            "1 (60m ago)",
        ),
        (
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            one_container(),
            false,
            "0/1",
            "SchedulingGated",
            "0",
        ),
    ];
    for (i, (status, spec, deleting, ready, reason, restarts)) in cases.into_iter().enumerate() {
        let mut p = pod(spec, status);
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-11-25T08:59:00Z");
        }
        let r = row("", "pods", p);
        assert_eq!(
            (r[1].as_str(), r[2].as_str(), r[3].as_str()),
            (Some(ready), Some(reason), Some(restarts)),
            "case {i}"
        );
    }
}

#[test]
fn pod_readiness_gates() {
    let mut p = pod(
        json!({"containers": [], "readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}]}),
        json!({"conditions": [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}]}),
    );
    p["status"]["nominatedNodeName"] = json!("n2");
    let r = row("", "pods", p);
    assert_eq!(r[7], json!("n2"));
    assert_eq!(r[8], json!("1/2"));
}
