//! What `skiff run` asks of a container in docker's terms, validated before
//! anything is created: a bad flag must leave nothing behind. It is
//! translated into the runtime-neutral ContainerSpec (translate.rs), which
//! is what the engine creates containers from; the options themselves are
//! kept on the record for `inspect`.

mod translate;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("invalid memory value {0:?}: expected a positive size such as 64m or 1g")]
    Memory(String),
    #[error("invalid memory value {0:?}: the minimum memory limit is 6m")]
    MemoryTooSmall(String),
    #[error("the working directory {0:?} is invalid, it needs to be an absolute path")]
    Workdir(String),
    #[error("invalid --ulimit {0:?}: expected NAME=SOFT[:HARD] with a known NAME (nofile, nproc, core, memlock, stack, …)")]
    Ulimit(String),
    #[error("invalid --ulimit {0:?}: the soft limit is above the hard one")]
    UlimitOrder(String),
    #[error("invalid --sysctl {0:?}: expected NAME=VALUE")]
    Sysctl(String),
    #[error("invalid --ulimit {spec:?}: the hard limit is above this host's ({hard}), which the container could not raise")]
    UlimitAboveHost { spec: String, hard: u64 },
    #[error("invalid --shm-size {0:?}: expected a positive size such as 64m")]
    ShmSize(String),
    #[error("invalid --cpus value {0:?}: expected a number above 0 (such as 0.5)")]
    Cpus(String),
    #[error("invalid --pids-limit value {0}: expected a positive number or -1")]
    Pids(i64),
    #[error("invalid volume specification {0:?}: expected HOSTDIR:CTRDIR[:ro|rw]")]
    BindSpec(String),
    #[error("invalid volume specification {0:?}: the container path must be absolute")]
    RelativeDest(String),
    #[error("invalid volume specification {0:?}: a volume name must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (or give an absolute host path)")]
    NamedVolume(String),
    #[error("invalid tmpfs path {0:?}: must be absolute")]
    Tmpfs(String),
    #[error("invalid argument {spec:?} for \"--mount\" flag: {why}")]
    Mount { spec: String, why: String },
    #[error("invalid environment variable {0:?}: empty name")]
    Env(String),
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    Name(String),
    #[error("invalid network {0:?}: expected bridge, none, host or container:<name|id>")]
    Network(String),
    #[error("invalid --add-host {0:?}: expected HOST:IP")]
    AddHost(String),
    #[error("invalid --dns {0:?}: expected an IP address")]
    Dns(String),
    #[error("invalid --device {0:?}: expected HOSTDEV[:CTRDEV[:PERMS]] with absolute paths and PERMS from \"rwm\"")]
    Device(String),
    #[error("-p needs the bridge network (--network {0} has no ports of its own)")]
    PortsNeedBridge(String),
    #[error("--sandbox joins the sandbox's network: drop --network {0} and -p (give ports to the sandbox)")]
    SandboxNetwork(String),
    #[error("invalid --label {0:?}: expected KEY=VALUE with a non-empty KEY without spaces")]
    Label(String),
    #[error("invalid --security-opt {0:?}: expected seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges")]
    SecurityOpt(String),
}

/// Which network namespace the container gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// A new, empty network namespace (only `lo`).
    None,
    /// The host's namespace.
    Host,
    /// An existing namespace (a bind-mounted handle): the seam for pod
    /// networking, where the sandbox owns the namespace.
    Join(PathBuf),
    /// A namespace of its own on the node bridge (src/net), as Docker's
    /// default network.
    Bridge,
    /// The namespace of another container (the pod model).
    Container(String),
}

impl Network {
    pub fn parse(s: &str) -> Result<Network, OptionsError> {
        match s {
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            "bridge" | "default" => Ok(Network::Bridge),
            other => match other.strip_prefix("container:") {
                Some(name) if !name.is_empty() => Ok(Network::Container(name.to_string())),
                _ => Err(OptionsError::Network(other.to_string())),
            },
        }
    }

