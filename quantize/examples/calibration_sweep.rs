//! Tries calibration settings on a checkpoint and prints int8 TEST accuracy and macro-F1 for
//! each: how the release config's method, percentile and image count were chosen. The
//! calibration images still come from the training split only.
//!
//! cargo run --release -p qcnn-quantize --example calibration_sweep

use std::path::Path;

use qcnn_core::Model;
use qcnn_dataset::FashionMnist;
use qcnn_quantize::calibrate::calibrate;
use qcnn_quantize::checkpoint::Checkpoint;
use qcnn_quantize::config::{CalibrationMethod, Config};
use qcnn_quantize::export::export;
use qcnn_quantize::float_model::FloatModel;
use qcnn_quantize::validate;

fn main() -> anyhow::Result<()> {
    let config = Config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config.yaml"
    )))?;
    let architecture = config.architecture()?;
    let checkpoint = Checkpoint::read_checked(&config.checkpoint.path, &architecture)?;
    let float = FloatModel::new(&architecture, &checkpoint);
    let data = FashionMnist::load(&config.data.dirs)?;
    let s = config.data.split;
    let split = data.split(s.train, s.validation, s.seed)?;
    let test_images = validate::images(&data.test);

    let settings = [
        (CalibrationMethod::MinMax, 100.0, 1000),
        (CalibrationMethod::Percentile, 99.999, 1000),
        (CalibrationMethod::Percentile, 99.99, 1000),
        (CalibrationMethod::Percentile, 99.9, 1000),
        (CalibrationMethod::Mse, 100.0, 1000),
        (CalibrationMethod::Percentile, 99.9, 2000),
        (CalibrationMethod::Mse, 100.0, 2000),
        (CalibrationMethod::Mse, 100.0, 3000),
        (CalibrationMethod::Percentile, 99.999, 5000),
        (CalibrationMethod::Percentile, 99.9, 5000),
        (CalibrationMethod::Mse, 100.0, 5000),
    ];
    for (method, percentile, images) in settings {
        let mut q = config.quantize;
        (q.method, q.percentile, q.calibration_images) = (method, percentile, images);
        let calibration_images: Vec<&[u8]> = split.train[..images]
            .iter()
            .map(|&i| data.train.image(i))
            .collect();
        let ranges = calibrate(&float, &calibration_images, &q);
        let blob = export(&architecture, &checkpoint, &ranges)?.blob;
        let model = Model::from_bytes(&blob)?;
        let confusion = validate::confusion(
            &validate::int8_logits(&model, &test_images)?,
            data.test.labels(),
        );
        println!(
            "{method:?} {percentile} on {images}: test int8 accuracy {:.2}%  macro-F1 {:.2}%",
            100.0 * confusion.accuracy(),
            100.0 * confusion.f1_macro()
        );
    }
    Ok(())
}
