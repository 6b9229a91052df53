//! Strategic merge patch, server side: applying a patch
//! (`Content-Type: application/strategic-merge-patch+json`) to a stored
//! object, as apimachinery's `strategicpatch.StrategicMergeMapPatch` does for
//! the real API server. Our own implementation; the per-field strategies live
//! in [`schema`].
//!
//! Semantics:
//! * Maps merge recursively; `null` deletes a key. A value whose type differs
//!   from the original's replaces it.
//! * Lists follow the field's strategy. Atomic lists (no strategy, and every
//!   list of an unknown kind) are replaced. Merging lists of objects match
//!   patch elements to original elements on the merge key: matches merge
//!   recursively, the rest are appended. Merging lists of primitives are a set
//!   union.
//! * Order of a merged list: the patch's elements in patch order, the
//!   original-only elements interleaved where they were relative to them
//!   (apimachinery's `normalizeElementOrder`). `$setElementOrder/<field>`
//!   takes the place of the patch order (and is checked against it).
//! * `$patch: delete` deletes a list element (by merge key) or empties a map;
//!   `$patch: replace` replaces a map, or (as a list element) the whole list;
//!   `$deleteFromPrimitiveList/<field>` removes values from a primitive list;
//!   `$retainKeys` drops every key of the original map not listed (and every
//!   key the patch sets must be listed).
//! * Values that don't merge with anything (new keys, appended elements,
//!   replacements) are cleaned: null map values and directives are dropped,
//!   so no directive ever reaches the output.
//!
//! Deviations from apimachinery, all on inputs kubectl never sends:
//! `$patch: merge` is accepted as the (explicit) default instead of
//! rejected; a new map carrying `$patch: replace` is kept rather than
//! dropped; a merging list with a `null` element is an error (Go panics);
//! `$deleteFromPrimitiveList` must list primitives; null map values inside a
//! replaced atomic list are dropped here, where Go keeps them until the typed
//! decode drops them; `$setElementOrder` on a list that doesn't merge is
//! ignored. Patches nested deeper than [`MAX_DEPTH`] are refused.
//!
//! The real server answers 415 to a strategic merge patch of a custom
//! resource; a caller wanting that must check for it. Here an unknown kind
//! gets JSON merge patch semantics (maps merge, lists are replaced) below its
//! `metadata`, whose `finalizers` and `ownerReferences` still merge.
//!
//! Files: this one (entry point, maps, cleaning of new values), `list.rs`
//! (lists, `$setElementOrder`, element order), `schema.rs` (the strategy
//! table).

mod list;
pub(crate) mod schema;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_prop;
#[cfg(test)]
mod tests_schema;
#[cfg(test)]
mod tests_upstream;

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

use list::{merge_list, set_element_order};
use schema::{Field, Ty};

/// Deepest nesting of patch maps and lists `apply` follows before refusing.
pub const MAX_DEPTH: usize = 100;

/// Why a patch could not be applied. Every message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch is malformed, e.g. a directive with a value of the wrong
    /// type.
    #[error("invalid patch: {0}")]
    Invalid(String),
    /// An element of a merging list lacks the list's merge key.
    #[error("cannot merge list {path}: element has no merge key \"{key}\"")]
    MissingMergeKey { path: String, key: String },
    /// A merging list whose elements can't be merged (mixed types, nested
    /// lists, objects without a merge key in the schema).
    #[error("cannot merge list {path}: {reason}")]
    List { path: String, reason: String },
    /// The patch nests deeper than [`MAX_DEPTH`].
    #[error("patch nested more than {max} levels deep at {path}")]
    TooDeep { path: String, max: usize },
    /// `original` is not a JSON object.
    #[error("the object to patch is not a JSON object")]
    NotAnObject,
}

type Result<T> = std::result::Result<T, PatchError>;

