//! Reads of one object, and what every read of many shares: label and
//! field selectors and Table rows. Lists themselves are in `list.rs`,
//! reading them out of the store in `scan.rs`.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::negotiate::{json_response, Asked};
use super::path::ResourceRef;
use super::query::Query;
use super::registry::ResourceDef;
use super::{table, ApiState};
use crate::api::fields::FieldSelector;
use crate::api::selector::LabelSelector;
use crate::api::status::ApiError;

/// Label and field selectors of a list or watch.
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub fn from_query(def: &ResourceDef, q: &Query) -> Result<Filter, ApiError> {
        let labels =
            match q.get("labelSelector") {
                None | Some("") => None,
                Some(s) => Some(LabelSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
            };
        let fields = match q.get("fieldSelector") {
            None | Some("") => None,
            Some(s) => {
                let sel = FieldSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("invalid field selector {s:?}: {e}"))
                })?;
                super::fieldsel::validate_fields(def, &sel)?;
                Some(sel)
            }
        };
        Ok(Filter { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub fn matches(&self, def: &ResourceDef, obj: &Value) -> bool {
        if let Some(sel) = &self.labels {
            let empty = Map::new();
            let labels = obj
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if !sel.matches(labels) {
                return false;
            }
        }
        if let Some(sel) = &self.fields {
            let get = |field: &str| super::fieldsel::field_value(def, obj, field).ok().flatten();
            if !sel.matches(get) {
                return false;
            }
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        match q.get("includeObject") {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid includeObject {other:?}: must be None, Metadata or Object"
            ))),
        }
    }
}

/// What a read returns each object as: itself, a Table row, or its
/// metadata only (a `PartialObjectMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Object,
    Table(IncludeObject),
    Metadata,
}

impl Shape {
    /// The shape a request asks for (`includeObject` for Tables).
    pub fn of(asked: Asked, q: &Query) -> Result<Shape, ApiError> {
        Ok(match asked {
            Asked::Objects => Shape::Object,
            Asked::Table => Shape::Table(IncludeObject::from_query(q)?),
            Asked::Metadata => Shape::Metadata,
        })
    }
}

/// `obj` as a `PartialObjectMetadata`.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One Table row for `obj`.
pub fn table_row(def: &ResourceDef, obj: &Value, include: IncludeObject) -> Value {
    let now = chrono::Utc::now();
    let mut row = json!({ "cells": table::cells(def, obj, now) });
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row["object"] = partial_metadata(obj);
        }
        IncludeObject::Object => {
            row["object"] = obj.clone();
        }
    }
    row
}

pub fn table(
    def: &ResourceDef,
    objs: &[Value],
    list_meta: Value,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let rows: Vec<Value> = objs.iter().map(|o| table_row(def, o, include)).collect();
    let columns = if with_columns {
        table::column_definitions_json(&table::columns(def))
    } else {
        Value::Null
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

pub async fn get(
    state: &ApiState,
    r: &ResourceRef<'_>,
    name: &str,
    shape: Shape,
) -> Result<Response, ApiError> {
    let def = r.def;
    let stored = state
        .objects
        .must_get(def, r.namespace.as_deref(), name)
        .await?;
    match shape {
        Shape::Table(include) => {
            let rv = stored.rev.to_string();
            let t = table(
                def,
                std::slice::from_ref(&stored.obj),
                json!({"resourceVersion": rv}),
                include,
                true,
            );
            Ok(json_response(StatusCode::OK, &t))
        }
        Shape::Metadata => Ok(json_response(
            StatusCode::OK,
            &partial_metadata(&stored.obj),
        )),
        Shape::Object => Ok(json_response(StatusCode::OK, &stored.obj)),
    }
}
