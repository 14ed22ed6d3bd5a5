//! Bad inputs to the `qcnn` binary, each named on stderr with exit code 1 and no panic:
//! corrupt or invalid model blobs, broken dataset directories, unusable databases. These
//! back docs/bad-inputs.md (run with `--nocapture` to see every stderr line).

mod support;

use std::path::{Path, PathBuf};

use qcnn_core::format::{self, CRC, CRC_LEN, Header, Layer, PREFIX_LEN};
use support::cli::{Run, TestEnv, release_blob, repo_root};
use support::postgres::PgServer;

/// The release blob split into its decoded header and its data section.
fn release_parts() -> (Header, Vec<u8>) {
    let blob = std::fs::read(release_blob()).unwrap();
    let header_len = u32::from_le_bytes(blob[8..12].try_into().unwrap()) as usize;
    let header = postcard::from_bytes(&blob[PREFIX_LEN..PREFIX_LEN + header_len]).unwrap();
    let data = blob[format::data_offset(header_len)..blob.len() - CRC_LEN].to_vec();
    (header, data)
}

/// A blob from an edited header and data, with a correct CRC: only the edit is wrong.
fn edited(edit: impl FnOnce(&mut Header, &mut Vec<u8>)) -> Vec<u8> {
    let (mut header, mut data) = release_parts();
    edit(&mut header, &mut data);
    let mut blob = vec![0; format::encoded_len(&header, data.len()).unwrap()];
    format::encode(&header, &data, &mut blob).unwrap();
    blob
}

/// The release blob with its bytes edited and the CRC recomputed afterwards.
fn patched(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut blob = std::fs::read(release_blob()).unwrap();
    edit(&mut blob);
    let body = blob.len() - CRC_LEN;
    let crc = CRC.checksum(&blob[..body]);
    blob[body..].copy_from_slice(&crc.to_le_bytes());
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
    predict_fails(&blob[..blob.len() / 2], "CRC mismatch: stored 0x");
}

#[test]
fn flipped_bit_fails_the_crc() {
    let mut blob = std::fs::read(release_blob()).unwrap();
    let middle = blob.len() / 2;
    blob[middle] ^= 0x10;
    predict_fails(&blob, "CRC mismatch: stored 0x").assert_clean_failure("(corrupt blob)");
}

#[test]
fn future_format_version() {
    let blob = patched(|b| b[4..6].copy_from_slice(&(format::VERSION + 1).to_le_bytes()));
    let expected = format!(
        "unsupported format version {} (expected {})",
        format::VERSION + 1,
        format::VERSION
    );
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
