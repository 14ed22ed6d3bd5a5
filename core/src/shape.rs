//! Tensor shapes between layers. A validated model guarantees every element count fits
//! `usize`; the accessors saturate rather than panic on shapes built by hand.

/// A C×H×W feature map, stored channel-major (PyTorch's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

/// The output length of a sliding window (convolution or pooling) along one axis,
/// `(n + pad_before + pad_after − kernel) / stride + 1`: the one place that formula is written,
/// for the validator, the kernels, the quantizer and the config alike. `None` when the window
/// is larger than the padded input or the stride is 0.
pub fn window_len(
    n: usize,
    kernel: usize,
    stride: usize,
    pad_before: usize,
    pad_after: usize,
) -> Option<usize> {
    // Dimensions and pads are validated far below usize::MAX, so the sums cannot overflow.
    Some(
        (n + pad_before + pad_after)
            .checked_sub(kernel)?
            .checked_div(stride)?
            + 1,
    )
}

/// Largest tensor a model may hold, in bytes. Capping at `i32::MAX` keeps every size and
/// the sum of two sizes (the arena need) within a 32-bit `usize`.
pub const MAX_TENSOR_LEN: usize = i32::MAX as usize;

impl MapShape {
    /// `c·h·w`, or `None` if that exceeds [`MAX_TENSOR_LEN`].
    pub fn checked_len(&self) -> Option<usize> {
        self.c
            .checked_mul(self.h)?
            .checked_mul(self.w)
            .filter(|&n| n <= MAX_TENSOR_LEN)
    }

    /// Elements in one channel plane.
    pub fn plane(&self) -> usize {
        self.h.saturating_mul(self.w)
    }
}

/// The tensor flowing from one layer to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorShape {
    Map(MapShape),
    Vector(usize),
}

impl TensorShape {
    /// Number of int8 elements (= bytes).
    pub fn len(&self) -> usize {
        match self {
            Self::Map(m) => m.c.saturating_mul(m.plane()),
            Self::Vector(n) => *n,
        }
    }

    /// Validated shapes are never empty; this exists for API completeness.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
