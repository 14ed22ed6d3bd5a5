//! ONNX import against models we did not write: the PyTorch export of the release checkpoint
//! (../shared/fixtures/torch/model.onnx) and the models of tests/onnx/, built with the `onnx`
//! package by scripts/make_onnx_test_models.py, whose golden logits are onnxruntime's.

mod common;

use std::path::Path;

use qcnn_config::config::Config;
use qcnn_config::model::LayerSpec;
use qcnn_dataset::FashionMnist;
use qcnn_quantize::float_model::FloatModel;
use qcnn_quantize::onnx::{self, Imported};
use qcnn_quantize::pipeline::quantize_checkpoint;

use common::{GOLDEN_IMAGES, assert_matches_golden, fixture, repo, repo_config, test_model};

/// The repository's config.yaml without its `model:` section, which ONNX input does not need.
fn config_without_model() -> Config {
    let text = std::fs::read_to_string(repo_config()).unwrap();
    let start = text
        .find("\nmodel:")
        .expect("config.yaml has a model section")
        + 1;
    let end = text
        .find("\ncheckpoint:")
        .expect("config.yaml has a checkpoint section")
        + 1;
    let text = format!("{}{}", &text[..start], &text[end..]);
    let config = Config::parse(&text, Path::new("no-model.yaml"), &repo()).unwrap();
    assert!(config.model.is_none());
    config
}

/// The imported float model's logits match onnxruntime's to 1e-4 (max abs) on 256 test images.
fn float_matches_onnxruntime(path: &Path, key: &str) -> Imported {
    let onnx::AnyImport::Sequential(imported) = onnx::import(path).unwrap() else {
        panic!(
            "{} imported as a graph, not a chain of layers",
            path.display()
        );
    };
    let model = FloatModel::new(&imported.architecture, &imported.checkpoint);
    let data = FashionMnist::load(&config_without_model().data.dirs).unwrap();
    let images: Vec<&[u8]> = (0..GOLDEN_IMAGES).map(|i| data.test.image(i)).collect();
    assert_matches_golden(key, &model.forward_all(&images));
    imported
}

#[test]
fn pytorch_export_matches_onnxruntime() {
    let imported = float_matches_onnxruntime(&fixture("model.onnx"), "torch/model.onnx");
    assert_eq!(imported.report.opset, 17);
    assert!(imported.report.folded.is_empty() && imported.report.dropped.is_empty());
    // The release architecture, without the Dropout layers the export leaves out.
    let from_config = Config::load(&repo_config()).unwrap().model.unwrap().layers;
    let without_dropout: Vec<LayerSpec> = from_config
        .into_iter()
        .filter(|l| *l != LayerSpec::Dropout)
        .collect();
    assert_eq!(imported.model.layers, without_dropout);
}

#[test]
fn batchnorm_model_matches_onnxruntime() {
    let imported = float_matches_onnxruntime(&test_model("batchnorm.onnx"), "batchnorm.onnx");
    let r = &imported.report;
    assert_eq!(
        r.folded,
        [
            "BatchNormalization /bn1/BatchNormalization into Conv /conv1/Conv",
            "BatchNormalization /bn2/BatchNormalization into Conv /conv2/Conv",
            "BatchNormalization /bn3/BatchNormalization into Gemm /fc1/Gemm",
        ]
    );
    assert_eq!(r.dropped.len(), 1, "{:?}", r.dropped);
    assert!(r.dropped[0].starts_with("Dropout /dropout/Dropout"));
    assert!(!r.softmax_dropped());
    // Folded: three Conv2d and two Linear hold every parameter; nothing else has any.
    assert_eq!(imported.checkpoint.tensors.len(), 2 * 5);
}

#[test]
fn matmul_model_matches_onnxruntime() {
    let imported = float_matches_onnxruntime(&test_model("matmul.onnx"), "matmul.onnx");
    let r = &imported.report;
    assert_eq!(r.opset, 13);
    assert_eq!(
        r.folded,
        [
            "Add /fc1/Add into the bias of MatMul /fc1/MatMul",
            "Add /fc2/Add into the bias of MatMul /fc2/MatMul",
        ]
    );
    assert!(r.softmax_dropped(), "{:?}", r.dropped);
    assert_eq!(
        r.moved,
        [
            "Relu /relu1/Relu before MaxPool /pool1/MaxPool (the same result: max commutes with ReLU)"
        ]
    );
    let kinds = qcnn_config::architecture::layer_names(&imported.model.layers);
    assert_eq!(
        kinds,
        [
            "conv2d",
            "relu",
            "maxpool2d",
            "conv2d",
            "relu",
            "flatten",
            "linear",
            "relu",
            "linear"
        ]
    );
}

/// The PyTorch export and the checkpoint it came from quantize to the same bytes with the same
/// config, so their int8 logits are identical on every image.
#[test]
fn pytorch_export_quantizes_to_the_checkpoints_blob() {
    let with_model = Config::load(&repo_config()).unwrap();
    let data = FashionMnist::load(&with_model.data.dirs).unwrap();
    let from_checkpoint =
        quantize_checkpoint(&with_model, &with_model.checkpoint.path, &data).unwrap();
    let from_onnx =
        quantize_checkpoint(&config_without_model(), &fixture("model.onnx"), &data).unwrap();
    assert!(from_checkpoint.report.onnx.is_none());
    assert_eq!(from_onnx.report.onnx.as_ref().unwrap().opset, 17);
    assert_eq!(
        from_onnx.report.blob.sha256,
        from_checkpoint.report.blob.sha256
    );
    assert!(from_onnx.blob == from_checkpoint.blob);
    assert_eq!(
        from_onnx.report.validation.int8,
        from_checkpoint.report.validation.int8
    );
}

/// The random-weight test models quantize end to end; their int8 blob runs in the engine and
/// agrees with the float model on most validation images.
#[test]
fn test_models_quantize_with_no_model_section() {
    let config = config_without_model();
    let data = FashionMnist::load(&config.data.dirs).unwrap();
    for name in ["batchnorm.onnx", "matmul.onnx"] {
        let quantized = quantize_checkpoint(&config, &test_model(name), &data).unwrap();
        let v = &quantized.report.validation;
        assert_eq!(quantized.report.model, name.trim_end_matches(".onnx"));
        assert!(
            v.agreement > 0.9,
            "{name}: float/int8 agreement {}",
            v.agreement
        );
        assert!(quantized.report.summary().contains("onnx        opset"));
    }
}

/// A config without a model section still serves ONNX, and names itself when a checkpoint
/// needs the section.
#[test]
fn a_checkpoint_needs_the_model_section() {
    let config = config_without_model();
    let data = FashionMnist::load(&config.data.dirs).unwrap();
    let err = quantize_checkpoint(&config, &fixture("random_init.pth"), &data)
        .err()
        .unwrap();
    let message = format!("{:#}", anyhow::Error::from(err));
    assert!(
        message.starts_with("no-model.yaml: model: missing; a PyTorch checkpoint needs"),
        "{message}"
    );
}
