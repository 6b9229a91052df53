//! The container engine, usable without any cluster (see DESIGN.md, Runtime).
//! `engine::Engine` is the one object callers hold (the CLI now, the agent
//! later); `container` makes and runs containers, `image` fetches and stores
//! images (`image::ensure` applies a pull policy), `volume` keeps named
//! volumes. The CLI only parses, calls these and prints. `pod::PodRuntime`
//! is the async face the node agent drives (sandboxes and containers from
//! ContainerSpecs, exit streams, re-adoption by label), over the blocking
//! engine.

pub mod container;
pub mod engine;
pub mod image;
pub mod pid_holder;
pub mod pod;
pub mod private;
pub mod sandbox;
pub mod sqlite;
pub mod volume;
