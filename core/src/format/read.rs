//! Reading blobs: the framing's checks (prefix, checksum, header bounds), the counterpart of
//! [`super::write`]. The header's meaning (shapes, sections, ranges) is checked by
//! `crate::model` and `crate::graph`.

use super::decode::Decoder;
use super::layout::{self, CHECKSUM_LEN, Layout, MAGIC, PREFIX_LEN, to_usize};
use crate::checksum::Checksum;
use crate::error::ModelError;
use crate::graph::view::Graph;

/// The checksum `blob`'s last [`CHECKSUM_LEN`] bytes must hold: that of the version in its
/// prefix over every byte before them. `None` when the blob is shorter than the prefix and
/// the checksum, or names a version this engine does not read.
pub fn expected_checksum(blob: &[u8]) -> Option<u32> {
    let body = blob.len().checked_sub(CHECKSUM_LEN)?;
    let version = u16::from_le_bytes([*blob.get(4)?, *blob.get(5)?]);
    if body < PREFIX_LEN {
        return None;
    }
    Some(layout::framing(version)?.checksum.of(blob.get(..body)?))
}

/// Checks the checksum of a whole blob (xxHash32 for versions 3 and 4, CRC-32 for 1 and 2):
/// the check [`Model::from_bytes`](crate::Model::from_bytes) makes and
/// [`Model::from_bytes_unverified`](crate::Model::from_bytes_unverified) leaves out.
/// It reads the prefix for the version, so it refuses a blob too short, with another magic
/// or of another version as `from_bytes` does.
pub fn verify_checksum(blob: &[u8]) -> Result<(), ModelError> {
    let framing = prefix_framing(blob)?;
    check_checksum(blob, framing.checksum)
}

/// The framing the prefix names, once its length, magic and version are checked.
fn prefix_framing(blob: &[u8]) -> Result<layout::Framing, ModelError> {
    let too_short = ModelError::TooShort { len: blob.len() };
    let (body, _) = blob
        .split_last_chunk::<{ layout::CHECKSUM_LEN }>()
        .ok_or(too_short)?;
    let (&[m0, m1, m2, m3, v0, v1, ..], _) =
        body.split_first_chunk::<PREFIX_LEN>().ok_or(too_short)?;
    if [m0, m1, m2, m3] != MAGIC {
        return Err(ModelError::BadMagic);
    }
    let version = u16::from_le_bytes([v0, v1]);
    layout::framing(version).ok_or(ModelError::UnsupportedVersion { found: version })
}

// Not inlined: the hash's locals would otherwise sit in `parse`'s frame, on the stack all
// through the header's decoding, the load's deepest part.
#[inline(never)]
fn check_checksum(blob: &[u8], checksum: Checksum) -> Result<(), ModelError> {
    let (body, stored) = blob
        .split_last_chunk::<{ layout::CHECKSUM_LEN }>()
        .ok_or(ModelError::TooShort { len: blob.len() })?;
    let stored = u32::from_le_bytes(*stored);
    let computed = checksum.of(body);
    if stored != computed {
        return Err(ModelError::ChecksumMismatch {
            checksum,
            stored,
            computed,
        });
    }
    Ok(())
}

/// The parts of a blob whose framing checked out.
pub(crate) struct Framed<'a> {
    pub input: layout::Shape,
    /// The encoded layers, `layer_count` of them, each of which decodes.
    pub layers: &'a [u8],
    pub layer_count: usize,
    pub data: &'a [u8],
}

/// A blob whose framing checked out: a layer sequence or a validated graph.
pub(crate) enum Parsed<'a> {
    Sequential(Framed<'a>),
    Graph(Graph<'a>),
}

/// Checks the framing (prefix, checksum if asked, header, padding, data length). The header is
/// decoded piece by piece (shape, layer count, each layer, data length) as postcard would
/// decode a [`Header`](layout::Header) (`super::decode`), without ever holding the whole layer list.
pub(crate) fn parse(blob: &[u8], check_checksum: bool) -> Result<Parsed<'_>, ModelError> {
    let framing = prefix_framing(blob)?;
    let too_short = ModelError::TooShort { len: blob.len() };
    let (body, _) = blob
        .split_last_chunk::<{ layout::CHECKSUM_LEN }>()
        .ok_or(too_short)?;
    let (prefix, rest) = body.split_first_chunk::<PREFIX_LEN>().ok_or(too_short)?;
    let [_, _, _, _, _, _, f0, f1, h0, h1, h2, h3] = *prefix;
    if framing.layout == Layout::Graph && !cfg!(feature = "graph") {
        return Err(ModelError::GraphSupportNotBuilt);
    }
    let flags = u16::from_le_bytes([f0, f1]);
    if flags != 0 {
        return Err(ModelError::UnknownFlags { found: flags });
    }
    if check_checksum {
        self::check_checksum(blob, framing.checksum)?;
    }
    let header_len = u32::from_le_bytes([h0, h1, h2, h3]);
    let out_of_bounds = ModelError::HeaderOutOfBounds { header_len };
    let (header_bytes, _) = rest
        .split_at_checked(to_usize(header_len))
        .ok_or(out_of_bounds)?;
    let decode = ModelError::HeaderDecode;
    if framing.layout == Layout::Graph {
        let data_start = layout::data_offset(header_bytes.len());
        let padding = body
            .get(PREFIX_LEN + header_bytes.len()..data_start)
            .unwrap_or_default();
        if padding.iter().any(|&b| b != 0) {
            return Err(ModelError::NonZeroPadding);
        }
        let data = body.get(data_start..).unwrap_or_default();
        return crate::graph::load(header_bytes, data).map(Parsed::Graph);
    }
    let mut header = Decoder::new(header_bytes);
    let input = header.shape().ok_or(decode)?;
    let layer_count = to_usize(header.u32().ok_or(decode)?);
    if layer_count > layout::MAX_LAYERS {
        return Err(decode);
    }
    let layers_start = header.rest();
    for _ in 0..layer_count {
        header.layer().ok_or(decode)?;
    }
    let layers = layers_start
        .get(..layers_start.len() - header.rest().len())
        .unwrap_or_default();
    let data_len = header.u32().ok_or(decode)?;
    let unused = header.rest();
    if !unused.is_empty() {
        return Err(ModelError::HeaderTrailingBytes);
    }
    let data_start = layout::data_offset(header_bytes.len());
    let data = body.get(data_start..).unwrap_or_default();
    if data.len() != to_usize(data_len) {
        return Err(ModelError::DataLength {
            header: data_len,
            actual: data.len(),
        });
    }
    let padding = body
        .get(PREFIX_LEN + header_bytes.len()..data_start)
        .unwrap_or_default();
    if padding.iter().any(|&b| b != 0) {
        return Err(ModelError::NonZeroPadding);
    }
    Ok(Parsed::Sequential(Framed {
        input,
        layers,
        layer_count,
        data,
    }))
}
