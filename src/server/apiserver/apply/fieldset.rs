//! Field sets: which fields of an object a manager owns, in the `FieldsV1`
//! encoding of the real API server.
//!
//! A set is a tree keyed by encoded path elements:
//! `f:<field>` (a map field), `k:<json of the key fields, sorted>` (an
//! element of an associative list), `v:<json>` (an element of a set of
//! primitives) and `i:<index>` (an element of a list without keys). In JSON,
//! every node is an object; `".": {}` inside a node with children marks the
//! node itself as a member, and a node without children is a member.
//!
//! Keys are kept as their encoded strings: the encoding sorts `.` first and
//! then by element type and value, which is also the order the apiserver
//! writes them in.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::shape::{self, Shape};
use crate::api::strategic::schema::Ty;

/// One path: encoded path elements from the object root.
pub type Path = Vec<String>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// The path leading here is itself in the set.
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

pub fn pe_field(name: &str) -> String {
    format!("f:{name}")
}

pub fn pe_key(key: &Map<String, Value>) -> String {
    format!("k:{}", Value::Object(key.clone()))
}

pub fn pe_value(v: &Value) -> String {
    format!("v:{v}")
}

pub fn pe_index(i: usize) -> String {
    format!("i:{i}")
}

/// `.spec.containers[name="app"].image`, as the apiserver prints a path in
/// conflict messages.
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let fields: Vec<String> = match serde_json::from_str::<Map<String, Value>>(k) {
                Ok(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                Err(_) => vec![k.to_string()],
            };
            out.push('[');
            out.push_str(&fields.join(","));
            out.push(']');
        } else if let Some(v) = pe.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        } else {
            out.push_str(pe);
        }
    }
    out
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    pub fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = true,
            Some((pe, rest)) => self.children.entry(pe.clone()).or_default().insert(rest),
        }
    }

    /// Is `path` a member?
    pub fn has(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Is `path` or anything below it a member?
    pub fn has_prefix(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        match path.split_first() {
            None => Some(self),
            Some((pe, rest)) => self.children.get(pe)?.node(rest),
        }
    }

    /// Remove the member `path` (not what lies below it).
    pub fn remove(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = false,
            Some((pe, rest)) => {
                if let Some(c) = self.children.get_mut(pe) {
                    c.remove(rest);
                    if c.is_empty() {
                        self.children.remove(pe);
                    }
                }
            }
        }
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (k, c) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Every member path, parents before children.
    pub fn members(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.collect(&mut path, &mut out);
        out
    }

    fn collect(&self, path: &mut Path, out: &mut Vec<Path>) {
        if self.member && !path.is_empty() {
            out.push(path.clone());
        }
        for (k, c) in &self.children {
            path.push(k.clone());
            c.collect(path, out);
            path.pop();
        }
    }

    /// The `fieldsV1` JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }

    /// Parse `fieldsV1` JSON.
    pub fn from_json(v: &Value) -> Result<FieldSet, String> {
        let mut set = Self::from_json_node(v, 0)?;
        set.member = false;
        Ok(set)
    }

    fn from_json_node(v: &Value, depth: usize) -> Result<FieldSet, String> {
        if depth > 100 {
            return Err("fieldsV1 is nested too deeply".into());
        }
        let m = v
            .as_object()
            .ok_or_else(|| format!("fieldsV1 must be objects, found {v}"))?;
        let mut set = FieldSet {
            member: m.is_empty(),
            children: BTreeMap::new(),
        };
        for (k, c) in m {
            if k == "." {
                set.member = true;
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|p| k.starts_with(p)) {
                return Err(format!("unknown path element {k:?} in fieldsV1"));
            }
            let child = Self::from_json_node(c, depth + 1)?;
            set.children.insert(k.clone(), child);
        }
        Ok(set)
    }
}

/// Metadata fields no manager ever owns (as the apiserver strips them).
const UNOWNED_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// Which part of an object a field set covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything but `status` (writes to the main resource).
    Main,
    /// Only `status` (writes to `/status`).
    Status,
}

