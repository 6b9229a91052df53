//! Lists: merging by key or as a set, `$setElementOrder`, and the
//! element order apimachinery produces.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::schema::{self, Field, ListStrategy, Ty};
use super::{
    canon, check_depth, directive, fresh_list, ident, invalid, merge_body, merge_map, Directive,
    PatchError, Path, Result, Seg, PATCH, SET_ORDER,
};

/// `$setElementOrder/<name>: order` (at `opath`): merge list `name` and
/// order it. Returns whether the list was handled (false: not a merging
/// list, so the order means nothing and the list is patched as usual).
pub(super) fn set_element_order(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    name: &str,
    order: &Value,
    ty: Option<Ty>,
    opath: &Path,
    depth: usize,
) -> Result<bool> {
    let path = opath.parent.unwrap_or(&Path::ROOT);
    let Value::Array(order) = order else {
        return Err(invalid(opath, " must be a list"));
    };
    if name.is_empty() {
        return Err(invalid(opath, " names no field"));
    }
    let lpath = path.key(name);
    let orig_list = match orig.get(name) {
        None => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => return Err(invalid(&lpath, " is not a list")),
    };
    let patch_list = match patch.get(name) {
        None => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => {
            return Err(invalid(
                &lpath,
                format_args!(" must be a list when {SET_ORDER}{name} is given"),
            ))
        }
    };
    let f = schema::field(ty, name);
    let ListStrategy::Merge(key) = f.list else {
        return Ok(false);
    };
    validate_order(patch_list, order, key, &lpath)?;

    // Positions in the original list, before anything changes it.
    let server_pos = positions(orig_list.map_or(&[][..], |v| v), key);
    let merged = match (orig.get_mut(name), patch_list) {
        (Some(Value::Array(o)), Some(p)) => {
            let taken = std::mem::take(o);
            merge_slice(taken, p, key, f.ty, &lpath, depth + 1)?
        }
        (Some(Value::Array(o)), None) => std::mem::take(o),
        (_, Some(p)) => fresh_list(p, f, &lpath, depth + 1)?,
        (_, None) => return Ok(true),
    };
    let mut order_pos = HashMap::new();
    for (i, v) in order.iter().enumerate() {
        let id = ident(v, key).ok_or_else(|| missing_key(opath, key))?;
        order_pos.entry(id).or_insert(i);
    }
    let mut items = Vec::with_capacity(merged.len());
    for v in merged {
        let id = ident(&v, key).ok_or_else(|| missing_key(&lpath, key))?;
        items.push((order_pos.get(&id).copied(), server_pos.get(&id).copied(), v));
    }
    orig.insert(name.to_string(), Value::Array(normalize(items)));
    Ok(true)
}

fn missing_key(path: &Path, key: Option<&str>) -> PatchError {
    PatchError::MissingMergeKey {
        path: path.to_string(),
        key: key.unwrap_or_default().to_string(),
    }
}

/// First position of each element identity in `list`.
fn positions(list: &[Value], key: Option<&str>) -> HashMap<String, usize> {
    let mut pos = HashMap::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        if let Some(id) = ident(v, key) {
            pos.entry(id).or_insert(i);
        }
    }
    pos
}

/// The patch list's elements (deletions and other directives aside) must
/// appear in `$setElementOrder` in the same relative order.
fn validate_order(
    patch_list: Option<&Vec<Value>>,
    order: &[Value],
    key: Option<&str>,
    path: &Path,
) -> Result<()> {
    // As apimachinery: an empty order list orders nothing and checks nothing.
    let Some(patch_list) = patch_list.filter(|_| !order.is_empty()) else {
        return Ok(());
    };
    let mut want = order.iter();
    for p in patch_list {
        if key.is_some() && p.as_object().is_some_and(|m| m.contains_key(PATCH)) {
            continue;
        }
        let id = ident(p, key).ok_or_else(|| missing_key(path, key))?;
        loop {
            let Some(o) = want.next() else {
                return Err(invalid(
                    path,
                    format_args!(
                        ": element {} is missing from {SET_ORDER}{} or out of order",
                        key.and_then(|k| p.get(k)).unwrap_or(p),
                        path_leaf(path)
                    ),
                ));
            };
            if ident(o, key).ok_or_else(|| missing_key(path, key))? == id {
                break;
            }
        }
    }
    Ok(())
}

fn path_leaf<'a>(path: &Path<'a>) -> &'a str {
    match path.seg {
        Seg::Key(k) => k,
        _ => "",
    }
}

