//! Container records in a node-local SQLite file
//! (`<root>/containers/containers.db`, WAL), shared by every CLI process and
//! the shims: the shim writes the exit status, the CLI reads it. Names are
//! unique (a UNIQUE index, so two concurrent `run --name x` cannot both win).

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::runtime::sqlite;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
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
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
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
    /// Run options and derived settings as JSON (for inspect and the shim).
    pub config: serde_json::Value,
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
";

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

pub struct State {
    conn: Connection,
}

const COLUMNS: &str = "id, name, image, image_id, command, created, status, pid, shim_pid, exit_code, started_at, finished_at, oom_killed, config";

fn from_row(r: &Row) -> rusqlite::Result<Record> {
    let command: String = r.get(4)?;
    let config: String = r.get(13)?;
    Ok(Record {
        id: r.get(0)?,
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
        config: serde_json::from_str(&config).unwrap_or_default(),
    })
}

impl State {
    pub fn open(path: &Path) -> Result<State, StateError> {
        let conn = sqlite::open(path, sqlite::Sync::Normal, SCHEMA)?;
        Ok(State { conn })
    }

    /// Insert a new container; fails with NameInUse if the name is taken.
    pub fn insert(&self, r: &Record) -> Result<(), StateError> {
        let res = self.conn.execute(
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
                r.config.to_string(),
            ],
        );
        match res {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                if e.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("name") =>
            {
                Err(StateError::NameInUse(r.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<Record>, StateError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Find by full name, full ID or unique ID prefix (docker's rules).
    pub fn find(&self, query: &str) -> Result<Record, StateError> {
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
            return Ok(r);
        }
        if q.is_empty() || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StateError::NotFound(query.to_string()));
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM containers WHERE substr(id, 1, ?2) = ?1"
        ))?;
        let rows: Vec<Record> = stmt
            .query_map(params![q, q.len() as i64], from_row)?
            .collect::<Result<_, _>>()?;
        match rows.len() {
            0 => Err(StateError::NotFound(query.to_string())),
            1 => Ok(rows
                .into_iter()
                .next()
                .ok_or_else(|| StateError::NotFound(query.to_string()))?),
            _ => Err(StateError::Ambiguous(query.to_string())),
        }
    }

    /// All containers, newest first.
    pub fn list(&self) -> Result<Vec<Record>, StateError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM containers ORDER BY created DESC"
        ))?;
        let rows = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn set_shim(&self, id: &str, shim_pid: i32) -> Result<(), StateError> {
        self.conn.execute(
            "UPDATE containers SET shim_pid = ?2 WHERE id = ?1",
            params![id, shim_pid],
        )?;
        Ok(())
    }

    pub fn set_running(&self, id: &str, pid: i32, at: DateTime<Utc>) -> Result<(), StateError> {
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
    ) -> Result<(), StateError> {
        self.conn.execute(
            "UPDATE containers SET status = 'exited', pid = NULL, shim_pid = NULL, exit_code = ?2, finished_at = ?3, oom_killed = ?4 WHERE id = ?1",
            params![id, code, rfc3339(at), oom as i64],
        )?;
        Ok(())
    }

    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM containers WHERE id = ?1", [id])?;
        Ok(())
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
            config: serde_json::json!({}),
        }
    }

    #[test]
    fn lifecycle_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(&dir.path().join("c.db")).unwrap();
        s.insert(&record("abcdef01", "web")).unwrap();
        s.insert(&record("abc99999", "db")).unwrap();
        assert!(
            matches!(s.insert(&record("ffff", "web")), Err(StateError::NameInUse(n)) if n == "web")
        );
        assert_eq!(s.find("web").unwrap().id, "abcdef01");
        assert_eq!(s.find("/db").unwrap().id, "abc99999");
        assert_eq!(s.find("abcd").unwrap().id, "abcdef01");
        assert!(matches!(s.find("abc"), Err(StateError::Ambiguous(_))));
        assert!(matches!(s.find("zzz"), Err(StateError::NotFound(_))));
        s.set_running("abcdef01", 42, Utc::now()).unwrap();
        assert_eq!(s.find("web").unwrap().status, Status::Running);
        s.set_exited("abcdef01", 137, Utc::now(), true).unwrap();
        let r = s.find("web").unwrap();
        assert_eq!(
            (r.status, r.exit_code, r.oom_killed, r.pid),
            (Status::Exited, Some(137), true, None)
        );
        s.remove("abcdef01").unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
    }
}
