//! Image metadata in a node-local SQLite file (`<root>/images/meta.db`, WAL).
//!
//! Three tables: `manifests` (one per pulled platform manifest, keyed by its
//! digest, with the config digest docker calls the image ID), `layers` (the
//! blobs and snapshots each manifest uses, in order) and `images` (names →
//! manifest). `snapshots` records unpacked layers and their uncompressed size.
//! What is referenced is always derived from these rows, so there are no
//! reference counts to drift: garbage collection keeps exactly what some
//! named image needs.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::runtime::sqlite;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("image metadata: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("image metadata: {0}")]
    Open(#[from] sqlite::OpenError),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS manifests (
    digest        TEXT PRIMARY KEY,
    config_digest TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    index_digest  TEXT,
    created       TEXT,
    os            TEXT NOT NULL,
    arch          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    pulled_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (
    manifest_digest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    blob_digest     TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    blob_size       INTEGER NOT NULL,
    diff_id         TEXT NOT NULL,
    chain_id        TEXT NOT NULL,
    PRIMARY KEY (manifest_digest, idx)
);
CREATE TABLE IF NOT EXISTS snapshots (
    chain_id TEXT PRIMARY KEY,
    diff_id  TEXT NOT NULL,
    size     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    name            TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL REFERENCES manifests(digest),
    updated_at      INTEGER NOT NULL
);
";

/// One layer of a manifest as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    pub blob_digest: String,
    pub media_type: String,
    pub blob_size: u64,
    pub diff_id: String,
    pub chain_id: String,
}

/// A manifest and what it needs, as registered after a complete pull.
#[derive(Debug, Clone)]
pub struct ManifestRecord {
    pub digest: String,
    pub config_digest: String,
    pub media_type: String,
    pub index_digest: Option<String>,
    pub created: Option<String>,
    pub os: String,
    pub arch: String,
    /// Uncompressed size of all layers (what `docker images` shows).
    pub size: u64,
    pub layers: Vec<LayerRecord>,
}

/// A row of `skiff images`.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub name: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub index_digest: Option<String>,
    pub created: Option<String>,
    pub size: u64,
    pub os: String,
    pub arch: String,
}

