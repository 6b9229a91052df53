//! /openapi/v2 as kubectl asks for it (`Accept:
//! application/com.github.proto-openapi.spec.v2@v1.0+protobuf`): gnostic's
//! `openapi.v2.Document` message, which kube-openapi's handler marshals and
//! kubectl unmarshals. Field numbers are those of gnostic's
//! `openapiv2/OpenAPIv2.proto` (github.com/google/gnostic); only what a
//! Kubernetes document holds is written: Document, Info, Paths (PathItem,
//! Operation, ParametersItem with body, query and path parameters or
//! references, Responses), ParameterDefinitions, Definitions and Schema
//! (with TypeItem, ItemsItem, Properties, AdditionalPropertiesItem), Any and
//! NamedAny for defaults, enums and `x-` extensions, and the security
//! definitions. An `Any` carries its value as YAML text, which kube-openapi
//! parses back; JSON text is YAML. The wire format is written by hand here
//! (varints, tags, length-delimited fields): no protoc, no generated code,
//! and the tests read it back with `prost`.

use serde_json::Value;

use super::select::V2;

/// Protobuf wire types used here.
#[derive(Clone, Copy)]
enum WireType {
    Varint = 0,
    SixtyFourBit = 1,
    LengthDelimited = 2,
}

fn encode_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn encode_key(tag: u32, wire_type: WireType, out: &mut Vec<u8>) {
    encode_varint((u64::from(tag) << 3) | wire_type as u64, out);
}

/// One message being written; nested messages are written first, then
/// copied in behind their length.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn len_delimited(&mut self, tag: u32, bytes: &[u8]) {
        encode_key(tag, WireType::LengthDelimited, &mut self.0);
        encode_varint(bytes.len() as u64, &mut self.0);
        self.0.extend_from_slice(bytes);
    }

    /// A singular string: proto3 leaves the empty string out.
    fn string(&mut self, tag: u32, s: &str) {
        if !s.is_empty() {
            self.len_delimited(tag, s.as_bytes());
        }
    }

    /// One element of a repeated string, written even when empty.
    fn repeated_string(&mut self, tag: u32, s: &str) {
        self.len_delimited(tag, s.as_bytes());
    }

    fn message(&mut self, tag: u32, m: Msg) {
        self.len_delimited(tag, &m.0);
    }

    fn bool(&mut self, tag: u32, b: bool) {
        if b {
            encode_key(tag, WireType::Varint, &mut self.0);
            encode_varint(1, &mut self.0);
        }
    }

    fn int64(&mut self, tag: u32, v: Option<i64>) {
        if let Some(v) = v.filter(|v| *v != 0) {
            encode_key(tag, WireType::Varint, &mut self.0);
            // int64 is written as its two's complement, as protobuf does.
            encode_varint(v as u64, &mut self.0);
        }
    }

    fn double(&mut self, tag: u32, v: Option<f64>) {
        if let Some(v) = v.filter(|v| *v != 0.0) {
            encode_key(tag, WireType::SixtyFourBit, &mut self.0);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// `Any { yaml = 2 }`.
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &v.to_string());
    m
}

/// `NamedAny { name = 1, value = 2 }`.
fn named_any(name: &str, v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(1, name);
    m.message(2, any(v));
    m
}

/// `NamedSchema { name = 1, value = 2 }`.
fn named_schema(name: &str, v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(1, name);
    m.message(2, schema(v));
    m
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `Schema`, from a v2 definition's JSON.
fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Value::Object(o) = v else {
        return m;
    };
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    for (key, val) in o {
        match key.as_str() {
            "$ref" => m.string(1, &s(val)),
            "format" => m.string(2, &s(val)),
            "title" => m.string(3, &s(val)),
            "description" => m.string(4, &s(val)),
            "default" => m.message(5, any(val)),
            "multipleOf" => m.double(6, val.as_f64()),
            "maximum" => m.double(7, val.as_f64()),
            "exclusiveMaximum" => m.bool(8, val.as_bool() == Some(true)),
            "minimum" => m.double(9, val.as_f64()),
            "exclusiveMinimum" => m.bool(10, val.as_bool() == Some(true)),
            "maxLength" => m.int64(11, val.as_i64()),
            "minLength" => m.int64(12, val.as_i64()),
            "pattern" => m.string(13, &s(val)),
            "maxItems" => m.int64(14, val.as_i64()),
            "minItems" => m.int64(15, val.as_i64()),
            "uniqueItems" => m.bool(16, val.as_bool() == Some(true)),
            "maxProperties" => m.int64(17, val.as_i64()),
            "minProperties" => m.int64(18, val.as_i64()),
            "required" => strings(val).iter().for_each(|r| m.repeated_string(19, r)),
            "enum" => {
                for e in val.as_array().into_iter().flatten() {
                    m.message(20, any(e));
                }
            }
            "additionalProperties" => {
                // AdditionalPropertiesItem: oneof { Schema schema = 1; bool boolean = 2 }
                let mut a = Msg::default();
                match val {
                    Value::Bool(b) => {
                        encode_key(2, WireType::Varint, &mut a.0);
                        encode_varint(u64::from(*b), &mut a.0);
                    }
                    other => a.message(1, schema(other)),
                }
                m.message(21, a);
            }
            "type" => {
                // TypeItem { repeated string value = 1 }
                let mut t = Msg::default();
                strings(val).iter().for_each(|v| t.repeated_string(1, v));
                m.message(22, t);
            }
            "items" => {
                // ItemsItem { repeated Schema schema = 1 }
                let mut i = Msg::default();
                match val {
                    Value::Array(all) => all.iter().for_each(|x| i.message(1, schema(x))),
                    one => i.message(1, schema(one)),
                }
                m.message(23, i);
            }
            "allOf" => {
                for x in val.as_array().into_iter().flatten() {
                    m.message(24, schema(x));
                }
            }
            "properties" => {
                // Properties { repeated NamedSchema additional_properties = 1 }
                let mut p = Msg::default();
                for (name, prop) in val.as_object().into_iter().flatten() {
                    p.message(1, named_schema(name, prop));
                }
                m.message(25, p);
            }
            "discriminator" => m.string(26, &s(val)),
            "readOnly" => m.bool(27, val.as_bool() == Some(true)),
            "example" => m.message(30, any(val)),
            ext if ext.starts_with("x-") => m.message(31, named_any(ext, val)),
            // xml and externalDocs: no Kubernetes definition has them.
            _ => {}
        }
    }
    m
}

