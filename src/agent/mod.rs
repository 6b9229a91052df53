//! The node agent (skiff's kubelet). It talks to the API only as a client,
//! over TLS with its node credentials (client.rs), also when it runs in the
//! server's process, exactly as a remote agent does.
//!
//! ```text
//! config.rs          flags → AgentConfig (node name, labels, taints, reserved)
//! client.rs          kube::Client from the agent's kubeconfig
//! join.rs            `skiff agent`'s join: the CA pinned, certificates asked for
//! network.rs         routes to other nodes' pod subnets (host-gw, vxlan)
//! renumber.rs        the bridge made again when the node's pod subnet changes
//! tunnel.rs          `skiff agent`'s tunnel: the server reaches the kubelet through it
//! node/host.rs       capacity, allocatable, node info, pressure, conditions
//! node/register.rs   the Node object and its status
//! node/lease.rs      the Lease in kube-node-lease, renewed every 10 s
//! pods/manager.rs    this node's pods (list + watch), a worker each
//! pods/worker.rs     one pod: sandbox, images, containers, restarts, status, deletion
//! pods/spec.rs       a pod's container → the engine's ContainerSpec (pure)
//! pods/status.rs     what the pod's status says (pure)
//! pods/images.rs     imagePullPolicy over the node's image store
//! pods/static_pods/  pods from manifest files, and their mirror pods
//! simulate/          `--simulate N`: N simulated nodes whose pods are fakes
//! ```
//!
//! Start-up is a linear recipe (as k3s's agent): client → pod workers
//! (static pods run at once) → register the Node → kubelet API →
//! heartbeat loop.

pub mod balancer;
pub mod client;
pub mod config;
pub mod dns;
pub mod image_gc;
pub mod join;
pub mod kubelet;
pub mod network;
pub mod node;
pub mod objects;
pub mod pods;
pub mod proxy;
pub mod renumber;
pub mod simulate;
pub mod tunnel;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::config::AgentConfig;
use self::node::lease::LeaseKeeper;
use self::node::register::NodeKeeper;

/// kubelet's `nodeStatusUpdateFrequency`, and the Lease's renewal (a
/// quarter of its duration).
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Registration retries back off up to kubelet's 7 s.
const MAX_RETRY: Duration = Duration::from_secs(7);

