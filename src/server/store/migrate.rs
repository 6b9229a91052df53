//! `skiff server --datastore-endpoint X --migrate-from sqlite://`: a
//! single server's embedded database copied into a new datastore, as k3s
//! moves a cluster from SQLite to an external one. Every live key is
//! written once, in the order of the revisions that last wrote them, so
//! the resourceVersions of the copies keep their order (what watchers and
//! optimistic-concurrency clients compare); values are copied as stored,
//! encrypted Secrets included (the same key file reads them). History and
//! deleted keys are not copied: clients list afresh, as after a
//! compaction. Only into an empty datastore: one that holds a cluster is
//! left alone (so the flag may stay in a config file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::sqlite::SqliteBackend;
use super::{Backend, Error, ListOptions, Result};

/// Keys read at once from the source.
const PAGE: usize = 1000;

/// The SQLite file `--migrate-from` names: `sqlite://` is the data
/// directory's own (`default`), `sqlite:///PATH` another one.
pub fn source_path(from: &str, default: &Path) -> Result<PathBuf> {
    match from.trim() {
        "sqlite" | "sqlite://" => Ok(default.to_path_buf()),
        f => match f.strip_prefix("sqlite://") {
            Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
            _ => Err(Error::Backend(
                "--migrate-from: only sqlite:// (this data directory's database) or \
                 sqlite:///PATH can be migrated from"
                    .into(),
            )),
        },
    }
}

/// What a migration did.
#[derive(Debug, PartialEq, Eq)]
pub enum Migrated {
    /// This many keys were copied.
    Copied(usize),
    /// The target already held a cluster: nothing was done.
    TargetInUse,
}

/// Copy the live keys of the SQLite database at `source` into `target`.
pub async fn from_sqlite(source: &Path, target: &Arc<dyn Backend>) -> Result<Migrated> {
    if target.count("/").await? > 0 {
        return Ok(Migrated::TargetInUse);
    }
    if !source.is_file() {
        return Err(Error::Backend(format!(
            "--migrate-from: no database at {}",
            source.display()
        )));
    }
    let path = source.to_path_buf();
    let src = tokio::task::spawn_blocking(move || SqliteBackend::open(&path))
        .await
        .map_err(|e| Error::Backend(format!("opening {}: {e}", source.display())))??;
    let copied = copy(src.as_ref(), target.as_ref()).await;
    src.close().await;
    copied.map(Migrated::Copied)
}

/// Every live key of `src`, at one revision, written to `dst` in the order
/// `src` last wrote them.
pub async fn copy(src: &dyn Backend, dst: &dyn Backend) -> Result<usize> {
    let revision = src.latest_revision().await?;
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = src
            .list(
                "/",
                ListOptions {
                    revision: Some(revision),
                    start_after: after.clone(),
                    limit: Some(PAGE),
                    ..Default::default()
                },
            )
            .await?;
        after = page.items.last().map(|kv| kv.key.clone());
        let more = page.more;
        items.extend(page.items);
        if !more || after.is_none() {
            break;
        }
    }
    items.sort_by_key(|kv| kv.mod_revision);
    for kv in &items {
        dst.create(&kv.key, kv.value.clone()).await?;
    }
    Ok(items.len())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[tokio::test]
    async fn keys_are_copied_in_the_order_they_were_last_written() {
        let dir = tempfile::tempdir().unwrap();
        let src = SqliteBackend::open(&dir.path().join("src.db")).unwrap();
        let b = src
            .create("/registry/b", Bytes::from_static(b"b1"))
            .await
            .unwrap();
        src.create("/registry/a", Bytes::from_static(b"a1"))
            .await
            .unwrap();
        src.create("/registry/gone", Bytes::from_static(b"x"))
            .await
            .unwrap();
        src.update("/registry/b", Bytes::from_static(b"b2"), b.mod_revision)
            .await
            .unwrap();
        src.delete("/registry/gone", None).await.unwrap();
        src.close().await;
        let dst: Arc<dyn Backend> = SqliteBackend::open(&dir.path().join("dst.db")).unwrap();
        let got = from_sqlite(&dir.path().join("src.db"), &dst).await.unwrap();
        assert_eq!(got, Migrated::Copied(2));
        let a = dst.get("/registry/a", None).await.unwrap().unwrap();
        let b = dst.get("/registry/b", None).await.unwrap().unwrap();
        assert_eq!(&b.value[..], b"b2");
        assert!(a.mod_revision < b.mod_revision, "b was written last");
        assert!(dst.get("/registry/gone", None).await.unwrap().is_none());
        // A second time: the target holds a cluster, and is left alone.
        let again = from_sqlite(&dir.path().join("src.db"), &dst).await.unwrap();
        assert_eq!(again, Migrated::TargetInUse);
        assert!(from_sqlite(&dir.path().join("none.db"), &{
            let fresh: Arc<dyn Backend> = SqliteBackend::open(&dir.path().join("f.db")).unwrap();
            fresh
        })
        .await
        .is_err());
        assert_eq!(
            source_path("sqlite://", Path::new("/d/state.db")).unwrap(),
            Path::new("/d/state.db")
        );
        assert_eq!(
            source_path("sqlite:///x/y.db", Path::new("/d")).unwrap(),
            Path::new("/x/y.db")
        );
        assert!(source_path("postgres://x/y", Path::new("/d")).is_err());
        assert!(source_path("sqlite://relative.db", Path::new("/d")).is_err());
    }
}
