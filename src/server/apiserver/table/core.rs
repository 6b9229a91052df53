//! Printers of core/v1 kinds other than pods, events and volumes, plus leases and
//! endpointslices: each kind's columns and cells side by side.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    age, array_at, col, empty_map, format_labels, int_at, len_at, name, opt_str, str_at, wide,
    Column, Printer, AGE, NAME,
};

const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

pub const SERVICES: Printer = Printer {
    columns: services_columns,
    cells: services_cells,
};

fn services_columns() -> Vec<Column> {
    vec![
            NAME,
            col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP."),
            col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
            col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            col("Port(s)", "string", "The list of ports that are exposed by this service."),
            AGE,
            wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
        ]
}

fn services_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    // The apiserver defaults type and clusterIPs; fall back for
    // objects that have not been through that defaulting.
    let svc_type = opt_str(obj, "/spec/type").unwrap_or("ClusterIP");
    let cluster_ip = array_at(obj, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_str(obj, "/spec/clusterIP").filter(|s| !s.is_empty()))
        .unwrap_or("<none>");
    let ports = service_ports(array_at(obj, "/spec/ports"));
    row.extend([
        json!(svc_type),
        json!(cluster_ip),
        json!(external_ip(obj, svc_type)),
        json!(if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports
        }),
        age(obj, now),
        json!(format_labels(obj.pointer("/spec/selector"))),
    ]);
    row
}

pub const ENDPOINTS: Printer = Printer {
    columns: endpoints_columns,
    cells: endpoints_cells,
};

fn endpoints_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "Endpoints",
            "string",
            "The set of all endpoints is the union of all subsets.",
        ),
        AGE,
    ]
}

fn endpoints_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    row.extend([json!(format_endpoints(obj)), age(obj, now)]);
    row
}

pub const NAMESPACES: Printer = Printer {
    columns: namespaces_columns,
    cells: namespaces_cells,
};

fn namespaces_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Status", "string", "The status of the namespace"),
        AGE,
    ]
}

fn namespaces_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    row.extend([json!(str_at(obj, "/status/phase")), age(obj, now)]);
    row
}

pub const NODES: Printer = Printer {
    columns: nodes_columns,
    cells: nodes_cells,
};

fn nodes_columns() -> Vec<Column> {
    vec![
            NAME,
            col("Status", "string", "The status of the node"),
            col("Roles", "string", "The roles of the node"),
            AGE,
            col("Version", "string", "Kubelet Version reported by the node."),
            wide("Internal-IP", "string", "List of addresses reachable to the node."),
            wide("External-IP", "string", "List of addresses reachable to the node."),
            wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ]
}

fn nodes_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    row.extend(node_cells(obj, now));
    row
}

pub const CONFIGMAPS: Printer = Printer {
    columns: configmaps_columns,
    cells: configmaps_cells,
};

fn configmaps_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Data", "string", "Data contains the configuration data."),
        AGE,
    ]
}

fn configmaps_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    row.extend([
        json!(len_at(obj, "/data") + len_at(obj, "/binaryData")),
        age(obj, now),
    ]);
    row
}

pub const SECRETS: Printer = Printer {
    columns: secrets_columns,
    cells: secrets_cells,
};

fn secrets_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data.",
        ),
        col("Data", "string", "Data contains the secret data."),
        AGE,
    ]
}

fn secrets_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    row.extend([
        json!(str_at(obj, "/type")),
        json!(len_at(obj, "/data")),
        age(obj, now),
    ]);
    row
}

pub const SERVICEACCOUNTS: Printer = Printer {
    columns: serviceaccounts_columns,
    cells: serviceaccounts_cells,
};

fn serviceaccounts_columns() -> Vec<Column> {
    vec![
            NAME,
            col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            AGE,
        ]
}

fn serviceaccounts_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    row.extend([json!(len_at(obj, "/secrets")), age(obj, now)]);
    row
}

pub const LEASES: Printer = Printer {
    columns: leases_columns,
    cells: leases_cells,
};

