use super::*;

const MEMINFO_TEXT: &str = "\
MemTotal:       16393340 kB
MemFree:         1230496 kB
MemAvailable:    9876544 kB
HugePages_Total:       2
Hugepagesize:       2048 kB
";

#[test]
fn meminfo_values_in_bytes() {
    assert_eq!(
        parse_meminfo(MEMINFO_TEXT, "MemTotal"),
        Some(16393340 * 1024)
    );
    assert_eq!(
        parse_meminfo(MEMINFO_TEXT, "MemAvailable"),
        Some(9876544 * 1024)
    );
    assert_eq!(parse_meminfo(MEMINFO_TEXT, "HugePages_Total"), Some(2));
    assert_eq!(parse_meminfo(MEMINFO_TEXT, "Mem"), None, "whole key only");
    assert_eq!(parse_meminfo(MEMINFO_TEXT, "SwapTotal"), None);
    assert_eq!(parse_meminfo("MemTotal: lots kB\n", "MemTotal"), None);
    assert_eq!(parse_meminfo("MemTotal: 5 MB\n", "MemTotal"), None);
    assert_eq!(parse_meminfo("MemTotal:\n", "MemTotal"), None);
    assert_eq!(parse_meminfo("", "MemTotal"), None);
}

#[test]
fn hugepage_sizes_and_names() {
    assert_eq!(parse_hugepage_dir("hugepages-2048kB"), Some(2 << 20));
    assert_eq!(parse_hugepage_dir("hugepages-1048576kB"), Some(1 << 30));
    for bad in [
        "hugepages-kB",
        "hugepages-0kB",
        "hugepages-2048",
        "2048kB",
        "x",
    ] {
        assert_eq!(parse_hugepage_dir(bad), None, "{bad}");
    }
    let name = |kb: u64| hugepage_resource_name(kb * 1024);
    assert_eq!(name(2048), "hugepages-2Mi");
    assert_eq!(name(1048576), "hugepages-1Gi");
    assert_eq!(name(64), "hugepages-64Ki");
    assert_eq!(name(32768), "hugepages-32Mi");
    assert_eq!(name(16 * 1048576), "hugepages-16Gi");
}

#[test]
fn quantities_in_millicores() {
    let cpu = |s: &str| parse_quantity(s, Unit::Milli);
    let cases: &[(&str, u64)] = &[
        ("500m", 500),
        ("100m", 100),
        ("0.5", 500),
        (".5", 500),
        ("1", 1000),
        ("1.5", 1500),
        ("+2", 2000),
        ("0", 0),
        ("-0", 0),
        ("0.0001", 1),
        ("1u", 1),
        ("1e3", 1_000_000),
        ("1E-3", 1),
        ("2k", 2_000_000),
    ];
    for (s, want) in cases {
        assert_eq!(cpu(s), Ok(*want), "{s}");
    }
}

#[test]
fn quantities_in_units_round_up() {
    let one = |s: &str| parse_quantity(s, Unit::One);
    let cases: &[(&str, u64)] = &[
        ("1Gi", 1 << 30),
        ("1.5Gi", 3 << 29),
        ("100Mi", 100 << 20),
        (".5Ki", 512),
        ("1G", 1_000_000_000),
        ("1k", 1000),
        ("1e3", 1000),
        ("0.5", 1),
        ("100m", 1),
        ("1000m", 1),
        ("1001m", 2),
        ("1000", 1000),
        ("7Ei", 7 << 60),
        ("9223372036854775807", i64::MAX as u64),
    ];
    for (s, want) in cases {
        assert_eq!(one(s), Ok(*want), "{s}");
    }
}

