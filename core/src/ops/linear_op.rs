//! A validated Linear layer's parameters ([`LinearOp`]), apart from its kernels
//! (`super::linear` and the Cortex-M4 path), which both take it.

use super::channels::Channels;
use super::dot::MAX_DOT_LEN;
use super::op_error::OpError;
use crate::shape::MAX_TENSOR_LEN;

/// One checked Linear layer; like [`super::conv2d_op::Conv2dOp`], only [`Self::new`] builds
/// one, and its fields are crate-visible for the kernels.
#[derive(Clone, Copy, Debug)]
pub struct LinearOp<'a> {
    pub(crate) in_features: usize,
    /// `[out][in]`, PyTorch's layout.
    pub(crate) weights: &'a [i8],
    pub(crate) channels: Channels<'a>,
}

impl<'a> LinearOp<'a> {
    /// The weights `[out][in]` of `in_features → out_features`, checked in the order the
    /// loader reports: an empty output, a too large one, a too long dot product.
    pub fn weights_len(in_features: usize, out_features: usize) -> Result<usize, OpError> {
        if out_features == 0 || in_features == 0 {
            return Err(OpError::EmptyOutput);
        }
        if out_features > MAX_TENSOR_LEN {
            return Err(OpError::TooLarge);
        }
        if in_features > MAX_DOT_LEN {
            return Err(OpError::DotTooLong);
        }
        out_features
            .checked_mul(in_features)
            .ok_or(OpError::TooLarge)
    }

    /// `in_features → channels.len()` outputs, if `weights` holds exactly that matrix.
    pub fn new(
        in_features: usize,
        weights: &'a [i8],
        channels: Channels<'a>,
    ) -> Result<Self, OpError> {
        if Self::weights_len(in_features, channels.len())? != weights.len() {
            return Err(OpError::LengthMismatch);
        }
        Ok(Self {
            in_features,
            weights,
            channels,
        })
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.channels.len()
    }
}
