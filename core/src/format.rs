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
//! D+data_len        4            CRC-32 (ISO-HDLC, as zlib's crc32) of bytes 0..D+data_len, LE
//! ```
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
//! i32 sections start at a multiple of 4 from `D`, and `D` itself is a multiple of 4,
//! so a blob placed on a 4-byte boundary (e.g. `include_bytes!` into an aligned static)
//! has naturally aligned i32 sections.
//!
//! Activations are int8 in C,H,W order, so Flatten is PyTorch's flatten.

use serde::{Deserialize, Serialize};

pub const MAGIC: [u8; 4] = *b"QCNN";
pub const VERSION: u16 = 1;
/// Magic, version, flags and header length.
pub const PREFIX_LEN: usize = 12;
pub const CRC_LEN: usize = 4;
/// Most layers one blob may hold (after fusion).
pub const MAX_LAYERS: usize = 16;
pub const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

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
