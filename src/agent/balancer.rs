//! The agent's client-side load balancer, as k3s's agent has one: a TCP
//! proxy on `127.0.0.1:<lb port>` that every API connection of the agent
//! goes through, passing each on to one of the cluster's servers — the one
//! that last answered, or, when that one does not take the connection, the
//! next. The servers are the `--server` one and those the `kubernetes`
//! EndpointSlice lists, followed while the agent runs and kept in
//! `<data-dir>/agent/servers.json` for the next start (when the server the
//! agent joined through may be the one that is gone).
//!
//! TLS passes through untouched, end to end: clients verify the server as
//! `127.0.0.1`, a name every server's certificate carries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long one server has to take a connection before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections through the balancer at once (the agent's own need a few).
const MAX_CONNECTIONS: usize = 512;
/// Servers known at most.
const MAX_SERVERS: usize = 16;
/// How often the servers' list is read from the `kubernetes` endpoints.
const FOLLOW_EVERY: Duration = Duration::from_secs(15);
/// How often the server in use is checked to take connections.
const CHECK_EVERY: Duration = Duration::from_secs(5);
pub const STATE_FILE: &str = "servers.json";

#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    #[error("the API load balancer cannot listen on {addr}: {source} (another agent on this box? --lb-server-port picks another port)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

struct Servers {
    /// `host:port` of each.
    list: Vec<String>,
    /// The index of the one that last took a connection.
    current: usize,
    /// The one given on the command line: always kept.
    given: String,
}

/// A running balancer; cheap to clone.
#[derive(Clone)]
pub struct Balancer {
    servers: Arc<Mutex<Servers>>,
    /// Per server, what ends the connections passed to it (cancelled when
    /// it stops answering: a server cut off by the network leaves its
    /// connections silent, not closed, and clients would wait on them).
    live: Arc<Mutex<HashMap<String, CancellationToken>>>,
    addr: SocketAddr,
    state: PathBuf,
}

