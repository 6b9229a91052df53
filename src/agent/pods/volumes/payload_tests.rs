use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection,
    DownwardAPIVolumeFile, KeyToPath, ObjectFieldSelector, Pod, PodSpec, ProjectedVolumeSource,
    Secret, SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use super::*;

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("u-1".into()),
            labels: Some(BTreeMap::from([
                ("app".into(), "web".into()),
                ("tier".into(), "a \"b\"".into()),
            ])),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        ..Default::default()
    }
}

fn sources() -> Sources {
    let mut s = Sources::default();
    s.config_maps.insert(
        "page".into(),
        ConfigMap {
            data: Some(BTreeMap::from([
                ("index.html".into(), "<h1>hi</h1>".into()),
                ("other".into(), "x".into()),
            ])),
            binary_data: Some(BTreeMap::from([("bin".into(), ByteString(vec![0, 1, 2]))])),
            ..Default::default()
        },
    );
    s.secrets.insert(
        "creds".into(),
        Secret {
            data: Some(BTreeMap::from([(
                "password".into(),
                ByteString(b"s3cret".to_vec()),
            )])),
            ..Default::default()
        },
    );
    s.tokens.insert(("".into(), 3607), "tok".into());
    s
}

fn cm_volume(items: Option<Vec<KeyToPath>>, optional: Option<bool>, name: &str) -> Volume {
    Volume {
        name: "v".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: name.into(),
            items,
            optional,
            default_mode: None,
        }),
        ..Default::default()
    }
}

fn text(p: &Payload, k: &str) -> String {
    String::from_utf8(p[k].data.clone()).unwrap()
}

#[test]
fn config_map_all_keys_or_items() {
    let all = of(&pod(), &cm_volume(None, None, "page"), &sources())
        .unwrap()
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(text(&all, "index.html"), "<h1>hi</h1>");
    assert_eq!(all["bin"].data, vec![0, 1, 2]);
    assert_eq!(all["bin"].mode, 0o644);
    let items = vec![KeyToPath {
        key: "index.html".into(),
        path: "site/index.html".into(),
        mode: Some(0o400),
    }];
    let some = of(&pod(), &cm_volume(Some(items), None, "page"), &sources())
        .unwrap()
        .unwrap();
    assert_eq!(some.keys().collect::<Vec<_>>(), ["site/index.html"]);
    assert_eq!(some["site/index.html"].mode, 0o400);
}

#[test]
fn missing_objects_and_keys_are_kubelets_errors_unless_optional() {
    let e = of(&pod(), &cm_volume(None, None, "nope"), &sources())
        .unwrap()
        .unwrap_err();
    assert_eq!(e.to_string(), "configmap \"nope\" not found");
    let empty = of(&pod(), &cm_volume(None, Some(true), "nope"), &sources())
        .unwrap()
        .unwrap();
    assert!(empty.is_empty());
    let items = vec![KeyToPath {
        key: "absent".into(),
        path: "a".into(),
        mode: None,
    }];
    let e = of(&pod(), &cm_volume(Some(items), None, "page"), &sources())
        .unwrap()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "configmap references non-existent config key: absent"
    );
    let secret = Volume {
        name: "s".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some("gone".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = of(&pod(), &secret, &sources()).unwrap().unwrap_err();
    assert_eq!(e.to_string(), "secret \"gone\" not found");
}

#[test]
fn secret_bytes_and_default_mode() {
    let v = Volume {
        name: "s".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some("creds".into()),
            default_mode: Some(0o400),
            ..Default::default()
        }),
        ..Default::default()
    };
    let p = of(&pod(), &v, &sources()).unwrap().unwrap();
    assert_eq!(text(&p, "password"), "s3cret");
    assert_eq!(p["password"].mode, 0o400);
}

#[test]
fn downward_api_fields() {
    let item = |path: &str, field: &str| DownwardAPIVolumeFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            field_path: field.into(),
            api_version: None,
        }),
        ..Default::default()
    };
    let v = Volume {
        name: "d".into(),
        downward_api: Some(k8s_openapi::api::core::v1::DownwardAPIVolumeSource {
            items: Some(vec![
                item("labels", "metadata.labels"),
                item("name", "metadata.name"),
                item("app", "metadata.labels['app']"),
            ]),
            default_mode: None,
        }),
        ..Default::default()
    };
    let p = of(&pod(), &v, &sources()).unwrap().unwrap();
    assert_eq!(text(&p, "labels"), "app=\"web\"\ntier=\"a \\\"b\\\"\"");
    assert_eq!(text(&p, "name"), "web");
    assert_eq!(text(&p, "app"), "web");
    let bad = Volume {
        name: "d".into(),
        downward_api: Some(k8s_openapi::api::core::v1::DownwardAPIVolumeSource {
            items: Some(vec![item("ip", "status.podIP")]),
            default_mode: None,
        }),
        ..Default::default()
    };
    assert!(of(&pod(), &bad, &sources()).unwrap().is_err());
}

#[test]
fn projected_service_account_volume() {
    // What the ServiceAccount admission adds to every pod.
    let v = Volume {
        name: "kube-api-access-x".into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(3607),
                        audience: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "page".into(),
                        items: Some(vec![KeyToPath {
                            key: "index.html".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "metadata.namespace".into(),
                                api_version: Some("v1".into()),
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
        }),
        ..Default::default()
    };
    let p = of(&pod(), &v, &sources()).unwrap().unwrap();
    assert_eq!(text(&p, "token"), "tok");
    assert_eq!(text(&p, "ca.crt"), "<h1>hi</h1>");
    assert_eq!(text(&p, "namespace"), "ns");
    // No token yet: the volume cannot be made.
    let mut src = sources();
    src.tokens.clear();
    assert!(matches!(
        of(&pod(), &v, &src).unwrap(),
        Err(VolumeError::Token(_))
    ));
}
