//! FashionMNIST: reading and checking the four IDX files, and the deterministic
//! train/validation split. Also the classification metrics that every tool reports.

pub mod checksum;
mod error;
pub mod idx;
pub mod metrics;
pub mod rng;
pub mod scores;
pub mod split;

use std::path::{Path, PathBuf};

pub use error::DatasetError;
pub use split::Split;

use checksum::CanonicalFile;

pub const CLASSES: usize = 10;
pub const CLASS_NAMES: [&str; CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// Bytes in one 28×28 u8 image.
pub const IMAGE_BYTES: usize = (idx::ROWS * idx::COLS) as usize;

/// Fails unless a model that takes `input_bytes` u8 values per image and gives `classes`
/// scores fits FashionMNIST: a mismatch must stop a run before any work, since the engine
/// would otherwise read the image buffer in the wrong strides and score the result.
pub fn check_model_fits(input_bytes: usize, classes: usize) -> Result<(), DatasetError> {
    if input_bytes != IMAGE_BYTES {
        return Err(DatasetError::ModelMismatch(format!(
            "the model takes {input_bytes}-byte images, FashionMNIST's are {IMAGE_BYTES} (1x28x28)"
        )));
    }
    if classes != CLASSES {
        return Err(DatasetError::ModelMismatch(format!(
            "the model gives {classes} class scores, FashionMNIST has {CLASSES} classes"
        )));
    }
    Ok(())
}

/// Images with their labels; image `i` is `IMAGE_BYTES` u8 pixels, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabeledImages {
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl LabeledImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// Images `range`, back to back.
    pub fn images(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.pixels[range.start * IMAGE_BYTES..range.end * IMAGE_BYTES]
    }

    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Reads any pair of IDX image and label files (`.gz` or raw) without checksums.
    pub fn read(images_path: &Path, labels_path: &Path) -> Result<LabeledImages, DatasetError> {
        Self::parse(
            images_path,
            read(images_path)?,
            labels_path,
            read(labels_path)?,
        )
    }

    /// Parses the bytes of an images file and a labels file, checking that their counts agree.
    fn parse(
        images_path: &Path,
        images_bytes: Vec<u8>,
        labels_path: &Path,
        labels_bytes: Vec<u8>,
    ) -> Result<LabeledImages, DatasetError> {
        let pixels = idx::parse_images(images_path, &idx::decompress(images_path, images_bytes)?)?;
        let labels = idx::parse_labels(
            labels_path,
            &idx::decompress(labels_path, labels_bytes)?,
            CLASSES as u8,
        )?;
        if pixels.len() / IMAGE_BYTES != labels.len() {
            return Err(DatasetError::CountMismatch {
                images_path: images_path.to_owned(),
                labels_path: labels_path.to_owned(),
                images: pixels.len() / IMAGE_BYTES,
                labels: labels.len(),
            });
        }
        Ok(LabeledImages { pixels, labels })
    }

    /// The images at `indices`, in that order (e.g. one side of a [`Split`]).
    pub fn select(&self, indices: &[usize]) -> LabeledImages {
        LabeledImages {
            pixels: indices
                .iter()
                .flat_map(|&i| self.image(i))
                .copied()
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// The training (60,000) and test (10,000) sets, each file checked against its canonical SHA-256.
#[derive(Clone, Debug)]
pub struct FashionMnist {
    /// The directory the files were read from.
    pub dir: PathBuf,
    pub train: LabeledImages,
    pub test: LabeledImages,
}

impl FashionMnist {
    /// Loads from the first of `dirs` that holds all four files.
    pub fn load<P: AsRef<Path>>(dirs: &[P]) -> Result<FashionMnist, DatasetError> {
        let dir = dirs
            .iter()
            .map(AsRef::as_ref)
            .find(|dir| {
                checksum::ALL
                    .iter()
                    .all(|file| find_file(dir, file).is_some())
            })
            .ok_or_else(|| DatasetError::NotFound {
                searched: dirs
                    .iter()
                    .map(|d| d.as_ref().display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Self::load_dir(dir)
    }

    /// Loads from `dir`, which must hold all four files.
    pub fn load_dir(dir: &Path) -> Result<FashionMnist, DatasetError> {
        // The training images dominate the time (26 MB of gzip), so the sets load in parallel.
        // A thread that cannot be started (a resource limit) only costs the parallelism.
        let load_train = || load_pair(dir, &checksum::TRAIN_IMAGES, &checksum::TRAIN_LABELS);
        let (train, test) = std::thread::scope(|s| {
            let train = std::thread::Builder::new().spawn_scoped(s, load_train);
            let test = load_pair(dir, &checksum::TEST_IMAGES, &checksum::TEST_LABELS);
            let train = match train {
                Ok(thread) => thread.join().expect("the loading thread does not panic"),
                Err(_) => load_train(),
            };
            (train, test)
        });
        Ok(FashionMnist {
            dir: dir.to_owned(),
            train: train?,
            test: test?,
        })
    }

    /// The configured split of the training images.
    pub fn split(&self, train: usize, validation: usize, seed: u64) -> Result<Split, DatasetError> {
        Split::new(self.train.len(), train, validation, seed)
    }
}

/// `dir/<name>.gz`, else the uncompressed `dir/<name>`.
fn find_file(dir: &Path, file: &CanonicalFile) -> Option<PathBuf> {
    [format!("{}.gz", file.name), file.name.to_owned()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

fn load_pair(
    dir: &Path,
    images: &CanonicalFile,
    labels: &CanonicalFile,
) -> Result<LabeledImages, DatasetError> {
    let (images_path, images_bytes) = read_verified(dir, images)?;
    let (labels_path, labels_bytes) = read_verified(dir, labels)?;
    LabeledImages::parse(&images_path, images_bytes, &labels_path, labels_bytes)
}

/// Reads a file and checks its SHA-256.
fn read_verified(dir: &Path, file: &CanonicalFile) -> Result<(PathBuf, Vec<u8>), DatasetError> {
    let path = find_file(dir, file).unwrap_or_else(|| dir.join(format!("{}.gz", file.name)));
    let bytes = read(&path)?;
    file.verify(&path, &bytes, idx::is_gzip(&bytes))?;
    Ok((path, bytes))
}

fn read(path: &Path) -> Result<Vec<u8>, DatasetError> {
    std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.to_owned(),
        source,
    })
}
