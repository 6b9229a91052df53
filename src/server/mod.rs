//! The control plane: store, API server, PKI, and (later) controllers and the
//! scheduler, wired together by [`run`] — the one wiring place: it opens the
//! store and the PKI, writes the bootstrap objects through the loopback
//! client, and starts the [`components::Components`].

pub mod apiserver;
pub mod bootstrap;
pub mod bootstrap_policy;
pub mod components;
pub mod controllers;
pub mod join;
pub mod leader;
pub mod local_agent;
pub mod pki;
pub mod scheduler;
pub mod store;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use self::apiserver::auth::{self, Authenticator};
use self::apiserver::loopback;
use self::apiserver::object_store::Objects;
use self::apiserver::registry::Registry;
use self::apiserver::{ApiState, ConnLimits, Inflight, InflightLimits};
use self::components::Components;
use self::store::sqlite::SqliteBackend;
use crate::cluster::ClusterConfig;
use crate::lockfile;

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

    /// Run the control plane only: no agent in this process, so this
    /// machine is not a node of the cluster.
    #[arg(long)]
    pub disable_agent: bool,

    /// No cluster DNS: no `kube-system/kube-dns` Service is made (k3s's
    /// `--disable coredns`); agents then serve no names either.
    #[arg(long)]
    pub disable_cluster_dns: bool,

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
    /// The data dir: `--data-dir` when given, else the global `--root`, so
    /// that `skiff --root DIR server` and `skiff server --data-dir DIR` both
    /// mean DIR (the default of both is /var/lib/skiff).
    pub fn resolve_data_dir(&mut self, root: &Path) {
        if self.data_dir.is_none() {
            self.data_dir = Some(root.to_path_buf());
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    fn conn_limits(&self, fd_limit: u64) -> ConnLimits {
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

    fn inflight_limits(&self) -> InflightLimits {
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

/// Raise the soft open-file limit to the hard one (never above it: root may
/// lack CAP_SYS_RESOURCE). Returns the soft limit in force afterwards.
pub(crate) fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft >= hard {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            tracing::debug!(from = soft, to = hard, "raised the open-file limit");
            hard
        }
        Err(e) => {
            tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
            soft
        }
    }
}

/// Hold `<data-dir>/server/lock` for the server's lifetime: two servers on
/// one store would each answer from their own view of it.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<lockfile::Guard> {
    // The server's directory holds the CA key and every Secret: 0700 and
    // ours, also when it existed before with a looser mode.
    let dir = data_dir.join("server");
    crate::runtime::private::ensure_dir(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("lock");
    lockfile::try_exclusive_with_pid(&path).map_err(|e| match e {
        lockfile::TryLockError::Held { pid } => anyhow::anyhow!(
            "the data dir {} is in use by another skiff server{}: stop it, or give this \
             server its own --data-dir",
            data_dir.display(),
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ),
        lockfile::TryLockError::Io(e) => {
            anyhow::Error::new(e).context(format!("locking {}", path.display()))
        }
    })
}

pub fn run_blocking(args: ServerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

/// Where the server keeps its files under `--data-dir`.
pub struct ServerPaths {
    pub db: PathBuf,
    pub tls: PathBuf,
    pub token: PathBuf,
    pub tokens_csv: PathBuf,
    pub encryption_config: PathBuf,
}

impl ServerPaths {
    pub fn new(data_dir: &Path) -> Self {
        let server = data_dir.join("server");
        ServerPaths {
            db: server.join("db").join("state.db"),
            tls: server.join("tls"),
            token: server.join("token"),
            tokens_csv: server.join("cred").join("tokens.csv"),
            encryption_config: server.join("cred").join("encryption-config.json"),
        }
    }
}

/// The data dir (and the engine's --root) when neither flag is given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/skiff";

/// How often old revisions are compacted, and how many are kept for watches
/// that resume (the apiserver compacts every 5 minutes too).
const COMPACT_EVERY: Duration = Duration::from_secs(300);
const COMPACT_KEEP: i64 = 10_000;

fn kubeconfig_url(args: &ServerArgs) -> String {
    let host = match args.bind_address {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_loopback() => "127.0.0.1".to_string(),
        IpAddr::V6(v6) if v6.is_unspecified() || v6.is_loopback() => "[::1]".to_string(),
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    format!("https://{host}:{}", args.https_listen_port)
}

/// The cluster's address plan from the flags, checked.
fn cluster_plan(args: &ServerArgs) -> anyhow::Result<ClusterConfig> {
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
fn advertise_address(args: &ServerArgs) -> IpAddr {
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

/// Wait until this server leads; false when stopped first.
/// What every controller is started with: the API, the shared informers,
/// and whether this server leads.
struct Control {
    state: Arc<ApiState>,
    informers: Arc<controllers::runtime::Informers>,
    leading: tokio::sync::watch::Receiver<bool>,
}

impl Control {
    /// Start controller `name`, writing as `user`, once this server leads.
    fn spawn<F, Fut>(
        &self,
        components: &mut components::Components,
        name: &'static str,
        user: &str,
        agent: &'static str,
        run: F,
    ) where
        F: FnOnce(
                kube::Client,
                Arc<controllers::runtime::Informers>,
                tokio_util::sync::CancellationToken,
            ) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let client = loopback::client(self.state.clone(), auth::component(user), agent);
        let (shared, leading) = (self.informers.clone(), self.leading.clone());
        components.spawn(name, move |life| async move {
            life.ready();
            if lead(leading, &life.cancel).await {
                run(client, shared, life.cancel).await;
            }
            Ok(())
        });
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

async fn lead(
    mut leading: tokio::sync::watch::Receiver<bool>,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        r = leading.wait_for(|l| *l) => r.is_ok(),
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    apiserver::recover::install_panic_policy();
    let fd_limit = raise_fd_limit();
    // Before anything is read or written: one server per data dir, and a
    // port that is taken fails the start before the store is opened.
    let data_dir = args.data_dir();
    let _data_lock = lock_data_dir(&data_dir)?;
    let addr = SocketAddr::new(args.bind_address, args.https_listen_port);
    let advertised_ip = advertise_address(&args);
    let plan = cluster_plan(&args)?;
    // Bad agent flags fail the start before anything is made.
    let agent = if args.disable_agent {
        None
    } else {
        Some(
            args.agent
                .to_config(crate::agent::config::Placement {
                    root: data_dir.clone(),
                    run_dir: args
                        .run_dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("/run/skiff")),
                    kubeconfig: data_dir.join("agent").join("kubelet.kubeconfig"),
                    default_ip: advertised_ip,
                    control_plane: true,
                })
                .map(|mut c| {
                    c.dns = plan.dns;
                    c.cluster = plan.clone();
                    c
                })?,
        )
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let paths = ServerPaths::new(&data_dir);
    let db_path = paths.db.clone();
    // The certificates (made on a fresh data dir: a CA and two key pairs)
    // are independent of the store and of bootstrap, which needs only the
    // store: overlap them.
    // The pods' bridge, where pods reach the API on a node with no other
    // address (agent::service_env): the default's is always named, one set
    // up with another --node-cidr too.
    let mut extra_sans = args.tls_san.clone();
    if let Some(cidr) = crate::net::host::recorded_cidr(&data_dir) {
        extra_sans.push(cidr.gateway().to_string());
    }
    let pki_opts = pki::PkiOptions {
        tls_dir: paths.tls.clone(),
        extra_sans,
        cluster: plan.clone(),
    };
    let token_path = paths.token.clone();
    // On a data directory made before, the certificates wait for the plan
    // to be checked against the stored one (below): a refused start
    // changes nothing. A fresh one has nothing to check them against.
    let fresh = !paths.db.exists();
    let (plan_checked, plan_gate) = std::sync::mpsc::channel::<()>();
    let pki = tokio::task::spawn_blocking(move || {
        if !fresh && plan_gate.recv().is_err() {
            anyhow::bail!("the cluster's address plan was refused");
        }
        let pki = pki::load_or_init(&pki_opts).with_context(|| {
            format!("setting up certificates in {}", pki_opts.tls_dir.display())
        })?;
        let token = pki::load_or_create_join_token(&token_path, pki.ca_cert_pem())
            .with_context(|| format!("writing the join token {}", token_path.display()))?;
        let tls = pki.server_tls_config()?;
        anyhow::Ok((Arc::new(pki), tls, token))
    });
    let tokens_csv = paths.tokens_csv.clone();
    let tls_dir = paths.tls.clone();
    let tokens = tokio::task::spawn_blocking(move || {
        let tokens = pki::load_or_create_token_file(&tokens_csv)
            .with_context(|| format!("reading bearer tokens {}", tokens_csv.display()))?;
        let sa_key = pki::ServiceAccountKey::load_or_create(&tls_dir).with_context(|| {
            format!(
                "setting up the service-account signing key in {}",
                tls_dir.display()
            )
        })?;
        anyhow::Ok((tokens, sa_key))
    });
    // A new data dir: bootstrap's creates will need the wire schema, which
    // can be built while the new database is made (that waits on fsync).
    if !db_path.exists() {
        tokio::task::spawn_blocking(crate::api::protobuf::prepare);
    }
    let store = tokio::task::spawn_blocking(move || SqliteBackend::open(&db_path))
        .await
        .context("opening the database")?
        .with_context(|| format!("opening the database {}", paths.db.display()))?;
    // Before anything takes an address, or the certificates are touched.
    let ranges = apiserver::kinds::alloc::Ranges::new(&plan);
    apiserver::kinds::plan::settle(&Objects::new(store.clone()).with_ranges(ranges), &plan)
        .await
        .context("checking the cluster's address plan")?;
    let _ = plan_checked.send(());
    let (tokens, sa_key) = tokens.await.context("reading bearer tokens")??;
    let encryption = store::encrypt::manage::Manager::setup(
        &store::encrypt::manage::Options {
            secrets_encryption: args.secrets_encryption,
            provider_config: args.encryption_provider_config.clone(),
            generated: paths.encryption_config.clone(),
        },
        store.clone(),
    )
    .await
    .context("setting up secrets encryption")?;

    let inflight = args.inflight_limits();
    tracing::info!(
        max_requests_inflight = inflight.read_only,
        max_mutating_requests_inflight = inflight.mutating,
        max_request_body_bytes_inflight = inflight.body_bytes,
        "API request limits"
    );
    let audit = audit_log(&args)?;
    let rbac = apiserver::rbac::Rbac::default();
    let registry = Registry::builtin();
    let webhooks = apiserver::webhook::Webhooks::default();
    let backend = match &encryption {
        Some(e) => e.backend(),
        None => store.clone(),
    };
    let objects = Objects::new(backend)
        .with_ranges(ranges)
        .followed_by(rbac.follower())
        .followed_by(registry.custom.follower.clone())
        .followed_by(webhooks.follower());
    let state = Arc::new(ApiState {
        registry,
        objects,
        auth: Authenticator {
            tokens,
            service_accounts: apiserver::serviceaccount::Tokens::new(sa_key),
        },
        inflight: Inflight::new(&inflight),
        ready: Default::default(),
        usage_writes: Default::default(),
        gc: Default::default(),
        openapi: Default::default(),
        kubelet: Default::default(),
        metrics: Default::default(),
        tolerations: apiserver::admission::default_tolerations::Seconds {
            not_ready: args.default_not_ready_toleration_seconds,
            unreachable: args.default_unreachable_toleration_seconds,
        },
        rbac,
        audit,
        webhooks,
        encryption: encryption.clone(),
        join: Default::default(),
        tunnels: Default::default(),
        control_plane_node: Default::default(),
    });
    if let Some(a) = &agent {
        let _ = state.control_plane_node.set(a.node_name.clone());
    }
    // Requests, bootstrap's included, are authorized on the policy.
    apiserver::rbac::start(&state)
        .await
        .context("loading the RBAC policy")?;
    // Custom resources are served from the first request on.
    apiserver::crd::follow::start(&state)
        .await
        .context("loading the CustomResourceDefinitions")?;
    // Writes go through the admission webhooks from the first request on.
    apiserver::webhook::start(&state)
        .await
        .context("loading the admission webhook configurations")?;
    let cluster = plan.clone();
    let bootstrap_client = loopback::client(
        state.clone(),
        auth::component(auth::BOOTSTRAP_USER),
        bootstrap::AGENT,
    );
    // The allocation repair's first pass runs before the API takes
    // requests, beside bootstrap (see bootstrap::run).
    let repair = apiserver::kinds::repair::at_start(&state.objects);
    let advertised = SocketAddr::new(advertised_ip, args.https_listen_port);
    bootstrap::run(bootstrap_client, &cluster, advertised, repair)
        .await
        .context("creating the system namespaces and the kubernetes Service")?;
    let (pki, tls, join_token) = pki.await.context("setting up certificates")??;
    let _ = state.join.set(Arc::new(crate::server::join::Joiner::new(
        pki.clone(),
        &join_token,
        loopback::client(
            state.clone(),
            auth::component(auth::NODE_JOIN_USER),
            "skiff-node-join",
        ),
        args.node_certificate_lifetime,
        plan.clone(),
    )));
    drop(join_token);
    let _ = state.webhooks.cluster_ca.set(pki.ca_cert_pem().to_string());
    match pki.kubelet_client_config() {
        Ok(tls) => {
            let _ = state.kubelet.set(apiserver::kubelet_proxy::KubeletClient {
                tls,
                tunnels: state.tunnels.clone(),
            });
        }
        Err(e) => tracing::warn!("pods' logs, exec and port-forward are off: {e}"),
    }

    pki.write_kubeconfig(&args.write_kubeconfig, &kubeconfig_url(&args))
        .with_context(|| format!("writing kubeconfig {}", args.write_kubeconfig.display()))?;
    tracing::info!(
        %addr,
        kubeconfig = %args.write_kubeconfig.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "skiff server is ready"
    );

    // Stopped in the reverse order: the listener first, then the store's
    // users; then the store's writer finishes its group so nothing
    // acknowledged is lost.
    let mut components = Components::reporting_to(state.ready.components.clone());
    let compacting = store.clone();
    components.spawn("store compactor", move |life| async move {
        let task = compacting.spawn_compactor(COMPACT_EVERY, COMPACT_KEEP);
        life.ready();
        life.cancel.cancelled().await;
        task.abort();
        Ok(())
    });
    if let Some(encryption) = encryption {
        components.spawn("encryption config", move |life| async move {
            life.ready();
            encryption.watch_file(life.cancel).await;
            Ok(())
        });
    }
    let namespaces = controllers::namespace::Ctx {
        client: loopback::client(
            state.clone(),
            auth::component(auth::NAMESPACE_CONTROLLER_USER),
            controllers::namespace::AGENT,
        ),
        api: state.clone(),
    };
    components.spawn("namespace controller", move |life| async move {
        life.ready();
        controllers::namespace::run(namespaces, life.cancel).await;
        Ok(())
    });
    let crds = state.clone();
    components.spawn("CRD controller", move |life| async move {
        life.ready();
        apiserver::crd::controller::run(crds, life.cancel).await;
        Ok(())
    });
    let collector = controllers::garbage::Ctx::new(
        loopback::client(
            state.clone(),
            auth::component(auth::GARBAGE_COLLECTOR_USER),
            controllers::garbage::AGENT,
        ),
        state.clone(),
    );
    let collecting = state.clone();
    components.spawn("garbage collector", move |life| async move {
        life.ready();
        controllers::garbage::run(collector, collecting, life.cancel).await;
        Ok(())
    });
    // A `default` ServiceAccount and the cluster CA in every namespace.
    let accounts = controllers::per_namespace::Ctx {
        client: loopback::client(
            state.clone(),
            auth::component(auth::SERVICE_ACCOUNT_CONTROLLER_USER),
            controllers::serviceaccounts::AGENT,
        ),
        kept: controllers::serviceaccounts::kept(),
    };
    components.spawn("service account controller", move |life| async move {
        life.ready();
        controllers::per_namespace::run(accounts, life.cancel).await;
        Ok(())
    });
    let root_ca = controllers::per_namespace::Ctx {
        client: loopback::client(
            state.clone(),
            auth::component(auth::ROOT_CA_PUBLISHER_USER),
            controllers::root_ca::AGENT,
        ),
        kept: controllers::root_ca::kept(pki.ca_cert_pem().to_string()),
    };
    components.spawn("root CA publisher", move |life| async move {
        life.ready();
        controllers::per_namespace::run(root_ca, life.cancel).await;
        Ok(())
    });
    let counting = state.clone();
    components.spawn("quota recount", move |life| async move {
        life.ready();
        apiserver::admission::quota::run_recount(&counting, life.cancel).await;
        Ok(())
    });
    let repairing = state.clone();
    components.spawn("allocation repair", move |life| async move {
        life.ready();
        let s = &repairing;
        apiserver::kinds::repair::run(&s.objects, life.cancel).await;
        Ok(())
    });
    // One watch per kind for the scheduler and the controllers, stopped
    // after them (components stop in the reverse order of their start).
    let informers_stop = tokio_util::sync::CancellationToken::new();
    let informers = Arc::new(controllers::runtime::Informers::new(
        loopback::client(
            state.clone(),
            auth::component(auth::INFORMERS_USER),
            "skiff-informers",
        ),
        informers_stop.clone(),
    ));
    components.spawn("shared informers", move |life| async move {
        life.ready();
        life.cancel.cancelled().await;
        informers_stop.cancel();
        Ok(())
    });
    // The controllers and the scheduler act only while this server leads.
    let (leading_tx, leading) = tokio::sync::watch::channel(false);
    let electing = loopback::client(
        state.clone(),
        auth::component(auth::LEADER_ELECTION_USER),
        leader::AGENT,
    );
    let me = leader::identity(&data_dir);
    components.spawn("leader election", move |life| async move {
        life.ready();
        leader::run(electing, me, leading_tx, life.cancel)
            .await
            .context("leader election")
    });
    let scheduler = scheduler::Scheduler::new(
        loopback::client(
            state.clone(),
            auth::component(auth::SCHEDULER_USER),
            scheduler::AGENT,
        ),
        &informers,
        args.scheduler_policy,
    );
    let l = leading.clone();
    components.spawn("scheduler", move |life| async move {
        scheduler.synced().await;
        life.ready();
        if lead(l, &life.cancel).await {
            scheduler.run(life.cancel).await;
        }
        Ok(())
    });
    let control = Control {
        state: state.clone(),
        informers: informers.clone(),
        leading: leading.clone(),
    };
    control.spawn(
        &mut components,
        "replicaset controller",
        auth::REPLICASET_CONTROLLER_USER,
        controllers::replicaset::AGENT,
        |client, shared, cancel| async move {
            controllers::replicaset::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        &mut components,
        "deployment controller",
        auth::DEPLOYMENT_CONTROLLER_USER,
        controllers::deployment::AGENT,
        |client, shared, cancel| async move {
            controllers::deployment::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        &mut components,
        "job controller",
        auth::JOB_CONTROLLER_USER,
        controllers::job::AGENT,
        |client, shared, cancel| async move { controllers::job::run(client, &shared, cancel).await },
    );
    control.spawn(
        &mut components,
        "cronjob controller",
        auth::CRONJOB_CONTROLLER_USER,
        controllers::cronjob::AGENT,
        |client, shared, cancel| async move {
            controllers::cronjob::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        &mut components,
        "daemonset controller",
        auth::DAEMONSET_CONTROLLER_USER,
        controllers::daemonset::AGENT,
        |client, shared, cancel| async move {
            controllers::daemonset::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        &mut components,
        "statefulset controller",
        auth::STATEFULSET_CONTROLLER_USER,
        controllers::statefulset::AGENT,
        |client, shared, cancel| async move {
            controllers::statefulset::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        &mut components,
        "disruption controller",
        auth::DISRUPTION_CONTROLLER_USER,
        controllers::disruption::AGENT,
        |client, shared, cancel| async move {
            controllers::disruption::run(client, &shared, cancel).await
        },
    );
    let node_config = controllers::nodelifecycle::Config {
        grace: args.node_monitor_grace_period,
        eviction_rate: args.node_eviction_rate,
    };
    control.spawn(
        &mut components,
        "node lifecycle controller",
        auth::NODE_CONTROLLER_USER,
        controllers::nodelifecycle::AGENT,
        move |client, shared, cancel| async move {
            controllers::nodelifecycle::run(client, &shared, cancel, node_config).await
        },
    );
    control.spawn(
        &mut components,
        "clusterrole aggregation controller",
        auth::ROLE_AGGREGATION_USER,
        controllers::clusterrole_aggregation::AGENT,
        |client, shared, cancel| async move {
            controllers::clusterrole_aggregation::run(client, &shared, cancel).await
        },
    );
    // Ports of skiff's own on every node, which no load balancer takes.
    let mut reserved: Vec<controllers::servicelb::Reserved> = vec![(
        "TCP".into(),
        i32::from(args.https_listen_port),
        "the API server".into(),
    )];
    if !args.disable_cluster_dns {
        for proto in ["UDP", "TCP"] {
            reserved.push((proto.into(), 53, "the cluster DNS".into()));
        }
    }
    control.spawn(
        &mut components,
        "service load balancer controller",
        auth::SERVICE_LB_USER,
        controllers::servicelb::AGENT,
        move |client, shared, cancel| async move {
            controllers::servicelb::run(client, &shared, cancel, reserved).await
        },
    );
    if !args.disable_cluster_dns {
        let cluster = cluster.clone();
        control.spawn(
            &mut components,
            "cluster DNS controller",
            auth::CLUSTER_DNS_USER,
            controllers::cluster_dns::AGENT,
            move |client, shared, cancel| async move {
                controllers::cluster_dns::run(client, &shared, cancel, cluster).await
            },
        );
    }
    let podgc_config = controllers::podgc::Config {
        quarantine: controllers::podgc::QUARANTINE,
        terminated_threshold: args.terminated_pod_gc_threshold,
    };
    control.spawn(
        &mut components,
        "pod garbage collector",
        auth::POD_GC_USER,
        controllers::podgc::AGENT,
        move |client, shared, cancel| async move {
            controllers::podgc::run(client, &shared, cancel, podgc_config).await
        },
    );
    control.spawn(
        &mut components,
        "endpoint controller",
        auth::ENDPOINT_CONTROLLER_USER,
        controllers::endpoints::AGENT,
        |client, shared, cancel| async move {
            controllers::endpoints::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        &mut components,
        "replication controller",
        auth::REPLICATION_CONTROLLER_USER,
        controllers::replicaset::AGENT,
        |client, shared, cancel| async move {
            controllers::replicaset::run_replication_controllers(client, &shared, cancel).await
        },
    );
    control.spawn(
        &mut components,
        "ttl-after-finished controller",
        auth::TTL_AFTER_FINISHED_USER,
        controllers::ttl_after_finished::AGENT,
        |client, shared, cancel| async move {
            controllers::ttl_after_finished::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        &mut components,
        "token cleaner",
        auth::TOKEN_CLEANER_USER,
        controllers::token_cleaner::AGENT,
        |client, _, cancel| async move { controllers::token_cleaner::run(client, cancel).await },
    );
    control.spawn(
        &mut components,
        "node password cleaner",
        auth::NODE_PASSWORD_USER,
        controllers::node_password::AGENT,
        |client, shared, cancel| async move {
            controllers::node_password::run(client, &shared, cancel).await
        },
    );
    let hpa_config = controllers::hpa::Config {
        sync_period: args.horizontal_pod_autoscaler_sync_period,
        down_window: args.horizontal_pod_autoscaler_downscale_stabilization,
        tuning: controllers::hpa::replicas::Tuning {
            tolerance: args.horizontal_pod_autoscaler_tolerance,
            ..Default::default()
        },
    };
    control.spawn(
        &mut components,
        "horizontal pod autoscaler",
        auth::HPA_CONTROLLER_USER,
        controllers::hpa::AGENT,
        move |client, shared, cancel| async move {
            controllers::hpa::run(client, &shared, cancel, hpa_config).await
        },
    );
    let limits = args.conn_limits(fd_limit);
    let serving = state.clone();
    components.spawn("API listener", move |life| async move {
        life.ready();
        tokio::select! {
            r = apiserver::serve(listener, tls, serving, limits) => r,
            _ = life.cancel.cancelled() => Ok(()),
        }
    });
    if let Some(config) = agent {
        // The agent is a client like a remote one: its own certificate,
        // over TLS to the listener above. /readyz is the API's and does not
        // wait for the node.
        let url = kubeconfig_url(&args);
        components.spawn("agent", move |life| async move {
            life.ready();
            local_agent::run(pki, url, config, life.cancel.clone()).await
        });
    }
    let result = components.run_until(shutdown_signal()).await;
    store.close().await;
    result
}

/// The audit log the flags ask for, if any; a policy that does not parse
/// stops the start, naming the problem.
fn audit_log(args: &ServerArgs) -> anyhow::Result<Option<Arc<apiserver::audit::Auditor>>> {
    use apiserver::audit::{policy::Policy, sink, Auditor};
    let Some(path) = &args.audit_log_path else {
        return Ok(None);
    };
    let policy = match &args.audit_policy_file {
        Some(file) => Policy::load(file)?,
        None => Policy::default_metadata(),
    };
    let rotation = sink::Rotation {
        max_bytes: match args.audit_log_maxsize {
            0 => 100 << 20,
            mib => mib.saturating_mul(1 << 20),
        },
        max_backups: args.audit_log_maxbackup,
        max_age: (args.audit_log_maxage > 0)
            .then(|| std::time::Duration::from_secs(args.audit_log_maxage.saturating_mul(86_400))),
    };
    let sink = sink::Sink::open(path, rotation)
        .with_context(|| format!("opening the audit log {}", path.display()))?;
    tracing::info!(path = %path.display(), "writing the audit log");
    Ok(Some(Arc::new(Auditor::new(policy, sink))))
}

pub(crate) async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            // Without signal handlers the server can still be killed; wait forever.
            std::future::pending::<()>().await;
            return "none";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