    pub fn mode(&self) -> String {
        match self {
            Network::None => "none".into(),
            Network::Host => "host".into(),
            Network::Join(p) => format!("ns:{}", p.display()),
            Network::Bridge => "bridge".into(),
            Network::Container(c) => format!("container:{c}"),
        }
    }
}

/// A host directory bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// The host directory (for a named volume: its data directory, filled in
    /// when the container is created).
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
    /// `NAME:CTRDIR`: a named volume under `<root>/volumes`.
    #[serde(default)]
    pub volume: Option<String>,
}

impl Bind {
    /// `HOSTDIR:CTRDIR[:ro|rw]` (both absolute) or `VOLUME:CTRDIR[:ro|rw]`.
    pub fn parse(spec: &str) -> Result<Bind, OptionsError> {
        let bad = || OptionsError::BindSpec(spec.to_string());
        let parts: Vec<&str> = spec.split(':').collect();
        let (source, dest, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, None),
            [s, d, m] => (*s, *d, Some(*m)),
            _ => return Err(bad()),
        };
        if source.is_empty() || dest.is_empty() {
            return Err(bad());
        }
        let read_only = match mode {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(_) => return Err(bad()),
        };
        if !dest.starts_with('/') {
            return Err(OptionsError::RelativeDest(spec.to_string()));
        }
        if !source.starts_with('/') {
            crate::runtime::volume::validate_name(source)
                .map_err(|_| OptionsError::NamedVolume(spec.to_string()))?;
            return Ok(Bind {
                source: PathBuf::new(),
                destination: clean_path(dest),
                read_only,
                volume: Some(source.to_string()),
            });
        }
        Ok(Bind {
            source: PathBuf::from(source),
            destination: clean_path(dest),
            read_only,
            volume: None,
        })
    }
}

/// What one `--mount` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A host directory or a named volume.
    Bind(Bind),
    /// An empty tmpfs at this path.
    Tmpfs(String),
}

impl MountSpec {
    /// docker's `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`
    /// (`src`, `dst`/`destination`, `ro` as aliases; type defaults to volume).
    pub fn parse(spec: &str) -> Result<MountSpec, OptionsError> {
        let fail = |why: String| OptionsError::Mount {
            spec: spec.to_string(),
            why,
        };
        let (mut kind, mut source, mut target, mut read_only) = ("volume", None, None, false);
        for field in spec.split(',').filter(|f| !f.is_empty()) {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (field.trim(), None),
            };
            match (key.to_ascii_lowercase().as_str(), value) {
                ("type", Some(v @ ("bind" | "volume" | "tmpfs"))) => kind = v,
                ("type", Some(v)) => {
                    return Err(fail(format!(
                        "unsupported mount type {v:?} (bind, volume or tmpfs)"
                    )))
                }
                ("source" | "src", Some(v)) => source = Some(v),
                ("target" | "dst" | "destination", Some(v)) => target = Some(v),
                ("readonly" | "ro", None | Some("true" | "1")) => read_only = true,
                ("readonly" | "ro", Some("false" | "0")) => read_only = false,
                (k, _) => return Err(fail(format!("unexpected key {k:?} in {field:?}"))),
            }
        }
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            return Err(fail("target is required".into()));
        };
        if !target.starts_with('/') {
            return Err(fail(format!(
                "the target {target:?} must be an absolute path"
            )));
        }
        match kind {
            "tmpfs" if source.is_some() => Err(fail("a tmpfs mount has no source".into())),
            "tmpfs" if read_only => Err(fail("a read-only tmpfs is not supported".into())),
            "tmpfs" => Ok(MountSpec::Tmpfs(clean_path(target))),
            _ => {
                let Some(source) = source.filter(|s| !s.is_empty()) else {
                    return Err(fail(if kind == "bind" {
                        "a bind mount needs a source".into()
                    } else {
                        "a volume needs a name (anonymous volumes are not supported)".into()
                    }));
                };
                if kind == "bind" && !source.starts_with('/') {
                    return Err(fail(format!(
                        "the bind source {source:?} must be an absolute path"
                    )));
                }
                if kind == "volume" && source.starts_with('/') {
                    return Err(fail(format!("{source:?} is a path: use type=bind")));
                }
                let mode = if read_only { ":ro" } else { "" };
                Bind::parse(&format!("{source}:{target}{mode}")).map(MountSpec::Bind)
            }
        }
    }
}

