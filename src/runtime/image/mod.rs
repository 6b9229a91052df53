//! Images: references, registry configuration and client, the content store
//! with its layered snapshots, and the layer unpacker.

pub mod archive;
pub mod catalog;
pub mod client;
pub mod credentials;
pub mod ensure;
pub mod limit;
pub mod manifest;
pub mod meta;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registries;
pub mod store;
pub mod unpack;

pub use reference::Reference;
pub use store::Store;
