use chrono::TimeZone;

use super::*;

#[test]
fn pids_available_from_loadavg() {
    let loadavg = "0.01 0.47 0.97 1/82 28054\n";
    assert_eq!(pid_available(32768, 192724, loadavg), Ok(32768 - 82));
    assert_eq!(pid_available(4194304, 3900, loadavg), Ok(3900 - 82));
    assert_eq!(pid_available(100, 100, "0 0 0 3/150 7"), Ok(0), "saturates");
    for bad in [
        "",
        "0.01 0.47 0.97",
        "0.01 0.47 0.97 82 28054",
        "0.01 0.47 0.97 1/x 28054",
        "0.01 0.47 0.97 1/ 28054",
    ] {
        let e = pid_available(32768, 32768, bad).expect_err(bad);
        assert!(e.contains("running/total"), "{bad:?}: {e}");
    }
}

fn calm() -> Signals {
    Signals {
        memory_available_bytes: 1 << 30,
        nodefs_available_bytes: 500_000,
        nodefs_capacity_bytes: 1_000_000,
        nodefs_inodes_free: 500,
        nodefs_inodes: 1000,
        pids_available: 30_000,
        pid_max: 32768,
    }
}

#[test]
fn no_pressure_on_a_calm_host() {
    assert_eq!(pressure(&calm()), Pressure::default());
}

#[test]
fn memory_pressure_below_100mi() {
    let mut s = calm();
    s.memory_available_bytes = 100 << 20;
    assert!(!pressure(&s).memory);
    s.memory_available_bytes = (100 << 20) - 1;
    assert_eq!(
        pressure(&s),
        Pressure {
            memory: true,
            ..Pressure::default()
        }
    );
}

#[test]
fn disk_pressure_below_15_percent_free_or_5_percent_inodes() {
    let mut s = calm();
    // 15% of 1e6 in kubelet's float32 is 150000.006: truncated to 150000.
    s.nodefs_available_bytes = 150_000;
    assert!(!pressure(&s).disk);
    s.nodefs_available_bytes = 149_999;
    assert!(pressure(&s).disk, "imagefs.available<15% on the same disk");
    s.nodefs_available_bytes = 0;
    assert_eq!(
        pressure(&s),
        Pressure {
            disk: true,
            ..Pressure::default()
        }
    );

    let mut s = calm();
    s.nodefs_inodes_free = 50;
    assert!(!pressure(&s).disk);
    s.nodefs_inodes_free = 49;
    assert!(pressure(&s).disk);
    // Filesystems without an inode table (btrfs) report 0 of 0.
    s.nodefs_inodes_free = 0;
    s.nodefs_inodes = 0;
    assert!(!pressure(&s).disk);
}

#[test]
fn pid_pressure_below_10_percent() {
    let mut s = calm();
    // 10% of 32768 in kubelet's float32 is 3276.8: truncated to 3276.
    s.pids_available = 3276;
    assert!(!pressure(&s).pid);
    s.pids_available = 3275;
    assert_eq!(
        pressure(&s),
        Pressure {
            pid: true,
            ..Pressure::default()
        }
    );
    s.pid_max = 0;
    s.pids_available = 0;
    assert!(!pressure(&s).pid, "no limit known, no pressure");
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    match Utc.with_ymd_and_hms(2025, 3, 1, h, m, s) {
        chrono::LocalResult::Single(t) => t,
        other => panic!("{other:?}"),
    }
}

