//! A `.pth` as `torch.save` writes it since PyTorch 1.6: a zip (entries stored, not
//! compressed) holding `<archive>/data.pkl`, the state_dict's pickle ([`super::pickle`]), and
//! one file `<archive>/data/<key>` per storage, little-endian.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use super::pickle::{self, StorageType, TensorView, load_state_dict};
use super::tensor::{TRAINING_COUNTER, Tensor};

/// What is wrong with a `.pth` file.
#[derive(Debug, thiserror::Error)]
pub enum PthError {
    #[error("not a readable PyTorch checkpoint")]
    Zip(#[from] zip::result::ZipError),
    #[error("not a readable PyTorch checkpoint")]
    Read(#[from] std::io::Error),
    #[error("not a readable PyTorch checkpoint: no data.pkl in the archive")]
    NoPickle,
    #[error("not a readable PyTorch checkpoint: its storages are big-endian")]
    BigEndian,
    #[error("not a readable PyTorch checkpoint: its pickle")]
    Pickle(#[from] pickle::PickleError),
    #[error("{key}: its storage {name}")]
    Storage {
        key: String,
        name: String,
        #[source]
        source: Box<PthError>,
    },
    #[error("{key} has dtype {dtype}, expected a float type")]
    Dtype { key: String, dtype: &'static str },
    #[error("{key} has shape {shape:?}, more data than the whole file holds")]
    TensorTooLarge { key: String, shape: Vec<usize> },
    #[error(
        "{key}: shape {shape:?} with stride {stride:?} from offset {offset} reaches past its storage of {elements} elements"
    )]
    OutsideStorage {
        key: String,
        shape: Vec<usize>,
        stride: Vec<usize>,
        offset: usize,
        elements: usize,
    },
}

/// The float tensors of the state_dict in `bytes` (a whole `.pth` file), by key. BatchNorm's
/// `num_batches_tracked` counters are left out; any other non-float tensor is an error.
pub fn read(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, PthError> {
    // Built without compression support: torch stores its entries, so a compressed entry
    // (a zip bomb among them) is refused by the zip crate rather than inflated.
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))?;
    let pickle_name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|name| name.ends_with("/data.pkl") || name == "data.pkl")
        .map(|name| name.into_owned())
        .ok_or(PthError::NoPickle)?;
    let archive = pickle_name.strip_suffix("data.pkl").unwrap_or_default();
    if let Ok(order) = entry(&mut zip, &format!("{archive}byteorder"), bytes.len())
        && order != b"little"
    {
        return Err(PthError::BigEndian);
    }
    let views = load_state_dict(&entry(&mut zip, &pickle_name, bytes.len())?)?;

    let mut storages: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (key, view) in views {
        if !view.dtype.is_float() {
            if key.ends_with(TRAINING_COUNTER) {
                continue;
            }
            return Err(PthError::Dtype {
                key,
                dtype: view.dtype.name(),
            });
        }
        // A tensor never holds more elements than its storage in a real file, which also
        // bounds what is allocated below by the file's own size.
        let elements = view
            .shape
            .iter()
            .try_fold(1_usize, |n, &d| n.checked_mul(d));
        if elements
            .and_then(|n| n.checked_mul(view.dtype.size_in_bytes()))
            .is_none_or(|len| len > bytes.len())
        {
            return Err(PthError::TensorTooLarge {
                key,
                shape: view.shape,
            });
        }
        if !storages.contains_key(&view.storage) {
            let name = format!("{archive}data/{}", view.storage);
            let data = entry(&mut zip, &name, bytes.len()).map_err(|source| PthError::Storage {
                key: key.clone(),
                name,
                source: Box::new(source),
            })?;
            storages.insert(view.storage.clone(), data);
        }
        let storage = &storages[&view.storage];
        let data = gather(&view, storage).ok_or_else(|| PthError::OutsideStorage {
            key: key.clone(),
            shape: view.shape.clone(),
            stride: view.stride.clone(),
            offset: view.offset,
            elements: storage.len() / view.dtype.size_in_bytes(),
        })?;
        tensors.insert(
            key,
            Tensor {
                shape: view.shape,
                data,
            },
        );
    }
    Ok(tensors)
}

/// The bytes of the zip entry `name`, read up to `limit` bytes.
fn entry(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limit: usize,
) -> Result<Vec<u8>, PthError> {
    let file = zip.by_name(name)?;
    let mut data = Vec::new();
    file.take(limit as u64).read_to_end(&mut data)?;
    Ok(data)
}

/// The view's elements in row-major order as f32, or `None` when one lies outside the storage
/// (the pickle's own claim of the storage's length is not trusted: the bytes are).
fn gather(view: &TensorView, storage: &[u8]) -> Option<Vec<f32>> {
    let size = view.dtype.size_in_bytes();
    let available = storage.len() / size;
    let count: usize = view.shape.iter().product();
    if count == 0 {
        return Some(Vec::new());
    }
    let last = view
        .shape
        .iter()
        .zip(&view.stride)
        .try_fold(view.offset, |at, (&n, &s)| {
            at.checked_add((n - 1).checked_mul(s)?)
        })?;
    if last >= available {
        return None;
    }
    let mut data = Vec::with_capacity(count);
    let mut index = vec![0_usize; view.shape.len()];
    for _ in 0..count {
        let at = view.offset
            + index
                .iter()
                .zip(&view.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        let bytes = storage.get(at * size..(at + 1) * size)?;
        data.push(element(view.dtype, bytes));
        // Row-major: the last index moves fastest.
        for (i, &n) in index.iter_mut().zip(&view.shape).rev() {
            *i += 1;
            if *i < n {
                break;
            }
            *i = 0;
        }
    }
    Some(data)
}

fn element(dtype: StorageType, b: &[u8]) -> f32 {
    match (dtype, b) {
        (StorageType::F32, &[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
        (StorageType::F64, &[a, b, c, d, e, f, g, h]) => {
            f64::from_le_bytes([a, b, c, d, e, f, g, h]) as f32
        }
        (StorageType::BF16, &[a, b]) => f32::from_bits(u32::from(u16::from_le_bytes([a, b])) << 16),
        (StorageType::F16, &[a, b]) => f16_to_f32(u16::from_le_bytes([a, b])),
        // `read` passes float storages only.
        _ => f32::NAN,
    }
}

/// IEEE 754 binary16 to binary32, exactly (every half value is a float value).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let fraction = f32::from(h & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f32.powi(-24),
        0x1f if fraction == 0.0 => f32::INFINITY,
        0x1f => f32::NAN,
        e => (1.0 + fraction / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(shape: &[usize], stride: &[usize], offset: usize) -> TensorView {
        TensorView {
            storage: "0".into(),
            dtype: StorageType::F32,
            storage_len: 0,
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    fn floats(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn strided_views_are_read_in_row_major_order() {
        let storage = floats(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // A transposed 2x3 (a 3x2 stored row-major), from offset 1.
        assert_eq!(
            gather(&view(&[3, 2], &[1, 3], 1), &storage),
            Some(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
        );
        assert_eq!(gather(&view(&[2, 3], &[3, 1], 2), &storage), None);
        assert_eq!(gather(&view(&[0, 3], &[3, 1], 99), &storage), Some(vec![]));
        assert_eq!(
            gather(&view(&[2], &[usize::MAX], 0), &storage),
            None,
            "an overflowing stride is outside the storage"
        );
    }

    #[test]
    fn half_precision_values_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
