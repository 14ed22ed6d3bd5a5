//! Why an operator's checked constructor refused its parameters ([`OpError`]).

/// What an operator constructor found wrong. The loader (`model.rs`) runs the same checks
/// with its own per-layer errors (`ModelError`) before it builds an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpError {
    /// A kernel, stride or pool window of 0, or one larger than the format stores (255).
    BadWindow,
    /// The output would have no element (a window larger than its padded input, or no
    /// output channel).
    EmptyOutput,
    /// A tensor or the weights would exceed `MAX_TENSOR_LEN`.
    TooLarge,
    /// One output sums more products than `MAX_DOT_LEN`.
    DotTooLong,
    /// The weights, or a per-channel slice, do not hold exactly what the shape needs.
    LengthMismatch,
}
