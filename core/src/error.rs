//! Why a blob was rejected: [`ModelError`], one variant per check of the load (a graph's
//! checks are [`GraphError`]'s).

use core::fmt;

use crate::checksum::Checksum;
use crate::format::layout::SectionKind;
use crate::graph::error::GraphError;
use crate::ops::dot::MAX_DOT_LEN;
use crate::shape::MAX_TENSOR_LEN;

/// Why a blob was rejected. `layer` is the 0-based index in the header's layer list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelError {
    /// Shorter than the prefix plus the checksum.
    TooShort {
        len: usize,
    },
    BadMagic,
    UnsupportedVersion {
        found: u16,
    },
    UnknownFlags {
        found: u16,
    },
    /// The trailing checksum (the one the version names) differs from the bytes': a corrupt
    /// blob.
    ChecksumMismatch {
        checksum: Checksum,
        stored: u32,
        computed: u32,
    },
    /// The header length runs past the end of the blob.
    HeaderOutOfBounds {
        header_len: u32,
    },
    /// postcard could not decode the header (this includes more than `MAX_LAYERS` layers).
    HeaderDecode,
    /// The header decoded without using all of its declared length.
    HeaderTrailingBytes,
    /// The alignment padding after the header is not zero.
    NonZeroPadding,
    /// The header's `data_len` is not the number of bytes between header and checksum.
    DataLength {
        header: u32,
        actual: usize,
    },
    /// The input shape has a zero dimension.
    EmptyInput,
    /// The input holds more than `shape::MAX_TENSOR_LEN` bytes.
    InputTooLarge,
    NoLayers,
    /// Conv2d, MaxPool2d or Flatten got a vector (e.g. after Flatten or Linear).
    NeedsMap {
        layer: usize,
    },
    /// Linear got a C×H×W map: a Flatten is missing.
    NeedsVector {
        layer: usize,
    },
    /// Conv2d's `in_channels` differs from the incoming channels.
    ChannelMismatch {
        layer: usize,
        expected: usize,
        found: u16,
    },
    /// Linear's `in_features` differs from the incoming vector length.
    FeatureMismatch {
        layer: usize,
        expected: usize,
        found: u32,
    },
    /// Conv2d kernel is even (or 0).
    BadKernel {
        layer: usize,
    },
    /// Conv2d stride is not 1 or 2.
    BadStride {
        layer: usize,
    },
    /// A pool's kernel or stride is 0.
    BadPool {
        layer: usize,
    },
    /// The layer's output would have a zero dimension (kernel or window larger than the
    /// input, or no output channels).
    EmptyOutput {
        layer: usize,
    },
    /// The layer's output holds more than `shape::MAX_TENSOR_LEN` bytes, or another size
    /// computed for it overflows `usize`.
    TooLarge {
        layer: usize,
    },
    /// One output needs a dot product longer than `ops::dot::MAX_DOT_LEN`, which could
    /// overflow the i32 accumulator.
    DotTooLong {
        layer: usize,
    },
    SectionLength {
        layer: usize,
        section: SectionKind,
    },
    SectionOutOfBounds {
        layer: usize,
        section: SectionKind,
    },
    /// An i32 or f32 section does not start at a multiple of 4 from the data section.
    SectionMisaligned {
        layer: usize,
        section: SectionKind,
    },
    /// A weight is −128 (weights are symmetric, −127..=127).
    WeightOutOfRange {
        layer: usize,
    },
    NegativeMultiplier {
        layer: usize,
    },
    /// A shift is outside −31..=30.
    ShiftOutOfRange {
        layer: usize,
    },
    /// The output scale is not finite and positive.
    BadOutputScale {
        layer: usize,
    },
    /// A weight scale is not finite and positive.
    BadWeightScale {
        layer: usize,
    },
    /// The last layer yields a map, not a vector of class scores.
    OutputNotVector,
    /// A graph blob (version 4, or 2) failed one of the graph's checks.
    Graph(GraphError),
    /// A graph blob (version 4, or 2), given to a build without the `graph` feature.
    GraphSupportNotBuilt,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ModelError::*;
        match *self {
            TooShort { len } => write!(f, "blob of {len} bytes is too short to be a model"),
            BadMagic => f.write_str("not a qcnn model (bad magic)"),
            UnsupportedVersion { found } => write!(
                f,
                "unsupported format version {found} (this engine reads versions 1 to 4)"
            ),
            UnknownFlags { found } => write!(f, "unknown flags {found:#06x}"),
            ChecksumMismatch {
                checksum,
                stored,
                computed,
            } => {
                write!(
                    f,
                    "{} mismatch: stored {stored:#010x}, computed {computed:#010x} (corrupt blob)",
                    checksum.name()
                )
            }
            HeaderOutOfBounds { header_len } => {
                write!(f, "header length {header_len} runs past the end")
            }
            HeaderDecode => f.write_str("header cannot be decoded (or has too many layers)"),
            HeaderTrailingBytes => f.write_str("header has trailing bytes"),
            NonZeroPadding => f.write_str("padding after the header is not zero"),
            DataLength { header, actual } => {
                write!(f, "header says {header} data bytes, blob has {actual}")
            }
            EmptyInput => f.write_str("input shape has a zero dimension"),
            InputTooLarge => write!(f, "input is larger than {MAX_TENSOR_LEN} bytes"),
            NoLayers => f.write_str("model has no layers"),
            NeedsMap { layer } => write!(f, "layer {layer} needs a C×H×W map but gets a vector"),
            NeedsVector { layer } => write!(
                f,
                "layer {layer} is Linear but gets a map (missing Flatten)"
            ),
            ChannelMismatch {
                layer,
                expected,
                found,
            } => {
                write!(
                    f,
                    "layer {layer} takes {found} channels but gets {expected}"
                )
            }
            FeatureMismatch {
                layer,
                expected,
                found,
            } => {
                write!(
                    f,
                    "layer {layer} takes {found} features but gets {expected}"
                )
            }
            BadKernel { layer } => write!(f, "layer {layer}: conv kernel must be odd"),
            BadStride { layer } => write!(f, "layer {layer}: conv stride must be 1 or 2"),
            BadPool { layer } => write!(
                f,
                "layer {layer}: pool kernel and stride must be at least 1"
            ),
            EmptyOutput { layer } => write!(f, "layer {layer} would produce an empty output"),
            TooLarge { layer } => write!(
                f,
                "layer {layer}: output larger than {MAX_TENSOR_LEN} bytes"
            ),
            DotTooLong { layer } => write!(
                f,
                "layer {layer}: more than {MAX_DOT_LEN} inputs per output"
            ),
            SectionLength { layer, section } => {
                write!(f, "layer {layer}: {section:?} section has the wrong length")
            }
            SectionOutOfBounds { layer, section } => {
                write!(
                    f,
                    "layer {layer}: {section:?} section lies outside the data"
                )
            }
            SectionMisaligned { layer, section } => {
                write!(
                    f,
                    "layer {layer}: {section:?} section is not 4-byte aligned"
                )
            }
            WeightOutOfRange { layer } => {
                write!(f, "layer {layer}: a weight is -128 (allowed: -127..=127)")
            }
            NegativeMultiplier { layer } => {
                write!(f, "layer {layer}: a requantization multiplier is negative")
            }
            ShiftOutOfRange { layer } => write!(
                f,
                "layer {layer}: a requantization shift is outside -31..=30"
            ),
            BadOutputScale { layer } => {
                write!(f, "layer {layer}: output scale is not finite and positive")
            }
            BadWeightScale { layer } => write!(
                f,
                "layer {layer}: a weight scale is not finite and positive"
            ),
            OutputNotVector => f.write_str("the last layer does not produce a vector"),
            Graph(e) => write!(f, "graph model: {e}"),
            GraphSupportNotBuilt => f.write_str(
                "a graph model (format version 4 or 2), but this build has no graph engine (qcnn-core's `graph` feature is off)",
            ),
        }
    }
}

impl core::error::Error for ModelError {}
