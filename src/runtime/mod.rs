//! The container engine, usable without any cluster (see DESIGN.md, Runtime).

pub mod container;
pub mod engine;
pub mod image;
pub mod private;
pub mod sqlite;
pub mod volume;