impl Balancer {
    /// Listen on `listen` and pass connections to `first` (`host:port`)
    /// and to the servers known from before (in `state`), until `cancel`.
    pub async fn start(
        listen: SocketAddr,
        first: String,
        state: PathBuf,
        cancel: CancellationToken,
    ) -> Result<Balancer, BalancerError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| BalancerError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(listen);
        let cancel_check = cancel.clone();
        let mut list = vec![first.clone()];
        for known in read_state(&state) {
            if !list.contains(&known) {
                list.push(known);
            }
        }
        tracing::info!(%addr, servers = ?list, "the API load balancer is listening");
        let b = Balancer {
            servers: Arc::new(Mutex::new(Servers {
                list,
                current: 0,
                given: first,
            })),
            live: Default::default(),
            addr,
            state,
        };
        let serving = b.clone();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
            loop {
                let accepted = tokio::select! {
                    () = cancel.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!("the API load balancer is full: a connection is refused");
                    continue;
                };
                let b = serving.clone();
                tokio::spawn(async move {
                    b.pass(client).await;
                    drop(slot);
                });
            }
        });
        tokio::spawn(b.clone().check(cancel_check));
        Ok(b)
    }

    /// Every [`CHECK_EVERY`], dial the server in use; one that does not
    /// answer has its connections closed (their clients reconnect, through
    /// here, to one that does).
    async fn check(self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(CHECK_EVERY) => {}
            }
            let Some(target) = self.servers().into_iter().next() else {
                continue;
            };
            if dial(&target).await.is_some() {
                continue;
            }
            tracing::warn!(server = %target, "the API server in use does not answer: its connections are closed");
            if let Some(token) = self.live_lock().remove(&target) {
                token.cancel();
            }
            // The next connection starts from the next server.
            let next = {
                let mut s = self.lock();
                if s.list.is_empty() {
                    continue;
                }
                s.current = (s.current + 1) % s.list.len();
                s.list[s.current].clone()
            };
            tracing::info!(server = %next, "the API load balancer moved to another server");
        }
    }

    fn live_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The URL clients use: the balancer's, verified as 127.0.0.1.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The servers, the current one first.
    pub fn servers(&self) -> Vec<String> {
        let s = self.lock();
        let mut out = s.list.clone();
        let by = s.current.min(out.len().saturating_sub(1));
        out.rotate_left(by);
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Servers> {
        // A panic elsewhere while holding it leaves a list still usable.
        self.servers.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn pass(&self, mut client: TcpStream) {
        let (order, start) = {
            let s = self.lock();
            (s.list.clone(), s.current)
        };
        let n = order.len();
        for i in 0..n {
            let idx = (start + i) % n;
            let target = &order[idx];
            let Some(mut server) = dial(target).await else {
                continue;
            };
            if i > 0 {
                tracing::info!(server = %target, "the API load balancer moved to another server");
                let mut s = self.lock();
                if let Some(pos) = s.list.iter().position(|t| t == target) {
                    s.current = pos;
                }
            }
            let cut = self.live_lock().entry(target.clone()).or_default().clone();
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                () = cut.cancelled() => {}
            }
            return;
        }
        tracing::warn!(servers = ?order, "the API load balancer reached no server");
    }

    /// Take the servers the `kubernetes` EndpointSlice lists (the one
    /// given on the command line stays too, last, as k3s keeps its default
    /// server; addresses no server can have are left out, and the list is
    /// bounded).
    pub fn update(&self, found: Vec<String>) {
        let mut list: Vec<String> = found
            .into_iter()
            .filter(|a| a.parse::<SocketAddr>().is_ok_and(|a| usable(a, self.addr)))
            .collect();
        if list.is_empty() {
            return;
        }
        list.sort();
        list.dedup();
        list.truncate(MAX_SERVERS);
        let changed = {
            let mut s = self.lock();
            if !list.contains(&s.given) {
                list.push(s.given.clone());
            }
            if s.list == list {
                false
            } else {
                let current = s.list.get(s.current).cloned();
                s.current = current
                    .and_then(|c| list.iter().position(|t| *t == c))
                    .unwrap_or(0);
                s.list = list;
                true
            }
        };
        if changed {
            let servers = self.servers();
            tracing::info!(?servers, "the API load balancer's servers changed");
            self.save(&servers);
        }
    }

    fn save(&self, servers: &[String]) {
        let text = match serde_json::to_vec(servers) {
            Ok(t) => t,
            Err(_) => return,
        };
        if let Err(e) =
            crate::server::pki::write_atomic(&self.state, &text, crate::server::pki::PUBLIC)
        {
            tracing::warn!("keeping the API servers' list: {e}");
        }
    }

    /// Follow the `kubernetes` EndpointSlice with the client the
    /// kubeconfig at `kubeconfig` makes (through this balancer; made again
    /// each time, so renewed certificates are taken up) until `cancel`.
    pub async fn follow(self, kubeconfig: PathBuf, cancel: CancellationToken) {
        loop {
            match crate::agent::client::from_kubeconfig(&kubeconfig).await {
                Ok((client, _)) => match endpoints(&client).await {
                    Ok(found) => self.update(found),
                    Err(e) => tracing::debug!("reading the kubernetes endpoints: {e}"),
                },
                Err(e) => tracing::debug!("following the cluster's servers: {e}"),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
        }
    }
}

/// A connection to `target`, or None when it does not take one in time.
async fn dial(target: &str) -> Option<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!(server = %target, "the API load balancer: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(server = %target, "the API load balancer: connecting timed out");
            None
        }
    }
}

/// Whether a server may be at `a`: not this balancer, nor an address no
/// other host answers on.
fn usable(a: SocketAddr, me: SocketAddr) -> bool {
    let ip = a.ip();
    a != me
        && a.port() != 0
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && !ip.is_loopback()
        && !matches!(ip, std::net::IpAddr::V4(v4) if v4.is_link_local() || v4.is_broadcast())
}

fn read_state(path: &std::path::Path) -> Vec<String> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            s.parse::<SocketAddr>()
                .is_ok_and(|a| !a.ip().is_unspecified())
        })
        .take(MAX_SERVERS)
        .collect()
}

