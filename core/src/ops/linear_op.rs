//! A validated Linear layer's parameters ([`LinearOp`]), apart from its kernels
//! (`super::linear` and the Cortex-M4 path), which both take it.

use super::channels::Channels;

/// One validated Linear layer; public for the same reason as
/// [`super::conv2d::Conv2dOp`].
#[derive(Clone, Copy, Debug)]
pub struct LinearOp<'a> {
    pub in_features: usize,
    /// `[out][in]`, PyTorch's layout.
    pub weights: &'a [i8],
    pub channels: Channels<'a>,
}
