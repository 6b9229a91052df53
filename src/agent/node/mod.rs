pub mod host;
pub mod pressure;
