//! `skiff run` of an image that is not in the store pulls it first (policy
//! IfNotPresent, `image::ensure` in the runtime), from a real registry on
//! 127.0.0.1 inside the test's own network namespace; the next run uses the
//! stored image. An image that cannot be pulled is a clear error.

#[path = "support/oci.rs"]
mod oci;
#[path = "support/registry.rs"]
mod registry;
mod support;

use std::path::Path;
use std::process::{Command, Output};

use registry::{build_busybox_image, skiff_ok, Registry};
use support::stderr;

/// skiff in the registry's namespace through `nsenter --net` (not `ip netns
/// exec`, whose fresh /sys hides the cgroup filesystem containers need).
fn skiff(reg: &Registry, root: &Path, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", reg.net.name()))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run skiff")
}

#[test]
fn run_pulls_a_missing_image_once() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    let src = build_busybox_image(work.path());
    reg.skopeo_copy(&src, "busybox:latest");
    let root = work.path().join("root");
    let run_dir = work.path().join("run");
    let run_dir = run_dir.to_str().expect("utf-8 path");
    let none = work.path().join("registries.yaml");
    let none = none.to_str().expect("utf-8 path");
    let image = format!("{}/busybox:latest", reg.host());
    let run_image = |image: &str, command: &[&str]| {
        let mut args = vec![
            "--run-dir",
            run_dir,
            "run",
            "--rm",
            "--network",
            "none",
            "--registries",
            none,
            image,
        ];
        args.extend_from_slice(command);
        skiff(&reg, &root, &args)
    };
    let run = |extra: &str| run_image(&image, &["echo", extra]);

    let first = run("first");
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(first.status.success(), "{out}\n{}", stderr(&first));
    assert!(
        stderr(&first).contains(&format!("Unable to find image '{image}' locally")),
        "{}",
        stderr(&first)
    );
    assert_eq!(out, format!("{image}\nfirst\n"));

    let second = run("second");
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        !stderr(&second).contains("Unable to find"),
        "{}",
        stderr(&second)
    );
    assert_eq!(String::from_utf8_lossy(&second.stdout), "second\n");
    assert!(skiff_ok(&reg.net, &root, &["images"]).contains("busybox"));

    let missing = format!("{}/nosuch:1", reg.host());
    let out = run_image(&missing, &["true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("pulling {missing}")),
        "{}",
        stderr(&out)
    );
}
