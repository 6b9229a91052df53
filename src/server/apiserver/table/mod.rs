//! Server-side Table output (`Accept: ...;as=Table;g=meta.k8s.io`).
//!
//! kubectl 1.32 computes nothing for `get`: every column and cell comes from
//! the server. These are the columns and cell values of the real apiserver's
//! printers (`pkg/printers/internalversion/printers.go`), computed from the
//! objects as stored JSON. The apiserver always prints with `Wide: true`, so
//! the cells include priority-1 columns and the client hides them unless
//! `-o wide`. A kind's registry entry names its [`Printer`]: its columns
//! and cells, written side by side in `core`, `pod`, `events`, `volumes`
//! or `workloads`; a kind without one gets the default table.

pub mod autoscaling;
pub mod cluster;
pub mod core;
pub mod events;
pub mod pod;
pub mod rbac;
pub mod volumes;
pub mod workloads;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::registry::ResourceDef;
use crate::api::duration;
use crate::api::selector::LabelSelector;

/// One entry of `columnDefinitions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: Cow<'static, str>,
    /// `string`, `integer`, `boolean` or `date`.
    pub type_: Cow<'static, str>,
    /// `name` for the column that names the object, else empty.
    pub format: Cow<'static, str>,
    pub description: Cow<'static, str>,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
}

/// A kind's table: the columns, and the cells of one object in their order.
pub struct Printer {
    pub columns: fn() -> Vec<Column>,
    pub cells: fn(&Value, DateTime<Utc>) -> Vec<Value>,
}

/// Printers are compared by identity (function pointers have no reliable
/// equality), which keeps registry entries comparable.
impl PartialEq for Printer {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Printer {}

impl std::fmt::Debug for Printer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Printer")
    }
}

/// `ObjectMeta.name` as the swagger docs describe it.
pub(crate) const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// `ObjectMeta.creationTimestamp` as the swagger docs describe it.
pub const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
pub(crate) const CONTAINERS_DESC: &str = "Names of each container in the template.";
pub(crate) const IMAGES_DESC: &str = "Images referenced by each container in the template.";

pub(crate) const fn col(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name: Cow::Borrowed(name),
        type_: Cow::Borrowed(type_),
        format: Cow::Borrowed(""),
        description: Cow::Borrowed(description),
        priority: 0,
    }
}

pub(crate) const fn wide(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name: Cow::Borrowed(name),
        type_: Cow::Borrowed(type_),
        format: Cow::Borrowed(""),
        description: Cow::Borrowed(description),
        priority: 1,
    }
}

pub(crate) const NAME: Column = Column {
    name: Cow::Borrowed("Name"),
    type_: Cow::Borrowed("string"),
    format: Cow::Borrowed("name"),
    description: Cow::Borrowed(NAME_DESC),
    priority: 0,
};
pub(crate) const AGE: Column = col("Age", "string", AGE_DESC);

/// Columns of the Table for this resource.
pub fn columns(def: &ResourceDef) -> Vec<Column> {
    if let Some(c) = def.custom {
        let served = c.get();
        let mut out = vec![NAME];
        out.extend(served.columns.iter().map(|c| Column {
            name: Cow::Owned(c.name.clone()),
            type_: Cow::Owned(c.type_.clone()),
            format: Cow::Owned(c.format.clone()),
            description: Cow::Owned(c.description.clone()),
            priority: c.priority,
        }));
        return out;
    }
    match def.printer {
        Some(p) => (p.columns)(),
        None => default_columns(),
    }
}

/// Cells of one row, in the order of [`columns`]: strings and integers
/// formatted exactly as the real apiserver sends them.
pub fn cells(def: &ResourceDef, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    if let Some(c) = def.custom {
        let served = c.get();
        let mut out = vec![name(obj)];
        out.extend(
            served
                .columns
                .iter()
                .map(|col| crate::server::apiserver::crd::printer::cell(col, obj, now)),
        );
        return out;
    }
    match def.printer {
        Some(p) => (p.cells)(obj, now),
        None => default_cells(obj),
    }
}

/// The `columnDefinitions` array of a Table.
pub fn column_definitions_json(cols: &[Column]) -> Value {
    Value::Array(
        cols.iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

/// The apiserver's default Table for kinds without a printer.
fn default_columns() -> Vec<Column> {
    vec![NAME, col("Created At", "date", AGE_DESC)]
}

fn default_cells(obj: &Value) -> Vec<Value> {
    // RFC 3339 in UTC, seconds precision, as Go's time.RFC3339 prints it.
    let created = str_at(obj, "/metadata/creationTimestamp");
    let created = duration::parse_time(created)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![name(obj), json!(created)]
}

// ---- helpers shared by the printers ----

/// The string at a JSON pointer, or "" (Go's zero value) when absent.
pub(crate) fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn opt_str<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.pointer(ptr).and_then(Value::as_str)
}

/// The integer at a JSON pointer, or 0 when absent.
pub(crate) fn int_at(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn array_at<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Number of entries of a map or list (e.g. `data`), 0 when absent.
pub(crate) fn len_at(obj: &Value, ptr: &str) -> i64 {
    let n = match obj.pointer(ptr) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn name(obj: &Value) -> Value {
    json!(str_at(obj, "/metadata/name"))
}

pub(crate) fn age(obj: &Value, now: DateTime<Utc>) -> Value {
    json!(duration::since(
        opt_str(obj, "/metadata/creationTimestamp"),
        now
    ))
}

/// `labels.FormatLabels`: sorted `k=v` pairs, or `<none>`.
pub(crate) fn format_labels(v: Option<&Value>) -> String {
    let Some(m) = v.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// `metav1.FormatLabelSelector`: canonical string, `<none>` when empty or
/// null, `<error>` when invalid.
pub(crate) fn format_label_selector(v: Option<&Value>) -> String {
    match LabelSelector::from_label_selector_json(v.unwrap_or(&Value::Null)) {
        Ok(s) => {
            let s = s.to_string();
            if s.is_empty() {
                "<none>".to_string()
            } else {
                s
            }
        }
        Err(_) => "<error>".to_string(),
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
pub(crate) fn layout_containers(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// True when `conditions` has `type` with status `True` (first match wins).
pub(crate) fn condition_true(conditions: &[Value], type_: &str) -> bool {
    conditions
        .iter()
        .find(|c| str_at(c, "/type") == type_)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

pub(crate) fn empty_map() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

#[cfg(test)]
mod tests;