/// `--device HOSTDEV[:CTRDEV[:PERMS]]` (docker's syntax): the host node is
/// made in the container's /dev and the device cgroup allows it.
pub use super::containerspec::Device as DeviceMapping;

impl DeviceMapping {
    pub fn parse(spec: &str) -> Result<DeviceMapping, OptionsError> {
        let bad = || OptionsError::Device(spec.to_string());
        let is_access = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, access) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            // docker: a second part that is only permissions is PERMS.
            [h, a] if is_access(a) => (*h, *h, *a),
            [h, c] => (*h, *c, "rwm"),
            [h, c, a] => (*h, *c, *a),
            _ => return Err(bad()),
        };
        if !host.starts_with('/') || !container.starts_with('/') || !is_access(access) {
            return Err(bad());
        }
        Ok(DeviceMapping {
            host: PathBuf::from(host),
            container: clean_path(container),
            access: access.to_string(),
        })
    }
}

/// Resolve `.` and `..` lexically (never above `/`), drop repeated slashes.
pub fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

/// `64m`, `1g`, `512k`, `1048576` (bytes); docker's units, binary multiples.
pub fn parse_memory(s: &str) -> Result<i64, OptionsError> {
    let bad = || OptionsError::Memory(s.to_string());
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad());
    }
    let bytes = n * mult as f64;
    if bytes >= i64::MAX as f64 {
        return Err(bad());
    }
    // The kernel needs some room for the process itself; docker's minimum.
    let bytes = bytes as i64;
    if bytes < 6 << 20 {
        return Err(OptionsError::MemoryTooSmall(s.to_string()));
    }
    Ok(bytes)
}

/// `0.5` → 0.5 CPUs (a CFS quota of 50 ms per 100 ms period).
pub fn parse_cpus(s: &str) -> Result<f64, OptionsError> {
    match s.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n <= 4096.0 => Ok(n),
        _ => Err(OptionsError::Cpus(s.to_string())),
    }
}

pub fn check_pids_limit(n: i64) -> Result<i64, OptionsError> {
    if n == 0 || n < -1 {
        return Err(OptionsError::Pids(n));
    }
    Ok(n)
}

/// Docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<(), OptionsError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(OptionsError::Name(name.to_string()))
    }
}

/// `K=V` (or a bare `K`, taken from `lookup`, dropped when unset).
pub fn parse_env(
    item: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, OptionsError> {
    match item.split_once('=') {
        Some(("", _)) => Err(OptionsError::Env(item.to_string())),
        Some(_) => Ok(Some(item.to_string())),
        None if item.is_empty() => Err(OptionsError::Env(item.to_string())),
        None => Ok(lookup(item).map(|v| format!("{item}={v}"))),
    }
}

/// Lines of an `--env-file`: `K=V` or `K`, `#` comments and blank lines skipped.
pub fn parse_env_file(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, OptionsError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(kv) = parse_env(line, &lookup)? {
            out.push(kv);
        }
    }
    Ok(out)
}

