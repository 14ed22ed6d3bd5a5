//! Model files: an int8 `.qcnn` blob is run as it is; a float checkpoint (`.pth`,
//! `.safetensors`) is quantized with config.yaml's settings first and also kept as the float
//! reference.

use std::path::Path;

use anyhow::{Context, Result};
use qcnn_config::config::Config;
use qcnn_config::regular_file::{self, MAX_BLOB_BYTES, MAX_CHECKPOINT_BYTES};
use qcnn_core::Model;
use qcnn_dataset::FashionMnist;
use qcnn_dataset::checksum::sha256_hex;
use qcnn_quantize::checkpoint::Checkpoint;
use qcnn_quantize::pipeline::FloatReference;

pub struct LoadedModel {
    /// The int8 blob that runs.
    pub blob: Vec<u8>,
    /// The float model the blob was quantized from, when the file was a checkpoint.
    pub float: Option<FloatReference>,
}

/// Does `path` name a float checkpoint (by its extension), rather than a `.qcnn` blob?
pub fn is_checkpoint(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pth" | "pt" | "safetensors" | "onnx")
    )
}

/// The bytes of a model file: a regular file within the size limit of its kind.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let limit = if is_checkpoint(path) {
        MAX_CHECKPOINT_BYTES
    } else {
        MAX_BLOB_BYTES
    };
    regular_file::read(path, limit)
        .with_context(|| format!("reading model file {}", path.display()))
}

/// The SHA-256 of a model file's `bytes`, which must match `expected` (from the model's
/// `model_weights` row), so that a result is never recorded against a row whose file has
/// since been replaced.
pub fn checked_sha256(path: &Path, bytes: &[u8], expected: Option<&str>) -> Result<String> {
    let actual = sha256_hex(bytes);
    if let Some(expected) = expected
        && expected != actual
    {
        anyhow::bail!(
            "model file {} has SHA-256 {actual}, but its model_weights row says {expected}: \
             the file changed since `qcnn db add-model` (add it again to evaluate it)",
            path.display()
        );
    }
    Ok(actual)
}

/// The model in `bytes`, read from `path`: a blob as it is; a checkpoint quantized,
/// calibrating on `dataset`'s training split.
pub fn load(
    path: &Path,
    bytes: Vec<u8>,
    config: &Config,
    dataset: &FashionMnist,
) -> Result<LoadedModel> {
    if !is_checkpoint(path) {
        return Ok(LoadedModel {
            blob: bytes,
            float: None,
        });
    }
    let quantized = qcnn_quantize::pipeline::quantize_checkpoint(config, path, dataset)
        .with_context(|| format!("quantizing checkpoint {}", path.display()))?;
    Ok(LoadedModel {
        blob: quantized.blob,
        float: Some(quantized.float_model),
    })
}

/// Checks that the engine can run `blob` on FashionMNIST: it loads, takes 28×28 images and
/// gives 10 class scores. Every command calls this before its work.
pub fn check_blob<'a>(path: &Path, blob: &'a [u8]) -> Result<Model<'a>> {
    let model =
        Model::from_bytes(blob).with_context(|| format!("loading model {}", path.display()))?;
    qcnn_dataset::check_model_fits(model.input_len(), model.num_classes())
        .with_context(|| format!("model {}", path.display()))?;
    Ok(model)
}

/// For `qcnn db add-model`: the file's SHA-256 once it has been checked to be a model that
/// `evaluate` can run (a blob the engine accepts, or a checkpoint matching config.yaml).
pub fn check_for_record(path: &Path, config: &Config) -> Result<String> {
    let bytes = read(path)?;
    if qcnn_quantize::onnx::is_onnx(path) {
        // An ONNX file brings its own architecture.
        let (input, classes) = qcnn_quantize::onnx::import_bytes(path, &bytes)?.input_and_classes();
        qcnn_dataset::check_model_fits(input, classes)
            .with_context(|| format!("the model in {}", path.display()))?;
    } else if is_checkpoint(path) {
        let architecture = config.architecture()?;
        qcnn_dataset::check_model_fits(architecture.input.len(), architecture.output().len())
            .context("config.yaml's model")?;
        Checkpoint::read_checked(path, &architecture)?;
    } else {
        check_blob(path, &bytes)?;
    }
    Ok(sha256_hex(&bytes))
}