#[test]
fn bad_quantities_say_what_is_expected() {
    for bad in [
        "", "abc", "1x", "1KiB", "1 Gi", "1e", "--1", "1.2.3", "Gi", "1kk", "0x10",
    ] {
        let e = parse_quantity(bad, Unit::One).expect_err(bad);
        assert!(
            e.contains("is not a quantity") && e.contains("500m"),
            "{bad}: {e}"
        );
    }
    for neg in ["-1", "-500m", "-1Gi"] {
        let e = parse_quantity(neg, Unit::Milli).expect_err(neg);
        assert!(e.contains("negative"), "{neg}: {e}");
    }
    let digits = "9".repeat(40);
    for big in [
        "8Ei",
        "9223372036854775808",
        "1e19",
        "1e100",
        digits.as_str(),
    ] {
        let e = parse_quantity(big, Unit::One).expect_err(big);
        assert!(e.contains("too large"), "{big}: {e}");
    }
    // A value that fits in bytes can still overflow in millicores.
    assert!(parse_quantity("9e15", Unit::Milli).is_ok());
    assert!(parse_quantity("1e16", Unit::Milli).is_err());
}

#[test]
fn reserved_flags() {
    let r = parse_reserved(
        "--kube-reserved",
        "cpu=500m,memory=1Gi,ephemeral-storage=1Gi,pid=1000",
    );
    assert_eq!(
        r.ok(),
        Some(Reserved {
            cpu_millis: 500,
            memory_bytes: 1 << 30,
            ephemeral_storage_bytes: 1 << 30,
            pids: 1000,
        })
    );
    let nothing = Some(Reserved::default());
    assert_eq!(parse_reserved("--kube-reserved", "").ok(), nothing);
    assert_eq!(parse_reserved("--kube-reserved", " , ").ok(), nothing);
    let r = parse_reserved("--system-reserved", " cpu = 0.5 , memory=1.5Gi,,cpu=1,");
    assert_eq!(
        r.ok(),
        Some(Reserved {
            cpu_millis: 1000,
            memory_bytes: 3 << 29,
            ..Reserved::default()
        }),
        "spaces trimmed, empty items skipped, the last cpu wins"
    );
}

#[test]
fn reserved_flag_errors_name_the_flag() {
    let err = |flag: &'static str, s: &str| match parse_reserved(flag, s) {
        Err(e @ HostError::Flag { .. }) => e.to_string(),
        other => panic!("{s:?}: {other:?}"),
    };
    let e = err("--kube-reserved", "cpu=1,gpu=1");
    assert!(
        e.starts_with("--kube-reserved: cannot reserve \"gpu\" (expected cpu, memory"),
        "{e}"
    );
    let e = err("--system-reserved", "memory=lots");
    assert!(
        e.starts_with("--system-reserved: memory=lots: \"lots\" is not a quantity"),
        "{e}"
    );
    let e = err("--kube-reserved", "cpu");
    assert!(e.contains("\"cpu\" is not key=value"), "{e}");
    let e = err("--kube-reserved", "cpu=");
    assert!(e.contains("is not a quantity"), "{e}");
    let e = err("--kube-reserved", "memory=-1Gi");
    assert!(e.contains("negative"), "{e}");
    let e = err("--kube-reserved", "pid=1e30");
    assert!(e.contains("too large"), "{e}");
    let e = err("--kube-reserved", "hugepages-2Mi=2Mi");
    assert!(e.contains("cannot reserve"), "{e}");
}

#[test]
fn ten_percent_is_kubelets_float32_ten_percent() {
    assert_eq!(
        percent_of(100_000_000_000, NODEFS_AVAILABLE_PERCENT),
        10_000_000_149
    );
    assert_eq!(percent_of(1000, NODEFS_AVAILABLE_PERCENT), 100);
    assert_eq!(percent_of(0, NODEFS_AVAILABLE_PERCENT), 0);
    assert_eq!(percent_of(u64::MAX, 1.0), u64::MAX, "saturates");
}

fn capacity() -> Resources {
    Resources {
        cpu_millis: 4000,
        memory_bytes: 16393340 * 1024,
        ephemeral_storage_bytes: 100_000_000_000,
        pods: 110,
        hugepages: BTreeMap::from([
            ("hugepages-1Gi".to_string(), 0),
            ("hugepages-2Mi".to_string(), 4 << 20),
        ]),
    }
}

