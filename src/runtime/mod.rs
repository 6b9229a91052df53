//! The container engine, usable without any cluster (see DESIGN.md, Runtime).

pub mod container;
pub mod image;
pub mod sqlite;
pub mod volume;
