//! A container's termination message, as kubelet gives it: an empty file
//! of the agent's, bound at `terminationMessagePath` (default
//! `/dev/termination-log`), read when the container ends into
//! `state.terminated.message`; under `FallbackToLogsOnError` a failed
//! container that wrote nothing there gets the tail of its log instead.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use crate::runtime::container::logs;

/// kubelet's default `terminationMessagePath`.
pub const DEFAULT_PATH: &str = "/dev/termination-log";
/// The most of the file kubelet reads (its maxMsgSize).
const MAX_BYTES: u64 = 4096;
/// The fallback: the last lines of the log, and at most this many bytes.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;
/// How much of the log's end is read to find those lines.
const LOG_WINDOW: u64 = 64 * 1024;

/// Where the container wants its message file; None when it set the path
/// empty (validation refuses that for API pods).
pub fn container_path(c: &Container) -> Option<&str> {
    match c.termination_message_path.as_deref() {
        None => Some(DEFAULT_PATH),
        Some("") => None,
        Some(p) => Some(p),
    }
}

/// The host file of one attempt of a container:
/// `<pod_dir>/containers/<name>/<attempt>`.
pub fn host_file(pod_dir: &Path, container: &str, attempt: u32) -> PathBuf {
    pod_dir
        .join("containers")
        .join(container)
        .join(attempt.to_string())
}

/// Make the (empty) file; world-writable as kubelet's, so a container
/// running as any user can write its message.
pub fn prepare(file: &Path) -> io::Result<()> {
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(file)?;
    fs::set_permissions(file, fs::Permissions::from_mode(0o666))
}

/// What the container left in `file` (at most 4 KiB), None when nothing.
pub fn read(file: &Path) -> Option<String> {
    let f = fs::File::open(file).ok()?;
    // The file is the container's to write: it may be a FIFO or huge.
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    f.take(MAX_BYTES).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    (!text.is_empty()).then_some(text)
}

/// The message kubelet reports for a container that ended with `code`:
/// the file's, else (FallbackToLogsOnError, and only for a failure) the
/// tail of its log.
pub fn message(c: &Container, file: &Path, log: &Path, code: i32) -> Option<String> {
    if let Some(m) = read(file) {
        return Some(m);
    }
    let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    if fallback && code != 0 {
        return log_tail(log);
    }
    None
}

/// The last 80 lines of a CRI log, cut to its last 2 KiB.
fn log_tail(log: &Path) -> Option<String> {
    let mut f = fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(LOG_WINDOW);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    f.take(LOG_WINDOW).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    if from > 0 {
        // Most likely the middle of a line.
        lines.next();
    }
    let mut asm = logs::Assembler::default();
    let entries: Vec<String> = lines.filter_map(|l| asm.feed(l)).map(|e| e.text).collect();
    let start = entries.len().saturating_sub(FALLBACK_LINES);
    let mut out = String::new();
    for line in &entries[start..] {
        out.push_str(line);
        out.push('\n');
    }
    if out.len() > FALLBACK_BYTES {
        let mut cut = out.len() - FALLBACK_BYTES;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out.drain(..cut);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            termination_message_policy: policy.map(String::from),
            ..Default::default()
        }
    }

    fn write_log(path: &Path, lines: impl IntoIterator<Item = String>) {
        let mut w = logs::LogWriter::open(path, 10 << 20).unwrap();
        for l in lines {
            w.write_line(logs::Stream::Stderr, false, l.as_bytes())
                .unwrap();
        }
    }

    #[test]
    fn the_file_wins_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = host_file(dir.path(), "c", 0);
        prepare(&file).unwrap();
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o666
        );
        let log = dir.path().join("0.log");
        write_log(&log, ["from the log".to_string()]);
        let c = container(Some("FallbackToLogsOnError"));
        assert_eq!(
            message(&c, &file, &log, 1).as_deref(),
            Some("from the log\n")
        );
        fs::write(&file, "x".repeat(10_000)).unwrap();
        assert_eq!(message(&c, &file, &log, 1).map(|m| m.len()), Some(4096));
    }

    #[test]
    fn the_log_is_used_only_on_failure_and_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let file = host_file(dir.path(), "c", 1);
        prepare(&file).unwrap();
        let log = dir.path().join("1.log");
        write_log(&log, (0..200).map(|i| format!("line {i}")));
        assert_eq!(message(&container(None), &file, &log, 1), None);
        let c = container(Some("FallbackToLogsOnError"));
        assert_eq!(message(&c, &file, &log, 0), None);
        let m = message(&c, &file, &log, 2).unwrap();
        assert!(m.ends_with("line 199\n"), "{m}");
        assert!(!m.contains("line 119\n"), "only the last 80 lines: {m}");
        assert!(m.starts_with("line 120\n"), "{m}");
        write_log(&log, (0..200).map(|i| format!("{i:04}{}", "y".repeat(100))));
        let m = message(&c, &file, &log, 2).unwrap();
        assert!(m.len() <= FALLBACK_BYTES && m.ends_with(&format!("0199{}\n", "y".repeat(100))));
    }

    #[test]
    fn an_empty_path_has_no_file() {
        let mut c = container(None);
        assert_eq!(container_path(&c), Some(DEFAULT_PATH));
        c.termination_message_path = Some(String::new());
        assert_eq!(container_path(&c), None);
        c.termination_message_path = Some("/tmp/msg".into());
        assert_eq!(container_path(&c), Some("/tmp/msg"));
    }
}
