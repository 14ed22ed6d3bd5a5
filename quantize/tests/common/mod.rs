//! Helpers shared by the integration tests.
#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qcnn_quantize::checkpoint::{Checkpoint, Tensor};

/// A FIFO at `path`: a file a reader would block on forever.
pub fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn repo_config() -> PathBuf {
    repo().join("config.yaml")
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("../shared/fixtures/torch").join(name)
}

/// Writes `tensors` as a safetensors file, the format PyTorch users export with
/// `safetensors.torch.save_file`.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Tensor>) {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(name, data, shape)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

pub fn random_init_tensors() -> BTreeMap<String, Tensor> {
    Checkpoint::read(&fixture("random_init.safetensors"))
        .unwrap()
        .tensors
}

/// The `qcnn-quantize` binary under test: this build's, or the one in `$QCNN_TEST_BIN_DIR`,
/// which runs these tests against another build (e.g. an older release).
pub fn quantize_binary() -> PathBuf {
    match std::env::var_os("QCNN_TEST_BIN_DIR") {
        Some(dir) => Path::new(&dir).join("qcnn-quantize"),
        None => PathBuf::from(env!("CARGO_BIN_EXE_qcnn-quantize")),
    }
}

/// Runs the real `qcnn-quantize` binary.
pub fn quantize_cli(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(quantize_binary())
        .args(args)
        .output()
        .unwrap()
}

/// Files in `dir`, to check that a failed run left nothing behind.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `command` as the user `nobody` when the tests run as root, who ignores file modes.
pub fn unprivileged(command: std::process::Command) -> std::process::Command {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        return command;
    }
    let mut wrapped = std::process::Command::new("runuser");
    wrapped
        .args(["-u", "nobody", "--"])
        .arg(command.get_program())
        .args(command.get_args());
    wrapped
}

/// One of the ONNX test models (`quantize/tests/onnx/`), or their golden logits file.
pub fn test_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/onnx")
        .join(name)
}

/// Test images 0..256 have golden logits.
pub const GOLDEN_IMAGES: usize = 256;

/// `logits` (of test images 0..256) match onnxruntime's for `key` to 1e-4 (max abs); prints
/// the worst difference.
pub fn assert_matches_golden(key: &str, logits: &[Vec<f32>]) {
    let expected = golden(key);
    assert_eq!(expected.len(), GOLDEN_IMAGES);
    assert_eq!(logits.len(), expected.len());
    let mut worst = 0.0f64;
    for (i, (got, want)) in logits.iter().zip(&expected).enumerate() {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let diff = (f64::from(*g) - w).abs();
            worst = worst.max(diff);
            assert!(diff <= 1e-4, "{key}, image {i}: {got:?} vs {want:?}");
        }
    }
    eprintln!("{key}: worst |float - onnxruntime| over 256 images {worst:e}");
}

/// onnxruntime's float logits of test images 0..256 for `key`.
pub fn golden(key: &str) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(test_model("golden_logits.json")).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(golden["first_test_index"], 0);
    golden["models"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no golden logits for {key}"))
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}
