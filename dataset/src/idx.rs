//! The IDX format (LeCun's MNIST files): a big-endian header, then raw u8 data.
//! Files may be gzip-compressed; that is detected from the gzip magic, not the name.

use std::io::Read;
use std::path::Path;

use crate::DatasetError;

pub const IMAGES_MAGIC: u32 = 2051;
pub const LABELS_MAGIC: u32 = 2049;
pub const ROWS: u32 = 28;
pub const COLS: u32 = 28;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Returns the decompressed content of `bytes` (read from `path`), or `bytes` itself when raw.
pub fn decompress(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, DatasetError> {
    if !is_gzip(&bytes) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| DatasetError::Gzip {
            path: path.to_owned(),
            source,
        })?;
    Ok(out)
}

/// Checks the magic and length of an IDX file with `dims` u32 dimensions; returns
/// the dimensions and the data after the header.
fn parse<'a>(
    path: &Path,
    content: &'a [u8],
    magic: u32,
    dims: usize,
) -> Result<(Vec<u32>, &'a [u8]), DatasetError> {
    let header_len = 4 + 4 * dims;
    let length_error = |expected| DatasetError::Length {
        path: path.to_owned(),
        expected,
        actual: content.len(),
    };
    if content.len() < 4 {
        return Err(length_error(header_len));
    }
    let be_u32 = |at: usize| {
        u32::from_be_bytes([
            content[at],
            content[at + 1],
            content[at + 2],
            content[at + 3],
        ])
    };
    let actual = be_u32(0);
    if actual != magic {
        return Err(DatasetError::Magic {
            path: path.to_owned(),
            expected: magic,
            actual,
        });
    }
    if content.len() < header_len {
        return Err(length_error(header_len));
    }
    let sizes: Vec<u32> = (0..dims).map(|d| be_u32(4 + 4 * d)).collect();
    // Hostile dimensions can multiply past usize::MAX (found by fuzz/run.sh): such a file
    // promises more bytes than can exist.
    let expected = sizes
        .iter()
        .try_fold(1_usize, |n, &s| n.checked_mul(s as usize))
        .and_then(|data_len| data_len.checked_add(header_len));
    if expected != Some(content.len()) {
        return Err(length_error(expected.unwrap_or(usize::MAX)));
    }
    Ok((sizes, &content[header_len..]))
}

/// The pixels of an images file (magic 2051), `count × 28 × 28` bytes.
pub fn parse_images(path: &Path, content: &[u8]) -> Result<Vec<u8>, DatasetError> {
    let (sizes, data) = parse(path, content, IMAGES_MAGIC, 3)?;
    if sizes[1] != ROWS || sizes[2] != COLS {
        return Err(DatasetError::Dims {
            path: path.to_owned(),
            rows: sizes[1],
            cols: sizes[2],
            expected_rows: ROWS,
            expected_cols: COLS,
        });
    }
    Ok(data.to_vec())
}

/// The labels of a labels file (magic 2049), each checked to be a class in `0..classes`.
pub fn parse_labels(path: &Path, content: &[u8], classes: u8) -> Result<Vec<u8>, DatasetError> {
    let (_, data) = parse(path, content, LABELS_MAGIC, 1)?;
    if let Some((index, &label)) = data.iter().enumerate().find(|&(_, &l)| l >= classes) {
        return Err(DatasetError::Label {
            path: path.to_owned(),
            index,
            label,
            max: classes - 1,
        });
    }
    Ok(data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images_file(count: u32, rows: u32, cols: u32, data_len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IMAGES_MAGIC, count, rows, cols] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.resize(v.len() + data_len, 7);
        v
    }

    fn labels_file(magic: u32, labels: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    #[test]
    fn parses_well_formed_images_and_labels() {
        let p = Path::new("x");
        let pixels = parse_images(p, &images_file(2, 28, 28, 2 * 784)).unwrap();
        assert_eq!(pixels.len(), 2 * 784);
        assert!(pixels.iter().all(|&b| b == 7));
        assert_eq!(
            parse_labels(p, &labels_file(LABELS_MAGIC, &[0, 9, 3]), 10).unwrap(),
            [0, 9, 3]
        );
    }

    #[test]
    fn rejects_wrong_magic_naming_the_file() {
        let err = parse_labels(Path::new("dir/lbl"), &labels_file(2051, &[1]), 10).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::Magic {
                expected: 2049,
                actual: 2051,
                ..
            }
        ));
        assert!(err.to_string().contains("dir/lbl"), "{err}");
        let mut images = images_file(1, 28, 28, 784);
        images[3] = 0x01; // 2049
        let err = parse_images(Path::new("img"), &images).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::Magic {
                expected: 2051,
                actual: 2049,
                ..
            }
        ));
    }

    #[test]
    fn rejects_truncated_and_overlong_data() {
        let p = Path::new("img");
        let err = parse_images(p, &images_file(2, 28, 28, 784)).unwrap_err();
        assert!(
            matches!(err, DatasetError::Length { expected, actual, .. } if expected == 16 + 2 * 784 && actual == 16 + 784)
        );
        assert!(matches!(
            parse_images(p, &images_file(1, 28, 28, 785)),
            Err(DatasetError::Length { .. })
        ));
        // Cut inside the header.
        assert!(matches!(
            parse_images(p, &images_file(1, 28, 28, 0)[..10]),
            Err(DatasetError::Length { .. })
        ));
        assert!(matches!(
            parse_images(p, &[0x00, 0x00]),
            Err(DatasetError::Length { .. })
        ));
    }

    /// Regression (fuzz target `idx`): dimensions whose product overflows usize panicked.
    #[test]
    fn rejects_dimensions_whose_product_overflows() {
        let crash = [
            0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb, 0, 0xf9, 0, 0x10, 0,
        ];
        let err = parse_images(Path::new("img"), &crash).unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::Length {
                    expected: usize::MAX,
                    actual: 17,
                    ..
                }
            ),
            "{err}"
        );
        let mut labels = LABELS_MAGIC.to_be_bytes().to_vec();
        labels.extend(u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_labels(Path::new("lbl"), &labels, 10),
            Err(DatasetError::Length { .. })
        ));
    }

    #[test]
    fn rejects_other_image_sizes() {
        let err = parse_images(Path::new("img"), &images_file(1, 32, 32, 1024)).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::Dims {
                rows: 32,
                cols: 32,
                ..
            }
        ));
    }

    #[test]
    fn rejects_label_ten_with_its_index() {
        let err = parse_labels(
            Path::new("lbl"),
            &labels_file(LABELS_MAGIC, &[0, 9, 10, 3]),
            10,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            DatasetError::Label {
                index: 2,
                label: 10,
                ..
            }
        ));
        assert!(err.to_string().contains("label 10 at index 2"), "{err}");
    }

    #[test]
    fn decompresses_gzip_and_passes_raw_through() {
        use std::io::Write;
        let raw = labels_file(LABELS_MAGIC, &[1, 2, 3]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decompress(Path::new("a.gz"), gz.clone()).unwrap(), raw);
        assert_eq!(decompress(Path::new("a"), raw.clone()).unwrap(), raw);
        let err = decompress(Path::new("bad.gz"), gz[..gz.len() / 2].to_vec()).unwrap_err();
        assert!(matches!(err, DatasetError::Gzip { .. }));
    }
}
