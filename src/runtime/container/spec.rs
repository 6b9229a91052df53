//! The OCI runtime spec of a container, rendered from its ContainerSpec
//! alone (containerspec.rs; never from a front end's options): the image's
//! config (entrypoint, cmd, env, working dir, user) overridden by the
//! spec's process, on top of the baseline confinement (see baseline.rs).

use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::baseline;
use super::containerspec::{ContainerSpec, MountSource, Namespace, NetworkNamespace, Process};
use super::user::Identity;

mod devices;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("no command specified")]
    NoCommand,
    #[error("network {0} must be resolved to a namespace before the spec is built")]
    UnresolvedNetwork(String),
    #[error("unknown capability {0:?}")]
    Capability(String),
    #[error("capability {0} is not held by skiff itself, so no container can have it")]
    CapabilityNotHeld(String),
    #[error("volume {0} must be resolved to its directory before the spec is built")]
    UnresolvedVolume(String),
    #[error("--device {path}: {reason}")]
    Device { path: String, reason: String },
    #[error("sysctl {name:?}: {reason}")]
    Sysctl { name: String, reason: String },
    #[error("the generated runtime spec is invalid: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error(transparent)]
    Seccomp(#[from] super::seccomp::SeccompError),
}

/// The parts of an image's `config` a container uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageProcess {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
}

impl ImageProcess {
    /// Read from the `config` object of an image config blob (any field may
    /// be missing or null).
    pub fn from_config(config: &Value) -> ImageProcess {
        let strings = |key: &str| -> Vec<String> {
            config
                .get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let string = |key: &str| {
            config
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        ImageProcess {
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            env: strings("Env"),
            workdir: string("WorkingDir"),
            user: string("User"),
        }
    }
}

/// The command line to run: a `command` replaces the image's entrypoint
/// and drops its cmd; `args` replace the image's cmd.
pub fn command(image: &ImageProcess, process: &Process) -> Result<Vec<String>, SpecError> {
    let (entrypoint, default_cmd) = match &process.command {
        Some(c) => (c.clone(), Vec::new()),
        None => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let cmd = if process.args.is_empty() {
        default_cmd
    } else {
        process.args.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(args)
}

/// Merge `K=V` lists: later keys replace earlier ones, order of first
/// appearance kept.
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for kv in base.iter().chain(overrides) {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        match out
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = kv.clone(),
            None => out.push(kv.clone()),
        }
    }
    out
}

/// The environment of a process exec'd into a container, as docker exec:
/// the default PATH, the image's, the container's (`run -e`), then `extra`
/// (`exec -e`); TERM under a terminal.
pub fn exec_env(
    config: &super::records::ContainerConfig,
    extra: &[String],
    tty: bool,
) -> Vec<String> {
    let image = ImageProcess::from_config(&config.image_config);
    let container = merge_env(&image.env, &config.spec.process.env);
    let mut env = merge_env(
        &[format!("PATH={}", super::baseline::DEFAULT_PATH)],
        &merge_env(&container, extra),
    );
    if tty {
        env.push("TERM=xterm".into());
    }
    env
}

/// Everything the OCI spec needs besides the container's spec (its
/// namespaces resolved to paths) and the image: where the engine put it.
pub struct SpecInputs<'a> {
    pub image: &'a ImageProcess,
    pub spec: &'a ContainerSpec,
    pub identity: &'a Identity,
    pub hostname: &'a str,
    pub rootfs: &'a Path,
    pub cgroups_path: &'a str,
    /// Files skiff writes per container and binds in: (host path, container path).
    pub etc_files: &'a [(String, String)],
    /// The host's hard RLIMIT_NOFILE: never ask for more (root may lack
    /// CAP_SYS_RESOURCE).
    pub nofile_hard: u64,
    /// `--init`: the host path of the init binary, bound in at /dev/init.
    pub init: Option<&'a str>,
    /// The container paths of the cgroup filesystems libcontainer mounts
    /// (`cgroups::container_mounts`), made read-only.
    pub cgroup_mounts: &'a [String],
}

/// Where `--init` puts the init binary in the container (docker's path).
pub const INIT_PATH: &str = "/dev/init";

/// Docker's default open-file limit, clamped to what the host allows.
const NOFILE: u64 = 1_048_576;

pub fn build(input: &SpecInputs) -> Result<Spec, SpecError> {
    let spec = input.spec;
    let (process, security) = (&spec.process, &spec.security);
    let mut args = command(input.image, process)?;
    if input.init.is_some() {
        // As docker does with tini: `/dev/init -- CMD...`.
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let mut base_env = vec![format!("PATH={}", baseline::DEFAULT_PATH)];
    base_env.extend(input.image.env.iter().cloned());
    let mut env = merge_env(&base_env, &[format!("HOSTNAME={}", input.hostname)]);
    if process.tty {
        env = merge_env(&env, &["TERM=xterm".to_string()]);
    }
    env = merge_env(&env, &process.env);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", input.identity.home));
    }
    let cwd = process
        .cwd
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| input.image.workdir.clone());
    let cwd = if cwd.is_empty() {
        "/".to_string()
    } else {
        super::options::clean_path(&cwd)
    };
    let nofile = NOFILE.min(input.nofile_hard);
    let caps = if security.privileged {
        baseline::privileged_capabilities(baseline::own_bounding_set())
    } else {
        let caps = baseline::adjust_capabilities(
            baseline::CAPABILITIES,
            &security.cap_add,
            &security.cap_drop,
        )
        .map_err(SpecError::Capability)?;
        baseline::within_bounding_set(caps, &security.cap_add, baseline::own_bounding_set())
            .map_err(SpecError::CapabilityNotHeld)?
    };