/// Everything a container is created from besides its image. Every field
/// defaults when absent, so records written by an older version load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    pub name: Option<String>,
    /// `K=V` entries, after the image's (later ones win).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// Replaces the image's entrypoint (`Some("")` clears it).
    pub entrypoint: Option<String>,
    /// Replaces the image's cmd when not empty.
    pub cmd: Vec<String>,
    pub binds: Vec<Bind>,
    pub tmpfs: Vec<String>,
    pub memory: Option<i64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub read_only: bool,
    pub network: Option<Network>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
    /// Run skiff's own init (`/dev/init`) as PID 1 in front of the command.
    #[serde(default)]
    pub init: bool,
    /// Where libcontainer puts the container's cgroup (`--cgroup-parent`).
    pub cgroup_parent: Option<String>,
    /// Published ports (`-p`), bridge network only.
    #[serde(default)]
    pub ports: Vec<crate::net::ports::PublishedPort>,
    /// Name servers for /etc/resolv.conf (`--dns`).
    #[serde(default)]
    pub dns: Vec<std::net::IpAddr>,
    /// Extra /etc/hosts lines (`--add-host HOST:IP`): (host, ip).
    #[serde(default)]
    pub add_hosts: Vec<(String, std::net::IpAddr)>,
    /// The node bridge's subnet (`--node-cidr`); the default when unset.
    #[serde(default)]
    pub node_cidr: Option<crate::net::cidr::Ipv4Cidr>,
    /// `--security-opt seccomp=…`.
    #[serde(default)]
    pub seccomp: super::seccomp::Choice,
    /// Host devices made available (`--device`).
    #[serde(default)]
    pub devices: Vec<DeviceMapping>,
    /// `--privileged`: every device and capability, no masked or read-only
    /// paths, a writable /sys and cgroupfs and no seccomp filter (as
    /// Docker).
    #[serde(default)]
    pub privileged: bool,
    /// `--sandbox NAME`: join the pod sandbox's network, IPC and UTS
    /// namespaces (runtime/sandbox.rs).
    pub sandbox: Option<String>,
    /// `--cap-add`/`--cap-drop`: capabilities beyond or taken from
    /// docker's default set (names with or without `CAP_`, or `ALL`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `--stop-signal`: what `stop` sends first (SIGTERM when unset).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `--sysctl`: kernel parameters of the container's namespaces.
    #[serde(default)]
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `--ulimit`: rlimits of the process.
    #[serde(default)]
    pub ulimits: Vec<super::containerspec::Rlimit>,
    /// `--shm-size`, bytes.
    #[serde(default)]
    pub shm_size: Option<i64>,
    /// `--restart`: kept by the container's shim (restart.rs).
    #[serde(default)]
    pub restart: super::restart::RestartPolicy,
    /// `--health-*`/`--no-healthcheck`: over the image's HEALTHCHECK
    /// (health.rs), probed by the shim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<super::health::HealthConfig>,
    /// `--label K=V`: kept on the record (records.rs), where they can be
    /// queried, not in the options.
    #[serde(skip)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `--ulimit NAME=SOFT[:HARD]` (docker's names: nofile, nproc, core,
