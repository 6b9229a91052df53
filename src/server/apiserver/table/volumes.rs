//! Printers of PersistentVolumes and PersistentVolumeClaims: each kind's
//! columns and cells side by side.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, array_at, col, name, opt_str, str_at, wide, Column, Printer, AGE, NAME};

pub const PERSISTENTVOLUMES: Printer = Printer {
    columns: persistentvolumes_columns,
    cells: persistentvolumes_cells,
};

fn persistentvolumes_columns() -> Vec<Column> {
    vec![
            NAME,
            col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
            col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
            col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
            col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
            col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
            col("StorageClass", "string", "StorageClass of the pv"),
            col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
            col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
            AGE,
            wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
        ]
}

fn persistentvolumes_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    let claim = match obj.pointer("/spec/claimRef") {
        Some(c) if c.is_object() => {
            format!("{}/{}", str_at(c, "/namespace"), str_at(c, "/name"))
        }
        _ => String::new(),
    };
    row.extend([
        json!(str_at(obj, "/spec/capacity/storage")),
        json!(access_modes(array_at(obj, "/spec/accessModes"))),
        json!(str_at(obj, "/spec/persistentVolumeReclaimPolicy")),
        json!(phase_or_terminating(obj)),
        json!(claim),
        json!(storage_class(obj)),
        json!(opt_str(obj, "/spec/volumeAttributesClassName").unwrap_or("<unset>")),
        json!(str_at(obj, "/status/reason")),
        age(obj, now),
        json!(opt_str(obj, "/spec/volumeMode").unwrap_or("<unset>")),
    ]);
    row
}

pub const PERSISTENTVOLUMECLAIMS: Printer = Printer {
    columns: persistentvolumeclaims_columns,
    cells: persistentvolumeclaims_cells,
};

fn persistentvolumeclaims_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "Status",
            "string",
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        col(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        col(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        col(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has.",
        ),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        wide(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim.",
        ),
    ]
}

fn persistentvolumeclaims_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    // Capacity and access modes are shown only once the claim is bound.
    let bound = !str_at(obj, "/spec/volumeName").is_empty();
    let (capacity, modes) = if bound {
        (
            str_at(obj, "/status/capacity/storage").to_string(),
            access_modes(array_at(obj, "/status/accessModes")),
        )
    } else {
        (String::new(), String::new())
    };
    row.extend([
        json!(phase_or_terminating(obj)),
        json!(str_at(obj, "/spec/volumeName")),
        json!(capacity),
        json!(modes),
        json!(storage_class(obj)),
        json!(opt_str(obj, "/spec/volumeAttributesClassName").unwrap_or("<unset>")),
        age(obj, now),
        json!(opt_str(obj, "/spec/volumeMode").unwrap_or("<unset>")),
    ]);
    row
}

/// `GetAccessModesAsString`: fixed order, duplicates removed.
fn access_modes(modes: &[Value]) -> String {
    let modes: Vec<&str> = modes.iter().filter_map(Value::as_str).collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| modes.contains(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The beta annotation still wins over `spec.storageClassName`.
fn storage_class(obj: &Value) -> &str {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_at(obj, "/spec/storageClassName"))
}

fn phase_or_terminating(obj: &Value) -> &str {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        "Terminating"
    } else {
        str_at(obj, "/status/phase")
    }
}