/// `obj` without what no manager owns: type meta, server-owned metadata,
/// and `status` or everything but `status`, depending on `scope`.
pub fn ownable(obj: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            let keep = match k.as_str() {
                "apiVersion" | "kind" => false,
                "status" => scope == Scope::Status,
                _ => scope == Scope::Main,
            };
            if !keep {
                continue;
            }
            if k == "metadata" {
                if let Some(meta) = v.as_object() {
                    let meta: Map<String, Value> = meta
                        .iter()
                        .filter(|(k, _)| !UNOWNED_META.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if !meta.is_empty() {
                        out.insert(k.clone(), Value::Object(meta));
                    }
                }
                continue;
            }
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// The path element of list element `i`.
fn element_pe(shape: Shape, i: usize, elem: &Value) -> String {
    match shape {
        Shape::Assoc(keys, _) => match shape::element_key(keys, elem) {
            Some(k) => pe_key(&k),
            None => pe_index(i),
        },
        Shape::Set => pe_value(elem),
        _ => pe_index(i),
    }
}

fn element_ty(shape: Shape) -> Option<Ty> {
    match shape {
        Shape::Assoc(_, ty) => ty,
        _ => None,
    }
}

/// The fields an applied configuration sets: every leaf, every list
/// element (`.`), and empty maps. `obj` should come from [`ownable`];
/// `root` is the schema type of the whole object.
pub(crate) fn applied_set(obj: &Value, root: Option<Ty>) -> FieldSet {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    walk_map(obj, root, &mut path, &mut set, false);
    set
}

/// Every field and element of `obj`, maps included (a value a write
/// created from nothing).
fn all_nodes(v: &Value, shape: Shape, name: &str, path: &mut Path, set: &mut FieldSet) {
    let implicit =
        (matches!(shape, Shape::Map(_)) && implicit_struct(name)) || name == "containers";
    if !implicit || v.as_object().is_some_and(Map::is_empty) {
        set.insert(path);
    }
    descend(v, shape, path, set, true);
}

/// Fields that are plain (non-pointer) structs in the Go types: they always
/// exist, so a write never "adds" them and the apiserver does not list them
/// as members. (`containers`, a list without `omitempty`, is alike.)
fn implicit_struct(name: &str) -> bool {
    matches!(
        name,
        "metadata" | "spec" | "status" | "template" | "strategy" | "jobTemplate"
    )
}

fn descend(v: &Value, shape: Shape, path: &mut Path, set: &mut FieldSet, all: bool) {
    match (shape, v) {
        (Shape::Map(ty), Value::Object(_)) => walk_map(v, ty, path, set, all),
        (Shape::Assoc(..) | Shape::Set, Value::Array(items)) => {
            for (i, elem) in items.iter().enumerate() {
                path.push(element_pe(shape, i, elem));
                set.insert(path);
                if elem.is_object() {
                    walk_map(elem, element_ty(shape), path, set, all);
                }
                path.pop();
            }
        }
        _ => {}
    }
}

fn walk_map(v: &Value, ty: Option<Ty>, path: &mut Path, set: &mut FieldSet, all: bool) {
    let Some(m) = v.as_object() else { return };
    for (k, child) in m {
        if child.is_null() {
            continue;
        }
        let shape = shape::of_field(ty, k, child);
        path.push(pe_field(k));
        if all {
            all_nodes(child, shape, k, path, set);
        } else {
            match shape {
                Shape::Map(_) if child.as_object().is_some_and(|c| !c.is_empty()) => {
                    descend(child, shape, path, set, false)
                }
                Shape::Assoc(..) | Shape::Set => descend(child, shape, path, set, false),
                _ => set.insert(path),
            }
        }
        path.pop();
    }
}

/// What a write changed: fields added or modified, and fields removed.
#[derive(Debug, Default)]
pub struct Comparison {
    pub changed: FieldSet,
    pub removed: FieldSet,
}

/// Compare two ownable objects (see [`ownable`]) of root type `root`.
pub(crate) fn compare(old: &Value, new: &Value, root: Option<Ty>) -> Comparison {
    let mut c = Comparison::default();
    let mut path = Vec::new();
    compare_map(old, new, root, &mut path, &mut c);
    c
}

fn compare_map(old: &Value, new: &Value, ty: Option<Ty>, path: &mut Path, c: &mut Comparison) {
    let empty = Map::new();
    let om = old.as_object().unwrap_or(&empty);
    let nm = new.as_object().unwrap_or(&empty);
    for (k, nv) in nm {
        if nv.is_null() {
            continue;
        }
        path.push(pe_field(k));
        let nshape = shape::of_field(ty, k, nv);
        match om.get(k).filter(|v| !v.is_null()) {
            None => all_nodes(nv, nshape, k, path, &mut c.changed),
            Some(ov) => compare_value(ov, nv, shape::of_field(ty, k, ov), nshape, k, path, c),
        }
        path.pop();
    }
    for (k, ov) in om {
        if ov.is_null() || nm.get(k).is_some_and(|v| !v.is_null()) {
            continue;
        }
        path.push(pe_field(k));
        all_nodes(ov, shape::of_field(ty, k, ov), k, path, &mut c.removed);
        path.pop();
    }
}

fn compare_value(
    ov: &Value,
    nv: &Value,
    oshape: Shape,
    nshape: Shape,
    name: &str,
    path: &mut Path,
    c: &mut Comparison,
) {
    if oshape != nshape {
        all_nodes(ov, oshape, name, path, &mut c.removed);
        all_nodes(nv, nshape, name, path, &mut c.changed);
        return;
    }
    match nshape {
        Shape::Map(ty) => {
            if nv.as_object().is_some_and(Map::is_empty)
                && !ov.as_object().is_some_and(Map::is_empty)
            {
                c.changed.insert(path);
            }
            compare_map(ov, nv, ty, path, c)
        }
        Shape::Atomic => {
            if ov != nv {
                c.changed.insert(path);
            }
        }
        Shape::Assoc(..) | Shape::Set => {
            let empty = Vec::new();
            let oitems = ov.as_array().unwrap_or(&empty);
            let nitems = nv.as_array().unwrap_or(&empty);
            let olds: BTreeMap<String, &Value> = oitems
                .iter()
                .enumerate()
                .map(|(i, e)| (element_pe(nshape, i, e), e))
                .collect();
            let mut seen = std::collections::BTreeSet::new();
            for (i, ne) in nitems.iter().enumerate() {
                let pe = element_pe(nshape, i, ne);
                seen.insert(pe.clone());
                path.push(pe.clone());
                match olds.get(&pe) {
                    None => {
                        c.changed.insert(path);
                        descend_all(ne, nshape, path, &mut c.changed);
                    }
                    Some(oe) if ne.is_object() && oe.is_object() => {
                        compare_map(oe, ne, element_ty(nshape), path, c)
                    }
                    Some(oe) => {
                        if *oe != ne {
                            c.changed.insert(path);
                        }
                    }
                }
                path.pop();
            }
            for (pe, oe) in &olds {
                if !seen.contains(pe) {
                    path.push(pe.clone());
                    c.removed.insert(path);
                    descend_all(oe, nshape, path, &mut c.removed);
                    path.pop();
                }
            }
        }
    }
}

/// All fields below a list element.
fn descend_all(elem: &Value, list_shape: Shape, path: &mut Path, set: &mut FieldSet) {
    if elem.is_object() {
        walk_map(elem, element_ty(list_shape), path, set, true);
    }
}

/// What is found at a path of an object.
#[derive(Debug, PartialEq)]
pub enum Found<'a> {
    Missing,
    /// A map or a list element: present, compared by presence only.
    Node,
    /// An atomic value.
    Leaf(&'a Value),
}

/// Look `path` up in `obj` (of root type `root`).
pub(crate) fn lookup<'a>(obj: &'a Value, root: Option<Ty>, path: &[String]) -> Found<'a> {
    match walk(obj, root, path) {
        None => Found::Missing,
        Some((cur, shape)) => match shape {
            Shape::Atomic => Found::Leaf(cur),
            Shape::Map(_) if cur.as_object().is_some_and(Map::is_empty) => Found::Leaf(cur),
            Shape::Map(_) if !cur.is_object() => Found::Leaf(cur),
            _ => Found::Node,
        },
    }
}

