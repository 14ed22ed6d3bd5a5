//! Tries calibration settings on one ONNX model and prints, for each, the int8 model's accuracy
//! on the model's VALIDATION images and its agreement with the float model there: how a
//! model's calibration in `models/reference.json` is chosen. The models of `models/` were
//! trained on FashionMNIST training images 0..49,999 with 50,000..59,999 held out
//! (`scripts/train_onnx_models.py`); the first `VALIDATION` of those held-out images that no
//! candidate calibrates on are the validation images here (the host runs graph models on
//! portable kernels, so all 10,000 would take too long on a busy machine). Calibration takes
//! config.yaml's training split, as `qcnn-quantize` does. The test set is not read.
//!
//! cargo run -p qcnn-quantize --example onnx_calibration_sweep -- models/ds_cnn.onnx [MEAN STD]

mod sweep;

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Context;
use qcnn_config::config::CalibrationMethod;
use qcnn_core::{Model, PreparedModel};
use qcnn_dataset::FashionMnist;
use qcnn_quantize::graph::InputNorm;
use qcnn_quantize::graph::export::export_graph;
use qcnn_quantize::onnx;
use qcnn_quantize::validate;

/// The training images the models of `models/` held out for validation.
const HELD_OUT: std::ops::Range<usize> = 50_000..60_000;
/// How many of them score each candidate.
const VALIDATION: usize = 3000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .context("usage: onnx_calibration_sweep MODEL.onnx [MEAN STD]")?,
    );
    let norm = match (args.next(), args.next()) {
        (Some(mean), Some(std)) => InputNorm {
            mean: mean.parse()?,
            std: std.parse()?,
        },
        _ => InputNorm::PIXEL_OVER_255,
    };
    let config = sweep::repo_config()?;
    let (mut graph, _) = onnx::import_graph(&path)?;
    graph.input_norm = norm;
    let data = FashionMnist::load(&config.data.dirs)?;
    let s = config.data.split;
    let split = data.split(s.train, s.validation, s.seed)?;

    // config.yaml's image count; its method and percentile against the other methods.
    let settings = [
        (CalibrationMethod::Percentile, 99.9, 2000),
        (CalibrationMethod::MinMax, 100.0, 2000),
        (CalibrationMethod::Percentile, 99.99, 2000),
        (CalibrationMethod::Mse, 100.0, 2000),
    ];
    let most = settings.iter().map(|s| s.2).max().unwrap_or(0);
    let calibration_pool: HashSet<usize> = split.train[..most].iter().copied().collect();
    let held_out: Vec<usize> = HELD_OUT
        .filter(|i| !calibration_pool.contains(i))
        .take(VALIDATION)
        .collect();
    let validation = data.train.select(&held_out);
    let validation_images = validate::images(&validation);
    let float_logits = graph.forward_all(&validation_images);
    let float_scores =
        validate::scores(float_logits.iter().map(Vec::as_slice), validation.labels());
    println!(
        "{}: float on {} validation images (the first of training images {HELD_OUT:?} not \
         used for calibration): accuracy {:.2}%",
        path.display(),
        validation.len(),
        100.0 * float_scores.accuracy,
    );
    println!("method      percentile images   val int8 accuracy  agreement");
    for setting @ (method, _, images) in settings {
        let (q, calibration_images) =
            sweep::candidate(config.quantize, setting, &data.train, &split.train);
        let blob = export_graph(&graph, &calibration_images, &q)?.blob;
        let model = PreparedModel::new(Model::from_bytes(&blob)?)?;
        let int8_logits = validate::int8_logits(&model, &validation_images)?;
        let scores = validate::int8_scores(&int8_logits, validation.labels());
        let percentile = sweep::percentile_column(setting);
        println!(
            "{:<11} {percentile:<10} {images:<8} {:>17.2}% {:>9.2}%",
            format!("{method:?}"),
            100.0 * scores.accuracy,
            100.0 * validate::agreement(&float_logits, &int8_logits)
        );
    }
    Ok(())
}
