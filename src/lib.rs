//! skiff: a Kubernetes distribution and a container engine in one static binary.
//!
//! The library holds every role; `main.rs` only parses the command line and
//! dispatches. Keeping the roles in a library lets integration tests and
//! benchmarks drive the same code the binary runs.

// Handlers return `ApiError` (a Status with causes) by value on purpose:
// errors are rare and boxing every one buys nothing measurable.
#![allow(clippy::result_large_err)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod events;
pub mod hostcheck;
pub mod lockfile;
pub mod net;
pub mod notify;
pub mod runtime;
pub mod server;
