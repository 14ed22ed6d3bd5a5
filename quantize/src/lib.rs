//! qcnn-quantize: a float PyTorch checkpoint to a calibrated int8 `.qcnn` blob.

pub mod architecture;
pub mod checkpoint;
pub mod config;
pub mod float_model;
pub mod calibrate;
pub mod scales;
pub mod export;
pub mod pipeline;
pub mod report;
pub mod validate;
