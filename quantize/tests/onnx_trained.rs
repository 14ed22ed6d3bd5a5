//! Trained models from ONNX, scored on the 10,000 FashionMNIST test images against
//! onnxruntime's own figures (models/reference.json, written by
//! scripts/train_onnx_models.py):
//!
//! - the trained DS-CNN and MobileNet (and a MobileNet trained on normalized input, which
//!   config.yaml's `preprocess` describes): the float reference matches onnxruntime's float
//!   logits to 1e-4 on 256 test images, and qcnn's int8 blob scores at least onnxruntime's
//!   int8 QDQ per-channel accuracy − 0.2 points and the float accuracy − 0.5 points, each
//!   calibrated with config.yaml's settings or, where models/calibration.json names another
//!   method, the one chosen on the model's validation images (never the test set);
//! - trained variants of other shapes (models/variants/, scripts/make_variant_models.py),
//!   quantized with config.yaml's own settings: the same bounds;
//! - QDQ files (onnxruntime's `quantize_static` output) imported as they are: the integer
//!   weights through their DequantizeLinear, the activations at the file's own scales and
//!   zero points, scored against onnxruntime's int8 figure for the same file.
//!
//! Logits are compared, never blob hashes (the blob format's version may change).

mod common;

use std::path::{Path, PathBuf};

use qcnn_config::config::{CalibrationMethod, Config};
use qcnn_core::{Model, PreparedModel};
use qcnn_dataset::FashionMnist;
use qcnn_quantize::auto_calibration::ValidationSource;
use qcnn_quantize::graph::FloatGraph;
use qcnn_quantize::graph::export::{ExportedGraph, QuantSource, export_graph};
use qcnn_quantize::onnx;
use qcnn_quantize::pipeline::{input_norm, quantize_checkpoint};
use qcnn_quantize::validate;

use common::{repo, repo_config};

fn models_dir() -> PathBuf {
    repo().join("models")
}

fn reference() -> serde_json::Value {
    read_reference(&models_dir().join("reference.json"))
}

fn read_reference(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn data() -> FashionMnist {
    let config = Config::load(&repo_config()).unwrap();
    FashionMnist::load(&config.data.dirs).unwrap()
}

/// The repository config with `preprocess` set to `mean` and `std`, as a user of a
/// normalized model writes it.
fn config_with(mean: f64, std: f64) -> Config {
    let text = std::fs::read_to_string(repo_config()).unwrap();
    let start = text.find("preprocess:").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    let text = format!(
        "{}preprocess:\n  mean: [{mean}]\n  std: [{std}]{}",
        &text[..start],
        &text[end..]
    );
    Config::parse(&text, &repo_config(), &repo()).unwrap()
}

/// The graph of `path` with config's input normalization, as `qcnn-quantize` imports it.
fn graph(path: &Path, config: &Config) -> (FloatGraph, onnx::ImportReport) {
    let (mut graph, report) = onnx::import_graph(path).unwrap();
    graph.input_norm = input_norm(config, graph.tensors[0].shape[0]).unwrap();
    (graph, report)
}

/// The blob, calibrated as `qcnn-quantize` does: config's settings on the first
/// `calibration_images` of the shuffled training split.
fn quantize(graph: &FloatGraph, config: &Config, data: &FashionMnist) -> ExportedGraph {
    let s = config.data.split;
    let split = data.split(s.train, s.validation, s.seed).unwrap();
    let calibration: Vec<&[u8]> = split.train[..config.quantize.calibration_images]
        .iter()
        .map(|&i| data.train.image(i))
        .collect();
    export_graph(graph, &calibration, &config.quantize).unwrap()
}

/// The int8 blob's accuracy on the 10,000 test images.
fn int8_test_accuracy(blob: &[u8], data: &FashionMnist) -> f64 {
    let model = PreparedModel::new(Model::from_bytes(blob).unwrap()).unwrap();
    let images = validate::images(&data.test);
    let logits = validate::int8_logits(&model, &images).unwrap();
    validate::int8_scores(&logits, data.test.labels()).accuracy
}

/// The calibration chosen for model `name` on its validation images
/// (models/calibration.json, from the `onnx_calibration_sweep` example), where it is not
/// config.yaml's.
fn chosen_calibration(name: &str, config: &mut Config) {
    let text = std::fs::read_to_string(models_dir().join("calibration.json")).unwrap();
    let chosen: serde_json::Value = serde_json::from_str(&text).unwrap();
    if let Some(entry) = chosen["models"].get(name) {
        config.quantize.method = serde_json::from_value(entry["method"].clone()).unwrap();
        if let Some(percentile) = entry["percentile"].as_f64() {
            config.quantize.percentile = percentile;
        }
    }
}

/// A trained model: float reference against onnxruntime's golden logits, then qcnn's int8
/// blob against onnxruntime's int8 and float accuracy.
fn check_trained(name: &str) {
    check_trained_from(&reference(), name);
}

/// As `check_trained`, for model `name` of `reference` (pixel/255 input where it names no
/// `mean` and `std`).
fn check_trained_from(reference: &serde_json::Value, name: &str) {
    let entry = &reference["models"][name];
    let mean = entry["mean"][0].as_f64().unwrap_or(0.0);
    let std = entry["std"][0].as_f64().unwrap_or(1.0);
    let mut config = config_with(mean, std);
    chosen_calibration(name, &mut config);
    let (graph, _) = graph(&repo().join(entry["file"].as_str().unwrap()), &config);
    let data = data();

    let golden = entry["golden_logits"].as_array().unwrap();
    assert_eq!(golden.len(), 256);
    let images: Vec<&[u8]> = (0..golden.len()).map(|i| data.test.image(i)).collect();
    let mut worst = 0.0_f64;
    for (i, (got, want)) in graph.forward_all(&images).iter().zip(golden).enumerate() {
        let want = want.as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let diff = (f64::from(*g) - w.as_f64().unwrap()).abs();
            worst = worst.max(diff);
            assert!(diff <= 1e-4, "{name}, image {i}: {got:?} vs {want:?}");
        }
    }

    let exported = quantize(&graph, &config, &data);
    let accuracy = int8_test_accuracy(&exported.blob, &data);
    let ort_int8 = entry["int8"]["test_accuracy"].as_f64().unwrap();
    let ort_float = entry["float"]["test_accuracy"].as_f64().unwrap();
    eprintln!(
        "{name} ({:?} calibration): worst |float - onnxruntime| {worst:e}; int8 test accuracy {accuracy:.4} \
         (onnxruntime int8 {ort_int8:.4}, float {ort_float:.4}); arena {} B (live peak {}, \
         ping-pong {}, no reuse {})",
        config.quantize.method,
        exported.report.arena_bytes,
        exported.report.live_peak_bytes,
        exported.report.ping_pong_bytes,
        exported.report.no_reuse_bytes
    );
    assert!(
        accuracy >= ort_int8 - 0.002,
        "{name}: int8 {accuracy} < onnxruntime int8 {ort_int8} - 0.2 pp"
    );
    assert!(
        accuracy >= ort_float - 0.005,
        "{name}: int8 {accuracy} < float {ort_float} - 0.5 pp"
    );
}

