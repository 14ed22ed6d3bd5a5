//! The library entry point on the release checkpoint: deterministic output, the test set
//! untouched, and int8 accuracy on the test set within 0.2 pp of float.

mod common;

use approx::assert_abs_diff_eq;
use common::*;
use qcnn_config::config::Config;
use qcnn_dataset::FashionMnist;
use qcnn_quantize::pipeline::quantize_checkpoint;
use qcnn_quantize::validate;

fn setup() -> (Config, FashionMnist) {
    let config = Config::load(&repo_config()).unwrap();
    let data = FashionMnist::load(&config.data.dirs).unwrap();
    (config, data)
}

#[test]
fn same_inputs_give_a_byte_identical_blob_and_the_test_set_is_never_read() {
    let (config, mut data) = setup();
    let first = quantize_checkpoint(&config, &config.checkpoint.path, &data).unwrap();
    // Replace the test set by other images: calibration and validation must not notice.
    data.test = data.train.select(&[3, 1, 4, 1, 5]);
    let second = quantize_checkpoint(&config, &config.checkpoint.path, &data).unwrap();
    assert!(first.blob == second.blob, "blobs differ");
    assert_eq!(first.report.blob.sha256, second.report.blob.sha256);
    assert_eq!(
        first.report.validation.samples,
        config.data.split.validation
    );
    assert_eq!(
        first.report.calibration.images,
        config.quantize.calibration_images
    );

    // The same tensors in the other file format give the same blob too.
    let pth = quantize_checkpoint(&config, &fixture("random_init.pth"), &data).unwrap();
    let safetensors =
        quantize_checkpoint(&config, &fixture("random_init.safetensors"), &data).unwrap();
    assert!(
        pth.blob == safetensors.blob,
        "pth and safetensors blobs differ"
    );
    assert!(pth.blob != first.blob);
}

#[test]
fn release_checkpoint_int8_is_within_0_2_points_of_float_on_the_test_set() {
    let (config, data) = setup();
    let quantized = quantize_checkpoint(&config, &config.checkpoint.path, &data).unwrap();
    let images = validate::images(&data.test);
    let float = validate::confusion(
        quantized
            .float_model
            .forward_all(&images)
            .iter()
            .map(Vec::as_slice),
        data.test.labels(),
    );
    let model = qcnn_core::Model::from_bytes(&quantized.blob).unwrap();
    let int8_logits =
        validate::int8_logits(&qcnn_core::PreparedModel::new(model).unwrap(), &images).unwrap();
    let int8 = validate::confusion(int8_logits.rows(), data.test.labels());
    eprintln!(
        "test set: float {:.4} / F1 {:.4}, int8 {:.4} / F1 {:.4}",
        float.accuracy(),
        float.f1_macro(),
        int8.accuracy(),
        int8.f1_macro()
    );
    // PyTorch's figures (../shared/fixtures/torch/reference_metrics.json).
    assert_eq!(float.correct(), 9322);
    assert_abs_diff_eq!(float.f1_macro(), 0.932074690835438, epsilon = 1e-4);
    assert!(
        int8.accuracy() >= float.accuracy() - 0.002,
        "int8 accuracy {}",
        int8.accuracy()
    );
    assert!(
        int8.f1_macro() >= float.f1_macro() - 0.002,
        "int8 F1 {}",
        int8.f1_macro()
    );
}

/// A `Config` built or changed by hand skips `Config::load`'s checks: the values that load
/// refuses are errors naming their key here too, never a panic (they once sliced past the
/// training split, or scored `auto` on images past the training set).
#[test]
fn a_hand_built_config_with_bad_values_is_an_error_naming_the_key() {
    use qcnn_config::config::CalibrationMethod;
    let (config, data) = setup();
    let quantize = |config: &Config| {
        quantize_checkpoint(config, &config.checkpoint.path, &data)
            .err()
            .map(|err| format!("{:#}", anyhow::Error::from(err)))
    };
    for images in [0, 50_001] {
        let mut bad = config.clone();
        bad.quantize.calibration_images = images;
        let err = quantize(&bad).expect("refused");
        assert!(
            err.contains(&format!(
                "quantize.calibration_images: {images} is not within 1..=50000"
            )),
            "{err}"
        );
    }
    let mut bad = config.clone();
    bad.quantize.method = CalibrationMethod::Auto;
    bad.quantize.auto_validation = Some([59_000, 61_000]);
    let err = quantize(&bad).expect("refused");
    assert!(
        err.contains("training images 59000..61000 (quantize.auto_validation) reaches past"),
        "{err}"
    );
    let mut bad = config.clone();
    let model = bad.model.as_mut().unwrap();
    model.layers.truncate(3);
    let err = quantize(&bad).expect("refused");
    assert!(err.contains("model.layers"), "{err}");
}