pub struct Meta {
    conn: Connection,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Meta {
    pub fn open(path: &Path) -> Result<Meta, MetaError> {
        let conn = sqlite::open(path, sqlite::Sync::Full, SCHEMA)?;
        Ok(Meta { conn })
    }

    /// Record an unpacked snapshot (idempotent).
    pub fn add_snapshot(&self, chain_id: &str, diff_id: &str, size: u64) -> Result<(), MetaError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO snapshots (chain_id, diff_id, size) VALUES (?1, ?2, ?3)",
            params![chain_id, diff_id, size as i64],
        )?;
        Ok(())
    }

    pub fn snapshot_size(&self, chain_id: &str) -> Result<Option<u64>, MetaError> {
        Ok(self
            .conn
            .query_row(
                "SELECT size FROM snapshots WHERE chain_id = ?1",
                [chain_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|s| s as u64))
    }

    /// Register a fully pulled manifest under `names`, in one transaction, so
    /// a crash leaves either the old state or the new one.
    pub fn register(&mut self, m: &ManifestRecord, names: &[String]) -> Result<(), MetaError> {
        // IMMEDIATE: take the write lock up front, where the busy timeout applies.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR REPLACE INTO manifests
             (digest, config_digest, media_type, index_digest, created, os, arch, size, pulled_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                m.digest,
                m.config_digest,
                m.media_type,
                m.index_digest,
                m.created,
                m.os,
                m.arch,
                m.size as i64,
                now()
            ],
        )?;
        tx.execute("DELETE FROM layers WHERE manifest_digest = ?1", [&m.digest])?;
        for (i, l) in m.layers.iter().enumerate() {
            tx.execute(
                "INSERT INTO layers (manifest_digest, idx, blob_digest, media_type, blob_size, diff_id, chain_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![m.digest, i as i64, l.blob_digest, l.media_type, l.blob_size as i64, l.diff_id, l.chain_id],
            )?;
        }
        for name in names {
            tx.execute(
                "INSERT OR REPLACE INTO images (name, manifest_digest, updated_at) VALUES (?1, ?2, ?3)",
                params![name, m.digest, now()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<ImageRow>, MetaError> {
        let mut stmt = self.conn.prepare(
            "SELECT i.name, m.digest, m.config_digest, m.index_digest, m.created, m.size, m.os, m.arch
             FROM images i JOIN manifests m ON m.digest = i.manifest_digest
             ORDER BY m.pulled_at DESC, i.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ImageRow {
                name: r.get(0)?,
                manifest_digest: r.get(1)?,
                config_digest: r.get(2)?,
                index_digest: r.get(3)?,
                created: r.get(4)?,
                size: r.get::<_, i64>(5)? as u64,
                os: r.get(6)?,
                arch: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn layers(&self, manifest_digest: &str) -> Result<Vec<LayerRecord>, MetaError> {
        let mut stmt = self.conn.prepare(
            "SELECT blob_digest, media_type, blob_size, diff_id, chain_id FROM layers
             WHERE manifest_digest = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map([manifest_digest], |r| {
            Ok(LayerRecord {
                blob_digest: r.get(0)?,
                media_type: r.get(1)?,
                blob_size: r.get::<_, i64>(2)? as u64,
                diff_id: r.get(3)?,
                chain_id: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Point `name` at a manifest that is already registered.
    pub fn tag(&self, name: &str, manifest_digest: &str) -> Result<(), MetaError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO images (name, manifest_digest, updated_at) VALUES (?1, ?2, ?3)",
            params![name, manifest_digest, now()],
        )?;
        Ok(())
    }

    pub fn untag(&self, name: &str) -> Result<bool, MetaError> {
        Ok(self
            .conn
            .execute("DELETE FROM images WHERE name = ?1", [name])?
            > 0)
    }

    /// The image IDs (config digests) that dropping the manifests no name
    /// points at would delete: those no named manifest shares.
    pub fn unnamed_images(&self) -> Result<Vec<String>, MetaError> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT config_digest FROM manifests
             WHERE digest NOT IN (SELECT manifest_digest FROM images)
             AND config_digest NOT IN (SELECT m.config_digest FROM manifests m
                 JOIN images i ON i.manifest_digest = m.digest)
             ORDER BY config_digest",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Drop manifests no name points at; returns how many.
    pub fn drop_unnamed_manifests(&self) -> Result<usize, MetaError> {
        Ok(self.conn.execute(
            "DELETE FROM manifests WHERE digest NOT IN (SELECT manifest_digest FROM images)",
            [],
        )?)
    }

    /// Every blob digest a registered manifest needs (manifest, config, layers).
    pub fn referenced_blobs(&self) -> Result<HashSet<String>, MetaError> {
        let mut out = HashSet::new();
        let mut stmt = self.conn.prepare(
            "SELECT digest FROM manifests UNION SELECT config_digest FROM manifests
             UNION SELECT blob_digest FROM layers",
        )?;
        for d in stmt.query_map([], |r| r.get::<_, String>(0))? {
            out.insert(d?);
        }
        Ok(out)
    }

    /// Every snapshot (chain id) a registered manifest needs.
    pub fn referenced_snapshots(&self) -> Result<HashSet<String>, MetaError> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT chain_id FROM layers")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn forget_snapshot(&self, chain_id: &str) -> Result<(), MetaError> {
        self.conn
            .execute("DELETE FROM snapshots WHERE chain_id = ?1", [chain_id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(digest: &str, chain: &[&str]) -> ManifestRecord {
        ManifestRecord {
            digest: digest.into(),
            config_digest: format!("{digest}-config"),
            media_type: "m".into(),
            index_digest: None,
            created: None,
            os: "linux".into(),
            arch: "amd64".into(),
            size: 10,
            layers: chain
                .iter()
                .map(|c| LayerRecord {
                    blob_digest: format!("blob-{c}"),
                    media_type: "t".into(),
                    blob_size: 1,
                    diff_id: format!("diff-{c}"),
                    chain_id: c.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn references_follow_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut meta = Meta::open(&dir.path().join("meta.db")).unwrap();
        meta.register(&record("m1", &["a", "b"]), &["x:1".into()])
            .unwrap();
        meta.register(&record("m2", &["a", "c"]), &["y:1".into(), "y:2".into()])
            .unwrap();
        assert_eq!(meta.list().unwrap().len(), 3);
        assert_eq!(meta.layers("m2").unwrap()[1].chain_id, "c");

        assert!(meta.untag("y:1").unwrap());
        assert!(!meta.untag("y:1").unwrap());
        assert!(meta.unnamed_images().unwrap().is_empty());
        assert_eq!(meta.drop_unnamed_manifests().unwrap(), 0);
        meta.untag("y:2").unwrap();
        assert_eq!(meta.unnamed_images().unwrap(), ["m2-config"]);
        assert_eq!(meta.drop_unnamed_manifests().unwrap(), 1);
        let snaps = meta.referenced_snapshots().unwrap();
        assert_eq!(snaps, ["a", "b"].iter().map(|s| s.to_string()).collect());
        let blobs = meta.referenced_blobs().unwrap();
        assert!(blobs.contains("m1") && blobs.contains("m1-config") && blobs.contains("blob-b"));
        assert!(!blobs.contains("blob-c") && !blobs.contains("m2"));
        assert!(meta.layers("m2").unwrap().is_empty(), "layers cascade");
    }
}
