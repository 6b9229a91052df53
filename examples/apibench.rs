//! apibench: the small load and timing tool behind `bench/*.sh`.
//!
//! ```text
//! apibench startup --url URL [--idle-secs S] [--token-file F] -- CMD ARGS...
//!     spawn CMD, poll URL (https: certificate not checked) until it answers
//!     200, print `ready_ms=…`; after S idle seconds print `rss_kib=… pss_kib=…`
//!     of the process; then stop it (SIGTERM, SIGKILL after 10 s).
//!     With `--token-file`, URL is a Node, asked with the first token of F
//!     (a tokens.csv the command writes), and ready means Ready=True.
//! apibench create --url URL --ca FILE --token T --clients N --requests M [--namespace NS] [--kind K]
//!     N clients, each with its own HTTPS connection, create M ConfigMaps in
//!     total (POST /api/v1/namespaces/NS/configmaps); print throughput and
//!     latency percentiles. `--kind crontab` creates CronTabs of
//!     stable.example.com/v1 instead (bench/crd.sh makes their CRD), and
//!     `--kind secret` Secrets, with the same stored payload.
//! apibench get --url URL --ca FILE --token T --clients N --requests M [--namespace NS]
//!     create one ConfigMap, then N clients GET it M times in total: the
//!     cheapest authorized request (what authorization costs shows most).
//! apibench watch --url URL --ca FILE --token T --events K [--namespace NS]
//!     open a watch on ConfigMaps, create K ConfigMaps one after another on
//!     another connection, and print the delay from each create's response
//!     (and from its request) to the watch event for it.
//! apibench schedule --url URL --ca FILE --token T --nodes N --pods M [--clients C]
//!     make N Nodes (Ready, 32 cpu, 128 GiB, 110 pods; no agent behind
//!     them), then create M pods (100m cpu, 128 MiB each) over C clients
//!     (16) and follow a watch until every pod is bound; print how long the
//!     creates took and the rate from the first create to the last binding.
//!     With `--pending`, the nodes start cordoned: every pod is created and
//!     found unschedulable first, then the nodes are uncordoned and the rate
//!     is from the first uncordon to the last binding (M pending pods).
//! apibench etcd-put --url http://127.0.0.1:2379 --clients N --requests M
//!     the same write load against etcd's v3 JSON gateway (POST /v3/kv/put),
//!     as the nearest peer store.
//! ```
//! The loops are bounded by the counts given; nothing runs without an end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

struct Args {
    pos: Vec<String>,
    opts: HashMap<String, String>,
    rest: Vec<String>,
}

fn parse_args() -> Args {
    let mut pos = Vec::new();
    let mut opts = HashMap::new();
    let mut rest = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            rest.extend(it.by_ref());
            break;
        }
        if let Some(k) = a.strip_prefix("--") {
            opts.insert(k.to_string(), it.next().unwrap_or_default());
        } else {
            pos.push(a);
        }
    }
    Args { pos, opts, rest }
}

impl Args {
    fn get(&self, k: &str) -> Result<&str> {
        self.opts
            .get(k)
            .map(String::as_str)
            .with_context(|| format!("--{k} is required"))
    }
    fn num(&self, k: &str, default: usize) -> Result<usize> {
        match self.opts.get(k) {
            Some(v) => v.parse().with_context(|| format!("--{k} {v}")),
            None => Ok(default),
        }
    }
}

