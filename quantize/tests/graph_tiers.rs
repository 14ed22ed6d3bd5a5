//! The graph models on every kernel tier: ResNet-8 (../shared/fixtures/onnx), the DS-CNN and
//! the MobileNet (models/), imported from their QDQ files (the file's own scales; a short
//! calibration for the rest), then run on the first 1,000 FashionMNIST test images by the
//! prepared model of every tier this CPU supports (the host's per-node kernels), whose logits
//! must equal `Model::infer`'s (the portable graph kernels) bit for bit, as must the same
//! graph planned with every node out of place. Tiers the CPU lacks are printed as skipped;
//! the CPU's best tier must have run.

mod common;

use qcnn_config::config::Config;
use qcnn_core::{KernelTier, Model, PreparedModel};
use qcnn_dataset::FashionMnist;
use qcnn_quantize::graph::export::{InPlace, export_graph, export_graph_with};
use qcnn_quantize::onnx;

use common::{repo, repo_config};

const IMAGES: usize = 1000;

#[test]
fn graph_models_give_the_portable_logits_on_every_tier() {
    let config = Config::load(&repo_config()).unwrap();
    let data = FashionMnist::load(&config.data.dirs).unwrap();
    let calibration: Vec<&[u8]> = (0..100).map(|i| data.train.image(i)).collect();
    let images = data.test.images(0..IMAGES);
    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    for path in [
        "../shared/fixtures/onnx/resnet8_fmnist_int8.onnx",
        "models/ds_cnn_int8.onnx",
        "models/mobilenet_int8.onnx",
    ] {
        let (graph, _) = onnx::import_graph(&repo().join(path)).unwrap();
        let exported = export_graph(&graph, &calibration, &config.quantize).unwrap();
        let blob = exported.blob;
        let model = Model::from_bytes(&blob).unwrap();
        assert!(model.graph().is_some(), "{path}");
        let classes = model.num_classes();
        let portable_logits = |model: &Model<'_>| {
            let mut logits = Vec::with_capacity(IMAGES * classes);
            let mut arena = vec![0_u8; model.arena_len()];
            for image in images.chunks(model.input_len()) {
                logits.extend_from_slice(model.infer(image, &mut arena).unwrap().as_slice());
            }
            logits
        };
        let expected = portable_logits(&model);
        // The same graph with every node out of place (issue 12's plan before its in-place
        // nodes) gives the same logits; the DS-CNN and the MobileNet run nodes in place, in a
        // smaller arena.
        let apart =
            export_graph_with(&graph, &calibration, &config.quantize, InPlace::Never).unwrap();
        assert!(apart.report.nodes.iter().all(|n| !n.in_place), "{path}");
        let apart_model = Model::from_bytes(&apart.blob).unwrap();
        assert!(
            portable_logits(&apart_model) == expected,
            "{path}: in place vs apart"
        );
        if !path.contains("resnet8") {
            assert!(exported.report.nodes.iter().any(|n| n.in_place), "{path}");
            assert!(
                exported.report.arena_bytes < apart.report.arena_bytes,
                "{path}"
            );
        }
        eprintln!(
            "{path}: arena {} B in place, {} B apart",
            exported.report.arena_bytes, apart.report.arena_bytes
        );
        for tier in KernelTier::ALL {
            if !tier.is_supported() {
                skipped.push(format!("{path} {tier}"));
                continue;
            }
            let prepared = PreparedModel::with_tier(model.clone(), tier).unwrap();
            let mut arena = vec![0x5A_u8; prepared.batch_arena_len(16).unwrap()];
            let mut got = vec![0_i8; IMAGES * classes];
            let batches = images.chunks(16 * model.input_len());
            for (batch, logits) in batches.zip(got.chunks_mut(16 * classes)) {
                prepared.infer_batch(batch, &mut arena, logits).unwrap();
            }
            if let Some(i) = (0..IMAGES)
                .find(|&i| got[i * classes..][..classes] != expected[i * classes..][..classes])
            {
                panic!(
                    "{path}, tier {tier}: image {i} gives {:?}, the portable kernels {:?}",
                    &got[i * classes..][..classes],
                    &expected[i * classes..][..classes]
                );
            }
            ran.push(format!("{path} {tier}"));
        }
        // The logits vary, so the comparison covered real work.
        let distinct: std::collections::HashSet<&[i8]> = expected.chunks(classes).collect();
        assert!(
            distinct.len() > IMAGES / 2,
            "{path}: {} distinct",
            distinct.len()
        );
    }
    println!(
        "graph models on {IMAGES} test images: ran {}; skipped (not this CPU): {}",
        ran.join(", "),
        skipped.join(", ")
    );
    let best = KernelTier::best();
    assert!(
        ran.iter().any(|r| r.ends_with(&format!(" {best}"))),
        "{best} did not run"
    );
}