/// A QDQ file imported as it is: its activations keep the file's quantization, and the int8
/// accuracy is within 0.2 points of onnxruntime's for the same file.
fn check_qdq(path: &Path, config: &Config, ort_int8: f64) {
    let (graph, report) = graph(path, config);
    assert!(
        report
            .qdq
            .iter()
            .any(|q| q.contains("read through DequantizeLinear")),
        "{:?}",
        report.qdq
    );
    assert!(!graph.file_quant.is_empty());
    let data = data();
    let exported = quantize(&graph, config, &data);
    // Every Conv, Gemm and Add output takes the file's scale and zero point.
    for node in &exported.report.nodes {
        let expected = if node.op.starts_with("maxpool")
            || node.op.starts_with("avgpool")
            || node.op.starts_with("globalavgpool")
        {
            QuantSource::KeptFromInput
        } else {
            QuantSource::File
        };
        assert_eq!(node.quant_source, expected, "{} ({})", node.name, node.op);
    }
    let accuracy = int8_test_accuracy(&exported.blob, &data);
    eprintln!(
        "{}: int8 test accuracy {accuracy:.4} (onnxruntime int8 {ort_int8:.4}); {} nodes",
        path.display(),
        exported.report.nodes.len()
    );
    assert!(
        accuracy >= ort_int8 - 0.002,
        "{}: int8 {accuracy} < onnxruntime int8 {ort_int8} - 0.2 pp",
        path.display()
    );
}

#[test]
fn trained_ds_cnn_matches_onnxruntime() {
    check_trained("ds_cnn");
}

#[test]
fn trained_mobilenet_matches_onnxruntime() {
    check_trained("mobilenet");
}

#[test]
fn mobilenet_on_normalized_input_matches_onnxruntime() {
    check_trained("mobilenet_norm");
}

