//! spec::build, byte-checked: what each part of a ContainerSpec becomes in
//! the OCI spec, over the baseline confinement.

use super::*;
use crate::runtime::container::options::{Bind, DeviceMapping, Network, RunOptions};

fn image() -> ImageProcess {
    ImageProcess {
        entrypoint: vec![],
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into(), "A=image".into()],
        workdir: "/srv".into(),
        user: String::new(),
    }
}

fn identity() -> Identity {
    Identity {
        uid: 0,
        gid: 0,
        additional_gids: vec![],
        home: "/root".into(),
    }
}

/// The spec `skiff run` would ask for (options/translate.rs).
fn spec_json(opts: &RunOptions) -> Value {
    spec_json_of(&opts.to_container_spec("img"))
}

fn spec_json_of(spec: &ContainerSpec) -> Value {
    serde_json::to_value(try_build(spec).unwrap()).unwrap()
}

/// `build` with fixed inputs around `spec`.
fn try_build(spec: &ContainerSpec) -> Result<Spec, SpecError> {
    let img = image();
    let id = identity();
    build(&SpecInputs {
        image: &img,
        spec,
        init: None,
        cgroup_mounts: &["/sys/fs/cgroup".into(), "/sys/fs/cgroup/memory".into()],
        identity: &id,
        hostname: "abc",
        rootfs: Path::new("/r"),
        cgroups_path: "/skiff/abc",
        etc_files: &[],
        nofile_hard: 4096,
    })
}

#[test]
fn command_rules() {
    let mut img = image();
    img.entrypoint = vec!["/entry".into()];
    let mut opts = RunOptions::default();
    let process = |o: &RunOptions| o.to_container_spec("img").process;
    assert_eq!(command(&img, &process(&opts)).unwrap(), ["/entry", "sh"]);
    opts.cmd = vec!["echo".into(), "hi".into()];
    assert_eq!(
        command(&img, &process(&opts)).unwrap(),
        ["/entry", "echo", "hi"]
    );
    opts.entrypoint = Some("ls".into());
    opts.cmd.clear();
    assert_eq!(command(&img, &process(&opts)).unwrap(), ["ls"]);
    opts.entrypoint = Some(String::new());
    assert!(matches!(
        command(&img, &process(&opts)),
        Err(SpecError::NoCommand)
    ));
}

#[test]
fn env_merge_keeps_order() {
    let merged = merge_env(&["A=1".into(), "B=2".into()], &["B=3".into(), "C=4".into()]);
    assert_eq!(merged, ["A=1", "B=3", "C=4"]);
}

