//! Graph models (format version 4) from ONNX: the shared ResNet-8 and the random-weight
//! graphs of tests/onnx/ (scripts/make_onnx_test_models.py: every graph operator, a DS-CNN
//! and a MobileNet style model, odd sizes). The float reference must match onnxruntime's
//! logits to 1e-4 on 256 test images; the blob must load, and its int8 engine must agree with
//! the float model.

mod common;

use std::path::{Path, PathBuf};

use qcnn_config::config::Config;
use qcnn_core::{Kernels, Model};
use qcnn_dataset::FashionMnist;
use qcnn_quantize::graph::FloatGraph;
use qcnn_quantize::graph::export::{GraphReport, export_graph};
use qcnn_quantize::onnx::{self, AnyImport};
use qcnn_quantize::plan::Plans;

use common::{GOLDEN_IMAGES, assert_matches_golden, repo, repo_config, test_model};

fn resnet8() -> PathBuf {
    repo().join("../shared/fixtures/onnx/resnet8_fmnist.onnx")
}

fn data() -> FashionMnist {
    let config = Config::load(&repo_config()).unwrap();
    FashionMnist::load(&config.data.dirs).unwrap()
}

fn graph_of(path: &Path) -> (FloatGraph, onnx::ImportReport) {
    match onnx::import(path).unwrap() {
        AnyImport::Graph(graph, report) => (graph, report),
        AnyImport::Sequential(_) => panic!("{} imported as a chain", path.display()),
    }
}

/// The float graph's logits match onnxruntime's to 1e-4 (max abs) on 256 test images; then
/// the int8 blob (calibrated on training images) loads and agrees with the float model.
fn check(path: &Path, key: &str, min_agreement: f64) -> (FloatGraph, GraphReport) {
    let (graph, _) = graph_of(path);
    let data = data();
    let images: Vec<&[u8]> = (0..GOLDEN_IMAGES).map(|i| data.test.image(i)).collect();
    let logits = graph.forward_all(&images);
    assert_matches_golden(key, &logits);

    let config = Config::load(&repo_config()).unwrap();
    let calibration: Vec<&[u8]> = (0..500).map(|i| data.train.image(i)).collect();
    let exported = export_graph(&graph, &calibration, &config.quantize).unwrap();
    let model = Model::from_bytes(&exported.blob).unwrap();
    assert!(model.graph().is_some());
    // The planned tensors, then the in-place nodes' staging (the portable kernels need no
    // other scratch).
    assert_eq!(
        model.arena_len(),
        exported.report.arena_bytes + Plans::of(&model).portable.staging_bytes
    );
    assert!(exported.report.arena_bytes >= exported.report.live_peak_bytes);
    // No order of the nodes needs more than the file's, with every node out of place.
    let best_order = exported.report.best_order_live_peak_bytes.unwrap();
    assert!(best_order <= exported.report.out_of_place_live_peak_bytes);
    let mut arena = vec![0_u8; model.arena_len()];
    let mut same = 0;
    for (image, float) in images.iter().zip(&logits) {
        let int8 = model.infer(image, &mut arena).unwrap();
        let argmax = float
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
            .0;
        same += usize::from(int8.argmax() == argmax);
    }
    let agreement = same as f64 / images.len() as f64;
    eprintln!(
        "{key}: int8/float agreement {agreement:.4}, arena {} (live peak {}, ping-pong {}, no reuse {}; \
         out of place: live peak {}, best order's {best_order})",
        exported.report.arena_bytes,
        exported.report.live_peak_bytes,
        exported.report.ping_pong_bytes,
        exported.report.no_reuse_bytes,
        exported.report.out_of_place_live_peak_bytes
    );
    assert!(agreement >= min_agreement, "{key}: agreement {agreement}");
    (graph, exported.report)
}

