//! Container records in a node-local SQLite file
//! (`<root>/containers/containers.db`, WAL), shared by every CLI process and
//! the shims: the shim writes the exit status, the CLI reads it. Names are
//! unique (a UNIQUE index, so two concurrent `run --name x` cannot both win).
//! Labels sit in a table of their own, indexed by key and value, so an agent
//! that restarts finds its containers (`with_label`) without reading every
//! record.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::containerspec::ContainerSpec;
use super::options::RunOptions;
use crate::runtime::sqlite;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("container state: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("container state: {0}")]
    Open(#[from] sqlite::OpenError),
    #[error("the container name \"/{0}\" is already in use")]
    NameInUse(String),
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("multiple containers match {0:?}")]
    Ambiguous(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    /// Running, its cgroup frozen (`skiff pause`).
    Paused,
    /// Exited, and its shim waits out the restart policy's back-off before
    /// it starts it again.
    Restarting,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
        }
    }

    /// Its process exists (docker's State.Running: paused counts).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// What `ps` lists without -a (docker's: everything up, and what is
    /// about to be up again).
    pub fn is_up(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }

    fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "exited" => Status::Exited,
            _ => Status::Created,
        }
    }
}

/// One container as recorded.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image ID (config digest).
    pub image_id: String,
    pub command: Vec<String>,
    pub created: DateTime<Utc>,
    pub status: Status,
    pub pid: Option<i32>,
    pub shim_pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub oom_killed: bool,
    /// What it was created from (for inspect, exec and the shim).
    pub config: ContainerConfig,
    /// Who made it and why (`run --label`; the agent's pod and container
    /// names), for finding it again.
    pub labels: BTreeMap<String, String>,
}

/// The `config` column: JSON, so a field added later needs no migration.
/// Every field defaults, and fields this version does not know are kept, so
/// records written by another version load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    /// What it was created from (the network as asked, not the namespace it
    /// resolved to); the engine reads this.
    pub spec: ContainerSpec,
    /// The docker-shaped options `skiff run` was given, for `inspect` and
    /// `--rm` (default for containers made from a ContainerSpec alone).
    pub options: RunOptions,
    pub cgroups_path: String,
    /// The runtime part of the image config (`config`: Env, Cmd, User…).
    pub image_config: serde_json::Value,
    /// The overlay's lower layers, lowest first.
    pub snapshots: Vec<PathBuf>,
    /// Times the shim started it again under its restart policy.
    #[serde(skip_serializing_if = "is_zero")]
    pub restart_count: u32,
    /// Where the log rotates (kept for `start` and `restart`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_max_size: Option<u64>,
    /// The health check's results so far (written by the shim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::HealthState>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl ContainerConfig {
    /// The cgroup the container runs in, when it has one.
    pub fn cgroup(&self) -> Option<&str> {
        Some(self.cgroups_path.as_str()).filter(|p| !p.is_empty())
    }

    /// The image snapshots it reads from (the names of the snapshot
    /// directories), which `rmi` and prune must keep.
    pub fn snapshot_names(&self) -> impl Iterator<Item = String> + '_ {
        self.snapshots
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    /// The named volumes it mounts.
    pub fn volumes(&self) -> impl Iterator<Item = &str> {
        self.spec.volumes()
    }

    fn parse(id: &str, text: &str) -> ContainerConfig {
        let mut config: ContainerConfig = serde_json::from_str(text).unwrap_or_else(|e| {
            // One unreadable record must not hide the others from ps or rm.
            tracing::warn!("container {id}: unreadable config in its record: {e}");
            ContainerConfig::default()
        });
        // Written before records kept the spec: the options say it all.
        if config.spec == ContainerSpec::default() && config.options != RunOptions::default() {
            config.spec = config.options.to_container_spec("");
        }
        config
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    image       TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    command     TEXT NOT NULL,
    created     TEXT NOT NULL,
    status      TEXT NOT NULL,
    pid         INTEGER,
    shim_pid    INTEGER,
    exit_code   INTEGER,
    started_at  TEXT,
    finished_at TEXT,
    oom_killed  INTEGER NOT NULL DEFAULT 0,
    config      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    id    TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (id, key)
);
CREATE INDEX IF NOT EXISTS labels_by_key ON labels (key, value);
";

