//! /openapi/v2 as kubectl asks for it (`Accept:
//! application/com.github.proto-openapi.spec.v2@v1.0+protobuf`): gnostic's
//! `openapi.v2.Document` message, which kube-openapi's handler marshals and
//! kubectl unmarshals. Field numbers are those of gnostic's
//! `openapiv2/OpenAPIv2.proto` (github.com/google/gnostic); only what a
//! Kubernetes document holds is written: Document, Info, Paths, Definitions
//! and Schema (with TypeItem, ItemsItem, Properties, AdditionalPropertiesItem),
//! Any and NamedAny for defaults, enums and `x-` extensions, and the security
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
    // Paths: none listed (see select::V2::json); the field is present, as
    // a Swagger document requires.
    d.message(8, Msg::default());
    let mut defs = Msg::default();
    for (name, text) in &v2.definitions {
        let v: Value = serde_json::from_str(text)?;
        defs.message(1, named_schema(name, &v));
    }
    d.message(9, defs);
    let security: Value = serde_json::from_str(&v2.security)?;
    for req in security.as_array().into_iter().flatten() {
        d.message(12, security_requirement(req));
    }
    let sec_defs: Value = serde_json::from_str(&v2.security_definitions)?;
    d.message(13, security_definitions(&sec_defs));
    Ok(d.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    // The part of gnostic's messages the test reads back, with the same
    // field numbers as above.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Document {
        #[prost(string, tag = "1")]
        swagger: String,
        #[prost(message, optional, tag = "9")]
        definitions: Option<Definitions>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Definitions {
        #[prost(message, repeated, tag = "1")]
        additional_properties: Vec<NamedSchema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct NamedSchema {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(message, optional, tag = "2")]
        value: Option<Schema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Schema {
        #[prost(string, tag = "1")]
        r#ref: String,
        #[prost(string, tag = "4")]
        description: String,
        #[prost(string, repeated, tag = "19")]
        required: Vec<String>,
        #[prost(message, optional, tag = "22")]
        r#type: Option<TypeItem>,
        #[prost(message, optional, tag = "25")]
        properties: Option<Definitions>,
        #[prost(message, repeated, tag = "31")]
        vendor_extension: Vec<NamedAny>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct TypeItem {
        #[prost(string, repeated, tag = "1")]
        value: Vec<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct NamedAny {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(message, optional, tag = "2")]
        value: Option<Any>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Any {
        #[prost(string, tag = "2")]
        yaml: String,
    }

    #[test]
    fn a_definition_reads_back() {
        let def = r##"{"description":"d","properties":{"spec":{"$ref":"#/definitions/x.Spec","description":"s"}},"required":["spec"],"type":"object","x-kubernetes-group-version-kind":[{"group":"apps","kind":"K","version":"v1"}]}"##;
        let v2 = V2 {
            definitions: [("x.K".to_string(), def.to_string())].into_iter().collect(),
            security_definitions: r#"{"BearerToken":{"description":"Bearer Token authentication","in":"header","name":"authorization","type":"apiKey"}}"#.into(),
            security: r#"[{"BearerToken":[]}]"#.into(),
        };
        let bytes = document(&v2, "v1.32.5").unwrap();
        let doc = Document::decode(&bytes[..]).unwrap();
        assert_eq!(doc.swagger, "2.0");
        let defs = doc.definitions.unwrap().additional_properties;
        assert_eq!(defs[0].name, "x.K");
        let k = defs[0].value.clone().unwrap();
        assert_eq!(k.description, "d");
        assert_eq!(k.required, vec!["spec"]);
        assert_eq!(k.r#type.unwrap().value, vec!["object"]);
        let spec = &k.properties.unwrap().additional_properties[0];
        assert_eq!(spec.value.as_ref().unwrap().r#ref, "#/definitions/x.Spec");
        let ext = &k.vendor_extension[0];
        assert_eq!(ext.name, "x-kubernetes-group-version-kind");
        let yaml: Value = serde_json::from_str(&ext.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(yaml[0]["kind"], "K");
    }
}
