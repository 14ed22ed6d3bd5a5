//! Model files: an int8 `.qcnn` blob is run as it is; a float checkpoint (`.pth`,
//! `.safetensors`) is quantized with config.yaml's settings first and also kept as the float
//! reference.

use std::path::Path;

use anyhow::{Context, Result};
use qcnn_dataset::FashionMnist;
use qcnn_dataset::checksum::sha256_hex;
use qcnn_quantize::config::Config;
use qcnn_quantize::float_model::FloatModel;

pub struct LoadedModel {
    /// The int8 blob that runs.
    pub blob: Vec<u8>,
    /// The float model the blob was quantized from, when the file was a checkpoint.
    pub float: Option<FloatModel>,
}

/// Does `path` name a float checkpoint (by its extension), rather than a `.qcnn` blob?
pub fn is_checkpoint(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pth" | "pt" | "safetensors" | "onnx")
    )
}

/// Reads `path`; a checkpoint is quantized, calibrating on `dataset`'s training split.
pub fn load(path: &Path, config: &Config, dataset: &FashionMnist) -> Result<LoadedModel> {
    if !is_checkpoint(path) {
        let blob = std::fs::read(path)
            .with_context(|| format!("reading model file {}", path.display()))?;
        return Ok(LoadedModel { blob, float: None });
    }
    let quantized = qcnn_quantize::pipeline::quantize_checkpoint(config, path, dataset)
        .with_context(|| format!("quantizing checkpoint {}", path.display()))?;
    Ok(LoadedModel {
        blob: quantized.blob,
        float: Some(quantized.float_model),
    })
}

/// The SHA-256 of a file, which must be readable (checked before it is put on record).
pub fn sha256_of_file(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading model file {}", path.display()))?;
    Ok(sha256_hex(&bytes))
}
