//! The connection layer of the API server: accepting, TLS, HTTP/1 and HTTP/2,
//! and the bounds that keep hostile or broken clients from holding the
//! server's descriptors: a connection cap in total and per client address,
//! timeouts for the handshake, the request head, idle connections and the
//! request body, and a back-off when `accept` fails.
//!
//! A connection is "busy" while one of its requests is being handled or its
//! response (a watch, say) is still being sent; only a connection that is not
//! busy can time out, so long watches are never cut.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::auth::ConnIdentity;
use super::{handle, ApiState};

/// The bounds on connections. The defaults follow the apiserver where it has
/// one (32 s to send a request head) and are otherwise picked for a small box
/// (see each field).
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// To finish the TLS handshake.
    pub handshake: Duration,
    /// To send a whole request head, counted from when the server starts
    /// waiting for it (for a new connection: from the handshake).
    pub header: Duration,
    /// How long a connection may sit with no request in progress once it
    /// has served one (keep-alive, and HTTP/2 connections without streams).
    pub idle: Duration,
    /// To send a whole request body, counted from the request's start.
    pub body: Duration,
    /// Connections held at once, over all clients.
    pub max_connections: usize,
    /// Connections held at once from one client address.
    pub max_per_client: usize,
}

/// Streams one HTTP/2 connection may have open at once (hyper's default is
/// 200, Go's 250): half the default of reads in flight (200), so one
/// connection cannot take all of them, and far more than a client's watches
/// need (kubectl and the agent multiplex theirs on one connection; watches
/// take no in-flight slot).
const H2_MAX_STREAMS: u32 = 100;
/// The largest HTTP/2 header list a client may send (hyper's default, set
/// here so it is a decision: bearer tokens and service-account JWTs are a
/// few KiB).
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;
/// HTTP/2 pings find dead peers of long-lived streams (watches).
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// After a timeout, how long a connection gets to close politely (HTTP/2
/// GOAWAY) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Repeated warnings (accept errors, refused connections) are logged at most
/// once per this interval, with the number left out.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Back-off after a failed accept, doubling from the first to the last (as
/// Go's net/http does): EMFILE clears only when connections close.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Descriptors kept for everything that is not an API connection (the
/// database, the agent, containers' logs) when the total cap is derived
/// from the descriptor limit.
const RESERVED_FDS: u64 = 256;

impl ConnLimits {
    /// The defaults, with the total capped below `fd_limit` (the process's
    /// soft RLIMIT_NOFILE) so that API clients alone cannot use up the
    /// server's descriptors.
    ///
    /// 4096 connections in total and 256 per client address: HTTP/2 carries
    /// all of one kubectl's (or one agent's) requests and watches on one
    /// connection, so 256 leaves room for many users behind one NAT while one
    /// host cannot take more than a sixteenth of the server. With a low
    /// descriptor limit one address gets at most half of the total, so
    /// others always have room.
    pub fn with_fd_limit(fd_limit: u64) -> ConnLimits {
        let by_fds = fd_limit.saturating_sub(RESERVED_FDS).max(fd_limit / 2);
        let max_connections = usize::try_from(by_fds).unwrap_or(usize::MAX).min(4096);
        ConnLimits {
            handshake: Duration::from_secs(10),
            header: Duration::from_secs(32),
            idle: Duration::from_secs(90),
            body: Duration::from_secs(60),
            max_connections,
            max_per_client: 256.min((max_connections / 2).max(1)),
        }
    }
}

tokio::task_local! {
    /// When the body of the request being handled must have arrived by.
    static BODY_DEADLINE: tokio::time::Instant;
}

/// The body-read deadline of the request this task is handling; None for
/// requests that did not come over a connection (in-process clients).
pub(super) fn body_deadline() -> Option<tokio::time::Instant> {
    BODY_DEADLINE.try_with(|d| *d).ok()
}

/// Accept TLS connections and serve the API on them until the listener fails.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<ApiState>,
    limits: ConnLimits,
) -> anyhow::Result<()> {
    tracing::info!(
        max_connections = limits.max_connections,
        max_per_client = limits.max_per_client,
        header_timeout_s = limits.header.as_secs_f64(),
        idle_timeout_s = limits.idle.as_secs_f64(),
        body_timeout_s = limits.body.as_secs_f64(),
        "API connection limits"
    );
    let acceptor = TlsAcceptor::from(tls);
    let limits = Arc::new(limits);
    let slots = Slots::new(limits.max_connections, limits.max_per_client);
    let mut accept_log = Throttle::default();
    let mut refuse_log = Throttle::default();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => {
                backoff = ACCEPT_BACKOFF_MIN;
                c
            }
            Err(e) => {
                if let Some(suppressed) = accept_log.due() {
                    tracing::warn!(
                        error = %e,
                        suppressed,
                        retry_ms = backoff.as_millis() as u64,
                        "accept failed; backing off"
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Some(slot) = slots.take(peer.ip()) else {
            if let Some(suppressed) = refuse_log.due() {
                tracing::warn!(
                    %peer,
                    suppressed,
                    max_connections = limits.max_connections,
                    max_per_client = limits.max_per_client,
                    "connection refused: too many connections"
                );
            }
            drop(tcp);
            continue;
        };
        let conn = Conn {
            acceptor: acceptor.clone(),
            state: state.clone(),
            limits: limits.clone(),
            peer,
        };
        tokio::spawn(async move {
            conn.run(tcp).await;
            drop(slot);
        });
    }
}

struct Conn {
    acceptor: TlsAcceptor,
    state: Arc<ApiState>,
    limits: Arc<ConnLimits>,
    peer: SocketAddr,
}

impl Conn {
    async fn run(self, tcp: TcpStream) {
        let peer = self.peer;
        let _ = tcp.set_nodelay(true);
        let tls = match tokio::time::timeout(self.limits.handshake, self.acceptor.accept(tcp)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let identity = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| crate::server::pki::identity_from_cert(c.as_ref()));
        let ident = ConnIdentity(identity);
        let activity = Arc::new(Activity::new());
        let svc = {
            let activity = activity.clone();
            let state = self.state.clone();
            let body_timeout = self.limits.body;
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(super::audit::PeerAddr(peer.ip()));
                let busy = Busy::start(&activity);
                let state = state.clone();
                let ident = ident.clone();
                async move {
                    let deadline = tokio::time::Instant::now() + body_timeout;
                    let resp = BODY_DEADLINE
                        .scope(deadline, handle(state, ident, req))
                        .await;
                    // The connection stays busy until the response body is
                    // done or dropped: a watch is busy for its whole life.
                    let resp = resp.map(|body| {
                        Body::new(body.map_frame(move |frame| {
                            let _still_busy = &busy;
                            frame
                        }))
                    });
                    Ok::<_, Infallible>(resp)
                }
            })
        };
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_PING_EVERY)
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(H2_MAX_HEADER_LIST);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
        tokio::pin!(conn);
        // The watchdog looks often enough to close within about a quarter
        // of the shortest timeout past it.
        let every = (self.limits.header.min(self.limits.idle) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = tick.tick() => {
                    if activity.expired(&self.limits) {
                        tracing::debug!(%peer, "closing a connection without a request in time");
                        break;
                    }
                }
            }
        }
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
    }
}

