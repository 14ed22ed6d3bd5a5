//! A second, differently shaped CNN quantizes and runs with only a config change: strided 5×5
//! conv, a pool fused into a conv and a standalone one, three Linear layers. Its checkpoint is
//! made here, as a PyTorch-style random init written to safetensors.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;

use common::*;
use qcnn_config::config::Config;
use qcnn_dataset::FashionMnist;
use qcnn_dataset::metrics::argmax;
use qcnn_dataset::rng::SplitMix64;
use qcnn_quantize::checkpoint::{Checkpoint, Tensor};
use qcnn_quantize::float_model::FloatModel;

const LAYERS: &str = "
    - conv2d: { in: 1, out: 6, kernel: 5, stride: 2, padding: 2 }
    - relu
    - maxpool2d: { kernel: 2 }
    - maxpool2d: { kernel: 3, stride: 2 }
    - dropout
    - conv2d: { in: 6, out: 12, kernel: 3, padding: 1 }
    - relu
    - flatten
    - linear: { in: 108, out: 64 }
    - relu
    - dropout
    - linear: { in: 64, out: 32 }
    - relu
    - linear: { in: 32, out: 10 }";

/// The repository config with the model's layer list and name replaced, data dirs made absolute.
fn config_text() -> String {
    let repo_text = std::fs::read_to_string(repo_config()).unwrap();
    let start = repo_text.find("  layers:\n").unwrap();
    let end = repo_text.find("\ncheckpoint:").unwrap();
    let data_dir = repo().join("data/FashionMNIST/raw");
    format!(
        "{}  layers:{LAYERS}\n{}",
        &repo_text[..start],
        &repo_text[end..]
    )
    .replace("name: CNNModel_FashionMNIST", "name: SecondCNN")
    .replace(
        "- data/FashionMNIST/raw",
        &format!("- {}", data_dir.display()),
    )
}

/// PyTorch's default init, uniform in ±1/sqrt(fan_in), from a fixed SplitMix64 stream.
fn random_checkpoint(config: &Config) -> BTreeMap<String, Tensor> {
    let mut rng = SplitMix64::new(0x005E_C04D);
    let mut uniform = move || (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0;
    let mut tensors = BTreeMap::new();
    let parameters = config.architecture().unwrap().parameters();
    for pair in parameters.chunks(2) {
        let fan_in: usize = pair[0].shape[1..].iter().product();
        let bound = 1.0 / (fan_in as f32).sqrt();
        for p in pair {
            let n = p.shape.iter().product();
            let data = (0..n).map(|_| uniform() * bound).collect();
            tensors.insert(
                p.key.clone(),
                Tensor {
                    shape: p.shape.clone(),
                    data,
                },
            );
        }
    }
    tensors
}

#[test]
fn second_model_quantizes_and_runs_in_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("second.yaml");
    std::fs::write(&config_path, config_text()).unwrap();
    let config = Config::load(&config_path).unwrap();
    let checkpoint_path = dir.path().join("second.safetensors");
    write_safetensors(&checkpoint_path, &random_checkpoint(&config));

    let blob_path = dir.path().join("second.qcnn");
    let output = quantize_cli(&[
        checkpoint_path.as_os_str(),
        OsStr::new("-o"),
        blob_path.as_os_str(),
        OsStr::new("--config"),
        config_path.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("SecondCNN"), "{stdout}");
    assert!(
        stdout.contains("conv2d+relu+maxpool2d") && stdout.contains("\n            maxpool2d "),
        "{stdout}"
    );

    let blob = std::fs::read(&blob_path).unwrap();
    let model = qcnn_core::Model::from_bytes(&blob).unwrap();
    // conv2d+relu+maxpool2d, maxpool2d, conv2d+relu, flatten, linear+relu ×2, linear.
    assert_eq!(model.layers().len(), 7);
    let architecture = config.architecture().unwrap();
    let float = FloatModel::new(
        &architecture,
        &Checkpoint::read_checked(&checkpoint_path, &architecture).unwrap(),
    );

    let data = FashionMnist::load(&config.data.dirs).unwrap();
    let mut arena = vec![0u8; model.arena_len()];
    let (mut agree, mut error2, mut signal2) = (0, 0.0f64, 0.0f64);
    let n = 500;
    for i in 0..n {
        let image = data.test.image(i);
        let reference = float.forward(image);
        let logits = model.infer(image, &mut arena).unwrap();
        let dequantized: Vec<f32> = (0..10).map(|c| logits.dequantize(c).unwrap()).collect();
        agree += usize::from(argmax(&reference) == logits.argmax());
        for (q, f) in dequantized.iter().zip(&reference) {
            error2 += f64::from(q - f).powi(2);
            signal2 += f64::from(*f).powi(2);
        }
    }
    let relative_rms = (error2 / signal2).sqrt();
    eprintln!("second model: argmax agreement {agree}/{n}, relative RMS error {relative_rms:.4}");
    assert!(relative_rms < 0.05, "{relative_rms}");
    assert!(agree * 100 >= n * 90, "{agree}/{n}");
}
