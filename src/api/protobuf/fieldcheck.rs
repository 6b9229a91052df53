//! Field validation (`?fieldValidation=Strict|Warn|Ignore`) of JSON bodies
//! against the API types, using the wire schema table: fields a kind does
//! not have, fields given twice, and values the apiserver's decoder cannot
//! take (a string where a list belongs, a malformed quantity).
//!
//! The apiserver answers Strict problems with a 400 BadRequest
//! `strict decoding error: unknown field "spec.foo", …` and Warn problems
//! with one `Warning: 299 - "unknown field \"spec.foo\""` header each;
//! [`strict_error_message`], [`cannot_be_handled`] and [`warning_header`]
//! build those texts.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::schema::{self, FieldType, Label, Message, Scalar, Special};

/// Deepest nesting walked; deeper parts of a document are not checked.
const MAX_WALK_DEPTH: usize = 64;

/// One problem the strict decoder reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    Unknown(String),
    Duplicate(String),
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::Unknown(p) => write!(f, "unknown field \"{p}\""),
            FieldProblem::Duplicate(p) => write!(f, "duplicate field \"{p}\""),
        }
    }
}

/// `strict decoding error: unknown field "a", duplicate field "b"`.
pub fn strict_error_message(problems: &[FieldProblem]) -> String {
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    format!("strict decoding error: {}", list.join(", "))
}

/// The wrapper of decode errors on create/update:
/// `Deployment in version "v1" cannot be handled as a Deployment: <inner>`.
pub fn cannot_be_handled(api_version: &str, kind: &str, inner: &str) -> String {
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    format!("{kind} in version \"{version}\" cannot be handled as a {kind}: {inner}")
}

/// The value of one `Warning` header for a problem under fieldValidation=Warn:
/// `299 - "unknown field \"spec.foo\""`.
pub fn warning_header(problem: &FieldProblem) -> String {
    let text = problem
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!("299 - \"{text}\"")
}

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Strict,
    /// The default when the parameter is absent.
    Warn,
    Ignore,
}

impl Mode {
    /// Parses `?fieldValidation=`; None (absent or empty) means Warn.
    pub fn parse(param: Option<&str>) -> Result<Mode, String> {
        match param.unwrap_or("") {
            "Strict" => Ok(Mode::Strict),
            "Warn" | "" => Ok(Mode::Warn),
            "Ignore" => Ok(Mode::Ignore),
            other => Err(format!(
                "fieldValidation parameter unsupported: {other:?} (use Strict, Warn or Ignore)"
            )),
        }
    }
}

/// The whole check of a create/update body: `Err(message)` for a 400
/// BadRequest (a value the decoder rejects, or Strict problems), otherwise
/// the `Warning` header values to send (empty unless Warn found problems).
/// `raw_json` is the body when it was JSON (for duplicate fields).
pub fn check_body(
    mode: Mode,
    api_version: &str,
    kind: &str,
    obj: &Value,
    raw_json: Option<&[u8]>,
) -> Result<Vec<String>, String> {
    if let Some(e) = decode_error(api_version, kind, obj) {
        return Err(cannot_be_handled(api_version, kind, &e));
    }
    if mode == Mode::Ignore {
        return Ok(Vec::new());
    }
    let problems = field_problems(api_version, kind, obj, raw_json);
    if problems.is_empty() {
        return Ok(Vec::new());
    }
    match mode {
        Mode::Strict => Err(cannot_be_handled(
            api_version,
            kind,
            &strict_error_message(&problems),
        )),
        _ => Ok(problems.iter().map(warning_header).collect()),
    }
}

