//! Printers of the policy, networking, storage and node kinds: resource
//! quotas, priority classes, disruption budgets, ingresses,
//! ingress classes, network policies, storage classes, CSI drivers and
//! nodes, runtime classes; columns and cells side by side.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    age, array_at, col, format_label_selector, int_at, name, opt_str, str_at, Column, Printer, AGE,
    NAME,
};

pub const RESOURCEQUOTAS: Printer = Printer {
    columns: resourcequotas_columns,
    cells: resourcequotas_cells,
};

fn resourcequotas_columns() -> Vec<Column> {
    vec![
        NAME,
        AGE,
        col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
        col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
    ]
}

/// `used/hard` of every resource in `status.hard`, sorted, split into
/// limits (`limits.*`) and everything else.
fn resourcequotas_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let hard = obj.pointer("/status/hard").and_then(Value::as_object);
    let mut names: Vec<&String> = hard.map(|h| h.keys().collect()).unwrap_or_default();
    names.sort();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for r in names {
        let used = obj
            .pointer(&format!(
                "/status/used/{}",
                r.replace('~', "~0").replace('/', "~1")
            ))
            .map_or_else(|| "0".to_string(), quantity_text);
        let hard_q = hard
            .and_then(|h| h.get(r.as_str()))
            .map_or_else(String::new, quantity_text);
        let cell = format!("{r}: {used}/{hard_q}");
        if r.split_once('.').is_some_and(|(p, _)| p == "limits") {
            limits.push(cell);
        } else {
            requests.push(cell);
        }
    }
    vec![
        name(obj),
        age(obj, now),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
    ]
}

fn quantity_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub const PRIORITYCLASSES: Printer = Printer {
    columns: priorityclasses_columns,
    cells: priorityclasses_cells,
};

fn priorityclasses_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Value", "integer", "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."),
        col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority."),
        AGE,
        col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."),
    ]
}

fn priorityclasses_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(obj),
        json!(int_at(obj, "/value")),
        json!(obj
            .get("globalDefault")
            .and_then(Value::as_bool)
            .unwrap_or(false)),
        age(obj, now),
        json!(str_at(obj, "/preemptionPolicy")),
    ]
}

pub const PODDISRUPTIONBUDGETS: Printer = Printer {
    columns: pdbs_columns,
    cells: pdbs_cells,
};

fn pdbs_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Min Available", "string", "The minimum number of pods that must be available simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
        col("Max Unavailable", "string", "The maximum number of pods that may be unavailable simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
        col("Allowed Disruptions", "integer", "Number of pod disruptions that are currently allowed."),
        AGE,
    ]
}

fn int_or_string(obj: &Value, ptr: &str) -> String {
    match obj.pointer(ptr) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".to_string(),
    }
}

fn pdbs_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(obj),
        json!(int_or_string(obj, "/spec/minAvailable")),
        json!(int_or_string(obj, "/spec/maxUnavailable")),
        json!(int_at(obj, "/status/disruptionsAllowed")),
        age(obj, now),
    ]
}

pub const INGRESSES: Printer = Printer {
    columns: ingresses_columns,
    cells: ingresses_cells,
};

fn ingresses_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for this Ingress.",
        ),
        col(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        col(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        col("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ]
}

/// `formatHosts`: at most three, then `+ N more...`; `*` when none is set.
fn ingress_hosts(obj: &Value) -> String {
    let rules = array_at(obj, "/spec/rules");
    let hosts: Vec<&str> = rules
        .iter()
        .filter_map(|r| opt_str(r, "/host").filter(|h| !h.is_empty()))
        .collect();
    if hosts.is_empty() {
        return "*".to_string();
    }
    let mut out = hosts.iter().take(3).copied().collect::<Vec<_>>().join(",");
    if hosts.len() > 3 {
        out.push_str(&format!(" + {} more...", hosts.len() - 3));
    }
    out
}

fn load_balancer_addresses(obj: &Value) -> String {
    array_at(obj, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| {
            opt_str(i, "/ip")
                .filter(|s| !s.is_empty())
                .or_else(|| opt_str(i, "/hostname").filter(|s| !s.is_empty()))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn ingresses_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let class = opt_str(obj, "/spec/ingressClassName").unwrap_or("<none>");
    let ports = if array_at(obj, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj),
        json!(class),
        json!(ingress_hosts(obj)),
        json!(load_balancer_addresses(obj)),
        json!(ports),
        age(obj, now),
    ]
}

pub const INGRESSCLASSES: Printer = Printer {
    columns: ingressclasses_columns,
    cells: ingressclasses_cells,
};

fn ingressclasses_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ]
}

fn ingressclasses_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // `Kind.group/name` (or `Kind/name` for the core group).
    let params = obj
        .pointer("/spec/parameters")
        .filter(|p| p.is_object())
        .map_or_else(
            || "<none>".to_string(),
            |p| {
                let kind = str_at(p, "/kind");
                let name = str_at(p, "/name");
                match opt_str(p, "/apiGroup").filter(|g| !g.is_empty()) {
                    Some(g) => format!("{kind}.{g}/{name}"),
                    None => format!("{kind}/{name}"),
                }
            },
        );
    vec![
        name(obj),
        json!(str_at(obj, "/spec/controller")),
        json!(params),
        age(obj, now),
    ]
}

