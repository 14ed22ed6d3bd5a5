//! The blob's byte layout: the constants, what each format version frames (header and
//! checksum), and the header types as postcard encodes them. See [`crate::format`].

use serde::{Deserialize, Serialize};

use crate::checksum::Checksum;

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

/// A length or offset from the header as an index: lossless on the 32- and 64-bit targets we
/// build for; saturates elsewhere so that bounds checks fail instead of wrapping.
pub(crate) fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Offset of the data section for a header of `header_len` bytes: after the prefix and the
/// header, rounded up to 4.
pub const fn data_offset(header_len: usize) -> usize {
    (PREFIX_LEN + header_len).next_multiple_of(4)
}

/// The data-section arrays of a layer, to say which one is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Weights,
    Bias,
    Multiplier,
    Shift,
    WeightScales,
}
