//! The `.qcnn` model blob: layout and header types.
//!
//! ```text
//! offset            size         field
//! 0                 4            magic  b"QCNN"
//! 4                 2            format version, u16 little-endian (= VERSION)
//! 6                 2            flags, u16 little-endian, must be 0
//! 8                 4            header length H, u32 little-endian
//! 12                H            header: postcard-encoded `Header`
//! 12+H              P            zero padding up to a multiple of 4 (P < 4)
//! D = 12+H+P        data_len     data section: every `Section` is relative to D
//! D+data_len        4            checksum of bytes 0..D+data_len, LE
//! ```
//!
//! The version names the header and the checksum ([`framing`]):
//!
//! | version | header | checksum |
//! | --- | --- | --- |
//! | 1 | [`Header`] (a layer sequence) | CRC-32 (ISO-HDLC, as zlib's `crc32`) |
//! | 2 | [`crate::graph::GraphHeader`] (a graph) | CRC-32 |
//! | 3 (= [`VERSION`], written now) | [`Header`] | xxHash32, seed 0 |
//! | 4 (= [`GRAPH_VERSION`], written now) | [`crate::graph::GraphHeader`] | xxHash32, seed 0 |
//!
//! Versions 3 and 4 differ from 1 and 2 in the checksum only, which costs about a tenth of
//! the CRC-32's instructions on a Cortex-M4 ([`crate::checksum`]); blobs of versions 1 and 2
//! are still read, and run exactly as before.
//!
//! The data section holds, for every Conv2d and Linear layer:
//! - `weights`: i8, symmetric per output channel (zero point 0), values in −127..=127;
//!   Conv2d is OIHW, Linear is `[out][in]` (PyTorch's layouts).
//! - `bias`: i32 LE per output channel, at scale `s_in·s_w[o]`, with the input
//!   zero point already folded in: `bias[o] = round(b[o] / (s_in·s_w[o])) − z_in·Σ w[o]`.
//!   The kernels then accumulate `Σ w·x` on the raw int8 input, so padding
//!   contributes `w·z_in` and cancels exactly as if it were the real value 0.
//! - `multiplier`: i32 LE per output channel, in `0..=i32::MAX`, (TFLite's Q31
//!   mantissa, normally in `[2^30, 2^31)`).
//! - `shift`: i8 per output channel, in `-31..=30`; positive shifts left.
//!
//! - `weight_scales`: f32 LE per output channel (reports only).
//!
//! i32 and f32 sections start at a multiple of 4 from `D`, and `D` itself is a multiple of 4,
//! so a blob placed on a 4-byte boundary (e.g. `include_bytes!` into an aligned static)
//! has naturally aligned word sections. Writers should use [`DataWriter`] and [`encode`],
//! which apply these rules, and then `Model::from_bytes` to check what they wrote.
//!
//! Activations are int8 in C,H,W order, so Flatten is PyTorch's flatten.

use serde::{Deserialize, Serialize};

pub use crate::checksum::Checksum;

pub const MAGIC: [u8; 4] = *b"QCNN";
/// The version of the layer-sequence blobs written now (xxHash32).
pub const VERSION: u16 = 3;
/// The layer-sequence blobs written before version 3 (CRC-32), still read.
pub const CRC32_VERSION: u16 = 1;
/// The version of the graph blobs written now (xxHash32); [`crate::graph::format`].
pub const GRAPH_VERSION: u16 = 4;
/// The graph blobs written before version 4 (CRC-32), still read.
pub const CRC32_GRAPH_VERSION: u16 = 2;
/// Magic, version, flags and header length.
pub const PREFIX_LEN: usize = 12;
/// The trailing checksum.
pub const CHECKSUM_LEN: usize = 4;
/// Most layers one blob may hold (after fusion).
pub const MAX_LAYERS: usize = 16;
/// The checksum of the blobs written now ([`VERSION`] and [`GRAPH_VERSION`]).
pub const CHECKSUM: Checksum = Checksum::XxHash32;

