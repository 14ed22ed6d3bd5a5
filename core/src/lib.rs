//! qcnn-core: int8 CNN inference with no heap, over a checked, zero-copy model blob.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

mod arena;
pub mod format;
mod infer;
pub mod model;
pub mod ops;
pub mod quant;
pub mod shape;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod test_blob;
#[cfg(test)]
mod test_util;

pub use format::QuantParams;
pub use infer::{InferError, Logits};
pub use model::{CheckedLayer, LayerKind, Model, ModelError, SectionKind};
pub use shape::{MapShape, TensorShape};
