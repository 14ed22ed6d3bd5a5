//! A Conv node as the pointwise and depthwise kernels take it: its shapes,
//! window, input zero point, weights and per-channel data in one value, so that each
//! kernel's entry points (out of place, in place, with a residual Add) name them once.

use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::ChannelData;
use super::super::prepared_node::Prepared;

#[derive(Clone, Copy, Debug)]
pub struct ConvNode<'a> {
    pub in_shape: MapShape,
    pub out_shape: MapShape,
    pub window: Window,
    pub input_zero_point: i8,
    pub weights: &'a [i8],
    pub channels: &'a ChannelData<'a>,
}

impl<'p> ConvNode<'p> {
    /// The Conv of a prepared Conv node, or of a Conv with its residual Add fused; `None`
    /// for another node.
    pub(crate) fn of(prepared: &'p Prepared<'_>) -> Option<Self> {
        match prepared {
            Prepared::Conv {
                in_shape,
                out_shape,
                window,
                input_zero_point,
                weights,
                channels,
                ..
            }
            | Prepared::ConvAdd {
                in_shape,
                out_shape,
                window,
                input_zero_point,
                weights,
                channels,
                ..
            } => Some(Self {
                in_shape: *in_shape,
                out_shape: *out_shape,
                window: *window,
                input_zero_point: *input_zero_point,
                weights,
                channels,
            }),
            _ => None,
        }
    }
}
