//! Shared object model: names, selectors, Status errors and the helpers the
//! server and (later) the agent both use on Kubernetes objects kept as JSON.

pub mod defaulting;
pub mod duration;
pub mod fields;
pub mod node_match;
pub mod protobuf;
pub mod qos;
pub mod rules;
pub mod selector;
pub mod status;
pub mod strategic;
pub mod validation;

/// Unknown/duplicate field detection for `fieldValidation` (walks the protobuf schema table).
pub use protobuf::fieldcheck;
