//! qcnn-core: int8 CNN inference with no heap, over a checked, zero-copy model blob.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod format;