#[test]
fn allocatable_subtracts_reservations_thresholds_and_hugepages() {
    let kube = Reserved {
        cpu_millis: 500,
        memory_bytes: 1 << 30,
        ephemeral_storage_bytes: 1 << 30,
        pids: 1000,
    };
    let system = Reserved {
        cpu_millis: 250,
        memory_bytes: 500 << 20,
        ..Reserved::default()
    };
    let a = allocatable(&capacity(), &kube, &system);
    assert_eq!(a.cpu_millis, 3250);
    assert_eq!(
        a.memory_bytes,
        16393340 * 1024 - (1 << 30) - (500 << 20) - (100 << 20) - (4 << 20)
    );
    assert_eq!(
        a.ephemeral_storage_bytes,
        100_000_000_000 - (1 << 30) - 10_000_000_149
    );
    assert_eq!(a.pods, 110);
    assert_eq!(a.hugepages, capacity().hugepages);
}

#[test]
fn allocatable_with_nothing_reserved_keeps_the_eviction_thresholds() {
    let none = Reserved::default();
    let a = allocatable(&capacity(), &none, &none);
    assert_eq!(a.cpu_millis, 4000);
    assert_eq!(a.memory_bytes, 16393340 * 1024 - (100 << 20) - (4 << 20));
    assert_eq!(a.ephemeral_storage_bytes, 89_999_999_851);
}

#[test]
fn allocatable_saturates_at_zero() {
    let all = Reserved {
        cpu_millis: 5000,
        memory_bytes: u64::MAX,
        ephemeral_storage_bytes: u64::MAX,
        pids: u64::MAX,
    };
    let a = allocatable(&capacity(), &all, &all);
    assert_eq!(
        (a.cpu_millis, a.memory_bytes, a.ephemeral_storage_bytes),
        (0, 0, 0)
    );
    assert_eq!(a.pods, 110);
    // Hugepages larger than what is left of memory also floor it at 0.
    let mut cap = capacity();
    cap.memory_bytes = 50 << 20;
    let none = Reserved::default();
    assert_eq!(allocatable(&cap, &none, &none).memory_bytes, 0);
    cap.memory_bytes = 200 << 20;
    cap.hugepages.insert("hugepages-1Gi".into(), 1 << 30);
    assert_eq!(allocatable(&cap, &none, &none).memory_bytes, 0);
}

#[test]
fn decimal_si_as_apimachinery_prints_it() {
    let cases: &[(u64, &str)] = &[
        (0, "0"),
        (1, "1m"),
        (100, "100m"),
        (3500, "3500m"),
        (4000, "4"),
        (110_000, "110"),
        (1_500_000, "1500"),
        (1_000_000, "1k"),
        (2_000_000_000, "2M"),
        (1_000_000_000_000_000_000, "1P"),
        (1_000_001_000, "1000001"),
    ];
    for (millis, want) in cases {
        assert_eq!(format_decimal_si_millis(*millis), *want, "{millis}");
    }
}

#[test]
fn binary_si_as_apimachinery_prints_it() {
    let cases: &[(u64, &str)] = &[
        (0, "0"),
        (1, "1"),
        (512, "512"),
        (1000, "1k"),
        (1023, "1023"),
        (1024, "1Ki"),
        (1025, "1025"),
        (2048, "2Ki"),
        (2 << 20, "2Mi"),
        (1536 << 20, "1536Mi"),
        (16393340 * 1024, "16393340Ki"),
        (89_999_999_851, "89999999851"),
        (1 << 60, "1Ei"),
        (1 << 63, "8Ei"),
        (u64::MAX, "18446744073709551615"),
    ];
    for (bytes, want) in cases {
        assert_eq!(format_binary_si(*bytes), *want, "{bytes}");
    }
}

#[test]
fn node_status_quantities() {
    let text = |m: &BTreeMap<String, Quantity>| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", v.0))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(
        text(&quantities(&capacity())),
        "cpu=4,ephemeral-storage=97656250Ki,hugepages-1Gi=0,hugepages-2Mi=4Mi,\
         memory=16393340Ki,pods=110"
    );
    let kube = parse_reserved("--kube-reserved", "cpu=500m,memory=1G").ok();
    let none = Reserved::default();
    let a = allocatable(&capacity(), &kube.unwrap_or_default(), &none);
    assert_eq!(
        text(&quantities(&a)),
        "cpu=3500m,ephemeral-storage=89999999851,hugepages-1Gi=0,hugepages-2Mi=4Mi,\
         memory=15677728256,pods=110"
    );
}

