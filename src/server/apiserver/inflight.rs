//! Bounds on the work the API server takes on at once, as the apiserver's
//! `--max-requests-inflight` and `--max-mutating-requests-inflight`: a cap on
//! short requests being served (reads and writes counted apart), and a
//! budget of request-body bytes held by requests in progress. When either is
//! full the request is answered 429 at once, never queued: a queue would
//! hold the very memory the bound is for, and clients retry on 429.
//!
//! Long-running requests (watches, logs, exec, attach, port-forward, proxy)
//! and the health endpoints take no slot, as upstream: a watch would hold
//! its slot for hours, and a probe must answer while the server is busy.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::Method;
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::status::ApiError;

/// How long a client told to back off waits (upstream's constant).
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The default budget of request-body bytes in progress: one largest body
/// (3 MiB). Measured with bench/hostile-memory.sh (release build): one
/// 3 MiB create of 240,000 labels, refused only by the stored-size check
/// after decoding and managedFields, took the server from 20 MB to a peak of
/// 341 MB, about 107 bytes of memory per body byte. A budget of one such
/// body keeps the worst case
/// near 340 MB, under 350 MiB; small bodies (a few KiB) still go a
/// thousand at a time. With the defaults, 30 s of 16 writers of such
/// bodies (and 1 MB valid ones) while 8 readers listed a 13 MB namespace
/// peaked at 275 MB (722 writes got 429); with no bound the same load
/// peaked at 680 MB and stayed at 219 MB.
pub const DEFAULT_BODY_BUDGET: usize = super::negotiate::MAX_BODY_BYTES;

/// Body bytes are reserved at least this many at a time when a body has no
/// (or a wrong) Content-Length, so that a body sent in small frames does not
/// touch the semaphore for each one.
const RESERVE_STEP: usize = 64 * 1024;

/// The limits; 0 means "no limit", as upstream's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InflightLimits {
    /// Reads (GET, HEAD) being served at once.
    pub read_only: usize,
    /// Writes (every other method) being served at once.
    pub mutating: usize,
    /// Request-body bytes held by requests in progress.
    pub body_bytes: usize,
}

/// The server-wide counters of [`InflightLimits`].
pub struct Inflight {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    body: Option<Arc<Semaphore>>,
}

fn semaphore(n: usize) -> Option<Arc<Semaphore>> {
    (n > 0).then(|| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))))
}

/// The apiserver's answer when it is full: 429 with `Retry-After: 1`.
/// Upstream's filter sends this message as plain text; here it is the Status
/// that client-go makes of it (reason and retryAfterSeconds), since every
/// error of this API is a Status.
pub fn too_many_requests() -> ApiError {
    let mut e = ApiError::new(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
    );
    e.retry_after_seconds = Some(RETRY_AFTER_SECONDS);
    e
}

impl Inflight {
    pub fn new(limits: &InflightLimits) -> Inflight {
        Inflight {
            read_only: semaphore(limits.read_only),
            mutating: semaphore(limits.mutating),
            body: semaphore(limits.body_bytes),
        }
    }

    /// A slot for a short request, or 429 when its kind is full. Ok(None):
    /// the request takes no slot (no limit, or it is exempt).
    pub fn admit(
        &self,
        method: &Method,
        path: &str,
        watch: bool,
    ) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        if is_exempt(method, path, watch) {
            return Ok(None);
        }
        let sem = if is_read_only(method) {
            &self.read_only
        } else {
            &self.mutating
        };
        match sem {
            None => Ok(None),
            Some(s) => s
                .clone()
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| too_many_requests()),
        }
    }

    /// Read a whole request body of at most `max` bytes, counting its bytes
    /// against the body budget as they arrive (by Content-Length first, so a
    /// body that cannot fit is refused before it is read). The returned
    /// reservation holds those bytes until it is dropped.
    pub async fn read_body<B>(
        &self,
        body: &mut B,
        max: usize,
    ) -> Result<(Bytes, Reservation), ApiError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let mut held = Reservation::default();
        let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
        if declared > max {
            return Err(ApiError::too_large(max));
        }
        held.grow(self.body.as_ref(), declared)?;
        let mut buf = BytesMut::with_capacity(declared);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::bad_request(format!("failed to read the request body: {e}"))
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let len = buf.len() + data.len();
            if len > max {
                return Err(ApiError::too_large(max));
            }
            if len > held.bytes {
                let want = (held.bytes + RESERVE_STEP).max(len).min(max);
                held.grow(self.body.as_ref(), want)?;
            }
            buf.extend_from_slice(&data);
        }
        Ok((buf.freeze(), held))
    }
}

