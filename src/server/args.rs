//! `skiff server`'s flags, and what the start derives from them alone
//! (the address plan, the kubeconfig's URL, the advertised address).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::apiserver::{self, ConnLimits, InflightLimits};
use super::{controllers, scheduler, DEFAULT_DATA_DIR};
use crate::cluster::ClusterConfig;

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Read flags from this YAML file (keys are flag names); flags given on
    /// the command line win [default: /etc/skiff/config.yaml, when it exists]
    #[arg(long, short = 'c', value_name = "FILE", env = "SKIFF_CONFIG_FILE")]
    pub config: Option<PathBuf>,

    /// Where skiff keeps its state: the server's (database, certificates,
    /// tokens) under <DIR>/server, the engine's (images, containers)
    /// directly under it, the directory the global --root names [default:
    /// the global --root, /var/lib/skiff]
    #[arg(long, value_name = "DIR", env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,

    /// Address the cluster reaches the API server at (the endpoints of the
    /// `kubernetes` Service) [default: the bind address, or when that is
    /// 0.0.0.0 the address of the interface the default route leaves by]
    #[arg(long, value_name = "IP")]
    pub advertise_address: Option<IpAddr>,

    /// Where to write the admin kubeconfig (mode 0600).
    #[arg(long, default_value = "/etc/skiff/skiff.yaml")]
    pub write_kubeconfig: PathBuf,

    /// Extra names or IPs for the serving certificate (repeatable).
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_san: Vec<String>,

    /// API connections held at once, over all clients; more are closed at
    /// once [default: 4096, fewer if the open-file limit leaves less room]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// API connections held at once from one client address [default: 256]
    #[arg(long, value_name = "N")]
    pub max_connections_per_client: Option<usize>,

    /// Reads (GET, HEAD) served at once; more get 429 at once (0: no limit).
    /// Watches, logs, exec and health checks are not counted. Half the
    /// apiserver's 400: a list holds up to a page of objects while it is
    /// encoded, and an edge box has 512 MB (bench/hostile-memory.sh)
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub max_requests_inflight: usize,

    /// Writes (POST, PUT, PATCH, DELETE) served at once; more get 429 at once
    /// (0: no limit). Half the apiserver's 200; the memory their bodies cost
    /// is bounded by the body budget, this bounds the work
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_mutating_requests_inflight: usize,

    /// Request-body bytes held by requests in progress, over all clients; a
    /// request that would pass it gets 429 (0: no limit; at least one
    /// largest body, 3 MiB). See inflight::DEFAULT_BODY_BUDGET for the
    /// measurement behind the default.
    #[arg(long, value_name = "BYTES", hide = true)]
    pub max_request_body_bytes_inflight: Option<usize>,

    /// Seconds a client has to send a request head (the apiserver's 32).
    #[arg(long, value_name = "SECONDS", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_header_timeout: Option<u64>,

    /// Seconds a connection may stay open with no request in progress.
    #[arg(long, value_name = "SECONDS", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_connection_timeout: Option<u64>,

    /// Seconds a client has to send a whole request body.
    #[arg(long, value_name = "SECONDS", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_body_timeout: Option<u64>,

    /// Write an audit log of the API's requests to this file (JSON lines
    /// of audit.k8s.io/v1 Events, mode 0600; `-` for the standard output),
    /// as kube-apiserver's --audit-log-path. Without --audit-policy-file every request is
    /// recorded at Metadata level once answered.
    #[arg(long, value_name = "FILE")]
    pub audit_log_path: Option<PathBuf>,

    /// Which requests the audit log records, and how much: an
    /// audit.k8s.io/v1 Policy file, as kube-apiserver's.
    #[arg(long, value_name = "FILE", requires = "audit_log_path")]
    pub audit_policy_file: Option<PathBuf>,

    /// Rotate the audit log before it passes this many MiB (0: 100, as
    /// upstream's).
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    pub audit_log_maxsize: u64,

    /// Rotated audit logs kept (0: all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub audit_log_maxbackup: usize,

    /// Days a rotated audit log is kept (0: no limit).
    #[arg(long, value_name = "DAYS", default_value_t = 0)]
    pub audit_log_maxage: u64,

    /// Encrypt Secrets at rest (k3s's flag): with one aescbc key, generated
    /// on first use into <data-dir>/server/cred/encryption-config.json
    /// (0600); `skiff secrets-encrypt` shows and rotates it.
    #[arg(long, conflicts_with = "encryption_provider_config")]
    pub secrets_encryption: bool,

    /// Encrypt resources at rest as this EncryptionConfiguration
    /// (apiserver.config.k8s.io/v1, JSON or YAML; providers aescbc, aesgcm,
    /// identity), as kube-apiserver's flag. Reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,

    /// The cluster's token: a secret of your choosing, or a full
    /// `K10…::SECRET` token of a server. It becomes this server's join token
    /// for agents ([default: a random one, kept in <data-dir>/server/token]),
    /// and on a datastore several servers share it seals the cluster's CAs
    /// and keys there: every server of that datastore starts with the same
    /// one.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SKIFF_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Where the cluster's state is kept (k3s's flag): `sqlite://` (the
    /// default: a file in the data directory) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (PostgreSQL; a
    /// unix socket is
    /// `postgres://USER@%2Frun%2Fpostgresql/DATABASE`; one on another
    /// machine is reached over TLS only). The environment keeps a password
    /// out of `ps`.
    #[arg(
        long,
        value_name = "URL",
        env = "SKIFF_DATASTORE_ENDPOINT",
        hide_env_values = true
    )]
    pub datastore_endpoint: Option<String>,

    /// Copy a single server's embedded database into the datastore
    /// --datastore-endpoint names, at the start, when that one is empty
    /// (k3s's migration): `sqlite://` is this data directory's database,
    /// `sqlite:///PATH` another one. A datastore that already holds a
    /// cluster is left alone.
    #[arg(long, value_name = "URL", requires = "datastore_endpoint")]
    pub migrate_from: Option<String>,

    /// The CA that the datastore server's certificate must chain to (else
    /// the system's CAs); giving one also turns TLS on for a server on
    /// this machine.
    #[arg(long, value_name = "FILE")]
    pub datastore_cafile: Option<PathBuf>,

    /// A client certificate for the datastore (with --datastore-keyfile).
    #[arg(long, value_name = "FILE")]
    pub datastore_certfile: Option<PathBuf>,

    /// The key of --datastore-certfile.
    #[arg(long, value_name = "FILE")]
    pub datastore_keyfile: Option<PathBuf>,

    /// Run the control plane only: no agent in this process, so this
    /// machine is not a node of the cluster.
    #[arg(long)]
    pub disable_agent: bool,

    /// No cluster DNS: no `kube-system/kube-dns` Service is made (k3s's
    /// `--disable coredns`); agents then serve no names either.
    #[arg(long)]
    pub disable_cluster_dns: bool,

    /// Do not apply the manifest NAME (<data-dir>/server/manifests/NAME.yaml),
    /// and remove its objects if it was (repeatable; k3s's --disable).
    #[arg(long = "disable", value_name = "NAME")]
    pub disable: Vec<String>,

    /// When to snapshot the datastore and credentials, in cron syntax on
    /// local time (five fields, `@daily`, `@every 6h`; k3s's
    /// --etcd-snapshot-schedule-cron)
    #[arg(
        long,
        value_name = "CRON",
        default_value = "0 */12 * * *",
        value_parser = crate::server::snapshot_schedule::parse
    )]
    pub snapshot_schedule_cron: crate::api::cron::Schedule,

    /// Scheduled snapshots kept; older ones are removed (snapshots saved
    /// by hand are not counted)
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub snapshot_retention: u16,

    /// Where scheduled snapshots go: a directory only its owner can write
    /// in [default: <data-dir>/server/snapshots]
    #[arg(long, value_name = "DIR")]
    pub snapshot_dir: Option<PathBuf>,

    /// No scheduled snapshots (`skiff snapshot save` still works).
    #[arg(long)]
    pub disable_snapshots: bool,

    /// Seconds a server waits for the leader of the controllers and the
    /// scheduler that stopped renewing its Leases (kube-controller-manager's
    /// flag) [default: 60 on the embedded datastore, where each renewal is
    /// a write to this box's storage (see leader.rs); upstream's 15 on a
    /// datastore several servers share]
    #[arg(long, value_name = "SECONDS")]
    pub leader_elect_lease_duration: Option<u64>,

    /// Seconds the leader keeps trying to renew before it gives up
    /// [default: 40 on the embedded datastore, upstream's 10 on a shared
    /// one]
    #[arg(long, value_name = "SECONDS")]
    pub leader_elect_renew_deadline: Option<u64>,

    /// Seconds between the leader's renewals [default: 15 on the embedded
    /// datastore, upstream's 2 on a shared one]
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub leader_elect_retry_period: Option<u64>,

    /// Pod addresses of the whole cluster; each node takes a /24 of it
    /// (k3s's flag). Fixed once the cluster is made.
    #[arg(long, value_name = "CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,

    /// Service ClusterIPs; the `kubernetes` Service takes the first
    /// (k3s's flag). Fixed once the cluster is made.
    #[arg(long, value_name = "CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: String,

    /// The cluster DNS Service's address [default: the tenth address of
    /// --service-cidr, 10.43.0.10]
    #[arg(long, value_name = "IP")]
    pub cluster_dns: Option<std::net::Ipv4Addr>,

    /// The cluster's DNS domain: Services are <name>.<namespace>.svc.<DOMAIN>.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,

    /// Ports NodePort Services take (kube-apiserver's flag). Fixed once the
    /// cluster is made.
    #[arg(long, value_name = "LOW-HIGH", default_value = "30000-32767")]
    pub service_node_port_range: String,

    /// How pods reach the pods of other nodes: vxlan (anywhere the nodes
    /// reach each other over UDP 8472), host-gw (plain routes, the nodes on
    /// one link; fastest) or none. Agents take the server's (k3s's
    /// --flannel-backend).
    #[arg(long, alias = "flannel-backend", value_name = "BACKEND", default_value = "vxlan", value_parser = ["vxlan", "host-gw", "none"])]
    pub pod_network: String,

    /// How the scheduler places pods: spread them over the nodes (as
    /// kube-scheduler's default) or pack them onto as few nodes as
    /// possible, leaving others free.
    #[arg(long, value_enum, default_value_t = scheduler::Policy::Spread)]
    pub scheduler_policy: scheduler::Policy,

    /// How long a node may stay silent (no Lease renewed, no status
    /// posted) before it is marked Unknown and tainted unreachable.
    #[arg(long, value_name = "DURATION", default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,

    /// How long the certificates joining nodes get are valid; agents renew
    /// theirs with a third left (hidden: for tests of renewal).
    #[arg(long, value_name = "DURATION", default_value = "8760h", value_parser = parse_duration, hide = true)]
    pub node_certificate_lifetime: Duration,

    /// How long pods tolerate a node that is not ready, unless they say
    /// otherwise, before they are evicted from it.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,

    /// How long pods tolerate a node that is unreachable, unless they say
    /// otherwise, before they are evicted from it.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,

    /// Nodes per second, at most, whose pods are evicted when nodes fail
    /// (a tenth of it when most of a zone fails; none when all of it does).
    #[arg(long, value_name = "NODES_PER_SECOND", default_value_t = 0.1)]
    pub node_eviction_rate: f64,

    /// Finished (Succeeded or Failed) pods kept at most; beyond it the
    /// oldest are deleted. 0 keeps them all.
    #[arg(long, value_name = "COUNT", default_value_t = controllers::podgc::TERMINATED_THRESHOLD)]
    pub terminated_pod_gc_threshold: usize,

    /// How often each HorizontalPodAutoscaler looks at its metrics.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: Duration,

    /// How long an autoscaler without its own `behavior` remembers higher
    /// recommendations before it scales in.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_downscale_stabilization: Duration,

    /// How close to its target a metric may be (as a fraction) before an
    /// autoscaler acts.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,

    #[command(flatten)]
    pub agent: crate::agent::config::AgentArgs,

    /// The engine's run directory (the global --run-dir).
    #[arg(skip)]
    pub run_dir: Option<PathBuf>,
}