#[test]
fn docker_defaults() {
    let opts = RunOptions {
        env: vec!["A=cli".into()],
        ..Default::default()
    };
    let s = spec_json(&opts);
    let p = &s["process"];
    let env: Vec<&str> = p["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(env, ["PATH=/bin", "A=cli", "HOSTNAME=abc", "HOME=/root"]);
    assert_eq!(p["cwd"], "/srv");
    assert_eq!(p["noNewPrivileges"], true);
    let caps = p["capabilities"]["bounding"].as_array().unwrap();
    assert!(!caps
        .iter()
        .any(|c| c == "CAP_MKNOD" || c == "CAP_SYS_ADMIN"));
    assert_eq!(
        p["rlimits"][0]["hard"], 4096,
        "clamped to the host's hard limit"
    );
    let ns: Vec<&str> = s["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"network") && ns.contains(&"pid") && ns.contains(&"cgroup"));
    assert!(s["linux"]["readonlyPaths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/proc/sys"));
    assert_eq!(s["root"]["readonly"], false);
    assert_eq!(s["linux"]["cgroupsPath"], "/skiff/abc");
    assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    let unconfined = spec_json(&RunOptions {
        seccomp: crate::runtime::container::seccomp::Choice::Unconfined,
        ..Default::default()
    });
    assert!(unconfined["linux"].get("seccomp").is_none());
}

#[test]
fn options_reach_the_spec() {
    let opts = RunOptions {
        memory: Some(32 << 20),
        cpus: Some(0.5),
        pids_limit: Some(20),
        read_only: true,
        network: Some(Network::Host),
        workdir: Some("/tmp/../data".into()),
        binds: vec![Bind {
            source: "/h".into(),
            destination: "/c".into(),
            read_only: true,
            volume: None,
        }],
        tmpfs: vec!["/scratch".into()],
        ..Default::default()
    };
    let s = spec_json(&opts);
    let r = &s["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 32 << 20);
    assert_eq!(r["cpu"]["quota"], 50_000);
    assert_eq!(r["pids"]["limit"], 20);
    assert_eq!(s["root"]["readonly"], true);
    assert_eq!(s["process"]["cwd"], "/data");
    let ns = s["linux"]["namespaces"].as_array().unwrap();
    assert!(!ns.iter().any(|n| n["type"] == "network"));
    let mounts = s["mounts"].as_array().unwrap();
    let bind = mounts.iter().find(|m| m["destination"] == "/c").unwrap();
    assert!(bind["options"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "ro"));
    assert!(mounts
        .iter()
        .any(|m| m["destination"] == "/scratch" && m["type"] == "tmpfs"));
}

#[test]
fn shares_and_oom_score_reach_the_spec() {
    let mut spec = RunOptions {
        cpus: Some(0.5),
        ..Default::default()
    }
    .to_container_spec("img");
    assert!(spec_json_of(&spec)["process"].get("oomScoreAdj").is_none());
    spec.resources.cpu_shares = Some(1);
    spec.process.oom_score_adj = Some(875);
    let s = spec_json_of(&spec);
    assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 50_000);
    assert_eq!(s["linux"]["resources"]["cpu"]["shares"], 2, "at least 2");
    assert_eq!(s["process"]["oomScoreAdj"], 875);
}

#[test]
fn devices_default_deny_with_dockers_list() {
    let s = spec_json(&RunOptions::default());
    let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
    assert_eq!(rules[0], json!({"allow": false, "access": "rwm"}));
    let allowed = |t: &str, ma: i64, mi: i64| {
        rules
            .iter()
            .any(|r| r["allow"] == true && r["type"] == t && r["major"] == ma && r["minor"] == mi)
    };
    assert!(allowed("c", 1, 3) && allowed("c", 1, 9) && allowed("c", 5, 2));
    assert!(!allowed("c", 5, 1), "the host console is not Docker's");
    assert!(!allowed("b", 7, 0) && !allowed("c", 1, 1));
    let ro = s["linux"]["readonlyPaths"].as_array().unwrap();
    assert!(ro.iter().any(|p| p == "/sys/fs/cgroup"));
    assert!(ro.iter().any(|p| p == "/sys/fs/cgroup/memory"));
    assert!(s["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c != "CAP_SYS_ADMIN"));
}

#[test]
fn device_flag_and_privileged_widen() {
    let opts = RunOptions {
        devices: vec![DeviceMapping::parse("/dev/null:/dev/mine:r").unwrap()],
        ..Default::default()
    };
    let s = spec_json(&opts);
    let node = &s["linux"]["devices"][0];
    assert_eq!(
        (node["path"].clone(), node["type"].clone()),
        (json!("/dev/mine"), json!("c"))
    );
    assert_eq!(
        (node["major"].clone(), node["minor"].clone()),
        (json!(1), json!(3))
    );
    let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
    assert_eq!(
        rules.last().unwrap(),
        &json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"})
    );
    let opts = RunOptions {
        devices: vec![DeviceMapping::parse("/etc").unwrap()],
        ..Default::default()
    };
    let err = try_build(&opts.to_container_spec("img")).unwrap_err();
    assert!(
        err.to_string().contains("not a character or block device"),
        "{err}"
    );

    let s = spec_json(&RunOptions {
        privileged: true,
        ..Default::default()
    });
    assert_eq!(
        s["linux"]["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );
    assert!(s["linux"]["maskedPaths"]
        .as_array()
        .is_none_or(|a| a.is_empty()));
    assert!(s["linux"]["readonlyPaths"]
        .as_array()
        .is_none_or(|a| a.is_empty()));
    let sys = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(!sys["options"].as_array().unwrap().iter().any(|o| o == "ro"));
    assert!(s["linux"].get("seccomp").is_none(), "privileged: no filter");
    let devices = s["linux"]["devices"].as_array().unwrap();
    assert!(
        devices.iter().any(|d| d["path"] == "/dev/null"),
        "host devices"
    );
    assert!(!devices
        .iter()
        .any(|d| d["path"] == "/dev/console" || d["path"] == "/dev/ptmx"));
}

#[test]
fn capabilities_added_and_dropped() {
    let mut spec = RunOptions::default().to_container_spec("img");
    spec.security.cap_drop = vec!["net_raw".into(), "CAP_KILL".into()];
    spec.security.cap_add = vec!["SYS_TIME".into()];
    let s = spec_json_of(&spec);
    let caps: Vec<&str> = s["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(caps.contains(&"CAP_SYS_TIME") && caps.contains(&"CAP_CHOWN"));
    assert!(!caps.contains(&"CAP_NET_RAW") && !caps.contains(&"CAP_KILL"));
    spec.security.cap_drop = vec!["ALL".into()];
    spec.security.cap_add = vec!["chown".into()];
    let s = spec_json_of(&spec);
    assert_eq!(
        s["process"]["capabilities"]["bounding"],
        json!(["CAP_CHOWN"])
    );
    spec.security.cap_add = vec!["CAP_NOPE".into()];
    let err = try_build(&spec).unwrap_err();
    assert!(matches!(err, SpecError::Capability(_)), "{err}");
}

#[test]
fn privileged_capabilities_follow_the_bounding_set() {
    let all = baseline::privileged_capabilities(u64::MAX);
    assert_eq!(all.len(), baseline::ALL_CAPABILITIES.len());
    assert_eq!(all[24], "CAP_SYS_RESOURCE");
    let without = baseline::privileged_capabilities(!(1 << 24));
    assert!(!without.contains(&"CAP_SYS_RESOURCE"));
    assert!(without.contains(&"CAP_SYS_ADMIN"));
}

#[test]
fn added_capabilities_stay_within_the_bounding_set() {
    let without_sys_resource = !(1u64 << 24);
    let all = baseline::adjust_capabilities(baseline::CAPABILITIES, &["ALL".into()], &[]).unwrap();
    let held = baseline::within_bounding_set(all, &["ALL".into()], without_sys_resource).unwrap();
    assert!(!held.contains(&"CAP_SYS_RESOURCE"));
    assert!(held.contains(&"CAP_SYS_ADMIN"));
    let named =
        baseline::adjust_capabilities(baseline::CAPABILITIES, &["SYS_RESOURCE".into()], &[])
            .unwrap();
    assert_eq!(
        baseline::within_bounding_set(named, &["SYS_RESOURCE".into()], without_sys_resource),
        Err("CAP_SYS_RESOURCE".to_string())
    );
}