/// What the watchdog needs to know of a connection.
struct Activity {
    /// Requests being handled or responses being sent.
    busy: AtomicUsize,
    /// Whether a request has come in yet.
    served: AtomicBool,
    /// When the connection last stopped being busy (or was opened).
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    /// Whether the connection has gone too long without a request: until
    /// the first one it must arrive within the header timeout (a client that
    /// sends nothing, or its head a byte at a time, is cut there); after
    /// that the idle timeout applies between requests.
    fn expired(&self, limits: &ConnLimits) -> bool {
        if self.busy.load(Ordering::Acquire) > 0 {
            return false;
        }
        let allowed = if self.served.load(Ordering::Acquire) {
            limits.idle
        } else {
            limits.header
        };
        match self.idle_since.lock() {
            Ok(since) => since.elapsed() >= allowed,
            Err(_) => true,
        }
    }
}

/// Marks a connection busy while it lives.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>) -> Busy {
        activity.served.store(true, Ordering::Release);
        activity.busy.fetch_add(1, Ordering::AcqRel);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // Reset the clock before the count drops, so the watchdog never sees
        // an idle connection with an old timestamp.
        if let Ok(mut since) = self.0.idle_since.lock() {
            *since = Instant::now();
        }
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Connection counts, in total and per client address.
#[derive(Clone)]
struct Slots {
    inner: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_client: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// One held connection; gives its slot back on drop.
struct Slot {
    slots: Slots,
    ip: IpAddr,
}

impl Slots {
    fn new(max_total: usize, max_per_client: usize) -> Slots {
        Slots {
            inner: Arc::new(Mutex::new(Counts::default())),
            max_total,
            max_per_client,
        }
    }

    /// A slot for a connection from `ip`, or None when a cap is reached.
    fn take(&self, ip: IpAddr) -> Option<Slot> {
        let mut counts = self.inner.lock().ok()?;
        let mine = counts.per_client.get(&ip).copied().unwrap_or(0);
        if counts.total >= self.max_total || mine >= self.max_per_client {
            return None;
        }
        counts.total += 1;
        counts.per_client.insert(ip, mine + 1);
        Some(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Ok(mut counts) = self.slots.inner.lock() else {
            return;
        };
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_client.remove(&self.ip);
            }
        }
    }
}

/// Lets a repeated warning through once per [`LOG_EVERY`] and counts the
/// rest.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// Some(number left out since the last one) when this one may be logged.
    fn due(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_total_and_per_client() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "third from one client");
        let _b1 = slots.take(b).unwrap();
        assert!(slots.take(b).is_none(), "fourth in total");
        drop(a1);
        let _a3 = slots.take(a).unwrap();
    }

    #[test]
    fn throttle_counts_what_it_leaves_out() {
        let mut t = Throttle::default();
        assert_eq!(t.due(), Some(0));
        assert_eq!(t.due(), None);
        assert_eq!(t.due(), None);
        t.last = Some(Instant::now() - LOG_EVERY);
        assert_eq!(t.due(), Some(2));
    }

    #[test]
    fn limits_leave_descriptors_for_the_rest() {
        let l = ConnLimits::with_fd_limit(1024);
        assert_eq!(l.max_connections, 768);
        assert_eq!(l.max_per_client, 256);
        let l = ConnLimits::with_fd_limit(300);
        assert_eq!(l.max_connections, 150);
        assert_eq!(l.max_per_client, 75);
        assert_eq!(ConnLimits::with_fd_limit(1 << 20).max_connections, 4096);
        assert_eq!(
            ConnLimits::with_fd_limit(1 << 20).header,
            Duration::from_secs(32)
        );
    }

    #[test]
    fn a_busy_connection_never_expires() {
        let limits = ConnLimits {
            header: Duration::ZERO,
            idle: Duration::ZERO,
            ..ConnLimits::with_fd_limit(1024)
        };
        let activity = Arc::new(Activity::new());
        assert!(activity.expired(&limits));
        let busy = Busy::start(&activity);
        assert!(!activity.expired(&limits));
        drop(busy);
        assert!(activity.expired(&limits));
    }
}
