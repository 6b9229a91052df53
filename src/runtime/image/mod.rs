//! Images: references, registry client, content store, layer unpacking.

pub mod unpack;