    let mut mounts = baseline::mounts();
    if spec.namespaces.host_ipc {
        for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
            *m = baseline::bind("/dev/shm", "/dev/shm", false);
        }
    }
    if let Some(size) = spec
        .resources
        .shm_size
        .filter(|_| !spec.namespaces.host_ipc)
    {
        for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
            if let Some(o) = m["options"].as_array_mut() {
                o.retain(|v| !v.as_str().is_some_and(|s| s.starts_with("size=")));
                o.push(json!(format!("size={size}")));
            }
        }
    }
    if security.privileged {
        // As Docker: /sys and the cgroup filesystem writable.
        for m in &mut mounts {
            let writable = m["type"] == "sysfs" || m["type"] == "cgroup";
            if let Some(o) = m["options"].as_array_mut().filter(|_| writable) {
                o.retain(|v| v != "ro");
            }
        }
    }
    // tmpfs mounts first and binds last, so that a bind over /etc/hosts
    // (or into a tmpfs) wins, as in docker.
    for m in &spec.mounts {
        if m.source == MountSource::Tmpfs {
            mounts.push(baseline::tmpfs(&m.destination));
        }
    }
    for (src, dst) in input.etc_files {
        mounts.push(baseline::bind(src, dst, false));
    }
    if let Some(init) = input.init {
        mounts.push(baseline::bind(init, INIT_PATH, true));
    }
    for m in &spec.mounts {
        match &m.source {
            MountSource::Host(source) => mounts.push(baseline::bind(
                &source.to_string_lossy(),
                &m.destination,
                m.read_only,
            )),
            MountSource::Volume(name) => return Err(SpecError::UnresolvedVolume(name.clone())),
            MountSource::Tmpfs => {}
        }
    }

    // Joined by path when the container is in a pod sandbox.
    let ns = |kind: &str, ns: &Namespace| match ns {
        Namespace::Path(p) => json!({"type": kind, "path": p}),
        Namespace::New => json!({"type": kind}),
    };
    let mut namespaces = vec![
        ns("ipc", &spec.namespaces.ipc),
        ns("uts", &spec.namespaces.uts),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if !spec.namespaces.host_pid {
        namespaces.insert(0, ns("pid", &spec.namespaces.pid));
    }
    match &spec.namespaces.network {
        NetworkNamespace::Isolated => namespaces.push(json!({"type": "network"})),
        NetworkNamespace::Host => {}
        NetworkNamespace::Path(path) => namespaces.push(json!({"type": "network", "path": path})),
        NetworkNamespace::Bridge { .. } => {
            return Err(SpecError::UnresolvedNetwork("bridge".into()))
        }
        NetworkNamespace::Container(c) => {
            return Err(SpecError::UnresolvedNetwork(format!("container:{c}")))
        }
    }

    let res = &spec.resources;
    let mut resources = json!({});
    if let Some(limit) = res.memory {
        resources["memory"] = json!({"limit": limit});
    }
    if let Some(cpu) = res.cpu {
        resources["cpu"] = json!({"quota": cpu.quota, "period": cpu.period});
    }
    if let Some(shares) = res.cpu_shares {
        resources["cpu"]["shares"] = json!(shares.clamp(2, 262_144));
    }
    if let Some(pids) = res.pids {
        resources["pids"] = json!({"limit": pids});
    }

    let (devices, device_rules) = devices::nodes_and_rules(security)?;
    resources["devices"] = json!(device_rules);
    // libcontainer mounts each cgroup v1 hierarchy without the "ro" of the
    // spec's cgroup mount (and the tmpfs holding them writable), so a
    // container could rewrite its own limits: every one of them is a
    // read-only path, which libcontainer binds and remounts read-only before
    // it drops the capabilities. --privileged has none of these.
    let (masked, readonly): (Vec<String>, Vec<String>) = if security.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            baseline::MASKED_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            baseline::READONLY_PATHS
                .iter()
                .map(|p| p.to_string())
                .chain(input.cgroup_mounts.iter().cloned())
                .collect(),
        )
    };

    // --privileged runs without a filter, as Docker's does.
    let cap_names: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    let seccomp = if security.privileged {
        None
    } else {
        super::seccomp::for_container(&security.seccomp, &cap_names)?
    };

    // The default RLIMIT_NOFILE unless --ulimit names it.
    let mut rlimits = vec![json!({"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile})];
    for r in &process.rlimits {
        rlimits.retain(|l| l["type"] != r.kind.as_str());
        rlimits.push(json!({"type": r.kind, "hard": r.hard, "soft": r.soft}));
    }
    let mut oci = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": process.tty,
            "user": {
                "uid": input.identity.uid,
                "gid": input.identity.gid,
                "additionalGids": input.identity.additional_gids,
            },
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "rlimits": rlimits,
            "noNewPrivileges": security.no_new_privileges,
        },
        "root": {"path": input.rootfs, "readonly": security.read_only_rootfs},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": input.cgroups_path,
            "resources": resources,
            "namespaces": namespaces,
            "devices": devices,
            "maskedPaths": masked,
            "readonlyPaths": readonly,
        },
    });
    if let Some(seccomp) = seccomp {
        oci["linux"]["seccomp"] = serde_json::to_value(seccomp)?;
    }
    if let Some(adj) = process.oom_score_adj {
        oci["process"]["oomScoreAdj"] = json!(adj.clamp(-1000, 1000));
    }
    if !security.sysctls.is_empty() {
        let host_net = matches!(spec.namespaces.network, NetworkNamespace::Host);
        check_sysctls(&security.sysctls, host_net, spec.namespaces.host_ipc)?;
        oci["linux"]["sysctl"] = json!(security.sysctls);
    }
    Ok(serde_json::from_value(oci)?)
}

