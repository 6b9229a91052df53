//! GET /containerLogs/{ns}/{pod}/{container}: a container's log as kubelet
//! serves it — the text of each line (stdout and stderr interleaved as
//! written), optionally prefixed with its RFC3339Nano time; `tailLines`,
//! `sinceSeconds`/`sinceTime`, `limitBytes`, `previous`, and `follow`,
//! which streams new lines until the container exits.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;

use super::{lookup, text, Body};
use crate::agent::pods::worker::WorkerCtx;
use crate::runtime::container::logs;
use crate::runtime::pod::{ContainerState, PodRuntime};

/// How often a followed log is looked at for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Chunks a slow reader may fall behind by before the reading waits.
const QUEUE: usize = 16;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Options {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail: Option<usize>,
    pub since: Option<DateTime<Utc>>,
    pub limit_bytes: Option<u64>,
}

impl Options {
    pub fn parse(query: Option<&str>, now: DateTime<Utc>) -> Result<Options, String> {
        let mut o = Options::default();
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| e.to_string())?;
        for (k, v) in pairs {
            let flag = || v == "true" || v == "1";
            match k.as_str() {
                "follow" => o.follow = flag(),
                "previous" => o.previous = flag(),
                "timestamps" => o.timestamps = flag(),
                "tailLines" => {
                    let n: i64 = v.parse().map_err(|_| format!("invalid tailLines {v:?}"))?;
                    o.tail = Some(n.max(0) as usize);
                }
                "sinceSeconds" => {
                    let n: i64 = v
                        .parse()
                        .map_err(|_| format!("invalid sinceSeconds {v:?}"))?;
                    o.since = Some(now - chrono::Duration::seconds(n.max(0)));
                }
                "sinceTime" => {
                    let t = DateTime::parse_from_rfc3339(&v)
                        .map_err(|_| format!("invalid sinceTime {v:?}"))?;
                    o.since = Some(t.with_timezone(&Utc));
                }
                "limitBytes" => {
                    let n: i64 = v.parse().map_err(|_| format!("invalid limitBytes {v:?}"))?;
                    o.limit_bytes = Some(n.max(0) as u64);
                }
                _ => {}
            }
        }
        Ok(o)
    }

    /// One CRI line as kubelet writes it out: a partial line's text
    /// without a newline (the next chunk of it follows), a full one's with.
    fn render(&self, time: DateTime<Utc>, partial: bool, text: &str, out: &mut String) {
        if self.timestamps {
            out.push_str(&time.to_rfc3339_opts(SecondsFormat::Nanos, true));
            out.push(' ');
        }
        out.push_str(text);
        if !partial {
            out.push('\n');
        }
    }
}

