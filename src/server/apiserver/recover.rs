//! Containment of a bug in one request handler.
//!
//! A panic while handling one request must never take the control plane
//! down (the server builds with `panic = "unwind"` for this): the handler
//! future runs under `catch_unwind`, and a panic becomes a 500 Status for that
//! request alone, as upstream's apiserver recovers per request.
//!
//! The log names the method, the path and where the panic happened, never
//! its message: a message like "byte index 58 is not a char boundary … of
//! `<the generateName>`" quotes the request, and bodies may carry secrets. A
//! panic hook (installed once) keeps the default report for panics outside
//! a request and records only the location for those inside one.
//!
//! Everything else stays crash-only, as it was when the binary aborted on
//! panic: a panic outside a request (the store's writer thread, a
//! controller, a connection task) is reported and then aborts the process,
//! so that systemd restarts a whole server instead of leaving one whose
//! writer or controller silently died. Unit tests keep unwinding (proptest
//! and `should_panic` rely on it).
//!
//! What unwinding cannot undo: a panic while a `std::sync::Mutex` is held
//! poisons it. The handlers hold no such lock in their own code (the store
//! keeps its locks inside short critical sections and copes with poisoning),
//! so nothing is left half-done but the request.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use futures::FutureExt;
use http::Method;

use crate::api::status::ApiError;

/// The message of the 500 a panicking request gets.
pub const PANIC_MESSAGE: &str =
    "an internal error occurred: the request made the server panic; the server's log has the details";

tokio::task_local! {
    /// Set while a request's handler runs: where it panicked, if it did.
    static PANICKED_AT: RefCell<Option<String>>;
}

static HOOK: Once = Once::new();

/// Install the panic policy above (once; later calls do nothing). The server
/// calls it at start; [`contain`] makes sure of it.
pub fn install_panic_policy() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_request = PANICKED_AT
                .try_with(|slot| {
                    let at = info
                        .location()
                        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                        .unwrap_or_else(|| "an unknown place".into());
                    if let Ok(mut slot) = slot.try_borrow_mut() {
                        *slot = Some(at);
                    }
                })
                .is_ok();
            if !in_request {
                previous(info);
                #[cfg(not(test))]
                std::process::abort();
            }
        }));
    });
}

/// Run one request's handler; a panic in it becomes a 500 Status.
pub async fn contain<T, F>(method: &Method, path: &str, handler: F) -> Result<T, ApiError>
where
    F: Future<Output = Result<T, ApiError>>,
{
    match catch(handler).await {
        Ok(r) => r,
        Err(at) => {
            tracing::error!(%method, path, at, "request handler panicked; answered 500");
            Err(ApiError::internal(PANIC_MESSAGE))
        }
    }
}

/// Run a task that a request spawned to send its response (a streamed
/// list, a watch) under the same containment: a panic ends that task alone
/// (None), so the response ends early instead of the server.
pub async fn contain_task<F: Future>(
    what: &'static str,
    resource: &str,
    task: F,
) -> Option<F::Output> {
    match catch(task).await {
        Ok(v) => Some(v),
        Err(at) => {
            tracing::error!(
                what,
                resource,
                at,
                "a response task panicked; its response ends early"
            );
            None
        }
    }
}

/// `fut`'s output, or where it panicked.
async fn catch<F: Future>(fut: F) -> Result<F::Output, String> {
    install_panic_policy();
    // Unwind safety: what the future captured is its request and shared
    // state whose invariants do not span a panic; nothing of the failed
    // request is used after it.
    let (result, at) = PANICKED_AT
        .scope(RefCell::new(None), async {
            let r = AssertUnwindSafe(fut).catch_unwind().await;
            let at = PANICKED_AT.with(|slot| slot.borrow_mut().take());
            (r, at)
        })
        .await;
    result.map_err(|_payload| at.unwrap_or_else(|| "an unknown place".into()))
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

    #[tokio::test]
    async fn a_panicking_response_task_ends_alone() {
        // Spawned as the streamed list and the watch spawn theirs: the
        // panic is caught inside the task, which then ends normally.
        let task = tokio::spawn(contain_task("list", "configmaps", async {
            let v: Vec<u8> = Vec::new();
            std::hint::black_box(&v)[3]
        }));
        assert_eq!(task.await.ok(), Some(None));
        let fine = tokio::spawn(contain_task("watch", "pods", async { 5 }));
        assert_eq!(fine.await.ok(), Some(Some(5)));
    }
}
