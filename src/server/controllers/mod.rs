//! Controllers: reconcile loops that are ordinary API clients (the loopback
//! client, each with an identity of its own), fed by API watches.

pub mod garbage;
pub mod namespace;

#[cfg(test)]
pub(crate) mod tests;
