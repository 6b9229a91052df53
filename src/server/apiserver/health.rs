//! `/livez`, `/readyz` and `/healthz` in the apiserver's format: `ok`, or
//! with `?verbose` one `[+]name ok` line per check; a failing check gives
//! 500 and lists every check with `[-]name failed: reason`.
//!
//! Liveness is only "the process serves": a full disk is not cured by a
//! restart. Readiness (and the older healthz) also asks the store whether
//! writes go through, so a node whose disk is full stops being ready, and
//! whether each of the server's components has started its work
//! (`poststarthook/skiff-<component>`, see `server::components`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::response::Response;
use http::StatusCode;
use tokio::time::Instant;

use super::negotiate::text_response;
use super::query::Query;
use super::ApiState;
use crate::api::status::ApiError;

/// The checks of each endpoint, in the order `?verbose` lists them. `etcd`
/// is also answered, as the store, for clients that ask for upstream's name.
const LIVEZ: &[&str] = &["ping", "log"];
const READYZ: &[&str] = &["ping", "log", "store"];

/// How long a failed store probe answers for later ones. Probing a store
/// that has seen a write fail writes to it; probes every few milliseconds
/// from several callers would keep a full disk busy.
const FAILED_FOR: Duration = Duration::from_secs(1);

fn checks_of(endpoint: &str) -> &'static [&'static str] {
    if endpoint == "livez" {
        LIVEZ
    } else {
        READYZ
    }
}

/// What `/readyz` and `/healthz` ask.
#[derive(Default)]
pub struct Readiness {
    pub store: ReadyProbe,
    pub components: crate::server::components::Readiness,
}

/// The components' checks of `endpoint` (none for liveness: a component
/// still starting is no reason to restart the process).
fn component_checks(state: &ApiState, endpoint: &str) -> Vec<(String, Result<(), String>)> {
    if endpoint == "livez" {
        return Vec::new();
    }
    let not_finished = |ready: bool| {
        if ready {
            Ok(())
        } else {
            Err("not finished".to_string())
        }
    };
    state
        .ready
        .components
        .checks()
        .into_iter()
        .map(|(name, ready)| (name, not_finished(ready)))
        .collect()
}

/// Every check of `which` with its result.
async fn results(state: &ApiState, which: &'static str) -> Vec<(String, Result<(), String>)> {
    let mut results: Vec<(String, Result<(), String>)> = Vec::new();
    for name in checks_of(which) {
        results.push((name.to_string(), run_check(state, which, name).await));
    }
    results.extend(component_checks(state, which));
    results
}

pub async fn check(state: &ApiState, which: &'static str, q: &Query) -> Response {
    render(
        which,
        q.get("verbose").is_some(),
        &results(state, which).await,
    )
}

/// Whether `/readyz` would answer ok.
pub async fn ready(state: &ApiState) -> bool {
    results(state, "readyz")
        .await
        .iter()
        .all(|(_, r)| r.is_ok())
}

/// `/<endpoint>/<check>`: that check alone, as upstream: `ok`, or 500 with
/// the reason; 404 for a check the endpoint does not have.
pub async fn check_one(
    state: &ApiState,
    endpoint: &'static str,
    check: &str,
) -> Result<Response, ApiError> {
    let name = if check == "etcd" { "store" } else { check };
    let components = component_checks(state, endpoint);
    let result = match checks_of(endpoint).iter().find(|c| **c == name) {
        Some(name) => run_check(state, endpoint, name).await,
        None => match components.iter().find(|(c, _)| c == name) {
            Some((_, result)) => result.clone(),
            None => {
                let all: Vec<&str> = checks_of(endpoint)
                    .iter()
                    .copied()
                    .chain(components.iter().map(|(c, _)| c.as_str()))
                    .collect();
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!(
                        "{endpoint} has no check {:?}; it has: {}",
                        crate::api::status::truncate_echo(check, 64),
                        all.join(", ")
                    ),
                ));
            }
        },
    };
    Ok(match result {
        Ok(()) => text_response(StatusCode::OK, "ok"),
        Err(e) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("internal server error: {e}\n"),
        ),
    })
}

async fn run_check(state: &ApiState, endpoint: &str, name: &str) -> Result<(), String> {
    if name != "store" {
        return Ok(());
    }
    state
        .ready
        .store
        .probe(|| state.objects.store.ready())
        .await
        .map_err(|e| {
            // Health endpoints answer without credentials: the reason goes
            // to the log (at most every 10 s, however often it is asked),
            // not to the caller, as upstream's "reason withheld".
            if log_due() {
                tracing::warn!(check = endpoint, error = %e, "the store is not ready");
            }
            "reason withheld".to_string()
        })
}

/// The store's readiness, asked of the store by one caller at a time:
/// callers that arrive while a probe runs take its result, and a failure
/// stands for [`FAILED_FOR`]. A success is not reused by later callers: a
/// store without a failed write answers from memory, and readiness must
/// turn false at the first failed write.
pub struct ReadyProbe {
    /// How long a failure stands ([`FAILED_FOR`]).
    failed_for: Duration,
    /// Probes finished so far.
    finished: AtomicU64,
    last: tokio::sync::Mutex<Option<Probed>>,
}

struct Probed {
    /// The value of `finished` this probe set.
    seq: u64,
    at: Instant,
    result: Result<(), String>,
}