fn leases_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        AGE,
    ]
}

fn leases_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    row.extend([json!(str_at(obj, "/spec/holderIdentity")), age(obj, now)]);
    row
}

pub const ENDPOINTSLICES: Printer = Printer {
    columns: endpointslices_columns,
    cells: endpointslices_cells,
};

fn endpointslices_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        col(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        col(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice.",
        ),
        AGE,
    ]
}

fn endpointslices_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    row.extend([
        json!(str_at(obj, "/addressType")),
        json!(slice_ports(array_at(obj, "/ports"))),
        json!(slice_endpoints(array_at(obj, "/endpoints"))),
        age(obj, now),
    ]);
    row
}

/// `makePortString`: "80/TCP", "80:30080/TCP", comma-joined.
fn service_ports(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let proto = opt_str(p, "/protocol").unwrap_or("TCP");
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn strings(v: &[Value]) -> Vec<&str> {
    v.iter().filter_map(Value::as_str).collect()
}

/// `getServiceExternalIP` as printed in the default (not wide) table.
fn external_ip(svc: &Value, svc_type: &str) -> String {
    let external = strings(array_at(svc, "/spec/externalIPs"));
    match svc_type {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            // The apiserver prints with Wide: true, so the list is not clipped
            // to 16 characters as a client-side printer would.
            let mut lb: Vec<&str> = array_at(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match str_at(i, "/ip") {
                    "" => str_at(i, "/hostname"),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            lb.sort_unstable();
            lb.dedup();
            if !external.is_empty() {
                lb.extend(external);
                return lb.join(",");
            }
            if lb.is_empty() {
                "<pending>".to_string()
            } else {
                lb.join(",")
            }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// `formatEndpoints`: at most three addresses, then "+ N more...".
fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = array_at(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addrs = array_at(ss, "/addresses");
        let ports = array_at(ss, "/ports");
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, "/ip").to_string());
            }
            continue;
        }
        for p in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_at(a, "/ip"), int_at(p, "/port")));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

/// `listWithMoreString`: first three, "+ N more...", `<unset>` when empty.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    let count = items.len();
    let ret = items
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if count > MAX {
        format!("{ret} + {} more...", count - MAX)
    } else if ret.is_empty() {
        "<unset>".to_string()
    } else {
        ret
    }
}

fn slice_ports(ports: &[Value]) -> String {
    list_with_more(
        ports
            .iter()
            .map(
                |p| match (p.get("port").and_then(Value::as_i64), opt_str(p, "/name")) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(name)) => name.to_string(),
                    (None, None) => "*".to_string(),
                },
            )
            .collect(),
    )
}

fn slice_endpoints(endpoints: &[Value]) -> String {
    list_with_more(
        endpoints
            .iter()
            .flat_map(|e| strings(array_at(e, "/addresses")))
            .map(str::to_string)
            .collect(),
    )
}

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    if let Some(ready) = array_at(node, "/status/conditions")
        .iter()
        .rev() // the Go printer builds a map, so the last Ready condition wins
        .find(|c| str_at(c, "/type") == "Ready")
    {
        status.push(if str_at(ready, "/status") == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    }
    if status.is_empty() {
        status.push("Unknown");
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let labels = match node.pointer("/metadata/labels").and_then(Value::as_object) {
        Some(l) => l,
        None => empty_map(),
    };
    let mut roles: Vec<&str> = labels
        .iter()
        .filter_map(|(k, v)| match k.strip_prefix(NODE_ROLE_PREFIX) {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None if k == NODE_ROLE_LABEL => v.as_str().filter(|s| !s.is_empty()),
            None => None,
        })
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let address = |t: &str| {
        array_at(node, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == t)
            .map(|a| str_at(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let info = |f: &str| match str_at(node, &format!("/status/nodeInfo/{f}")) {
        "" => "<unknown>".to_string(),
        s => s.to_string(),
    };
    vec![
        json!(status.join(",")),
        json!(roles),
        age(node, now),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}
