//! Image garbage collection, as kubelet's image manager does it: when the
//! filesystem holding the images is fuller than the high threshold, the
//! images no container is made from go, least recently used first, until it
//! is back under the low threshold. An image is never removed within
//! `min_age` of the agent first seeing it, nor while a pod bound to the
//! node names it (one waiting for its turn could not get it back under
//! `imagePullPolicy: Never`), nor while a container is made from it; and
//! not while a container is being made or an image pulled (the engine
//! checks and removes holding its launch and store locks, taken without
//! waiting: the image is looked at again next time).
//!
//! The store is the one `skiff pull`/`load` fill: an unused image a user
//! loaded by hand goes too, as kubelet's collector took unused Docker
//! images; images named by the node's pods stay.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::runtime::engine::{Engine, ImageUse};

/// How often the disk is looked at (kubelet's ImageGCPeriod).
pub const PERIOD: Duration = Duration::from_secs(300);
/// The first look, soon after the agent starts.
const FIRST: Duration = Duration::from_secs(10);

/// kubelet's `--image-gc-high-threshold`, `--image-gc-low-threshold` and
/// `--minimum-image-ttl-duration`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Percent of the disk in use above which images are removed.
    pub high: u8,
    /// Percent to bring it back to.
    pub low: u8,
    pub min_age: Duration,
    /// How often the disk is looked at.
    pub period: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            high: 85,
            low: 80,
            min_age: Duration::from_secs(120),
            period: PERIOD,
        }
    }
}

/// The images the pods bound to this node name, by pod UID: in use for the
/// collector even before a container is made from them (a pod waiting on
/// an init container, or in back-off, with `imagePullPolicy: Never` could
/// not get its image back).
#[derive(Default)]
pub struct Wanted(Mutex<HashMap<String, Vec<String>>>);

impl Wanted {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, pod_uid: &str, images: Vec<String>) {
        let mut m = self.map();
        if m.get(pod_uid) != Some(&images) {
            m.insert(pod_uid.to_string(), images);
        }
    }

    pub fn remove(&self, pod_uid: &str) {
        self.map().remove(pod_uid);
    }

    /// Every image named, as the store names them.
    fn names(&self) -> HashSet<String> {
        self.map()
            .values()
            .flatten()
            .filter_map(|i| crate::runtime::image::reference::Reference::parse(i).ok())
            .map(|r| r.to_string())
            .collect()
    }
}

/// When each image was first seen and last seen in use, across passes.
#[derive(Default)]
struct Seen {
    first: HashMap<String, Instant>,
    last_used: HashMap<String, Instant>,
}

impl Seen {
    fn update(&mut self, images: &[ImageUse], now: Instant) {
        self.first
            .retain(|id, _| images.iter().any(|i| &i.id == id));
        self.last_used
            .retain(|id, _| images.iter().any(|i| &i.id == id));
        for i in images {
            self.first.entry(i.id.clone()).or_insert(now);
            if i.used {
                self.last_used.insert(i.id.clone(), now);
            }
        }
    }

    /// The images that may go, least recently used first (never used:
    /// by when they came).
    fn candidates<'a>(
        &self,
        images: &'a [ImageUse],
        now: Instant,
        min_age: Duration,
    ) -> Vec<&'a ImageUse> {
        let mut out: Vec<&ImageUse> = images
            .iter()
            .filter(|i| !i.used)
            .filter(|i| {
                self.first
                    .get(&i.id)
                    .is_some_and(|t| now.duration_since(*t) >= min_age)
            })
            .collect();
        let key = |i: &ImageUse| {
            self.last_used
                .get(&i.id)
                .or_else(|| self.first.get(&i.id))
                .copied()
        };
        out.sort_by_key(|i| key(i));
        out
    }
}

/// The filesystem holding `root`: (capacity, bytes in use) as kubelet
/// counts them (capacity less what is still available to us).
fn usage(root: &Path) -> Result<(u64, u64), crate::agent::node::host::HostError> {
    let fs = crate::agent::node::host::statfs(root)?;
    Ok((
        fs.capacity_bytes,
        fs.capacity_bytes.saturating_sub(fs.available_bytes),
    ))
}