impl ServerArgs {
    /// The leader election's periods, if they nest: those given, else
    /// the defaults for the datastore (`shared`: several servers on it,
    /// where failing over quickly is the point and renewals cost this box's
    /// storage nothing).
    pub fn leader_timing(&self, shared: bool) -> Result<super::leader::Timing, String> {
        let (lease, renew, retry) = if shared { (15, 10, 2) } else { (60, 40, 15) };
        super::leader::Timing::new(
            self.leader_elect_lease_duration.unwrap_or(lease),
            self.leader_elect_renew_deadline.unwrap_or(renew),
            self.leader_elect_retry_period.unwrap_or(retry),
        )
    }

    /// The data dir: `--data-dir` when given, else the global `--root`, so
    /// that `skiff --root DIR server` and `skiff server --data-dir DIR` both
    /// mean DIR (the default of both is /var/lib/skiff).
    pub fn resolve_data_dir(&mut self, root: &Path) {
        if self.data_dir.is_none() {
            self.data_dir = Some(root.to_path_buf());
        }
    }

    pub(super) fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    pub(super) fn conn_limits(&self, fd_limit: u64) -> ConnLimits {
        let mut limits = ConnLimits::with_fd_limit(fd_limit);
        let secs = Duration::from_secs;
        if let Some(n) = self.max_connections {
            limits.max_connections = n.max(1);
        }
        if let Some(n) = self.max_connections_per_client {
            limits.max_per_client = n.max(1);
        }
        if let Some(s) = self.request_header_timeout {
            limits.header = secs(s);
        }
        if let Some(s) = self.idle_connection_timeout {
            limits.idle = secs(s);
        }
        if let Some(s) = self.request_body_timeout {
            limits.body = secs(s);
        }
        limits
    }