fn summary(c: &[NodeCondition]) -> Vec<String> {
    c.iter()
        .map(|c| {
            format!(
                "{} {} {} {}",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or("-"),
                c.message.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

#[test]
fn first_conditions_in_kubelets_order_and_words() {
    let now = at(10, 0, 0) + chrono::Duration::milliseconds(750);
    let c = conditions(Pressure::default(), None, &[], now);
    assert_eq!(
        summary(&c),
        [
            "MemoryPressure False KubeletHasSufficientMemory kubelet has sufficient memory available",
            "DiskPressure False KubeletHasNoDiskPressure kubelet has no disk pressure",
            "PIDPressure False KubeletHasSufficientPID kubelet has sufficient PID available",
            "Ready True KubeletReady kubelet is posting ready status",
        ]
    );
    let json = serde_json::to_value(&c[0]).unwrap_or_default();
    assert_eq!(json["lastHeartbeatTime"], "2025-03-01T10:00:00Z");
    assert_eq!(json["lastTransitionTime"], "2025-03-01T10:00:00Z");
    assert!(c.iter().all(|c| c.last_heartbeat_time == Some(to_time(now))
        && c.last_transition_time == Some(to_time(now))));

    let all = Pressure {
        memory: true,
        disk: true,
        pid: true,
    };
    let c = conditions(all, Some("container runtime network not ready"), &[], now);
    assert_eq!(
        summary(&c),
        [
            "MemoryPressure True KubeletHasInsufficientMemory kubelet has insufficient memory available",
            "DiskPressure True KubeletHasDiskPressure kubelet has disk pressure",
            "PIDPressure True KubeletHasInsufficientPID kubelet has insufficient PID available",
            "Ready False KubeletNotReady container runtime network not ready",
        ]
    );
}

#[test]
fn transition_time_kept_while_status_holds() {
    let t0 = at(10, 0, 0);
    let first = conditions(Pressure::default(), Some("starting"), &[], t0);
    let t1 = at(10, 0, 10);
    let disk = Pressure {
        disk: true,
        ..Pressure::default()
    };
    let second = conditions(disk, None, &first, t1);
    let times = |c: &[NodeCondition]| {
        c.iter()
            .map(|c| {
                (
                    c.last_transition_time.clone(),
                    c.last_heartbeat_time.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (t0, t1) = (Some(to_time(t0)), Some(to_time(t1)));
    assert_eq!(
        times(&second),
        [
            (t0.clone(), t1.clone()),
            (t1.clone(), t1.clone()),
            (t0.clone(), t1.clone()),
            (t1.clone(), t1.clone()),
        ]
    );
    // A changed message alone (Ready stays False) is no transition.
    let third = conditions(
        Pressure::default(),
        Some("other reason"),
        &first,
        at(10, 0, 20),
    );
    assert_eq!(third[3].last_transition_time, t0);
    assert_eq!(third[3].message.as_deref(), Some("other reason"));
}

#[test]
fn unknown_or_untimed_previous_conditions_transition_now() {
    let now = at(12, 0, 0);
    let previous = vec![
        // What the node lifecycle controller writes when heartbeats stop.
        NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some("NodeStatusUnknown".into()),
            message: Some("Kubelet stopped posting node status.".into()),
            last_heartbeat_time: Some(to_time(at(9, 0, 0))),
            last_transition_time: Some(to_time(at(9, 0, 0))),
        },
        NodeCondition {
            type_: "MemoryPressure".into(),
            status: "False".into(),
            ..NodeCondition::default()
        },
        NodeCondition {
            type_: "NetworkUnavailable".into(),
            status: "False".into(),
            ..NodeCondition::default()
        },
    ];
    let c = conditions(Pressure::default(), None, &previous, now);
    assert_eq!(c.len(), 4);
    assert_eq!(c[3].status, "True");
    assert_eq!(c[3].last_transition_time, Some(to_time(now)));
    assert_eq!(c[0].last_transition_time, Some(to_time(now)));
}

#[test]
fn times_are_whole_seconds() {
    let t = at(1, 2, 3) + chrono::Duration::nanoseconds(999_999_999);
    assert_eq!(to_time(t).0.as_second(), at(1, 2, 3).timestamp());
    assert_eq!(to_time(t).0.subsec_nanosecond(), 0);
    let far = DateTime::<Utc>::MAX_UTC;
    assert_eq!(to_time(far).0, Timestamp::MAX);
    assert_eq!(to_time(DateTime::<Utc>::MIN_UTC).0, Timestamp::MIN);
}

#[test]
fn measures_this_hosts_signals() {
    let s = match measure_signals(Path::new("/")) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert!(s.memory_available_bytes > 0, "{s:?}");
    assert!(s.nodefs_capacity_bytes > 0, "{s:?}");
    assert!(s.nodefs_available_bytes <= s.nodefs_capacity_bytes, "{s:?}");
    assert!(s.nodefs_inodes_free <= s.nodefs_inodes, "{s:?}");
    assert!(s.pid_max > 0 && s.pids_available > 0, "{s:?}");
    assert!(s.pids_available < s.pid_max, "{s:?}");
    // The host the tests run on is not expected to be starved of memory or pids.
    let p = pressure(&s);
    assert!(!p.pid, "{s:?}");
}

#[test]
fn signal_errors_name_the_file() {
    let e = match measure_signals(Path::new("/nonexistent/skiff-pressure-test")) {
        Err(e) => e.to_string(),
        Ok(s) => panic!("{s:?}"),
    };
    assert!(
        e.starts_with("reading /nonexistent/skiff-pressure-test: "),
        "{e}"
    );
}

#[test]
fn a_pressure_is_held_for_the_transition_period() {
    let t0 = std::time::Instant::now();
    let mut held = Held::default();
    let on = Pressure {
        memory: true,
        ..Default::default()
    };
    let off = Pressure::default();
    assert!(held.apply(on, t0).memory);
    // Back under the line: still reported until 5 minutes have passed.
    assert!(
        held.apply(off, t0 + std::time::Duration::from_secs(10))
            .memory
    );
    assert!(
        held.apply(
            off,
            t0 + PRESSURE_TRANSITION - std::time::Duration::from_secs(1)
        )
        .memory
    );
    assert!(!held.apply(off, t0 + PRESSURE_TRANSITION).memory);
    // Each pressure on its own.
    let disk = Pressure {
        disk: true,
        ..Default::default()
    };
    let p = held.apply(disk, t0 + PRESSURE_TRANSITION);
    assert!(p.disk && !p.memory && !p.pid);
}