/// Read and discard what is left of a refused request's body (at most `max`
/// bytes, until `deadline`) while its answer is sent, holding no memory. A
/// body left unread makes HTTP/1 close the connection under a client still
/// sending (which then loses the answer to a reset) and HTTP/2 reset the
/// stream; Go's server lingers the same way. Every request body is wrapped
/// in [`Lingering`], which does this when the body is dropped unread.
fn drain<B>(body: B, max: usize, deadline: Option<tokio::time::Instant>)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    let discard = async move {
        let mut body = body;
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > max {
                break;
            }
        }
    };
    tokio::spawn(async move {
        match deadline {
            Some(d) => {
                let _ = tokio::time::timeout_at(d, discard).await;
            }
            None => discard.await,
        }
    });
}

/// A request body that, dropped unread (a request answered without reading
/// its body: a 404, a 403, a refused verb), is read to its end in the
/// background as [`drain`] does, so that the answer is not lost to a
/// connection closed or a stream reset under the client.
pub struct Lingering<B: Body<Data = Bytes> + Send + Unpin + 'static> {
    inner: Option<B>,
    max: usize,
    deadline: Option<tokio::time::Instant>,
}

impl<B: Body<Data = Bytes> + Send + Unpin + 'static> Lingering<B> {
    pub fn new(body: B, max: usize, deadline: Option<tokio::time::Instant>) -> Self {
        Lingering {
            inner: Some(body),
            max,
            deadline,
        }
    }
}

impl<B: Body<Data = Bytes> + Send + Unpin + 'static> Body for Lingering<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, B::Error>>> {
        match self.inner.as_mut() {
            Some(b) => std::pin::Pin::new(b).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| hyper::body::SizeHint::with_exact(0), Body::size_hint)
    }
}

impl<B: Body<Data = Bytes> + Send + Unpin + 'static> Drop for Lingering<B> {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take() {
            // Only a runtime can read it; outside one (never on the request
            // path) the body is simply dropped.
            if !body.is_end_stream() && tokio::runtime::Handle::try_current().is_ok() {
                drain(body, self.max, self.deadline);
            }
        }
    }
}

/// Request-body bytes counted against the budget; given back on drop.
#[derive(Default, Debug)]
pub struct Reservation {
    bytes: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Hold `total` bytes in all (no-op without a budget); 429 if the budget
    /// has not that much left.
    fn grow(&mut self, budget: Option<&Arc<Semaphore>>, total: usize) -> Result<(), ApiError> {
        let more = total.saturating_sub(self.bytes);
        let Some(budget) = budget else {
            self.bytes = self.bytes.max(total);
            return Ok(());
        };
        if more == 0 {
            return Ok(());
        }
        let n = u32::try_from(more).map_err(|_| too_many_requests())?;
        let permit = budget
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| too_many_requests())?;
        match &mut self.permit {
            Some(p) => p.merge(permit),
            None => self.permit = Some(permit),
        }
        self.bytes = total;
        Ok(())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// What a request holds while it is served: its slot until the response
/// has been sent, its body bytes until the response has been produced.
#[derive(Default)]
pub struct Held {
    pub slot: Option<OwnedSemaphorePermit>,
    pub body: Vec<Reservation>,
}

tokio::task_local! {
    static HELD: RefCell<Held>;
}

/// Run one request's handler, collecting what it comes to hold (through
/// [`hold_slot`] and [`hold_body`]) so the caller decides when to let go.
pub async fn track<F: std::future::Future>(fut: F) -> (F::Output, Held) {
    HELD.scope(RefCell::new(Held::default()), async {
        let out = fut.await;
        let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
        (out, held)
    })
    .await
}

/// Keep the request's slot past its handler (outside [`track`]: dropped).
pub fn hold_slot(slot: OwnedSemaphorePermit) {
    let _ = HELD.try_with(|h| h.borrow_mut().slot = Some(slot));
}

/// Keep a body's reservation until the handler returns.
pub fn hold_body(r: Reservation) {
    let _ = HELD.try_with(|h| h.borrow_mut().body.push(r));
}

fn is_read_only(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// Subresources that stream for as long as the client wants.
const LONG_RUNNING_SUBRESOURCES: [&str; 5] = ["attach", "exec", "proxy", "log", "portforward"];

/// Whether a request takes no slot: health probes, and what upstream's
/// `BasicLongRunningRequestCheck` calls long-running (the verbs watch and
/// proxy, and the subresources above). `watch` is the request's
/// `?watch=true|1`; it makes a GET of a collection a watch.
pub fn is_exempt(method: &Method, path: &str, watch: bool) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if matches!(
        segs.first(),
        Some(&"livez") | Some(&"readyz") | Some(&"healthz")
    ) {
        return true;
    }
    let rest: &[&str] = match segs.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return false,
    };
    // `/api/v1/watch/...` and `/api/v1/proxy/...`: the verb in the path.
    if matches!(rest.first(), Some(&"watch") | Some(&"proxy")) {
        return true;
    }
    // namespaces/<ns>/<resource>/<name>/<sub>; a namespace's own
    // subresources (status, finalize) are short.
    let parts = match rest {
        ["namespaces", _ns, more @ ..] if !more.is_empty() => {
            if matches!(more.first(), Some(&"status") | Some(&"finalize")) {
                rest
            } else {
                more
            }
        }
        _ => rest,
    };
    let name = parts.get(1);
    if let Some(sub) = parts.get(2) {
        if LONG_RUNNING_SUBRESOURCES.contains(sub) {
            return true;
        }
    }
    // A watch is a GET of a collection with ?watch (of one object, it is a
    // get, as upstream's RequestInfo).
    watch && is_read_only(method) && name.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn exempt(method: Method, path: &str, watch: bool) -> bool {
        is_exempt(&method, path, watch)
    }

