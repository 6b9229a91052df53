//! Warnings a request's handling adds for its response (`Warning: 299 -
//! "…"` headers), as upstream's warning recorder in the request context:
//! admission adds them where it decides, the response carries them. A
//! warning added outside a request's handling (a task it spawned) is lost,
//! so nothing that warns runs there.

use std::sync::{Arc, Mutex};

tokio::task_local! {
    static WARNINGS: Arc<Mutex<Vec<String>>>;
}

/// At most this many per response; more are dropped.
const MAX: usize = 64;
/// Past this many characters in all, each warning is cut to
/// [`TRUNCATED`] (upstream's recorder's bounds).
const TOTAL: usize = 4096;
const TRUNCATED: usize = 256;

/// Add a warning (its text) to the response of the request being handled.
pub fn add(text: String) {
    let added = WARNINGS.try_with(|w| {
        if let Ok(mut w) = w.lock() {
            if w.len() < MAX && !w.contains(&text) {
                w.push(text);
            }
        }
    });
    if added.is_err() {
        tracing::debug!("a warning outside a request's handling was dropped");
    }
}

/// Run `fut` (a request's handling) collecting its warnings, as `Warning`
/// header values.
pub async fn collect<F: std::future::Future>(fut: F) -> (F::Output, Vec<String>) {
    let slot = Arc::new(Mutex::new(Vec::new()));
    let out = WARNINGS.scope(slot.clone(), fut).await;
    let texts = slot
        .lock()
        .map(|mut w| std::mem::take(&mut *w))
        .unwrap_or_default();
    (out, headers(texts))
}

/// `299 - "text"` for each, control characters made spaces, cut short
/// when they are long in all.
fn headers(texts: Vec<String>) -> Vec<String> {
    let total: usize = texts.iter().map(|t| t.chars().count()).sum();
    texts
        .into_iter()
        .map(|t| {
            let t: String = t
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let t = if total > TOTAL {
                t.chars().take(TRUNCATED).collect()
            } else {
                t
            };
            format!("299 - \"{}\"", t.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn warnings_are_escaped_cleaned_and_bounded() {
        let ((), h) = collect(async {
            add("say \"hi\"\nnow".into());
            add("say \"hi\"\nnow".into());
        })
        .await;
        assert_eq!(h, [r#"299 - "say \"hi\" now""#]);
        let ((), h) = collect(async {
            for i in 0..100 {
                add(format!("{i}{}", "x".repeat(500)));
            }
        })
        .await;
        assert_eq!(h.len(), MAX);
        assert!(h.iter().all(|w| w.len() <= TRUNCATED + 8), "{}", h[0]);
        // Outside a request nothing happens.
        add("lost".into());
    }
}
