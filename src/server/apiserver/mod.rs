//! The Kubernetes-compatible HTTP API.

pub mod builtin;
pub mod registry;
