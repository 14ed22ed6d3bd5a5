//! Float checkpoints: a PyTorch `state_dict` saved by `torch.save` (zip format, `pth.rs` with
//! the restricted pickle reader [`pickle`]), or a `.safetensors` file; checked against the
//! configured architecture.

pub mod pickle;
mod pth;
mod tensor;

pub use pth::PthError;
use tensor::TRAINING_COUNTER;
pub use tensor::Tensor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qcnn_config::architecture::Architecture;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("reading {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: neither a PyTorch zip checkpoint nor a safetensors file", path.display())]
    UnknownFormat { path: PathBuf },
    /// The path; what is wrong with the file is the source, next in the error chain.
    #[error("{}", path.display())]
    Pth {
        path: PathBuf,
        #[source]
        source: Box<PthError>,
    },
    #[error("{}: not a readable safetensors file", path.display())]
    Safetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },
    #[error("{}: {key} has dtype {dtype}, expected a float type", path.display())]
    Dtype {
        path: PathBuf,
        key: String,
        dtype: String,
    },
    #[error("{}: missing key {key} (expected shape {expected:?})", path.display())]
    Missing {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
    },
    #[error("{}: unexpected key {key} (shape {actual:?}); the config's model has no such parameter", path.display())]
    Unexpected {
        path: PathBuf,
        key: String,
        actual: Vec<usize>,
    },
    #[error("{}: {key} has shape {actual:?}, expected {expected:?}", path.display())]
    Shape {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{}: {key} (shape {shape:?}) holds {value} at flat index {index}", path.display())]
    NonFinite {
        path: PathBuf,
        key: String,
        shape: Vec<usize>,
        index: usize,
        value: f32,
    },
}

/// A state_dict: name to tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, Tensor>,
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

impl Checkpoint {
    /// Reads a `.pth` (zip) or `.safetensors` file, told apart by content, not by name.
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes =
            qcnn_config::regular_file::read(path, qcnn_config::regular_file::MAX_CHECKPOINT_BYTES)
                .map_err(|source| CheckpointError::Io {
                    path: path.to_owned(),
                    source,
                })?;
        Self::from_bytes(path, &bytes)
    }

    /// [`Checkpoint::read`] of a file's `bytes`; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let tensors = if bytes.starts_with(ZIP_MAGIC) {
            pth::read(bytes).map_err(|source| CheckpointError::Pth {
                path: path.to_owned(),
                source: Box::new(source),
            })?
        } else if looks_like_safetensors(bytes) {
            read_safetensors(path, bytes)?
        } else {
            return Err(CheckpointError::UnknownFormat {
                path: path.to_owned(),
            });
        };
        Ok(Checkpoint {
            path: path.to_owned(),
            tensors,
        })
    }

    /// Reads `path` and checks it against `architecture`.
    pub fn read_checked(
        path: &Path,
        architecture: &Architecture,
    ) -> Result<Checkpoint, CheckpointError> {
        let checkpoint = Self::read(path)?;
        checkpoint.check(architecture)?;
        Ok(checkpoint)
    }

    /// Every expected key present with its shape, no other key, and every value finite.
    pub fn check(&self, architecture: &Architecture) -> Result<(), CheckpointError> {
        let path = || self.path.clone();
        let expected = architecture.parameters();
        for spec in &expected {
            let tensor = self
                .tensors
                .get(&spec.key)
                .ok_or_else(|| CheckpointError::Missing {
                    path: path(),
                    key: spec.key.clone(),
                    expected: spec.shape.clone(),
                })?;
            if tensor.shape != spec.shape {
                return Err(CheckpointError::Shape {
                    path: path(),
                    key: spec.key.clone(),
                    expected: spec.shape.clone(),
                    actual: tensor.shape.clone(),
                });
            }
        }
        if let Some((key, tensor)) = self
            .tensors
            .iter()
            .find(|(key, _)| !expected.iter().any(|spec| &spec.key == *key))
        {
            return Err(CheckpointError::Unexpected {
                path: path(),
                key: key.clone(),
                actual: tensor.shape.clone(),
            });
        }
        for (key, tensor) in &self.tensors {
            if let Some((index, &value)) =
                tensor.data.iter().enumerate().find(|(_, v)| !v.is_finite())
            {
                return Err(CheckpointError::NonFinite {
                    path: path(),
                    key: key.clone(),
                    shape: tensor.shape.clone(),
                    index,
                    value,
                });
            }
        }
        Ok(())
    }

    /// The tensor under `key`; present after `check`.
    pub fn get(&self, key: &str) -> &Tensor {
        &self.tensors[key]
    }
}