/// Patch a list according to its field's strategy.
pub(super) fn merge_list(
    orig: Vec<Value>,
    patch: &[Value],
    f: Field,
    path: &Path,
    depth: usize,
) -> Result<Vec<Value>> {
    match f.list {
        ListStrategy::Merge(key) => merge_slice(orig, patch, key, f.ty, path, depth),
        ListStrategy::Atomic => fresh_list(patch, f, path, depth),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Primitive(u8),
}

/// The common kind of the elements of both lists.
fn element_kind(orig: &[Value], patch: &[Value], path: &Path) -> Result<Kind> {
    let mut kind = None;
    for v in orig.iter().chain(patch) {
        let k = match v {
            Value::Object(_) => Kind::Object,
            Value::String(_) => Kind::Primitive(0),
            Value::Number(_) => Kind::Primitive(1),
            Value::Bool(_) => Kind::Primitive(2),
            Value::Null | Value::Array(_) => {
                return Err(PatchError::List {
                    path: path.to_string(),
                    reason: format!(
                        "an element is {v}; lists of lists and null elements cannot be merged"
                    ),
                })
            }
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(PatchError::List {
                    path: path.to_string(),
                    reason: "its elements are not all of the same type".into(),
                })
            }
            Some(_) => {}
        }
    }
    Ok(kind.unwrap_or(Kind::Object))
}

/// Merge two lists of a merging field: objects by `key`, primitives as a set.
fn merge_slice(
    orig: Vec<Value>,
    patch: &[Value],
    key: Option<&str>,
    ety: Option<Ty>,
    path: &Path,
    depth: usize,
) -> Result<Vec<Value>> {
    check_depth(depth, path)?;
    if orig.is_empty() && patch.is_empty() {
        return Ok(orig);
    }
    if element_kind(&orig, patch, path)? != Kind::Object {
        // Set union; patch values in patch order, original ones around them.
        let server_pos = positions(&orig, None);
        let patch_pos = positions(patch, None);
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for v in orig.into_iter().chain(patch.iter().cloned()) {
            let id = canon(&v);
            if seen.insert(id.clone()) {
                items.push((patch_pos.get(&id).copied(), server_pos.get(&id).copied(), v));
            }
        }
        return Ok(normalize(items));
    }
    let Some(key) = key else {
        return Err(PatchError::List {
            path: path.to_string(),
            reason: "its elements are objects but the field has no merge key".into(),
        });
    };

    // Elements carrying a `$patch` directive act on the list itself.
    let mut replace = false;
    let mut deletes = HashSet::new();
    let mut rest = Vec::with_capacity(patch.len());
    for (i, p) in patch.iter().enumerate() {
        let m = p.as_object().expect("element kind checked");
        match directive(m, &path.index(i))? {
            Some(Directive::Delete) => {
                let kv = m.get(key).ok_or_else(|| missing_key(path, Some(key)))?;
                deletes.insert(canon(kv));
            }
            Some(Directive::Replace) => replace = true,
            Some(Directive::Merge) if m.len() == 1 => {}
            Some(Directive::Merge) | None => rest.push(m),
        }
    }
    if replace {
        let mut out = Vec::with_capacity(rest.len());
        for m in rest {
            let kv = m.get(key).ok_or_else(|| missing_key(path, Some(key)))?;
            let v = merge_body(Map::new(), m, ety, &path.elem(key, kv), depth + 1)?;
            out.push(Value::Object(v));
        }
        return Ok(out);
    }

    let mut list = orig;
    if !deletes.is_empty() {
        list.retain(|v| ident(v, Some(key)).is_none_or(|id| !deletes.contains(&id)));
    }
    let server_pos = positions(&list, Some(key));
    let mut pos = server_pos.clone();
    let mut patch_pos: Vec<Option<usize>> = vec![None; list.len()];
    for (pi, m) in rest.into_iter().enumerate() {
        let kv = m.get(key).ok_or_else(|| missing_key(path, Some(key)))?;
        let id = canon(kv);
        let epath = path.elem(key, kv);
        match pos.get(&id) {
            Some(&i) => {
                let Value::Object(o) = &mut list[i] else {
                    unreachable!("element kind checked")
                };
                let taken = std::mem::take(o);
                *o = merge_map(taken, m, ety, &epath, depth + 1)?;
                patch_pos[i].get_or_insert(pi);
            }
            None => {
                let v = merge_map(Map::new(), m, ety, &epath, depth + 1)?;
                pos.insert(id, list.len());
                list.push(Value::Object(v));
                patch_pos.push(Some(pi));
            }
        }
    }
    let items = list
        .into_iter()
        .zip(patch_pos)
        .map(|(v, pp)| {
            let sp = ident(&v, Some(key)).and_then(|id| server_pos.get(&id).copied());
            (pp, sp, v)
        })
        .collect();
    Ok(normalize(items))
}

/// Order merged list items `(patch position, original position, value)`:
/// the patch's items sorted by patch position, the others (original-only)
/// kept in their order and slotted in before the first patch item that came
/// after them in the original (apimachinery's `mergeSortedSlice`).
fn normalize(items: Vec<(Option<usize>, Option<usize>, Value)>) -> Vec<Value> {
    let mut from_patch = Vec::new();
    let mut server_only = Vec::new();
    for (pp, sp, v) in items {
        match pp {
            Some(p) => from_patch.push((p, sp, v)),
            None => server_only.push((sp, v)),
        }
    }
    from_patch.sort_by_key(|(p, _, _)| *p);
    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((Some(l), _)), Some((_, Some(r), _))) => l < r,
            (Some(_), Some(_)) => false,
        };
        if take_left {
            out.extend(left.next().map(|(_, v)| v));
        } else {
            out.extend(right.next().map(|(_, _, v)| v));
        }
    }
    out
}