#[test]
fn os_release_pretty_name() {
    let os = |t: &str| parse_os_release(t);
    let ubuntu = "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nID=ubuntu\n";
    assert_eq!(os(ubuntu).as_deref(), Some("Ubuntu 24.04.1 LTS"));
    assert_eq!(
        os("PRETTY_NAME='Alpine Linux v3.20'").as_deref(),
        Some("Alpine Linux v3.20")
    );
    assert_eq!(os("PRETTY_NAME=Debian").as_deref(), Some("Debian"));
    assert_eq!(
        os(r#"PRETTY_NAME="Say \"hi\" \\ \$HOME""#).as_deref(),
        Some(r#"Say "hi" \ $HOME"#)
    );
    assert_eq!(
        os("PRETTY_NAME=\"a\"\nPRETTY_NAME=\"b\"").as_deref(),
        Some("b")
    );
    assert_eq!(os("NAME=x\n"), None);
    assert_eq!(os("PRETTY_NAME=\"\"\n"), None);
    assert_eq!(os("# PRETTY_NAME=\"x\"\n"), None);
    assert_eq!(os(""), None);
}

#[test]
fn architectures_under_go_names() {
    assert_eq!(go_arch("x86_64", true), "amd64");
    assert_eq!(go_arch("aarch64", true), "arm64");
    assert_eq!(go_arch("arm", true), "arm");
    assert_eq!(go_arch("riscv64", true), "riscv64");
    assert_eq!(go_arch("x86", true), "386");
    assert_eq!(go_arch("powerpc64", true), "ppc64le");
    assert_eq!(go_arch("powerpc64", false), "ppc64");
    assert_eq!(go_arch("s390x", false), "s390x");
    assert_eq!(go_arch("loongarch64", true), "loong64");
}

#[test]
fn errors_name_the_file() {
    let e = match measure_capacity(Path::new("/nonexistent/skiff-host-test")) {
        Err(e) => e.to_string(),
        Ok(r) => panic!("{r:?}"),
    };
    assert!(
        e.starts_with("reading /nonexistent/skiff-host-test: "),
        "{e}"
    );
}

#[test]
fn measures_this_host() {
    let r = match measure_capacity(Path::new("/")) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(r.cpu_millis >= 1000 && r.cpu_millis % 1000 == 0, "{r:?}");
    assert!(r.memory_bytes > 0 && r.memory_bytes % 1024 == 0, "{r:?}");
    assert!(r.ephemeral_storage_bytes > 0, "{r:?}");
    assert_eq!(r.pods, 110);
    assert!(
        r.hugepages.keys().all(|k| k.starts_with("hugepages-")),
        "{r:?}"
    );
    if Path::new(HUGEPAGES_DIR).join("hugepages-2048kB").exists() {
        assert!(r.hugepages.contains_key("hugepages-2Mi"), "{r:?}");
    }
    let q = quantities(&r);
    assert!(q.contains_key("cpu") && q.contains_key("memory"), "{q:?}");
}

#[test]
fn node_info_of_this_host() {
    let info = node_info("0.1.0", "v1.32.0");
    assert_eq!(info.container_runtime_version, "skiff://0.1.0");
    assert_eq!(info.kubelet_version, "v1.32.0");
    assert_eq!(info.kube_proxy_version, "");
    assert_eq!(info.operating_system, "linux");
    assert!(!info.architecture.is_empty(), "{info:?}");
    assert_ne!(info.architecture, "x86_64");
    assert_ne!(info.architecture, "aarch64");
    assert!(!info.kernel_version.is_empty(), "{info:?}");
    assert_eq!(info.boot_id.len(), 36, "{info:?}");
    assert!(!info.os_image.is_empty(), "{info:?}");
    assert_eq!(info.system_uuid, info.system_uuid.to_lowercase());
    assert!(!info.machine_id.contains('\n'), "{info:?}");
}