/// `ip:port` of every ready address of the `default/kubernetes`
/// EndpointSlice (a node may read slices, as upstream's node-proxier).
async fn endpoints(client: &kube::Client) -> Result<Vec<String>, kube::Error> {
    let req =
        kube::core::Request::new("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices")
            .get("kubernetes", &Default::default())
            .map_err(kube::Error::BuildRequest)?;
    let slice: serde_json::Value = client.request(req).await?;
    Ok(addresses(&slice))
}

fn addresses(slice: &serde_json::Value) -> Vec<String> {
    let Some(port) = slice["ports"]
        .as_array()
        .and_then(|p| p.first())
        .and_then(|p| p["port"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in slice["endpoints"].as_array().into_iter().flatten() {
        if e["conditions"]["ready"] == false {
            continue;
        }
        for a in e["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = a.as_str().and_then(|i| i.parse().ok()) {
                out.push(SocketAddr::new(ip, port).to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_come_from_the_endpoint_slice() {
        let slice = serde_json::json!({
            "ports": [{"name": "https", "port": 6443}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2", "bad"]},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false}},
            ],
        });
        assert_eq!(addresses(&slice), ["10.0.0.1:6443", "10.0.0.2:6443"]);
        assert!(addresses(&serde_json::json!({"endpoints": []})).is_empty());
    }

    #[tokio::test]
    async fn the_list_keeps_the_given_server_and_drops_what_no_server_is() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let b = Balancer::start(
            "127.0.0.1:0".parse().unwrap(),
            "10.0.0.9:6443".into(),
            dir.path().join(STATE_FILE),
            cancel.clone(),
        )
        .await
        .unwrap();
        let me = b.addr.to_string();
        let mut found: Vec<String> = vec![
            "10.0.0.2:6443".into(),
            "10.0.0.1:6443".into(),
            "127.0.0.1:6443".into(),
            "0.0.0.0:6443".into(),
            "169.254.1.1:6443".into(),
            me,
        ];
        found.extend((0..100).map(|i| format!("10.1.0.{i}:6443")));
        b.update(found);
        let servers = b.lock().list.clone();
        assert_eq!(servers.len(), MAX_SERVERS + 1);
        assert_eq!(servers[0], "10.0.0.1:6443");
        assert_eq!(servers.last().map(String::as_str), Some("10.0.0.9:6443"));
        // The one in use stays in use.
        assert_eq!(b.servers()[0], "10.0.0.9:6443");
        assert!(servers
            .iter()
            .all(|s| !s.starts_with("127.") && !s.starts_with("0.") && !s.starts_with("169.254")));
        // The given one stays when the endpoints no longer name it, and
        // the list is kept for the next start.
        b.update(vec!["10.0.0.2:6443".into()]);
        assert_eq!(b.lock().list, ["10.0.0.2:6443", "10.0.0.9:6443"]);
        assert_eq!(
            read_state(&dir.path().join(STATE_FILE)),
            ["10.0.0.9:6443", "10.0.0.2:6443"]
        );
        cancel.cancel();
    }

    #[tokio::test]
    async fn connections_go_to_the_server_that_answers() {
        let dir = tempfile::tempdir().unwrap();
        // A port nothing listens on, then one that answers.
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap().to_string();
        drop(dead);
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = live.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = c.write_all(b"live").await;
            }
        });
        let cancel = CancellationToken::new();
        let b = Balancer::start(
            "127.0.0.1:0".parse().unwrap(),
            dead_addr.clone(),
            dir.path().join(STATE_FILE),
            cancel.clone(),
        )
        .await
        .unwrap();
        // (Loopback is no server's address in a cluster: set directly.)
        b.lock().list = vec![dead_addr.clone(), live_addr.clone()];
        let read = || async {
            use tokio::io::AsyncReadExt;
            let mut c = TcpStream::connect(b.addr).await.unwrap();
            let mut got = String::new();
            c.read_to_string(&mut got).await.unwrap();
            got
        };
        assert_eq!(read().await, "live");
        assert_eq!(b.servers()[0], live_addr);
        assert_eq!(read().await, "live");
        cancel.cancel();
    }
}
