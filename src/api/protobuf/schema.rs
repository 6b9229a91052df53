//! The wire schema of the Kubernetes API types: which field number carries which
//! JSON field, of which type, and when its zero value is left out.
//!
//! The facts live in `schema.txt` (regenerate it with `gen_schema.py`, whose
//! docstring describes the format); this module parses them once into a table.

use std::collections::HashMap;
use std::sync::OnceLock;

const SCHEMA_TEXT: &str = include_str!("schema.txt");

/// Scalar protobuf types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    String,
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Double,
    Float,
    Bytes,
}

impl Scalar {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Scalar::String,
            "bool" => Scalar::Bool,
            "int32" => Scalar::Int32,
            "int64" => Scalar::Int64,
            "uint32" => Scalar::Uint32,
            "uint64" => Scalar::Uint64,
            "double" => Scalar::Double,
            "float" => Scalar::Float,
            "bytes" => Scalar::Bytes,
            _ => return None,
        })
    }

    /// Whether a repeated field of this type may arrive packed in one length-delimited run.
    pub(super) fn packable(self) -> bool {
        !matches!(self, Scalar::String | Scalar::Bytes)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldType {
    Scalar(Scalar),
    /// Index into [`Schema::messages`].
    Message(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    Optional,
    Repeated,
    /// `map<string, T>`: repeated entries {1: key, 2: value}.
    Map,
}

#[derive(Debug, Clone)]
pub(super) struct Field {
    pub number: u32,
    pub json: &'static str,
    pub ty: FieldType,
    pub label: Label,
    /// Non-pointer Go field tagged `omitempty`: its zero value is left out.
    pub omit_zero: bool,
    /// Embedded Go struct: its fields are merged into the parent object.
    pub inline: bool,
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    None,
    /// `meta.v1.Time`: RFC3339 seconds.
    Time,
    /// `meta.v1.MicroTime`: RFC3339 with microseconds.
    MicroTime,
    /// `meta.v1.Duration`: Go duration string.
    Duration,
    /// `intstr.IntOrString`: a JSON number or string.
    IntOrString,
    /// `resource.Quantity`: its string.
    Quantity,
    /// `runtime.RawExtension`, `meta.v1.FieldsV1`: embedded JSON.
    RawJson,
    /// A wrapped Go slice (`ExtraValue`): the bare array of its items.
    Items,
}

#[derive(Debug)]
pub(super) struct Message {
    /// `core.v1.Pod`
    pub name: &'static str,
    pub special: Special,
    pub fields: Vec<Field>,
    /// (field number, index into `fields`), sorted by number: messages have
    /// a few dozen fields at most, and the schema is built on the first
    /// request that needs it, so a binary search beats building hash maps.
    by_number: Vec<(u32, usize)>,
}

impl Message {
    pub(super) fn field(&self, number: u32) -> Option<(usize, &Field)> {
        let at = self
            .by_number
            .binary_search_by_key(&number, |&(n, _)| n)
            .ok()?;
        let i = self.by_number[at].1;
        Some((i, &self.fields[i]))
    }

    pub(super) fn has_field(&self, json: &str) -> bool {
        self.fields.iter().any(|f| f.json == json)
    }
}

#[derive(Debug)]
pub(super) struct Schema {
    pub messages: Vec<Message>,
    by_name: HashMap<&'static str, usize>,
}

impl Schema {
    pub(super) fn get(&self, name: &str) -> Option<&Message> {
        self.by_name.get(name).map(|&i| &self.messages[i])
    }

    pub(super) fn message(&self, index: usize) -> &Message {
        &self.messages[index]
    }
}

/// The parsed schema, or why `schema.txt` could not be parsed (a build defect,
/// caught by the unit tests).
pub(super) fn schema() -> Result<&'static Schema, &'static str> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| parse(SCHEMA_TEXT))
        .as_ref()
        .map_err(|e| e.as_str())
}

fn special_for(name: &str, items: bool) -> Special {
    match name {
        "meta.v1.Time" => Special::Time,
        "meta.v1.MicroTime" => Special::MicroTime,
        "meta.v1.Duration" => Special::Duration,
        "intstr.IntOrString" => Special::IntOrString,
        "resource.Quantity" | "resource.QuantityValue" => Special::Quantity,
        "runtime.RawExtension" | "meta.v1.FieldsV1" => Special::RawJson,
        _ if items => Special::Items,
        _ => Special::None,
    }
}

