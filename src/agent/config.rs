//! What the agent is told: its node's name, labels and taints, what to
//! hold back from pods (`--kube-reserved`, `--system-reserved`), where its
//! credentials and the engine's state are. Parsed and checked here, once,
//! with kubelet's and k3s's flag syntax.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Taint;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid --node-name {0:?}: a node name is a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)")]
    NodeName(String),
    #[error("invalid --node-label {0:?}: expected KEY=VALUE with a label key ([PREFIX/]NAME) and a label value (at most 63 characters of letters, digits, '-', '_' and '.')")]
    Label(String),
    #[error("invalid --node-taint {0:?}: expected KEY[=VALUE]:EFFECT with EFFECT one of NoSchedule, PreferNoSchedule, NoExecute")]
    Taint(String),
    #[error("the host name {0:?} is not a valid node name: set --node-name")]
    Hostname(String),
    #[error("invalid --cgroup-root {0:?}: expected a cgroup path such as skiff or skiff/node-1 (no empty, '.', '..' or 'kubepods' parts)")]
    CgroupRoot(String),
    #[error(transparent)]
    Reserved(#[from] crate::agent::node::host::HostError),
    #[error("invalid image garbage collection thresholds: --image-gc-low-threshold ({low}) must be below --image-gc-high-threshold ({high}), both at most 100")]
    ImageGcThresholds { high: u8, low: u8 },
    #[error("invalid {0} {1:?}: expected a duration such as 2m or 90s")]
    Duration(&'static str, String),
}

/// The agent's settings, checked.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    /// `--node-label`, over the labels the agent sets itself.
    pub labels: BTreeMap<String, String>,
    /// `--node-taint`, set when the node is registered (as kubelet's
    /// `--register-with-taints`: a node that exists keeps its own).
    pub taints: Vec<Taint>,
    pub kube_reserved: crate::agent::node::host::Reserved,
    pub system_reserved: crate::agent::node::host::Reserved,
    /// The address other nodes and the server reach this node at.
    pub node_ip: IpAddr,
    /// `--cgroup-root`: pods' cgroups are under `<it>/kubepods`.
    pub cgroup_root: String,
    /// `--node-external-ip`.
    pub external_ips: Vec<IpAddr>,
    /// The engine's `--root` (images, containers), whose filesystem is the
    /// node's ephemeral storage.
    pub root: PathBuf,
    /// The engine's `--run-dir` (shim sockets, namespace handles).
    pub run_dir: PathBuf,
    /// kubelet's /var/log/pods.
    pub pod_log_dir: PathBuf,
    pub registries: PathBuf,
    /// `--allowed-unsafe-sysctls`.
    pub allowed_unsafe_sysctls: Vec<String>,
    /// The agent's kubeconfig (its node client certificate).
    pub kubeconfig: PathBuf,
    /// The node also runs the control plane (`skiff server`): labelled as
    /// k3s labels its server nodes.
    pub control_plane: bool,
    /// The kubelet API's port, on every address of the node.
    pub kubelet_port: u16,
    pub image_gc: crate::agent::image_gc::Policy,
    /// Static pods' manifests (kubelet's staticPodPath).
    pub static_pod_dir: PathBuf,
    /// Run the service proxy (off: `--disable-kube-proxy`).
    pub proxy: bool,
    /// `--nodeport-addresses`: NodePorts only on node addresses in these.
    pub nodeport_addresses: Vec<crate::net::cidr::Ipv4Cidr>,
    /// The cluster's address plan.
    pub cluster: crate::cluster::ClusterConfig,
    /// Serve cluster DNS on the node's address and point pods at it.
    pub dns: bool,
    /// The resolv.conf whose name servers get the names outside the
    /// cluster (kubelet's `--resolv-conf`).
    pub resolv_conf: PathBuf,
}

/// A DNS subdomain (RFC 1123), as Kubernetes names nodes.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// The node name: `--node-name`, else the host name in lowercase (as
/// kubelet does).
pub fn node_name(given: Option<&str>) -> Result<String, ConfigError> {
    if let Some(name) = given {
        return if is_dns_subdomain(name) {
            Ok(name.to_string())
        } else {
            Err(ConfigError::NodeName(name.to_string()))
        };
    }
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if is_dns_subdomain(&host) {
        Ok(host)
    } else {
        Err(ConfigError::Hostname(host))
    }
}