/// An 8-byte little-endian header length followed by a JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() > 8 && bytes[8] == b'{'
}

fn read_safetensors(
    path: &Path,
    bytes: &[u8],
) -> Result<BTreeMap<String, Tensor>, CheckpointError> {
    use safetensors::Dtype;
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|source| {
        CheckpointError::Safetensors {
            path: path.to_owned(),
            source,
        }
    })?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")) as f32)
                .collect(),
            _ if name.ends_with(TRAINING_COUNTER) => continue,
            other => {
                return Err(CheckpointError::Dtype {
                    path: path.to_owned(),
                    key: name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        tensors.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcnn_config::config::Config;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/torch");

    fn architecture() -> Architecture {
        Config::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config.yaml"
        )))
        .unwrap()
        .architecture()
        .unwrap()
    }

    #[test]
    fn pth_and_safetensors_fixtures_hold_the_same_checked_tensors() {
        let a = architecture();
        let pth =
            Checkpoint::read_checked(&Path::new(FIXTURES).join("random_init.pth"), &a).unwrap();
        let st = Checkpoint::read_checked(&Path::new(FIXTURES).join("random_init.safetensors"), &a)
            .unwrap();
        assert_eq!(pth.tensors, st.tensors);
        assert_eq!(pth.tensors.len(), 8);
        let w = pth.get("layers.7.weight");
        assert_eq!(w.shape, [256, 3136]);
        assert_eq!(w.data.len(), 256 * 3136);
        // PyTorch's default init is uniform in ±1/sqrt(fan_in).
        let bound = 1.0 / (3136f32).sqrt();
        assert!(w.data.iter().all(|v| v.abs() <= bound));
        assert!(w.data.iter().any(|v| v.abs() > bound * 0.9));
    }

    fn fixture() -> Checkpoint {
        Checkpoint::read(&Path::new(FIXTURES).join("random_init.safetensors")).unwrap()
    }

    #[test]
    fn mismatches_name_the_key_and_both_shapes() {
        let a = architecture();
        let mut c = fixture();
        c.tensors.remove("layers.2.bias");
        let err = c.check(&a).unwrap_err().to_string();
        assert!(
            err.contains("missing key layers.2.bias (expected shape [16])"),
            "{err}"
        );

        let mut c = fixture();
        c.tensors.insert(
            "layers.11.weight".into(),
            Tensor {
                shape: vec![2],
                data: vec![0.0; 2],
            },
        );
        let err = c.check(&a).unwrap_err().to_string();
        assert!(
            err.contains("unexpected key layers.11.weight (shape [2])"),
            "{err}"
        );

        let mut c = fixture();
        c.tensors.get_mut("layers.10.weight").unwrap().shape = vec![10, 128, 2];
        let err = c.check(&a).unwrap_err().to_string();
        assert!(
            err.contains("layers.10.weight has shape [10, 128, 2], expected [10, 256]"),
            "{err}"
        );

        let mut c = fixture();
        c.tensors.get_mut("layers.0.weight").unwrap().data[5] = f32::NEG_INFINITY;
        let err = c.check(&a).unwrap_err().to_string();
        assert!(
            err.contains("layers.0.weight (shape [8, 1, 3, 3]) holds -inf at flat index 5"),
            "{err}"
        );
    }

    #[test]
    fn other_files_are_rejected_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pth");
        std::fs::write(&path, b"not a checkpoint at all").unwrap();
        assert!(matches!(
            Checkpoint::read(&path),
            Err(CheckpointError::UnknownFormat { .. })
        ));
        std::fs::write(&path, b"PK\x03\x04 truncated zip").unwrap();
        let err = Checkpoint::read(&path).unwrap_err();
        assert!(
            matches!(
                err,
                CheckpointError::Pth {
                    source: ref pth,
                    ..
                } if matches!(**pth, PthError::Zip(_))
            ),
            "{err}"
        );
        assert!(matches!(
            Checkpoint::read(&dir.path().join("absent")),
            Err(CheckpointError::Io { .. })
        ));
    }
}
