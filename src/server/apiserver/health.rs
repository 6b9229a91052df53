//! `/livez`, `/readyz` and `/healthz` in the apiserver's format: `ok`, or
//! with `?verbose` one `[+]name ok` line per check; a failing check gives
//! 500 and lists every check with `[-]name failed: reason`.
//!
//! Liveness is only "the process serves": a full disk is not cured by a
//! restart. Readiness (and the older healthz) also asks the store whether
//! writes go through, so a node whose disk is full stops being ready.

use axum::response::Response;
use http::StatusCode;

use super::negotiate::text_response;
use super::query::Query;
use super::ApiState;

pub async fn check(state: &ApiState, which: &'static str, q: &Query) -> Response {
    let mut results: Vec<(&str, Result<(), String>)> = vec![("ping", Ok(()))];
    if matches!(which, "readyz" | "healthz") {
        let store = state.objects.store.ready().await.map_err(|e| {
            // Health endpoints answer without credentials: the reason goes
            // to the log (at most every 10 s, however often it is asked),
            // not to the caller, as upstream's "reason withheld".
            if log_due() {
                tracing::warn!(check = which, error = %e, "the store is not ready");
            }
            "reason withheld".to_string()
        });
        results.push(("store", store));
    }
    render(which, q.get("verbose").is_some(), &results)
}

/// Whether a failing check may be logged now: at most once every 10 s.
fn log_due() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
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

fn render(which: &str, verbose: bool, results: &[(&str, Result<(), String>)]) -> Response {
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

    #[tokio::test]
    async fn formats_like_the_apiserver() {
        let ok = [("ping", Ok(())), ("store", Ok(()))];
        assert_eq!(body(render("readyz", false, &ok)).await, (200, "ok".into()));
        assert_eq!(
            body(render("readyz", true, &ok)).await,
            (200, "[+]ping ok\n[+]store ok\nreadyz check passed\n".into())
        );
        let bad = [("ping", Ok(())), ("store", Err("disk full".to_string()))];
        assert_eq!(
            body(render("readyz", false, &bad)).await,
            (
                500,
                "[+]ping ok\n[-]store failed: disk full\nreadyz check failed\n".into()
            )
        );
    }
}
