//! `skiff agent --server URL --token TOKEN`: make this box a node of the
//! cluster a `skiff server` runs (k3s's `k3s agent`). A linear recipe:
//! settings → join (agent::join: CA pinned by the token, certificates from
//! the server) → the node agent, until SIGTERM or SIGINT.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::agent::join::{Join, JoinError};

#[derive(Debug, Clone, Args)]
pub struct AgentCmdArgs {
    /// Read flags from this YAML file (keys are flag names); flags given on
    /// the command line win [default: /etc/skiff/config.yaml, when it exists]
    #[arg(long, short = 'c', value_name = "FILE", env = "SKIFF_CONFIG_FILE")]
    pub config: Option<PathBuf>,

    /// The server to join, https://HOST:PORT.
    #[arg(long, value_name = "URL", env = "SKIFF_URL")]
    pub server: String,

    /// The join token: the server's (its <data-dir>/server/token) or one
    /// from `skiff token create`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SKIFF_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// A file holding the join token.
    #[arg(
        long,
        value_name = "FILE",
        env = "SKIFF_TOKEN_FILE",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,

    /// Where the agent keeps its state: credentials under <DIR>/agent, the
    /// engine's (images, containers) directly under it [default: the
    /// global --root, /var/lib/skiff]
    #[arg(long, value_name = "DIR", env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// The port of the agent's API load balancer on 127.0.0.1, through
    /// which it reaches whichever server of the cluster answers (k3s's
    /// flag)
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 6444,
        env = "SKIFF_LB_SERVER_PORT"
    )]
    pub lb_server_port: u16,

    /// Instead of being a node, simulate N nodes named
    /// <node-name>-sim-<i>, whose pods are status-only fakes (no
    /// container runs): to measure the control plane at scale.
    #[arg(long, value_name = "N", hide = true)]
    pub simulate: Option<usize>,

    #[command(flatten)]
    pub agent: crate::agent::config::AgentArgs,
}

/// Waits between join attempts while the server cannot be reached.
const MAX_RETRY: Duration = Duration::from_secs(30);

pub fn run(args: AgentCmdArgs, root: PathBuf, run_dir: PathBuf) -> anyhow::Result<()> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the join token from {}", file.display()))?
            .trim()
            .to_string(),
        (None, None) => anyhow::bail!(
            "a join token is needed: --token, --token-file, SKIFF_TOKEN or SKIFF_TOKEN_FILE (the server's is in its <data-dir>/server/token)"
        ),
    };
    let data_dir = args.data_dir.clone().unwrap_or(root);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server: http::Uri = args
            .server
            .parse()
            .with_context(|| format!("--server {:?} is not a URL", args.server))?;
        let default_ip = route_to(&server).await?;
        let config = args.agent.to_config(crate::agent::config::Placement {
            root: data_dir.clone(),
            run_dir,
            kubeconfig: data_dir
                .join("agent")
                .join(crate::agent::join::KUBECONFIG_FILE),
            default_ip,
            control_plane: false,
        })?;
        if let Some(count) = args.simulate {
            let sim = crate::agent::simulate::Simulation {
                server: args.server.trim_end_matches('/').to_string(),
                token,
                count,
                prefix: config.node_name.clone(),
                node_ip: config.node_ip,
                labels: config.labels.clone(),
                taints: config.taints.clone(),
                kubelet_port: config.kubelet_port,
                dir: data_dir.join("agent").join("sim"),
            };
            let cancel = tokio_util::sync::CancellationToken::new();
            let stop = cancel.clone();
            tokio::spawn(async move {
                let signal = crate::server::shutdown_signal().await;
                tracing::info!(signal, "stopping the simulated nodes");
                stop.cancel();
            });
            return crate::agent::simulate::run(sim, cancel).await;
        }
        let mut addresses = vec![config.node_ip];
        addresses.extend(config.external_ips.iter().copied());
        let join = Join {
            server: args.server.trim_end_matches('/').to_string(),
            token,
            node_name: config.node_name.clone(),
            addresses,
            dir: data_dir.join("agent"),
        };
        let cancel = tokio_util::sync::CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            let signal = crate::server::shutdown_signal().await;
            tracing::info!(signal, "stopping the agent");
            stop.cancel();
        });
        // Every API connection after the first join goes through the load
        // balancer, which knows the cluster's other servers.
        let first = server
            .authority()
            .map(|a| {
                // As the join dials it: https's port when none is given.
                if a.port_u16().is_some() {
                    a.to_string()
                } else {
                    format!("{a}:443")
                }
            })
            .ok_or_else(|| JoinError::Url(args.server.clone()))?;
        let balancer = crate::agent::balancer::Balancer::start(
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, args.lb_server_port)),
            first,
            join.dir.join(crate::agent::balancer::STATE_FILE),
            cancel.child_token(),
        )
        .await?;
        crate::agent::client::route_through(balancer.url());
        let mut config = config;
        let mut wait = Duration::from_millis(500);
        loop {
            let joined = async {
                crate::agent::join::ensure(&join).await?;
                crate::agent::join::cluster_config(&join).await
            };
            match joined.await {
                Ok(plan) => {
                    tracing::info!(cluster_cidr = %plan.cluster_cidr, service_cidr = %plan.service_cidr, pod_network = %plan.pod_network.map_or("none".to_string(), |b| b.to_string()), "the cluster's configuration");
                    config.dns = plan.dns;
                    config.cluster = plan;
                    break;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!("joining: {e}; trying again in {wait:?}");
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(MAX_RETRY);
                }
                Err(e) => return Err(anyhow::Error::new(e)),
            }
        }
        tracing::info!(node = %config.node_name, node_ip = %config.node_ip, "starting the agent");
        tokio::spawn(
            balancer
                .clone()
                .follow(join.kubeconfig(), cancel.child_token()),
        );
        // The server reaches the kubelet through this, wherever the node is.
        let tunnel = tokio::spawn(crate::agent::tunnel::run(
            join.kubeconfig(),
            config.kubelet_port,
            cancel.child_token(),
        ));
        // Renewed certificates are taken up by starting the agent again on
        // them, in this process: running pods are adopted, not restarted.
        let result = loop {
            let run = cancel.child_token();
            let renewal = {
                let (join, run, cancel) = (join.clone(), run.clone(), cancel.clone());
                tokio::spawn(
                    async move { crate::agent::join::keep_renewed(&join, &run, &cancel).await },
                )
            };
            let result = crate::agent::run(config.clone(), run, || {
                crate::notify::ready("the node is registered")
            })
            .await;
            renewal.abort();
            if cancel.is_cancelled() || result.is_err() {
                break result;
            }
            tracing::info!("starting the agent again on its renewed certificates");
        };
        cancel.cancel();
        let _ = tunnel.await;
        result
    })
}

/// The address this box reaches `server` from: the node's address unless
/// --node-ip says otherwise (kubelet and k3s pick it so too).
async fn route_to(server: &http::Uri) -> anyhow::Result<IpAddr> {
    let host = server
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .ok_or_else(|| JoinError::Url(server.to_string()))?;
    let port = server.port_u16().unwrap_or(6443);
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving the server's host {host:?}"))?
        .next()
        .with_context(|| format!("the server's host {host:?} has no address"))?;
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    // A UDP connect only looks the route up; nothing is sent.
    let probe = std::net::UdpSocket::bind(bind)
        .and_then(|s| s.connect(target).map(|()| s))
        .and_then(|s| s.local_addr())
        .with_context(|| format!("finding the route to the server at {target}: set --node-ip"))?;
    Ok(probe.ip())
}