    #[test]
    fn long_running_requests_are_classified_as_upstream() {
        let g = Method::GET;
        assert!(exempt(g.clone(), "/api/v1/namespaces/d/pods", true));
        assert!(exempt(g.clone(), "/api/v1/pods", true));
        assert!(exempt(
            g.clone(),
            "/apis/apps/v1/namespaces/d/deployments",
            true
        ));
        assert!(exempt(g.clone(), "/api/v1/watch/namespaces/d/pods", false));
        assert!(exempt(g.clone(), "/api/v1/proxy/nodes/n1/x", false));
        assert!(exempt(g.clone(), "/api/v1/namespaces/d/pods/p/log", false));
        assert!(exempt(
            Method::POST,
            "/api/v1/namespaces/d/pods/p/exec",
            false
        ));
        assert!(exempt(
            Method::POST,
            "/api/v1/namespaces/d/pods/p/attach",
            false
        ));
        assert!(exempt(
            Method::POST,
            "/api/v1/namespaces/d/pods/p/portforward",
            false
        ));
        assert!(exempt(
            g.clone(),
            "/api/v1/namespaces/d/services/s/proxy",
            false
        ));
        assert!(exempt(g.clone(), "/api/v1/nodes/n1/proxy", false));
        assert!(exempt(g.clone(), "/readyz", false));
        assert!(exempt(g.clone(), "/livez/ping", false));
        assert!(exempt(g.clone(), "/healthz", false));

        assert!(!exempt(g.clone(), "/api/v1/namespaces/d/pods", false));
        assert!(
            !exempt(g.clone(), "/api/v1/namespaces/d/pods/p", true),
            "get with ?watch"
        );
        assert!(
            !exempt(Method::POST, "/api/v1/namespaces/d/pods", true),
            "create with ?watch"
        );
        assert!(!exempt(
            g.clone(),
            "/api/v1/namespaces/d/pods/p/status",
            false
        ));
        assert!(!exempt(Method::PUT, "/api/v1/namespaces/d/finalize", false));
        assert!(
            !exempt(g.clone(), "/api/v1/namespaces/log", false),
            "a namespace named log"
        );
        assert!(!exempt(
            g.clone(),
            "/api/v1/namespaces/d/configmaps/log",
            false
        ));
        assert!(!exempt(g.clone(), "/version", false));
        assert!(!exempt(g, "/apis", false));
    }

