//! A CustomResourceDefinition version's `openAPIV3Schema`, read once into a
//! typed tree (upstream's `structuralschema.Structural` plus the value
//! validations kube-openapi checks), and the checks that make a schema
//! structural. Patterns are compiled here, once per CRD change, never per
//! request.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::api::status::Cause;
use crate::api::validation::causes;

/// Deepest schema nesting taken: a deeper one is refused at CRD creation, so
/// validating and pruning an object never recurse further than this.
pub const MAX_DEPTH: usize = 64;
/// A pattern's compiled program and search cache: most fit the small
/// bound; one with a large (Unicode) class repeated may take the large
/// one. A version's patterns together may take [`PATTERN_BUDGET`], so what
/// a served CRD holds in patterns is bounded.
const SMALL_PATTERN: usize = 64 << 10;
const LARGE_PATTERN: usize = 1 << 20;
const PATTERN_BUDGET: usize = 16 << 20;

/// One node of a schema.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `object`, `array`, `string`, `integer`, `number`, `boolean`; empty
    /// only where the structural rules allow it (int-or-string,
    /// preserve-unknown-fields, and inside the value validations).
    pub ty: String,
    pub format: String,
    pub nullable: bool,
    pub properties: BTreeMap<String, Schema>,
    /// `additionalProperties`: a map's values (None: no such schema).
    pub additional: Option<Box<Schema>>,
    /// `additionalProperties: true` (as preserve-unknown-fields for its keys).
    pub additional_any: bool,
    pub items: Option<Box<Schema>>,
    pub required: Vec<String>,
    pub enumeration: Vec<Value>,
    pub pattern: Option<(String, regex::Regex)>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub default: Option<Value>,
    pub preserve_unknown: bool,
    pub int_or_string: bool,
    pub embedded_resource: bool,
    /// `x-kubernetes-list-type`: atomic (the default), set or map.
    pub list_type: String,
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`: granular (the default) or atomic.
    pub map_type: String,
    pub all_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub one_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
}

/// Reads a schema and reports every way it is not one skiff can serve,
/// as upstream's CRD validation words them (`path` is the field path of
/// `value`, such as `spec.versions[0].schema.openAPIV3Schema`).
pub fn parse(value: &Value, path: &str) -> Result<Schema, Vec<Cause>> {
    let mut problems = Vec::new();
    let mut budget = PATTERN_BUDGET;
    let schema = read(value, path, 0, &mut budget, &mut problems);
    structural_root(&schema, value, path, &mut problems);
    if problems.is_empty() {
        check_defaults(&schema, path, &mut problems);
    }
    if problems.is_empty() {
        Ok(schema)
    } else {
        Err(problems)
    }
}

fn read(
    value: &Value,
    path: &str,
    depth: usize,
    budget: &mut usize,
    problems: &mut Vec<Cause>,
) -> Schema {
    let mut s = Schema::default();
    let Some(m) = value.as_object() else {
        problems.push(causes::invalid(
            path,
            &causes::go_json(value),
            "must be a schema object",
        ));
        return s;
    };
    if depth > MAX_DEPTH {
        problems.push(causes::forbidden(
            path,
            &format!("must not be nested more than {MAX_DEPTH} levels deep"),
        ));
        return s;
    }
    for (key, v) in m {
        let at = |k: &str| format!("{path}.{k}");
        match key.as_str() {
            "type" => {
                s.ty = string(v, &at("type"), problems);
                const TYPES: &[&str] =
                    &["array", "boolean", "integer", "number", "object", "string"];
                if !s.ty.is_empty() && !TYPES.contains(&s.ty.as_str()) {
                    problems.push(causes::not_supported(&at("type"), &s.ty, TYPES));
                }
            }
            "format" => s.format = string(v, &at("format"), problems),
            "description" | "title" | "example" | "externalDocs" | "$schema" | "id" => {}
            "nullable" => s.nullable = boolean(v, &at("nullable"), problems),
            "properties" => {
                for (name, sub) in object(v, &at("properties"), problems) {
                    let child = read(
                        sub,
                        &format!("{path}.properties[{name}]"),
                        depth + 1,
                        budget,
                        problems,
                    );
                    s.properties.insert(name.clone(), child);
                }
            }
            "additionalProperties" => match v {
                Value::Bool(false) => problems.push(causes::forbidden(
                    &at("additionalProperties"),
                    "additionalProperties cannot be set to false",
                )),
                Value::Bool(b) => s.additional_any = *b,
                other => {
                    let child = read(
                        other,
                        &at("additionalProperties"),
                        depth + 1,
                        budget,
                        problems,
                    );
                    s.additional = Some(Box::new(child));
                }
            },
            "items" => match v {
                Value::Array(_) => problems.push(causes::forbidden(
                    &at("items"),
                    "items must be a schema object and not an array",
                )),
                other => {
                    s.items = Some(Box::new(read(
                        other,
                        &at("items"),
                        depth + 1,
                        budget,
                        problems,
                    )))
                }
            },
            "required" => s.required = strings(v, &at("required"), problems),
            "enum" => s.enumeration = v.as_array().cloned().unwrap_or_default(),
            "pattern" => {
                let src = string(v, &at("pattern"), problems);
                match compile(&src, budget) {
                    Ok(re) => s.pattern = Some((src, re)),
                    Err(e) => problems.push(causes::invalid(
                        &at("pattern"),
                        &causes::go_str(&src),
                        &format!("must be a valid regular expression, but isn't: {e}"),
                    )),
                }
            }
            "minimum" => s.minimum = number(v, &at("minimum"), problems),
            "maximum" => s.maximum = number(v, &at("maximum"), problems),
            "exclusiveMinimum" => s.exclusive_minimum = boolean(v, &at(key), problems),
            "exclusiveMaximum" => s.exclusive_maximum = boolean(v, &at(key), problems),
            "multipleOf" => {
                s.multiple_of = number(v, &at(key), problems);
                if s.multiple_of.is_some_and(|f| f <= 0.0) {
                    problems.push(causes::invalid(
                        &at(key),
                        &causes::go_json(v),
                        "must be greater than zero",
                    ));
                }
            }
            "minLength" => s.min_length = count(v, &at(key), problems),
            "maxLength" => s.max_length = count(v, &at(key), problems),
            "minItems" => s.min_items = count(v, &at(key), problems),
            "maxItems" => s.max_items = count(v, &at(key), problems),
            "uniqueItems" => {
                s.unique_items = boolean(v, &at(key), problems);
                if s.unique_items {
                    problems.push(causes::forbidden(
                        &at(key),
                        "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                    ));
                }
            }
            "minProperties" => s.min_properties = count(v, &at(key), problems),
            "maxProperties" => s.max_properties = count(v, &at(key), problems),
            "default" => s.default = Some(v.clone()),
            "x-kubernetes-preserve-unknown-fields" => {
                s.preserve_unknown = boolean(v, &at(key), problems);
                if v == &Value::Bool(false) {
                    problems.push(causes::invalid(
                        &at(key),
                        "false",
                        "must be true or undefined",
                    ));
                }
            }
            "x-kubernetes-int-or-string" => s.int_or_string = boolean(v, &at(key), problems),
            "x-kubernetes-embedded-resource" => {
                s.embedded_resource = boolean(v, &at(key), problems)
            }
            "x-kubernetes-list-type" => {
                s.list_type = string(v, &at(key), problems);
                if !["atomic", "set", "map"].contains(&s.list_type.as_str()) {
                    problems.push(causes::not_supported(
                        &at(key),
                        &s.list_type,
                        &["atomic", "set", "map"],
                    ));
                }
            }
            "x-kubernetes-list-map-keys" => s.list_map_keys = strings(v, &at(key), problems),
            "x-kubernetes-map-type" => {
                s.map_type = string(v, &at(key), problems);
                if !["granular", "atomic"].contains(&s.map_type.as_str()) {
                    problems.push(causes::not_supported(
                        &at(key),
                        &s.map_type,
                        &["granular", "atomic"],
                    ));
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list: Vec<Schema> = v
                    .as_array()
                    .map(|a| a.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .map(|(i, sub)| {
                        read(
                            sub,
                            &format!("{path}.{key}[{i}]"),
                            depth + 1,
                            budget,
                            problems,
                        )
                    })
                    .collect();
                match key.as_str() {
                    "allOf" => s.all_of = list,
                    "anyOf" => s.any_of = list,
                    _ => s.one_of = list,
                }
            }
            "not" => s.not = Some(Box::new(read(v, &at("not"), depth + 1, budget, problems))),
            "x-kubernetes-validations" => problems.push(causes::forbidden(
                &at(key),
                "CEL validation rules are not supported by skiff: no mature CEL implementation \
                 is available to it; express the rule with the schema's own keywords or an \
                 admission webhook",
            )),
            "$ref" => problems.push(causes::forbidden(&at("$ref"), "$ref is not supported")),
            "definitions" | "dependencies" | "patternProperties" | "additionalItems" => problems
                .push(causes::forbidden(
                    &at(key),
                    &format!("{key} is not supported"),
                )),
            _ => problems.push(causes::forbidden(
                &at(key),
                &format!("{key} is not a field of JSONSchemaProps"),
            )),
        }
    }
    if s.list_type == "map" && s.list_map_keys.is_empty() {
        problems.push(causes::required(
            &format!("{path}.x-kubernetes-list-map-keys"),
            "must not be empty if x-kubernetes-list-type is map",
        ));
    }
    if !s.list_map_keys.is_empty() && s.list_type != "map" {
        problems.push(causes::forbidden(
            &format!("{path}.x-kubernetes-list-map-keys"),
            "requires x-kubernetes-list-type: map",
        ));
    }
    if !s.list_type.is_empty() && s.ty != "array" {
        problems.push(causes::invalid(
            &format!("{path}.type"),
            &causes::go_str(&s.ty),
            "must be array if x-kubernetes-list-type is specified",
        ));
    }
    if let (Some(items), "map") = (s.items.as_deref(), s.list_type.as_str()) {
        for k in &s.list_map_keys {
            match items.properties.get(k) {
                None => problems.push(causes::invalid(
                    &format!("{path}.x-kubernetes-list-map-keys"),
                    &causes::go_str(k),
                    "entries must all be names of item properties",
                )),
                Some(p)
                    if !p.ty.is_empty()
                        && !["string", "integer", "boolean"].contains(&p.ty.as_str()) =>
                {
                    problems.push(causes::invalid(
                        &format!("{path}.items.properties[{k}].type"),
                        &causes::go_str(&p.ty),
                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                    ))
                }
                Some(_) => {}
            }
        }
    }
    if s.embedded_resource && !s.ty.is_empty() && s.ty != "object" {
        problems.push(causes::invalid(
            &format!("{path}.type"),
            &causes::go_str(&s.ty),
            "must be object if x-kubernetes-embedded-resource is true",
        ));
    }
    if !s.properties.is_empty() && s.additional.is_some() {
        problems.push(causes::forbidden(
            &format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    s
}

/// Compile a pattern within what is left of the version's budget.
fn compile(src: &str, budget: &mut usize) -> Result<regex::Regex, String> {
    let ascii = ascii_classes(src);
    let build = |limit: usize| {
        regex::RegexBuilder::new(&ascii)
            .size_limit(limit)
            .dfa_size_limit(limit)
            .build()
    };
    let (re, cost) = match build(SMALL_PATTERN) {
        Ok(re) => (re, SMALL_PATTERN),
        Err(regex::Error::CompiledTooBig(_)) => (
            build(LARGE_PATTERN).map_err(|e| e.to_string())?,
            LARGE_PATTERN,
        ),
        Err(e) => return Err(e.to_string()),
    };
    if cost > *budget {
        return Err(format!(
            "the version's patterns together compile to more than {} MiB",
            PATTERN_BUDGET >> 20
        ));
    }
    *budget -= cost;
    Ok(re)
}

/// A pattern with Go's (RE2's) meaning of `\d \w \s \b`, which are ASCII
/// there and Unicode in the regex crate: as Unicode classes they also
/// compile to programs hundreds of times larger.
fn ascii_classes(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 16);
    let mut chars = src.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let class = match n {
                    'd' => Some(("0-9", false)),
                    'D' => Some(("0-9", true)),
                    'w' => Some(("0-9A-Za-z_", false)),
                    'W' => Some(("0-9A-Za-z_", true)),
                    's' => Some(("\\t\\n\\x0C\\r ", false)),
                    'S' => Some(("\\t\\n\\x0C\\r ", true)),
                    _ => None,
                };
                match class {
                    // Nested classes are valid inside a class too.
                    Some((set, negated)) => {
                        out.push('[');
                        if negated {
                            out.push('^');
                        }
                        out.push_str(set);
                        out.push(']');
                    }
                    None if depth == 0 && (n == 'b' || n == 'B') => {
                        out.push_str("(?-u:\\");
                        out.push(n);
                        out.push(')');
                    }
                    None => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' => {
                depth += 1;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                // A `]` first in a class is a literal.
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Every default must itself be valid where it stands, or every object
/// defaulted with it would be refused.
fn check_defaults(s: &Schema, path: &str, problems: &mut Vec<Cause>) {
    if let Some(d) = &s.default {
        if let Some(mut first) = super::validate::value(s, d).into_iter().next() {
            first.field = format!("{path}.default");
            problems.push(first);
        }
    }
    for (name, p) in &s.properties {
        check_defaults(p, &format!("{path}.properties[{name}]"), problems);
    }
    if let Some(a) = &s.additional {
        check_defaults(a, &format!("{path}.additionalProperties"), problems);
    }
    if let Some(i) = &s.items {
        check_defaults(i, &format!("{path}.items"), problems);
    }
}

/// The structural rules beyond what `read` checks node by node: every
/// specified field has a type, the root is an object, metadata at the root
/// restricts name and generateName only.
fn structural_root(s: &Schema, raw: &Value, path: &str, problems: &mut Vec<Cause>) {
    if s.ty != "object" {
        if s.ty.is_empty() {
            problems.push(causes::required(
                &format!("{path}.type"),
                "must not be empty at the root",
            ));
        } else {
            problems.push(causes::invalid(
                &format!("{path}.type"),
                &causes::go_str(&s.ty),
                "must be object at the root",
            ));
        }
    }
    if s.nullable {
        problems.push(causes::forbidden(
            &format!("{path}.nullable"),
            "must be false at the root",
        ));
    }
    if let Some(meta) = s.properties.get("metadata") {
        let at = format!("{path}.properties[metadata]");
        if !meta.ty.is_empty() && meta.ty != "object" {
            problems.push(causes::invalid(
                &format!("{at}.type"),
                &causes::go_str(&meta.ty),
                "must be object",
            ));
        }
        let raw_meta = raw
            .pointer("/properties/metadata")
            .and_then(Value::as_object);
        for key in raw_meta.map(Map::keys).into_iter().flatten() {
            if !["type", "properties", "description"].contains(&key.as_str()) {
                problems.push(causes::forbidden(
                    &format!("{at}.{key}"),
                    "must not be specified for metadata",
                ));
            }
        }
        for (name, p) in &meta.properties {
            if name != "name" && name != "generateName" {
                problems.push(causes::forbidden(
                    &format!("{at}.properties[{name}]"),
                    "must not be specified for metadata other than name and generateName",
                ));
            } else if p.ty != "string" {
                problems.push(causes::invalid(
                    &format!("{at}.properties[{name}].type"),
                    &causes::go_str(&p.ty),
                    "must be string",
                ));
            }
        }
    }
    typed(s, path, problems);
}

/// Every node that specifies a field has a type, unless it is
/// int-or-string or keeps unknown fields; value validations (allOf, …)
/// may not declare types or defaults of their own.
fn typed(s: &Schema, path: &str, problems: &mut Vec<Cause>) {
    for (name, p) in &s.properties {
        let at = format!("{path}.properties[{name}]");
        need_type(
            p,
            &at,
            "must not be empty for specified object fields",
            problems,
        );
        typed(p, &at, problems);
    }
    if let Some(a) = &s.additional {
        let at = format!("{path}.additionalProperties");
        need_type(
            a,
            &at,
            "must not be empty for specified object fields",
            problems,
        );
        typed(a, &at, problems);
    }
    if let Some(i) = &s.items {
        let at = format!("{path}.items");
        need_type(
            i,
            &at,
            "must not be empty for specified array items",
            problems,
        );
        typed(i, &at, problems);
    }
    if s.ty == "array" && s.items.is_none() {
        problems.push(causes::required(
            &format!("{path}.items"),
            "must be specified",
        ));
    }
    if s.int_or_string && !s.ty.is_empty() {
        problems.push(causes::invalid(
            &format!("{path}.type"),
            &causes::go_str(&s.ty),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }
    let junctors = [
        ("allOf", &s.all_of),
        ("anyOf", &s.any_of),
        ("oneOf", &s.one_of),
    ];
    for (key, list) in junctors {
        for (i, sub) in list.iter().enumerate() {
            value_validation(sub, &format!("{path}.{key}[{i}]"), problems);
        }
    }
    if let Some(n) = &s.not {
        value_validation(n, &format!("{path}.not"), problems);
    }
}

fn need_type(s: &Schema, path: &str, detail: &str, problems: &mut Vec<Cause>) {
    if s.ty.is_empty() && !s.int_or_string && !s.preserve_unknown {
        problems.push(causes::required(&format!("{path}.type"), detail));
    }
}

/// Inside allOf/anyOf/oneOf/not only value validations may appear.
fn value_validation(s: &Schema, path: &str, problems: &mut Vec<Cause>) {
    let forbid = |field: &str, problems: &mut Vec<Cause>| {
        problems.push(causes::forbidden(
            &format!("{path}.{field}"),
            "must be empty to be structural",
        ))
    };
    if !s.ty.is_empty() {
        forbid("type", problems);
    }
    if s.default.is_some() {
        forbid("default", problems);
    }
    if s.nullable {
        forbid("nullable", problems);
    }
    if s.additional.is_some() {
        forbid("additionalProperties", problems);
    }
    for (name, p) in &s.properties {
        value_validation(p, &format!("{path}.properties[{name}]"), problems);
    }
    if let Some(i) = &s.items {
        value_validation(i, &format!("{path}.items"), problems);
    }
}

fn string(v: &Value, path: &str, problems: &mut Vec<Cause>) -> String {
    match v.as_str() {
        Some(s) => s.to_string(),
        None => {
            problems.push(type_error(path, v, "string"));
            String::new()
        }
    }
}

fn boolean(v: &Value, path: &str, problems: &mut Vec<Cause>) -> bool {
    match v.as_bool() {
        Some(b) => b,
        None => {
            problems.push(type_error(path, v, "boolean"));
            false
        }
    }
}

fn number(v: &Value, path: &str, problems: &mut Vec<Cause>) -> Option<f64> {
    let n = v.as_f64();
    if n.is_none() {
        problems.push(type_error(path, v, "number"));
    }
    n
}

fn count(v: &Value, path: &str, problems: &mut Vec<Cause>) -> Option<u64> {
    let n = v.as_u64();
    if n.is_none() {
        problems.push(type_error(path, v, "integer"));
    }
    n
}

fn strings(v: &Value, path: &str, problems: &mut Vec<Cause>) -> Vec<String> {
    match v.as_array() {
        Some(a) => a.iter().map(|s| string(s, path, problems)).collect(),
        None => {
            problems.push(type_error(path, v, "array"));
            Vec::new()
        }
    }
}

fn object<'v>(v: &'v Value, path: &str, problems: &mut Vec<Cause>) -> Vec<(&'v String, &'v Value)> {
    match v.as_object() {
        Some(m) => m.iter().collect(),
        None => {
            problems.push(type_error(path, v, "object"));
            Vec::new()
        }
    }
}

fn type_error(path: &str, v: &Value, want: &str) -> Cause {
    causes::type_invalid(
        path,
        &causes::go_json(v),
        &format!("must be of type {want}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(v: Value) -> Vec<String> {
        match parse(&v, "s") {
            Ok(_) => Vec::new(),
            Err(c) => c
                .into_iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect(),
        }
    }

    #[test]
    fn structural_schemas_pass() {
        let ok = json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1, "default": 1},
                "port": {"x-kubernetes-int-or-string": true},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "items": {"type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "mode": {"type": "string", "enum": ["a", "b"], "pattern": "^[ab]$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            }, "anyOf": [{"required": ["size"]}, {"required": ["port"]}]},
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}},
        }});
        assert_eq!(problems(ok), Vec::<String>::new());
    }

    #[test]
    fn untyped_fields_and_non_object_roots_are_refused() {
        let p = problems(json!({"type": "object", "properties": {"spec": {"properties": {}}}}));
        assert_eq!(
            p,
            ["s.properties[spec].type: Required value: must not be empty for specified object fields"]
        );
        let p = problems(json!({"type": "string"}));
        assert_eq!(
            p,
            ["s.type: Invalid value: \"string\": must be object at the root"]
        );
        let p = problems(json!({"type": "object", "properties": {"a": {"type": "array"}}}));
        assert_eq!(
            p,
            ["s.properties[a].items: Required value: must be specified"]
        );
    }

    #[test]
    fn cel_rules_and_bad_patterns_are_refused_clearly() {
        let p = problems(json!({"type": "object", "x-kubernetes-validations": [{"rule": "true"}]}));
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("CEL validation rules are not supported"),
            "{p:?}"
        );
        let p = problems(
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}),
        );
        assert!(p[0].contains("must be a valid regular expression"), "{p:?}");
    }

    #[test]
    fn metadata_may_restrict_only_names() {
        let p = problems(
            json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"labels": {"type": "object"}}}}}),
        );
        assert_eq!(
            p,
            ["s.properties[metadata].properties[labels]: Forbidden: must not be specified for metadata other than name and generateName"]
        );
    }

    #[test]
    fn value_validations_carry_no_types() {
        let p = problems(json!({"type": "object", "allOf": [{"type": "object"}]}));
        assert_eq!(
            p,
            ["s.allOf[0].type: Forbidden: must be empty to be structural"]
        );
    }

    #[test]
    fn patterns_have_go_s_ascii_classes() {
        assert_eq!(
            ascii_classes(r"^\d+\s\w$"),
            "^[0-9]+[\\t\\n\\x0C\\r ][0-9A-Za-z_]$"
        );
        assert_eq!(ascii_classes(r"[\w.-]"), "[[0-9A-Za-z_].-]");
        assert_eq!(ascii_classes(r"[^\D]\b"), "[^[^0-9]](?-u:\\b)");
        assert_eq!(ascii_classes(r"[]a]\\d"), r"[\]a]\\d");
        let s = parse(
            &json!({"type": "object", "properties": {"n": {"type": "string", "pattern": "^\\d$"}}}),
            "s",
        )
        .unwrap();
        let re = &s.properties["n"].pattern.as_ref().unwrap().1;
        assert!(re.is_match("3"));
        assert!(
            !re.is_match("\u{663}"),
            "Arabic-Indic digits are not \\d in Go"
        );
        // Ordinary patterns of real CRDs fit the bound.
        for p in [r"^\w{1,63}$", r"^[\w.-]{1,253}$", r"^\S{1,100}$"] {
            assert!(
                parse(&json!({"type": "object", "properties": {"n": {"type": "string", "pattern": p}}}), "s").is_ok(),
                "{p}"
            );
        }
    }

    #[test]
    fn defaults_must_be_valid_and_types_known() {
        let p = problems(
            json!({"type": "object", "properties": {"n": {"type": "integer", "default": "abc"}}}),
        );
        assert_eq!(
            p,
            ["s.properties[n].default: Invalid value: \"string\": . in body must be of type integer: \"string\""]
        );
        let p = problems(json!({"type": "object", "properties": {"n": {"type": "foo"}}}));
        assert!(
            p[0].starts_with("s.properties[n].type: Unsupported value: \"foo\""),
            "{p:?}"
        );
        let p = problems(
            json!({"type": "object", "properties": {"n": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}}),
        );
        assert!(p[0].contains("quadratic"), "{p:?}");
        assert!(problems(json!({"type": "object", "additionalProperties": true, "properties": {"a": {"type": "string"}}})).is_empty());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut v = json!({"type": "string"});
        for _ in 0..(MAX_DEPTH + 2) {
            v = json!({"type": "object", "properties": {"a": v}});
        }
        assert!(problems(v).iter().any(|p| p.contains("nested more than")));
    }
}