/// Docker's rule for every sysctl: see [`check_sysctl`]. A sandbox's
/// container is checked again against its sandbox's (create.rs): its
/// namespaces are joined by path, which does not say whose they are.
pub fn check_sysctls(
    sysctls: &std::collections::BTreeMap<String, String>,
    host_net: bool,
    host_ipc: bool,
) -> Result<(), SpecError> {
    for name in sysctls.keys() {
        check_sysctl(name, host_net, host_ipc).map_err(|reason| SpecError::Sysctl {
            name: name.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// Docker's rule: only sysctls of the container's own IPC or network
/// namespace, none of a namespace that is the host's.
fn check_sysctl(name: &str, host_net: bool, host_ipc: bool) -> Result<(), String> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let valid = !name.is_empty()
        && name.split('.').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        });
    if !valid {
        return Err("not a sysctl name".into());
    }
    if IPC.contains(&name) || name.starts_with("fs.mqueue.") {
        if host_ipc {
            return Err("not allowed in the host's IPC namespace".into());
        }
        return Ok(());
    }
    if name.starts_with("net.") {
        if host_net {
            return Err("not allowed in the host's network namespace".into());
        }
        return Ok(());
    }
    Err("not a namespaced sysctl a container may set".into())
}

#[cfg(test)]
mod tests;
