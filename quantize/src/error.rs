//! Why a quantization failed: the pipeline's one error type, apart so that the pieces the
//! pipeline calls (the calibration choice) can return it without importing the pipeline.

use crate::calibrate::CalibrationError;
use crate::checkpoint::CheckpointError;
use crate::export::ExportError;
use crate::int8_runner::RunError;
use crate::onnx::OnnxError;
use crate::sequential::FoldError;
use qcnn_config::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error("the train/validation split")]
    Split(#[from] qcnn_dataset::DatasetError),
    #[error("the config's model does not fit the dataset")]
    DoesNotFit(#[source] qcnn_dataset::DatasetError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("the engine rejects the blob just written: {0}")]
    Model(qcnn_core::ModelError),
    #[error("validating the int8 model: {0}")]
    Run(RunError),
    /// `auto` has nothing to choose from or no validation image to score its candidates on.
    #[error("quantize.method auto: {0}")]
    Auto(String),
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    #[error("choosing the engine's kernels: {0}")]
    Tier(qcnn_core::TierError),
}
