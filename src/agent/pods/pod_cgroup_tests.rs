use super::*;

fn pod(v: serde_json::Value) -> Pod {
    let mut v = v;
    v["metadata"] = serde_json::json!({"name": "p", "namespace": "d", "uid": "u-1"});
    serde_json::from_value(v).unwrap()
}

fn c(name: &str, req: &[(&str, &str)], lim: &[(&str, &str)]) -> serde_json::Value {
    let m = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    serde_json::json!({"name": name, "image": "busybox", "resources": {"requests": m(req), "limits": m(lim)}})
}

#[test]
fn each_qos_class_has_its_place() {
    let guaranteed = pod(serde_json::json!({"spec": {"containers": [
        c("a", &[("cpu", "500m"), ("memory", "64Mi")], &[("cpu", "500m"), ("memory", "64Mi")]),
    ]}}));
    assert_eq!(parent("skiff", &guaranteed), "skiff/kubepods/podu-1");
    let burstable = pod(serde_json::json!({"spec": {"containers": [
        c("a", &[("cpu", "100m")], &[]),
    ]}}));
    assert_eq!(
        parent("skiff", &burstable),
        "skiff/kubepods/burstable/podu-1"
    );
    let best = pod(serde_json::json!({"spec": {"containers": [c("a", &[], &[])]}}));
    assert_eq!(parent("skiff", &best), "skiff/kubepods/besteffort/podu-1");
    assert!(cgroups::validate_path(&parent("skiff", &best)).is_ok());
    // A node of its own on a shared host.
    assert_eq!(
        parent("/skiff/node-2/", &best),
        "skiff/node-2/kubepods/besteffort/podu-1"
    );
}

#[test]
fn an_agents_noted_pod_cgroups_are_found_under_its_own_kubepods() {
    assert_eq!(
        kubepods_of("skiff/kubepods/podu").as_deref(),
        Some("skiff/kubepods")
    );
    assert_eq!(
        kubepods_of("skiff/n1/kubepods/burstable/podu").as_deref(),
        Some("skiff/n1/kubepods")
    );
    assert_eq!(kubepods_of("skiff/other/podu"), None);
    // The pod's own directory is never its kubepods.
    assert_eq!(kubepods_of("skiff/kubepods"), None);
    let dir = tempfile::tempdir().unwrap();
    mark(dir.path(), "u1", "skiff/n1/kubepods/besteffort/podu1").unwrap();
    mark(dir.path(), "u2", "skiff/n1/elsewhere/podu2").unwrap();
    mark(dir.path(), "u3", "skiff/kubepods/podother").unwrap();
    mark(dir.path(), "u4", "skiff/kubepods/podu4").unwrap();
    mark(dir.path(), "u5", "skiff/n1/kubepods/x/kubepods/podu5").unwrap();
    let found = |root: &str| -> Vec<String> {
        existing(dir.path(), root)
            .into_iter()
            .map(|e| e.1)
            .collect()
    };
    assert_eq!(found("skiff/n1"), ["skiff/n1/kubepods/besteffort/podu1"]);
    // Another root's notes are not this one's to sweep.
    assert_eq!(found("skiff"), ["skiff/kubepods/podu4"]);
}

#[test]
fn a_pod_is_bounded_only_when_every_container_is() {
    let both = pod(serde_json::json!({"spec": {"containers": [
        c("a", &[], &[("cpu", "500m"), ("memory", "64Mi")]),
        c("b", &[], &[("cpu", "250m"), ("memory", "32Mi")]),
    ]}}));
    let l = limits(&both).unwrap();
    assert_eq!(l.memory, Some(96 << 20));
    assert_eq!(l.cpu.map(|q| q.quota), Some(75_000));
    // Requests default to limits (the API server does that; here given).
    let one_unbounded = pod(serde_json::json!({"spec": {"containers": [
        c("a", &[("cpu", "500m")], &[("cpu", "500m"), ("memory", "64Mi")]),
        c("b", &[("cpu", "250m")], &[]),
    ]}}));
    let l = limits(&one_unbounded).unwrap();
    assert_eq!(l.memory, None);
    assert_eq!(l.cpu, None);
    // 750m requested: 768 shares.
    assert_eq!(l.cpu_shares, Some(768));
}

#[test]
fn init_containers_count_as_their_largest() {
    let p = pod(serde_json::json!({"spec": {
        "initContainers": [
            c("big-init", &[("cpu", "2")], &[("cpu", "2"), ("memory", "256Mi")]),
            c("side", &[("cpu", "100m")], &[("cpu", "100m"), ("memory", "16Mi")]),
        ],
        "containers": [c("a", &[("cpu", "500m")], &[("cpu", "500m"), ("memory", "64Mi")])],
    }}));
    let mut v = serde_json::to_value(&p).unwrap();
    v["spec"]["initContainers"][1]["restartPolicy"] = serde_json::json!("Always");
    let p: Pod = serde_json::from_value(v).unwrap();
    let l = limits(&p).unwrap();
    // max(256Mi, 64Mi + 16Mi) and max(2 CPUs, 0.6).
    assert_eq!(l.memory, Some(256 << 20));
    assert_eq!(l.cpu.map(|q| q.quota), Some(200_000));
    assert_eq!(l.cpu_shares, Some(2048));
}

#[test]
fn best_effort_pods_weigh_least() {
    let best = pod(serde_json::json!({"spec": {"containers": [c("a", &[], &[])]}}));
    let l = limits(&best).unwrap();
    assert_eq!(l.cpu_shares, Some(2));
    assert_eq!((l.memory, l.cpu), (None, None));
    assert_eq!(weight(2), 1);
    assert_eq!(weight(1024), 39);
    assert_eq!(weight(262_144), 10_000);
    // Lossy, as the weight is coarser: within one step of it.
    assert!((998..=1024).contains(&shares_of_weight(weight(1024))));
}

#[test]
fn a_sidecar_started_before_an_init_container_runs_beside_it() {
    let p = pod(serde_json::json!({"spec": {
        "initContainers": [
            c("side", &[("cpu", "100m")], &[("cpu", "100m"), ("memory", "100Mi")]),
            c("init", &[("cpu", "1")], &[("cpu", "1"), ("memory", "1Gi")]),
        ],
        "containers": [c("a", &[("cpu", "100m")], &[("cpu", "100m"), ("memory", "100Mi")])],
    }}));
    let mut v = serde_json::to_value(&p).unwrap();
    v["spec"]["initContainers"][0]["restartPolicy"] = serde_json::json!("Always");
    let p: Pod = serde_json::from_value(v).unwrap();
    let l = limits(&p).unwrap();
    // The init container beside the sidecar: 1Gi + 100Mi, 1.1 CPUs.
    assert_eq!(l.memory, Some((1 << 30) + (100 << 20)));
    assert_eq!(l.cpu.map(|q| q.quota), Some(110_000));
    assert_eq!(l.cpu_shares, Some(1126));
}

#[test]
fn the_default_root_is_the_engines_parent() {
    assert_eq!(DEFAULT_ROOT, cgroups::default_parent());
}
