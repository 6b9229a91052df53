//! `metadata.managedFields`: one entry per manager, operation (`Apply` or
//! `Update`) and subresource, each with the set of fields it owns; and the
//! bookkeeping for ordinary writes (create, update, non-apply patches).

use serde_json::{json, Map, Value};

use super::fieldset::{self, FieldSet, Scope};
use super::shape;

pub const APPLY: &str = "Apply";
pub const UPDATE: &str = "Update";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub fields: FieldSet,
    pub subresource: Option<String>,
}

impl Entry {
    /// Entries are told apart by manager, operation and subresource.
    pub fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn from_json(v: &Value) -> Option<Entry> {
        let o = v.as_object()?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let fields = match o.get("fieldsV1") {
            Some(f) => FieldSet::from_json(f).ok()?,
            None => FieldSet::new(),
        };
        Some(Entry {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation")?,
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            fields,
            subresource: s("subresource").filter(|s| !s.is_empty()),
        })
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_json());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }

    /// How the apiserver names a manager in conflict messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == UPDATE {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// The managedFields of an object (entries that cannot be read are dropped).
pub fn decode(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

/// Store `entries` in `obj` (sorted as the apiserver sorts them: Apply
/// before Update, then by time, manager, apiVersion, subresource); no
/// entries removes the field.
pub fn store(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(o) = obj.as_object_mut() else { return };
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    let Some(m) = meta.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// What a write did to `metadata.managedFields` itself.
enum Incoming {
    /// Absent or as stored: keep the stored entries.
    Keep,
    /// Set to `[]`: drop every entry.
    Reset,
    /// Rewritten (kubectl's client-side-apply migration does this).
    Replace(Vec<Entry>),
}

fn incoming(old: Option<&Value>, new: &Value) -> Incoming {
    let new_mf = new.pointer("/metadata/managedFields");
    let old_mf = old.and_then(|o| o.pointer("/metadata/managedFields"));
    match new_mf {
        None | Some(Value::Null) => Incoming::Keep,
        Some(Value::Array(a)) if a.is_empty() => Incoming::Reset,
        Some(v) if Some(v) == old_mf => Incoming::Keep,
        Some(Value::Array(a)) if old.is_some() => {
            let entries: Option<Vec<Entry>> = a.iter().map(Entry::from_json).collect();
            entries.map_or(Incoming::Keep, Incoming::Replace)
        }
        Some(_) => Incoming::Keep,
    }
}

/// Record an ordinary write (create, PUT, or a non-apply PATCH) of `new`
/// over `old` (`None` for a create) by `manager`: the fields it added or
/// changed become its own (operation `Update`, one entry per manager and
/// subresource) and leave every other manager; removed fields leave
/// everyone. `new` gets the resulting `metadata.managedFields`.
///
/// `managedFields` in `new` is honoured where the apiserver honours it:
/// `[]` resets them (and records nothing), a rewritten list on an update
/// replaces the stored one; otherwise the stored entries are kept.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let mut entries = match incoming(old, new) {
        Incoming::Reset => {
            store(new, Vec::new());
            return;
        }
        Incoming::Replace(e) => e,
        Incoming::Keep => old.map(decode).unwrap_or_default(),
    };
    let scope = if subresource == Some("status") {
        Scope::Status
    } else {
        Scope::Main
    };
    let root = shape::root(new);
    let before = old.map_or_else(|| json!({}), |o| fieldset::ownable(o, scope));
    let after = fieldset::ownable(new, scope);
    let cmp = fieldset::compare(&before, &after, root);
    let api_version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut mine = None;
    for (i, e) in entries.iter_mut().enumerate() {
        if e.is(manager, UPDATE, subresource) {
            mine = Some(i);
            continue;
        }
        e.fields = e.fields.difference(&cmp.changed).difference(&cmp.removed);
    }
    let prev = mine.map(|i| entries[i].fields.clone()).unwrap_or_default();
    let set = prev.difference(&cmp.removed).union(&cmp.changed);
    match mine {
        Some(_) if set == prev => {}
        Some(i) => {
            entries[i].fields = set;
            entries[i].time = Some(now.to_string());
            entries[i].api_version = api_version;
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: UPDATE.into(),
            api_version,
            time: Some(now.to_string()),
            fields: set,
            subresource: subresource.map(str::to_string),
        }),
    }
    store(new, entries);
}

/// The default manager of a write: the `fieldManager` parameter, else the
/// User-Agent up to its first `/` (`kubectl/v1.32.4 (…)` → `kubectl`).
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    match field_manager {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => {
            let ua = user_agent.unwrap_or("");
            let prefix = ua.split('/').next().unwrap_or("");
            let prefix: String = prefix.chars().take(128).collect();
            if prefix.is_empty() {
                "unknown".into()
            } else {
                prefix
            }
        }
    }
}
