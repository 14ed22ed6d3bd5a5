//! Tries calibration settings on the release checkpoint and prints, for each, the int8 model's
//! accuracy and macro-F1 on the VALIDATION split (10,000 training images held out from
//! calibration) and its agreement with the float model there: how config.yaml's method,
//! percentile and image count are chosen. Calibration images come from the training split; the
//! test set is not read.
//!
//! cargo run -p qcnn-quantize --example calibration_sweep

mod sweep;

use qcnn_config::config::CalibrationMethod;
use qcnn_core::{Model, PreparedModel};
use qcnn_dataset::FashionMnist;
use qcnn_quantize::calibrate::calibrate;
use qcnn_quantize::checkpoint::Checkpoint;
use qcnn_quantize::export::export;
use qcnn_quantize::float_model::FloatModel;
use qcnn_quantize::validate;

fn main() -> anyhow::Result<()> {
    let config = sweep::repo_config()?;
    let architecture = config.architecture()?;
    let checkpoint = Checkpoint::read_checked(&config.checkpoint.path, &architecture)?;
    let float = FloatModel::new(&architecture, &checkpoint);
    let data = FashionMnist::load(&config.data.dirs)?;
    let s = config.data.split;
    let split = data.split(s.train, s.validation, s.seed)?;
    let validation = data.train.select(&split.validation);
    let validation_images = validate::images(&validation);
    let float_logits = float.forward_all(&validation_images);
    let float_scores =
        validate::scores(float_logits.iter().map(Vec::as_slice), validation.labels());
    println!(
        "float on {} validation images: accuracy {:.2}%  macro-F1 {:.2}%",
        validation.len(),
        100.0 * float_scores.accuracy,
        100.0 * float_scores.f1_macro
    );
    println!("method      percentile images   val int8 accuracy  macro-F1  agreement");

    let settings = [
        (CalibrationMethod::MinMax, 100.0, 1000),
        (CalibrationMethod::Percentile, 99.999, 1000),
        (CalibrationMethod::Percentile, 99.99, 1000),
        (CalibrationMethod::Percentile, 99.9, 1000),
        (CalibrationMethod::Mse, 100.0, 1000),
        (CalibrationMethod::MinMax, 100.0, 2000),
        (CalibrationMethod::Percentile, 99.999, 2000),
        (CalibrationMethod::Percentile, 99.99, 2000),
        (CalibrationMethod::Percentile, 99.9, 2000),
        (CalibrationMethod::Percentile, 99.5, 2000),
        (CalibrationMethod::Mse, 100.0, 2000),
        (CalibrationMethod::Mse, 100.0, 3000),
        (CalibrationMethod::Percentile, 99.999, 5000),
        (CalibrationMethod::Percentile, 99.9, 5000),
        (CalibrationMethod::Mse, 100.0, 5000),
    ];
    for setting @ (method, _, images) in settings {
        let (q, calibration_images) =
            sweep::candidate(config.quantize, setting, &data.train, &split.train);
        let ranges = calibrate(&float, &calibration_images, &q)?;
        let blob = export(&architecture, &checkpoint, &ranges)?.blob;
        let model = Model::from_bytes(&blob)?;
        let int8_logits = validate::int8_logits(&PreparedModel::new(model)?, &validation_images)?;
        let confusion = validate::confusion(int8_logits.rows(), validation.labels());
        let percentile = sweep::percentile_column(setting);
        println!(
            "{:<11} {percentile:<10} {images:<8} {:>17.2}% {:>8.2}% {:>9.2}%",
            format!("{method:?}"),
            100.0 * confusion.accuracy(),
            100.0 * confusion.f1_macro(),
            100.0 * validate::agreement(&float_logits, &int8_logits)
        );
    }
    Ok(())
}
