//! A validated Conv2d layer's parameters ([`Conv2dOp`]), apart from its kernels
//! (`super::conv2d` and the x86-64 and Cortex-M4 paths), which all take it.

use super::channels::Channels;
use super::maxpool2d::PoolWindow;
use super::scratch::ConvGeometry;
use crate::shape::MapShape;

/// One validated Conv2d layer. Public so that the firmware's `dsp_check` can compare the
/// target's fast path ([`Self::run`]) with the portable code ([`Self::run_portable`]).
#[derive(Clone, Copy, Debug)]
pub struct Conv2dOp<'a> {
    pub input: MapShape,
    /// After the fused pool, if any.
    pub output: MapShape,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// [`PoolWindow::IDENTITY`] when no pool is fused.
    pub pool: PoolWindow,
    /// OIHW, PyTorch's layout.
    pub weights: &'a [i8],
    pub channels: Channels<'a>,
    /// Padding holds this value: the real 0 of the input.
    pub input_zero_point: i8,
}

impl Conv2dOp<'_> {
    /// What the Cortex-M4 path's scratch layout depends on.
    pub(crate) fn geometry(&self) -> ConvGeometry {
        ConvGeometry {
            in_channels: self.input.c,
            in_width: self.input.w,
            out_channels: self.output.c,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            pool_kernel: self.pool.kernel,
            pool_stride: self.pool.stride,
        }
    }
}
