//! Warnings a request's handling adds for its response (`Warning: 299 -
//! "…"` headers), as upstream's warning recorder in the request context:
//! admission adds them where it decides, the response carries them.

use std::sync::{Arc, Mutex};

tokio::task_local! {
    static WARNINGS: Arc<Mutex<Vec<String>>>;
}

/// At most this many per response; more are dropped (upstream bounds them
/// too).
const MAX: usize = 64;

/// Add a `Warning` header value (already `299 - "…"`) to the response of
/// the request being handled; outside one, nothing happens.
pub fn add(header: String) {
    let _ = WARNINGS.try_with(|w| {
        if let Ok(mut w) = w.lock() {
            if w.len() < MAX && !w.contains(&header) {
                w.push(header);
            }
        }
    });
}

/// Run `fut` (a request's handling) collecting its warnings.
pub async fn collect<F: std::future::Future>(fut: F) -> (F::Output, Vec<String>) {
    let slot = Arc::new(Mutex::new(Vec::new()));
    let out = WARNINGS.scope(slot.clone(), fut).await;
    let warnings = slot
        .lock()
        .map(|mut w| std::mem::take(&mut *w))
        .unwrap_or_default();
    (out, warnings)
}