/// Accepts any certificate: only for polling `/readyz` while the server is
/// still creating its CA.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(ca: Option<&str>) -> Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let mut cfg = match ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(path).with_context(|| format!("read CA {path}"))?
            {
                roots.add(cert?)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

struct Target {
    https: bool,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<String>,
}

impl Target {
    fn new(url: &str, ca: Option<&str>, token: Option<&str>) -> Result<Target> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            bail!("URL must start with http:// or https://: {url}")
        };
        let hostport = rest.split('/').next().unwrap_or(rest);
        let (host, port) = hostport
            .rsplit_once(':')
            .with_context(|| format!("URL needs a port: {url}"))?;
        Ok(Target {
            https,
            host: host.to_string(),
            port: port.parse()?,
            tls: if https { Some(tls_config(ca)?) } else { None },
            token: token.map(str::to_string),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        if self.https {
            let connector = tokio_rustls::TlsConnector::from(self.tls.clone().unwrap());
            let name = ServerName::try_from(self.host.clone())?;
            let tls = connector.connect(name, tcp).await?;
            let (send, conn) = http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(send)
        } else {
            let (send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(send)
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<String>) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{}:{}", self.host, self.port))
            .header("accept", "application/json");
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(s) => {
                b = b.header("content-type", "application/json");
                Full::new(Bytes::from(s))
            }
            None => Full::new(Bytes::new()),
        };
        b.body(body).unwrap()
    }
}

async fn send(
    conn: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes)> {
    conn.ready().await?;
    let resp = conn.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

fn report(label: &str, clients: usize, elapsed: Duration, mut lat: Vec<Duration>, errors: usize) {
    lat.sort();
    let n = lat.len();
    println!(
        "{label} clients={clients} ok={n} errors={errors} secs={:.3} rate={:.0}/s p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
    );
}

/// Run `requests` requests over `clients` connections; `make(i)` builds the
/// i-th request as (method, path, body).
async fn load(
    target: Arc<Target>,
    label: &str,
    clients: usize,
    requests: usize,
    make: Arc<dyn Fn(usize) -> (String, String, String) + Send + Sync>,
    ok: fn(StatusCode) -> bool,
) -> Result<()> {
    // Connect everyone first so that handshakes are not in the timings.
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(target.connect().await?);
    }
    let per = requests / clients;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        let target = target.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            let mut errors = 0usize;
            let mut first_error = None;
            for i in 0..per {
                let (method, path, body) = make(c * per + i);
                let t = Instant::now();
                let body = (!body.is_empty()).then_some(body);
                match send(&mut conn, target.request(&method, &path, body)).await {
                    Ok((st, _)) if ok(st) => lat.push(t.elapsed()),
                    Ok((st, body)) => {
                        errors += 1;
                        first_error
                            .get_or_insert(format!("{st}: {}", String::from_utf8_lossy(&body)));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(format!("{e:#}"));
                        // The connection is gone; open a new one.
                        match target.connect().await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e, first) = t.await?;
        all.extend(lat);
        errors += e;
        if let Some(f) = first {
            eprintln!("apibench: first error: {f}");
        }
    }
    report(label, clients, start.elapsed(), all, errors);
    Ok(())
}

async fn ensure_namespace(target: &Target, ns: &str) -> Result<()> {
    let mut conn = target.connect().await?;
    // There already: a caller that may not create namespaces goes on.
    let (st, _) = send(
        &mut conn,
        target.request("GET", &format!("/api/v1/namespaces/{ns}"), None),
    )
    .await?;
    if st.is_success() {
        return Ok(());
    }
    let body =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let (st, b) = send(
        &mut conn,
        target.request("POST", "/api/v1/namespaces", Some(body.to_string())),
    )
    .await?;
    if !(st.is_success() || st == StatusCode::CONFLICT) {
        bail!(
            "create namespace {ns}: {st} {}",
            String::from_utf8_lossy(&b)
        );
    }
    Ok(())
}

fn configmap(ns: &str, name: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "apibench"}},
        "data": {"key": "value", "payload": "x".repeat(256)},
    })
    .to_string()
}

/// A Secret with as many stored bytes as the ConfigMap: 192 bytes are 256
/// in base64.
fn secret(ns: &str, name: &str) -> String {
    use base64::Engine;
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "apibench"}},
        "data": {"key": "dmFsdWU=", "payload": base64::engine::general_purpose::STANDARD.encode("x".repeat(192))},
    })
    .to_string()
}

