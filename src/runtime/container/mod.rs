//! Containers: OCI spec, shim, libcontainer glue, cgroups, logs, exec.

pub mod cgroups;
