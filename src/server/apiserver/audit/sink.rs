//! Where audit events go: JSON lines appended to `--audit-log-path` (mode
//! 0600) by one writer thread, fed through a bounded queue (requests wait
//! for room rather than the queue growing: upstream's blocking log
//! backend). With `--audit-log-maxsize` the file is rotated when it would
//! pass that many MiB, to `<name>-<UTC time>.<ext>` beside it as upstream's
//! (lumberjack) names them; `--audit-log-maxbackup` and
//! `--audit-log-maxage` (days) bound the rotated files kept.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

/// Events waiting for the writer.
const QUEUE: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct Rotation {
    /// Rotate before the file passes this many bytes (0: never).
    pub max_bytes: u64,
    /// Rotated files kept (0: all).
    pub max_backups: usize,
    /// Rotated files older than this are removed (None: kept).
    pub max_age: Option<Duration>,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Vec<u8>>,
}

impl Sink {
    /// Open (creating, 0600) the log at `path` and start its writer; `-`
    /// is the standard output, as upstream's.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Sink> {
        if path == Path::new("-") {
            let (tx, rx) = mpsc::channel(QUEUE);
            std::thread::Builder::new()
                .name("audit-log".into())
                .spawn(move || to_stdout(rx))?;
            return Ok(Sink { tx });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        let file = open_log(path)?;
        let size = file.metadata()?.len();
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
        };
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(Sink { tx })
    }

    /// Queue one event line (waits while the queue is full).
    pub async fn send(&self, line: Vec<u8>) {
        if self.tx.send(line).await.is_err() {
            tracing::error!("the audit log writer has stopped; an event is lost");
        }
    }
}

fn to_stdout(mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(mut line) = rx.blocking_recv() {
        line.push(b'\n');
        let mut out = io::stdout().lock();
        if let Err(e) = out.write_all(&line).and_then(|()| out.flush()) {
            tracing::error!("writing the audit log to the standard output: {e}");
        }
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // A file made by an earlier version or by hand keeps no wider mode.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Vec<u8>>) {
        while let Some(mut line) = rx.blocking_recv() {
            line.push(b'\n');
            if let Err(e) = self.write(&line) {
                tracing::error!(path = %self.path.display(), "writing the audit log: {e}");
            }
        }
        let _ = self.file.sync_all();
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        let max = self.rotation.max_bytes;
        if max > 0 && self.size > 0 && self.size + line.len() as u64 > max {
            if let Err(e) = self.rotate() {
                // Events go on into the current file; the next try comes
                // after another file's worth.
                tracing::error!(path = %self.path.display(), "rotating the audit log: {e}");
                self.size = 0;
            }
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let backup = backup_name(&self.path, chrono::Utc::now());
        std::fs::rename(&self.path, &backup)?;
        self.file = open_log(&self.path)?;
        self.size = 0;
        self.prune();
        Ok(())
    }

    /// Remove rotated files beyond the count and age kept.
    fn prune(&self) {
        let mut backups = backups(&self.path);
        // Newest first: the names sort by time.
        backups.sort_by(|a, b| b.cmp(a));
        let now = SystemTime::now();
        for (i, b) in backups.iter().enumerate() {
            let too_many = self.rotation.max_backups > 0 && i >= self.rotation.max_backups;
            let too_old = self.rotation.max_age.is_some_and(|age| {
                std::fs::metadata(b)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|d| d > age)
            });
            if too_many || too_old {
                if let Err(e) = std::fs::remove_file(b) {
                    tracing::warn!(file = %b.display(), "removing an old audit log: {e}");
                }
            }
        }
    }
}

fn stem_ext(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
        _ => (name, String::new()),
    }
}

/// `audit.log` rotated at `t`: `audit-2006-01-02T15-04-05.000.log`.
fn backup_name(path: &Path, t: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let (stem, ext) = stem_ext(path);
    let stamp = t.format("%Y-%m-%dT%H-%M-%S%.3f");
    path.with_file_name(format!("{stem}-{stamp}{ext}"))
}

/// The rotated files of the log at `path`.
fn backups(path: &Path) -> Vec<PathBuf> {
    let (stem, ext) = stem_ext(path);
    let prefix = format!("{stem}-");
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| {
                n.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(&ext))
                    .is_some_and(|stamp| {
                        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H-%M-%S%.3f")
                            .is_ok()
                    })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotates_by_size_and_keeps_the_newest_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let sink = Sink::open(
            &path,
            Rotation {
                max_bytes: 100,
                max_backups: 2,
                max_age: None,
            },
        )
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        for i in 0..10 {
            sink.send(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(30)).into_bytes())
                .await;
            // Distinct rotation times (millisecond stamps).
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        drop(sink);
        // The writer drains the queue after the last sender is gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains("\"n\":9") || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.contains("\"n\":9"), "{current}");
        assert!(current.len() <= 100, "{current}");
        let kept = backups(&path);
        assert_eq!(kept.len(), 2, "{kept:?}");
        for b in kept {
            let name = b.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("audit-") && name.ends_with(".log"),
                "{name}"
            );
        }
    }

    #[test]
    fn backup_names_are_upstreams() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-05T04:05:06.789Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            backup_name(Path::new("/var/log/skiff/audit.log"), t),
            Path::new("/var/log/skiff/audit-2026-12-05T04-05-06.789.log")
        );
        assert_eq!(
            backup_name(Path::new("audit"), t),
            Path::new("audit-2026-12-05T04-05-06.789")
        );
    }
}
