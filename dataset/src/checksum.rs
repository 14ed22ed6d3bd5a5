//! The four canonical FashionMNIST files and their SHA-256 digests.
//!
//! A `.gz` file is checked against the digest of the published `.gz` (as `sha256sum` prints it);
//! an uncompressed file against the digest of its decompressed content.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::DatasetError;

pub struct CanonicalFile {
    /// The file name without `.gz`.
    pub name: &'static str,
    pub gz_sha256: &'static str,
    pub raw_sha256: &'static str,
}

pub const TRAIN_IMAGES: CanonicalFile = CanonicalFile {
    name: "train-images-idx3-ubyte",
    gz_sha256: "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    raw_sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
};
pub const TRAIN_LABELS: CanonicalFile = CanonicalFile {
    name: "train-labels-idx1-ubyte",
    gz_sha256: "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    raw_sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
};
pub const TEST_IMAGES: CanonicalFile = CanonicalFile {
    name: "t10k-images-idx3-ubyte",
    gz_sha256: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    raw_sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
};
pub const TEST_LABELS: CanonicalFile = CanonicalFile {
    name: "t10k-labels-idx1-ubyte",
    gz_sha256: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    raw_sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
};

pub const ALL: [&CanonicalFile; 4] = [&TRAIN_IMAGES, &TRAIN_LABELS, &TEST_IMAGES, &TEST_LABELS];

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl CanonicalFile {
    /// Checks `bytes`, read from `path`, compressed or not.
    pub fn verify(&self, path: &Path, bytes: &[u8], compressed: bool) -> Result<(), DatasetError> {
        let expected = if compressed {
            self.gz_sha256
        } else {
            self.raw_sha256
        };
        let actual = sha256_hex(bytes);
        if actual == expected {
            Ok(())
        } else {
            Err(DatasetError::Checksum {
                path: path.to_owned(),
                expected: expected.to_owned(),
                actual,
            })
        }
    }
}
