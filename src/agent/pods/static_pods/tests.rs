use std::path::Path;

use super::*;

const WEB: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: httpd
    image: busybox:1.36
";

fn ann<'a>(p: &'a Pod, k: &str) -> &'a str {
    annotation(p, k).unwrap_or_default()
}

#[test]
fn a_manifest_becomes_the_nodes_pod() {
    let pod = load(Path::new("/m/web.yaml"), WEB, "Edge-1").unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("web-edge-1"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let uid = pod.metadata.uid.clone().unwrap();
    assert_eq!(uid.len(), 32);
    assert_eq!(ann(&pod, HASH_ANNOTATION), uid);
    assert_eq!(ann(&pod, SOURCE_ANNOTATION), "file");
    assert!(!is_mirror(&pod));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("Edge-1"));
    // Defaulted as the API server would.
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        spec.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    let t = spec.tolerations.as_ref().unwrap();
    assert!(t.iter().any(|t| t.operator.as_deref() == Some("Exists")
        && t.effect.as_deref() == Some("NoExecute")
        && t.key.is_none()));
    // The same file is the same pod; another content, node or file is not.
    let again = load(Path::new("/m/web.yaml"), WEB, "Edge-1").unwrap();
    assert_eq!(again.metadata.uid, pod.metadata.uid);
    let edited = WEB.replace("1.36", "1.37");
    for other in [
        load(Path::new("/m/web.yaml"), &edited, "Edge-1").unwrap(),
        load(Path::new("/m/web.yaml"), WEB, "edge-2").unwrap(),
        load(Path::new("/m/web2.yaml"), WEB, "Edge-1").unwrap(),
    ] {
        assert_ne!(other.metadata.uid, pod.metadata.uid);
    }
}

#[test]
fn a_manifest_keeps_its_namespace_and_loses_what_the_server_owns() {
    let text = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"db\",\"namespace\":\"edge\",\"uid\":\"mine\",\"resourceVersion\":\"7\",\"annotations\":{\"kubernetes.io/config.mirror\":\"x\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]},\"status\":{\"phase\":\"Running\"}}";
    let pod = load(Path::new("/m/db.json"), text, "n").unwrap();
    assert_eq!(pod.metadata.namespace.as_deref(), Some("edge"));
    assert_ne!(pod.metadata.uid.as_deref(), Some("mine"));
    assert!(pod.metadata.resource_version.is_none());
    assert!(pod.status.is_none());
    // A manifest cannot make its pod pass for a mirror.
    assert!(!is_mirror(&pod));
}

#[test]
fn bad_manifests_are_refused_with_the_reason() {
    let p = Path::new("/m/x.yaml");
    let e = load(p, "kind: Deployment\napiVersion: apps/v1\n", "n").unwrap_err();
    assert!(
        e.to_string().contains("apps/v1 Deployment, not a Pod"),
        "{e}"
    );
    let e = load(
        p,
        "kind: Pod\napiVersion: v1\nmetadata: {name: a}\nspec:\n  containers: [}\n",
        "n",
    )
    .unwrap_err();
    assert!(matches!(e, ManifestError::Parse(..)), "{e}");
    let e = load(
        p,
        "kind: Pod\napiVersion: v1\nmetadata: {name: a}\nspec: {containers: []}\n",
        "n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("spec.containers"), "{e}");
    let e = load(p, "kind: Pod\napiVersion: v1\nspec: {}\n", "n").unwrap_err();
    assert!(e.to_string().contains("metadata.name"), "{e}");
    let e = load(p, "- 1\n- 2\n", "n").unwrap_err();
    assert!(matches!(e, ManifestError::Parse(..)), "{e}");
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[test]
fn the_scanner_keeps_a_pod_while_its_file_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut s = Scanner::new(d.to_path_buf(), "n".into());
    assert!(s.scan().is_empty());
    std::fs::write(d.join("web.yaml"), WEB).unwrap();
    std::fs::write(d.join(".web.yaml.swp"), "junk").unwrap();
    // An editor's backup names the same pod: ignored as a duplicate.
    std::fs::write(d.join("web.yaml~"), WEB).unwrap();
    let first = s.scan();
    assert_eq!(names(&first), ["web-n"]);
    assert!(first[0].metadata.uid == load(&d.join("web.yaml"), WEB, "n").unwrap().metadata.uid);
    std::fs::remove_file(d.join("web.yaml~")).unwrap();
    // Half written: the pod runs on as it was.
    std::fs::write(
        d.join("web.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web\n",
    )
    .unwrap();
    let during = s.scan();
    assert_eq!(during[0].metadata.uid, first[0].metadata.uid);
    // A second file naming the same pod is ignored, the first one wins.
    std::fs::write(d.join("zz-web.manifest"), WEB).unwrap();
    assert_eq!(names(&s.scan()), ["web-n"]);
    std::fs::write(d.join("web.yaml"), WEB.replace("1.36", "1.37")).unwrap();
    let edited = s.scan();
    assert_eq!(names(&edited), ["web-n"]);
    assert_ne!(edited[0].metadata.uid, first[0].metadata.uid);
    std::fs::remove_file(d.join("web.yaml")).unwrap();
    // The other file's pod now runs.
    let after = s.scan();
    assert_eq!(names(&after), ["web-n"]);
    assert_ne!(after[0].metadata.uid, edited[0].metadata.uid);
    std::fs::remove_file(d.join("zz-web.manifest")).unwrap();
    assert!(s.scan().is_empty());
}

#[test]
fn the_order_of_keys_does_not_change_the_pod() {
    let reordered = "kind: Pod
spec:
  containers:
  - image: busybox:1.36
    name: httpd
metadata:
  labels: {app: web}
  name: web
apiVersion: v1
";
    let a = load(Path::new("/m/web.yaml"), WEB, "n").unwrap();
    let b = load(Path::new("/m/web.yaml"), reordered, "n").unwrap();
    assert_eq!(a.metadata.uid, b.metadata.uid);
    assert!(is_static_uid(a.metadata.uid.as_deref().unwrap()));
    assert!(!is_static_uid("0b9ae4c4-7d6c-4b0e-9d87-2f3c8d1e5a10"));
}

#[test]
fn a_missing_directory_is_no_pods() {
    let mut s = Scanner::new("/nonexistent/skiff/pod-manifests".into(), "n".into());
    assert!(s.scan().is_empty());
}
