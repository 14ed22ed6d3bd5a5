//! A validated Conv2d layer's parameters ([`Conv2dOp`]), apart from its kernels
//! (`super::conv2d` and the x86-64 and Cortex-M4 paths), which all take it.

use super::channels::Channels;
use super::dot::MAX_DOT_LEN;
use super::maxpool2d::PoolWindow;
use super::op_error::OpError;
use super::scratch::ConvGeometry;
use crate::shape::MapShape;

/// A Conv2d's window: square kernel, stride and zero padding, and the max pool fused after
/// it ([`PoolWindow::IDENTITY`] when none is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvWindow {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub pool: PoolWindow,
}

impl ConvWindow {
    /// The output of `input` through this window into `out_channels` channels, after the
    /// pool, with the conv's own height and width before it; checked in the order the loader
    /// reports: the window, an empty output, a too large one, a too long dot product.
    pub fn output(&self, input: MapShape, out_channels: usize) -> Result<ConvOutput, OpError> {
        let sides = [self.kernel, self.stride, self.pool.kernel, self.pool.stride];
        if sides.iter().any(|&n| !(1..=255).contains(&n)) || self.padding > 255 {
            return Err(OpError::BadWindow);
        }
        // Bounding the input first keeps the padded sides far from overflow.
        input.checked_len().ok_or(OpError::TooLarge)?;
        let conv_len = |n| {
            crate::shape::window_len(n, self.kernel, self.stride, self.padding, self.padding)
                .filter(|&len| len > 0)
                .ok_or(OpError::EmptyOutput)
        };
        let conv = (conv_len(input.h)?, conv_len(input.w)?);
        let pooled = |n| self.pool.output_len(n).filter(|&len| len > 0);
        let output = match (pooled(conv.0), pooled(conv.1)) {
            (Some(h), Some(w)) if out_channels > 0 && input.c > 0 => MapShape {
                c: out_channels,
                h,
                w,
            },
            _ => return Err(OpError::EmptyOutput),
        };
        output.checked_len().ok_or(OpError::TooLarge)?;
        let per_output = input
            .c
            .checked_mul(self.kernel * self.kernel)
            .ok_or(OpError::TooLarge)?;
        if per_output > MAX_DOT_LEN {
            return Err(OpError::DotTooLong);
        }
        let weights_len = out_channels
            .checked_mul(per_output)
            .ok_or(OpError::TooLarge)?;
        Ok(ConvOutput {
            shape: output,
            conv,
            weights_len,
        })
    }
}

/// What [`ConvWindow::output`] derives from a layer's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvOutput {
    /// After the fused pool.
    pub shape: MapShape,
    /// `(height, width)` of the conv before the pool: where its multiply-adds happen.
    pub conv: (usize, usize),
    /// OIHW weights the layer holds.
    pub weights_len: usize,
}

impl ConvOutput {
    /// Multiply-accumulates of one image, saturating.
    pub fn macs(&self) -> u64 {
        let per_output = self.weights_len.checked_div(self.shape.c).unwrap_or(0);
        [self.shape.c, self.conv.0, self.conv.1, per_output]
            .iter()
            .fold(1_u64, |p, &n| p.saturating_mul(n as u64))
    }
}

/// One checked Conv2d layer. Only [`Self::new`] builds one, so every kernel (portable,
/// x86-64, Cortex-M4) may rely on its shapes, weights and channels agreeing; the fields are
/// crate-visible for those kernels to read, and [`Self::input`] etc. serve other crates.
#[derive(Clone, Copy, Debug)]
pub struct Conv2dOp<'a> {
    pub(crate) input: MapShape,
    /// After the fused pool, if any.
    pub(crate) output: MapShape,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    /// [`PoolWindow::IDENTITY`] when no pool is fused.
    pub(crate) pool: PoolWindow,
    /// OIHW, PyTorch's layout.
    pub(crate) weights: &'a [i8],
    pub(crate) channels: Channels<'a>,
    /// Padding holds this value: the real 0 of the input.
    pub(crate) input_zero_point: i8,
}

impl<'a> Conv2dOp<'a> {
    /// The layer `input → window → channels`, if its weights and channels hold exactly what
    /// that shape needs ([`ConvWindow::output`] lists the other checks).
    pub fn new(
        input: MapShape,
        window: ConvWindow,
        weights: &'a [i8],
        channels: Channels<'a>,
        input_zero_point: i8,
    ) -> Result<Self, OpError> {
        let output = window.output(input, channels.len())?;
        if weights.len() != output.weights_len {
            return Err(OpError::LengthMismatch);
        }
        Ok(Self {
            input,
            output: output.shape,
            kernel: window.kernel,
            stride: window.stride,
            padding: window.padding,
            pool: window.pool,
            weights,
            channels,
            input_zero_point,
        })
    }

    /// The same layer on a band of `rows` input rows with the padding written out, giving
    /// one output row: what the streamed schedule runs per row, with `rows` its window's span
    /// (`(pool − 1)·stride + kernel`). Derived from a checked layer, so it needs no new checks
    /// (and the per-row path stays as short as before).
    pub(crate) fn band(&self, rows: usize) -> Option<Self> {
        let padded = self.input.w.checked_add(self.padding.checked_mul(2)?)?;
        Some(Self {
            input: MapShape {
                c: self.input.c,
                h: rows,
                w: padded,
            },
            output: MapShape {
                c: self.output.c,
                h: 1,
                w: self.output.w,
            },
            padding: 0,
            ..*self
        })
    }

    pub fn input(&self) -> MapShape {
        self.input
    }

    /// After the fused pool, if any.
    pub fn output(&self) -> MapShape {
        self.output
    }

    pub fn window(&self) -> ConvWindow {
        ConvWindow {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            pool: self.pool,
        }
    }

    /// OIHW, PyTorch's layout.
    pub fn weights(&self) -> &'a [i8] {
        self.weights
    }

    pub fn channels(&self) -> Channels<'a> {
        self.channels
    }

    /// Padding holds this value: the real 0 of the input.
    pub fn input_zero_point(&self) -> i8 {
        self.input_zero_point
    }

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
