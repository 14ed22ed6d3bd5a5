//! Tries calibration settings on one ONNX model and prints, for each, the int8 model's accuracy
//! on the model's VALIDATION images and its agreement with the float model there: how a
//! model's calibration in `models/reference.json` is chosen. The models of `models/` were
//! trained on FashionMNIST training images 0..49,999 with 50,000..59,999 held out
//! (`scripts/train_onnx_models.py`); the first 3,000 of those held-out images that no
//! candidate calibrates on are the validation images here (what `quantize.auto_validation:
//! [50000, 60000]` makes `auto` take) (the host runs graph models on
//! portable kernels, so all 10,000 would take too long on a busy machine). Calibration takes
//! config.yaml's training split, as `qcnn-quantize` does. The test set is not read. The
//! candidates, images and tie rule are `quantize.method: auto`'s ([`auto_calibration`]).
//!
//! cargo run -p qcnn-quantize --example onnx_calibration_sweep -- models/ds_cnn.onnx [MEAN STD]

#[allow(dead_code, reason = "this sweep reads only config.yaml through it")]
mod sweep;

use std::path::PathBuf;

use anyhow::Context;
use qcnn_config::config::QuantizeConfig;
use qcnn_dataset::FashionMnist;
use qcnn_quantize::auto_calibration::{self, ValidationSource};
use qcnn_quantize::graph::InputNorm;
use qcnn_quantize::graph::export::export_graph;
use qcnn_quantize::onnx;
use qcnn_quantize::validate;

/// The training images `scripts/train_onnx_models.py` held out from the models it trained.
const MODELS_HELD_OUT: [usize; 2] = [50_000, 60_000];

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

    // What `quantize.method: auto` does: config.yaml's image count and percentile against the
    // other methods, on the images the models of `models/` held out.
    let settings = QuantizeConfig {
        auto_validation: Some(MODELS_HELD_OUT),
        ..config.quantize
    };
    let source = ValidationSource::of(&settings, &s);
    let calibration_indices = &split.train[..settings.calibration_images];
    let calibration_images: Vec<&[u8]> = calibration_indices
        .iter()
        .map(|&i| data.train.image(i))
        .collect();
    let validation = data.train.select(&auto_calibration::validation_indices(
        &source,
        &split,
        calibration_indices,
    )?);
    let validation_images = validate::images(&validation);
    let float_logits = graph.forward_all(&validation_images);
    let choice = auto_calibration::choose(
        &auto_calibration::candidates(&settings),
        source,
        &validation_images,
        validation.labels(),
        &float_logits,
        |candidate| Ok(export_graph(&graph, &calibration_images, candidate)?.blob),
    )?;
    println!("{}", path.display());
    print!("{}", auto_calibration::table(&choice));
    Ok(())
}