/// Which header a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// [`Header`]: a layer sequence.
    Sequence,
    /// [`crate::graph::GraphHeader`]: a graph.
    Graph,
}

/// What a format version means: its header and its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    pub layout: Layout,
    pub checksum: Checksum,
}

/// The framing of format `version`; `None` for a version this engine does not read.
pub const fn framing(version: u16) -> Option<Framing> {
    let (layout, checksum) = match version {
        CRC32_VERSION => (Layout::Sequence, Checksum::Crc32),
        CRC32_GRAPH_VERSION => (Layout::Graph, Checksum::Crc32),
        VERSION => (Layout::Sequence, Checksum::XxHash32),
        GRAPH_VERSION => (Layout::Graph, Checksum::XxHash32),
        _ => return None,
    };
    Some(Framing { layout, checksum })
}

/// The u8 image maps in as `x_q = pixel − 128`: scale 1/255, zero point −128.
pub const INPUT_SCALE: f32 = 1.0 / 255.0;
pub const INPUT_ZERO_POINT: i8 = -128;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Header {
    /// Input tensor shape, C×H×W; the input is a u8 image of `c*h*w` bytes.
    pub input: Shape,
    pub layers: heapless::Vec<Layer, MAX_LAYERS>,
    /// Length of the data section in bytes.
    pub data_len: u32,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub c: u16,
    pub h: u16,
    pub w: u16,
}

/// Per-tensor affine quantization: `real = scale · (q − zero_point)`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i8,
}

impl QuantParams {
    /// The real value of `q`: `scale · (q − zero_point)`.
    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (f32::from(q) - f32::from(self.zero_point))
    }
}

