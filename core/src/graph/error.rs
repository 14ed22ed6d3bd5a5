//! Why a graph blob was rejected: one variant per check, naming the node or
//! tensor (0-based indices into the header's lists).

use core::fmt;

use crate::format::layout::SectionKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphError {
    NoNodes,
    /// Tensor 0 is not a non-empty image with a valid scale (it is read as `pixel − 128`;
    /// its scale and zero point carry the input normalization).
    BadInputTensor,
    /// A node names a tensor index past the tensor list.
    UnknownTensor {
        node: usize,
        tensor: u16,
    },
    /// A node has the wrong number of inputs for its operator (Add two, the others one).
    InputCount {
        node: usize,
    },
    /// A node reads a tensor no earlier node wrote: the order is not topological (or the
    /// graph has a cycle).
    NotTopological {
        node: usize,
        tensor: u16,
    },
    /// A node writes the image or a tensor another node already wrote.
    WrittenTwice {
        node: usize,
        tensor: u16,
    },
    /// A tensor no node writes (other than the image).
    NeverWritten {
        tensor: u16,
    },
    /// A tensor's declared shape is not what its producer computes from its inputs.
    ShapeMismatch {
        node: usize,
        tensor: u16,
    },
    /// A tensor's quantization is invalid (scale not finite and positive), or a pool's output
    /// quantization differs from its input's.
    BadQuant {
        tensor: u16,
    },
    /// A tensor is empty or larger than `shape::MAX_TENSOR_LEN`.
    BadTensorSize {
        tensor: u16,
    },
    /// A tensor runs past `arena_len`.
    OutsideArena {
        tensor: u16,
    },
    /// Two tensors alive at the same node share bytes of the arena.
    Overlap {
        first: u16,
        second: u16,
    },
    /// Zero kernel or stride, a pad not smaller than its kernel, or a window larger than the
    /// padded input.
    BadWindow {
        node: usize,
    },
    /// Conv groups do not divide the input and output channels.
    BadGroups {
        node: usize,
    },
    /// The fused clamp's minimum exceeds its maximum.
    BadClamp {
        node: usize,
    },
    /// An Add's left shift exceeds 20, a multiplier is negative, or a shift is outside −31..=0.
    BadAdd {
        node: usize,
    },
    /// One output needs more than `ops::dot::MAX_DOT_LEN` products.
    DotTooLong {
        node: usize,
    },
    Section {
        node: usize,
        section: SectionKind,
        problem: SectionProblem,
    },
    /// A weight is −128.
    WeightOutOfRange {
        node: usize,
    },
    NegativeMultiplier {
        node: usize,
    },
    ShiftOutOfRange {
        node: usize,
    },
    BadWeightScale {
        node: usize,
    },
    /// The output tensor index is unknown or not a C×1×1 vector.
    BadOutput,
}

/// What is wrong with a data section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionProblem {
    Length,
    OutOfBounds,
    Misaligned,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GraphError::*;
        match *self {
            NoNodes => f.write_str("graph has no nodes"),
            BadInputTensor => {
                f.write_str("tensor 0 is not a non-empty image with a positive, finite scale")
            }
            UnknownTensor { node, tensor } => {
                write!(f, "node {node} names tensor {tensor}, which does not exist")
            }
            InputCount { node } => write!(f, "node {node} has the wrong number of inputs"),
            NotTopological { node, tensor } => write!(
                f,
                "node {node} reads tensor {tensor} before any node writes it (not topological)"
            ),
            WrittenTwice { node, tensor } => {
                write!(
                    f,
                    "node {node} writes tensor {tensor}, which is already written"
                )
            }
            NeverWritten { tensor } => write!(f, "no node writes tensor {tensor}"),
            ShapeMismatch { node, tensor } => write!(
                f,
                "node {node}: tensor {tensor}'s shape is not what the node computes"
            ),
            BadQuant { tensor } => write!(
                f,
                "tensor {tensor}: scale not finite and positive, or a pool changes it"
            ),
            BadTensorSize { tensor } => write!(f, "tensor {tensor} is empty or too large"),
            OutsideArena { tensor } => write!(f, "tensor {tensor} runs past the arena"),
            Overlap { first, second } => write!(
                f,
                "tensors {first} and {second} are alive together but share arena bytes"
            ),
            BadWindow { node } => write!(
                f,
                "node {node}: zero kernel or stride, pad >= kernel, or window larger than input"
            ),
            BadGroups { node } => write!(
                f,
                "node {node}: groups do not divide the input and output channels"
            ),
            BadClamp { node } => write!(f, "node {node}: clamp minimum exceeds its maximum"),
            BadAdd { node } => write!(f, "node {node}: Add parameters out of range"),
            DotTooLong { node } => write!(f, "node {node}: too many products per output"),
            Section {
                node,
                section,
                problem,
            } => write!(f, "node {node}: {section:?} section: {problem:?}"),
            WeightOutOfRange { node } => {
                write!(f, "node {node}: a weight is -128 (allowed: -127..=127)")
            }
            NegativeMultiplier { node } => {
                write!(f, "node {node}: a requantization multiplier is negative")
            }
            ShiftOutOfRange { node } => {
                write!(f, "node {node}: a requantization shift is outside -31..=30")
            }
            BadWeightScale { node } => {
                write!(f, "node {node}: a weight scale is not finite and positive")
            }
            BadOutput => f.write_str("the output tensor is unknown or not a C×1×1 vector"),
        }
    }
}