fn crontab(ns: &str, name: &str) -> String {
    serde_json::json!({
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "apibench"}},
        "spec": {"cronSpec": "*/5 * * * *", "image": "cron:1", "payload": "x".repeat(256)},
    })
    .to_string()
}

/// The API server `--url` (with `--ca`, `--token`) and the `--namespace`
/// to work in (`default_ns` when none is given).
fn api_target(a: &Args, default_ns: &str) -> Result<(Arc<Target>, String)> {
    let target = Arc::new(Target::new(
        a.get("url")?,
        a.opts.get("ca").map(String::as_str),
        a.opts.get("token").map(String::as_str),
    )?);
    let ns = a
        .opts
        .get("namespace")
        .cloned()
        .unwrap_or_else(|| default_ns.to_string());
    Ok((target, ns))
}

async fn cmd_create(a: &Args) -> Result<()> {
    let (target, ns) = api_target(a, "bench")?;
    ensure_namespace(&target, &ns).await?;
    let clients = a.num("clients", 1)?;
    let requests = a.num("requests", 1000)?;
    let prefix = format!("cm-{clients}-{}", std::process::id());
    let ns2 = ns.clone();
    let kind: &'static str = match a.opts.get("kind").map(String::as_str) {
        None | Some("configmap") => "configmap",
        Some("crontab") => "crontab",
        Some("secret") => "secret",
        Some(other) => bail!("--kind {other}: configmap, secret or crontab"),
    };
    let make = Arc::new(move |i: usize| {
        let name = format!("{prefix}-{i}");
        let (path, body) = match kind {
            "crontab" => (
                format!("/apis/stable.example.com/v1/namespaces/{ns2}/crontabs"),
                crontab(&ns2, &name),
            ),
            "secret" => (
                format!("/api/v1/namespaces/{ns2}/secrets"),
                secret(&ns2, &name),
            ),
            _ => (
                format!("/api/v1/namespaces/{ns2}/configmaps"),
                configmap(&ns2, &name),
            ),
        };
        ("POST".to_string(), path, body)
    });
    load(target, "create", clients, requests, make, |s| {
        s == StatusCode::CREATED
    })
    .await
}

/// GETs of one ConfigMap (created first): the cheapest authorized request,
/// where the cost of authorization shows most.
async fn cmd_get(a: &Args) -> Result<()> {
    let (target, ns) = api_target(a, "bench")?;
    ensure_namespace(&target, &ns).await?;
    let name = format!("get-{}", std::process::id());
    let mut conn = target.connect().await?;
    let (st, b) = send(
        &mut conn,
        target.request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some(configmap(&ns, &name)),
        ),
    )
    .await?;
    if st != StatusCode::CREATED {
        bail!("create {name}: {st} {}", String::from_utf8_lossy(&b));
    }
    let clients = a.num("clients", 1)?;
    let requests = a.num("requests", 1000)?;
    let path = format!("/api/v1/namespaces/{ns}/configmaps/{name}");
    let make = Arc::new(move |_| ("GET".to_string(), path.clone(), String::new()));
    load(target, "get", clients, requests, make, |s| {
        s == StatusCode::OK
    })
    .await
}

async fn cmd_etcd_put(a: &Args) -> Result<()> {
    use base64::Engine;
    let target = Arc::new(Target::new(a.get("url")?, None, None)?);
    let clients = a.num("clients", 1)?;
    let requests = a.num("requests", 1000)?;
    let value = base64::engine::general_purpose::STANDARD.encode(configmap("bench", "x"));
    let make = Arc::new(move |i: usize| {
        let key = base64::engine::general_purpose::STANDARD
            .encode(format!("/registry/configmaps/bench/cm-{clients}-{i}"));
        (
            "POST".to_string(),
            "/v3/kv/put".to_string(),
            serde_json::json!({"key": key, "value": value}).to_string(),
        )
    });
    load(target, "etcd-put", clients, requests, make, |s| {
        s.is_success()
    })
    .await
}

