//! Controllers: reconcile loops fed by store watches.

pub mod namespace;
