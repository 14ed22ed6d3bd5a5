//! Bad inputs to the `qcnn-quantize` binary: each one is named on stderr, exits 1 (not a
//! panic's 101), and leaves no output file behind. These back docs/bad-inputs.md.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::{Dtype, tensor::TensorView};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/torch");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// What a failed run printed.
struct Failure {
    stderr: String,
}

/// Runs `qcnn-quantize CHECKPOINT -o OUT [extra]` with the repository's config and asserts a
/// clean failure (exit 1, no panic, no output file).
fn fails(checkpoint: &Path, extra: &[&str]) -> Failure {
    fails_with_config(checkpoint, &repo_root().join("config.yaml"), extra)
}

fn fails_with_config(checkpoint: &Path, config: &Path, extra: &[&str]) -> Failure {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.qcnn");
    let output = Command::new(common::quantize_binary())
        .arg(checkpoint)
        .arg("-o")
        .arg(&out)
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .expect("running qcnn-quantize");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("qcnn-quantize: error: "), "{stderr}");
    assert!(!out.exists(), "no model is written on failure");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file is left: {leftovers:?}"
    );
    Failure { stderr }
}

impl Failure {
    fn says(&self, expected: &str) -> &Self {
        assert!(
            self.stderr.contains(expected),
            "stderr lacks {expected:?}: {}",
            self.stderr
        );
        self
    }
}

/// The fixture's tensors: name to (dtype, shape, bytes).
type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

/// The random_init safetensors fixture after `edit`, written into `dir`.
fn edited_fixture(dir: &Path, name: &str, edit: impl FnOnce(&mut Tensors)) -> PathBuf {
    let bytes = std::fs::read(Path::new(FIXTURES).join("random_init.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                (view.dtype(), view.shape().to_vec(), view.data().to_vec()),
            )
        })
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, (dtype, shape, data))| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    path
}

#[test]
fn missing_checkpoint_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.pth");
    fails(&missing, &[]).says(&format!(
        "quantizing {0}: reading {0}: No such file or directory",
        missing.display()
    ));
}

#[test]
fn file_that_is_no_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.pth");
    std::fs::write(&path, "just some text, not a state_dict").unwrap();
    fails(&path, &[]).says(&format!(
        "{}: neither a PyTorch zip checkpoint nor a safetensors file",
        path.display()
    ));
}

#[test]
fn truncated_pth_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.pth");
    let whole = std::fs::read(Path::new(FIXTURES).join("random_init.pth")).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    fails(&path, &[]).says(&format!(
        "{}: not a readable PyTorch checkpoint: ",
        path.display()
    ));
}

#[test]
fn truncated_safetensors_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.safetensors");
    let whole = std::fs::read(Path::new(FIXTURES).join("random_init.safetensors")).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    fails(&path, &[]).says(&format!(
        "{}: not a readable safetensors file: ",
        path.display()
    ));
}

#[test]
fn checkpoint_missing_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_fixture(dir.path(), "no_bias.safetensors", |t| {
        t.remove("layers.2.bias");
    });
    fails(&path, &[]).says(&format!(
        "{}: missing key layers.2.bias (expected shape [16])",
        path.display()
    ));
}

#[test]
fn checkpoint_with_an_extra_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_fixture(dir.path(), "extra.safetensors", |t| {
        t.insert("layers.11.weight".into(), (Dtype::F32, vec![1], vec![0; 4]));
    });
    fails(&path, &[]).says(&format!(
        "{}: unexpected key layers.11.weight (shape [1]); the config's model has no such parameter",
        path.display()
    ));
}

#[test]
fn checkpoint_with_a_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_fixture(dir.path(), "shape.safetensors", |t| {
        t.get_mut("layers.10.weight").unwrap().1 = vec![10, 128, 2];
    });
    fails(&path, &[]).says(&format!(
        "{}: layers.10.weight has shape [10, 128, 2], expected [10, 256]",
        path.display()
    ));
}

#[test]
fn checkpoint_with_a_nan_weight() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_fixture(dir.path(), "nan.safetensors", |t| {
        let data = &mut t.get_mut("layers.7.weight").unwrap().2;
        data[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    fails(&path, &[]).says(&format!(
        "{}: layers.7.weight (shape [256, 3136]) holds NaN at flat index 3",
        path.display()
    ));
}

#[test]
fn checkpoint_with_integer_weights() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_fixture(dir.path(), "int.safetensors", |t| {
        let (dtype, _, data) = t.get_mut("layers.0.bias").unwrap();
        *dtype = Dtype::I32;
        data.fill(0);
    });
    fails(&path, &[]).says(&format!(
        "{}: layers.0.bias has dtype I32, expected a float type",
        path.display()
    ));
}

#[test]
fn missing_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("absent.yaml");
    fails_with_config(
        &Path::new(FIXTURES).join("random_init.safetensors"),
        &config,
        &[],
    )
    .says(&config.display().to_string());
}