/// The API's address as in-cluster clients find it (KUBERNETES_SERVICE_HOST
/// and _PORT): the `kubernetes` Service, as upstream, which the service
/// proxy sends on to the API server.
fn kubernetes_service_env(
    cluster: &crate::cluster::ClusterConfig,
) -> std::collections::BTreeMap<String, String> {
    [
        (
            "KUBERNETES_SERVICE_HOST",
            cluster.kubernetes_service_ip().to_string(),
        ),
        ("KUBERNETES_SERVICE_PORT", "443".to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The same without the service proxy (`--disable-kube-proxy`): nothing
/// answers at the Service's address, so pods are given the address the
/// agent itself reaches the API at — the node's address when that is a loopback one, which a pod's own
/// loopback would shadow, and the pods' bridge when the node's address is
/// loopback too (a box with no route off it). The serving certificate
/// names all of them.
fn service_env(
    api: &http::Uri,
    node_ip: std::net::IpAddr,
    pod_cidr: Option<crate::net::cidr::Ipv4Cidr>,
) -> std::collections::BTreeMap<String, String> {
    let bridge = pod_cidr
        .or_else(|| crate::net::host::DEFAULT_NODE_CIDR.parse().ok())
        .map(|c| c.gateway().to_string())
        .unwrap_or_default();
    let reachable = if node_ip.is_loopback() {
        bridge
    } else {
        node_ip.to_string()
    };
    let mut env = std::collections::BTreeMap::new();
    let host = api
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or_default();
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => reachable,
        _ if host == "localhost" => reachable,
        _ => host.to_string(),
    };
    let port = api.port_u16().unwrap_or(443).to_string();
    env.insert("KUBERNETES_SERVICE_HOST".to_string(), host);
    env.insert("KUBERNETES_SERVICE_PORT".to_string(), port.clone());
    env.insert("KUBERNETES_SERVICE_PORT_HTTPS".to_string(), port);
    env
}

/// Run the agent until `cancel`; `registered` is called once the Node
/// exists.
pub async fn run(
    config: AgentConfig,
    cancel: CancellationToken,
    registered: impl FnOnce(),
) -> anyhow::Result<()> {
    let node_name = config.node_name.clone();
    // What the start needs from the host can fail for a while (out of
    // descriptors, a file being replaced): retried, never fatal, so that
    // the agent's trouble does not stop a server it runs in.
    let mut wait = Duration::from_millis(100);
    let ((client, api_url), images) = loop {
        let started = async {
            let client = client::from_kubeconfig(&config.kubeconfig).await?;
            let images = pods::images::Images::open(&config.root, &config.registries)?;
            anyhow::Ok((client, images))
        };
        match started.await {
            Ok(parts) => break parts,
            Err(e) => {
                tracing::warn!(node = %node_name, "starting the agent: {e:#}; retrying in {wait:?}");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    };
    let runtime =
        crate::runtime::pod::EnginePodRuntime::new(crate::runtime::pod::EnginePodRuntimeConfig {
            root: config.root.clone(),
            run: config.run_dir.clone(),
            shim_binary: None,
            log_max_size: None,
        });
    // Before any pod is made: what the node's rules spare from masquerade.
    let cluster_cidr = config.cluster.cluster_cidr;
    let cluster_net = Some(crate::net::host::ClusterNet {
        cidr: cluster_cidr,
        mtu: network::pod_mtu(&config),
    });
    if let Err(e) = crate::net::host::record_cluster(&config.root, cluster_net) {
        tracing::warn!(
            "recording the cluster network: {e}; pods' traffic to other nodes is masqueraded"
        );
    }
    if let Err(e) = pods::pod_cgroup::record_root(&config.root, &config.cgroup_root) {
        tracing::warn!("recording the cgroup root: {e}; `skiff killall` may leave its empty tree");
    }
    let bridge_cidr = crate::net::host::recorded_cidr(&config.root);
    let (pod_cidr_tx, pod_cidr) = tokio::sync::watch::channel(bridge_cidr);
    let workers = std::sync::Arc::new(pods::worker::WorkerCtx {
        runtime,
        root: config.root.clone(),
        cgroup_root: config.cgroup_root.clone(),
        events: crate::events::Recorder::spawn(client.clone(), node_name.clone()),
        client: client.clone(),
        node_name: node_name.clone(),
        node_ip: config.node_ip,
        log_root: config.pod_log_dir.clone(),
        images,
        service_env: if config.proxy {
            kubernetes_service_env(&config.cluster)
        } else {
            service_env(
                &api_url,
                config.node_ip,
                crate::net::host::recorded_cidr(&config.root)
                    .or(Some(config.cluster.first_node_cidr())),
            )
        },
        resolv_conf: config.resolv_conf.clone(),
        cluster_dns: config.dns.then(|| pods::spec::ClusterDns {
            server: std::net::IpAddr::V4(config.cluster.cluster_dns),
            domain: config.cluster.cluster_domain.clone(),
        }),
        // A node whose memory cannot be read scores Burstable containers
        // as if they asked for none of it.
        memory_capacity: node::host::memory_total().unwrap_or(u64::MAX),
        min_oom_score_adj: node::host::min_oom_score_adj(),
        wanted_images: Default::default(),
        config_maps: objects::Watched::new(client.clone()),
        secrets: objects::Watched::new(client.clone()),
        admitted: Default::default(),
        reserved: (config.kube_reserved.clone(), config.system_reserved.clone()),
        allowed_unsafe_sysctls: config.allowed_unsafe_sysctls.clone(),
        allocatable: node::host::measure_capacity(&config.root)
            .ok()
            .map(|c| node::host::allocatable(&c, &config.kube_reserved, &config.system_reserved)),
        pod_cidr,
    });
    let kubelet_dir = config
        .kubeconfig
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let kubelet_addr = std::net::SocketAddr::new(
        std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        config.kubelet_port,
    );
    let gc_at = (
        config.root.clone(),
        config.run_dir.clone(),
        config.image_gc.clone(),
    );
    // Pods start before the node is registered: static pods run whether
    // or not the API answers, and the API's pods once it does.
    let statics = pods::static_pods::follow(
        config.static_pod_dir.clone(),
        node_name.clone(),
        cancel.child_token(),
    )
    .await;
    let wanted_images = workers.wanted_images.clone();
    let (manager, inputs) =
        pods::manager::PodManager::new(client.clone(), workers.clone(), statics, &cancel);
    let pods = tokio::spawn(manager.run(inputs, cancel.child_token()));
    let proxy_params = proxy_settings(&config);
    let records = start_dns(&config, &cancel);
    let network = tokio::spawn(network::run(
        client.clone(),
        config.clone(),
        workers.pod_cidr.clone(),
        cancel.child_token(),
    ));
    let (config_root, config_run_dir) = (config.root.clone(), config.run_dir.clone());
    let mut node = NodeKeeper::new(client.clone(), config);
    let mut lease = LeaseKeeper::new(client.clone(), &node_name);
    let mut wait = Duration::from_millis(100);
    // A bridge from before that lies in the cluster's range is asked for
    // again, so that pods keep their subnet.
    let proposed = bridge_cidr
        .filter(|c| cluster_cidr.contains(c.network()) && c.prefix() == crate::cluster::NODE_MASK);
    let node_entry = loop {
        match node.register(proposed).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(node = %node_name, "registering the node: {e}; retrying in {wait:?}");
                tokio::select! {
                    _ = cancel.cancelled() => {
                        let _ = pods.await;
                        return Ok(());
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    };
    lease.set_owner(&node_entry.uid);
    match node_entry.pod_cidr {
        Some(c) => tracing::info!(node = %node_name, pod_cidr = %c, "registered the node"),
        None => {
            tracing::warn!(node = %node_name, "registered the node without a pod CIDR: the cluster CIDR has none left; pods needing an address wait")
        }
    }
    if let (Some(old), Some(new)) = (bridge_cidr, node_entry.pod_cidr) {
        if old != new {
            tokio::spawn(renumber::follow(
                config_root.clone(),
                config_run_dir.clone(),
                old,
                new,
                cancel.child_token(),
            ));
        }
    }
    pod_cidr_tx.send_replace(node_entry.pod_cidr);
    let proxy = Some(tokio::spawn(proxy::run(
        client.clone(),
        proxy_params.0,
        proxy_params.1,
        records,
        cancel.child_token(),
    )));
    let kubelet = start_kubelet(&kubelet_dir, kubelet_addr, workers.clone(), &cancel).await;
    let gc = tokio::spawn(image_gc::run(
        gc_at.0,
        gc_at.1,
        gc_at.2,
        wanted_images,
        cancel.child_token(),
    ));
    node.set_not_ready(None);
    registered();
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = pods.await;
                let _ = gc.await;
                let _ = network.await;
                if let Some(p) = proxy {
                    let _ = p.await;
                }
                if let Some(k) = kubelet {
                    let _ = k.await;
                }
                return Ok(());
            }
            _ = tick.tick() => {}
        }
        if let Err(e) = lease.renew().await {
            tracing::warn!(node = %node_name, "renewing the node's lease: {e}");
        }
        if let Err(e) = node.report().await {
            tracing::warn!(node = %node_name, "reporting the node's status: {e}");
        }
    }
}

/// The cluster DNS server, unless it is off: the names it answers from,
/// which the Service watch fills.
fn start_dns(config: &AgentConfig, cancel: &CancellationToken) -> Option<dns::SharedRecords> {
    if !config.dns {
        return None;
    }
    let records = std::sync::Arc::new(std::sync::RwLock::new(dns::records::Records::new(
        &config.cluster.cluster_domain,
    )));
    let services = config.cluster.service_cidr;
    let mut allowed = vec![config.cluster.cluster_cidr];
    if let std::net::IpAddr::V4(v4) = config.node_ip {
        allowed.push(crate::net::cidr::Ipv4Cidr::from_parts(v4, 32));
    }
    let cfg = dns::DnsConfig {
        listen: std::net::SocketAddr::new(config.node_ip, dns::PORT),
        domain: config.cluster.cluster_domain.clone(),
        upstreams: dns::upstreams(
            dns::upstream::from_file(&config.resolv_conf),
            config.node_ip,
            services,
        ),
        allowed,
    };
    let (r, cancel) = (records.clone(), cancel.child_token());
    tokio::spawn(async move {
        let listen = cfg.listen;
        if let Err(e) = dns::serve(cfg, r, cancel).await {
            tracing::error!(%listen, "cluster DNS is off: {e}");
        }
    });
    Some(records)
}

/// Where the Service watch runs, and the proxy's table unless the proxy
/// is off.
fn proxy_settings(
    config: &AgentConfig,
) -> (
    proxy::translate::NodeView,
    Option<crate::net::nft::svc::ProxyConfig>,
) {
    let view = proxy::translate::NodeView {
        name: config.node_name.clone(),
        zone: config.labels.get("topology.kubernetes.io/zone").cloned(),
    };
    let table = config.proxy.then(|| crate::net::nft::svc::ProxyConfig {
        table: crate::net::nft::svc::TABLE.to_string(),
        cluster_cidr: config.cluster.cluster_cidr,
        service_cidr: config.cluster.service_cidr,
        nodeport_cidrs: config.nodeport_addresses.clone(),
        masquerade_bit: crate::net::nft::svc::MASQUERADE_BIT,
    });
    (view, table)
}

/// Serve the kubelet API; without it pods still run (logs and exec do
/// not), so a failure to start is logged, not fatal.
async fn start_kubelet<R: crate::runtime::pod::PodRuntime>(
    dir: &std::path::Path,
    addr: std::net::SocketAddr,
    ctx: std::sync::Arc<pods::worker::WorkerCtx<R>>,
    cancel: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let tls = match kubelet::tls_config(dir) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("the kubelet API is off: {e}");
            return None;
        }
    };
    // A node without IPv6 listens on IPv4 alone.
    let bound = bind_dual_stack(addr).or_else(|_| {
        std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, addr.port())).and_then(|l| {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        })
    });
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("the kubelet API is off: listening on {addr}: {e}");
            return None;
        }
    };
    tracing::info!(%addr, "serving the kubelet API");
    Some(tokio::spawn(kubelet::serve(
        listener,
        tls,
        ctx,
        cancel.child_token(),
    )))
}

