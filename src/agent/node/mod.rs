//! The node: what the host is (host.rs, pressure.rs), its Node object and
//! status (register.rs), its Lease (lease.rs).

pub mod host;
pub mod lease;
pub mod pressure;
pub mod register;