pub async fn serve<R: PodRuntime>(
    ctx: Arc<WorkerCtx<R>>,
    ns: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Response<Body> {
    let opts = match Options::parse(query, Utc::now()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let found = match lookup::find(&ctx.runtime, ns, pod, container).await {
        Ok(f) => f,
        Err(e) => return text(StatusCode::NOT_FOUND, e),
    };
    let instance = if opts.previous {
        match found.instances.get(1) {
            Some(c) => c.clone(),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                )
            }
        }
    } else {
        found.instances[0].clone()
    };
    let path = lookup::log_path(&ctx.log_root, &instance);
    // Following only the current instance, and only while it runs.
    let follow = opts.follow && !opts.previous && instance.state != ContainerState::Exited;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
    tokio::spawn(async move {
        let mut out = Sender {
            tx: tx.clone(),
            left: opts.limit_bytes,
        };
        if let Err(e) = stream(&ctx, &instance.id, &path, &opts, follow, &mut out).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    let body = StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(|r| r.map(hyper::body::Frame::data)),
    );
    let mut r = Response::new(BodyExt::boxed(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// The response's side: bytes go out until `limitBytes` is reached.
struct Sender {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    left: Option<u64>,
}

impl Sender {
    /// False once nothing more is to be sent (the limit, or the client left).
    async fn send(&mut self, text: String) -> bool {
        let mut bytes = Bytes::from(text);
        if let Some(left) = self.left.as_mut() {
            if (bytes.len() as u64) >= *left {
                bytes.truncate(*left as usize);
                *left = 0;
            } else {
                *left -= bytes.len() as u64;
            }
        }
        if !bytes.is_empty() && self.tx.send(Ok(bytes)).await.is_err() {
            return false;
        }
        self.left != Some(0)
    }
}

/// At most about this much text goes out in one chunk.
const CHUNK: usize = 64 * 1024;

/// A CRI line longer than this is not one the shim wrote (its text is at
/// most `logs::MAX_LINE`): what is past it is dropped, so a log file no
/// reader can hold in memory at once is still read a line at a time.
const MAX_CRI_LINE: usize = logs::MAX_LINE + 256;

async fn stream<R: PodRuntime>(
    ctx: &WorkerCtx<R>,
    id: &str,
    path: &Path,
    opts: &Options,
    follow: bool,
    out: &mut Sender,
) -> std::io::Result<()> {
    let (p, tail) = (path.to_path_buf(), opts.tail);
    let mut cursor = tokio::task::spawn_blocking(move || Cursor::open(&p, tail))
        .await
        .map_err(std::io::Error::other)??;
    let mut caught_up = false;
    loop {
        // Whether the container runs is asked before reading, so that what
        // it wrote before it exited is read before the stream ends.
        let running = follow
            && caught_up
            && ctx
                .runtime
                .container_status(id)
                .await
                .is_ok_and(|s| s.state != ContainerState::Exited);
        let o = opts.clone();
        let (c, chunk, at_end) = tokio::task::spawn_blocking(move || {
            let mut c = cursor;
            let r = c.read(&o, follow);
            r.map(|(chunk, at_end)| (c, chunk, at_end))
        })
        .await
        .map_err(std::io::Error::other)??;
        cursor = c;
        if !chunk.is_empty() && !out.send(chunk).await {
            return Ok(());
        }
        if !at_end {
            continue;
        }
        if !follow || (caught_up && !running) || out.tx.is_closed() {
            return Ok(());
        }
        if caught_up {
            tokio::time::sleep(FOLLOW_POLL).await;
        }
        caught_up = true;
    }
}

/// Reads a container's CRI log files forward, a chunk at a time, holding
/// no more than one line of them.
struct Cursor {
    /// The files still to read, oldest first; the last is the live log.
    files: VecDeque<BufReader<File>>,
    live: PathBuf,
    /// The line being read, when a read ended inside it.
    line: Vec<u8>,
    /// Whether the line being read has gone past `MAX_CRI_LINE`.
    overlong: bool,
}

impl Cursor {
    /// The log at `path` (and the one rotated from it), placed at the start
    /// of the last `tail` lines when a tail is asked for.
    fn open(path: &Path, tail: Option<usize>) -> std::io::Result<Cursor> {
        // The live file first: after a rotation between the two opens the
        // rotated one is that same file (and read once), where the other
        // order would miss the whole file that was rotated.
        let current = open_if_there(path)?;
        let rotated = open_if_there(&logs::rotated(path))?.filter(|r| {
            use std::os::unix::fs::MetadataExt;
            let id = |f: &File| f.metadata().map(|m| (m.dev(), m.ino())).ok();
            current.as_ref().is_none_or(|c| id(c) != id(r))
        });
        let mut files = VecDeque::new();
        let mut want = tail;
        if let Some(mut f) = current {
            if let Some(n) = want {
                let (start, found) = tail_start(&mut f, n)?;
                f.seek(SeekFrom::Start(start))?;
                want = Some(n - found);
            }
            files.push_back(BufReader::new(f));
        }
        if let Some(mut f) = rotated {
            match want {
                Some(0) => {}
                Some(n) => {
                    let (start, _) = tail_start(&mut f, n)?;
                    f.seek(SeekFrom::Start(start))?;
                    files.push_front(BufReader::new(f));
                }
                None => files.push_front(BufReader::new(f)),
            }
        }
        Ok(Cursor {
            files,
            live: path.to_path_buf(),
            line: Vec::new(),
            overlong: false,
        })
    }

    /// About a chunk of output, and whether the end of what is written so
    /// far was reached. When following, a live log that was rotated away
    /// is read to its end and then its successor from the start.
    fn read(&mut self, opts: &Options, follow: bool) -> std::io::Result<(String, bool)> {
        let mut out = String::new();
        while out.len() < CHUNK {
            let Some(f) = self.files.front_mut() else {
                if follow {
                    if let Some(f) = open_if_there(&self.live)? {
                        self.files.push_back(BufReader::new(f));
                        continue;
                    }
                }
                return Ok((out, true));
            };
            let avail = f.fill_buf()?;
            if avail.is_empty() {
                if self.files.len() > 1 {
                    // A line torn by a rotation is not shown in halves.
                    self.files.pop_front();
                    self.line.clear();
                    self.overlong = false;
                    continue;
                }
                if follow {
                    if let Some(next) = self.rotated_away()? {
                        self.files.push_back(BufReader::new(next));
                        continue;
                    }
                }
                return Ok((out, true));
            }
            let (take, ended) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            let room = MAX_CRI_LINE.saturating_sub(self.line.len());
            let text = &avail[..take - usize::from(ended)];
            if text.len() > room {
                self.overlong = true;
            }
            self.line.extend_from_slice(&text[..text.len().min(room)]);
            f.consume(take);
            if ended {
                self.emit(opts, &mut out);
            }
        }
        Ok((out, false))
    }

    fn emit(&mut self, opts: &Options, out: &mut String) {
        let line = String::from_utf8_lossy(&self.line);
        if let Some((time, _, partial, text)) = logs::parse_line(&line) {
            if opts.since.is_none_or(|s| time >= s) {
                // An overlong line is cut; what follows it starts afresh.
                opts.render(time, partial && !self.overlong, text, out);
            }
        }
        self.line.clear();
        self.overlong = false;
    }

    /// The new live log, when the one being read is no longer at its path.
    fn rotated_away(&mut self) -> std::io::Result<Option<File>> {
        use std::os::unix::fs::MetadataExt;
        let Some(f) = self.files.back() else {
            return Ok(None);
        };
        let reading = f.get_ref().metadata()?;
        match std::fs::metadata(&self.live) {
            Ok(m) if (m.dev(), m.ino()) != (reading.dev(), reading.ino()) => {
                open_if_there(&self.live)
            }
            _ => Ok(None),
        }
    }
}

fn open_if_there(path: &Path) -> std::io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The offset of the last newline in `f`'s first `len` bytes.
fn last_newline(f: &mut File, len: u64, buf: &mut [u8]) -> std::io::Result<Option<u64>> {
    let mut pos = len;
    while pos > 0 {
        let step = (pos as usize).min(buf.len());
        pos -= step as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..step])?;
        if let Some(i) = buf[..step].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(pos + i as u64));
        }
    }
    Ok(None)
}

