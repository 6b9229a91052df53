//! gnostic messages read back with `prost`.

use super::*;
use prost::Message;

// The part of gnostic's messages the test reads back, with the same
// field numbers as above.
#[derive(Clone, PartialEq, prost::Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "10")]
    parameters: Option<NamedParameters>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<Definitions>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct PathItem {
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct Operation {
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
    #[prost(message, optional, tag = "2")]
    json_reference: Option<JsonReference>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct JsonReference {
    #[prost(string, tag = "1")]
    r#ref: String,
}
#[derive(Clone, PartialEq, prost::Message)]
struct Parameter {
    #[prost(message, optional, tag = "1")]
    body: Option<BodyParameter>,
    #[prost(message, optional, tag = "2")]
    non_body: Option<NonBodyParameter>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct BodyParameter {
    #[prost(string, tag = "3")]
    r#in: String,
    #[prost(message, optional, tag = "5")]
    schema: Option<Schema>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct NonBodyParameter {
    #[prost(message, optional, tag = "3")]
    query: Option<QueryParameter>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct QueryParameter {
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "6")]
    r#type: String,
    #[prost(bool, tag = "20")]
    unique_items: bool,
}
#[derive(Clone, PartialEq, prost::Message)]
struct NamedParameters {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedParameter>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct NamedParameter {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Parameter>,
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
        paths: vec![(
            "/apis/apps/v1/k".to_string(),
            r##"{"patch":{"operationId":"patchK","parameters":[{"$ref":"#/parameters/body-1"},{"in":"query","name":"fieldValidation","type":"string","uniqueItems":true}],"responses":{"200":{"description":"OK","schema":{"$ref":"#/definitions/x.K"}}},"x-kubernetes-action":"patch"}}"##.to_string(),
        )],
        parameters: [(
            "body-1".to_string(),
            r##"{"in":"body","name":"body","required":true,"schema":{"$ref":"#/definitions/x.K"}}"##.to_string(),
        )]
        .into_iter()
        .collect(),
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

    let path = &doc.paths.unwrap().path[0];
    assert_eq!(path.name, "/apis/apps/v1/k");
    let patch = path.value.clone().unwrap().patch.unwrap();
    assert_eq!(patch.operation_id, "patchK");
    assert_eq!(patch.vendor_extension[0].name, "x-kubernetes-action");
    assert_eq!(
        patch.parameters[0].json_reference.as_ref().unwrap().r#ref,
        "#/parameters/body-1"
    );
    let query = patch.parameters[1]
        .parameter
        .clone()
        .unwrap()
        .non_body
        .unwrap()
        .query
        .unwrap();
    assert_eq!(
        (
            query.name.as_str(),
            query.r#type.as_str(),
            query.unique_items
        ),
        ("fieldValidation", "string", true)
    );
    let body = &doc.parameters.unwrap().additional_properties[0];
    let body = body.value.clone().unwrap().body.unwrap();
    assert_eq!(body.r#in, "body");
    assert_eq!(body.schema.unwrap().r#ref, "#/definitions/x.K");
}