/// The problems Strict/Warn report for a body: duplicates (from the raw
/// JSON, if given) then unknown fields.
pub fn field_problems(
    api_version: &str,
    kind: &str,
    obj: &Value,
    raw_json: Option<&[u8]>,
) -> Vec<FieldProblem> {
    let mut out: Vec<FieldProblem> = raw_json
        .map(duplicate_fields)
        .unwrap_or_default()
        .into_iter()
        .map(FieldProblem::Duplicate)
        .collect();
    out.extend(
        unknown_fields(api_version, kind, obj)
            .into_iter()
            .map(FieldProblem::Unknown),
    );
    out
}

fn top_message(
    api_version: &str,
    kind: &str,
) -> Option<(&'static schema::Schema, &'static Message)> {
    let schema = schema::schema().ok()?;
    let msg = super::message_for_kind(schema, api_version, kind)?;
    Some((schema, msg))
}

/// JSON paths of the fields in `obj` that its kind does not have, e.g.
/// `spec.template.spec.containers[0].imagee`. Kinds not in the schema (custom
/// resources) have none.
pub fn unknown_fields(api_version: &str, kind: &str, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some((schema, msg)) = top_message(api_version, kind) else {
        return out;
    };
    if let Value::Object(map) = obj {
        for (k, v) in map {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            match lookup(schema, msg, k) {
                Some(f) => walk_field(schema, f, v, k, 1, &mut out),
                None => out.push(k.clone()),
            }
        }
    }
    out
}

/// Drop the fields the type does not have, as the apiserver's typed decoder
/// does under fieldValidation Warn and Ignore: they are never stored.
/// Kinds not in the schema are left alone.
pub fn prune_unknown_fields(api_version: &str, kind: &str, obj: &mut Value) {
    let Some((schema, msg)) = top_message(api_version, kind) else {
        return;
    };
    if let Value::Object(map) = obj {
        map.retain(|k, v| {
            if k == "apiVersion" || k == "kind" {
                return true;
            }
            match lookup(schema, msg, k) {
                Some(f) => {
                    prune_field(schema, f, v, 1);
                    true
                }
                None => false,
            }
        });
    }
}

fn prune_field(schema: &schema::Schema, f: &schema::Field, v: &mut Value, depth: usize) {
    let FieldType::Message(i) = f.ty else { return };
    let msg = schema.message(i);
    match (f.label, v) {
        (Label::Repeated, Value::Array(items)) => {
            for item in items.iter_mut() {
                prune_message(schema, msg, item, depth + 1);
            }
        }
        (Label::Map, Value::Object(entries)) => {
            for item in entries.values_mut() {
                prune_message(schema, msg, item, depth + 1);
            }
        }
        (Label::Optional, v) => prune_message(schema, msg, v, depth + 1),
        _ => {}
    }
}

fn prune_message(schema: &schema::Schema, msg: &Message, v: &mut Value, depth: usize) {
    if depth > MAX_WALK_DEPTH || msg.special != Special::None {
        return;
    }
    let Value::Object(map) = v else { return };
    map.retain(|k, child| match lookup(schema, msg, k) {
        Some(f) => {
            prune_field(schema, f, child, depth);
            true
        }
        None => false,
    });
}

/// The field of `msg` (or of its inlined members) with JSON name `key`.
fn lookup<'s>(
    schema: &'s schema::Schema,
    msg: &'s Message,
    key: &str,
) -> Option<&'s schema::Field> {
    for f in &msg.fields {
        if f.inline {
            if let FieldType::Message(i) = f.ty {
                if let Some(found) = lookup(schema, schema.message(i), key) {
                    return Some(found);
                }
            }
        } else if f.json == key {
            return Some(f);
        }
    }
    None
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk_field(
    schema: &schema::Schema,
    f: &schema::Field,
    v: &Value,
    path: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    let FieldType::Message(i) = f.ty else { return };
    let msg = schema.message(i);
    match (f.label, v) {
        (Label::Repeated, Value::Array(items)) => {
            for (n, item) in items.iter().enumerate() {
                walk_message(schema, msg, item, &format!("{path}[{n}]"), depth + 1, out);
            }
        }
        (Label::Map, Value::Object(entries)) => {
            for (k, item) in entries {
                walk_message(schema, msg, item, &join(path, k), depth + 1, out);
            }
        }
        (Label::Optional, _) => walk_message(schema, msg, v, path, depth + 1, out),
        _ => {}
    }
}

