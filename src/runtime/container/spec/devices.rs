//! The devices of a container's spec: the nodes made in its /dev
//! (`linux.devices`) and the device cgroup rules (`linux.resources.devices`):
//! Docker's allowlist, widened only by `--device` and `--privileged`.

use std::path::Path;

use serde_json::{json, Value};

use super::super::baseline;
use super::super::containerspec::{Device, Security};
use super::SpecError;

/// The device nodes to make and the device cgroup rules, in order.
pub(super) fn nodes_and_rules(security: &Security) -> Result<(Vec<Value>, Vec<Value>), SpecError> {
    let mut rules: Vec<Value> = if security.privileged {
        vec![json!({"allow": true, "access": "rwm"})]
    } else {
        baseline::DEVICE_RULES
            .iter()
            .map(baseline::device_rule_json)
            .collect()
    };
    let mut nodes = if security.privileged {
        host_devices(Path::new("/dev"))
    } else {
        Vec::new()
    };
    for d in &security.devices {
        let (node, rule) = device(d)?;
        nodes.retain(|n| n["path"] != node["path"]);
        nodes.push(node);
        rules.push(rule);
    }
    Ok((nodes, rules))
}

/// `--privileged`: every device node under the host's `dir`, at the same
/// path, as Docker gives (its pseudo-terminals, shared memory, message
/// queues and console excepted: the container has its own). Unreadable
/// entries are skipped.
fn host_devices(dir: &Path) -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    const SKIP: &[&str] = &[
        "pts", "shm", "mqueue", "fd", "console", "ptmx", ".lxc", ".udev",
    ];
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if SKIP.iter().any(|s| name == *s) {
            continue;
        }
        let path = entry.path();
        // Not following symlinks: the host's /dev/block/* and the like
        // point at nodes listed anyway.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            out.extend(host_devices(&path));
            continue;
        } else if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        let rdev = meta.rdev();
        out.push(json!({"path": path, "type": kind,
                        "major": nix::sys::stat::major(rdev), "minor": nix::sys::stat::minor(rdev),
                        "fileMode": meta.mode() & 0o777, "uid": meta.uid(), "gid": meta.gid()}));
    }
    out
}

/// A `--device` as the spec's device node and its device cgroup rule; the
/// host node's type, numbers, mode and owner are copied (as Docker does).
fn device(d: &Device) -> Result<(Value, Value), SpecError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let err = |reason: String| SpecError::Device {
        path: d.host.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(&d.host).map_err(|e| err(e.to_string()))?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return Err(err("not a character or block device".into()));
    };
    let rdev = meta.rdev();
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    let node = json!({"path": d.container, "type": kind, "major": major, "minor": minor,
                      "fileMode": meta.mode() & 0o777, "uid": meta.uid(), "gid": meta.gid()});
    let rule = json!({"allow": true, "type": kind, "major": major, "minor": minor,
                      "access": d.access});
    Ok((node, rule))
}
