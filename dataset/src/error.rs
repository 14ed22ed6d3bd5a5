use std::path::PathBuf;

/// Everything that can be wrong with the FashionMNIST files; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(
        "no FashionMNIST directory found: none of [{searched}] holds all four IDX files (.gz or raw)"
    )]
    NotFound { searched: String },
    #[error("reading {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid gzip stream", path.display())]
    Gzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: SHA-256 {actual} differs from the canonical {expected}; the file is corrupt or not FashionMNIST", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: magic number {actual}, expected {expected}", path.display())]
    Magic {
        path: PathBuf,
        expected: u32,
        actual: u32,
    },
    #[error("{}: {actual} bytes, the IDX header promises {expected}", path.display())]
    Length {
        path: PathBuf,
        expected: usize,
        actual: usize,
    },
    #[error("{}: images are {rows}x{cols}, expected {expected_rows}x{expected_cols}", path.display())]
    Dims {
        path: PathBuf,
        rows: u32,
        cols: u32,
        expected_rows: u32,
        expected_cols: u32,
    },
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        images_path: PathBuf,
        labels_path: PathBuf,
        images: usize,
        labels: usize,
    },
    #[error("{}: label {label} at index {index} is outside 0..={max}", path.display())]
    Label {
        path: PathBuf,
        index: usize,
        label: u8,
        max: u8,
    },
    #[error("{0}")]
    ModelMismatch(String),
    #[error(
        "split train {train} + validation {validation} must equal the {total} training images, so that the split covers them all"
    )]
    SplitSizes {
        train: usize,
        validation: usize,
        total: usize,
    },
}
