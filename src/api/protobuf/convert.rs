//! Walks an encoded message with its schema and builds the JSON the REST API
//! would carry for the same object.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::schema::{Field, FieldType, Label, Message, Scalar, Schema, Special};
use super::wire::{Reader, WireValue};
use super::{ProtobufError, MAX_DEPTH};

/// Decoding state shared by the whole walk.
pub(super) struct Decoder<'s> {
    pub schema: &'s Schema,
}

/// What one schema field collected while reading the message.
enum Slot {
    Empty,
    /// `None`: present on the wire but left out of the JSON (a zero value).
    Single(Option<Value>),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Decoder<'_> {
    /// Decodes `bytes` as `msg`, giving its JSON value, or `None` when the
    /// value is left out entirely (a zero `Time`).
    pub(super) fn value_of_message(
        &self,
        msg: &Message,
        bytes: &[u8],
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        if depth > MAX_DEPTH {
            return Err(ProtobufError::malformed(
                "",
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        match msg.special {
            Special::None => Ok(Some(Value::Object(self.object(msg, bytes, depth)?))),
            Special::Time => super::special::time(bytes, false),
            Special::MicroTime => super::special::time(bytes, true),
            Special::Duration => super::special::duration(bytes).map(Some),
            Special::IntOrString => super::special::int_or_string(bytes).map(Some),
            Special::Quantity => super::special::quantity(bytes).map(Some),
            Special::RawJson => super::special::raw_json(bytes, depth),
            Special::Items => {
                let mut obj = self.object(msg, bytes, depth)?;
                Ok(Some(
                    obj.remove("items")
                        .unwrap_or_else(|| Value::Array(Vec::new())),
                ))
            }
        }
    }

    /// Decodes `bytes` as the fields of `msg`, in the order the Go struct
    /// declares them (which is how the JSON API orders them).
    pub(super) fn object(
        &self,
        msg: &Message,
        bytes: &[u8],
        depth: usize,
    ) -> Result<Map<String, Value>, ProtobufError> {
        let mut slots: Vec<Slot> = (0..msg.fields.len()).map(|_| Slot::Empty).collect();
        let mut reader = Reader::new(bytes);
        loop {
            let (number, value) = match reader.next_field() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err((number, reason)) => {
                    let at = msg
                        .field(number)
                        .map_or_else(|| format!("#{number}"), |(_, f)| f.json.to_string());
                    return Err(ProtobufError::malformed(at, reason));
                }
            };
            // Unknown fields (e.g. from a newer client) are skipped, as protobuf does.
            let Some((index, field)) = msg.field(number) else {
                continue;
            };
            self.read_field(field, value, &mut slots[index], depth)
                .map_err(|e| e.within(field.json))?;
        }

        let mut out = Map::new();
        for (field, slot) in msg.fields.iter().zip(slots) {
            let value = match slot {
                Slot::Empty | Slot::Single(None) => continue,
                Slot::Single(Some(v)) => v,
                Slot::List(items) => Value::Array(items),
                Slot::Map(entries) => Value::Object(entries.into_iter().collect()),
            };
            if field.inline {
                if let Value::Object(inner) = value {
                    out.extend(inner);
                }
                continue;
            }
            out.insert(field.json.to_string(), value);
        }
        Ok(out)
    }

    fn read_field(
        &self,
        field: &Field,
        value: WireValue<'_>,
        slot: &mut Slot,
        depth: usize,
    ) -> Result<(), ProtobufError> {
        match field.label {
            Label::Optional => {
                let v = self.single(field.ty, value, depth)?;
                let v = v.filter(|v| !(field.omit_zero && is_zero(field.ty, v, self.schema)));
                *slot = Slot::Single(v);
            }
            Label::Repeated => {
                if !matches!(slot, Slot::List(_)) {
                    *slot = Slot::List(Vec::new());
                }
                let Slot::List(items) = slot else {
                    unreachable!()
                };
                match (field.ty, value) {
                    (FieldType::Scalar(s), WireValue::Bytes(packed)) if s.packable() => {
                        let mut r = Reader::new(packed);
                        while !r.is_empty() {
                            let malformed = |e| ProtobufError::malformed("", e);
                            let v = match s {
                                Scalar::Double => {
                                    WireValue::Fixed64(r.fixed(8).map_err(malformed)?)
                                }
                                Scalar::Float => {
                                    WireValue::Fixed32(r.fixed(4).map_err(malformed)? as u32)
                                }
                                _ => WireValue::Varint(r.varint().map_err(malformed)?),
                            };
                            items.extend(self.single(field.ty, v, depth)?);
                        }
                    }
                    _ => {
                        // A repeated message keeps its place even when its JSON
                        // would be empty (a zero Time inside a list becomes null).
                        let v = self.single(field.ty, value, depth)?;
                        items.push(v.unwrap_or(Value::Null));
                    }
                }
            }
            Label::Map => {
                if !matches!(slot, Slot::Map(_)) {
                    *slot = Slot::Map(BTreeMap::new());
                }
                let Slot::Map(entries) = slot else {
                    unreachable!()
                };
                let WireValue::Bytes(entry) = value else {
                    return Err(wrong_wire(value, "map entry"));
                };
                let (key, v) = self.map_entry(field.ty, entry, depth)?;
                entries.insert(key, v);
            }
        }
        Ok(())
    }

    /// A map entry {1: string key, 2: value}; absent parts take their zero value.
    fn map_entry(
        &self,
        ty: FieldType,
        entry: &[u8],
        depth: usize,
    ) -> Result<(String, Value), ProtobufError> {
        let mut key = String::new();
        let mut val = None;
        let mut r = Reader::new(entry);
        loop {
            match r.next_field() {
                Ok(None) => break,
                Ok(Some((1, WireValue::Bytes(k)))) => key = String::from_utf8_lossy(k).into_owned(),
                Ok(Some((1, other))) => return Err(wrong_wire(other, "map key")),
                Ok(Some((2, v))) => val = Some(self.single(ty, v, depth)?.unwrap_or(Value::Null)),
                Ok(Some(_)) => {}
                Err((_, reason)) => return Err(ProtobufError::malformed("", reason)),
            }
        }
        let val = match val {
            Some(v) => v,
            None => self
                .single(ty, WireValue::Bytes(&[]), depth)?
                .unwrap_or(Value::Null),
        };
        Ok((key, val))
    }

    /// One value of type `ty`; `None` when its JSON form is "left out".
    fn single(
        &self,
        ty: FieldType,
        value: WireValue<'_>,
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        match ty {
            FieldType::Message(index) => {
                let WireValue::Bytes(bytes) = value else {
                    return Err(wrong_wire(value, "message"));
                };
                self.value_of_message(self.schema.message(index), bytes, depth + 1)
            }
            FieldType::Scalar(s) => scalar(s, value).map(Some),
        }
    }
}

fn wrong_wire(value: WireValue<'_>, expected: &str) -> ProtobufError {
    ProtobufError::malformed(
        "",
        format!("expected {expected}, found a {} value", value.wire_name()),
    )
}

/// Converts one scalar wire value to JSON.
pub(super) fn scalar(s: Scalar, value: WireValue<'_>) -> Result<Value, ProtobufError> {
    Ok(match (s, value) {
        // Go's protobuf does not check UTF-8 and its JSON encoder replaces bad
        // sequences with U+FFFD, as from_utf8_lossy does.
        (Scalar::String, WireValue::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into()),
        (Scalar::Bytes, WireValue::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Scalar::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        (Scalar::Int32, WireValue::Varint(v)) => Value::from(v as i32),
        (Scalar::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        (Scalar::Uint32, WireValue::Varint(v)) => Value::from(v as u32),
        (Scalar::Uint64, WireValue::Varint(v)) => Value::from(v),
        (Scalar::Double, WireValue::Fixed64(v)) => float(f64::from_bits(v))?,
        (Scalar::Float, WireValue::Fixed32(v)) => float(f64::from(f32::from_bits(v)))?,
        (s, v) => return Err(wrong_wire(v, &format!("{s:?}").to_lowercase())),
    })
}

fn float(f: f64) -> Result<Value, ProtobufError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| ProtobufError::malformed("", format!("{f} has no JSON form")))
}

/// The zero value of an `omitempty` non-pointer Go field, which `encoding/json` leaves out.
fn is_zero(ty: FieldType, v: &Value, schema: &Schema) -> bool {
    match ty {
        FieldType::Scalar(_) => match v {
            Value::String(s) => s.is_empty(),
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            _ => false,
        },
        // Go keeps a non-pointer struct even with omitempty; only an IntOrString
        // that was never set (type int, value 0) is treated as absent, so that
        // server defaulting (e.g. targetPort = port) sees it as unset.
        FieldType::Message(index) => {
            schema.message(index).special == Special::IntOrString && v == &Value::from(0)
        }
    }
}
