//! The node agent (kubelet): node registration and status, later pod workers, probes and volumes.
pub mod node;