/// How many bytes must go for the disk to be under `low` percent, when it
/// is over `high`; None when nothing needs to.
fn to_free(capacity: u64, used: u64, policy: &Policy) -> Option<u64> {
    if capacity == 0 {
        return None;
    }
    let percent = used.saturating_mul(100) / capacity;
    if percent < u64::from(policy.high) {
        return None;
    }
    let goal = capacity.saturating_mul(u64::from(policy.low)) / 100;
    Some(used.saturating_sub(goal))
}

/// Look at the disk every `PERIOD` and free images when it is too full.
pub async fn run(
    root: PathBuf,
    run_dir: PathBuf,
    policy: Policy,
    wanted: Arc<Wanted>,
    cancel: CancellationToken,
) {
    let mut seen = Seen::default();
    let mut wait = FIRST.min(policy.period);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = policy.period;
        let (root, run_dir, p) = (root.clone(), run_dir.clone(), policy.clone());
        let mut s = std::mem::take(&mut seen);
        let wanted = wanted.names();
        let pass = tokio::task::spawn_blocking(move || {
            let r = pass(&root, &run_dir, &p, &wanted, &mut s);
            (s, r)
        })
        .await;
        match pass {
            Ok((s, r)) => {
                seen = s;
                if let Err(e) = r {
                    tracing::warn!("image garbage collection: {e}");
                }
            }
            Err(e) => tracing::warn!("image garbage collection: {e}"),
        }
    }
}

fn pass(
    root: &Path,
    run_dir: &Path,
    policy: &Policy,
    wanted: &HashSet<String>,
    seen: &mut Seen,
) -> anyhow::Result<()> {
    let engine = Engine::open(root, run_dir);
    let mut images = engine.image_usage()?;
    for i in &mut images {
        i.used |= i.names.iter().any(|n| wanted.contains(n));
    }
    let now = Instant::now();
    seen.update(&images, now);
    let (capacity, used) = usage(root)?;
    let Some(mut left) = to_free(capacity, used, policy) else {
        return Ok(());
    };
    tracing::info!(
        used_percent = used.saturating_mul(100) / capacity.max(1),
        high = policy.high,
        bytes_to_free = left,
        "the image disk is too full; removing unused images"
    );
    for image in seen.candidates(&images, now, policy.min_age) {
        if left == 0 {
            break;
        }
        match engine.remove_unused_image(&image.id) {
            Ok(Some(freed)) => {
                tracing::info!(image = %image.id, names = ?image.names, freed, "removed an unused image");
                // What the store reports freed; at least the image's size
                // is counted, so that shared layers do not stall the pass.
                left = left.saturating_sub(freed.max(image.size));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(image = %image.id, "removing an unused image: {e}"),
        }
    }
    if left > 0 {
        tracing::warn!(
            bytes = left,
            "image garbage collection could not free enough"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, used: bool) -> ImageUse {
        ImageUse {
            id: id.into(),
            names: vec![format!("{id}:latest")],
            size: 10,
            used,
        }
    }

    #[test]
    fn thresholds_as_kubelet_reads_them() {
        let p = Policy::default();
        assert_eq!(to_free(1000, 849, &p), None);
        assert_eq!(to_free(1000, 850, &p), Some(50));
        assert_eq!(to_free(1000, 1000, &p), Some(200));
        assert_eq!(to_free(0, 0, &p), None);
    }

    #[test]
    fn least_recently_used_first_never_in_use_or_too_young() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let min = Duration::from_secs(60);
        seen.update(&[img("a", true), img("b", false)], at(0));
        seen.update(&[img("a", true), img("b", false), img("c", false)], at(70));
        seen.update(&[img("a", true), img("b", false), img("c", false)], at(90));
        let images = [
            img("a", false),
            img("b", false),
            img("c", false),
            img("d", true),
        ];
        seen.update(&images, at(100));
        let ids = |now| -> Vec<String> {
            seen.candidates(&images, now, min)
                .iter()
                .map(|i| i.id.clone())
                .collect()
        };
        // b: never used, here since 0; c: never used, here since 70; a: last
        // used at 90; d: in use.
        assert_eq!(ids(at(140)), ["b", "c", "a"]);
        assert_eq!(
            ids(at(110)),
            ["b", "a"],
            "c is younger than the minimum age"
        );
    }
}
