//! A graph node checked against its tensors, in the form its kernel takes: what
//! `super::check::prepare` returns and `super::fast::choose` picks a kernel for.

use super::channel_data::ChannelData;
use super::conv_params::ConvParams;
use super::format::Window;
use super::kernels::AddOp;
use crate::shape::MapShape;

/// A node ready for its kernel.
pub(crate) enum Prepared<'a> {
    Conv(ConvParams<'a>),
    Pool {
        in_shape: MapShape,
        out_shape: MapShape,
        window: Window,
        /// `Some((count_include_pad, zero point))` for an average.
        average: Option<(bool, i8)>,
    },
    GlobalAverage {
        in_shape: MapShape,
    },
    Add(AddOp),
    Gemm {
        weights: &'a [i8],
        channels: ChannelData<'a>,
    },
    /// A Conv with its residual Add ([`super::format::ConvAdd`]).
    ConvAdd(ConvParams<'a>, AddOp),
}
