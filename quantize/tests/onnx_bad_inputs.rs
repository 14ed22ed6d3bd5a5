//! `qcnn-quantize MODEL.onnx`: a config without a model section serves, and every ONNX file it
//! cannot run is named on stderr (the node, its operator and why), exits 1 (not a panic's 101)
//! and leaves no output file. These back the ONNX table of docs/bad-inputs.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn test_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/onnx")
        .join(name)
}

/// The repository's config.yaml without its `model:` section, its paths made absolute, in `dir`.
fn config_without_model(dir: &Path) -> PathBuf {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("config.yaml")).unwrap();
    let start = text.find("\nmodel:").unwrap() + 1;
    let end = text.find("\ncheckpoint:").unwrap() + 1;
    let text = format!("{}{}", &text[..start], &text[end..])
        .replace(
            "path: checkpoints/",
            &format!("path: {}/checkpoints/", root.display()),
        )
        .replace(
            "- data/FashionMNIST/raw",
            &format!("- {}/data/FashionMNIST/raw", root.display()),
        );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn quantize(model: &Path, dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qcnn-quantize"))
        .arg(model)
        .arg("-o")
        .arg(dir.join("model.qcnn"))
        .arg("--config")
        .arg(config_without_model(dir))
        .args(extra)
        .output()
        .expect("running qcnn-quantize")
}

/// Runs on `model` and asserts a clean failure whose stderr holds `expected`.
fn fails(model: &Path, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let output = quantize(model, dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let prefix = format!("qcnn-quantize: error: quantizing {0}: ", model.display());
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert!(
        stderr.contains(expected),
        "stderr lacks {expected:?}: {stderr}"
    );
    assert!(
        !dir.path().join("model.qcnn").exists(),
        "no model is written on failure"
    );
}

fn written(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn onnx_with_no_model_section_writes_blob_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let output = quantize(
        &test_model("matmul.onnx"),
        dir.path(),
        &["--report", report.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("dropped Softmax /Softmax"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["model"], "matmul");
    assert_eq!(report["onnx"]["opset"], 13);
    assert_eq!(report["onnx"]["folded"].as_array().unwrap().len(), 2);
    let blob = std::fs::read(dir.path().join("model.qcnn")).unwrap();
    assert_eq!(report["blob"]["bytes"], blob.len());
}

#[test]
fn truncated_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(repo_root().join("../shared/fixtures/torch/model.onnx")).unwrap();
    let path = written(dir.path(), "truncated.onnx", &whole[..1000]);
    fails(
        &path,
        &format!(
            "{}: not an ONNX model (protobuf decoding failed): failed to decode Protobuf \
             message: ModelProto.graph: buffer underflow",
            path.display()
        ),
    );
}

#[test]
fn onnx_that_is_not_protobuf() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path(), "notes.onnx", b"this is not an ONNX model\n");
    fails(
        &path,
        &format!(
            "{}: not an ONNX model (protobuf decoding failed)",
            path.display()
        ),
    );
    // An empty file is a valid, empty protobuf message: it holds no graph.
    let empty = written(dir.path(), "empty.onnx", b"");
    fails(
        &empty,
        &format!("{}: not an ONNX model: it holds no graph", empty.display()),
    );
}

#[test]
fn onnx_with_two_inputs() {
    fails(
        &test_model("bad_two_inputs.onnx"),
        "the graph has 2 inputs [\"input\", \"second\"]; qcnn runs models with one image input",
    );
}

#[test]
fn onnx_with_an_unknown_operator() {
    fails(
        &test_model("bad_unknown_op.onnx"),
        "node /act/Tanh (Tanh): operator Tanh is not supported; qcnn imports Conv, \
         BatchNormalization, Relu, Clip",
    );
    fails(
        &test_model("bad_custom_domain.onnx"),
        "node /act/Gelu (Gelu): operator of domain com.example is not supported",
    );
}

#[test]
fn onnx_with_a_nan_initializer() {
    fails(
        &test_model("bad_nan_initializer.onnx"),
        "initializer conv.weight: shape [2, 1, 3, 3] holds NaN at flat index 13",
    );
}

#[test]
fn onnx_with_an_old_opset() {
    fails(
        &test_model("bad_opset_11.onnx"),
        "opset 11 of the default domain is not supported; qcnn reads opset 13 to 18",
    );
}