/// The value at `path`, whatever it is.
pub(crate) fn lookup_value<'a>(
    obj: &'a Value,
    root: Option<Ty>,
    path: &[String],
) -> Option<&'a Value> {
    walk(obj, root, path).map(|(v, _)| v)
}

fn walk<'a>(obj: &'a Value, root: Option<Ty>, path: &[String]) -> Option<(&'a Value, Shape)> {
    let mut cur = obj;
    let mut shape = Shape::Map(root);
    for pe in path {
        match (shape, cur) {
            (Shape::Map(ty), Value::Object(m)) => {
                let name = pe.strip_prefix("f:")?;
                match m.get(name).filter(|v| !v.is_null()) {
                    Some(v) => {
                        shape = shape::of_field(ty, name, v);
                        cur = v;
                    }
                    None => return None,
                }
            }
            (Shape::Assoc(..) | Shape::Set, Value::Array(items)) => {
                let hit = items
                    .iter()
                    .enumerate()
                    .find(|(i, e)| element_pe(shape, *i, e) == *pe);
                match hit {
                    Some((_, e)) => {
                        shape = Shape::Map(element_ty(shape));
                        cur = e;
                    }
                    None => return None,
                }
            }
            _ => return None,
        }
    }
    Some((cur, shape))
}

/// Remove the value at `path` from `obj`: a map field or a list element.
pub(crate) fn remove_path(obj: &mut Value, root: Option<Ty>, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    let mut shape = Shape::Map(root);
    for pe in parents {
        let next_shape;
        let next = match (shape, cur) {
            (Shape::Map(ty), Value::Object(m)) => {
                let Some(name) = pe.strip_prefix("f:") else {
                    return;
                };
                let Some(v) = m.get_mut(name) else { return };
                next_shape = shape::of_field(ty, name, v);
                v
            }
            (Shape::Assoc(..) | Shape::Set, Value::Array(items)) => {
                let Some(e) = items
                    .iter_mut()
                    .enumerate()
                    .find(|(i, e)| element_pe(shape, *i, e) == *pe)
                    .map(|(_, e)| e)
                else {
                    return;
                };
                next_shape = Shape::Map(element_ty(shape));
                e
            }
            _ => return,
        };
        shape = next_shape;
        cur = next;
    }
    match (shape, cur) {
        (Shape::Map(_), Value::Object(m)) => {
            if let Some(name) = last.strip_prefix("f:") {
                m.remove(name);
            }
        }
        (Shape::Assoc(..) | Shape::Set, Value::Array(items)) => {
            let mut i = 0;
            items.retain(|e| {
                let keep = element_pe(shape, i, e) != *last;
                i += 1;
                keep
            });
        }
        _ => {}
    }
}
