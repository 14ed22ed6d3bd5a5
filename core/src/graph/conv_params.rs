//! A Conv node's parameters, checked against its tensors once (`super::check::prepare`) and
//! then passed by reference to every kernel that runs it: the portable one, the Cortex-M4's
//! (pointwise, depthwise, patch conv), the host's, in place or with a residual Add. Its
//! geometry (kernel, strides, pads, patch length) is read through the methods here, so no
//! caller spells the fields out again.

use crate::shape::MapShape;

use super::channel_data::ChannelData;
use super::format::Window;

/// A Conv's shapes, window, groups, input zero point, weights (OIHW with I = in / groups)
/// and per-output-channel data. `Copy`, 72 bytes on a 32-bit target, which the kernels take
/// as `&ConvParams`.
#[derive(Clone, Copy, Debug)]
pub struct ConvParams<'a> {
    pub in_shape: MapShape,
    pub out_shape: MapShape,
    pub window: Window,
    /// 1, the input channels (depthwise), or any common divisor of in and out channels. A
    /// `u16`, as in the blob: with a `usize`, `Prepared::ConvAdd` grew by a word (its tag no
    /// longer fit), and with it every node's step on the M4's stack.
    pub groups: u16,
    pub input_zero_point: i8,
    pub weights: &'a [i8],
    pub channels: ChannelData<'a>,
}

impl<'a> ConvParams<'a> {
    /// Kernel height and width.
    #[inline]
    pub fn kernel(&self) -> [usize; 2] {
        self.window.kernel.map(usize::from)
    }

    /// Vertical and horizontal strides.
    #[inline]
    pub fn stride(&self) -> [usize; 2] {
        self.window.stride.map(usize::from)
    }

    /// Pads as ONNX orders them: top, left, bottom, right.
    #[inline]
    pub fn pads(&self) -> [usize; 4] {
        self.window.pads.map(usize::from)
    }

    /// Kernel taps per input channel: kh·kw.
    #[inline]
    pub fn taps(&self) -> usize {
        let [kh, kw] = self.kernel();
        kh * kw
    }

    /// Weights per output channel: the input channels of its group times the taps.
    #[inline]
    pub fn per_output(&self) -> usize {
        self.in_shape.c / usize::from(self.groups.max(1)) * self.taps()
    }

    /// One input channel per group: a depthwise conv, or a one-channel stem.
    #[inline]
    pub fn one_input_per_group(&self) -> bool {
        usize::from(self.groups) == self.in_shape.c
    }

    /// Channel `c` of a depthwise conv (one output per input channel) as a conv of one
    /// channel: its shapes with one channel, its weights and per-channel data cut to `c`.
    pub(crate) fn one_channel(&self, c: usize) -> Option<Self> {
        let one = |s: MapShape| MapShape { c: 1, ..s };
        let taps = self.taps();
        let cut = c..c + 1;
        Some(Self {
            in_shape: one(self.in_shape),
            out_shape: one(self.out_shape),
            groups: 1,
            weights: self.weights.get(c * taps..(c + 1) * taps)?,
            channels: ChannelData {
                bias: self.channels.bias.get(cut.clone())?,
                multiplier: self.channels.multiplier.get(cut.clone())?,
                shift: self.channels.shift.get(cut)?,
                ..self.channels
            },
            ..*self
        })
    }
}