/// Apply a strategic merge patch to `original` (both JSON objects of kind
/// `kind` in `api_version`, e.g. "apps/v1" "Deployment").
pub fn apply(
    original: &Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> std::result::Result<Value, PatchError> {
    let Value::Object(orig) = original else {
        return Err(PatchError::NotAnObject);
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::Invalid(
            "the patch must be a JSON object".into(),
        ));
    };
    let ty = schema::root(api_version, kind);
    merge_map(orig.clone(), patch, Some(ty), &Path::ROOT, 0).map(Value::Object)
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Where in the object we are, for error messages.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    /// A merging list's element, by merge key and value.
    Elem(&'a str, &'a Value),
    Index(usize),
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };
    fn key(&'a self, k: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Key(k),
        }
    }
    fn elem(&'a self, key: &'a str, value: &'a Value) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Elem(key, value),
        }
    }
    fn index(&'a self, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }
    fn is_root(&self) -> bool {
        matches!(self.seg, Seg::Root)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.parent {
            p.fmt(f)?;
        }
        match self.seg {
            Seg::Root => Ok(()),
            Seg::Key(k) if self.parent.is_none_or(|p| p.is_root()) => f.write_str(k),
            Seg::Key(k) => write!(f, ".{k}"),
            Seg::Elem(k, v) => write!(f, "[{k}={v}]"),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

fn invalid(path: &Path, msg: impl fmt::Display) -> PatchError {
    PatchError::Invalid(format!("{path}{msg}"))
}

fn check_depth(depth: usize, path: &Path) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(PatchError::TooDeep {
            path: path.to_string(),
            max: MAX_DEPTH,
        });
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

/// The `$patch` directive of a patch map, if any.
fn directive(m: &Map<String, Value>, path: &Path) -> Result<Option<Directive>> {
    match m.get(PATCH) {
        None => Ok(None),
        Some(Value::String(s)) if s == "replace" => Ok(Some(Directive::Replace)),
        Some(Value::String(s)) if s == "delete" => Ok(Some(Directive::Delete)),
        Some(Value::String(s)) if s == "merge" => Ok(Some(Directive::Merge)),
        Some(v) => Err(invalid(
            &path.key(PATCH),
            format_args!(" is {v}; expected \"replace\", \"delete\" or \"merge\""),
        )),
    }
}

/// A canonical string for comparing merge-key values and primitives (numbers
/// compare by value, as Go's float64s do: 80 == 80.0).
fn canon(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) => format!("n{f}"),
            None => format!("n{n}"),
        },
        Value::String(s) => format!("s{s}"),
        other => format!("j{other}"),
    }
}

/// The identity of a list element: its merge key's value, or (for
/// primitive lists) itself.
fn ident(v: &Value, key: Option<&str>) -> Option<String> {
    match key {
        Some(k) => v.as_object()?.get(k).map(canon),
        None => Some(canon(v)),
    }
}

/// Merge `patch` into the map `orig`.
fn merge_map(
    orig: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<Ty>,
    path: &Path,
    depth: usize,
) -> Result<Map<String, Value>> {
    check_depth(depth, path)?;
    match directive(patch, path)? {
        Some(Directive::Delete) => Ok(Map::new()),
        Some(Directive::Replace) => merge_body(Map::new(), patch, ty, path, depth),
        Some(Directive::Merge) | None => merge_body(orig, patch, ty, path, depth),
    }
}

