//! Bad inputs to the `qcnn` binary, each named on stderr with exit code 1 and no panic:
//! corrupt or invalid model blobs, broken dataset directories, unusable databases. These
//! back docs/bad-inputs.md (run with `--nocapture` to see every stderr line).

mod support;

use std::path::{Path, PathBuf};

use qcnn_core::format::{self, CHECKSUM_LEN, Header, Layer, PREFIX_LEN};
use qcnn_core::graph::GRAPH_VERSION;
use support::cli::{Run, TestEnv, release_blob, repo_root};
use support::postgres::PgServer;

/// The release blob split into its decoded header and its data section.
fn release_parts() -> (Header, Vec<u8>) {
    let blob = std::fs::read(release_blob()).unwrap();
    let header_len = u32::from_le_bytes(blob[8..12].try_into().unwrap()) as usize;
    let header = postcard::from_bytes(&blob[PREFIX_LEN..PREFIX_LEN + header_len]).unwrap();
    let data = blob[format::data_offset(header_len)..blob.len() - CHECKSUM_LEN].to_vec();
    (header, data)
}

/// A blob from an edited header and data, with a correct checksum: only the edit is wrong.
fn edited(edit: impl FnOnce(&mut Header, &mut Vec<u8>)) -> Vec<u8> {
    let (mut header, mut data) = release_parts();
    edit(&mut header, &mut data);
    let mut blob = vec![0; format::encoded_len(&header, data.len()).unwrap()];
    format::encode(&header, &data, &mut blob).unwrap();
    blob
}

/// The release blob with its bytes edited and the checksum (the current version's, whatever
/// version the edit wrote) recomputed afterwards.
fn patched(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut blob = std::fs::read(release_blob()).unwrap();
    edit(&mut blob);
    let body = blob.len() - CHECKSUM_LEN;
    let sum = format::CHECKSUM.of(&blob[..body]);
    blob[body..].copy_from_slice(&sum.to_le_bytes());
    blob
}

fn linear_layers(header: &mut Header) -> impl Iterator<Item = (usize, &mut format::Linear)> {
    header
        .layers
        .iter_mut()
        .enumerate()
        .filter_map(|(i, layer)| match layer {
            Layer::Linear(linear) => Some((i, linear)),
            _ => None,
        })
}

fn conv_layers(header: &mut Header) -> impl Iterator<Item = (usize, &mut format::Conv2d)> {
    header
        .layers
        .iter_mut()
        .enumerate()
        .filter_map(|(i, layer)| match layer {
            Layer::Conv2d(conv) => Some((i, conv)),
            _ => None,
        })
}

/// `qcnn predict` on `bytes` as a model file; asserts a clean failure naming the file.
fn predict_fails(bytes: &[u8], expected: &str) -> Run {
    let env = TestEnv::new();
    let path = env.path("bad.qcnn");
    std::fs::write(&path, bytes).unwrap();
    let run = env.run(&["predict", "--first", "1", "--model", path.to_str().unwrap()]);
    eprintln!("{}", run.stderr.trim_end());
    run.assert_clean_failure(&format!(
        "qcnn: error: loading model {}: {expected}",
        path.display()
    ));
    run
}

#[test]
fn empty_model_file() {
    predict_fails(b"", "blob of 0 bytes is too short to be a model");
}

#[test]
fn file_that_is_not_a_blob() {
    predict_fails(
        b"just some text, long enough",
        "not a qcnn model (bad magic)",
    );
}

#[test]
fn truncated_blob() {
    let blob = std::fs::read(release_blob()).unwrap();
    predict_fails(&blob[..blob.len() / 2], "xxHash32 mismatch: stored 0x");
}

#[test]
fn flipped_bit_fails_the_checksum() {
    let mut blob = std::fs::read(release_blob()).unwrap();
    let middle = blob.len() / 2;
    blob[middle] ^= 0x10;
    predict_fails(&blob, "xxHash32 mismatch: stored 0x").assert_clean_failure("(corrupt blob)");
}

#[test]
fn flipped_bit_in_a_version_1_blob_fails_its_crc() {
    // Blobs written before format version 3 carry a CRC-32 and are still read (and checked).
    let mut blob = std::fs::read(release_blob()).unwrap();
    blob[4..6].copy_from_slice(&format::CRC32_VERSION.to_le_bytes());
    let body = blob.len() - CHECKSUM_LEN;
    let sum = format::Checksum::Crc32.of(&blob[..body]);
    blob[body..].copy_from_slice(&sum.to_le_bytes());
    blob[body / 2] ^= 0x10;
    predict_fails(&blob, "CRC-32 mismatch: stored 0x").assert_clean_failure("(corrupt blob)");
}

