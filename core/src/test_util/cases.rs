//! Random layer cases, written once for every kernel-vs-reference check: core's tests (the
//! portable, x86-64 and graph kernels) and the firmware's `dsp_check` (`no_std`, which fills
//! its static buffers from the same draws).

use super::SplitMix;
use crate::graph::format::{Add, Window};
use crate::graph::kernels::window_len;
use crate::ops::conv2d_op::ConvWindow;
use crate::ops::maxpool2d::PoolWindow;
use crate::shape::MapShape;
use core::ops::Range;

/// What a random Conv2d may draw; each check asks for the layers its kernel takes.
#[derive(Clone, Copy, Debug)]
pub struct ConvRanges {
    pub kernels: &'static [usize],
    pub max_stride: usize,
    pub max_padding: usize,
    /// Besides 2×2 pools and none, also 1–3 a side with strides 1–3.
    pub odd_pools: bool,
    pub max_in_channels: usize,
    /// Rows and columns drawn beyond the least the window needs.
    pub extra_rows: usize,
    pub extra_columns: usize,
    pub max_out_channels: usize,
}

/// A random Conv2d's shape: its window always fits the input.
#[derive(Clone, Copy, Debug)]
pub struct ConvLayer {
    pub input: MapShape,
    pub window: ConvWindow,
    pub out_channels: usize,
    pub input_zero_point: i8,
}

impl ConvLayer {
    /// `(h, w)` of the output after the pool.
    pub fn output(&self) -> Option<MapShape> {
        let output = self.window.output(self.input, self.out_channels).ok()?;
        Some(output.shape)
    }

    /// OIHW weights the layer holds.
    pub fn weights_len(&self) -> usize {
        self.out_channels * self.input.c * self.window.kernel * self.window.kernel
    }
}

impl SplitMix {
    /// A Conv2d drawn from `ranges`, its input just large enough for kernel and pool plus
    /// some extra rows and columns.
    pub fn conv_layer(&mut self, ranges: &ConvRanges) -> ConvLayer {
        let kernel = ranges.kernels[self.below(ranges.kernels.len())];
        let stride = self.below(ranges.max_stride) + 1;
        let padding = self.below(ranges.max_padding + 1);
        let pool = match self.below(if ranges.odd_pools { 3 } else { 2 }) {
            0 => PoolWindow {
                kernel: 2,
                stride: 2,
            },
            1 => PoolWindow::IDENTITY,
            _ => PoolWindow {
                kernel: self.below(3) + 1,
                stride: self.below(3) + 1,
            },
        };
        // `kernel + pool·stride − 2·padding` rows give at least `pool` conv rows.
        let min = (kernel + pool.kernel * stride)
            .saturating_sub(2 * padding)
            .max(1);
        let input = MapShape {
            c: self.below(ranges.max_in_channels) + 1,
            h: min + self.below(ranges.extra_rows.max(1)),
            w: min + self.below(ranges.extra_columns.max(1)),
        };
        ConvLayer {
            input,
            window: ConvWindow {
                kernel,
                stride,
                padding,
                pool,
            },
            out_channels: self.below(ranges.max_out_channels) + 1,
            input_zero_point: self.next() as i8,
        }
    }

    /// One output channel's `(bias, multiplier, shift)`: scales that spread the sums over
    /// the int8 range as real layers do (a multiplier in [2^30, 2^31)), with extremes mixed
    /// into the bias, and a shift from `shifts` (negative: right shifts).
    pub fn requantizer(&mut self, shifts: Range<i8>) -> (i32, i32, i8) {
        let bias = (self.i32() >> 12) + self.below(3) as i32 - 1;
        let multiplier = (1 << 30) + self.below(1 << 30) as i32;
        let span = (i32::from(shifts.end) - i32::from(shifts.start)).max(1) as usize;
        let shift = (i32::from(shifts.start) + self.below(span) as i32) as i8;
        (bias, multiplier, shift)
    }

    /// A window up to `max_side` a side and `max_stride` a step, pads below the kernel: the
    /// graph's convolutions and pools.
    pub fn window(&mut self, max_side: usize, max_stride: usize) -> Window {
        let kh = 1 + self.below(max_side) as u8;
        let kw = 1 + self.below(max_side) as u8;
        let mut pad = |k: u8| self.below(usize::from(k)) as u8;
        let pads = [pad(kh), pad(kw), pad(kh), pad(kw)];
        Window {
            kernel: [kh, kw],
            stride: [
                1 + self.below(max_stride) as u8,
                1 + self.below(max_stride) as u8,
            ],
            pads,
        }
    }

    /// An output clamp `[lo, hi]`, from a point to the whole int8 range.
    pub fn clamp(&mut self) -> [i8; 2] {
        let lo = self.next() as i8;
        [lo, lo.saturating_add(self.below(256) as i8)]
    }

    /// TFLite Add parameters as the quantize tool writes them (left shift 20, the inputs'
    /// small right shifts, the output's large one).
    pub fn add_params(&mut self) -> Add {
        let mut multiplier = || (1 << 30) + self.below(1 << 30) as i32;
        let multipliers = [multiplier(), multiplier(), multiplier()];
        Add {
            left_shift: 20,
            multipliers,
            shifts: [
                -(self.below(4) as i8),
                -(self.below(4) as i8),
                -(14 + self.below(8) as i8),
            ],
            clamp: self.clamp(),
        }
    }
}

/// The output of a graph window over `input` into `c` channels; `None` if it does not fit.
pub fn out_shape(input: MapShape, c: usize, w: &Window) -> Option<MapShape> {
    let [pt, pl, pb, pr] = w.pads;
    let h = window_len(input.h, w.kernel[0], w.stride[0], pt, pb)?;
    let width = window_len(input.w, w.kernel[1], w.stride[1], pl, pr)?;
    (h > 0 && width > 0).then_some(MapShape { c, h, w: width })
}