fn walk_message(
    schema: &schema::Schema,
    msg: &Message,
    v: &Value,
    path: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    if depth > MAX_WALK_DEPTH || msg.special != Special::None {
        return;
    }
    let Value::Object(map) = v else { return };
    for (k, child) in map {
        let p = join(path, k);
        match lookup(schema, msg, k) {
            Some(f) => walk_field(schema, f, child, &p, depth, out),
            None => out.push(p),
        }
    }
}

/// The first value the apiserver's JSON decoder would reject, as its error
/// text (`json: cannot unmarshal string into Go struct field
/// DeploymentSpec.spec.replicas of type int32`, the quantity syntax error,
/// …); None when the body decodes. Wrap it with [`cannot_be_handled`] for a
/// 400 BadRequest.
pub fn decode_error(api_version: &str, kind: &str, obj: &Value) -> Option<String> {
    let (schema, msg) = top_message(api_version, kind)?;
    let Value::Object(map) = obj else {
        return None;
    };
    for (k, v) in map {
        if let Some(f) = lookup(schema, msg, k) {
            let owner = short_name(msg.name);
            if let Some(e) = check_value(schema, owner, f, v, k, 1) {
                return Some(e);
            }
        }
    }
    None
}

fn short_name(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

/// Go's name of a message type: `v1.Container`, `intstr.IntOrString`.
fn go_type_name(full: &str) -> String {
    let mut parts = full.rsplitn(2, '.');
    let name = parts.next().unwrap_or(full);
    let pkg = parts.next().unwrap_or("");
    let pkg = pkg.rsplit('.').next().unwrap_or(pkg);
    format!("{pkg}.{name}")
}

fn go_type(schema: &schema::Schema, f: &schema::Field) -> String {
    let base = match f.ty {
        FieldType::Scalar(Scalar::Bytes) => "[]uint8".to_string(),
        FieldType::Scalar(Scalar::Double) => "float64".to_string(),
        FieldType::Scalar(Scalar::Float) => "float32".to_string(),
        FieldType::Scalar(s) => format!("{s:?}").to_lowercase(),
        FieldType::Message(i) => go_type_name(schema.message(i).name),
    };
    match f.label {
        Label::Optional => base,
        Label::Repeated => format!("[]{base}"),
        Label::Map => format!("map[string]{base}"),
    }
}

fn json_kind(v: &Value) -> String {
    match v {
        Value::String(_) => "string".into(),
        Value::Number(n) => format!("number {n}"),
        Value::Bool(_) => "bool".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        Value::Null => "null".into(),
    }
}

fn mismatch(
    schema: &schema::Schema,
    owner: &str,
    f: &schema::Field,
    v: &Value,
    path: &str,
) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {owner}.{path} of type {}",
        json_kind(v),
        go_type(schema, f)
    )
}

fn check_value(
    schema: &schema::Schema,
    owner: &str,
    f: &schema::Field,
    v: &Value,
    path: &str,
    depth: usize,
) -> Option<String> {
    if v.is_null() || depth > MAX_WALK_DEPTH {
        return None;
    }
    match (f.label, v) {
        (Label::Repeated, Value::Array(items)) => {
            for (n, item) in items.iter().enumerate() {
                let p = format!("{path}[{n}]");
                if let Some(e) = check_single(schema, owner, f, item, &p, path, depth + 1) {
                    return Some(e);
                }
            }
            None
        }
        (Label::Map, Value::Object(entries)) => {
            for (k, item) in entries {
                let p = join(path, k);
                if let Some(e) = check_single(schema, owner, f, item, &p, path, depth + 1) {
                    return Some(e);
                }
            }
            None
        }
        (Label::Optional, _) => check_single(schema, owner, f, v, path, path, depth),
        _ => Some(mismatch(schema, owner, f, v, path)),
    }
}

