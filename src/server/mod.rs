//! The control plane: store, API server, PKI, controllers and the
//! scheduler, wired together by [`run`] — the one wiring place: it opens the
//! store and the PKI, writes the bootstrap objects through the loopback
//! client, and starts the [`components::Components`] (the controllers'
//! share in `control_plane.rs`, the flags in `args.rs`).

pub mod apiserver;
pub mod args;
pub mod bootstrap;
pub mod bootstrap_policy;
pub mod components;
mod control_plane;
pub mod controllers;
mod credentials;
pub mod join;
pub mod leader;
pub mod local_agent;
pub mod peers;
pub mod pki;
pub mod scheduler;
pub mod snapshot;
pub mod snapshot_schedule;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use tokio::net::TcpListener;

use self::apiserver::auth::{self, Authenticator};
use self::apiserver::loopback;
use self::apiserver::object_store::Objects;
use self::apiserver::registry::Registry;
use self::apiserver::{ApiState, Inflight};
pub use self::args::ServerArgs;
use self::args::{advertise_address, cluster_plan, kubeconfig_url};
use self::components::Components;
use crate::lockfile;

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
#[derive(Clone)]
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

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    apiserver::recover::install_panic_policy();
    let fd_limit = raise_fd_limit();
    // Before anything is read or written: one server per data dir, and a
    // port that is taken fails the start before the store is opened.
    let data_dir = args.data_dir();
    let _data_lock = lock_data_dir(&data_dir)?;
    if snapshot::incomplete_marker(&data_dir).exists() {
        anyhow::bail!(
            "a snapshot restore into {} did not finish: run `skiff snapshot restore` again (after moving {} away), or start on another data directory",
            data_dir.display(),
            data_dir.join("server/db").display()
        );
    }
    let leader_timing = args
        .leader_timing(store::datastore::Datastore::shareable(
            args.datastore_endpoint.as_deref(),
        ))
        .map_err(anyhow::Error::msg)?;
    if let (false, Some(dir)) = (args.disable_snapshots, &args.snapshot_dir) {
        snapshot::user_dir(dir).context("--snapshot-dir")?;
    }
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
    let init_opts = pki_opts.clone();
    // On a data directory made before, the certificates wait for the plan
    // to be checked against the stored one (below): a refused start
    // changes nothing. A fresh one has nothing to check them against.
    let fresh = !paths.db.exists();
    let (plan_checked, plan_gate) = std::sync::mpsc::channel::<()>();
    // The full token given (`K10<CA hash>::secret`) names the cluster's CA.
    let given_ca_hash = args
        .token
        .as_deref()
        .and_then(pki::parse_join_token)
        .map(|(hash, _)| hash.to_string());
    let want_ca = given_ca_hash.clone();
    let start_pki = {
        let paths = paths.clone();
        let gate = (!fresh).then_some(plan_gate);
        move || credentials::load(pki_opts, paths, gate, given_ca_hash)
    };
    // A new data dir: bootstrap's creates will need the wire schema, which
    // can be built while the new database is made (that waits on fsync).
    if !db_path.exists() {
        tokio::task::spawn_blocking(crate::api::protobuf::prepare);
    }
    // A datastore other servers may share holds the cluster's CAs and keys
    // (pki::shared): they are settled before anything here is loaded. The
    // embedded one is this server's alone, and its files load beside the
    // opening of the database.
    let shared = store::datastore::Datastore::shareable(args.datastore_endpoint.as_deref());
    let secret = match (shared, &args.token) {
        (false, None) => None,
        _ => Some(
            pki::cluster_secret(&paths.token, args.token.as_deref())
                .context("the cluster's token")?,
        ),
    };
    // Ok: started now; Err: to start once the shared files are settled.
    let pki_stage = match (shared, &secret) {
        (true, Some(secret)) => Err((start_pki, secret.clone())),
        (_, secret) => {
            // The embedded datastore's: the token file takes it now.
            if let Some((secret, true)) = secret {
                pki::keep_cluster_secret(&paths.token, secret)
                    .context("keeping the cluster's token")?;
            }
            Ok(start_pki())
        }
    };
    let datastore_tls = store::postgres::TlsFiles {
        ca_file: args.datastore_cafile.clone(),
        cert_file: args.datastore_certfile.clone(),
        key_file: args.datastore_keyfile.clone(),
    };
    let datastore = store::datastore::Datastore::open(
        args.datastore_endpoint.as_deref(),
        &datastore_tls,
        &db_path,
    )
    .await
    .with_context(|| match &args.datastore_endpoint {
        Some(_) => "opening the datastore".to_string(),
        None => format!("opening the database {}", paths.db.display()),
    })?;
    let store = datastore.backend();
    // A single server's cluster moved into the new datastore, before its
    // keys are settled there (they are this data directory's).
    if let Some(from) = &args.migrate_from {
        if !shared {
            anyhow::bail!(
                "--migrate-from copies into another datastore: give --datastore-endpoint postgres://…"
            );
        }
        let source = store::migrate::source_path(from, &paths.db)?;
        match store::migrate::from_sqlite(&source, &store)
            .await
            .with_context(|| format!("migrating {}", source.display()))?
        {
            store::migrate::Migrated::Copied(n) => {
                tracing::info!(keys = n, from = %source.display(), "migrated the cluster into the datastore")
            }
            store::migrate::Migrated::TargetInUse => {
                tracing::info!("not migrating: the datastore already holds a cluster")
            }
        }
    }
    let shared_files = pki::shared::files(&paths.tls, &paths.tokens_csv, &paths.encryption_config);
    let (pki, tokens) = match pki_stage {
        Ok(started) => started,
        Err((start_pki, secret)) => {
            let settle = credentials::Shared {
                store: &store,
                secret,
                want_ca,
                files: &shared_files,
                make_encryption_key: args.secrets_encryption
                    && args.encryption_provider_config.is_none(),
            };
            credentials::settle_shared(settle, init_opts, paths.clone()).await?;
            start_pki()
        }
    };
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
            shared,
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
    bootstrap::run(bootstrap_client, &cluster, advertised, shared, repair)
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
    tracing::info!(
        "kubectl: export KUBECONFIG={} (or: skiff kubeconfig > ~/.kube/config)",
        args.write_kubeconfig.display()
    );

    // Stopped in the reverse order: the listener first, then the store's
    // users; then the store's writer finishes its group so nothing
    // acknowledged is lost.
    let mut components = Components::reporting_to(state.ready.components.clone());
    let task = datastore.spawn_compactor(COMPACT_EVERY, COMPACT_KEEP);
    components.spawn("store compactor", move |life| async move {
        life.ready();
        life.cancel.cancelled().await;
        task.abort();
        Ok(())
    });
    // Snapshots copy the embedded database; a PostgreSQL one is backed up
    // with the database's own tools.
    if let (false, Some(sqlite)) = (args.disable_snapshots, datastore.sqlite()) {
        let plan = snapshot_schedule::Plan {
            schedule: args.snapshot_schedule_cron.clone(),
            retention: usize::from(args.snapshot_retention),
            dir: args.snapshot_dir.clone(),
        };
        let snapshot_data = data_dir.clone();
        let snapshot_store = sqlite.clone();
        components.spawn("scheduled snapshots", move |life| async move {
            life.ready();
            snapshot_schedule::run(snapshot_data, plan, snapshot_store, life.cancel).await;
            Ok(())
        });
    }
    // Servers sharing the datastore: each one's address record, and the
    // kubernetes endpoints listing the live ones.
    if shared {
        let client = loopback::client(
            state.clone(),
            auth::component(auth::PEERS_USER),
            peers::AGENT,
        );
        let identity = leader::identity(&data_dir);
        let raw = store.clone();
        components.spawn("API server peers", move |life| async move {
            life.ready();
            peers::run(client, raw, identity, advertised, life.cancel).await;
            Ok(())
        });
    }
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
    control_plane::spawn(
        &mut components,
        &state,
        &args,
        &data_dir,
        &cluster,
        leader_timing,
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
    // The listener is bound and serving from here on.
    // The service manager counts skiff started once /readyz would say ok
    // (units ordered after it then find a working API).
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let readying = state.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(600);
            while !apiserver::health::ready(&readying).await {
                if Instant::now() > deadline {
                    tracing::warn!(
                        "not ready after 10 minutes: the service manager is told so anyway"
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            crate::notify::ready("serving the Kubernetes API");
        });
    }
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
    datastore.close().await;
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
