//! The int8 model `qcnn evaluate` and `qcnn predict` run, and the images they run it on; the
//! running itself is qcnn-quantize's [`int8_runner`](qcnn_quantize::int8_runner), shared with
//! the quantizer's validation.

use anyhow::{Context, Result};
use qcnn_core::{Model, PreparedModel};
use qcnn_dataset::LabeledImages;

/// Kernels for the best tier this CPU has, or the one `QCNN_KERNEL_TIER` names (an unknown or
/// unsupported name is an error).
pub fn prepare<'a>(model: &Model<'a>) -> Result<PreparedModel<'a>> {
    PreparedModel::new(model.clone()).context("choosing the engine's kernels")
}

/// Images `0..count` of `set`.
pub fn first_images(set: &LabeledImages, count: usize) -> Vec<&[u8]> {
    (0..count.min(set.len())).map(|i| set.image(i)).collect()
}
