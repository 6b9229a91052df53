//! What each kind does beyond storing JSON: one strategy per kind, reached
//! from its registry entry (upstream's `pkg/registry/<group>/<kind>/strategy.go`).
//! The shared handlers (write, objects, fieldsel) ask the strategy and never
//! match on group or plural; adding a kind is one registry entry plus, when
//! it differs from [`Plain`], one file here.
//!
//! - `autoscaling`: autoscaling/v1 HPAs stored as, and converted from, v2.
//! - `alloc`: ranges handed out by compare-and-swap (cluster IPs, node
//!   ports, node pod CIDRs).
//! - `repair`: the ranges reconciled with their holders, at start-up and
//!   periodically (leaked and unmarked members).
//! - `service`: allocation on create and update, release on delete,
//!   clusterIP immutable.
//! - `pod`: starts Pending, graceful delete for pods on a node, field labels.
//! - `namespace`: starts Active, deletion waits for content, system
//!   namespaces protected.
//! - `node`: a pod CIDR from the cluster CIDR on create (or at the first
//!   update of a Node without one), fixed once set, released on delete.
//! - `core`: secrets and both Event kinds (field labels).
//! - `events`: events.k8s.io Events stored as, and converted from, core Events.
//! - `workloads`: apps and batch kinds (generation, field labels).
//! - `scheduling`: the system PriorityClasses cannot be deleted.
//! - `review`: the authentication and authorization reviews, answered,
//!   never stored.

pub mod alloc;
pub mod autoscaling;
pub mod core;
pub mod events;
pub mod namespace;
pub mod node;
pub mod plan;
pub mod pod;
pub mod repair;
pub mod review;
pub mod scheduling;
pub mod service;
pub mod workloads;

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use super::object_store::Objects;
use crate::api::status::ApiError;

/// A boxed future: strategies are used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Field labels every kind accepts through the default conversion.
pub const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// Members a create took from shared ranges: given back if the create fails.
#[derive(Debug, Default)]
pub struct Reservation {
    pub taken: Vec<(&'static alloc::Range, Vec<u32>)>,
}

impl Reservation {
    /// Give back everything; failures are logged, as the create that
    /// reserved is failing with its own error already.
    pub async fn release(self, objects: &Objects) {
        for (range, members) in self.taken {
            if let Err(e) = alloc::release(objects, range, &members).await {
                tracing::warn!(key = range.key, error = %e, "could not release members of a failed create");
            }
        }
    }
}

impl std::fmt::Debug for alloc::Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key)
    }
}

/// What an update took and what it gives back once stored.
#[derive(Debug, Default)]
pub struct Reallocation {
    pub taken: Reservation,
    pub freed: Reservation,
}

/// How a delete of one object proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletePolicy {
    /// Only marked (deletionTimestamp), even without finalizers: a
    /// controller or node removes it later.
    pub marked_only: bool,
    /// `deletionGracePeriodSeconds`, when the kind has one.
    pub grace: Option<i64>,
}

/// Which review a review kind is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    /// `TokenReview`: who a token stands for.
    Token,
    /// `SelfSubjectReview`: who the caller is (`kubectl auth whoami`).
    SelfSubject,
    /// `SubjectAccessReview`: may a given user do something?
    SubjectAccess,
    /// `LocalSubjectAccessReview`: the same, within one namespace.
    LocalSubjectAccess,
    /// `SelfSubjectAccessReview`: may I (`kubectl auth can-i`)?
    SelfSubjectAccess,
    /// `SelfSubjectRulesReview`: what may I do in a namespace
    /// (`kubectl auth can-i --list`)?
    SelfSubjectRules,
}

/// What a kind does. Every method has the behaviour of an ordinary kind as
/// its default, so a strategy states only what differs.
pub trait Strategy: Send + Sync {
    /// The status a create starts with: status is owned by controllers, so
    /// by default a create may not set any.
    fn status_on_create(&self, obj: &mut Map<String, Value>) {
        obj.remove("status");
    }

    /// What upstream's mutating admission plugins change in a new object
    /// of this kind (for pods: ServiceAccount, Priority,
    /// DefaultTolerationSeconds, and the QoS class the registry computes),
    /// after defaulting and before validation. Creates only.
    fn admit_create(&self, _obj: &mut Value) {}