#[test]
fn future_format_version() {
    // Versions 1 to 4 are read (layer chains and graphs, with a CRC-32 or xxHash32); the
    // next one is refused.
    let future = GRAPH_VERSION + 1;
    let blob = patched(|b| b[4..6].copy_from_slice(&future.to_le_bytes()));
    let expected =
        format!("unsupported format version {future} (this engine reads versions 1 to 4)");
    predict_fails(&blob, &expected);
}

#[test]
fn conv_channels_that_do_not_chain() {
    let blob = edited(|h, _| {
        let (_, conv) = conv_layers(h)
            .nth(1)
            .expect("the release model has two convolutions");
        assert_eq!(conv.in_channels, 8);
        conv.in_channels = 4;
    });
    predict_fails(&blob, "layer 1 takes 4 channels but gets 8");
}

#[test]
fn linear_features_that_do_not_chain() {
    let mut index = 0;
    let blob = edited(|h, _| {
        let (i, linear) = linear_layers(h)
            .next()
            .expect("the release model has a linear layer");
        assert_eq!(linear.in_features, 3136);
        linear.in_features = 3135;
        index = i;
    });
    predict_fails(
        &blob,
        &format!("layer {index} takes 3135 features but gets 3136"),
    );
}

#[test]
fn nan_output_scale() {
    let mut index = 0;
    let blob = edited(|h, _| {
        let (i, linear) = linear_layers(h).next().unwrap();
        linear.requant.output.scale = f32::NAN;
        index = i;
    });
    predict_fails(
        &blob,
        &format!("layer {index}: output scale is not finite and positive"),
    );
}

