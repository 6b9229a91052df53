//! `skiff inspect`: containers and images as docker's JSON, or through a
//! Go template (`-f '{{.State.Status}}'`, template/). Names are looked up
//! as containers first, then as images, as docker does; a name that is
//! neither is reported and the others still printed.

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::runtime::container::containerspec::MountSource;
use crate::runtime::container::health;
use crate::runtime::container::records::{rfc3339, Record, Status};
use crate::runtime::container::short_id;
use crate::runtime::container::spec::{self, ImageProcess};
use crate::runtime::engine::Engine;

use super::template::{self, Template};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectType {
    Container,
    Image,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output with a Go template (`{{.State.Status}}`,
    /// `{{json .Config}}`, `{{range .Mounts}}…{{end}}`), or `json`.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Only look for this kind of object.
    #[arg(long = "type", value_enum)]
    pub kind: Option<ObjectType>,
    /// Containers or images, by name or ID.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Go's zero time, which docker prints for times that did not happen.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// docker inspect's `Mounts`: binds and named volumes (tmpfs mounts show
/// in `HostConfig.Tmpfs` only, as in docker).
fn mounts(engine: &Engine, r: &Record) -> Vec<Value> {
    let volumes = crate::runtime::volume::Volumes::new(engine.root());
    r.config
        .spec
        .mounts
        .iter()
        .filter_map(|m| match &m.source {
            MountSource::Host(p) => Some(json!({
                "Type": "bind",
                "Source": p,
                "Destination": m.destination,
                "Mode": if m.read_only { "ro" } else { "" },
                "RW": !m.read_only,
                "Propagation": "rprivate",
            })),
            MountSource::Volume(name) => Some(json!({
                "Type": "volume",
                "Name": name,
                "Source": volumes.get(name).map(|v| v.mountpoint).unwrap_or_default(),
                "Destination": m.destination,
                "Driver": "local",
                "Mode": if m.read_only { "ro" } else { "z" },
                "RW": !m.read_only,
                "Propagation": "",
            })),
            MountSource::Tmpfs => None,
        })
        .collect()
}

/// One container in the shape of `docker inspect`.
pub fn container(engine: &Engine, r: &Record) -> Value {
    let paths = engine.paths();
    let o = &r.config.options;
    let time = |t: Option<DateTime<Utc>>| t.map_or_else(|| ZERO_TIME.to_string(), rfc3339);
    let lower: Vec<String> = r
        .config
        .snapshots
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let dir = paths.dir(&r.id);
    // What the process really got: the image's config under the
    // container's, as docker shows it.
    let image = ImageProcess::from_config(&r.config.image_config);
    let process = &r.config.spec.process;
    let (entrypoint, cmd) = match &process.command {
        Some(c) => (c.clone(), process.args.clone()),
        None if process.args.is_empty() => (image.entrypoint.clone(), image.cmd.clone()),
        None => (image.entrypoint.clone(), process.args.clone()),
    };
    let null_if_empty = |v: Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
    let workdir = process.cwd.clone().unwrap_or(image.workdir.clone());
    let user = process.user.clone().unwrap_or(image.user.clone());
    let mut out = json!({
        "Id": r.id,
        "Created": rfc3339(r.created),
        "Path": r.command.first(),
        "Args": r.command.get(1..).unwrap_or_default(),
        "State": {
            "Status": r.status.as_str(),
            // Docker's: a paused container and one between restarts
            // count as running.
            "Running": r.status.is_up(),
            "Paused": r.status == Status::Paused,
            "Restarting": r.status == Status::Restarting,
            "OOMKilled": r.oom_killed,
            "Dead": false,
            "Pid": r.pid.unwrap_or(0),
            "ExitCode": r.exit_code.unwrap_or(0),
            "Error": "",
            "StartedAt": time(r.started_at),
            "FinishedAt": time(r.finished_at),
        },
        "Image": r.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": paths.log(&r.id),
        "Name": format!("/{}", r.name),
        "RestartCount": r.config.restart_count,
        "Driver": "overlay",
        "HostConfig": {
            "Binds": o.binds.iter().map(|b| format!(
                "{}:{}{}",
                b.source.display(),
                b.destination,
                if b.read_only { ":ro" } else { "" }
            )).collect::<Vec<_>>(),
            "NetworkMode": super::network::mode(o),
            "AutoRemove": o.auto_remove,
            "RestartPolicy": {
                "Name": o.restart.name(),
                "MaximumRetryCount": o.restart.max_retries(),
            },
            "ReadonlyRootfs": o.read_only,
            "Privileged": o.privileged,
            "Memory": o.memory.unwrap_or(0),
            "NanoCpus": o.cpus.map_or(0, |c| (c * 1e9) as i64),
            "PidsLimit": o.pids_limit,
            "CgroupParent": o.cgroup_parent.as_deref().unwrap_or_default(),
            "Tmpfs": o.tmpfs,
        },
        "Mounts": mounts(engine, r),
        "NetworkSettings": super::network::settings(
            super::network::attachment(engine, &r.id).as_ref()
        ),
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": lower.join(":"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("rootfs"),
            },
        },
        "Config": {
            "Hostname": o.hostname.clone().unwrap_or_else(|| short_id(&r.id).to_string()),
            "User": user,
            "Tty": o.tty,
            "OpenStdin": o.interactive,
            "Env": spec::exec_env(&r.config, &[], false),
            "Cmd": null_if_empty(cmd),
            "Image": r.image,
            "WorkingDir": workdir,
            "Entrypoint": null_if_empty(entrypoint),
            "Labels": r.labels,
            "Healthcheck": health::effective(o.healthcheck.as_ref(), &r.config.image_config),
        },
    });
    if let Some(h) = &r.config.health {
        out["State"]["Health"] = json!(h);
    }
    out
}

/// `skiff inspect`: containers first, then images (as docker does).
pub fn inspect(engine: &Engine, args: InspectArgs) -> anyhow::Result<()> {
    // A bad template is refused before anything is looked up.
    let tmpl = args
        .format
        .as_deref()
        .map(template::format_template)
        .transpose()
        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    let state = match args.kind {
        Some(ObjectType::Image) => None,
        _ => Some(engine.records()?),
    };
    for q in &args.names {
        if let Some(r) = state.as_ref().and_then(|s| s.find(q).ok()) {
            out.push(container(engine, &r));
            continue;
        }
        if args.kind != Some(ObjectType::Container) {
            if let Ok(mut found) = super::images::inspect_values(engine, std::slice::from_ref(q)) {
                if !found.is_empty() {
                    out.append(&mut found);
                    continue;
                }
            }
        }
        missing.push(q.clone());
    }
    print(&out, tmpl.as_ref())?;
    for q in &missing {
        eprintln!("Error: No such object: {q}");
    }
    if !missing.is_empty() {
        return Err(super::Quiet(1).into());
    }
    Ok(())
}

/// The objects as a JSON array, or each through the template on a line
/// of its own.
fn print(values: &[Value], tmpl: Option<&Template>) -> anyhow::Result<()> {
    let Some(tmpl) = tmpl else {
        println!("{}", serde_json::to_string_pretty(values)?);
        return Ok(());
    };
    let mut text = String::new();
    for v in values {
        let line = tmpl
            .render(v)
            .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
        text.push_str(&line);
        text.push('\n');
    }
    print!("{text}");
    Ok(())
}