#[test]
fn dataset_directory_without_fashion_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    fails(
        &Path::new(FIXTURES).join("random_init.safetensors"),
        &["--data-dir", data],
    )
    .says("loading FashionMNIST: no FashionMNIST directory found: none of [")
    .says(data);
}

/// Hostile `.pth` files, written by fuzz/seeds/make_seeds.py into the fuzz seed corpus.
fn hostile_pth(name: &str) -> PathBuf {
    repo_root().join("fuzz/corpus/checkpoint").join(name)
}

/// Regression: candle's pickle reader (replaced in issue 15) panicked (exit 101) on a tensor
/// rebuilt from a 1-tuple. The restricted pickle reader names the call and what it lacks.
#[test]
fn pth_whose_rebuild_has_too_few_arguments() {
    let path = hostile_pth("short_rebuild_args.pth");
    fails(&path, &[]).says(&format!(
        "{}: not a readable PyTorch checkpoint: its pickle: _rebuild_tensor_v2 at byte 72: takes at least 4 arguments (storage, offset, size, stride), got 1",
        path.display()
    ));
}

/// Code in a pickle is never run: a global other than the three a state_dict uses is named.
#[test]
fn pth_whose_pickle_calls_other_code() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.pth");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.")
        .unwrap();
    zip.finish().unwrap();
    fails(&path, &[]).says(&format!(
        "{}: not a readable PyTorch checkpoint: its pickle: the pickle calls os.system, which a state_dict does not use",
        path.display()
    ));
}

/// Regression: candle allocated a tensor's claimed size (here 16 GiB) before reading it.
#[test]
fn pth_tensor_larger_than_the_file() {
    let path = hostile_pth("huge_shape.pth");
    fails(&path, &[]).says(&format!(
        "{}: k has shape [65536, 65536], more data than the whole file holds",
        path.display()
    ));
}

// Issue 17: configs whose model does not fit FashionMNIST, and inputs that are not files.

/// The repository's config with `edits` applied, its data directory made absolute, in `dir`.
fn edited_config(dir: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo_root().join("config.yaml")).unwrap();
    let data = format!("- {}/data/FashionMNIST/raw", repo_root().display());
    for (from, to) in [("- data/FashionMNIST/raw", data.as_str())]
        .iter()
        .chain(edits)
    {
        assert!(text.contains(from), "config.yaml lacks {from:?}");
        text = text.replace(from, to);
    }
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A 5-class config and a matching checkpoint produced a blob that `qcnn evaluate` then
/// panicked on; refused before any work now.
#[test]
fn config_with_fewer_classes_than_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_config(
        dir.path(),
        &[
            ("classes: 10", "classes: 5"),
            (
                "linear: { in: 256, out: 10 }",
                "linear: { in: 256, out: 5 }",
            ),
        ],
    );
    let checkpoint = edited_fixture(dir.path(), "five.safetensors", |t| {
        let (_, shape, data) = t.get_mut("layers.10.weight").unwrap();
        *shape = vec![5, 256];
        data.truncate(5 * 256 * 4);
        let (_, shape, data) = t.get_mut("layers.10.bias").unwrap();
        *shape = vec![5];
        data.truncate(5 * 4);
    });
    fails_with_config(&checkpoint, &config, &[]).says(
        "the config's model does not fit the dataset: the model gives 5 class scores, FashionMNIST has 10 classes",
    );
}

/// A 56×56 input panicked in the float model (exit 101).
#[test]
fn config_whose_input_is_not_a_fashion_mnist_image() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_config(
        dir.path(),
        &[
            (
                "input: { channels: 1, height: 28, width: 28 }",
                "input: { channels: 1, height: 56, width: 56 }",
            ),
            (
                "linear: { in: 3136, out: 256 }",
                "linear: { in: 12544, out: 256 }",
            ),
        ],
    );
    let checkpoint = edited_fixture(dir.path(), "wide.safetensors", |t| {
        let (_, shape, data) = t.get_mut("layers.7.weight").unwrap();
        *shape = vec![256, 12544];
        data.resize(256 * 12544 * 4, 0);
    });
    fails_with_config(&checkpoint, &config, &[])
        .says("the model takes 3136-byte images, FashionMNIST's are 784 (1x28x28)");
}

/// `/dev/zero` as the checkpoint grew memory until the OOM killer; a FIFO blocked forever.
#[test]
fn checkpoint_that_is_a_device_or_a_fifo() {
    fails(Path::new("/dev/zero"), &[])
        .says("reading /dev/zero: not a regular file but a character device");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("checkpoint.pth");
    common::mkfifo(&fifo);
    fails(&fifo, &[]).says("not a regular file but a FIFO");
}

/// A config that is a device was read until memory ran out.
#[test]
fn config_that_is_a_device() {
    fails_with_config(
        &Path::new(FIXTURES).join("random_init.safetensors"),
        Path::new("/dev/zero"),
        &[],
    )
    .says("reading /dev/zero: not a regular file but a character device");
}
