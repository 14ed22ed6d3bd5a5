//! The graph blob (version 4, or 2 with a CRC-32): a graph of nodes in topological order over
//! planned tensors.
//!
//! The framing is the layer sequence's (magic, version, flags, header length, header, padding,
//! data, checksum; see [`crate::format`]); only the version and the header differ. The header
//! is a postcard-encoded [`GraphHeader`]:
//!
//! - `tensors`: every int8 activation, C×H×W (a vector is C×1×1), with its quantization and
//!   its byte offset in the arena, planned at quantize time by tensor lifetimes. Tensor 0 is
//!   the image (`pixel − 128`; scale 1/255 and zero point −128 for a model that sees
//!   pixel/255, `1/(255·std)` and `round(255·mean) − 128` for one that sees
//!   `(pixel/255 − mean)/std`).
//! - `nodes`: in topological order; each reads one or two tensors and writes one. Activations
//!   (ReLU, ReLU6, any Clip) are fused into the producer as an int8 clamp.
//! - `output`: the tensor holding the logits (C×1×1).
//! - `arena_len`: the arena the plan needs; every tensor lies inside it.
//!
//! The data section holds, per Conv and Gemm node, the same arrays as a layer sequence: int8 weights
//! (Conv OIHW with I = in_channels / groups, Gemm `[out][in]`), and per output channel an i32
//! bias (input zero point folded in), an i32 Q31 multiplier, an i8 shift and an f32 weight
//! scale.

use serde::{Deserialize, Serialize};

use crate::format::layout::{QuantParams, Section, Shape};
use crate::shape::MapShape;

/// The format versions of graph blobs (defined with the others in [`crate::format`]).
pub use crate::format::layout::{CRC32_GRAPH_VERSION, GRAPH_VERSION};
/// Most nodes one graph blob may hold.
pub const MAX_NODES: usize = 64;
/// Most tensors one graph blob may hold (the image included).
pub const MAX_TENSORS: usize = 64;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GraphHeader {
    pub tensors: heapless::Vec<TensorDesc, MAX_TENSORS>,
    pub nodes: heapless::Vec<Node, MAX_NODES>,
    /// Index of the logits tensor.
    pub output: u16,
    pub arena_len: u32,
    pub data_len: u32,
}

/// One int8 activation tensor and where it lives in the arena.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct TensorDesc {
    pub shape: Shape,
    pub quant: QuantParams,
    pub offset: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Node {
    pub op: NodeOp,
    /// Tensor indices read: one, or two for `Add`.
    pub inputs: heapless::Vec<u16, 2>,
    /// Tensor index written.
    pub output: u16,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum NodeOp {
    Conv(Conv),
    MaxPool(Window),
    /// Output quantization equals the input's; the mean is rounded half away from zero
    /// (TFLite's reference average pool).
    AveragePool {
        window: Window,
        /// ONNX's `count_include_pad`: padded positions count, as a real 0 (the zero point).
        count_include_pad: bool,
    },
    /// The mean over H×W of each channel, same quantization as the input.
    GlobalAveragePool,
    Add(Add),
    Gemm(Gemm),
    /// A Conv whose output goes straight into a residual Add (issue 12: ResNet's second conv
    /// of a block). Inputs: the conv's input and the residual; the output may lie exactly over
    /// the residual, which each output element replaces once it is read. Bit for bit the Conv
    /// then the Add. (Added after the others: blobs without it encode as before.)
    ConvAdd(ConvAdd),
}

/// A 2-D window: kernel and stride as (h, w), pads as ONNX orders them (top, left, bottom,
/// right).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [u8; 2],
    pub stride: [u8; 2],
    pub pads: [u8; 4],
}

/// Per-output-channel arrays of a Conv or Gemm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSections {
    pub bias: Section,
    pub multiplier: Section,
    pub shift: Section,
    pub weight_scales: Section,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Conv {
    pub window: Window,
    /// 1, the input channels (depthwise), or any common divisor of in and out channels.
    pub groups: u16,
    /// The fused activation as an int8 range (min, max) of the output.
    pub clamp: [i8; 2],
    pub weights: Section,
    pub channels: ChannelSections,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Gemm {
    pub clamp: [i8; 2],
    pub weights: Section,
    pub channels: ChannelSections,
}

/// A Conv fused with the Add that is its output's one reader.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ConvAdd {
    pub conv: Conv,
    /// The zero point of the conv's int8 output (its `clamp` is in that quantization); the
    /// values never reach the arena, each goes straight into the Add.
    pub conv_zero_point: i8,
    /// The Add, its first input the conv's output, its second the residual.
    pub add: Add,
}

/// TFLite's integer Add of two int8 tensors with their own scales: each input, less its zero
/// point, is shifted left by `left_shift` and rescaled to twice the larger input scale
/// (`multipliers[0..2]`, `shifts[0..2]`), the sum rescaled to the output
/// (`multipliers[2]`, `shifts[2]`), the output zero point added and the result clamped.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Add {
    pub left_shift: u8,
    pub multipliers: [i32; 3],
    /// Right shifts as TFLite's `MultiplyByQuantizedMultiplier` takes them: −31..=0.
    pub shifts: [i8; 3],
    pub clamp: [i8; 2],
}

/// A tensor's shape as a feature map.
pub(crate) fn map(desc: &TensorDesc) -> MapShape {
    MapShape {
        c: desc.shape.c.into(),
        h: desc.shape.h.into(),
        w: desc.shape.w.into(),
    }
}
