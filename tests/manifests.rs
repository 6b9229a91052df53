//! Manifests dropped into <data-dir>/server/manifests are applied, kept
//! in step with their file, removed with it, and removed when disabled.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::Server;

fn wait_for(s: &Server, what: &str, mut ok: impl FnMut(&Server) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok(s) {
        assert!(Instant::now() < deadline, "never: {what}\n{}", s.logs());
        thread::sleep(Duration::from_millis(250));
    }
}

fn exists(s: &Server, args: &[&str]) -> bool {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    s.kubectl(&all).status.success()
}

#[test]
fn manifests_are_applied_changed_and_removed_with_their_file() {
    let mut s = Server::start_with_args(&["--disable-agent"]);
    let dir = s.data_dir().join("server/manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: deployed}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: deployed}\ndata: {level: one}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {x: why}\n",
    )
    .unwrap();
    wait_for(&s, "the manifest applied", |s| {
        exists(s, &["configmap", "settings", "-n", "deployed"])
            && exists(s, &["configmap", "extra", "-n", "default"])
    });
    let manager = s.kubectl_ok(&[
        "get",
        "configmap",
        "settings",
        "-n",
        "deployed",
        "-o",
        "jsonpath={.metadata.managedFields[0].manager}",
    ]);
    assert_eq!(manager, "skiff-deploy");

    // Changed: the new data, and the object it no longer has is removed.
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: deployed}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: deployed}\ndata: {level: two}\n",
    )
    .unwrap();
    wait_for(&s, "the change applied", |s| {
        s.kubectl_ok(&[
            "get",
            "configmap",
            "settings",
            "-n",
            "deployed",
            "-o",
            "jsonpath={.data.level}",
        ]) == "two"
            && !exists(s, &["configmap", "extra", "-n", "default"])
    });

    // Not applied again at a restart; removed when disabled.
    s.restart_with_args(&["--disable-agent", "--disable", "app"]);
    wait_for(&s, "the disabled manifest's objects removed", |s| {
        !exists(s, &["configmap", "settings", "-n", "deployed"])
    });
    s.restart_with_args(&["--disable-agent"]);
    wait_for(&s, "applied again once enabled", |s| {
        exists(s, &["configmap", "settings", "-n", "deployed"])
    });

    // A bad manifest beside it is reported, not applied, and stops nothing.
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: v1\nkind: NoSuchKind\nmetadata: {name: x}\n",
    )
    .unwrap();
    // The file gone: its objects go with it.
    std::fs::remove_file(&file).unwrap();
    wait_for(&s, "the removed manifest's objects removed", |s| {
        !exists(s, &["namespace", "deployed"])
            || s.kubectl_ok(&[
                "get",
                "namespace",
                "deployed",
                "-o",
                "jsonpath={.status.phase}",
            ]) == "Terminating"
    });
    assert!(!exists(
        &s,
        &["configmap", "skiff-manifest-app", "-n", "kube-system"]
    ));
    assert!(
        s.logs().contains("NoSuchKind"),
        "the broken manifest is not reported"
    );
}
