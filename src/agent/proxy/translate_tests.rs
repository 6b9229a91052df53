use serde_json::json;

use super::*;

fn svc(spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

fn slice(endpoints: serde_json::Value, ports: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "namespace": "default",
                     "labels": {SERVICE_NAME_LABEL: "web"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }))
    .unwrap()
}

fn node() -> NodeView {
    NodeView {
        name: "n1".into(),
        zone: Some("z1".into()),
    }
}

fn ep(ip: &str, port: u16) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port,
    }
}

#[test]
fn named_ports_and_readiness_pick_the_endpoints() {
    let s = svc(json!({
        "clusterIP": "10.43.0.9",
        "ports": [{"name": "http", "port": 80, "targetPort": "web"},
                  {"name": "dns", "port": 53, "protocol": "UDP"}],
    }));
    let sl = slice(
        json!([
            {"addresses": ["10.42.0.5"], "conditions": {"ready": true}, "nodeName": "n1"},
            {"addresses": ["10.42.1.6"], "conditions": {"ready": true}, "nodeName": "n2"},
            {"addresses": ["10.42.0.7"], "conditions": {"ready": false, "serving": false}},
        ]),
        json!([{"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "dns", "port": 5353, "protocol": "UDP"}]),
    );
    let r = rules(&s, &[&sl], &node()).unwrap();
    assert_eq!(r.cluster_ip, Some("10.43.0.9".parse().unwrap()));
    assert_eq!(r.ports.len(), 2);
    assert_eq!(r.ports[0].proto, Proto::Tcp);
    assert_eq!(
        r.ports[0].cluster,
        [ep("10.42.0.5", 8080), ep("10.42.1.6", 8080)]
    );
    assert_eq!(r.ports[0].local, [ep("10.42.0.5", 8080)]);
    assert_eq!(r.ports[1].proto, Proto::Udp);
    assert_eq!(r.ports[1].cluster[0].port, 5353);
    assert_eq!(r.ports[0].node_port, None);
    assert_eq!(r.affinity_secs, None);
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let s = svc(json!({"clusterIP": "10.43.0.9", "ports": [{"port": 80}]}));
    let eps = |ready_one: bool| {
        slice(
            json!([
                {"addresses": ["10.42.0.5"],
                 "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.42.0.6"],
                 "conditions": {"ready": ready_one, "serving": ready_one, "terminating": false}},
                {"addresses": ["10.42.0.7"],
                 "conditions": {"ready": false, "serving": false, "terminating": true}},
            ]),
            json!([{"port": 8080}]),
        )
    };
    let r = rules(&s, &[&eps(true)], &node()).unwrap();
    assert_eq!(r.ports[0].cluster, [ep("10.42.0.6", 8080)]);
    let r = rules(&s, &[&eps(false)], &node()).unwrap();
    assert_eq!(r.ports[0].cluster, [ep("10.42.0.5", 8080)]);
}

#[test]
fn node_ports_external_addresses_policies_and_affinity() {
    let mut s = svc(json!({
        "type": "LoadBalancer",
        "clusterIP": "10.43.0.9",
        "externalIPs": ["192.0.2.7", "2001:db8::1"],
        "externalTrafficPolicy": "Local",
        "internalTrafficPolicy": "Local",
        "sessionAffinity": "ClientIP",
        "ports": [{"port": 80, "nodePort": 30080}],
    }));
    s.status = serde_json::from_value(
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.50"}, {"hostname": "lb.example"}]}}),
    )
    .unwrap();
    let r = rules(&s, &[], &node()).unwrap();
    assert_eq!(r.ports[0].node_port, Some(30080));
    assert_eq!(
        r.external_ips,
        [
            "192.0.2.7".parse::<Ipv4Addr>().unwrap(),
            "192.0.2.50".parse().unwrap()
        ]
    );
    assert!(r.external_local && r.internal_local);
    assert_eq!(r.affinity_secs, Some(10800));
    // A ClusterIP Service's nodePort (left over from a type change) is not one.
    let s = svc(json!({"clusterIP": "10.43.0.9", "ports": [{"port": 80, "nodePort": 30080}]}));
    assert_eq!(rules(&s, &[], &node()).unwrap().ports[0].node_port, None);
}

#[test]
fn headless_and_external_name_services_have_no_rules() {
    let s = svc(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
    assert!(rules(&s, &[], &node()).is_none());
    let s = svc(json!({"type": "ExternalName", "externalName": "example.org"}));
    assert!(rules(&s, &[], &node()).is_none());
}

#[test]
fn zone_hints_narrow_the_choice_only_when_usable() {
    let s = svc(json!({
        "clusterIP": "10.43.0.9",
        "trafficDistribution": "PreferClose",
        "ports": [{"port": 80}],
    }));
    let hinted = slice(
        json!([
            {"addresses": ["10.42.0.5"], "hints": {"forZones": [{"name": "z1"}]}},
            {"addresses": ["10.42.1.5"], "hints": {"forZones": [{"name": "z2"}]}},
        ]),
        json!([{"port": 8080}]),
    );
    let r = rules(&s, &[&hinted], &node()).unwrap();
    assert_eq!(r.ports[0].cluster, [ep("10.42.0.5", 8080)]);
    // A node in a zone no endpoint is hinted for: all of them.
    let elsewhere = NodeView {
        name: "n9".into(),
        zone: Some("z3".into()),
    };
    assert_eq!(
        rules(&s, &[&hinted], &elsewhere).unwrap().ports[0]
            .cluster
            .len(),
        2
    );
    // One endpoint without hints: hints unusable.
    let partial = slice(
        json!([
            {"addresses": ["10.42.0.5"], "hints": {"forZones": [{"name": "z1"}]}},
            {"addresses": ["10.42.1.5"]},
        ]),
        json!([{"port": 8080}]),
    );
    assert_eq!(
        rules(&s, &[&partial], &node()).unwrap().ports[0]
            .cluster
            .len(),
        2
    );
    // Without PreferClose, hints are not used.
    let plain = svc(json!({"clusterIP": "10.43.0.9", "ports": [{"port": 80}]}));
    assert_eq!(
        rules(&plain, &[&hinted], &node()).unwrap().ports[0]
            .cluster
            .len(),
        2
    );
}

#[test]
fn an_endpoint_in_two_slices_counts_once() {
    let s = svc(json!({"clusterIP": "10.43.0.9", "ports": [{"port": 80}]}));
    let a = slice(
        json!([{"addresses": ["10.42.0.5"], "conditions": {"ready": false}}]),
        json!([{"port": 8080}]),
    );
    let b = slice(
        json!([{"addresses": ["10.42.0.5"], "conditions": {"ready": true}}]),
        json!([{"port": 8080}]),
    );
    let r = rules(&s, &[&a, &b], &node()).unwrap();
    assert_eq!(r.ports[0].cluster, [ep("10.42.0.5", 8080)]);
}

#[test]
fn health_check_counts_this_nodes_ready_endpoints() {
    let lb = |etp: &str| {
        svc(json!({"type": "LoadBalancer", "clusterIP": "10.43.0.9",
                   "externalTrafficPolicy": etp, "healthCheckNodePort": 31000,
                   "ports": [{"port": 80, "nodePort": 30080}]}))
    };
    let s = slice(
        json!([
            {"addresses": ["10.42.0.5"], "nodeName": "n1"},
            {"addresses": ["10.42.0.6"], "nodeName": "n1", "conditions": {"ready": false}},
            {"addresses": ["10.42.1.5"], "nodeName": "n2"},
        ]),
        json!([{"port": 8080}]),
    );
    let hc = health_check(&lb("Local"), &[&s], &node()).unwrap();
    assert_eq!((hc.port, hc.local_endpoints), (31000, 1));
    let elsewhere = NodeView {
        name: "n3".into(),
        zone: None,
    };
    assert_eq!(
        health_check(&lb("Local"), &[&s], &elsewhere)
            .unwrap()
            .local_endpoints,
        0
    );
    assert!(health_check(&lb("Cluster"), &[&s], &node()).is_none());
}