/// A field's type before message names are resolved to indices.
enum RawType {
    Scalar(Scalar),
    /// A message named as written, in `package` when the name is bare
    /// (`package` empty when it is qualified).
    Message {
        package: &'static str,
        name: &'static str,
    },
}

pub(super) fn parse(text: &'static str) -> Result<Schema, String> {
    // First pass: message headers and raw field descriptions.
    let mut pending: Vec<(Message, Vec<(Field, RawType)>)> = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let lineno = lineno + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            let mut parts = line.split_whitespace();
            let name = parts
                .next()
                .ok_or_else(|| format!("line {lineno}: empty header"))?;
            let items = match parts.next() {
                None => false,
                Some("=items") => true,
                Some(other) => return Err(format!("line {lineno}: unknown marker {other}")),
            };
            pending.push((
                Message {
                    name,
                    special: special_for(name, items),
                    fields: Vec::new(),
                    by_number: Vec::new(),
                },
                Vec::new(),
            ));
            continue;
        }
        let (msg, fields) = pending
            .last_mut()
            .ok_or_else(|| format!("line {lineno}: field before any message"))?;
        let package = msg.name.rsplit_once('.').map_or("", |(p, _)| p);
        for token in line.split_whitespace() {
            let field =
                parse_field(token, package).map_err(|e| format!("line {lineno}: {token}: {e}"))?;
            fields.push(field);
        }
    }

    let by_name: HashMap<&'static str, usize> = pending
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (m.name, i))
        .collect();
    let mut messages = Vec::with_capacity(pending.len());
    // One buffer for the qualified names of bare ones, not one String each.
    let mut qualified = String::new();
    for (mut msg, fields) in pending {
        msg.fields.reserve_exact(fields.len());
        msg.by_number.reserve_exact(fields.len());
        for (mut field, raw) in fields {
            field.ty = match raw {
                RawType::Scalar(s) => FieldType::Scalar(s),
                RawType::Message { package, name } => {
                    let full = if package.is_empty() {
                        name
                    } else {
                        qualified.clear();
                        qualified.push_str(package);
                        qualified.push('.');
                        qualified.push_str(name);
                        qualified.as_str()
                    };
                    FieldType::Message(
                        *by_name
                            .get(full)
                            .ok_or_else(|| format!("{}: unknown message type {full}", msg.name))?,
                    )
                }
            };
            msg.by_number.push((field.number, msg.fields.len()));
            msg.fields.push(field);
        }
        msg.by_number.sort_unstable_by_key(|&(n, _)| n);
        if let Some(w) = msg.by_number.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("{}: duplicate field {}", msg.name, w[0].0));
        }
        messages.push(msg);
    }
    Ok(Schema { messages, by_name })
}

/// `json=number:[]type?^`
fn parse_field(token: &'static str, package: &'static str) -> Result<(Field, RawType), String> {
    let (json, rest) = token.split_once('=').ok_or("missing '='")?;
    let (number, mut ty) = rest.split_once(':').ok_or("missing ':'")?;
    let number: u32 = number.parse().map_err(|_| "bad field number")?;
    let mut omit_zero = false;
    let mut inline = false;
    loop {
        if let Some(t) = ty.strip_suffix('?') {
            omit_zero = true;
            ty = t;
        } else if let Some(t) = ty.strip_suffix('^') {
            inline = true;
            ty = t;
        } else {
            break;
        }
    }
    let (label, ty) = if let Some(t) = ty.strip_prefix("[]") {
        (Label::Repeated, t)
    } else if let Some(t) = ty.strip_prefix("{}") {
        (Label::Map, t)
    } else {
        (Label::Optional, ty)
    };
    let raw = match Scalar::parse(ty) {
        Some(s) => RawType::Scalar(s),
        // Qualified names carry a package; bare names are in the message's own package.
        None if ty.contains('.') => RawType::Message {
            package: "",
            name: ty,
        },
        None => RawType::Message { package, name: ty },
    };
    if json.is_empty() {
        return Err("empty JSON name".into());
    }
    let field = Field {
        number,
        json,
        ty: FieldType::Scalar(Scalar::Bool), // resolved by the caller
        label,
        omit_zero,
        inline,
    };
    Ok((field, raw))
}