fn is_zero(n: &u32) -> bool {
    *n == 0
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

pub struct Records {
    conn: Connection,
}

const COLUMNS: &str = "id, name, image, image_id, command, created, status, pid, shim_pid, exit_code, started_at, finished_at, oom_killed, config";

fn from_row(r: &Row) -> rusqlite::Result<Record> {
    let id: String = r.get(0)?;
    let command: String = r.get(4)?;
    let config: String = r.get(13)?;
    Ok(Record {
        config: ContainerConfig::parse(&id, &config),
        labels: BTreeMap::new(),
        id,
        name: r.get(1)?,
        image: r.get(2)?,
        image_id: r.get(3)?,
        command: serde_json::from_str(&command).unwrap_or_default(),
        created: parse_time(Some(r.get(5)?)).unwrap_or_default(),
        status: Status::parse(&r.get::<_, String>(6)?),
        pid: r.get(7)?,
        shim_pid: r.get(8)?,
        exit_code: r.get(9)?,
        started_at: parse_time(r.get(10)?),
        finished_at: parse_time(r.get(11)?),
        oom_killed: r.get::<_, i64>(12)? != 0,
    })
}

impl Records {
    pub fn open(path: &Path) -> Result<Records, RecordsError> {
        let conn = sqlite::open(path, sqlite::Sync::Normal, SCHEMA)?;
        Ok(Records { conn })
    }

    /// Insert a new container and its labels; fails with NameInUse if the
    /// name is taken.
    pub fn insert(&self, r: &Record) -> Result<(), RecordsError> {
        let config = serde_json::to_string(&r.config).unwrap_or_default();
        let tx = self.conn.unchecked_transaction()?;
        let res = tx.execute(
            &format!("INSERT INTO containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
            params![
                r.id,
                r.name,
                r.image,
                r.image_id,
                serde_json::to_string(&r.command).unwrap_or_default(),
                rfc3339(r.created),
                r.status.as_str(),
                r.pid,
                r.shim_pid,
                r.exit_code,
                r.started_at.map(rfc3339),
                r.finished_at.map(rfc3339),
                r.oom_killed as i64,
                config,
            ],
        );
        match res {
            Ok(_) => {
                let mut stmt =
                    tx.prepare("INSERT INTO labels (id, key, value) VALUES (?1, ?2, ?3)")?;
                for (k, v) in &r.labels {
                    stmt.execute(params![r.id, k, v])?;
                }
                drop(stmt);
                tx.commit()?;
                Ok(())
            }
            Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                if e.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("name") =>
            {
                Err(RecordsError::NameInUse(r.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<Record>, RecordsError> {
        let r = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?;
        r.map(|r| self.labelled(r)).transpose()
    }

    fn labelled(&self, mut r: Record) -> Result<Record, RecordsError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM labels WHERE id = ?1")?;
        r.labels = stmt
            .query_map([&r.id], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(r)
    }

    /// Every label of every container, in one query (for lists).
    fn with_all_labels(&self, mut rows: Vec<Record>) -> Result<Vec<Record>, RecordsError> {
        let mut stmt = self.conn.prepare("SELECT id, key, value FROM labels")?;
        let mut by_id: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for row in stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))? {
            let (id, k, v): (String, String, String) = row?;
            by_id.entry(id).or_default().insert(k, v);
        }
        for r in &mut rows {
            r.labels = by_id.remove(&r.id).unwrap_or_default();
        }
        Ok(rows)
    }

    /// The containers labelled `key` (with `value`, when given), newest
    /// first: how an agent finds its containers again after a restart.
    pub fn with_label(&self, key: &str, value: Option<&str>) -> Result<Vec<Record>, RecordsError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM containers WHERE id IN \
             (SELECT id FROM labels WHERE key = ?1 AND (?2 IS NULL OR value = ?2)) \
             ORDER BY created DESC"
        ))?;
        let rows: Vec<Record> = stmt
            .query_map(params![key, value], from_row)?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(|r| self.labelled(r)).collect()
    }

    /// Find by full name, full ID or unique ID prefix (docker's rules).
    pub fn find(&self, query: &str) -> Result<Record, RecordsError> {
        let q = query.strip_prefix('/').unwrap_or(query);
        let by_name = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE name = ?1"),
                [q],
                from_row,
            )
            .optional()?;
        if let Some(r) = by_name {
            return self.labelled(r);
        }
        if q.is_empty() || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RecordsError::NotFound(query.to_string()));
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM containers WHERE substr(id, 1, ?2) = ?1"
        ))?;
        let rows: Vec<Record> = stmt
            .query_map(params![q, q.len() as i64], from_row)?
            .collect::<Result<_, _>>()?;
        match rows.len() {
            0 => Err(RecordsError::NotFound(query.to_string())),
            1 => self.labelled(
                rows.into_iter()
                    .next()
                    .ok_or_else(|| RecordsError::NotFound(query.to_string()))?,
            ),
            _ => Err(RecordsError::Ambiguous(query.to_string())),
        }
    }

    /// All containers, newest first.
    pub fn list(&self) -> Result<Vec<Record>, RecordsError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM containers ORDER BY created DESC"
        ))?;
        let rows = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
        self.with_all_labels(rows)
    }

    pub fn set_shim(&self, id: &str, shim_pid: i32) -> Result<(), RecordsError> {
        self.conn.execute(
            "UPDATE containers SET shim_pid = ?2 WHERE id = ?1",
            params![id, shim_pid],
        )?;
        Ok(())
    }

    pub fn set_running(&self, id: &str, pid: i32, at: DateTime<Utc>) -> Result<(), RecordsError> {
        self.conn.execute(
            "UPDATE containers SET status = 'running', pid = ?2, started_at = ?3 WHERE id = ?1",
            params![id, pid, rfc3339(at)],
        )?;
        Ok(())
    }

    pub fn set_exited(
        &self,
        id: &str,
        code: i32,
        at: DateTime<Utc>,
        oom: bool,
    ) -> Result<(), RecordsError> {
        self.conn.execute(
            "UPDATE containers SET status = 'exited', pid = NULL, shim_pid = NULL, exit_code = ?2, finished_at = ?3, oom_killed = ?4 WHERE id = ?1",
            params![id, code, rfc3339(at), oom as i64],
        )?;
        Ok(())
    }

    /// Mark a running container paused (`true`) or running again; whether
    /// it was in the state to change (an exit recorded meanwhile wins).
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<bool, RecordsError> {
        let (to, from) = if paused {
            ("paused", "running")
        } else {
            ("running", "paused")
        };
        let n = self.conn.execute(
            "UPDATE containers SET status = ?2 WHERE id = ?1 AND status = ?3",
            params![id, to, from],
        )?;
        Ok(n > 0)
    }

    /// The container exited with `code` and its shim (which stays, as
    /// `shim_pid`) will start it again after the back-off.
    pub fn set_restarting(
        &self,
        id: &str,
        code: i32,
        at: DateTime<Utc>,
        oom: bool,
    ) -> Result<(), RecordsError> {
        self.conn.execute(
            "UPDATE containers SET status = 'restarting', pid = NULL, exit_code = ?2, finished_at = ?3, oom_killed = ?4 WHERE id = ?1",
            params![id, code, rfc3339(at), oom as i64],
        )?;
        Ok(())
    }

    /// A pending restart is off (stopped by hand, or its shim is gone):
    /// the container stays exited with the code it had. Whether it was
    /// pending.
    pub fn cancel_restart(&self, id: &str) -> Result<bool, RecordsError> {
        let n = self.conn.execute(
            "UPDATE containers SET status = 'exited', shim_pid = NULL WHERE id = ?1 AND status = 'restarting'",
            params![id],
        )?;
        Ok(n > 0)
    }

    /// Mark a container whose shim is gone as exited with `code`, unless
    /// an exit was recorded meanwhile (the shim records the real one just
    /// before it goes, so a reconcile that saw it running a moment earlier
    /// must not overwrite it). Whether it was marked.
    pub fn set_lost(&self, id: &str, code: i32, at: DateTime<Utc>) -> Result<bool, RecordsError> {
        let n = self.conn.execute(
            "UPDATE containers SET status = 'exited', pid = NULL, shim_pid = NULL, exit_code = ?2, finished_at = ?3 WHERE id = ?1 AND status NOT IN ('exited', 'restarting')",
            params![id, code, rfc3339(at)],
        )?;
        Ok(n > 0)
    }

    /// Record the health check's state of container `id`.
    pub fn set_health(
        &self,
        id: &str,
        health: &super::health::HealthState,
    ) -> Result<(), RecordsError> {
        let json = serde_json::to_string(health).unwrap_or_default();
        self.conn.execute(
            "UPDATE containers SET config = json_set(config, '$.health', json(?2)) WHERE id = ?1",
            params![id, json],
        )?;
        Ok(())
    }

    /// Record how often the shim restarted container `id`.
    pub fn set_restart_count(&self, id: &str, count: u32) -> Result<(), RecordsError> {
        self.conn.execute(
            "UPDATE containers SET config = json_set(config, '$.restart_count', ?2) WHERE id = ?1",
            params![id, count],
        )?;
        Ok(())
    }

    /// Give container `id` another name (unique, as at creation).
    pub fn rename(&self, id: &str, name: &str) -> Result<(), RecordsError> {
        match self.conn.execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![id, name],
        ) {
            Ok(0) => Err(RecordsError::NotFound(id.to_string())),
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(RecordsError::NameInUse(name.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn remove(&self, id: &str) -> Result<(), RecordsError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM labels WHERE id = ?1", [id])?;
        tx.execute("DELETE FROM containers WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// The named volumes containers (running or stopped) mount, which
    /// `volume rm` and prune keep.
    pub fn volumes_in_use(&self) -> Result<std::collections::HashSet<String>, RecordsError> {
        Ok(self
            .list()?
            .iter()
            .flat_map(|r| r.config.volumes().map(String::from))
            .collect())
    }

    /// The images and snapshots containers (running or stopped) depend on,
    /// which `rmi` and prune keep.
    pub fn images_in_use(&self) -> Result<crate::runtime::image::catalog::InUse, RecordsError> {
        let mut out = crate::runtime::image::catalog::InUse::default();
        for r in self.list()? {
            out.snapshots.extend(r.config.snapshot_names());
            out.containers.push((r.id, r.image_id));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> Record {
        Record {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            command: vec!["sh".into()],
            created: Utc::now(),
            status: Status::Created,
            pid: None,
            shim_pid: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            oom_killed: false,
            config: ContainerConfig::default(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn lifecycle_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let s = Records::open(&dir.path().join("c.db")).unwrap();
        s.insert(&record("abcdef01", "web")).unwrap();
        s.insert(&record("abc99999", "db")).unwrap();
        assert!(
            matches!(s.insert(&record("ffff", "web")), Err(RecordsError::NameInUse(n)) if n == "web")
        );
        assert_eq!(s.find("web").unwrap().id, "abcdef01");
        assert_eq!(s.find("/db").unwrap().id, "abc99999");
        assert_eq!(s.find("abcd").unwrap().id, "abcdef01");
        assert!(matches!(s.find("abc"), Err(RecordsError::Ambiguous(_))));
        assert!(matches!(s.find("zzz"), Err(RecordsError::NotFound(_))));
        s.set_running("abcdef01", 42, Utc::now()).unwrap();
        assert_eq!(s.find("web").unwrap().status, Status::Running);
        s.set_exited("abcdef01", 137, Utc::now(), true).unwrap();
        let r = s.find("web").unwrap();
        assert_eq!(
            (r.status, r.exit_code, r.oom_killed, r.pid),
            (Status::Exited, Some(137), true, None)
        );
        assert!(matches!(s.rename("abcdef01", "db"), Err(RecordsError::NameInUse(n)) if n == "db"));
        s.rename("abcdef01", "web2").unwrap();
        assert_eq!(s.find("web2").unwrap().id, "abcdef01");
        assert!(matches!(
            s.rename("nope", "x"),
            Err(RecordsError::NotFound(_))
        ));
        s.remove("abcdef01").unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
    }

    /// reconcile read the container as running, then its shim recorded
    /// exit 5 and went: marking it lost must keep the 5 (it wrote 255 over
    /// it, seen as a flaky containers_lifecycle::kill_and_force_remove).
    #[test]
    fn a_lost_mark_keeps_a_recorded_exit() {
        let dir = tempfile::tempdir().unwrap();
        let s = Records::open(&dir.path().join("c.db")).unwrap();
        s.insert(&record("a1", "a")).unwrap();
        s.insert(&record("b1", "b")).unwrap();
        s.set_running("a1", 42, Utc::now()).unwrap();
        s.set_running("b1", 43, Utc::now()).unwrap();
        s.set_exited("a1", 5, Utc::now(), false).unwrap();
        assert!(!s.set_lost("a1", 255, Utc::now()).unwrap());
        assert_eq!(s.find("a").unwrap().exit_code, Some(5));
        assert!(s.set_lost("b1", 255, Utc::now()).unwrap());
        let b = s.find("b").unwrap();
        assert_eq!((b.status, b.exit_code), (Status::Exited, Some(255)));
    }

    #[test]
    fn labels_are_kept_and_queried() {
        let dir = tempfile::tempdir().unwrap();
        let s = Records::open(&dir.path().join("c.db")).unwrap();
        let mut a = record("aa01", "a");
        a.labels = BTreeMap::from([
            ("io.skiff.pod".to_string(), "web".to_string()),
            ("tier".to_string(), "front".to_string()),
        ]);
        let mut b = record("bb01", "b");
        b.labels = BTreeMap::from([("io.skiff.pod".to_string(), "db".to_string())]);
        s.insert(&a).unwrap();
        s.insert(&b).unwrap();
        s.insert(&record("cc01", "c")).unwrap();
        assert_eq!(s.find("a").unwrap().labels, a.labels);
        assert_eq!(s.get("bb01").unwrap().unwrap().labels, b.labels);
        let listed: BTreeMap<String, BTreeMap<String, String>> = s
            .list()
            .unwrap()
            .into_iter()
            .map(|r| (r.name, r.labels))
            .collect();
        assert_eq!(listed["a"], a.labels);
        assert!(listed["c"].is_empty());
        let ids = |v: Vec<Record>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.with_label("io.skiff.pod", Some("web")).unwrap()),
            ["aa01"]
        );
        let mut all = ids(s.with_label("io.skiff.pod", None).unwrap());
        all.sort();
        assert_eq!(all, ["aa01", "bb01"]);
        assert!(s.with_label("tier", Some("back")).unwrap().is_empty());
        s.remove("aa01").unwrap();
        assert!(s.with_label("tier", None).unwrap().is_empty());
        // A name refused leaves no labels behind.
        let mut dup = record("dd01", "b");
        dup.labels = BTreeMap::from([("tier".to_string(), "x".to_string())]);
        assert!(s.insert(&dup).is_err());
        assert!(s.with_label("tier", None).unwrap().is_empty());
    }

    /// A record as the previous version wrote it (config as loose JSON, no
    /// labels table yet) still loads, and fields this version does not know
    /// survive a round trip.
    #[test]
    fn records_of_the_previous_version_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                &SCHEMA[..SCHEMA.find("CREATE TABLE IF NOT EXISTS labels").unwrap()],
            )
            .unwrap();
            let config = r#"{"options":{"name":"old","env":["A=1"],"workdir":null,"user":"nobody",
                "entrypoint":null,"cmd":["sleep","9"],"binds":[{"source":"/v/data","destination":"/d",
                "read_only":true,"volume":"data"}],"tmpfs":[],"memory":67108864,"cpus":null,
                "pids_limit":null,"read_only":false,"network":"Bridge","hostname":null,"tty":false,
                "interactive":false,"auto_remove":true,"init":true,"cgroup_parent":null,
                "ports":[],"dns":[],"add_hosts":[],"node_cidr":"10.88.0.0/16","seccomp":"Default",
                "devices":[],"privileged":false},
                "cgroups_path":"skiff.slice:skiff:abc","image_config":{"Env":["PATH=/bin"]},
                "snapshots":["/r/snapshots/s1","/r/snapshots/s2"],"future":{"x":1}}"#;
            conn.execute(
                &format!("INSERT INTO containers ({COLUMNS}) VALUES ('abc', 'old', 'busybox', 'sha256:00', '[\"sleep\"]', '2026-01-01T00:00:00Z', 'exited', NULL, NULL, 0, NULL, NULL, 0, ?1)"),
                [config],
            )
            .unwrap();
        }
        let s = Records::open(&path).unwrap();
        let r = s.find("old").unwrap();
        let o = &r.config.options;
        assert_eq!(o.env, ["A=1"]);
        assert_eq!(o.user.as_deref(), Some("nobody"));
        assert_eq!(o.memory, Some(64 << 20));
        assert!(o.auto_remove && o.init);
        assert_eq!(o.network, Some(super::super::options::Network::Bridge));
        assert_eq!(r.config.volumes().collect::<Vec<_>>(), ["data"]);
        assert_eq!(r.config.cgroup(), Some("skiff.slice:skiff:abc"));
        assert_eq!(r.config.snapshot_names().collect::<Vec<_>>(), ["s1", "s2"]);
        assert_eq!(r.config.image_config["Env"][0], "PATH=/bin");
        assert!(r.labels.is_empty());
        let again: ContainerConfig =
            serde_json::from_str(&serde_json::to_string(&r.config).unwrap()).unwrap();
        assert_eq!(again.other["future"]["x"], 1);
        assert_eq!(again, r.config);
        // A config with fields missing (older still) loads with defaults.
        let sparse = ContainerConfig::parse("x", r#"{"options":{"tty":true}}"#);
        assert!(sparse.options.tty && sparse.snapshots.is_empty());
    }
}