/// `quantize.method: auto` through the whole quantization, on the trained DS-CNN: it picks the
/// method models/calibration.json records for it (chosen on the same validation images by the
/// `onnx_calibration_sweep` example), with the same validation accuracy per candidate. The
/// model was trained on training images 0..49,999 (`scripts/train_onnx_models.py`), not on
/// config.yaml's training split, so the config names the images it held out.
#[test]
fn auto_calibration_picks_the_recorded_choice_for_ds_cnn() {
    let text = std::fs::read_to_string(repo_config()).unwrap().replace(
        "method: percentile",
        "method: auto\n  auto_validation: [50000, 60000]",
    );
    let config = Config::parse(&text, &repo_config(), &repo()).unwrap();
    let quantized =
        quantize_checkpoint(&config, &models_dir().join("ds_cnn.onnx"), &data()).unwrap();
    let calibration = &quantized.report.calibration;
    let auto = calibration
        .auto
        .as_ref()
        .expect("auto's choice is reported");
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models_dir().join("calibration.json")).unwrap(),
    )
    .unwrap();
    let recorded = &recorded["models"]["ds_cnn"];
    let method: CalibrationMethod = serde_json::from_value(recorded["method"].clone()).unwrap();
    assert_eq!(method, CalibrationMethod::MinMax);
    assert_eq!(calibration.method, method);
    assert_eq!(auto.chosen().method, method);
    assert_eq!(auto.validation_images, 3000);
    assert_eq!(
        auto.validation_source,
        ValidationSource::HeldOut {
            start: 50_000,
            end: 60_000
        }
    );
    assert_eq!(auto.candidates.len(), 4);
    for candidate in &auto.candidates {
        let name = match candidate.percentile {
            Some(p) => format!("percentile {p}"),
            None => format!("{:?}", candidate.method).to_lowercase(),
        };
        let want = recorded["validation"][&name].as_f64().unwrap();
        assert!(
            (candidate.accuracy - want).abs() < 1e-4,
            "{name}: validation accuracy {} vs {want} recorded",
            candidate.accuracy
        );
    }
    let summary = quantized.report.summary();
    assert!(
        summary.contains("chosen by auto: best of 4 on 3000 validation images of training images 50000..60000 (quantize.auto_validation)"),
        "{summary}"
    );
}

/// Trained models of the kinds above with other shapes (models/variants/, written by
/// scripts/make_variant_models.py), quantized with config.yaml's own settings, as a user's
/// model would be: the same float and int8 bounds.
fn check_variant(name: &str) {
    check_trained_from(
        &read_reference(&models_dir().join("variants/reference.json")),
        name,
    );
}

#[test]
fn variant_ds_cnn_narrow_5x5_and_stride_2_depthwise() {
    check_variant("ds_cnn_narrow");
}

#[test]
fn variant_mobilenet_relu_odd_widths() {
    check_variant("mobilenet_relu");
}

#[test]
fn variant_mobilenet_5x5_stride_2_depthwise() {
    check_variant("mobilenet_dw5");
}

#[test]
fn variant_resnet_with_a_projection_shortcut() {
    check_variant("resnet_projection");
}

#[test]
fn trained_qdq_files_keep_onnxruntime_int8_accuracy() {
    let reference = reference();
    for (name, entry) in reference["models"].as_object().unwrap() {
        let config = config_with(
            entry["mean"][0].as_f64().unwrap(),
            entry["std"][0].as_f64().unwrap(),
        );
        let path = repo().join(entry["int8_file"].as_str().unwrap());
        eprintln!("{name}");
        check_qdq(
            &path,
            &config,
            entry["int8"]["test_accuracy"].as_f64().unwrap(),
        );
    }
}

/// The PyTorch export's QDQ file (the shared ResNet-8's is checked through `qcnn-quantize` in
/// onnx_bad_inputs.rs, `every_shared_onnx_fixture_quantizes_with_no_model_section`).
#[test]
fn shared_torch_qdq_fixture_keeps_onnxruntime_int8_accuracy() {
    let config = Config::load(&repo_config()).unwrap();
    let name = "torch/model_int8.onnx";
    check_qdq(
        &repo().join("../shared/fixtures").join(name),
        &config,
        reference()["fixtures"][name]["int8_test_accuracy"]
            .as_f64()
            .unwrap(),
    );
}

/// A `.pth` runs as a version-1 layer chain, whose input is pixel/255: any other
/// normalization is refused, naming the config key, before anything is computed.
#[test]
fn a_checkpoint_refuses_a_normalized_input() {
    let config = config_with(0.5, 0.25);
    let data = data();
    let err =
        match qcnn_quantize::pipeline::quantize_checkpoint(&config, &config.checkpoint.path, &data)
        {
            Ok(_) => panic!("a .pth with preprocess mean 0.5 quantized"),
            Err(err) => err.to_string(),
        };
    assert!(
        err.contains("preprocess: mean [0.5] and std [0.25] need an ONNX model"),
        "{err}"
    );
}
