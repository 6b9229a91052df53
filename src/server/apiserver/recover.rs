//! Containment of a bug in one request handler.
//!
//! A panic while handling one request must never take the control plane
//! down (the server builds with `panic = "unwind"` for this): the handler
//! future runs under `catch_unwind`, and a panic becomes a 500 Status for that
//! request alone, as upstream's apiserver recovers per request. The log names
//! the method and path only: bodies, query strings and headers may carry
//! secrets or credentials.
//!
//! What unwinding cannot undo: a panic while a `std::sync::Mutex` is held
//! poisons it. The handlers keep no such lock across their own code (the
//! store is behind a channel), so nothing is left half-done but the request.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use http::Method;

use crate::api::status::ApiError;

/// The message of the 500 a panicking request gets.
pub const PANIC_MESSAGE: &str =
    "an internal error occurred: the request made the server panic; the server's log has the details";

/// Run one request's handler; a panic in it becomes a 500 Status.
pub async fn contain<T, F>(method: &Method, path: &str, handler: F) -> Result<T, ApiError>
where
    F: Future<Output = Result<T, ApiError>>,
{
    // Unwind safety: the handler's captured state is the request itself and
    // shared state whose invariants do not span an await point under a lock;
    // nothing of the failed request is used after the panic.
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic payload".into());
            tracing::error!(%method, path, panic = %what, "request handler panicked; answered 500");
            Err(ApiError::internal(PANIC_MESSAGE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_gets_a_500_and_the_next_request_is_served() {
        let boom = async {
            let s = String::from("aé");
            // The same fault as the generateName bug: a cut inside 'é'.
            let cut = std::hint::black_box(2);
            Ok::<_, ApiError>(s[..cut].to_string())
        };
        let err = contain(&Method::POST, "/api/v1/namespaces/x/configmaps", boom)
            .await
            .unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(err.reason, "InternalError");
        assert_eq!(err.to_status()["message"], PANIC_MESSAGE);
        let ok = contain(&Method::GET, "/version", async { Ok::<_, ApiError>(7) }).await;
        assert_eq!(ok.unwrap(), 7);
        let e = contain(&Method::GET, "/x", async {
            Err::<(), _>(ApiError::bad_request("no"))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code, 400, "errors pass through untouched");
    }
}