/// Merge the keys of `patch` (its `$patch` already handled) into `orig`.
fn merge_body(
    mut orig: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<Ty>,
    path: &Path,
    depth: usize,
) -> Result<Map<String, Value>> {
    if let Some(rk) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut orig, patch, rk, path)?;
    }

    // $setElementOrder/<field>: merge that list now, then put it in order.
    let mut done: HashSet<&str> = HashSet::new();
    for (k, order) in patch {
        let Some(name) = k.strip_prefix(SET_ORDER) else {
            continue;
        };
        let opath = path.key(k);
        if set_element_order(&mut orig, patch, name, order, ty, &opath, depth)? {
            done.insert(name);
        }
    }

    let mut deletions = Vec::new();
    for (k, pv) in patch {
        if k == PATCH || k == RETAIN_KEYS || k.starts_with(SET_ORDER) || done.contains(k.as_str()) {
            continue;
        }
        if let Some(name) = k.strip_prefix(DELETE_PRIMITIVE) {
            deletions.push((k, name, pv));
            continue;
        }
        if pv.is_null() {
            orig.shift_remove(k);
            continue;
        }
        let f = schema::field(ty, k);
        let kpath = path.key(k);
        match (orig.get_mut(k), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                let taken = std::mem::take(o);
                *o = merge_map(taken, p, f.ty, &kpath, depth + 1)?;
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                let taken = std::mem::take(o);
                *o = merge_list(taken, p, f, &kpath, depth + 1)?;
            }
            _ => match fresh(pv, f, &kpath, depth + 1)? {
                Some(v) => {
                    orig.insert(k.clone(), v);
                }
                None => {
                    orig.shift_remove(k);
                }
            },
        }
    }

    // $deleteFromPrimitiveList/<field> last, after any additions to it.
    for (k, name, pv) in deletions {
        let Value::Array(del) = pv else {
            return Err(invalid(&path.key(k), " must be a list"));
        };
        if name.is_empty() {
            return Err(invalid(&path.key(k), " names no field"));
        }
        if del.iter().any(|v| v.is_object() || v.is_array()) {
            return Err(invalid(&path.key(k), " must list primitive values"));
        }
        if let Some(Value::Array(list)) = orig.get_mut(name) {
            let del: HashSet<String> = del.iter().map(canon).collect();
            list.retain(|v| !del.contains(&canon(v)));
        }
    }
    Ok(orig)
}

/// `$retainKeys`: keep only the listed keys of `orig`.
fn retain_keys(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    rk: &Value,
    path: &Path,
) -> Result<()> {
    let rpath = path.key(RETAIN_KEYS);
    let Value::Array(list) = rk else {
        return Err(invalid(&rpath, " must be a list of field names"));
    };
    let mut keep = HashSet::new();
    for v in list {
        let Value::String(s) = v else {
            return Err(invalid(&rpath, " must be a list of field names"));
        };
        keep.insert(s.as_str());
    }
    for (k, v) in patch {
        let directive = k == PATCH
            || k == RETAIN_KEYS
            || k.starts_with(SET_ORDER)
            || k.starts_with(DELETE_PRIMITIVE);
        if !v.is_null() && !directive && !keep.contains(k.as_str()) {
            return Err(invalid(
                &rpath,
                format_args!(" does not list {k:?}, which the patch sets"),
            ));
        }
    }
    orig.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

/// A patch value that merges with nothing (new key, replacement): cleaned of
/// nulls and directives. `None`: it deletes itself (`$patch: delete`).
fn fresh(v: &Value, f: Field, path: &Path, depth: usize) -> Result<Option<Value>> {
    check_depth(depth, path)?;
    match v {
        Value::Object(m) => match directive(m, path)? {
            Some(Directive::Delete) => Ok(None),
            _ => Ok(Some(Value::Object(merge_body(
                Map::new(),
                m,
                f.ty,
                path,
                depth,
            )?))),
        },
        Value::Array(a) => Ok(Some(Value::Array(fresh_list(a, f, path, depth)?))),
        other => Ok(Some(other.clone())),
    }
}

/// A list that replaces (or is added in place of) the original: its
/// elements cleaned; elements carrying `$patch` are list directives with
/// nothing to act on, and dropped.
fn fresh_list(a: &[Value], f: Field, path: &Path, depth: usize) -> Result<Vec<Value>> {
    check_depth(depth, path)?;
    let mut out = Vec::with_capacity(a.len());
    for (i, v) in a.iter().enumerate() {
        let ipath = path.index(i);
        match v {
            Value::Object(m) if m.contains_key(PATCH) => {
                directive(m, &ipath)?;
            }
            Value::Object(m) => {
                out.push(Value::Object(merge_body(
                    Map::new(),
                    m,
                    f.ty,
                    &ipath,
                    depth + 1,
                )?));
            }
            Value::Array(inner) => {
                out.push(Value::Array(fresh_list(
                    inner,
                    Field::PLAIN,
                    &ipath,
                    depth + 1,
                )?));
            }
            other => out.push(other.clone()),
        }
    }
    Ok(out)
}
