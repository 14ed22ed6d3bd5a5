//! qcnn-quantize: a float PyTorch checkpoint to a calibrated int8 `.qcnn` blob.

pub mod auto_calibration;
pub mod calibrate;
pub mod checkpoint;
pub mod emit_c;
pub mod error;
pub mod export;
pub mod float_model;
pub mod graph;
pub mod int8_runner;
pub mod onnx;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod scales;
pub mod sequential;
pub mod sgemm;
pub mod validate;