impl Default for ReadyProbe {
    fn default() -> Self {
        ReadyProbe {
            failed_for: FAILED_FOR,
            finished: AtomicU64::new(0),
            last: tokio::sync::Mutex::new(None),
        }
    }
}

impl ReadyProbe {
    pub async fn probe<F, Fut, E>(&self, ask: F) -> Result<(), String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let arrived = self.finished.load(Ordering::Acquire);
        let mut last = self.last.lock().await;
        if let Some(p) = last.as_ref() {
            let ran_while_waiting = p.seq > arrived;
            let failed_lately = p.result.is_err() && p.at.elapsed() < self.failed_for;
            if ran_while_waiting || failed_lately {
                return p.result.clone();
            }
        }
        let result = ask().await.map_err(|e| e.to_string());
        let seq = self.finished.fetch_add(1, Ordering::AcqRel) + 1;
        *last = Some(Probed {
            seq,
            at: Instant::now(),
            result: result.clone(),
        });
        result
    }
}

/// Whether a failing check may be logged now: at most once every 10 s.
fn log_due() -> bool {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    (last == 0 || now >= last + 10)
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

fn render(which: &str, verbose: bool, results: &[(String, Result<(), String>)]) -> Response {
    let failed = results.iter().any(|(_, r)| r.is_err());
    if !failed && !verbose {
        return text_response(StatusCode::OK, "ok");
    }
    let mut text = String::new();
    for (name, res) in results {
        match res {
            Ok(()) => text.push_str(&format!("[+]{name} ok\n")),
            Err(e) => text.push_str(&format!("[-]{name} failed: {e}\n")),
        }
    }
    let (code, verdict) = if failed {
        (StatusCode::INTERNAL_SERVER_ERROR, "failed")
    } else {
        (StatusCode::OK, "passed")
    };
    text.push_str(&format!("{which} check {verdict}\n"));
    text_response(code, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(resp: Response) -> (u16, String) {
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (code, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A store probe that counts its calls and waits for the gate.
    struct Probe {
        calls: AtomicU64,
        gate: tokio::sync::Semaphore,
        fail: bool,
    }

    impl Probe {
        fn new(fail: bool) -> std::sync::Arc<Probe> {
            std::sync::Arc::new(Probe {
                calls: AtomicU64::new(0),
                gate: tokio::sync::Semaphore::new(0),
                fail,
            })
        }

        async fn ask(&self) -> Result<(), String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let _pass = self.gate.acquire().await.map_err(|e| e.to_string())?;
            if self.fail {
                Err("disk full".into())
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn concurrent_probes_ask_the_store_once() {
        for fail in [false, true] {
            let ready = std::sync::Arc::new(ReadyProbe::default());
            let store = Probe::new(fail);
            let callers: Vec<_> = (0..16)
                .map(|_| {
                    let (ready, store) = (ready.clone(), store.clone());
                    tokio::spawn(async move { ready.probe(|| store.ask()).await })
                })
                .collect();
            // Let every caller reach the probe (the first one waits at the
            // gate, the others behind it), then open the gate.
            while store.calls.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            for _ in 0..64 {
                tokio::task::yield_now().await;
            }
            store.gate.add_permits(1000);
            for c in callers {
                assert_eq!(c.await.unwrap().is_err(), fail);
            }
            assert_eq!(store.calls.load(Ordering::SeqCst), 1, "fail={fail}");
        }
    }

    #[tokio::test]
    async fn a_failure_stands_for_a_while_a_success_does_not() {
        let bad = Probe::new(true);
        bad.gate.add_permits(1000);
        // A failure that stands (far longer than this test runs) is not
        // asked again; one that does not stand is.
        for (stands, calls) in [(Duration::from_secs(3600), 1), (Duration::ZERO, 3)] {
            let ready = ReadyProbe {
                failed_for: stands,
                ..ReadyProbe::default()
            };
            bad.calls.store(0, Ordering::SeqCst);
            for _ in 0..3 {
                assert!(ready.probe(|| bad.ask()).await.is_err());
            }
            assert_eq!(bad.calls.load(Ordering::SeqCst), calls, "{stands:?}");
        }
        let ready = ReadyProbe::default();
        let good = Probe::new(false);
        good.gate.add_permits(1000);
        assert!(ready.probe(|| good.ask()).await.is_ok());
        assert!(ready.probe(|| good.ask()).await.is_ok());
        assert_eq!(
            good.calls.load(Ordering::SeqCst),
            2,
            "a success is asked again"
        );
    }

    #[tokio::test]
    async fn formats_like_the_apiserver() {
        let ok = [("ping".to_string(), Ok(())), ("store".to_string(), Ok(()))];
        assert_eq!(body(render("readyz", false, &ok)).await, (200, "ok".into()));
        assert_eq!(
            body(render("readyz", true, &ok)).await,
            (200, "[+]ping ok\n[+]store ok\nreadyz check passed\n".into())
        );
        let bad = [
            ("ping".to_string(), Ok(())),
            ("store".to_string(), Err("disk full".to_string())),
        ];
        assert_eq!(
            body(render("readyz", false, &bad)).await,
            (
                500,
                "[+]ping ok\n[-]store failed: disk full\nreadyz check failed\n".into()
            )
        );
    }
}