/// A byte range of the data section.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    pub offset: u32,
    pub len: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Layer {
    Conv2d(Conv2d),
    MaxPool2d(Pool),
    Flatten,
    Linear(Linear),
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub kernel: u8,
    pub stride: u8,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Conv2d {
    pub in_channels: u16,
    pub out_channels: u16,
    /// Odd, square.
    pub kernel: u8,
    pub stride: u8,
    pub padding: u8,
    /// ReLU fused after requantization.
    pub relu: bool,
    /// MaxPool fused after ReLU, so the unpooled map is never stored.
    pub pool: Option<Pool>,
    pub weights: Section,
    pub requant: Requant,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Linear {
    pub in_features: u32,
    pub out_features: u32,
    pub relu: bool,
    pub weights: Section,
    pub requant: Requant,
}

/// Per-output-channel requantization of an int32 accumulator to int8.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Requant {
    pub bias: Section,
    pub multiplier: Section,
    pub shift: Section,
    /// The output activation's scale and zero point.
    pub output: QuantParams,
    /// Per-output-channel weight scales, f32 LE; only for reports and dequantizing, never on
    /// the inference path.
    pub weight_scales: Section,
}

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

/// The checksum `blob`'s last [`CHECKSUM_LEN`] bytes must hold: that of the version in its
/// prefix over every byte before them. `None` when the blob is shorter than the prefix and
/// the checksum, or names a version this engine does not read.
pub fn expected_checksum(blob: &[u8]) -> Option<u32> {
    let body = blob.len().checked_sub(CHECKSUM_LEN)?;
    let version = u16::from_le_bytes([*blob.get(4)?, *blob.get(5)?]);
    if body < PREFIX_LEN {
        return None;
    }
    Some(framing(version)?.checksum.of(blob.get(..body)?))
}

/// Offset of the data section for a header of `header_len` bytes: after the prefix and the
/// header, rounded up to 4.
pub const fn data_offset(header_len: usize) -> usize {
    (PREFIX_LEN + header_len).next_multiple_of(4)
}

/// Bytes `encode` writes for `header` and `data_len` bytes of data.
pub fn encoded_len(header: &Header, data_len: usize) -> Result<usize, EncodeError> {
    framed_len(header, data_len)
}

/// Bytes [`encode_graph`] writes for `header` and `data_len` bytes of data.
pub fn graph_encoded_len(
    header: &crate::graph::GraphHeader,
    data_len: usize,
) -> Result<usize, EncodeError> {
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
    header: &crate::graph::GraphHeader,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(data_len: u32) -> Header {
        Header {
            input: Shape { c: 1, h: 2, w: 2 },
            layers: heapless::Vec::new(),
            data_len,
        }
    }

    #[test]
    fn data_writer_aligns_word_sections() {
        let mut buf = [0xEE; 32];
        let mut writer = DataWriter::new(&mut buf);
        assert_eq!(
            writer.i8s(&[1, -1, 3]).unwrap(),
            Section { offset: 0, len: 3 }
        );
        assert_eq!(writer.i32s(&[-2]).unwrap(), Section { offset: 4, len: 4 });
        assert_eq!(writer.i8s(&[5]).unwrap(), Section { offset: 8, len: 1 });
        assert_eq!(writer.f32s(&[1.0]).unwrap(), Section { offset: 12, len: 4 });
        assert_eq!(writer.len(), 16);
        assert_eq!(
            writer.data(),
            [
                1, 0xFF, 3, 0, 0xFE, 0xFF, 0xFF, 0xFF, 5, 0, 0, 0, 0, 0, 0x80, 0x3F
            ]
        );
        assert_eq!(
            writer.i32s(&[0; 5]),
            Err(EncodeError::BufferTooSmall { needed: 36 })
        );
        assert_eq!(writer.len(), 16, "a failed push writes nothing");
    }

    #[test]
    fn encode_lays_out_prefix_header_padding_data_checksum() {
        let data = [9, 8, 7];
        let header = header(3);
        let len = encoded_len(&header, data.len()).unwrap();
        let mut out = vec![0xEE; len + 5];
        assert_eq!(encode(&header, &data, &mut out), Ok(len));
        let out = &out[..len];
        assert_eq!(out[..4], MAGIC);
        assert_eq!(out[4..8], [3, 0, 0, 0]);
        let header_len = u32::from_le_bytes(out[8..12].try_into().unwrap()) as usize;
        assert_eq!(
            postcard::from_bytes::<Header>(&out[12..12 + header_len]),
            Ok(header.clone())
        );
        let d = data_offset(header_len);
        assert_eq!(d % 4, 0);
        assert!(out[12 + header_len..d].iter().all(|&b| b == 0));
        assert_eq!(out[d..d + 3], data);
        assert_eq!(
            out[d + 3..],
            xxhash_rust::xxh32::xxh32(&out[..d + 3], 0).to_le_bytes()
        );
        assert_eq!(len, d + 3 + CHECKSUM_LEN);
    }

    #[test]
    fn every_version_names_its_header_and_checksum() {
        let expected = |layout, checksum| Some(Framing { layout, checksum });
        assert_eq!(
            framing(CRC32_VERSION),
            expected(Layout::Sequence, Checksum::Crc32)
        );
        assert_eq!(
            framing(CRC32_GRAPH_VERSION),
            expected(Layout::Graph, Checksum::Crc32)
        );
        assert_eq!(
            framing(VERSION),
            expected(Layout::Sequence, Checksum::XxHash32)
        );
        assert_eq!(
            framing(GRAPH_VERSION),
            expected(Layout::Graph, Checksum::XxHash32)
        );
        assert_eq!(
            (CRC32_VERSION, CRC32_GRAPH_VERSION, VERSION, GRAPH_VERSION),
            (1, 2, 3, 4)
        );
        assert_eq!(framing(0), None);
        assert_eq!(framing(5), None);
    }

    #[test]
    fn encode_refuses_inconsistent_input() {
        let mut out = [0; 64];
        assert_eq!(
            encode(&header(4), &[1, 2, 3], &mut out),
            Err(EncodeError::DataLenMismatch { header: 4, data: 3 })
        );
        let needed = encoded_len(&header(3), 3).unwrap();
        assert_eq!(
            encode(&header(3), &[1, 2, 3], &mut out[..needed - 1]),
            Err(EncodeError::BufferTooSmall { needed })
        );
    }
}