pub const NETWORKPOLICIES: Printer = Printer {
    columns: networkpolicies_columns,
    cells: networkpolicies_cells,
};

fn networkpolicies_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Pod-Selector", "string", "podSelector selects the pods to which this NetworkPolicy object applies. The array of rules is applied to any pods selected by this field. An empty selector matches all pods in the policy's namespace. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is optional. If it is not specified, it defaults to an empty selector."),
        AGE,
    ]
}

fn networkpolicies_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(obj),
        json!(format_label_selector(Some(
            obj.pointer("/spec/podSelector").unwrap_or(&json!({}))
        ))),
        age(obj, now),
    ]
}

pub const STORAGECLASSES: Printer = Printer {
    columns: storageclasses_columns,
    cells: storageclasses_cells,
};

fn storageclasses_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Provisioner", "string", "Indicates the type of the provisioner."),
        col("ReclaimPolicy", "string", "Dynamically provisioned PersistentVolumes of this storage class are created with this reclaimPolicy. Defaults to Delete."),
        col("VolumeBindingMode", "string", "VolumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature."),
        col("AllowVolumeExpansion", "string", "AllowVolumeExpansion shows whether the storage class allow volume expand."),
        AGE,
    ]
}

const DEFAULT_CLASS_ANNOTATIONS: &[&str] = &[
    "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
    "/metadata/annotations/storageclass.beta.kubernetes.io~1is-default-class",
];

fn storageclasses_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut shown = str_at(obj, "/metadata/name").to_string();
    if DEFAULT_CLASS_ANNOTATIONS
        .iter()
        .any(|p| str_at(obj, p) == "true")
    {
        shown.push_str(" (default)");
    }
    let or = |ptr: &str, dflt: &'static str| opt_str(obj, ptr).unwrap_or(dflt).to_string();
    vec![
        json!(shown),
        json!(str_at(obj, "/provisioner")),
        json!(or("/reclaimPolicy", "Delete")),
        json!(or("/volumeBindingMode", "Immediate")),
        json!(obj
            .get("allowVolumeExpansion")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string()),
        age(obj, now),
    ]
}

pub const CSIDRIVERS: Printer = Printer {
    columns: csidrivers_columns,
    cells: csidrivers_cells,
};

fn csidrivers_columns() -> Vec<Column> {
    vec![
        NAME,
        col("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting."),
        col("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true."),
        col("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true."),
        col("TokenRequests", "string", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication."),
        col("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume."),
        col("Modes", "string", "Defines what kind of volumes this CSI volume driver supports."),
        AGE,
    ]
}

fn csidrivers_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let flag = |ptr: &str| json!(obj.pointer(ptr).and_then(Value::as_bool).unwrap_or(false));
    let audiences: Vec<&str> = array_at(obj, "/spec/tokenRequests")
        .iter()
        .map(|t| str_at(t, "/audience"))
        .collect();
    let tokens = if audiences.is_empty() {
        "<unset>".to_string()
    } else {
        audiences.join(",")
    };
    let modes: Vec<&str> = array_at(obj, "/spec/volumeLifecycleModes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![
        name(obj),
        flag("/spec/attachRequired"),
        flag("/spec/podInfoOnMount"),
        flag("/spec/storageCapacity"),
        json!(tokens),
        flag("/spec/requiresRepublish"),
        json!(modes.join(",")),
        age(obj, now),
    ]
}

pub const CSINODES: Printer = Printer {
    columns: csinodes_columns,
    cells: csinodes_cells,
};

fn csinodes_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "Drivers",
            "integer",
            "Drivers indicates the number of CSI drivers registered on the node",
        ),
        AGE,
    ]
}

fn csinodes_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let n = array_at(obj, "/spec/drivers").len();
    vec![name(obj), json!(n), age(obj, now)]
}

pub const RUNTIMECLASSES: Printer = Printer {
    columns: runtimeclasses_columns,
    cells: runtimeclasses_cells,
};

fn runtimeclasses_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Handler", "string", "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class. The possible values are specific to the node & CRI configuration.  It is assumed that all handlers are available on every node, and handlers of the same name are equivalent on every node. For example, a handler called \"runc\" might specify that the runc CRI runtime (using native Linux containers) will be used to run the containers in a pod. The Handler must be lowercase, conform to the DNS Label (RFC 1123) requirements, and is immutable."),
        AGE,
    ]
}

fn runtimeclasses_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(obj), json!(str_at(obj, "/handler")), age(obj, now)]
}

/// Mutating and validating webhook configurations: how many webhooks.
pub const WEBHOOK_CONFIGURATIONS: Printer = Printer {
    columns: webhook_configurations_columns,
    cells: webhook_configurations_cells,
};

fn webhook_configurations_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks.",
        ),
        AGE,
    ]
}

fn webhook_configurations_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(obj),
        json!(array_at(obj, "/webhooks").len()),
        age(obj, now),
    ]
}
