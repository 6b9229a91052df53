//! Container engine, usable without any cluster.

pub mod image;