/// `JsonReference { _ref = 1, description = 2 }`.
fn json_reference(v: &Value) -> Msg {
    let mut r = Msg::default();
    r.string(1, v["$ref"].as_str().unwrap_or_default());
    r.string(2, v["description"].as_str().unwrap_or_default());
    r
}

/// `Parameter`: oneof { BodyParameter body_parameter = 1; NonBodyParameter
/// non_body_parameter = 2 }.
fn parameter(v: &Value) -> Msg {
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    let flag = |k: &str| v.get(k).and_then(Value::as_bool) == Some(true);
    let extensions = |m: &mut Msg, tag: u32| {
        for (k, x) in v.as_object().into_iter().flatten() {
            if k.starts_with("x-") {
                m.message(tag, named_any(k, x));
            }
        }
    };
    let mut p = Msg::default();
    let location = field("in");
    if location == "body" {
        // BodyParameter { description = 1, name = 2, in = 3, required = 4,
        // schema = 5, vendor_extension = 6 }
        let mut b = Msg::default();
        b.string(1, field("description"));
        b.string(2, field("name"));
        b.string(3, location);
        b.bool(4, flag("required"));
        if let Some(schema_v) = v.get("schema") {
            b.message(5, schema(schema_v));
        }
        extensions(&mut b, 6);
        p.message(1, b);
        return p;
    }
    // The sub-schemas share their first fields; query and formData have
    // allow_empty_value = 5 and so the rest one number later:
    // (variant in NonBodyParameter, type, format, unique_items, vendor_extension).
    let (variant, ty, format, unique, ext) = match location {
        "header" => (1, 5, 6, 19, 22),
        "formData" => (2, 6, 7, 20, 23),
        "query" => (3, 6, 7, 20, 23),
        _ => (4, 5, 6, 19, 22), // path
    };
    let mut sub = Msg::default();
    sub.bool(1, flag("required"));
    sub.string(2, location);
    sub.string(3, field("description"));
    sub.string(4, field("name"));
    sub.string(ty, field("type"));
    sub.string(format, field("format"));
    sub.bool(unique, flag("uniqueItems"));
    extensions(&mut sub, ext);
    let mut non_body = Msg::default();
    non_body.message(variant, sub);
    p.message(2, non_body);
    p
}

/// `ParametersItem`: oneof { Parameter parameter = 1; JsonReference
/// json_reference = 2 }.
fn parameters_item(v: &Value) -> Msg {
    let mut item = Msg::default();
    if v.get("$ref").is_some() {
        item.message(2, json_reference(v));
    } else {
        item.message(1, parameter(v));
    }
    item
}

/// `Responses { repeated NamedResponseValue response_code = 1 }`.
fn responses(v: &Value) -> Msg {
    let mut rs = Msg::default();
    for (code, r) in v.as_object().into_iter().flatten() {
        // ResponseValue: oneof { Response response = 1; JsonReference json_reference = 2 }
        let mut value = Msg::default();
        if r.get("$ref").is_some() {
            value.message(2, json_reference(r));
        } else {
            // Response { description = 1, schema = 2 SchemaItem { schema = 1 } }
            let mut resp = Msg::default();
            resp.string(1, r["description"].as_str().unwrap_or_default());
            if let Some(sv) = r.get("schema") {
                let mut item = Msg::default();
                item.message(1, schema(sv));
                resp.message(2, item);
            }
            value.message(1, resp);
        }
        let mut named = Msg::default();
        named.string(1, code);
        named.message(2, value);
        rs.message(1, named);
    }
    rs
}