/// A listener on `[::]:port` that takes IPv4 too (as Go's on ":port").
fn bind_dual_stack(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v6()?;
    socket.set_reuseaddr(true)?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv6V6Only, &false)
        .map_err(std::io::Error::from)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::service_env;

    #[test]
    fn pods_are_given_an_api_address_they_can_reach() {
        let host = |api: &str, node: &str| {
            let env = service_env(&api.parse().unwrap(), node.parse().unwrap(), None);
            (
                env["KUBERNETES_SERVICE_HOST"].clone(),
                env["KUBERNETES_SERVICE_PORT"].clone(),
            )
        };
        assert_eq!(
            host("https://10.0.0.5:6443", "10.0.0.5"),
            ("10.0.0.5".into(), "6443".into())
        );
        // A pod's loopback is its own: the node's address instead.
        assert_eq!(host("https://127.0.0.1:6443", "10.0.0.5").0, "10.0.0.5");
        assert_eq!(host("https://localhost:6443", "10.0.0.5").0, "10.0.0.5");
        // A node with only loopback: the pods' bridge.
        assert_eq!(host("https://127.0.0.1:6443", "127.0.0.1").0, "10.42.0.1");
        let other = service_env(
            &"https://127.0.0.1:6443".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            "10.88.0.0/24".parse().ok(),
        );
        assert_eq!(other["KUBERNETES_SERVICE_HOST"], "10.88.0.1");
    }
}
