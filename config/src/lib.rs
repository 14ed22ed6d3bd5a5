//! qcnn-config: `config.yaml` read once into typed, validated values.
//!
//! Every tool of the project (quantizer, host harness, firmware build script, train-small,
//! bench, fuzz) reads its settings through this crate, so none needs the quantizer to read
//! YAML. It depends on `qcnn-core` only, for the engine's limits.

pub mod architecture;
pub mod config;
pub mod model;
pub mod regular_file;

pub use architecture::{Architecture, ArchitectureError};
pub use config::{Config, ConfigError};
