//! `skiff cp`: files between a container and the host, as docker cp:
//! `cp CONTAINER:SRC DEST`, `cp SRC CONTAINER:DEST`, with `-` for a tar
//! stream on stdout (from a container) or stdin (into one). Works on running
//! and stopped containers (runtime/container/copy.rs).

use std::io::Write;

use anyhow::{bail, Context};
use clap::Args;

use crate::runtime::container::copy::{self, Root};
use crate::runtime::engine::Engine;

#[derive(Debug, Args)]
#[command(
    override_usage = "skiff cp CONTAINER:SRC_PATH DEST_PATH|-\n       skiff cp SRC_PATH|- CONTAINER:DEST_PATH"
)]
pub struct CpArgs {
    /// CONTAINER:SRC_PATH, a host path, or `-` (a tar stream on stdin).
    pub source: String,
    /// CONTAINER:DEST_PATH, a host path, or `-` (a tar stream on stdout).
    pub destination: String,
}

/// `NAME:PATH` → (NAME, PATH); a path with a slash before any colon is a
/// host path (docker's rule: `./a:b` is a file).
fn split(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (name, path) = arg.split_once(':')?;
    (!name.is_empty() && !name.contains('/')).then_some((name, path))
}

/// A container path, relative ones read from `/` (docker reads them from
/// the working directory; skiff's containers are entered at `/` here).
fn in_container(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn host_path(path: &str) -> anyhow::Result<String> {
    let abs = std::path::absolute(path).with_context(|| format!("resolving {path}"))?;
    // Keep a trailing slash: it says "a directory".
    let mut s = abs.to_string_lossy().into_owned();
    if path.ends_with('/') && !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

pub fn cp(engine: &Engine, args: CpArgs) -> anyhow::Result<()> {
    let records = engine.records()?;
    match (split(&args.source), split(&args.destination)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((name, src)), None) => {
            let rec = records.find(name)?;
            let src = in_container(src);
            if args.destination == "-" {
                return copy::with_container(engine.paths(), &rec, |root| {
                    let stdout = std::io::stdout();
                    let mut out = stdout.lock();
                    copy::archive(root, &src, &mut out)?;
                    out.flush()
                        .map_err(|e| copy::CopyError::Io("stdout".into(), e))
                })
                .map_err(Into::into);
            }
            let host = Root::host()?;
            let dest = host_path(&args.destination)?;
            copy::with_container(engine.paths(), &rec, |root| {
                let src_is_dir = root.kind(&src)? == Some(rustix::fs::FileType::Directory);
                if root.kind(&src)?.is_none() {
                    return Err(copy::CopyError::NotFound(src.clone(), rec.name.clone()));
                }
                let (dir, rename) = copy::destination(&host, &dest, src_is_dir)?;
                transfer(root, &src, &host, &dir, rename.as_deref())
            })
            .map_err(Into::into)
        }
        (None, Some((name, dest))) => {
            let rec = records.find(name)?;
            let dest = in_container(dest);
            if args.source == "-" {
                return copy::with_container(engine.paths(), &rec, |root| {
                    copy::extract(root, &dest, std::io::stdin().lock(), None)
                })
                .map_err(Into::into);
            }
            let host = Root::host()?;
            let src = host_path(&args.source)?;
            let Some(kind) = host.kind(&src)? else {
                bail!("lstat {src}: no such file or directory");
            };
            copy::with_container(engine.paths(), &rec, |root| {
                let (dir, rename) =
                    copy::destination(root, &dest, kind == rustix::fs::FileType::Directory)?;
                transfer(&host, &src, root, &dir, rename.as_deref())
            })
            .map_err(Into::into)
        }
    }
}

/// Archive `src` of `from` on one thread and unpack it into `dir` of `to`
/// on this one, through a pipe.
fn transfer(
    from: &Root,
    src: &str,
    to: &Root,
    dir: &str,
    rename: Option<&str>,
) -> Result<(), copy::CopyError> {
    let (r, w) = copy::pipe()?;
    std::thread::scope(|s| {
        let writer = s.spawn(move || copy::archive(from, src, w));
        let unpacked = copy::extract(to, dir, r, rename);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(copy::CopyError::Mount("the archive thread panicked".into())));
        // The reader's error says more when both failed (the writer then
        // only saw a closed pipe).
        unpacked.and(written)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_or_host_paths() {
        assert_eq!(split("web:/etc/hostname"), Some(("web", "/etc/hostname")));
        assert_eq!(split("abc123:rel"), Some(("abc123", "rel")));
        assert_eq!(split("/tmp/a:b"), None);
        assert_eq!(split("./a:b"), None);
        assert_eq!(split("plain"), None);
        assert_eq!(split("-"), None);
        assert_eq!(in_container("etc"), "/etc");
    }
}
