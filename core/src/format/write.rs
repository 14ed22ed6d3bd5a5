//! Writing blobs: the encoder of both headers and the data-section writer, which apply the
//! layout rules of [`crate::format`] so that writers never repeat them.

use serde::Serialize;

use super::layout::{
    CHECKSUM, CHECKSUM_LEN, GRAPH_VERSION, Header, MAGIC, PREFIX_LEN, Section, VERSION, data_offset,
};
use crate::graph::format::GraphHeader;

/// Why a blob could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// postcard could not serialize the header.
    Header,
    /// `header.data_len` differs from the data given.
    DataLenMismatch { header: u32, data: usize },
    /// The blob would exceed `u32` lengths.
    TooLarge,
    /// The output buffer is smaller than the blob.
    BufferTooSmall { needed: usize },
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Header => f.write_str("the model header could not be serialized"),
            Self::DataLenMismatch { header, data } => {
                write!(f, "header says {header} data bytes but {data} were given")
            }
            Self::TooLarge => f.write_str("the blob would exceed 4 GiB"),
            Self::BufferTooSmall { needed } => write!(f, "the output buffer needs {needed} bytes"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Bytes `encode` writes for `header` and `data_len` bytes of data.
pub fn encoded_len(header: &Header, data_len: usize) -> Result<usize, EncodeError> {
    framed_len(header, data_len)
}

/// Bytes [`encode_graph`] writes for `header` and `data_len` bytes of data.
pub fn graph_encoded_len(header: &GraphHeader, data_len: usize) -> Result<usize, EncodeError> {
    framed_len(header, data_len)
}

fn framed_len<H: Serialize>(header: &H, data_len: usize) -> Result<usize, EncodeError> {
    let header_len =
        postcard::serialize_with_flavor(header, postcard::ser_flavors::Size::default())
            .map_err(|_| EncodeError::Header)?;
    data_offset(header_len)
        .checked_add(data_len)
        .and_then(|n| n.checked_add(CHECKSUM_LEN))
        .filter(|&n| u32::try_from(n).is_ok())
        .ok_or(EncodeError::TooLarge)
}

/// Writes a version-[`VERSION`] blob (prefix, header, padding, data, checksum) into `out` and
/// returns its length.
///
/// This only lays bytes out; `Model::from_bytes` on the result is the check that the
/// model itself is valid.
pub fn encode(header: &Header, data: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_framed(VERSION, header, header.data_len, data, out)
}

/// [`encode`] for a graph blob, version [`GRAPH_VERSION`] ([`crate::graph::format`]).
pub fn encode_graph(
    header: &GraphHeader,
    data: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    encode_framed(GRAPH_VERSION, header, header.data_len, data, out)
}

/// The framing every version shares: prefix, header, padding, data, checksum (the one
/// [`CHECKSUM`] of the versions written now).
fn encode_framed<H: Serialize>(
    version: u16,
    header: &H,
    data_len: u32,
    data: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    if usize::try_from(data_len).ok() != Some(data.len()) {
        return Err(EncodeError::DataLenMismatch {
            header: data_len,
            data: data.len(),
        });
    }
    let total = framed_len(header, data.len())?;
    let out = out
        .get_mut(..total)
        .ok_or(EncodeError::BufferTooSmall { needed: total })?;
    out.fill(0);
    let (prefix, rest) = out.split_at_mut(PREFIX_LEN);
    let header_len = postcard::to_slice(header, rest)
        .map_err(|_| EncodeError::Header)?
        .len();
    let header_len_le = u32::try_from(header_len)
        .map_err(|_| EncodeError::TooLarge)?
        .to_le_bytes();
    for (dst, src) in prefix.iter_mut().zip(
        MAGIC
            .iter()
            .chain(&version.to_le_bytes())
            .chain(&[0, 0])
            .chain(&header_len_le),
    ) {
        *dst = *src;
    }
    let data_start = data_offset(header_len);
    let body_len = data_start + data.len();
    let (body, checksum) = out.split_at_mut(body_len);
    if let Some(dst) = body.get_mut(data_start..) {
        dst.copy_from_slice(data);
    }
    checksum.copy_from_slice(&CHECKSUM.of(body).to_le_bytes());
    Ok(total)
}

/// Appends sections to a data buffer with the alignment the format requires, so writers
/// never repeat the layout rules.
pub struct DataWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> DataWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far (the header's `data_len`).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The data written so far.
    pub fn data(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Weights or shifts: one byte each, unaligned.
    pub fn i8s(&mut self, values: &[i8]) -> Result<Section, EncodeError> {
        self.push(1, values.len(), values.iter().map(|v| v.to_le_bytes()))
    }

    /// Biases or multipliers: i32 LE, 4-aligned.
    pub fn i32s(&mut self, values: &[i32]) -> Result<Section, EncodeError> {
        self.push(4, values.len(), values.iter().map(|v| v.to_le_bytes()))
    }

    /// Weight scales: f32 LE, 4-aligned.
    pub fn f32s(&mut self, values: &[f32]) -> Result<Section, EncodeError> {
        self.push(4, values.len(), values.iter().map(|v| v.to_le_bytes()))
    }

    fn push<const N: usize>(
        &mut self,
        align: usize,
        count: usize,
        values: impl Iterator<Item = [u8; N]>,
    ) -> Result<Section, EncodeError> {
        let start = self.len.next_multiple_of(align);
        let bytes = count.checked_mul(N).ok_or(EncodeError::TooLarge)?;
        let end = start.checked_add(bytes).ok_or(EncodeError::TooLarge)?;
        let section = Section {
            offset: u32::try_from(start).map_err(|_| EncodeError::TooLarge)?,
            len: u32::try_from(bytes).map_err(|_| EncodeError::TooLarge)?,
        };
        let dst = self
            .buf
            .get_mut(self.len..end)
            .ok_or(EncodeError::BufferTooSmall { needed: end })?;
        let (padding, dst) = dst.split_at_mut(start - self.len);
        padding.fill(0);
        for (chunk, value) in dst.chunks_exact_mut(N).zip(values) {
            chunk.copy_from_slice(&value);
        }
        self.len = end;
        Ok(section)
    }
}