fn is_label_name(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

/// `--node-label KEY=VALUE`.
pub fn parse_label(s: &str) -> Result<(String, String), ConfigError> {
    let bad = || ConfigError::Label(s.to_string());
    let (k, v) = s.split_once('=').ok_or_else(bad)?;
    if !is_label_key(k) || !is_label_value(v) {
        return Err(bad());
    }
    Ok((k.to_string(), v.to_string()))
}

/// `--node-taint KEY[=VALUE]:EFFECT` (kubelet's and k3s's syntax).
pub fn parse_taint(s: &str) -> Result<Taint, ConfigError> {
    let bad = || ConfigError::Taint(s.to_string());
    let (kv, effect) = s.rsplit_once(':').ok_or_else(bad)?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(bad());
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    if !is_label_key(key) || !value.is_none_or(is_label_value) {
        return Err(bad());
    }
    Ok(Taint {
        key: key.to_string(),
        value: value.filter(|v| !v.is_empty()).map(String::from),
        effect: effect.to_string(),
        time_added: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_taints() {
        assert_eq!(node_name(Some("edge-1.lan")).unwrap(), "edge-1.lan");
        for bad in ["Edge", "-a", "a-", "a..b", "", "a_b"] {
            assert!(node_name(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            parse_label("topology.kubernetes.io/zone=z1").unwrap(),
            ("topology.kubernetes.io/zone".into(), "z1".into())
        );
        assert_eq!(parse_label("gpu=").unwrap(), ("gpu".into(), String::new()));
        for bad in ["nokey", "=v", "a/b/c=v", "k=-v", "k=a b"] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
        let t = parse_taint("dedicated=edge:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("edge"), "NoSchedule")
        );
        assert_eq!(parse_taint("gpu:NoExecute").unwrap().value, None);
        for bad in ["k=v", "k=v:Sometimes", ":NoSchedule", "k=v v:NoSchedule"] {
            assert!(parse_taint(bad).is_err(), "{bad}");
        }
    }
}

/// The agent's flags, shared by `skiff server` (which runs an agent in its
/// process unless `--disable-agent`) and, later, `skiff agent`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentArgs {
    /// The node's name [default: the host name, in lowercase]
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// A label for the node, KEY=VALUE (repeatable).
    #[arg(long = "node-label", value_name = "KEY=VALUE")]
    pub node_label: Vec<String>,
    /// A taint the node is registered with, KEY[=VALUE]:EFFECT (repeatable).
    #[arg(long = "node-taint", value_name = "KEY[=VALUE]:EFFECT")]
    pub node_taint: Vec<String>,
    /// The node's address, where the other nodes and the server reach it
    /// [default: a server's own node: the address it advertises; an
    /// agent's: the address it reaches the server from]
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<IpAddr>,
    /// An address the node is reached at from outside the cluster (its
    /// Node's ExternalIP; repeatable).
    #[arg(long = "node-external-ip", value_name = "IP")]
    pub node_external_ip: Vec<IpAddr>,
    /// The cgroup the node's pods are made under, as `<ROOT>/kubepods/...`
    /// (kubelet's flag): a path of its own for each node when several share
    /// a host.
    #[arg(long, value_name = "ROOT", default_value = crate::agent::pods::pod_cgroup::DEFAULT_ROOT)]
    pub cgroup_root: String,
    /// Resources held back for skiff itself, not given to pods, e.g.
    /// cpu=200m,memory=256Mi,ephemeral-storage=1Gi,pid=1000
    #[arg(long, value_name = "RESOURCES", default_value = "")]
    pub kube_reserved: String,
    /// Resources held back for the host's own processes, not given to pods.
    #[arg(long, value_name = "RESOURCES", default_value = "")]
    pub system_reserved: String,
    /// Where pods' container logs are written (<dir>/<ns>_<pod>_<uid>/<container>/N.log).
    #[arg(long, value_name = "DIR", default_value = "/var/log/pods")]
    pub pod_log_dir: PathBuf,
    /// Registry mirrors, credentials and TLS settings for pods' images.
    #[arg(long, value_name = "FILE", default_value = crate::runtime::image::registries::DEFAULT_PATH)]
    pub registries: PathBuf,
    /// Sysctls beyond the safe set that pods may set (comma-separated;
    /// a trailing `*` matches a prefix), as kubelet's flag.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub allowed_unsafe_sysctls: Vec<String>,
    /// The port of the kubelet API (logs, exec, port-forward, stats), which
    /// only the API server may call.
    #[arg(long, value_name = "PORT", default_value_t = crate::agent::kubelet::DEFAULT_PORT)]
    pub kubelet_port: u16,
    /// Percent of the image disk in use above which unused images are
    /// removed (kubelet's flag).
    #[arg(long, value_name = "PERCENT", default_value_t = 85)]
    pub image_gc_high_threshold: u8,
    /// Percent of the image disk that image garbage collection frees down
    /// to (kubelet's flag).
    #[arg(long, value_name = "PERCENT", default_value_t = 80)]
    pub image_gc_low_threshold: u8,
    /// How long an unused image is kept at least, from when the agent first
    /// sees it (kubelet's flag).
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    pub minimum_image_ttl_duration: String,
    /// How often the image disk is looked at (kubelet's fixed 5m; for
    /// tests).
    #[arg(long, value_name = "DURATION", default_value = "5m", hide = true)]
    pub image_gc_period: String,
    /// Where static pods' manifests are (one Pod per *.yaml, *.yml or
    /// *.json file), run by the node whatever the API says [default:
    /// <data-dir>/agent/pod-manifests]
    #[arg(long, value_name = "DIR")]
    pub pod_manifest_path: Option<PathBuf>,
    /// Do not run the service proxy (Services are then not reachable
    /// through their ClusterIPs and NodePorts on this node).
    #[arg(long)]
    pub disable_kube_proxy: bool,
    /// Serve NodePorts only on this node's addresses inside these ranges
    /// (comma-separated CIDRs) [default: every address but loopback]
    #[arg(long, value_name = "CIDRS", value_delimiter = ',')]
    pub nodeport_addresses: Vec<crate::net::cidr::Ipv4Cidr>,
    /// Where the cluster DNS finds the resolvers for names outside the
    /// cluster (its loopback name servers are skipped).
    #[arg(long, value_name = "FILE", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
}

/// Where the agent runs and how it reaches the API (the rest of
/// [`AgentConfig`], which the flags do not give).
pub struct Placement {
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub default_ip: IpAddr,
    pub control_plane: bool,
}

impl AgentArgs {
    pub fn to_config(&self, at: Placement) -> Result<AgentConfig, ConfigError> {
        Ok(AgentConfig {
            node_name: node_name(self.node_name.as_deref())?,
            labels: self
                .node_label
                .iter()
                .map(|l| parse_label(l))
                .collect::<Result<_, _>>()?,
            taints: self
                .node_taint
                .iter()
                .map(|t| parse_taint(t))
                .collect::<Result<_, _>>()?,
            kube_reserved: crate::agent::node::host::parse_reserved(
                "--kube-reserved",
                &self.kube_reserved,
            )?,
            system_reserved: crate::agent::node::host::parse_reserved(
                "--system-reserved",
                &self.system_reserved,
            )?,
            node_ip: self.node_ip.unwrap_or(at.default_ip),
            cgroup_root: {
                // Nor inside some kubepods: pods' cgroups are found by it.
                crate::runtime::container::cgroups::validate_path(&self.cgroup_root)
                    .ok()
                    .filter(|()| !self.cgroup_root.split('/').any(|p| p == "kubepods"))
                    .ok_or_else(|| ConfigError::CgroupRoot(self.cgroup_root.clone()))?;
                self.cgroup_root.trim_matches('/').to_string()
            },
            external_ips: self.node_external_ip.clone(),
            run_dir: at.run_dir,
            pod_log_dir: self.pod_log_dir.clone(),
            registries: self.registries.clone(),
            allowed_unsafe_sysctls: self.allowed_unsafe_sysctls.clone(),
            kubeconfig: at.kubeconfig,
            control_plane: at.control_plane,
            kubelet_port: self.kubelet_port,
            image_gc: self.image_gc()?,
            static_pod_dir: self
                .pod_manifest_path
                .clone()
                .unwrap_or_else(|| at.root.join("agent").join("pod-manifests")),
            root: at.root,
            proxy: !self.disable_kube_proxy,
            nodeport_addresses: self.nodeport_addresses.clone(),
            cluster: crate::cluster::ClusterConfig::default(),
            dns: true,
            resolv_conf: self.resolv_conf.clone(),
        })
    }

    fn image_gc(&self) -> Result<crate::agent::image_gc::Policy, ConfigError> {
        let (high, low) = (self.image_gc_high_threshold, self.image_gc_low_threshold);
        if high > 100 || low >= high {
            return Err(ConfigError::ImageGcThresholds { high, low });
        }
        let duration = |flag: &'static str, s: &String| {
            crate::runtime::container::health::parse_go_duration(s, flag)
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| std::time::Duration::from_nanos(n as u64))
                .ok_or_else(|| ConfigError::Duration(flag, s.clone()))
        };
        let period = duration("--image-gc-period", &self.image_gc_period)?;
        Ok(crate::agent::image_gc::Policy {
            high,
            low,
            min_age: duration(
                "--minimum-image-ttl-duration",
                &self.minimum_image_ttl_duration,
            )?,
            period: period.max(std::time::Duration::from_secs(1)),
        })
    }
}
