//! The float forward pass against PyTorch's own logits (../shared/fixtures/torch/golden_logits.json).

use std::path::{Path, PathBuf};

use qcnn_config::config::Config;
use qcnn_dataset::FashionMnist;
use qcnn_quantize::checkpoint::Checkpoint;
use qcnn_quantize::float_model::FloatModel;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check_against_golden(checkpoint: &Path, golden_name: &str) {
    let config = Config::load(&repo().join("config.yaml")).unwrap();
    let architecture = config.architecture().unwrap();
    let checkpoint = Checkpoint::read_checked(checkpoint, &architecture).unwrap();
    let model = FloatModel::new(&architecture, &checkpoint);
    let data = FashionMnist::load(&config.data.dirs).unwrap();

    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("../shared/fixtures/torch/golden_logits.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(golden["first_test_index"], 0);
    let expected = golden["models"][golden_name]["logits"].as_array().unwrap();
    assert_eq!(expected.len(), 64);

    let images: Vec<&[u8]> = (0..64).map(|i| data.test.image(i)).collect();
    let logits = model.forward_all(&images);
    let mut worst = 0.0f64;
    for (i, (got, want)) in logits.iter().zip(expected).enumerate() {
        let want = want.as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let diff = (f64::from(*g) - w.as_f64().unwrap()).abs();
            worst = worst.max(diff);
            assert!(diff < 1e-4, "image {i}: {got:?} vs {want:?}");
        }
        let argmax = golden["models"][golden_name]["argmax"][i].as_u64().unwrap() as usize;
        assert_eq!(qcnn_dataset::metrics::argmax(got), argmax, "image {i}");
    }
    // A single-image call takes the same path as a batch.
    assert_eq!(model.forward(data.test.image(5)), logits[5]);
    eprintln!("{golden_name}: worst |diff| {worst:e}");
}

#[test]
fn random_init_matches_pytorch() {
    check_against_golden(
        &repo().join("../shared/fixtures/torch/random_init.pth"),
        "random_init",
    );
}

#[test]
fn release_checkpoint_matches_pytorch() {
    let config = Config::load(&repo().join("config.yaml")).unwrap();
    check_against_golden(
        &config.checkpoint.path,
        "CNNModel_FashionMNIST_best_metric_model",
    );
}
