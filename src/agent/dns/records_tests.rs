use serde_json::json;

use super::*;

fn svc(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop"}, "spec": spec}))
        .unwrap()
}

fn slice(svc: &str, endpoints: serde_json::Value, ports: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-x"), "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": ports,
    }))
    .unwrap()
}

fn records() -> Records {
    let mut r = Records::new("cluster.local");
    let web = svc(
        "web",
        json!({"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}, {"port": 81}]}),
    );
    r.update("shop/web", Some((&web, &[])));
    let db = svc(
        "db",
        json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
    );
    let eps = slice(
        "db",
        json!([
            {"addresses": ["10.42.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.42.0.8"], "hostname": "db-1", "conditions": {"ready": true}},
            {"addresses": ["10.42.0.9"], "hostname": "db-2", "conditions": {"ready": false}},
        ]),
        json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
    );
    r.update("shop/db", Some((&db, &[&eps])));
    let ext = svc(
        "ext",
        json!({"type": "ExternalName", "externalName": "Example.org."}),
    );
    r.update("shop/ext", Some((&ext, &[])));
    r
}

fn a(name: &str, ip: &str) -> Rr {
    Rr {
        name: name.into(),
        data: Data::A(ip.parse().unwrap()),
    }
}

fn answers(a: Answer) -> Vec<Rr> {
    match a {
        Answer::Found { answers, .. } => answers,
        other => panic!("not found: {other:?}"),
    }
}

#[test]
fn services_resolve_to_their_cluster_ip_or_ready_endpoints() {
    let r = records();
    assert_eq!(
        answers(r.answer("WEB.shop.svc.cluster.local.", QType::A)),
        [a("web.shop.svc.cluster.local", "10.43.0.20")]
    );
    assert_eq!(
        r.answer("web.shop.svc.cluster.local", QType::Aaaa),
        Answer::NoData
    );
    assert_eq!(
        answers(r.answer("db.shop.svc.cluster.local", QType::A)),
        [
            a("db.shop.svc.cluster.local", "10.42.0.7"),
            a("db.shop.svc.cluster.local", "10.42.0.8")
        ]
    );
    assert_eq!(
        answers(r.answer("db-1.db.shop.svc.cluster.local", QType::A)),
        [a("db-1.db.shop.svc.cluster.local", "10.42.0.8")]
    );
    // Not ready: not published.
    assert_eq!(
        r.answer("db-2.db.shop.svc.cluster.local", QType::A),
        Answer::NxDomain
    );
    assert_eq!(
        r.answer("nope.shop.svc.cluster.local", QType::A),
        Answer::NxDomain
    );
    assert_eq!(r.answer("shop.svc.cluster.local", QType::A), Answer::NoData);
    assert_eq!(r.answer("example.org", QType::A), Answer::NotOurs);
    assert_eq!(r.answer("notcluster.local", QType::A), Answer::NotOurs);
}

#[test]
fn srv_ptr_pods_and_external_names() {
    let r = records();
    let Answer::Found {
        answers,
        additionals,
    } = r.answer("_http._tcp.web.shop.svc.cluster.local", QType::Srv)
    else {
        panic!()
    };
    assert_eq!(
        answers[0].data,
        Data::Srv {
            port: 80,
            target: "web.shop.svc.cluster.local".into()
        }
    );
    assert_eq!(additionals, [a("web.shop.svc.cluster.local", "10.43.0.20")]);
    // Headless: one per endpoint, targets by hostname.
    let got = answers_of(r.answer("_pg._tcp.db.shop.svc.cluster.local", QType::Srv));
    assert_eq!(got.len(), 2);
    assert!(got.contains(&Data::Srv {
        port: 5432,
        target: "db-0.db.shop.svc.cluster.local".into()
    }));
    assert_eq!(
        r.answer("_nope._tcp.web.shop.svc.cluster.local", QType::Srv),
        Answer::NxDomain
    );
    assert_eq!(
        answers_of(r.answer("20.0.43.10.in-addr.arpa", QType::Ptr)),
        [Data::Ptr("web.shop.svc.cluster.local".into())]
    );
    assert_eq!(
        answers_of(r.answer("7.0.42.10.in-addr.arpa", QType::Ptr)),
        [Data::Ptr("db-0.db.shop.svc.cluster.local".into())]
    );
    assert_eq!(
        r.answer("9.9.9.9.in-addr.arpa", QType::Ptr),
        Answer::NotOurs
    );
    assert_eq!(
        answers_of(r.answer("10-42-0-33.shop.pod.cluster.local", QType::A)),
        [Data::A("10.42.0.33".parse().unwrap())]
    );
    assert_eq!(
        r.answer("x-y.shop.pod.cluster.local", QType::A),
        Answer::NxDomain
    );
    assert_eq!(
        answers_of(r.answer("ext.shop.svc.cluster.local", QType::A)),
        [Data::Cname("example.org".into())]
    );
}

fn answers_of(a: Answer) -> Vec<Data> {
    answers(a).into_iter().map(|r| r.data).collect()
}

#[test]
fn a_service_removed_or_changed_takes_its_names_along() {
    let mut r = records();
    r.update("shop/web", None);
    assert_eq!(
        r.answer("web.shop.svc.cluster.local", QType::A),
        Answer::NxDomain
    );
    assert_eq!(
        r.answer("20.0.43.10.in-addr.arpa", QType::Ptr),
        Answer::NotOurs
    );
    let moved = svc(
        "db",
        json!({"clusterIP": "10.43.0.30", "ports": [{"port": 5432}]}),
    );
    r.update("shop/db", Some((&moved, &[])));
    assert_eq!(
        r.answer("7.0.42.10.in-addr.arpa", QType::Ptr),
        Answer::NotOurs
    );
    assert_eq!(
        answers_of(r.answer("db.shop.svc.cluster.local", QType::A)),
        [Data::A("10.43.0.30".parse().unwrap())]
    );
    assert_eq!(r.len(), 2);
}
