//! The `.pth` + `config.yaml` path with the sequential ops beyond the seed model's
//! (batchnorm2d, conv2d groups, avgpool2d, adaptiveavgpool2d: 1, relu6), on the checkpoints
//! of tests/pth/ (scripts/make_pth_test_models.py writes each as torch.save does, and the same
//! network as ONNX for onnxruntime's golden logits). The float reference must match
//! onnxruntime to 1e-4 on 256 test images; the blob is a graph (version 2) where the chain
//! cannot express the model and a chain (version 1) where BatchNorm2d only folds.

mod common;

use std::path::{Path, PathBuf};

use approx::assert_abs_diff_eq;
use qcnn_config::config::Config;
use qcnn_dataset::FashionMnist;
use qcnn_quantize::checkpoint::Checkpoint;
use qcnn_quantize::pipeline::quantize_checkpoint;
use qcnn_quantize::sequential::{Sequential, prepare};

fn test_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pth")
        .join(name)
}

fn golden(key: &str) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(test_file("golden_logits.json")).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(golden["models"][key].clone())
        .unwrap_or_else(|e| panic!("golden logits for {key}: {e}"))
}

/// The float reference against onnxruntime, then the whole quantization; returns the blob's
/// format version and the validation agreement of int8 with float.
fn check(name: &str) -> (u16, f64) {
    let config = Config::load(&test_file(&format!("{name}.yaml"))).unwrap();
    let architecture = config.architecture().unwrap();
    let checkpoint = Checkpoint::read_checked(&config.checkpoint.path, &architecture).unwrap();
    let data = FashionMnist::load(&config.data.dirs).unwrap();
    let expected = golden(&format!("{name}.pth"));
    assert_eq!(expected.len(), 256);
    let images: Vec<&[u8]> = (0..expected.len()).map(|i| data.test.image(i)).collect();
    let logits = match prepare(&architecture, &checkpoint, name).unwrap() {
        Sequential::Chain(chain, folded) => {
            qcnn_quantize::float_model::FloatModel::new(&chain, &folded).forward_all(&images)
        }
        Sequential::Graph(graph) => graph.forward_all(&images),
    };
    for (got, want) in logits.iter().zip(&expected) {
        let got: Vec<f64> = got.iter().map(|&v| f64::from(v)).collect();
        assert_abs_diff_eq!(got.as_slice(), want.as_slice(), epsilon = 1e-4);
    }

    let quantized = quantize_checkpoint(&config, &config.checkpoint.path, &data).unwrap();
    let version = u16::from_le_bytes([quantized.blob[4], quantized.blob[5]]);
    (version, quantized.report.validation.agreement)
}

#[test]
fn grouped_pooled_relu6_model_becomes_a_graph() {
    let (version, agreement) = check("pth_graph_ops");
    assert_eq!(version, qcnn_core::format::GRAPH_VERSION);
    assert!(agreement > 0.9, "int8/float agreement {agreement}");
}

#[test]
fn batchnorm_after_conv_folds_into_a_chain() {
    let (version, agreement) = check("pth_folded_chain");
    assert_eq!(version, qcnn_core::format::VERSION);
    assert!(agreement > 0.9, "int8/float agreement {agreement}");
}