async fn cmd_watch(a: &Args) -> Result<()> {
    let (target, ns) = api_target(a, "benchwatch")?;
    ensure_namespace(&target, &ns).await?;
    let events = a.num("events", 500)?;

    // Current resourceVersion, so the watch starts after existing objects.
    let mut conn = target.connect().await?;
    let (st, body) = send(
        &mut conn,
        target.request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/configmaps?limit=1"),
            None,
        ),
    )
    .await?;
    if !st.is_success() {
        bail!("list: {st} {}", String::from_utf8_lossy(&body));
    }
    let list: serde_json::Value = serde_json::from_slice(&body)?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();

    let mut wconn = target.connect().await?;
    wconn.ready().await?;
    let resp = wconn
        .send_request(target.request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&allowWatchBookmarks=false"),
            None,
        ))
        .await?;
    if !resp.status().is_success() {
        bail!("watch: {}", resp.status());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut body = resp.into_body();
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let now = Instant::now();
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
                while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if let Ok(ev) = serde_json::from_slice::<serde_json::Value>(&line) {
                        if ev["type"] == "ADDED" {
                            if let Some(name) = ev["object"]["metadata"]["name"].as_str() {
                                let _ = tx.send((name.to_string(), now));
                            }
                        }
                    }
                }
            }
        }
    });

    let prefix = format!("w-{}", std::process::id());
    let mut sent = HashMap::new();
    let mut arrived: HashMap<String, Instant> = HashMap::new();
    for i in 0..events {
        let name = format!("{prefix}-{i}");
        let t0 = Instant::now();
        let (st, body) = send(
            &mut conn,
            target.request(
                "POST",
                &format!("/api/v1/namespaces/{ns}/configmaps"),
                Some(configmap(&ns, &name)),
            ),
        )
        .await?;
        let t1 = Instant::now();
        if st != StatusCode::CREATED {
            bail!("create {name}: {st} {}", String::from_utf8_lossy(&body));
        }
        sent.insert(name, (t0, t1));
        while let Ok((n, t)) = rx.try_recv() {
            arrived.insert(n, t);
        }
    }
    // Wait (bounded) for the rest of the events.
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrived.len() < events && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some((n, t))) => {
                arrived.insert(n, t);
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let mut from_ack = Vec::new();
    let mut from_req = Vec::new();
    for (name, (t0, t1)) in &sent {
        if let Some(t) = arrived.get(name) {
            from_ack.push(t.saturating_duration_since(*t1));
            from_req.push(t.saturating_duration_since(*t0));
        }
    }
    from_ack.sort();
    from_req.sort();
    println!(
        "watch events={} received={} ack_to_event_p50_ms={:.3} ack_to_event_p99_ms={:.3} request_to_event_p50_ms={:.3} request_to_event_p99_ms={:.3}",
        events,
        from_ack.len(),
        percentile(&from_ack, 0.5),
        percentile(&from_ack, 0.99),
        percentile(&from_req, 0.5),
        percentile(&from_req, 0.99),
    );
    if from_ack.len() < events {
        bail!("only {} of {events} watch events arrived", from_ack.len());
    }
    Ok(())
}