#[test]
fn resnet8_float_matches_onnxruntime_and_int8_agrees() {
    let (graph, report) = check(&resnet8(), "onnx/resnet8_fmnist.onnx", 0.97);
    // 3 stem/residual convs per block ×3, 2 downsample convs, the stem, 3 Adds, the pool, fc.
    let ops: Vec<String> = graph.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(
        ops.iter().filter(|o| o.starts_with("add+relu")).count(),
        3,
        "{ops:?}"
    );
    assert_eq!(
        ops.iter().filter(|o| o.starts_with("conv")).count(),
        9,
        "{ops:?}"
    );
    assert_eq!(ops.len(), 9 + 3 + 2, "{ops:?}");
    assert_eq!(ops.last().map(String::as_str), Some("gemm"));
    // In the blob each Add is fused into the last conv before it, written over the residual:
    // two 16×28×28 maps alive in the first block instead of three.
    let fused: Vec<&str> = report
        .nodes
        .iter()
        .map(|n| n.op.as_str())
        .filter(|op| op.contains("+add"))
        .collect();
    assert_eq!(
        fused,
        [
            "conv3x3/1+add+relu",
            "conv1x1/2+add+relu",
            "conv1x1/2+add+relu"
        ]
    );
    assert_eq!(report.nodes.len(), 11);
    assert_eq!(report.arena_bytes, 2 * 16 * 28 * 28);
    assert_eq!(report.live_peak_bytes, report.arena_bytes);
}

#[test]
fn every_graph_operator_matches_onnxruntime() {
    let (_, report) = graph_of(&test_model("graph_ops.onnx"));
    // bn1 folds into the Conv before it; bn2 follows a fused Add+Relu, so it becomes an op.
    assert_eq!(
        report.folded,
        ["BatchNormalization /bn1/BatchNormalization into Conv /c1/Conv"]
    );
    let (graph, _) = check(&test_model("graph_ops.onnx"), "graph_ops.onnx", 0.9);
    let ops: Vec<String> = graph.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(
        ops,
        [
            "conv3x5/2+relu6",
            "conv3x3/2 groups 6+relu",
            "conv1x1/1 groups 3",
            "maxpool3x3",
            "avgpool3x3",
            "avgpool2x3",
            "add+relu",
            "conv1x1/1 groups 9",
            "globalavgpool",
            "gemm"
        ]
    );
}

#[test]
fn ds_cnn_style_model_matches_onnxruntime() {
    check(&test_model("ds_cnn.onnx"), "ds_cnn.onnx", 0.9);
}

#[test]
fn mobilenet_style_model_matches_onnxruntime() {
    check(&test_model("mobilenet.onnx"), "mobilenet.onnx", 0.9);
}

/// The report's staging figure is what each target's loader adds for its in-place nodes: on
/// the Cortex-M4 the trained MobileNet's in-place nodes (pointwise, and depthwise over whole
/// planes) run over their own input and stage nothing (session 10); the portable kernels
/// stage every node in place. Pinned for that model.
#[test]
fn in_place_staging_is_what_each_target_loads() {
    let (graph, _) = onnx::import_graph(&repo().join("models/mobilenet.onnx")).unwrap();
    let data = data();
    let config = Config::load(&repo_config()).unwrap();
    let calibration: Vec<&[u8]> = (0..100).map(|i| data.train.image(i)).collect();
    let exported = export_graph(&graph, &calibration, &config.quantize).unwrap();
    let model = Model::from_bytes(&exported.blob).unwrap();
    let plans = Plans::of(&model);
    let (m4, portable) = (plans.cortex_m4.staging_bytes, plans.portable.staging_bytes);
    eprintln!(
        "mobilenet: arena {} B, staging {m4} B on the M4, {portable} B portable; M4 arena + scratch {}",
        exported.report.arena_bytes,
        model.arena_len_for(Kernels::CortexM4Dsp)
    );
    assert!(exported.report.nodes.iter().any(|n| n.in_place));
    // Before, the report gave 384 B for the plan whatever the target.
    assert_eq!((m4, portable), (0, 384));
    assert!(m4 < portable);
    // The portable kernels take no scratch of their own: the arena is the tensors and the
    // staging. The M4's kernels take their own besides.
    assert_eq!(
        model.arena_len_for(Kernels::Portable),
        exported.report.arena_bytes + portable
    );
    assert!(model.arena_len_for(Kernels::CortexM4Dsp) >= exported.report.arena_bytes + m4);
}
