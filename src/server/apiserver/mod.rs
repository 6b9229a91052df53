//! The Kubernetes-compatible HTTP API.

pub mod builtin;
pub mod fieldsel;
pub mod registry;
pub mod table;