async fn cmd_schedule(a: &Args) -> Result<()> {
    let target = Arc::new(Target::new(
        a.get("url")?,
        a.opts.get("ca").map(String::as_str),
        a.opts.get("token").map(String::as_str),
    )?);
    let nodes = a.num("nodes", 100)?;
    let pods = a.num("pods", 1000)?;
    let clients = a.num("clients", 16)?.max(1);
    let ns = format!("sched-{}", std::process::id());
    ensure_namespace(&target, &ns).await?;
    // The namespace's ServiceAccount comes from a controller: wait for it.
    let mut conn = target.connect().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let path = format!("/api/v1/namespaces/{ns}/serviceaccounts/default");
        let (st, _) = send(&mut conn, target.request("GET", &path, None)).await?;
        if st.is_success() {
            break;
        }
        if Instant::now() > deadline {
            bail!("no default ServiceAccount in {ns}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pending = a.opts.contains_key("pending");
    let prefix = format!("bench-node-{}", std::process::id());
    let mut made: Vec<(String, serde_json::Value)> = Vec::new();
    for i in 0..nodes {
        let name = format!("{prefix}-{i}");
        let mut node = serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"unschedulable": pending},
        });
        let (st, body) = send(
            &mut conn,
            target.request("POST", "/api/v1/nodes", Some(node.to_string())),
        )
        .await?;
        if st != StatusCode::CREATED {
            bail!(
                "create node {name}: {st} {}",
                String::from_utf8_lossy(&body)
            );
        }
        let q = serde_json::json!({"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"});
        node["status"] = serde_json::json!({
            "capacity": q, "allocatable": q,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        });
        let (st, body) = send(
            &mut conn,
            target.request(
                "PUT",
                &format!("/api/v1/nodes/{name}/status"),
                Some(node.to_string()),
            ),
        )
        .await?;
        if !st.is_success() {
            bail!(
                "node {name} status: {st} {}",
                String::from_utf8_lossy(&body)
            );
        }
        made.push((name, node));
    }
    // Let the scheduler's informer take the nodes in before the clock.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (st, body) = send(
        &mut conn,
        target.request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/pods?limit=1"),
            None,
        ),
    )
    .await?;
    if !st.is_success() {
        bail!("list: {st} {}", String::from_utf8_lossy(&body));
    }
    let list: serde_json::Value = serde_json::from_slice(&body)?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut wconn = target.connect().await?;
    wconn.ready().await?;
    let resp = wconn
        .send_request(target.request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}"),
            None,
        ))
        .await?;
    if !resp.status().is_success() {
        bail!("watch: {}", resp.status());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut body = resp.into_body();
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let now = Instant::now();
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
                while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if let Ok(ev) = serde_json::from_slice::<serde_json::Value>(&line) {
                        let bound = ev["object"]["spec"]["nodeName"]
                            .as_str()
                            .is_some_and(|n| !n.is_empty());
                        if let (true, Some(name)) =
                            (bound, ev["object"]["metadata"]["name"].as_str())
                        {
                            let _ = tx.send((name.to_string(), now));
                        }
                    }
                }
            }
        }
    });
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(target.connect().await?);
    }
    let start = Instant::now();
    let per = pods.div_ceil(clients);
    let mut tasks = Vec::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        let (target, ns) = (target.clone(), ns.clone());
        tasks.push(tokio::spawn(async move {
            for i in (c * per)..((c + 1) * per).min(pods) {
                let pod = serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p-{i}"), "namespace": ns},
                    "spec": {"containers": [{"name": "c", "image": "busybox",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
                });
                let (st, body) = send(
                    &mut conn,
                    target.request(
                        "POST",
                        &format!("/api/v1/namespaces/{ns}/pods"),
                        Some(pod.to_string()),
                    ),
                )
                .await?;
                if st != StatusCode::CREATED {
                    bail!("create pod: {st} {}", String::from_utf8_lossy(&body));
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let created = start.elapsed();
    let mut start = start;
    if pending {
        // Every pod tried once and parked (its PodScheduled=False written),
        // then the nodes open.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (st, body) = send(
                &mut conn,
                target.request("GET", &format!("/api/v1/namespaces/{ns}/pods"), None),
            )
            .await?;
            if !st.is_success() {
                bail!("list pods: {st}");
            }
            let list: serde_json::Value = serde_json::from_slice(&body)?;
            let parked = list["items"].as_array().map_or(0, |items| {
                items
                    .iter()
                    .filter(|p| {
                        p["status"]["conditions"].as_array().is_some_and(|c| {
                            c.iter()
                                .any(|c| c["type"] == "PodScheduled" && c["status"] == "False")
                        })
                    })
                    .count()
            });
            if parked == pods {
                break;
            }
            if Instant::now() > deadline {
                bail!("only {parked} of {pods} pods were found unschedulable");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Over all the clients' connections at once, so that the nodes open
        // nearly together.
        let mut conns = Vec::new();
        for _ in 0..clients {
            conns.push(target.connect().await?);
        }
        start = Instant::now();
        let per = made.len().div_ceil(clients).max(1);
        let mut tasks = Vec::new();
        for (chunk, mut conn) in made.chunks(per).map(<[_]>::to_vec).zip(conns) {
            let target = target.clone();
            tasks.push(tokio::spawn(async move {
                for (name, mut node) in chunk {
                    node["spec"]["unschedulable"] = serde_json::json!(false);
                    let (st, body) = send(
                        &mut conn,
                        target.request(
                            "PUT",
                            &format!("/api/v1/nodes/{name}"),
                            Some(node.to_string()),
                        ),
                    )
                    .await?;
                    if !st.is_success() {
                        bail!("uncordon {name}: {st} {}", String::from_utf8_lossy(&body));
                    }
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    let mut bound: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while bound.len() < pods && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some((n, t))) => {
                bound.entry(n).or_insert(t);
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let last = bound.values().max().copied().unwrap_or(start);
    let secs = last.saturating_duration_since(start).as_secs_f64();
    println!(
        "schedule nodes={nodes} pods={pods} pending={pending} bound={} create_secs={:.3} bound_secs={secs:.3} rate={:.0}/s",
        bound.len(),
        created.as_secs_f64(),
        bound.len() as f64 / secs.max(1e-9),
    );
    if bound.len() < pods {
        bail!("only {} of {pods} pods were bound", bound.len());
    }
    Ok(())
}

/// A Node whose Ready condition is True.
fn says_ready(body: &[u8]) -> bool {
    let Ok(node) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    node["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn read_kib(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn cmd_startup(a: &Args) -> Result<()> {
    if a.rest.is_empty() {
        bail!("startup: give the command after --");
    }
    let mut target = Target::new(a.get("url")?, None, None)?;
    let idle = a.num("idle-secs", 0)?;
    let token_file = a.get("token-file").ok().map(str::to_string);
    let node_ready = token_file.is_some();
    let path = a
        .get("url")?
        .splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap_or_else(|| "/".into());
    let start = Instant::now();
    let mut child = tokio::process::Command::new(&a.rest[0])
        .args(&a.rest[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawn {:?}", a.rest))?;
    let pid = child.id().context("child pid")?;
    let deadline = start + Duration::from_secs(120);
    let ready = loop {
        if let Some(st) = child.try_wait()? {
            bail!("{:?} exited before it was ready: {st}", a.rest[0]);
        }
        if let (None, Some(f)) = (&target.token, &token_file) {
            target.token = std::fs::read_to_string(f)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .next()
                        .map(|l| l.split(',').next().unwrap_or("").to_string())
                })
                .filter(|t| !t.is_empty());
        }
        if let Ok(mut conn) = target.connect().await {
            if let Ok((st, body)) = send(&mut conn, target.request("GET", &path, None)).await {
                if st.is_success() && (!node_ready || says_ready(&body)) {
                    break start.elapsed();
                }
            }
        }
        if Instant::now() > deadline {
            bail!("not ready after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    println!("ready_ms={:.1}", ready.as_secs_f64() * 1000.0);
    if idle > 0 {
        tokio::time::sleep(Duration::from_secs(idle as u64)).await;
        let rss = read_kib(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0);
        let pss = read_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0);
        println!("rss_kib={rss} pss_kib={pss}");
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let a = parse_args();
    match a.pos.first().map(String::as_str) {
        Some("startup") => cmd_startup(&a).await,
        Some("create") => cmd_create(&a).await,
        Some("get") => cmd_get(&a).await,
        Some("watch") => cmd_watch(&a).await,
        Some("etcd-put") => cmd_etcd_put(&a).await,
        Some("schedule") => cmd_schedule(&a).await,
        _ => bail!(
            "usage: apibench startup|create|get|watch|schedule|etcd-put … (see examples/apibench.rs)"
        ),
    }
}
