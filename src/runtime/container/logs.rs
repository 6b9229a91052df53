//! CRI-format container logs (`<RFC3339Nano> stdout|stderr F|P <text>`),
//! the format kubelet and `kubectl logs` expect: the shim writes them with
//! size-based rotation (one rotated file, `ctr.log.1`), the CLI reads them.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A line longer than this is written as partial (`P`) chunks, so one
/// process printing without newlines cannot make the shim buffer without
/// bound.
pub const MAX_LINE: usize = 16 * 1024;

pub fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Appends CRI lines to a file, rotating it when it would grow past `max_size`.
pub struct LogWriter {
    path: PathBuf,
    max_size: u64,
    file: File,
    size: u64,
}

impl LogWriter {
    pub fn open(path: &Path, max_size: u64) -> io::Result<LogWriter> {
        // Container output may hold secrets: 0600 from the start.
        let file = crate::runtime::private::append_file(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            max_size,
            file,
            size,
        })
    }

    pub fn write_line(&mut self, stream: Stream, partial: bool, text: &[u8]) -> io::Result<()> {
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let tag = if partial { "P" } else { "F" };
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(format!("{ts} {} {tag} ", stream.as_str()).as_bytes());
        line.extend_from_slice(text);
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        fs::rename(&self.path, rotated(&self.path))?;
        self.file = crate::runtime::private::append_file(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Splits one stream's output into CRI lines.
#[derive(Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Feed bytes; returns the lines to write as (partial, text).
    pub fn push(&mut self, data: &[u8]) -> Vec<(bool, Vec<u8>)> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=nl).collect();
            line.pop();
            out.push((false, line));
        }
        while self.pending.len() >= MAX_LINE {
            let chunk: Vec<u8> = self.pending.drain(..MAX_LINE).collect();
            out.push((true, chunk));
        }
        out
    }

    /// The rest at end of stream: a last line without its newline.
    pub fn finish(&mut self) -> Option<(bool, Vec<u8>)> {
        (!self.pending.is_empty()).then(|| (false, std::mem::take(&mut self.pending)))
    }
}

/// One logical line read back (partial chunks joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: DateTime<Utc>,
    pub stream: Stream,
    pub text: String,
}

/// Parse one CRI line into (time, stream, partial, text).
pub fn parse_line(line: &str) -> Option<(DateTime<Utc>, Stream, bool, &str)> {
    let mut parts = line.splitn(4, ' ');
    let time = DateTime::parse_from_rfc3339(parts.next()?)
        .ok()?
        .with_timezone(&Utc);
    let stream = match parts.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        "P" => true,
        "F" => false,
        _ => return None,
    };
    Some((time, stream, partial, parts.next().unwrap_or("")))
}

/// Joins partial lines as they are read (per stream).
#[derive(Default)]
pub struct Assembler {
    out: String,
    err: String,
}

impl Assembler {
    pub fn feed(&mut self, line: &str) -> Option<Entry> {
        let (time, stream, partial, text) = parse_line(line)?;
        let buf = match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        };
        buf.push_str(text);
        if partial {
            return None;
        }
        Some(Entry {
            time,
            stream,
            text: std::mem::take(buf),
        })
    }
}

/// Every entry in the rotated file and then the current one.
pub fn read_all(path: &Path) -> Vec<Entry> {
    let mut asm = Assembler::default();
    let mut out = Vec::new();
    for p in [rotated(path), path.to_path_buf()] {
        let Ok(bytes) = fs::read(&p) else { continue };
        for line in String::from_utf8_lossy(&bytes).lines() {
            out.extend(asm.feed(line));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_partials() {
        let mut b = LineBuffer::default();
        assert_eq!(b.push(b"a\nb"), vec![(false, b"a".to_vec())]);
        assert_eq!(
            b.push(b"c\n\n"),
            vec![(false, b"bc".to_vec()), (false, vec![])]
        );
        let long = vec![b'x'; MAX_LINE + 5];
        let out = b.push(&long);
        assert_eq!(out.len(), 1);
        assert!(out[0].0);
        assert_eq!(b.finish(), Some((false, vec![b'x'; 5])));
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn write_rotate_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&path, 200).unwrap();
        for i in 0..10 {
            w.write_line(Stream::Stdout, false, format!("line {i}").as_bytes())
                .unwrap();
        }
        w.write_line(Stream::Stderr, true, b"part-").unwrap();
        w.write_line(Stream::Stderr, false, b"two").unwrap();
        assert!(fs::metadata(&path).unwrap().len() <= 200);
        assert!(rotated(&path).exists());
        let entries = read_all(&path);
        let last = entries.last().unwrap();
        assert_eq!(
            (last.stream, last.text.as_str()),
            (Stream::Stderr, "part-two")
        );
        // Older lines went with the rotations; what is left is in order.
        let nums: Vec<&str> = entries
            .iter()
            .filter(|e| e.stream == Stream::Stdout)
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(nums.last(), Some(&"line 9"));
        assert!(nums.len() < 10);
    }

    #[test]
    fn parse() {
        let (_, s, p, t) =
            parse_line("2024-01-02T03:04:05.123456789Z stderr P hello world").unwrap();
        assert_eq!((s, p, t), (Stream::Stderr, true, "hello world"));
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("2024-01-02T03:04:05Z stdin F x").is_none());
    }
}