#[test]
fn nan_weight_scale() {
    let blob = edited(|h, data| {
        let (_, conv) = conv_layers(h).next().unwrap();
        let at = conv.requant.weight_scales.offset as usize;
        data[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    predict_fails(&blob, "layer 0: a weight scale is not finite and positive");
}

#[test]
fn weight_of_minus_128() {
    let blob = edited(|h, data| {
        let (_, conv) = conv_layers(h).next().unwrap();
        data[conv.weights.offset as usize] = 0x80;
    });
    predict_fails(&blob, "layer 0: a weight is -128 (allowed: -127..=127)");
}

#[test]
fn weights_section_outside_the_data() {
    let blob = edited(|h, data| {
        let (_, conv) = conv_layers(h).next().unwrap();
        conv.weights.offset = data.len() as u32;
    });
    predict_fails(&blob, "layer 0: Weights section lies outside the data");
}

/// The installed FashionMNIST directory that the repository's config finds first.
fn dataset_dir() -> PathBuf {
    [
        repo_root().join("data/FashionMNIST/raw"),
        PathBuf::from("/usr/share/datasets/fashion-mnist"),
    ]
    .into_iter()
    .find(|d| d.join("t10k-labels-idx1-ubyte.gz").is_file())
    .expect("FashionMNIST is installed")
}

/// A dataset directory: the real files, except `name` holding `content`.
fn dataset_with(name: &str, content: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dataset_dir()).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::remove_file(dir.path().join(name)).unwrap();
    std::fs::write(dir.path().join(name), content).unwrap();
    dir
}

fn predict_with_data(data: &Path) -> Run {
    let env = TestEnv::new();
    let run = env.run(&[
        "predict",
        "--first",
        "1",
        "--model",
        release_blob().to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    eprintln!("{}", run.stderr.trim_end());
    run
}

/// Any change to a dataset file (here a label of 10 in a valid IDX file) is caught by the
/// SHA-256 check before parsing, and the file is named.
#[test]
fn tampered_dataset_file_fails_its_checksum() {
    let mut labels = 2049_u32.to_be_bytes().to_vec();
    labels.extend(1_u32.to_be_bytes());
    labels.push(10);
    let dir = dataset_with("t10k-labels-idx1-ubyte.gz", &labels);
    let path = dir.path().join("t10k-labels-idx1-ubyte.gz");
    predict_with_data(dir.path()).assert_clean_failure(&format!(
        "qcnn: error: {}: SHA-256 {} differs from the canonical {}; the file is corrupt or not FashionMNIST",
        path.display(),
        qcnn_dataset::checksum::sha256_hex(&labels),
        qcnn_dataset::checksum::TEST_LABELS.raw_sha256,
    ));
}

#[test]
fn dataset_directory_without_the_files() {
    let dir = tempfile::tempdir().unwrap();
    predict_with_data(dir.path()).assert_clean_failure(&format!(
        "qcnn: error: no FashionMNIST directory found: none of [{}] holds all four IDX files (.gz or raw)",
        dir.path().display()
    ));
}

#[test]
fn sqlite_database_in_a_missing_directory() {
    let env = TestEnv::new();
    let path = env.path("no/such/dir/results.sqlite");
    let url = format!("sqlite:{}", path.display());
    let run = env.run(&["--database-url", &url, "results"]);
    eprintln!("{}", run.stderr.trim_end());
    run.assert_clean_failure(&format!("{}", path.display()));
}

#[test]
fn postgres_database_that_does_not_exist() {
    let server = PgServer::start();
    let env = TestEnv::new();
    let url = format!("{}/no_such_db", server.url().rsplit_once('/').unwrap().0);
    let run = env.run(&["--database-url", &url, "results"]);
    eprintln!("{}", run.stderr.trim_end());
    run.assert_clean_failure("database \"no_such_db\" does not exist");
    assert!(!run.stderr.contains(support::postgres::password()));
}

// Issue 17: model files that do not fit the dataset, or are not files at all.

/// The release blob with its last Linear cut to 5 outputs: a valid model of 5 classes.
fn five_class_blob() -> Vec<u8> {
    edited(|h, _| {
        let (_, last) = linear_layers(h).last().unwrap();
        assert_eq!(last.out_features, 10);
        last.out_features = 5;
        last.weights.len = 5 * last.in_features;
        let requant = &mut last.requant;
        for section in [
            &mut requant.bias,
            &mut requant.multiplier,
            &mut requant.shift,
            &mut requant.weight_scales,
        ] {
            section.len /= 2;
        }
    })
}

/// `evaluate` of a 5-class blob panicked in the metrics (exit 101); now refused by name
/// before the evaluation.
#[test]
fn blob_with_fewer_than_ten_classes() {
    let env = TestEnv::new();
    let path = env.path("five.qcnn");
    std::fs::write(&path, five_class_blob()).unwrap();
    let path = path.to_str().unwrap();
    let run = env.run(&["evaluate", "--limit", "50", "--model", path]);
    eprintln!("{}", run.stderr.trim_end());
    run.assert_clean_failure(&format!(
        "qcnn: error: model {path}: the model gives 5 class scores, FashionMNIST has 10 classes"
    ));
    assert_eq!(
        env.run(&["results", "--json"]).json(),
        serde_json::json!([])
    );
}

/// A blob taking 2×28×28 = 1,568-byte images ran as half as many double-size images and
/// recorded an accuracy of 0.0998; now refused before any work, and nothing is recorded.
#[test]
fn blob_whose_input_is_not_a_fashion_mnist_image() {
    let blob = edited(|h, _| {
        h.input.c = 2;
        // Valid int8 weights, enough of them: the second conv's.
        let second_weights = conv_layers(h).nth(1).unwrap().1.weights;
        let (_, first) = conv_layers(h).next().unwrap();
        first.in_channels = 2;
        first.weights.len *= 2;
        first.weights.offset = second_weights.offset;
    });
    let env = TestEnv::new();
    let path = env.path("wide.qcnn");
    std::fs::write(&path, blob).unwrap();
    let path = path.to_str().unwrap();
    for command in ["evaluate", "predict"] {
        let run = env.run(&[command, "--model", path]);
        eprintln!("{}", run.stderr.trim_end());
        run.assert_clean_failure(&format!(
            "qcnn: error: model {path}: the model takes 1568-byte images, FashionMNIST's are 784 (1x28x28)"
        ));
    }
    assert_eq!(
        env.run(&["results", "--json"]).json(),
        serde_json::json!([])
    );
}

/// `--model /dev/zero` grew memory until the OOM killer; a FIFO blocked forever.
#[test]
fn model_that_is_a_device_or_a_fifo() {
    let env = TestEnv::new();
    let fifo = env.fifo("model.fifo");
    let fifo = fifo.to_str().unwrap();
    for (path, kind) in [("/dev/zero", "a character device"), (fifo, "a FIFO")] {
        for args in [
            &["evaluate", "--model", path][..],
            &["predict", "--model", path],
            &["db", "add-model", path],
        ] {
            let run = env.run(args);
            eprintln!("{}", run.stderr.trim_end());
            run.assert_clean_failure(&format!(
                "qcnn: error: reading model file {path}: not a regular file but {kind}"
            ));
        }
    }
}

/// `db add-model` accepted any file (`/etc/hostname`), which then broke the default
/// `evaluate`; now only a blob the engine runs on FashionMNIST, or a checkpoint that matches
/// config.yaml.
#[test]
fn add_model_accepts_only_models() {
    let env = TestEnv::new();
    env.run(&["results"]).assert_success();
    let text = env.path("hostname");
    std::fs::write(&text, "build-host\n").unwrap();
    let text = text.to_str().unwrap();
    env.run(&["db", "add-model", text])
        .assert_clean_failure(&format!(
            "loading model {text}: blob of 11 bytes is too short to be a model"
        ));
    let five = env.path("five.qcnn");
    std::fs::write(&five, five_class_blob()).unwrap();
    env.run(&["db", "add-model", five.to_str().unwrap()])
        .assert_clean_failure("the model gives 5 class scores, FashionMNIST has 10 classes");
    let checkpoint = env.path("broken.pth");
    std::fs::write(&checkpoint, b"PK\x03\x04 truncated zip").unwrap();
    env.run(&["db", "add-model", checkpoint.to_str().unwrap()])
        .assert_clean_failure("not a readable PyTorch checkpoint");
    // Nothing was added: the default evaluate still takes the seed row.
    let rows = rusqlite::Connection::open(env.path("qcnn.sqlite"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM model_weights", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    assert_eq!(rows, 1);
}

/// A model file replaced after `db add-model` was evaluated and recorded under the old row
/// with another SHA-256; now refused before any work.
#[test]
fn model_file_replaced_after_add_model() {
    let env = TestEnv::new();
    let path = env.path("m.qcnn");
    std::fs::copy(release_blob(), &path).unwrap();
    let path = path.to_str().unwrap();
    env.run(&["db", "add-model", path]).assert_success();
    // Same size, one weight changed: still a valid model, but not the one on record.
    let edited = edited(|h, data| {
        let (_, conv) = conv_layers(h).next().unwrap();
        let at = conv.weights.offset as usize;
        data[at] = if data[at] == 1 { 2 } else { 1 };
    });
    std::fs::write(path, edited).unwrap();
    let run = env.run(&["evaluate", "--limit", "20"]);
    eprintln!("{}", run.stderr.trim_end());
    run.assert_clean_failure(
        "the file changed since `qcnn db add-model` (add it again to evaluate it)",
    );
    assert!(
        run.stderr
            .contains(&format!("model file {path} has SHA-256 "))
    );
    assert_eq!(
        env.run(&["results", "--json"]).json(),
        serde_json::json!([])
    );
    // `--model` with the changed file runs, and is not linked to the old row.
    let run = env.run(&["evaluate", "--limit", "20", "--json", "--model", path]);
    run.assert_success();
    let rows = env.run(&["results", "--json"]).json();
    assert!(rows[0]["model_id"].is_null(), "{rows}");
}

/// A relative path was stored as given, so `evaluate` from another directory failed.
#[test]
fn add_model_stores_an_absolute_path() {
    let env = TestEnv::new();
    std::fs::create_dir(env.path("models")).unwrap();
    std::fs::copy(release_blob(), env.path("models/m.qcnn")).unwrap();
    env.run(&["db", "add-model", "models/m.qcnn"])
        .assert_success();
    let elsewhere = tempfile::tempdir().unwrap();
    let run = Run::from(
        env.qcnn()
            .current_dir(elsewhere.path())
            .args(["evaluate", "--limit", "20", "--json"])
            .output()
            .unwrap(),
    );
    run.assert_success();
    let stored = std::fs::canonicalize(env.path("models/m.qcnn")).unwrap();
    assert_eq!(run.json()["model_path"], stored.to_str().unwrap());
}

/// `--threads 2000` under `ulimit -v` panicked when a thread could not be started. Here no
/// thread can start: `RUST_MIN_STACK` asks for stacks larger than the address space.
#[test]
fn threads_that_cannot_be_started() {
    let env = TestEnv::new();
    let blob = release_blob().to_str().unwrap();
    let run = Run::from(
        env.qcnn()
            .env("RUST_MIN_STACK", "100000000000000")
            .args([
                "evaluate",
                "--threads",
                "2000",
                "--limit",
                "100",
                "--model",
                blob,
            ])
            .output()
            .unwrap(),
    );
    eprintln!("{}", run.stderr.trim_end());
    run.assert_clean_failure(
        "qcnn: error: starting inference thread 1 of 7: Resource temporarily unavailable",
    );
}

/// The YAML parser's message spanned several lines; the tools print one.
#[test]
fn yaml_error_is_one_line() {
    let env = TestEnv::new();
    let config = env.path("config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("classes: 10", "classes: [10")).unwrap();
    let run = env.run(&["results"]);
    eprintln!("{}", run.stderr.trim_end());
    run.assert_clean_failure(&format!("qcnn: error: {}: ", config.display()));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}