/// Where the last `n` lines of `f` start, and how many lines that is (fewer
/// than `n` when the file has fewer): read backwards a block at a time, as
/// kubelet finds a tail, so a tail of a large log reads only its end.
fn tail_start(f: &mut File, n: usize) -> std::io::Result<(u64, usize)> {
    let mut len = f.seek(SeekFrom::End(0))?;
    if n == 0 || len == 0 {
        return Ok((len, 0));
    }
    let mut buf = vec![0u8; 16 * 1024];
    // A last line still being written is not a line yet (and is not shown
    // unless following): the count starts at the last newline.
    len = match last_newline(f, len, &mut buf)? {
        Some(at) => at + 1,
        None => return Ok((0, 0)),
    };
    let mut pos = len;
    let mut seen = 0;
    while pos > 0 {
        let step = (pos as usize).min(buf.len());
        pos -= step as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..step])?;
        for i in (0..step).rev() {
            let at = pos + i as u64;
            // The last line's own newline does not start a line.
            if buf[i] != b'\n' || at + 1 == len {
                continue;
            }
            seen += 1;
            if seen == n {
                return Ok((at + 1, n));
            }
        }
    }
    Ok((0, seen + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_as_kubelet_reads_them() {
        let now = Utc::now();
        let o = Options::parse(
            Some("follow=true&tailLines=10&timestamps=true&sinceSeconds=60&limitBytes=5"),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail, Some(10));
        assert_eq!(o.limit_bytes, Some(5));
        assert_eq!(o.since, Some(now - chrono::Duration::seconds(60)));
        assert!(Options::parse(Some("tailLines=x"), now).is_err());
        let time = DateTime::parse_from_rfc3339("2026-12-02T10:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut out = String::new();
        o.render(time, true, "h", &mut out);
        o.render(time, false, "i", &mut out);
        assert_eq!(
            out,
            "2026-12-02T10:00:00.500000000Z h2026-12-02T10:00:00.500000000Z i\n"
        );
    }

    fn cri(n: usize, stream: &str, tag: &str, text: &str) -> String {
        format!(
            "2026-12-02T10:00:{:02}.000000000Z {stream} {tag} {text}\n",
            n % 60
        )
    }

    fn read_all(c: &mut Cursor, o: &Options, follow: bool) -> String {
        let mut all = String::new();
        loop {
            let (chunk, end) = c.read(o, follow).unwrap();
            all.push_str(&chunk);
            if end {
                return all;
            }
        }
    }

    #[test]
    fn tails_reach_into_the_rotated_file_and_read_only_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let lines = |r: std::ops::Range<usize>| -> String {
            r.map(|i| cri(i, "stdout", "F", &format!("l{i}"))).collect()
        };
        std::fs::write(logs::rotated(&path), lines(0..5)).unwrap();
        std::fs::write(&path, lines(5..8)).unwrap();
        let o = Options::default();
        let text = |tail| read_all(&mut Cursor::open(&path, tail).unwrap(), &o, false);
        assert_eq!(text(Some(2)), "l6\nl7\n");
        assert_eq!(text(Some(3)), "l5\nl6\nl7\n");
        assert_eq!(text(Some(4)), "l4\nl5\nl6\nl7\n");
        assert_eq!(text(Some(0)), "");
        let all: String = (0..8).map(|i| format!("l{i}\n")).collect();
        assert_eq!(text(Some(100)), all);
        assert_eq!(text(None), all);
        // A line caught half-written is not one of the tail's.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"2026-12-02T10:00:09.000000000Z stdout F l").unwrap();
        assert_eq!(text(Some(2)), "l6\nl7\n");
        // A tail of a large file reads back from its end only.
        let mut big = std::fs::File::open(&path).unwrap();
        assert_eq!(tail_start(&mut big, 1).unwrap().1, 1);
        let f = std::fs::File::create(dir.path().join("big.log")).unwrap();
        f.set_len(1 << 30).unwrap();
        let mut f = std::fs::File::options()
            .read(true)
            .append(true)
            .open(dir.path().join("big.log"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"\nlast\n").unwrap();
        let (start, n) = tail_start(&mut f, 1).unwrap();
        assert_eq!((start, n), ((1 << 30) + 1, 1));
    }

    #[test]
    fn partial_lines_go_out_as_written_and_overlong_ones_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let huge = "x".repeat(MAX_CRI_LINE * 3);
        let content = [
            cri(1, "stdout", "P", "par"),
            cri(2, "stdout", "F", "tial"),
            cri(3, "stderr", "F", &huge),
            cri(4, "stdout", "F", "after"),
            "not a cri line\n".to_string(),
        ]
        .concat();
        std::fs::write(&path, content).unwrap();
        let out = read_all(
            &mut Cursor::open(&path, None).unwrap(),
            &Options::default(),
            false,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "partial");
        assert!(lines[1].len() < MAX_CRI_LINE && lines[1].starts_with("xxx"));
        assert_eq!(lines[2], "after");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn a_follow_goes_on_into_the_file_that_replaced_a_rotated_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, cri(1, "stdout", "F", "one")).unwrap();
        let o = Options::default();
        let mut c = Cursor::open(&path, None).unwrap();
        assert_eq!(read_all(&mut c, &o, true), "one\n");
        // Written, then rotated, then the new file written: all of it, once.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, cri(2, "stdout", "F", "two").as_bytes()).unwrap();
        std::fs::rename(&path, logs::rotated(&path)).unwrap();
        std::fs::write(&path, cri(3, "stdout", "F", "three")).unwrap();
        assert_eq!(read_all(&mut c, &o, true), "two\nthree\n");
        // A line being written shows once it is whole.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let four = cri(4, "stdout", "F", "four");
        std::io::Write::write_all(&mut f, &four.as_bytes()[..10]).unwrap();
        assert_eq!(read_all(&mut c, &o, true), "");
        std::io::Write::write_all(&mut f, &four.as_bytes()[10..]).unwrap();
        assert_eq!(read_all(&mut c, &o, true), "four\n");
    }

    #[test]
    fn the_limit_cuts_the_output() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut rx) = mpsc::channel(4);
            let mut s = Sender { tx, left: Some(5) };
            assert!(s.send("abc".into()).await);
            assert!(!s.send("defgh".into()).await);
            assert_eq!(rx.recv().await.unwrap().unwrap(), "abc");
            assert_eq!(rx.recv().await.unwrap().unwrap(), "de");
        });
    }
}
