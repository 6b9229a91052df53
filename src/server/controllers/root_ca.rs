//! The root CA publisher (upstream's `root-ca-cert-publisher`): the
//! ConfigMap `kube-root-ca.crt` in every active namespace, holding the
//! cluster CA under `ca.crt`, with upstream's description annotation. An
//! edited one is put back (its data replaced, the annotation set, other
//! labels and annotations kept); a deleted one is made again.

use serde_json::{json, Map, Value};

use super::per_namespace::Kept;
use crate::server::apiserver::node_graph::ROOT_CA_CONFIG_MAP;

/// The managedFields manager of what the controller writes.
pub const AGENT: &str = "skiff-root-ca-cert-publisher";

/// The key the CA bundle is under.
pub const KEY: &str = "ca.crt";

const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The ConfigMap to create in `namespace`.
fn config_map(namespace: &str, ca_pem: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CA_CONFIG_MAP,
            "namespace": namespace,
            "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
        },
        "data": {KEY: ca_pem},
    })
}

/// `cur` put right, or `None` when it is right: its data exactly the CA,
/// no binary data, the description annotation there.
fn fix(cur: &Value, ca_pem: &str) -> Option<Value> {
    let want = json!({KEY: ca_pem});
    let data_ok = cur.get("data") == Some(&want)
        && cur
            .get("binaryData")
            .is_none_or(|b| b.as_object().is_some_and(Map::is_empty));
    let annotation = cur
        .pointer(&format!(
            "/metadata/annotations/{}",
            DESCRIPTION_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str);
    if data_ok && annotation == Some(DESCRIPTION) {
        return None;
    }
    let mut fixed = cur.clone();
    let obj = fixed.as_object_mut()?;
    obj.insert("data".into(), want);
    obj.remove("binaryData");
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()?;
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations
        .as_object_mut()?
        .insert(DESCRIPTION_ANNOTATION.into(), json!(DESCRIPTION));
    Some(fixed)
}

pub fn kept(ca_pem: String) -> Kept {
    let for_build = ca_pem.clone();
    Kept {
        what: "root CA config map",
        plural: "configmaps",
        name: ROOT_CA_CONFIG_MAP,
        build: Box::new(move |ns| config_map(ns, &for_build)),
        fix: Box::new(move |cur| fix(cur, &ca_pem)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_right_config_map_is_left_alone_and_a_wrong_one_put_right() {
        let ca = "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n";
        let good = config_map("ns", ca);
        assert_eq!(fix(&good, ca), None);
        let mut edited = good.clone();
        edited["data"]["ca.crt"] = json!("tampered");
        edited["data"]["extra"] = json!("x");
        edited["metadata"]["labels"] = json!({"mine": "yes"});
        let fixed = fix(&edited, ca).unwrap();
        assert_eq!(fixed["data"], json!({"ca.crt": ca}));
        assert_eq!(fixed["metadata"]["labels"]["mine"], "yes");
        assert_eq!(fix(&fixed, ca), None);
        let mut bare = good.clone();
        bare["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        bare["binaryData"] = json!({"b": "AA=="});
        let fixed = fix(&bare, ca).unwrap();
        assert_eq!(
            fixed["metadata"]["annotations"][DESCRIPTION_ANNOTATION],
            DESCRIPTION
        );
        assert!(fixed.get("binaryData").is_none());
        assert_eq!(fix(&fixed, ca), None);
    }
}
