//! The log of key versions that the SQL backends share (kine's model): every
//! write appends a row that names the version it replaced, and a write is
//! decided against the key's newest row. What a backend adds is where the
//! rows live and how revisions are handed out.

use bytes::Bytes;

use super::{Error, Event, EventKind, KeyValue, Revision};

type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        /// A renewal that may be acknowledged before it is durable
        /// (`Backend::renew`; SQLite's `deferred`).
        defer: bool,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

/// The newest row of a key, as the writer needs it for checks and events.
#[derive(Clone)]
pub(crate) struct Latest {
    pub rev: Revision,
    pub deleted: bool,
    pub create_rev: Revision,
    pub value: Bytes,
}

impl Latest {
    pub(crate) fn kv(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: self.value.clone(),
            create_revision: self.create_rev,
            mod_revision: self.rev,
        }
    }
}

/// The smallest string greater than every string that starts with
/// `prefix`, or None if there is none (empty prefix). Bumping the last
/// character keeps the bound valid UTF-8, and since UTF-8 byte order equals
/// code point order, SQLite's BINARY collation and PostgreSQL's "C" collation agree with it.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
        // `last` was char::MAX: carry into the character before it.
    }
    None
}

/// A key range `[lo, hi)`; `hi == None` means unbounded.
pub(crate) struct KeyRange {
    pub lo: String,
    pub hi: Option<String>,
}

impl KeyRange {
    pub(crate) fn prefix(prefix: &str) -> Self {
        KeyRange {
            lo: prefix.to_owned(),
            hi: prefix_upper_bound(prefix),
        }
    }
}

/// An upper bound for a range query: the range's own, or for the empty
/// prefix a run of char::MAX, which sorts after any real key (binding NULL
/// would make `key < $` false, and an `IS NULL OR` term would keep the
/// database from bounding its index scan with it).
pub(crate) fn hi_or_max(range: &KeyRange) -> String {
    range
        .hi
        .clone()
        .unwrap_or_else(|| char::MAX.to_string().repeat(64))
}

/// The event a row of the log stands for, as a watch replays it: `kv` is
/// the row's version; `prev_value` and `prev_create` come from the row it
/// replaced (`prev_rev`), if still there.
pub(crate) fn history_event(
    kv: KeyValue,
    created: bool,
    deleted: bool,
    prev_rev: Revision,
    prev_value: Option<Vec<u8>>,
    prev_create: Option<Revision>,
) -> Event {
    if deleted {
        // The tombstone carries the deleted value, so `prev` is exact even
        // if the row it replaced is gone.
        let prev = KeyValue {
            mod_revision: prev_rev,
            ..kv.clone()
        };
        Event {
            kind: EventKind::Delete,
            kv,
            prev: Some(prev),
        }
    } else if created {
        Event {
            kind: EventKind::Create,
            kv,
            prev: None,
        }
    } else {
        let prev = match (prev_value, prev_create) {
            (Some(v), Some(c)) => Some(KeyValue {
                key: kv.key.clone(),
                value: Bytes::from(v),
                create_revision: c,
                mod_revision: prev_rev,
            }),
            // Rows replaced after the compacted revision are kept, so this
            // only happens for a corrupt log; report what we have.
            _ => None,
        };
        Event {
            kind: EventKind::Update,
            kv,
            prev,
        }
    }
}

impl WriteOp {
    pub(crate) fn deferrable(&self) -> bool {
        matches!(self, WriteOp::Update { defer: true, .. })
    }

    pub(crate) fn key(&self) -> &str {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => key,
        }
    }
}

pub(crate) struct NewRow {
    pub created: bool,
    pub deleted: bool,
    pub create_rev: Revision,
    pub prev_rev: Revision,
    pub value: Bytes,
    pub result: KeyValue,
    pub event: Event,
}

/// Decides one op against the key's newest row (`latest`, possibly a
/// tombstone; `live` is it unless it is a tombstone).
pub(crate) fn check(
    op: &WriteOp,
    live: Option<&Latest>,
    latest: Option<&Latest>,
    rev: Revision,
) -> Result<NewRow> {
    match op {
        WriteOp::Create { key, value } => {
            if live.is_some() {
                return Err(Error::AlreadyExists { key: key.clone() });
            }
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: rev,
                mod_revision: rev,
            };
            Ok(NewRow {
                created: true,
                deleted: false,
                create_rev: rev,
                // Chaining to the tombstone keeps (key, prev_rev) unique
                // across delete and re-create.
                prev_rev: latest.map_or(0, |l| l.rev),
                value: value.clone(),
                result: kv.clone(),
                event: Event {
                    kind: EventKind::Create,
                    kv,
                    prev: None,
                },
            })
        }
        WriteOp::Update {
            key,
            value,
            expected,
            ..
        } => {
            let cur = live.ok_or_else(|| Error::NotFound { key: key.clone() })?;
            if cur.rev != *expected {
                return Err(Error::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    actual: cur.rev,
                });
            }
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: cur.create_rev,
                mod_revision: rev,
            };
            Ok(NewRow {
                created: false,
                deleted: false,
                create_rev: cur.create_rev,
                prev_rev: cur.rev,
                value: value.clone(),
                result: kv.clone(),
                event: Event {
                    kind: EventKind::Update,
                    kv,
                    prev: Some(cur.kv(key)),
                },
            })
        }
        WriteOp::Delete { key, expected } => {
            let cur = live.ok_or_else(|| Error::NotFound { key: key.clone() })?;
            if let Some(expected) = expected {
                if cur.rev != *expected {
                    return Err(Error::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        actual: cur.rev,
                    });
                }
            }
            let kv = KeyValue {
                mod_revision: rev,
                ..cur.kv(key)
            };
            Ok(NewRow {
                created: false,
                deleted: true,
                create_rev: cur.create_rev,
                prev_rev: cur.rev,
                value: cur.value.clone(),
                result: kv.clone(),
                event: Event {
                    kind: EventKind::Delete,
                    kv,
                    prev: Some(cur.kv(key)),
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_bound_stays_valid_utf8() {
        assert_eq!(prefix_upper_bound("/a/").as_deref(), Some("/a0"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
    }
}