/// `Operation`.
fn operation(v: &Value) -> Msg {
    let mut op = Msg::default();
    for (key, val) in v.as_object().into_iter().flatten() {
        match key.as_str() {
            "tags" => strings(val).iter().for_each(|t| op.repeated_string(1, t)),
            "summary" => op.string(2, val.as_str().unwrap_or_default()),
            "description" => op.string(3, val.as_str().unwrap_or_default()),
            "operationId" => op.string(5, val.as_str().unwrap_or_default()),
            "produces" => strings(val).iter().for_each(|t| op.repeated_string(6, t)),
            "consumes" => strings(val).iter().for_each(|t| op.repeated_string(7, t)),
            "parameters" => {
                for p in val.as_array().into_iter().flatten() {
                    op.message(8, parameters_item(p));
                }
            }
            "responses" => op.message(9, responses(val)),
            "schemes" => strings(val).iter().for_each(|t| op.repeated_string(10, t)),
            "deprecated" => op.bool(11, val.as_bool() == Some(true)),
            ext if ext.starts_with("x-") => op.message(13, named_any(ext, val)),
            _ => {}
        }
    }
    op
}

/// `PathItem { _ref = 1, get = 2, put = 3, post = 4, delete = 5, options = 6,
/// head = 7, patch = 8, parameters = 9, vendor_extension = 10 }`.
fn path_item(v: &Value) -> Msg {
    let mut item = Msg::default();
    for (key, val) in v.as_object().into_iter().flatten() {
        let tag = match key.as_str() {
            "$ref" => {
                item.string(1, val.as_str().unwrap_or_default());
                continue;
            }
            "get" => 2,
            "put" => 3,
            "post" => 4,
            "delete" => 5,
            "options" => 6,
            "head" => 7,
            "patch" => 8,
            "parameters" => {
                for p in val.as_array().into_iter().flatten() {
                    item.message(9, parameters_item(p));
                }
                continue;
            }
            ext if ext.starts_with("x-") => {
                item.message(10, named_any(ext, val));
                continue;
            }
            _ => continue,
        };
        item.message(tag, operation(val));
    }
    item
}

/// `SecurityDefinitions`: the apiKey and basic schemes Kubernetes uses.
fn security_definitions(v: &Value) -> Msg {
    let mut defs = Msg::default();
    for (name, def) in v.as_object().into_iter().flatten() {
        let field = |k: &str| def.get(k).and_then(Value::as_str).unwrap_or_default();
        let mut item = Msg::default();
        match field("type") {
            "apiKey" => {
                // ApiKeySecurity { type = 1, name = 2, in = 3, description = 4 }
                let mut k = Msg::default();
                k.string(1, field("type"));
                k.string(2, field("name"));
                k.string(3, field("in"));
                k.string(4, field("description"));
                item.message(2, k);
            }
            "basic" => {
                // BasicAuthenticationSecurity { type = 1, description = 2 }
                let mut b = Msg::default();
                b.string(1, field("type"));
                b.string(2, field("description"));
                item.message(1, b);
            }
            _ => continue,
        }
        // NamedSecurityDefinitionsItem { name = 1, value = 2 }
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, item);
        defs.message(1, named);
    }
    defs
}

/// `SecurityRequirement`, one per element of `security`.
fn security_requirement(v: &Value) -> Msg {
    let mut req = Msg::default();
    for (name, scopes) in v.as_object().into_iter().flatten() {
        // NamedStringArray { name = 1, value = 2 StringArray { repeated string value = 1 } }
        let mut arr = Msg::default();
        strings(scopes)
            .iter()
            .for_each(|s| arr.repeated_string(1, s));
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, arr);
        req.message(1, named);
    }
    req
}

/// The whole `Document`.
pub fn document(v2: &V2, version: &str) -> Result<Vec<u8>, serde_json::Error> {
    let mut d = Msg::default();
    d.string(1, "2.0");
    let mut info = Msg::default();
    info.string(1, "Kubernetes");
    info.string(2, version);
    d.message(2, info);
    // Paths { repeated NamedPathItem path = 2 }
    let mut paths = Msg::default();
    for (name, text) in &v2.paths {
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, path_item(&serde_json::from_str(text)?));
        paths.message(2, named);
    }
    d.message(8, paths);
    let mut defs = Msg::default();
    for (name, text) in &v2.definitions {
        let v: Value = serde_json::from_str(text)?;
        defs.message(1, named_schema(name, &v));
    }
    d.message(9, defs);
    // ParameterDefinitions { repeated NamedParameter additional_properties = 1 }
    let mut params = Msg::default();
    for (name, text) in &v2.parameters {
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, parameter(&serde_json::from_str(text)?));
        params.message(1, named);
    }
    d.message(10, params);
    let security: Value = serde_json::from_str(&v2.security)?;
    for req in security.as_array().into_iter().flatten() {
        d.message(12, security_requirement(req));
    }
    let sec_defs: Value = serde_json::from_str(&v2.security_definitions)?;
    d.message(13, security_definitions(&sec_defs));
    Ok(d.0)
}

#[cfg(test)]
mod tests;