    #[test]
    fn reads_and_writes_have_their_own_slots() {
        let f = Inflight::new(&InflightLimits {
            read_only: 1,
            mutating: 1,
            body_bytes: 0,
        });
        let list = "/api/v1/namespaces/d/configmaps";
        let read = f.admit(&Method::GET, list, false).unwrap().unwrap();
        let e = f.admit(&Method::GET, list, false).unwrap_err();
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        assert_eq!(e.retry_after_seconds, Some(1));
        let write = f.admit(&Method::POST, list, false).unwrap().unwrap();
        assert!(f.admit(&Method::DELETE, list, false).is_err());
        // Exempt requests go through a full server.
        assert!(f.admit(&Method::GET, list, true).unwrap().is_none());
        assert!(f.admit(&Method::GET, "/readyz", false).unwrap().is_none());
        drop(read);
        assert!(f.admit(&Method::GET, list, false).is_ok());
        drop(write);
        assert!(f.admit(&Method::PATCH, list, false).is_ok());
        let unlimited = Inflight::new(&InflightLimits {
            read_only: 0,
            mutating: 0,
            body_bytes: 0,
        });
        assert!(unlimited
            .admit(&Method::GET, list, false)
            .unwrap()
            .is_none());
    }

    fn budget(n: usize) -> Inflight {
        Inflight::new(&InflightLimits {
            read_only: 0,
            mutating: 0,
            body_bytes: n,
        })
    }

    /// A body of `chunks` frames without a Content-Length.
    fn chunked(chunks: Vec<Vec<u8>>) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(c))));
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn body_bytes_are_counted_until_released() {
        let f = budget(1000);
        let (bytes, a) = f
            .read_body(&mut Full::new(Bytes::from(vec![b'x'; 600])), 800)
            .await
            .unwrap();
        assert_eq!((bytes.len(), a.bytes()), (600, 600));
        // 400 left: a declared 500 is refused before it is read.
        let e = f
            .read_body(&mut Full::new(Bytes::from(vec![b'x'; 500])), 800)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        let (_, b) = f
            .read_body(&mut Full::new(Bytes::from(vec![b'x'; 400])), 800)
            .await
            .unwrap();
        drop(a);
        drop(b);
        // All of it is back.
        let (_, c) = f
            .read_body(&mut Full::new(Bytes::from(vec![b'x'; 800])), 800)
            .await
            .unwrap();
        assert_eq!(c.bytes(), 800);
        // Over the per-request maximum: 413, whatever the budget.
        let e = f
            .read_body(&mut Full::new(Bytes::from(vec![b'x'; 801])), 800)
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);
    }

    #[tokio::test]
    async fn bodies_without_a_length_are_counted_as_they_arrive() {
        let f = budget(RESERVE_STEP * 3);
        let max = RESERVE_STEP * 4;
        let (_, hog) = f
            .read_body(
                &mut Full::new(Bytes::from(vec![0u8; RESERVE_STEP * 2])),
                max,
            )
            .await
            .unwrap();
        // One step fits; the frame that needs a second is refused.
        let frames = vec![vec![1u8; RESERVE_STEP / 2]; 4];
        let e = f.read_body(&mut chunked(frames), max).await.unwrap_err();
        assert_eq!(e.code, 429);
        let (bytes, small) = f
            .read_body(&mut chunked(vec![vec![1u8; 10]; 3]), max)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 30);
        assert_eq!(small.bytes(), RESERVE_STEP);
        drop((hog, small));
        let frames = vec![vec![1u8; RESERVE_STEP / 2]; 6];
        let (bytes, r) = f.read_body(&mut chunked(frames), max).await.unwrap();
        assert_eq!(
            (bytes.len(), r.bytes()),
            (RESERVE_STEP * 3, RESERVE_STEP * 3)
        );
        let e = f
            .read_body(&mut chunked(vec![vec![1u8; max + 1]]), max)
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);
    }

    #[tokio::test]
    async fn what_a_request_holds_is_handed_back_by_track() {
        let f = Inflight::new(&InflightLimits {
            read_only: 1,
            mutating: 1,
            body_bytes: 100,
        });
        let ((), held) = track(async {
            hold_slot(
                f.admit(&Method::POST, "/api/v1/namespaces", false)
                    .unwrap()
                    .unwrap(),
            );
            let (_, r) = f
                .read_body(&mut Full::new(Bytes::from_static(b"{}")), 100)
                .await
                .unwrap();
            hold_body(r);
        })
        .await;
        assert!(held.slot.is_some());
        assert_eq!(held.body.iter().map(Reservation::bytes).sum::<usize>(), 2);
        assert!(f.admit(&Method::POST, "/api/v1/namespaces", false).is_err());
        drop(held);
        assert!(f.admit(&Method::POST, "/api/v1/namespaces", false).is_ok());
    }
}