/// QDQ patterns that do not map onto qcnn's int8 scheme (one scale and zero point per
/// activation tensor, float operators between QuantizeLinear and DequantizeLinear).
#[test]
fn qdq_patterns_qcnn_does_not_map_are_named() {
    fails(
        &test_model("bad_qdq_per_channel_activation.onnx"),
        "node /act_QuantizeLinear (QuantizeLinear): quantizes an activation per channel (2 \
         scales); qcnn's activations have one scale and zero point per tensor",
    );
    fails(
        &test_model("bad_qdq_requantize.onnx"),
        "node /act_DequantizeLinear (DequantizeLinear): dequantizes with scale 0.1 and zero \
         point -128, its QuantizeLinear with 0.05 and -128; requantizing between the two is not \
         supported",
    );
    fails(
        &test_model("bad_qoperator.onnx"),
        "node /qconv/QLinearConv (QLinearConv): QLinearConv is a QOperator-format integer \
         operator; qcnn reads QDQ models",
    );
}

/// Grouped convolution, average pooling and asymmetric pads, which the layer chain refused
/// (session 4's bad models), now run as graphs: a graph blob (version 4) is written.
#[test]
fn operators_the_chain_refused_run_as_graphs() {
    for name in [
        "bad_group.onnx",
        "bad_average_pool.onnx",
        "bad_asymmetric_pads.onnx",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = quantize(&test_model(name), dir.path(), &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{name}: {stderr}");
        let blob = std::fs::read(dir.path().join("model.qcnn")).unwrap();
        assert_eq!(
            blob[4..6],
            qcnn_core::graph::GRAPH_VERSION.to_le_bytes(),
            "{name}: a graph blob (format version 4)"
        );
    }
}

/// Every file of ../shared/fixtures/onnx (the float ResNet-8 and onnxruntime's QDQ int8 form
/// of it) quantizes with no model section; the report lists the graph and the arena its
/// planner laid out, and the blob's int8 accuracy on the 10,000 test images is within 0.2
/// points of onnxruntime's int8 and 0.5 of its float (resnet8_reference.json).
#[test]
fn every_shared_onnx_fixture_quantizes_with_no_model_section() {
    let fixtures = repo_root().join("../shared/fixtures/onnx");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("resnet8_reference.json")).unwrap(),
    )
    .unwrap();
    let ort_float = reference["onnxruntime_float"]["accuracy"].as_f64().unwrap();
    let ort_int8 = reference["onnxruntime_int8"]["accuracy"].as_f64().unwrap();
    let config = qcnn_config::config::Config::load(&repo_root().join("config.yaml")).unwrap();
    let data = qcnn_dataset::FashionMnist::load(&config.data.dirs).unwrap();
    let test_images = qcnn_quantize::validate::images(&data.test);

    let mut models: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    models.sort();
    assert_eq!(models.len(), 2, "{models:?}");
    for model in models {
        let name = model.file_name().unwrap().to_string_lossy().into_owned();
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.json");
        let output = quantize(&model, dir.path(), &["--report", report.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{name}: {stderr}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let graph = &report["graph"];
        let nodes = graph["nodes"].as_array().unwrap();
        // 9 Conv (3 with their residual Add fused in), GlobalAveragePool, Gemm.
        assert_eq!(nodes.len(), 11, "{name}");
        // The QDQ file's activations keep its own quantization (pools keep their input's).
        let qdq = name.contains("int8");
        for node in nodes {
            let pool = node["op"].as_str().unwrap().contains("pool");
            let expected = match (pool, qdq) {
                (true, _) => "kept_from_input",
                (false, true) => "file",
                (false, false) => "calibrated",
            };
            assert_eq!(node["quant_source"], expected, "{name}: {node}");
        }
        let arena = graph["arena_bytes"].as_u64().unwrap();
        // The host's arena: the planned tensors, then the in-place nodes' staging.
        let staging = report["plan"]["portable"]["staging_bytes"]
            .as_u64()
            .unwrap();
        assert_eq!(
            report["blob"]["arena_bytes"].as_u64(),
            Some(arena + staging)
        );
        assert!(arena >= graph["live_peak_bytes"].as_u64().unwrap());
        assert!(arena < graph["ping_pong_bytes"].as_u64().unwrap());
        assert_eq!(report["blob"]["macs"].as_u64(), Some(9_345_920));

        let blob = std::fs::read(dir.path().join("model.qcnn")).unwrap();
        let engine =
            qcnn_core::PreparedModel::new(qcnn_core::Model::from_bytes(&blob).unwrap()).unwrap();
        let logits = qcnn_quantize::validate::int8_logits(&engine, &test_images).unwrap();
        let accuracy = qcnn_quantize::validate::int8_scores(&logits, data.test.labels()).accuracy;
        eprintln!(
            "{name}: int8 test accuracy {accuracy:.4} (onnxruntime int8 {ort_int8}, float \
             {ort_float}); arena {arena} B"
        );
        assert!(accuracy >= ort_int8 - 0.002, "{name}: {accuracy}");
        assert!(accuracy >= ort_float - 0.005, "{name}: {accuracy}");
    }
}
