//! Durable create throughput of the SQLite store under concurrency.
//!
//! `cargo run --release --example store_bench -- [seconds-per-level] [dir]`
//! Each level gets a fresh database; every create is acknowledged only after
//! its commit group was fsynced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff::server::store::sqlite::SqliteBackend;
use skiff::server::store::Backend;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let base = args.next().map(std::path::PathBuf::from);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // A pod-sized object.
    let value = Bytes::from(vec![b'x'; 1500]);
    for conc in [1usize, 16, 64] {
        let dir = match &base {
            Some(b) => tempfile::tempdir_in(b)?,
            None => tempfile::tempdir()?,
        };
        let path = dir.path().join("state.db");
        let t0 = Instant::now();
        let store = SqliteBackend::open(&path)?;
        let open_ms = t0.elapsed().as_secs_f64() * 1e3;
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let elapsed = rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..conc)
                .map(|t| {
                    let store = Arc::clone(&store);
                    let done = Arc::clone(&done);
                    let value = value.clone();
                    tokio::spawn(async move {
                        let mut i = 0u64;
                        while Instant::now() < deadline {
                            let key = format!("/registry/pods/bench/t{t}-{i}");
                            store.create(&key, value.clone()).await?;
                            done.fetch_add(1, Ordering::Relaxed);
                            i += 1;
                        }
                        Ok::<_, skiff::server::store::Error>(())
                    })
                })
                .collect();
            for t in tasks {
                t.await??;
            }
            store.close().await;
            Ok::<_, anyhow::Error>(start.elapsed())
        })?;
        let t1 = Instant::now();
        let reopened = SqliteBackend::open(&path)?;
        let reopen_ms = t1.elapsed().as_secs_f64() * 1e3;
        rt.block_on(reopened.close());
        let n = done.load(Ordering::Relaxed);
        println!(
            "concurrency {conc:>3}: {n:>7} creates in {:.2}s = {:>8.0} creates/s (open {open_ms:.1} ms, reopen {reopen_ms:.1} ms, rss {} KiB)",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            rss_kib()
        );
    }
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