/// One value of field `f` (an element, for lists and maps) at `path`;
/// `field_path` names the field itself in errors.
fn check_single(
    schema: &schema::Schema,
    owner: &str,
    f: &schema::Field,
    v: &Value,
    path: &str,
    field_path: &str,
    depth: usize,
) -> Option<String> {
    if v.is_null() {
        return None;
    }
    let elem_type = || {
        let mut g = go_type(schema, f);
        for prefix in ["[]", "map[string]"] {
            if let Some(s) = g.strip_prefix(prefix) {
                g = s.to_string();
                break;
            }
        }
        g
    };
    let bad = || {
        Some(format!(
            "json: cannot unmarshal {} into Go struct field {owner}.{field_path} of type {}",
            json_kind(v),
            elem_type()
        ))
    };
    match f.ty {
        FieldType::Scalar(s) => {
            let ok = match s {
                Scalar::String => v.is_string(),
                Scalar::Bool => v.is_boolean(),
                Scalar::Int32 | Scalar::Int64 => v
                    .as_i64()
                    .is_some_and(|n| s == Scalar::Int64 || i32::try_from(n).is_ok()),
                Scalar::Uint32 | Scalar::Uint64 => v.as_u64().is_some(),
                Scalar::Double | Scalar::Float => v.is_number(),
                Scalar::Bytes => {
                    let Some(text) = v.as_str() else { return bad() };
                    return base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .err()
                        .map(|e| base64_error(&e));
                }
            };
            if ok {
                None
            } else {
                bad()
            }
        }
        FieldType::Message(i) => {
            let msg = schema.message(i);
            match msg.special {
                Special::Quantity => match v {
                    Value::String(s) => crate::api::validation::quantity::parse(s)
                        .err()
                        .map(str::to_string),
                    Value::Number(_) => None,
                    _ => bad(),
                },
                Special::IntOrString => (!(v.is_string() || v.is_i64() || v.is_u64())).then(|| {
                    format!(
                        "json: cannot unmarshal {} into Go value of type intstr.IntOrString",
                        json_kind(v)
                    )
                }),
                Special::Time | Special::MicroTime | Special::Duration => {
                    (!v.is_string()).then(|| bad().unwrap_or_default())
                }
                Special::RawJson | Special::Items => None,
                Special::None => {
                    let Value::Object(map) = v else { return bad() };
                    let owner = short_name(msg.name);
                    for (k, child) in map {
                        if let Some(cf) = lookup(schema, msg, k) {
                            let p = join(path, k);
                            if let Some(e) = check_value(schema, owner, cf, child, &p, depth + 1) {
                                return Some(e);
                            }
                        }
                    }
                    None
                }
            }
        }
    }
}

fn base64_error(e: &base64::DecodeError) -> String {
    let at = match e {
        base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => *i,
        _ => 0,
    };
    format!("illegal base64 data at input byte {at}")
}

/// JSON paths of object keys that occur twice in the same object of a raw
/// JSON document (e.g. `metadata.name`). Empty for documents that do not
/// parse.
pub fn duplicate_fields(raw_json: &[u8]) -> Vec<String> {
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(raw_json);
    let seed = DupWalk {
        path: String::new(),
        found: &found,
    };
    if seed.deserialize(&mut de).is_err() {
        return Vec::new();
    }
    found.into_inner()
}

struct DupWalk<'a> {
    path: String,
    found: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for DupWalk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupWalk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            if !seen.insert(key) {
                self.found.borrow_mut().push(path.clone());
            }
            map.next_value_seed(DupWalk {
                path,
                found: self.found,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(DupWalk {
                path: format!("{}[{i}]", self.path),
                found: self.found,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}
