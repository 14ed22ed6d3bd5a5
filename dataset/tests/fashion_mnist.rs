//! Against the real FashionMNIST files, and crafted bad ones in a temp dir.

use std::io::Read;
use std::path::{Path, PathBuf};

use qcnn_dataset::{CLASSES, DatasetError, FashionMnist, IMAGE_BYTES, LabeledImages, checksum};

const INSTALLED: &str = "/usr/share/datasets/fashion-mnist";

fn dirs() -> Vec<PathBuf> {
    let dvc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/FashionMNIST/raw");
    vec![dvc, PathBuf::from(INSTALLED)]
}

#[test]
fn real_sets_have_the_published_lengths_shapes_and_labels() {
    let data = FashionMnist::load(&dirs()).unwrap();
    assert_eq!(data.train.len(), 60_000);
    assert_eq!(data.test.len(), 10_000);
    for set in [&data.train, &data.test] {
        let image: &[u8] = set.image(set.len() - 1);
        assert_eq!(image.len(), 28 * 28);
        assert!(set.labels().iter().all(|&l| (l as usize) < CLASSES));
        // Every class occurs, in equal numbers (FashionMNIST is balanced).
        let mut counts = [0usize; CLASSES];
        set.labels().iter().for_each(|&l| counts[l as usize] += 1);
        assert!(
            counts.iter().all(|&c| c == set.len() / CLASSES),
            "{counts:?}"
        );
    }
    // Test image 0 is an ankle boot (class 9) with a dark border.
    assert_eq!(data.test.label(0), 9);
    assert_eq!(data.test.image(0)[0], 0);
    assert!(data.test.image(0).iter().any(|&p| p > 200));
}

#[test]
fn configured_split_is_disjoint_covering_and_deterministic() {
    let data = FashionMnist::load(&dirs()).unwrap();
    let split = data.split(50_000, 10_000, 42).unwrap();
    assert_eq!(
        (split.train.len(), split.validation.len()),
        (50_000, 10_000)
    );
    let mut seen = vec![false; 60_000];
    for &i in split.train.iter().chain(&split.validation) {
        assert!(!seen[i], "index {i} twice");
        seen[i] = true;
    }
    assert!(seen.iter().all(|&s| s));
    assert_eq!(split, data.split(50_000, 10_000, 42).unwrap());
    let validation = data.train.select(&split.validation);
    assert_eq!(validation.len(), 10_000);
    assert_eq!(validation.image(3), data.train.image(split.validation[3]));
    assert_eq!(validation.label(3), data.train.label(split.validation[3]));
    assert!(matches!(
        data.split(50_000, 9_000, 42),
        Err(DatasetError::SplitSizes { .. })
    ));
}

#[test]
fn missing_directories_are_all_named() {
    let err = FashionMnist::load(&["/nonexistent/a", "/nonexistent/b"]).unwrap_err();
    assert!(matches!(err, DatasetError::NotFound { .. }));
    assert!(
        err.to_string().contains("/nonexistent/a, /nonexistent/b"),
        "{err}"
    );
}

/// A temp dir with the real files linked in, except `replaced`, which gets `content` under `name`.
fn dir_with(replaced: &checksum::CanonicalFile, name: &str, content: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in checksum::ALL {
        if file.name != replaced.name {
            let gz = format!("{}.gz", file.name);
            std::os::unix::fs::symlink(Path::new(INSTALLED).join(&gz), dir.path().join(&gz))
                .unwrap();
        }
    }
    std::fs::write(dir.path().join(name), content).unwrap();
    dir
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn an_uncompressed_file_is_accepted_and_checked_against_its_raw_digest() {
    let file = &checksum::TEST_LABELS;
    let raw = gunzip(&Path::new(INSTALLED).join(format!("{}.gz", file.name)));
    let dir = dir_with(file, file.name, &raw);
    let data = FashionMnist::load_dir(dir.path()).unwrap();
    assert_eq!(data.test.len(), 10_000);

    let mut tampered = raw.clone();
    tampered[100] = 9 - tampered[100];
    let dir = dir_with(file, file.name, &tampered);
    let err = FashionMnist::load_dir(dir.path()).unwrap_err();
    assert!(matches!(&err, DatasetError::Checksum { expected, .. } if expected == file.raw_sha256));
    assert!(
        err.to_string()
            .contains(&dir.path().join(file.name).display().to_string()),
        "{err}"
    );
}

#[test]
fn a_tampered_gz_file_is_named() {
    let file = &checksum::TRAIN_LABELS;
    let mut gz = std::fs::read(Path::new(INSTALLED).join(format!("{}.gz", file.name))).unwrap();
    let last = gz.len() - 1;
    gz[last] ^= 1;
    let name = format!("{}.gz", file.name);
    let dir = dir_with(file, &name, &gz);
    let err = FashionMnist::load(&[dir.path()]).unwrap_err();
    assert!(
        err.to_string().contains("train-labels-idx1-ubyte.gz"),
        "{err}"
    );
    assert!(matches!(err, DatasetError::Checksum { expected, .. } if expected == file.gz_sha256));
}

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    dims.iter()
        .for_each(|d| v.extend_from_slice(&d.to_be_bytes()));
    v.extend_from_slice(data);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn crafted_files_are_checked_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let two_images = vec![1u8; 2 * IMAGE_BYTES];
    let images = write(dir.path(), "img", &idx(2051, &[2, 28, 28], &two_images));

    let labels = write(dir.path(), "lbl", &idx(2049, &[2], &[3, 4]));
    let set = LabeledImages::read(&images, &labels).unwrap();
    assert_eq!((set.len(), set.labels()), (2, &[3u8, 4][..]));

    let three_labels = write(dir.path(), "lbl3", &idx(2049, &[3], &[3, 4, 5]));
    let err = LabeledImages::read(&images, &three_labels).unwrap_err();
    assert!(matches!(
        err,
        DatasetError::CountMismatch {
            images: 2,
            labels: 3,
            ..
        }
    ));
    assert!(err.to_string().contains("lbl3"), "{err}");

    let wrong_magic = write(dir.path(), "magic", &idx(2049, &[2, 28, 28], &two_images));
    let err = LabeledImages::read(&wrong_magic, &labels).unwrap_err();
    assert!(matches!(
        err,
        DatasetError::Magic {
            expected: 2051,
            actual: 2049,
            ..
        }
    ));
    assert!(err.to_string().contains("magic"), "{err}");

    let truncated = write(
        dir.path(),
        "short",
        &idx(2051, &[2, 28, 28], &two_images[..1000]),
    );
    let err = LabeledImages::read(&truncated, &labels).unwrap_err();
    assert!(matches!(err, DatasetError::Length { .. }));
    assert!(err.to_string().contains("short"), "{err}");

    let ten = write(dir.path(), "ten", &idx(2049, &[2], &[3, 10]));
    let err = LabeledImages::read(&images, &ten).unwrap_err();
    assert!(matches!(
        err,
        DatasetError::Label {
            index: 1,
            label: 10,
            ..
        }
    ));

    let err = LabeledImages::read(&dir.path().join("absent"), &labels).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }));
    assert!(err.to_string().contains("absent"), "{err}");
}
