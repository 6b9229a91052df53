//! A bounded fuzz of the API request path (issue 10): names, generateName,
//! labels, annotations, the four patch types, label and field selectors and
//! protobuf bodies, generated from a fixed seed and sent to a real server
//! over TLS. Every answer must be a real HTTP answer (no dropped
//! connection), never a 500, and every non-2xx answer a Status; the server
//! must log no panic and stay ready.
//!
//! Count-bounded (fixed seed, fixed number of requests), so a failure is
//! reproducible: the failing request is printed with its body.

#[path = "api_fuzz/requests.rs"]
mod requests;
mod support;

use std::fmt::Write as _;
use std::fs;

use rand::rngs::StdRng;
use rand::SeedableRng;
use requests::Req;
use serde_json::Value;
use support::{json, stdout, Server};

/// The fixed seed of the test command. To explore, set SKIFF_FUZZ_SEED
/// (and SKIFF_FUZZ_REQUESTS); keep what fails as a case in tests/bad_input.rs.
const SEED: u64 = 0x5eed_0010;
const REQUESTS: usize = 3000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
/// Requests per curl process (they share one TLS connection).
const BATCH: usize = 250;

/// A curl config value: quoted, with `\` and `"` escaped.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Send `reqs` through one curl process; (HTTP code, body) of each.
fn send_batch(server: &Server, first: usize, reqs: &[Req]) -> Vec<(u16, Vec<u8>)> {
    let dir = server.dir().join("fuzz");
    fs::create_dir_all(&dir).expect("fuzz dir");
    let token = server.admin_token();
    let mut cfg = String::new();
    for (i, r) in reqs.iter().enumerate() {
        let n = first + i;
        let body = dir.join(format!("req-{n}"));
        fs::write(&body, &r.body).expect("write body");
        if i > 0 {
            cfg.push_str("next\n");
        }
        let url = server.url(&r.path);
        let lines = [
            ("url", url),
            ("request", r.method.to_string()),
            ("header", format!("Authorization: Bearer {token}")),
            ("header", format!("Content-Type: {}", r.content_type)),
            ("data-binary", format!("@{}", body.display())),
            (
                "output",
                dir.join(format!("resp-{n}")).display().to_string(),
            ),
            ("write-out", "%{http_code}\\n".to_string()),
        ];
        for (k, v) in lines {
            if k == "write-out" {
                let _ = writeln!(cfg, "{k} = \"{v}\"");
            } else {
                let _ = writeln!(cfg, "{k} = {}", quoted(&v));
            }
        }
        // HTTP/1.1: over HTTP/2 curl 7.88 takes the server's RST_STREAM after
        // an early answer (a 404 before the body was read) as an error.
        cfg.push_str("http1.1\ninsecure\nsilent\nshow-error\nmax-time = 30\n");
    }
    let cfg_path = dir.join(format!("batch-{first}.cfg"));
    fs::write(&cfg_path, cfg).expect("write curl config");
    let out = server
        .net()
        .command("curl")
        .arg("-K")
        .arg(&cfg_path)
        .output()
        .expect("run curl");
    let codes: Vec<u16> = stdout(&out)
        .lines()
        .map(|l| {
            l.trim().parse().unwrap_or_else(|_| {
                eprintln!("not a code: {l:?}");
                0
            })
        })
        .collect();
    assert_eq!(
        codes.len(),
        reqs.len(),
        "one code per request: {}",
        stdout(&out)
    );
    if codes.contains(&0) {
        eprintln!("curl: {}", support::stderr(&out));
    }
    codes
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let body = fs::read(dir.join(format!("resp-{}", first + i))).unwrap_or_default();
            (c, body)
        })
        .collect()
}

fn describe(r: &Req) -> String {
    format!(
        "{} {} ({}) body: {}",
        r.method,
        r.path,
        r.content_type,
        String::from_utf8_lossy(&r.body[..r.body.len().min(2000)])
    )
}

/// The one 5xx kube-apiserver gives on purpose: a read from a
/// resourceVersion the store has not reached answers 504 Timeout with the
/// ResourceVersionTooLarge cause (after a short wait).
fn too_large_resource_version(code: u16, body: &[u8]) -> bool {
    let Ok(s) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    code == 504
        && s["kind"] == "Status"
        && s["reason"] == "Timeout"
        && s["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
}

#[test]
fn the_request_path_survives_fuzzing() {
    let server = Server::start();
    server.kubectl_ok(&["create", "configmap", "target", "--from-literal=k=v"]);
    server.kubectl_ok(&["label", "configmap", "target", "app=x"]);
    server.kubectl_ok(&["create", "deployment", "web", "--image=busybox"]);
    server.kubectl_ok(&["create", "service", "clusterip", "svc", "--tcp=80:80"]);
    server.kubectl_ok(&["create", "secret", "generic", "sec", "--from-literal=a=b"]);
    let seed = env_or("SKIFF_FUZZ_SEED", SEED);
    let count = env_or("SKIFF_FUZZ_REQUESTS", REQUESTS);
    let mut rng = StdRng::seed_from_u64(seed);
    let reqs: Vec<Req> = (0..count).map(|_| requests::request(&mut rng)).collect();
    let mut failures = Vec::new();
    let mut by_code = std::collections::BTreeMap::<u16, usize>::new();
    for (b, batch) in reqs.chunks(BATCH).enumerate() {
        let answers = send_batch(&server, b * BATCH, batch);
        for (r, (code, body)) in batch.iter().zip(answers) {
            *by_code.entry(code).or_default() += 1;
            let text = String::from_utf8_lossy(&body);
            let problem = if code == 0 {
                Some("no HTTP answer (connection dropped)".to_string())
            } else if code >= 500 && !too_large_resource_version(code, &body) {
                Some(format!("{code}: {text}"))
            } else if !(200..300).contains(&code) {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(s) if s["kind"] == "Status" && s["code"] == code => None,
                    _ => Some(format!("{code} without a Status: {text}")),
                }
            } else {
                None
            };
            if let Some(p) = problem {
                failures.push(format!("{}\n  => {p}", describe(r)));
            }
        }
    }
    eprintln!("seed {seed}: answers by HTTP code: {by_code:?}");
    let logs = server.logs();
    assert!(
        !logs.contains("panicked"),
        "the server panicked:\n{}",
        logs.lines()
            .filter(|l| l.contains("panick"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} of {count} requests (seed {seed}) failed; the first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    let (code, _) = server.curl_get("/readyz", &[]);
    assert_eq!(code, 200, "the server is still up");
    let status = json(&server.kubectl_ok(&["get", "configmap", "target", "-o", "json"]));
    assert_eq!(status["kind"], "ConfigMap");
}