    pub(super) fn inflight_limits(&self) -> InflightLimits {
        let body = self
            .max_request_body_bytes_inflight
            .unwrap_or(apiserver::inflight::DEFAULT_BODY_BUDGET);
        InflightLimits {
            read_only: self.max_requests_inflight,
            mutating: self.max_mutating_requests_inflight,
            // A budget below one largest body would refuse that body forever.
            body_bytes: if body == 0 {
                0
            } else {
                body.max(apiserver::negotiate::MAX_BODY_BYTES)
            },
        }
    }
}

pub(super) fn kubeconfig_url(args: &ServerArgs) -> String {
    let host = match args.bind_address {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_loopback() => "127.0.0.1".to_string(),
        IpAddr::V6(v6) if v6.is_unspecified() || v6.is_loopback() => "[::1]".to_string(),
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    format!("https://{host}:{}", args.https_listen_port)
}

/// The cluster's address plan from the flags, checked.
pub(super) fn cluster_plan(args: &ServerArgs) -> anyhow::Result<ClusterConfig> {
    let mut plan = ClusterConfig::new(
        &args.cluster_cidr,
        &args.service_cidr,
        args.cluster_dns,
        &args.cluster_domain,
        &args.service_node_port_range,
        // The value parser admits only names the overlay knows, and none.
        args.pod_network.parse().ok(),
    )?;
    plan.dns = !args.disable_cluster_dns;
    Ok(plan)
}

/// The address the `kubernetes` Service's endpoints name.
pub(super) fn advertise_address(args: &ServerArgs) -> IpAddr {
    if let Some(ip) = args.advertise_address {
        return ip;
    }
    if !args.bind_address.is_unspecified() {
        return args.bind_address;
    }
    // The source address the kernel picks for a route off the box: a UDP
    // socket's connect only looks the route up, nothing is sent.
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => {
            tracing::warn!("no default route: advertising 127.0.0.1 (set --advertise-address)");
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

/// A duration as Go writes them (`40s`, `1m30s`) or whole seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let secs = match s.parse::<u64>() {
        Ok(n) => n as f64,
        Err(_) => crate::api::duration::parse_go(s)
            .ok_or_else(|| format!("invalid duration {s:?}: use e.g. 40s or 2m"))?,
    };
    if secs <= 0.0 {
        return Err(format!("invalid duration {s:?}: it must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}