/// memlock, stack, …; -1 for unlimited). A limit above this host's hard
/// one is refused now: the container's init could not raise it (root may
/// lack CAP_SYS_RESOURCE).
pub fn parse_ulimit(s: &str) -> Result<super::containerspec::Rlimit, OptionsError> {
    use nix::sys::resource::Resource;
    let bad = || OptionsError::Ulimit(s.to_string());
    let (name, values) = s.split_once('=').ok_or_else(bad)?;
    let (resource, kind) = match name {
        "core" => (Resource::RLIMIT_CORE, "RLIMIT_CORE"),
        "cpu" => (Resource::RLIMIT_CPU, "RLIMIT_CPU"),
        "data" => (Resource::RLIMIT_DATA, "RLIMIT_DATA"),
        "fsize" => (Resource::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        "locks" => (Resource::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        "memlock" => (Resource::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        "msgqueue" => (Resource::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        "nice" => (Resource::RLIMIT_NICE, "RLIMIT_NICE"),
        "nofile" => (Resource::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        "nproc" => (Resource::RLIMIT_NPROC, "RLIMIT_NPROC"),
        "rss" => (Resource::RLIMIT_RSS, "RLIMIT_RSS"),
        "rtprio" => (Resource::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        "sigpending" => (Resource::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        "stack" => (Resource::RLIMIT_STACK, "RLIMIT_STACK"),
        _ => return Err(bad()),
    };
    let value = |v: &str| -> Result<u64, OptionsError> {
        if v == "-1" {
            return Ok(u64::MAX);
        }
        v.parse().map_err(|_| bad())
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (value(s)?, value(h)?),
        None => (value(values)?, value(values)?),
    };
    if soft > hard {
        return Err(OptionsError::UlimitOrder(s.to_string()));
    }
    let host_hard = nix::sys::resource::getrlimit(resource).map_or(u64::MAX, |(_, h)| h);
    if hard > host_hard {
        return Err(OptionsError::UlimitAboveHost {
            spec: s.to_string(),
            hard: host_hard,
        });
    }
    Ok(super::containerspec::Rlimit {
        kind: kind.to_string(),
        soft,
        hard,
    })
}

/// `--label K=V` (or `K`, an empty value), as docker.
pub fn parse_label(s: &str) -> Result<(String, String), OptionsError> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() || k.contains(char::is_whitespace) {
        return Err(OptionsError::Label(s.to_string()));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `--add-host HOST:IP` (the IP may be IPv6, so split at the first ':').
pub fn parse_add_host(s: &str) -> Result<(String, std::net::IpAddr), OptionsError> {
    let bad = || OptionsError::AddHost(s.to_string());
    let (host, ip) = s.split_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok((host.to_string(), ip.parse().map_err(|_| bad())?))
}

/// `--security-opt` values: `seccomp=unconfined|builtin|FILE`, and
/// `no-new-privileges[=true]` (always on in skiff).
pub fn parse_security_opts(opts: &[String]) -> Result<super::seccomp::Choice, OptionsError> {
    let mut choice = super::seccomp::Choice::Default;
    for o in opts {
        let bad = || OptionsError::SecurityOpt(o.clone());
        match o.split_once('=') {
            Some(("seccomp", "")) => return Err(bad()),
            Some(("seccomp", v)) => {
                choice = match super::seccomp::Choice::parse(v) {
                    super::seccomp::Choice::Profile(p) => {
                        super::seccomp::Choice::Profile(std::path::absolute(&p).map_err(|_| bad())?)
                    }
                    other => other,
                }
            }
            Some(("no-new-privileges", "true")) => {}
            None if o == "no-new-privileges" => {}
            _ => return Err(bad()),
        }
    }
    Ok(choice)
}

pub fn parse_dns(s: &str) -> Result<std::net::IpAddr, OptionsError> {
    s.parse().map_err(|_| OptionsError::Dns(s.to_string()))
}

impl RunOptions {
    pub fn network(&self) -> Network {
        self.network.clone().unwrap_or(Network::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_syntax() {
        let m = MountSpec::parse("type=bind,src=/a,dst=/b,ro").unwrap();
        let MountSpec::Bind(b) = m else {
            panic!("{m:?}")
        };
        assert_eq!(
            (b.source.to_str(), b.destination.as_str(), b.read_only),
            (Some("/a"), "/b", true)
        );
        let MountSpec::Bind(v) = MountSpec::parse("source=data,target=/d").unwrap() else {
            panic!()
        };
        assert_eq!(v.volume.as_deref(), Some("data"));
        assert_eq!(
            MountSpec::parse("type=tmpfs,destination=/t/").unwrap(),
            MountSpec::Tmpfs("/t".into())
        );
        for (bad, why) in [
            ("type=bind,source=/a", "target is required"),
            ("type=bind,target=/b", "a bind mount needs a source"),
            ("target=/b", "anonymous volumes are not supported"),
            ("type=nfs,target=/b", "unsupported mount type"),
            ("type=bind,source=rel,target=/b", "must be an absolute path"),
            (
                "type=bind,source=/a,target=/b,bogus=1",
                "unexpected key \"bogus\"",
            ),
            (
                "type=tmpfs,source=/a,target=/b",
                "a tmpfs mount has no source",
            ),
        ] {
            let e = MountSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn device_syntax() {
        let d = DeviceMapping::parse("/dev/loop0").unwrap();
        assert_eq!(
            (d.container.as_str(), d.access.as_str()),
            ("/dev/loop0", "rwm")
        );
        let d = DeviceMapping::parse("/dev/loop0:r").unwrap();
        assert_eq!(
            (d.container.as_str(), d.access.as_str()),
            ("/dev/loop0", "r")
        );
        let d = DeviceMapping::parse("/dev/loop0:/dev/xvda:rw").unwrap();
        assert_eq!(
            (d.container.as_str(), d.access.as_str()),
            ("/dev/xvda", "rw")
        );
        for bad in [
            "",
            "loop0",
            "/dev/a:b",
            "/dev/a:/b:x",
            "/dev/a:/b:",
            "/a:/b:r:w",
        ] {
            assert!(DeviceMapping::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("64m"), Ok(64 << 20));
        assert_eq!(parse_memory("1g"), Ok(1 << 30));
        assert_eq!(parse_memory("32MB"), Ok(32 << 20));
        assert_eq!(parse_memory("1.5g"), Ok(3 << 29));
        for bad in ["-64m", "0", "x", "", "1k", "nanm"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        for bad in ["0", "-1", "abc", "inf", "NaN"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn binds() {
        let b = Bind::parse("/tmp/x:/data:ro").unwrap();
        assert_eq!(b.destination, "/data");
        assert!(b.read_only);
        assert!(!Bind::parse("/tmp/x:/data/../d2/").unwrap().read_only);
        assert_eq!(
            Bind::parse("/tmp/x:/data/../d2/").unwrap().destination,
            "/d2"
        );
        assert!(matches!(
            Bind::parse("/tmp/x:data"),
            Err(OptionsError::RelativeDest(_))
        ));
        assert_eq!(
            Bind::parse("vol:/data").unwrap().volume.as_deref(),
            Some("vol")
        );
        assert!(matches!(
            Bind::parse("bad/name:/data"),
            Err(OptionsError::NamedVolume(_))
        ));
        for bad in ["/tmp/x", "/a:/b:rx", ":/b", "/a:", "/a:/b:ro:x"] {
            assert!(
                matches!(Bind::parse(bad), Err(OptionsError::BindSpec(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_and_env() {
        assert!(check_name("web-1.a_b").is_ok());
        for bad in ["", "-x", "a/b", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let look = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(parse_env("A=1", look), Ok(Some("A=1".into())));
        assert_eq!(parse_env("HOME", look), Ok(Some("HOME=/root".into())));
        assert_eq!(parse_env("UNSET", look), Ok(None));
        assert!(parse_env("=x", look).is_err());
        let file = "# c\n\nA=1\n  B=two words\nHOME\n";
        assert_eq!(
            parse_env_file(file, look).unwrap(),
            vec!["A=1", "B=two words", "HOME=/root"]
        );
    }

    #[test]
    fn security_opts() {
        use crate::runtime::container::seccomp::Choice;
        let parse =
            |v: &[&str]| parse_security_opts(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(parse(&[]), Ok(Choice::Default));
        assert_eq!(parse(&["seccomp=unconfined"]), Ok(Choice::Unconfined));
        assert_eq!(
            parse(&["no-new-privileges", "seccomp=/p.json"]),
            Ok(Choice::Profile("/p.json".into()))
        );
        for bad in [
            "seccomp=",
            "apparmor=unconfined",
            "no-new-privileges=false",
            "x",
        ] {
            assert!(
                matches!(parse(&[bad]), Err(OptionsError::SecurityOpt(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn pids() {
        assert!(check_pids_limit(20).is_ok());
        assert!(check_pids_limit(-1).is_ok());
        assert!(check_pids_limit(0).is_err());
        assert!(check_pids_limit(-5).is_err());
    }
}