    /// Kinds whose controllers report `status.observedGeneration` track
    /// `metadata.generation`: 1 on create, +1 on every spec change.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Annotations that carry status in the API form `api_version` (an
    /// older version with no fields for it): they change with status
    /// writes only, as status does.
    fn status_annotations(&self, _api_version: &str) -> &'static [&'static str] {
        &[]
    }

    /// Rules of an update beyond metadata, after defaulting: fields that
    /// cannot change, or that an update leaving them out keeps.
    fn on_update(&self, _old: &Value, _new: &mut Value) -> Result<(), ApiError> {
        Ok(())
    }

    /// Take what a new object needs from shared ranges, writing it into
    /// the object. A dry run checks but records nothing.
    fn allocate<'a>(
        &'a self,
        _objects: &'a Objects,
        _obj: &'a mut Value,
        _dry_run: bool,
    ) -> BoxFuture<'a, Result<Reservation, ApiError>> {
        Box::pin(async { Ok(Reservation::default()) })
    }

    /// Take what an updated object needs beyond what `old` held, writing
    /// it into `new`; what `old` held and `new` no longer does is in
    /// `freed`, given back once the update is stored.
    fn reallocate<'a>(
        &'a self,
        _objects: &'a Objects,
        _old: &'a Value,
        _new: &'a mut Value,
        _dry_run: bool,
    ) -> BoxFuture<'a, Result<Reallocation, ApiError>> {
        Box::pin(async { Ok(Reallocation::default()) })
    }

    /// Give back what a deleted object held.
    fn release<'a>(&'a self, _objects: &'a Objects, _obj: &'a Value) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Refuse a delete outright (403), before anything is read.
    fn check_delete(&self, _name: &str) -> Result<(), ApiError> {
        Ok(())
    }

    /// How deleting `obj` proceeds, given the request's grace period.
    fn delete_policy(&self, _obj: &Value, _grace_seconds: Option<i64>) -> DeletePolicy {
        DeletePolicy {
            marked_only: false,
            grace: None,
        }
    }

    /// Changes made to an object as it is marked for deletion.
    fn on_mark_deleted(&self, _obj: &mut Value) {}

    /// True when a marked object without finalizers still waits for
    /// something of its own before it goes.
    fn waits_before_removal(&self, _obj: &Value) -> bool {
        false
    }

    /// Whether DELETE answers with the object rather than a Status.
    fn returns_deleted_object(&self) -> bool {
        false
    }

    /// True for the kind of namespaces themselves: a Namespace is addressed
    /// inside itself, and new namespaced objects need one to exist.
    fn is_namespace(&self) -> bool {
        false
    }

    /// For a review kind, which: a create is answered from the request
    /// and nothing is stored.
    fn review(&self) -> Option<Review> {
        None
    }

    /// The field labels `?fieldSelector=` accepts.
    fn field_labels(&self) -> &'static [&'static str] {
        META_FIELDS
    }

    /// The value of a field label whose value is not simply the string at
    /// the path it names; `None` for those that are.
    fn field_value(&self, _obj: &Value, _field: &str) -> Option<String> {
        None
    }
}

/// A kind with no behaviour of its own.
pub struct Plain;

impl Strategy for Plain {}

pub static PLAIN: Plain = Plain;

/// The strategy a registry entry points at. Compared by identity so that
/// registry entries stay comparable.
#[derive(Clone, Copy)]
pub struct KindRef(pub &'static dyn Strategy);

impl std::fmt::Debug for KindRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Strategy")
    }
}

impl PartialEq for KindRef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(self.0, other.0)
    }
}

impl Eq for KindRef {}

impl std::ops::Deref for KindRef {
    type Target = dyn Strategy;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

pub(crate) fn str_at(obj: &Value, ptr: &str) -> String {
    obj.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn int_at(obj: &Value, ptr: &str) -> String {
    obj.pointer(ptr)
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .to_string()
}

pub(crate) fn bool_at(obj: &Value, ptr: &str) -> String {
    obj.pointer(ptr)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}
