//! GET /containerLogs/{ns}/{pod}/{container}: a container's log as kubelet
//! serves it — the text of each line (stdout and stderr interleaved as
//! written), optionally prefixed with its RFC3339Nano time; `tailLines`,
//! `sinceSeconds`/`sinceTime`, `limitBytes`, `previous`, and `follow`,
//! which streams new lines until the container exits.

use std::io::{Read, Seek, SeekFrom};
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
use crate::runtime::container::logs::{self, Assembler, Entry};
use crate::runtime::pod::{ContainerState, PodRuntime};

/// How often a followed log is looked at for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Chunks a slow reader may fall behind by before the reading waits.
const QUEUE: usize = 16;

#[derive(Debug, Default, PartialEq)]
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

    fn render(&self, e: &Entry) -> String {
        if self.timestamps {
            format!(
                "{} {}\n",
                e.time.to_rfc3339_opts(SecondsFormat::Nanos, true),
                e.text
            )
        } else {
            format!("{}\n", e.text)
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

/// At most this much text goes out in one chunk.
const CHUNK: usize = 64 * 1024;

async fn stream<R: PodRuntime>(
    ctx: &WorkerCtx<R>,
    id: &str,
    path: &Path,
    opts: &Options,
    follow: bool,
    out: &mut Sender,
) -> std::io::Result<()> {
    let wanted = |e: &Entry| opts.since.is_none_or(|s| e.time >= s);
    let p = path.to_path_buf();
    let (entries, mut offset) = tokio::task::spawn_blocking(move || {
        // Where the file ends before it is read: following starts there.
        let offset = std::fs::metadata(&p).map_or(0, |m| m.len());
        (logs::read_all(&p), offset)
    })
    .await
    .map_err(std::io::Error::other)?;
    let mut entries: Vec<&Entry> = entries.iter().filter(|e| wanted(e)).collect();
    if let Some(t) = opts.tail {
        let skip = entries.len().saturating_sub(t);
        entries.drain(..skip);
    }
    let mut chunk = String::new();
    for e in entries {
        chunk.push_str(&opts.render(e));
        if chunk.len() >= CHUNK && !out.send(std::mem::take(&mut chunk)).await {
            return Ok(());
        }
    }
    if !chunk.is_empty() && !out.send(chunk).await {
        return Ok(());
    }
    if !follow {
        return Ok(());
    }
    let mut asm = Assembler::default();
    let mut pending = String::new();
    loop {
        let running = ctx
            .runtime
            .container_status(id)
            .await
            .is_ok_and(|s| s.state != ContainerState::Exited);
        let (fresh, new_offset) = read_from(path.to_path_buf(), offset).await?;
        offset = new_offset;
        if !fresh.is_empty() {
            pending.push_str(&String::from_utf8_lossy(&fresh));
            let mut chunk = String::new();
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                if let Some(e) = asm.feed(line.trim_end_matches('\n')) {
                    if wanted(&e) {
                        chunk.push_str(&opts.render(&e));
                    }
                }
            }
            if !chunk.is_empty() && !out.send(chunk).await {
                return Ok(());
            }
            continue;
        }
        if !running || out.tx.is_closed() {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// What was added to the log since `offset` (at most a chunk), and the
/// new offset; a log that was rotated is read from its start.
async fn read_from(path: PathBuf, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    tokio::task::spawn_blocking(move || {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        let offset = if len < offset { 0 } else { offset };
        if len == offset {
            return Ok((Vec::new(), offset));
        }
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        f.take(CHUNK as u64).read_to_end(&mut buf)?;
        let next = offset + buf.len() as u64;
        Ok((buf, next))
    })
    .await
    .map_err(std::io::Error::other)?
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
        let e = Entry {
            time: DateTime::parse_from_rfc3339("2026-12-02T10:00:00.5Z")
                .unwrap()
                .with_timezone(&Utc),
            stream: logs::Stream::Stdout,
            text: "hi".into(),
        };
        assert_eq!(o.render(&e), "2026-12-02T10:00:00.500000000Z hi\n");
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
