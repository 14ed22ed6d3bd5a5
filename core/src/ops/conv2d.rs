//! Conv2d: any channel counts, odd square kernels, zero-point padding, stride 1 or 2, with
//! ReLU and MaxPool optionally fused.
//!
//! With a fused pool, each pooled output is the max of the requantized conv outputs in its
//! window, computed on the spot, so the unpooled map is never stored. Requantization is
//! monotone for every validated channel without a left shift
//! ([`crate::quant::Requantizer::is_monotone`]); there the im2col path takes the max of the
//! accumulators and requantizes once per pooled output, which gives the same int8 value.
//! Otherwise (a left pre-shift may wrap) it requantizes every position, then takes the max.
//!
//! Two paths compute the same numbers:
//! - im2col (the fast one): the C×K×K input patch under each conv output position is copied
//!   into a small buffer in the scratch (padding cells hold the input zero point), and up to
//!   [`MAX_COLUMNS`] patches at a time go through [`gemm`] against all output channels, so the
//!   inner loop is one long contiguous dot product per channel and each weight is reused
//!   across the patches. It needs `C·K·K ≤ PATCH_BYTES`.
//! - direct (the fallback for larger patches, and the reference the im2col path is tested
//!   against): kernel-row dot products straight out of the input map.
//!
//! [`Conv2dOp::run`] first offers the layer to the target's whole-layer fast path, if any
//! (AVX-512 on x86-64 hosts, SMLAD on the Cortex-M4: `super::x86`, `super::arm_dsp`);
//! [`Conv2dOp::run_portable`] is the two paths above. Other microcontrollers (the Cortex-M0)
//! take the direct path alone: im2col's copies, gemm and pooled folds are about 3 KB of flash
//! there, which such a part lacks more than speed.

use super::chunks::{chunk_len, rows, rows_mut};
pub use super::conv2d_op::Conv2dOp;
use super::dot::{dot, dot_constant};
#[cfg(any(test, feature = "std"))]
use super::gemm::GemmKernel;
use super::gemm::{MAX_ACC, MAX_COLUMNS, MAX_ROWS, gemm};
use super::kernels::Kernels;
use super::maxpool2d::PoolWindow;
use super::scratch::DspConvLayout;
use crate::shape::MapShape;

/// Scratch bytes for im2col patches: the bound on `C·K·K` for the im2col path (the seed
/// model's second conv has 8·3·3 = 72, so four patches fit).
pub const PATCH_BYTES: usize = 512;
/// Scratch bytes for the zero-padded copy of a small conv's weights (the seed model's first
/// conv: 8 channels × 16).
pub const PADDED_WEIGHT_BYTES: usize = 256;

/// The im2col path's buffers in the scratch: `columns` patches `stride` bytes apart, then the
/// zero-padded weights, if any.
#[derive(Clone, Copy, Debug)]
struct Im2col {
    /// `C·K·K`.
    k: usize,
    stride: usize,
    columns: usize,
    padded_weights: usize,
}

impl Im2col {
    fn patch_bytes(&self) -> usize {
        self.columns * self.stride
    }

    fn scratch_bytes(&self) -> usize {
        self.patch_bytes() + self.padded_weights
    }
}

impl Conv2dOp<'_> {
    /// Bytes of scratch [`Self::run`] uses with `kernels` (`ops::scratch`).
    pub fn scratch_len(&self, kernels: Kernels) -> usize {
        match kernels {
            // Layers the DSP path declines run the direct loops, which need none.
            Kernels::CortexM4Dsp => {
                DspConvLayout::new(&self.geometry()).map_or(0, |l| l.scratch_bytes())
            }
            Kernels::Portable => self.im2col().map_or(0, |l| l.scratch_bytes()),
            Kernels::Direct => 0,
        }
    }

    /// How the im2col path lays out its patches and weights; `None` for patches longer than
    /// [`PATCH_BYTES`], which take the direct path.
    fn im2col(&self) -> Option<Im2col> {
        let k = self.patch_len().max(1);
        if k > PATCH_BYTES {
            return None;
        }
        // Small patches of an odd length (the first conv's 1·3·3) are laid out with a stride
        // rounded up to whole 8-byte steps, and the weights copied once with zero padding to
        // match, so the gemm takes its unrolled path; the zero weights add nothing.
        let padded = k.next_multiple_of(8);
        let padded_weights = self.output.c.saturating_mul(padded);
        let pad = padded != k && padded <= PATCH_BYTES && padded_weights <= PADDED_WEIGHT_BYTES;
        let stride = if pad { padded } else { k };
        Some(Im2col {
            k,
            stride,
            columns: (PATCH_BYTES / stride).clamp(1, MAX_COLUMNS),
            padded_weights: if pad { padded_weights } else { 0 },
        })
    }

    /// `output` (C×H×W after the pool) from `input` (C×H×W), with the target's fastest path;
    /// `scratch` holds at least [`Self::scratch_len`] bytes for [`Kernels::NATIVE`].
    pub fn run(&self, input: &[i8], output: &mut [i8], scratch: &mut [i8]) {
        // The host's direct AVX-512 kernel, when the CPU and the layer suit it.
        #[cfg(target_arch = "x86_64")]
        if super::x86::conv2d(self, input, output) {
            return;
        }
        // AArch64 hosts: NEON gemm under im2col (below), chosen by `gemm`.
        // The Cortex-M4's SMLAD path, when the layer fits its limits. The layers it declines
        // take the direct loops: with a portable gemm, im2col would only add patch copies
        // (and ~1.7 KB of code).
        #[cfg(qcnn_arm_dsp)]
        if !super::arm_dsp::conv2d(self, input, output, scratch) {
            self.run_direct(input, output);
        }
        // Other microcontrollers (Cortex-M0): the direct loops alone, for flash (core's
        // build.rs). They take no scratch: `Kernels::Direct` sizes the arena without it.
        #[cfg(qcnn_direct_kernels)]
        {
            const { assert!(matches!(Kernels::NATIVE, Kernels::Direct)) };
            let _ = scratch;
            self.run_direct(input, output);
        }
        #[cfg(not(any(qcnn_arm_dsp, qcnn_direct_kernels)))]
        self.run_portable(input, output, scratch);
    }

    /// The same results as [`Self::run`] without a whole-layer fast path: im2col and
    /// [`gemm`] (portable except on x86-64), or the direct loops for large patches (or a
    /// scratch too short for im2col's buffers).
    pub fn run_portable(&self, input: &[i8], output: &mut [i8], scratch: &mut [i8]) {
        match self.im2col() {
            Some(layout) if scratch.len() >= layout.scratch_bytes() => {
                self.run_im2col(gemm, &layout, input, output, scratch);
            }
            _ => self.run_direct(input, output),
        }
    }

    /// [`Self::run_portable`] with a given gemm kernel (the `std` prepared model's choice);
    /// `scratch` as for [`Kernels::Portable`].
    #[cfg(any(test, feature = "std"))]
    pub(crate) fn run_portable_with(
        &self,
        kernel: GemmKernel,
        input: &[i8],
        output: &mut [i8],
        scratch: &mut [i8],
    ) {
        match self.im2col() {
            Some(layout) if scratch.len() >= layout.scratch_bytes() => {
                self.run_im2col(kernel, &layout, input, output, scratch);
            }
            _ => self.run_direct(input, output),
        }
    }

    /// `C·K·K`: the length of one patch, and of one output channel's weights.
    fn patch_len(&self) -> usize {
        self.input.c * self.kernel * self.kernel
    }

    /// `gemm` is generic so that the default path's kernel inlines as before.
    fn run_im2col<G: Fn(&[i8], &[i8], usize, &mut [i32]) + Copy>(
        &self,
        gemm: G,
        layout: &Im2col,
        input: &[i8],
        output: &mut [i8],
        scratch: &mut [i8],
    ) {
        let Im2col {
            k, stride, columns, ..
        } = *layout;
        let (patches, padded_weights) =
            scratch.split_at_mut(layout.patch_bytes().min(scratch.len()));
        let weights = match padded_weights.get_mut(..layout.padded_weights) {
            Some(buffer) if layout.padded_weights > 0 => {
                buffer.fill(0);
                for (dst, src) in rows_mut(buffer, stride).zip(rows(self.weights, k)) {
                    if let Some(dst) = dst.get_mut(..k) {
                        dst.copy_from_slice(src);
                    }
                }
                &buffer[..]
            }
            _ => self.weights,
        };
        // Which output pixel (index within a channel plane) each patch pools into.
        let mut targets = [0_usize; MAX_COLUMNS];
        let mut n = 0;
        // Outputs start at the minimum and take the max over their pool window's positions.
        output.fill(i8::MIN);
        for py in 0..self.output.h {
            for px in 0..self.output.w {
                let pixel = py * self.output.w + px;
                for (y, x) in self.pool.positions(py, px) {
                    if let (Some(patch), Some(target)) = (
                        patches.get_mut(n * stride..n * stride + k),
                        targets.get_mut(n),
                    ) {
                        self.fill_patch(input, y, x, patch);
                        *target = pixel;
                    }
                    n += 1;
                    if n == columns {
                        self.pool_patches(gemm, weights, stride, patches, &targets, n, output);
                        n = 0;
                    }
                }
            }
        }
        if n > 0 {
            self.pool_patches(gemm, weights, stride, patches, &targets, n, output);
        }
    }

    /// The C×K×K input patch under conv output `(y, x)`, padding cells set to the input zero
    /// point.
    #[inline]
    fn fill_patch(&self, input: &[i8], y: usize, x: usize, patch: &mut [i8]) {
        let k = self.kernel;
        let MapShape { h, w, .. } = self.input;
        let top = (y * self.stride) as isize - self.padding as isize;
        let left = (x * self.stride) as isize - self.padding as isize;
        let channels = rows(input, self.input.plane()).zip(rows_mut(patch, k * k));
        if let (Ok(top), Ok(left)) = (usize::try_from(top), usize::try_from(left))
            && top + k <= h
            && left + k <= w
        {
            // Inside the map: plain row copies, no padding checks.
            if k == 3 {
                // The common 3×3 kernel: three fixed-size row reads and one 9-byte store per
                // channel, without the general loop's iterators.
                let start = top * w + left;
                for (x_channel, p_channel) in channels {
                    let row = |from: usize| x_channel.get(from..from + 3);
                    if let (Some(&[a0, a1, a2]), Some(&[b0, b1, b2]), Some(&[c0, c1, c2]), Ok(p)) = (
                        row(start),
                        row(start + w),
                        row(start + 2 * w),
                        <&mut [i8; 9]>::try_from(p_channel),
                    ) {
                        *p = [a0, a1, a2, b0, b1, b2, c0, c1, c2];
                    }
                }
                return;
            }
            for (x_channel, p_channel) in channels {
                let x_rows = rows(x_channel.get(top * w..).unwrap_or(&[]), w);
                for (p_row, x_row) in rows_mut(p_channel, k).zip(x_rows) {
                    copy_row(p_row, x_row.get(left..left + k).unwrap_or(&[]));
                }
            }
            return;
        }
        for (x_channel, p_channel) in channels {
            for (ky, p_row) in rows_mut(p_channel, k).enumerate() {
                let x_row = usize::try_from(top + ky as isize)
                    .ok()
                    .filter(|&iy| iy < h)
                    .and_then(|iy| rows(x_channel, w).nth(iy));
                let Some(x_row) = x_row else {
                    p_row.fill(self.input_zero_point);
                    continue;
                };
                for (kx, p) in p_row.iter_mut().enumerate() {
                    *p = usize::try_from(left + kx as isize)
                        .ok()
                        .and_then(|ix| x_row.get(ix).copied())
                        .unwrap_or(self.input_zero_point);
                }
            }
        }
    }

    /// Runs the first `n` patches (each `k` bytes apart, as are the rows of `weights`)
    /// against every output channel and folds the requantized results into their output
    /// pixels with max.
    #[allow(clippy::too_many_arguments)]
    fn pool_patches<G: Fn(&[i8], &[i8], usize, &mut [i32])>(
        &self,
        gemm: G,
        weights: &[i8],
        k: usize,
        patches: &[i8],
        targets: &[usize],
        n: usize,
        output: &mut [i8],
    ) {
        let (Some(patches), Some(targets)) = (patches.get(..n * k), targets.get(..n)) else {
            return;
        };
        let blocks = weights
            .chunks(chunk_len(k, MAX_ROWS))
            .zip(self.channels.chunks(MAX_ROWS))
            .zip(output.chunks_mut(chunk_len(self.output.plane(), MAX_ROWS)));
        for ((weights, channels), out_planes) in blocks {
            let mut acc = [0_i32; MAX_ACC];
            gemm(weights, patches, k, &mut acc);
            let per_channel = channels
                .iter()
                .zip(acc.chunks_exact(n.max(1)))
                .zip(rows_mut(out_planes, self.output.plane()));
            for (((bias, requant), sums), out_plane) in per_channel {
                let mut fold = |target: usize, value: i8| {
                    if let Some(out) = out_plane.get_mut(target) {
                        *out = (*out).max(value);
                    }
                };
                if !requant.is_monotone() {
                    for (&sum, &target) in sums.iter().zip(targets) {
                        fold(target, requant.apply(bias.wrapping_add(sum)));
                    }
                    continue;
                }
                // Consecutive patches of the same output pixel: max first, one requantization.
                let mut pending: Option<(usize, i32)> = None;
                for (&sum, &target) in sums.iter().zip(targets) {
                    let acc = bias.wrapping_add(sum);
                    pending = match pending {
                        Some((pixel, best)) if pixel == target => Some((pixel, best.max(acc))),
                        Some((pixel, best)) => {
                            fold(pixel, requant.apply(best));
                            Some((target, acc))
                        }
                        None => Some((target, acc)),
                    };
                }
                if let Some((pixel, best)) = pending {
                    fold(pixel, requant.apply(best));
                }
            }
        }
    }

    fn run_direct(&self, input: &[i8], output: &mut [i8]) {
        let per_output = self.input.c * self.kernel * self.kernel;
        // A checked pool window is never empty; saying so spares the optimizer's separate
        // loop for an empty one, which filled rows with i8::MIN through `memset` (flash).
        let pool = PoolWindow {
            kernel: self.pool.kernel.max(1),
            ..self.pool
        };
        let outputs = rows(self.weights, per_output)
            .zip(self.channels.iter())
            .zip(rows_mut(output, self.output.plane()));
        for ((weights, (bias, requant)), out_plane) in outputs {
            // As in the im2col path: where requantization is monotone, the max of the
            // accumulators is requantized once per pooled output, not once per position.
            let monotone = requant.is_monotone();
            for (py, out_row) in rows_mut(out_plane, self.output.w).enumerate() {
                for (px, out) in out_row.iter_mut().enumerate() {
                    let (mut best_acc, mut best) = (i32::MIN, i8::MIN);
                    for (y, x) in pool.positions(py, px) {
                        let acc = bias.wrapping_add(self.accumulate(weights, input, y, x));
                        if monotone {
                            best_acc = best_acc.max(acc);
                        } else {
                            best = best.max(requant.apply_outlined(acc));
                        }
                    }
                    *out = if monotone {
                        requant.apply_outlined(best_acc)
                    } else {
                        best
                    };
                }
            }
        }
    }

    /// `Σ w·x` for the conv output at `(y, x)` of one output channel, whose weights are
    /// `weights` (C×K×K).
    // Not inlined: one copy in flash for every call site.
    #[inline(never)]
    fn accumulate(&self, weights: &[i8], input: &[i8], y: usize, x: usize) -> i32 {
        let k = self.kernel;
        let MapShape { h, w, .. } = self.input;
        // Input coordinates of the window's top-left corner; negative inside the padding.
        let top = (y * self.stride) as isize - self.padding as isize;
        let left = (x * self.stride) as isize - self.padding as isize;
        let mut acc = 0_i32;
        // Rows found by offset, not by `chunks_exact`, whose remainder is a division: a
        // library call on a Cortex-M0, where this runs once per output and kernel row.
        let (mut w_rows, mut channel) = (weights, 0);
        for _ in 0..self.input.c {
            for ky in 0..k {
                let Some((w_row, rest)) = w_rows.split_at_checked(k) else {
                    return acc;
                };
                w_rows = rest;
                let x_row = usize::try_from(top + ky as isize)
                    .ok()
                    .filter(|&iy| iy < h)
                    .and_then(|iy| input.get(channel + iy * w..channel + iy * w + w));
                let row_sum = match x_row {
                    Some(x_row) => self.row_dot(w_row, x_row, left),
                    None => dot_constant(w_row, self.input_zero_point),
                };
                acc = acc.wrapping_add(row_sum);
            }
            channel += h * w;
        }
        acc
    }

    /// One kernel row against one input row starting at column `left`.
    #[inline]
    fn row_dot(&self, w_row: &[i8], x_row: &[i8], left: isize) -> i32 {
        let inside = usize::try_from(left)
            .ok()
            .and_then(|l| x_row.get(l..l + w_row.len()));
        match inside {
            Some(x) => dot(w_row, x),
            // The row overlaps the left or right padding.
            None => w_row.iter().enumerate().fold(0_i32, |acc, (kx, &wv)| {
                let xv = usize::try_from(left + kx as isize)
                    .ok()
                    .and_then(|ix| x_row.get(ix).copied())
                    .unwrap_or(self.input_zero_point);
                acc.wrapping_add(i32::from(wv) * i32::from(xv))
            }),
        }
    }
}

/// `dst.copy_from_slice(src)` when the lengths agree, with the 3×3 kernel's 3-byte rows
/// copied inline instead of through a `memcpy` call.
#[inline(always)]
fn copy_row(dst: &mut [i8], src: &[i8]) {
    match (dst, src) {
        ([d0, d1, d2], [s0, s1, s2]) => (*d0, *d1, *d2) = (*s0, *s1, *s2),
        (dst, src) if dst.len() == src.len() => dst.copy_from_slice(src),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::maxpool2d::PoolWindow;
    use crate::ops::tier::KernelTier;
    use crate::reference::{self, ChannelData};
    use crate::test_util::SplitMix;
    use crate::test_util::cases::ConvRanges;

    struct Case {
        input: MapShape,
        conv: reference::Conv,
        weights: Vec<i8>,
        data: ChannelData,
    }

    impl Case {
        fn op(&self) -> Conv2dOp<'_> {
            Conv2dOp::new(
                self.input,
                self.conv.window(),
                &self.weights,
                self.data.channels(),
                self.conv.input_zero_point,
            )
            .unwrap()
        }

        fn run(&self, input: &[i8]) -> Vec<i8> {
            let op = self.op();
            let mut out = vec![0x55; op.output.c * op.output.plane()];
            // Garbage in the scratch, as an arena would hold.
            let mut scratch = vec![0x5A; op.scratch_len(Kernels::NATIVE)];
            op.run(input, &mut out, &mut scratch);
            out
        }

        fn reference(&self, input: &[i8]) -> Vec<i8> {
            let (shape, out) =
                reference::conv2d(self.input, input, &self.conv, &self.weights, &self.data);
            assert_eq!(shape, self.op().output);
            out
        }
    }

    fn identity_channels(n: usize, zero_point: i8, relu: bool) -> ChannelData {
        // Multiplier 2^30 with shift 1 is exactly ×1.
        ChannelData::new(vec![0; n], vec![1 << 30; n], vec![1; n], zero_point, relu)
    }

    #[test]
    fn new_refuses_what_the_kernels_cannot_run() {
        use crate::ops::conv2d_op::ConvWindow;
        use crate::ops::op_error::OpError;
        let data = identity_channels(2, 0, false);
        let weights = [1; 2 * 3 * 9];
        let input = MapShape { c: 3, h: 6, w: 5 };
        let window = ConvWindow {
            kernel: 3,
            stride: 1,
            padding: 1,
            pool: PoolWindow {
                kernel: 2,
                stride: 2,
            },
        };
        let new =
            |input, window, weights| Conv2dOp::new(input, window, weights, data.channels(), 0);
        let op = new(input, window, &weights).unwrap();
        assert_eq!(op.output(), MapShape { c: 2, h: 3, w: 2 });
        assert_eq!(
            new(input, window, &weights[1..]).unwrap_err(),
            OpError::LengthMismatch
        );
        let c4 = MapShape { c: 4, ..input };
        assert_eq!(
            new(c4, window, &weights).unwrap_err(),
            OpError::LengthMismatch
        );
        for bad in [
            ConvWindow {
                kernel: 0,
                ..window
            },
            ConvWindow {
                stride: 0,
                ..window
            },
            ConvWindow {
                padding: 256,
                ..window
            },
            ConvWindow {
                pool: PoolWindow {
                    kernel: 2,
                    stride: 0,
                },
                ..window
            },
        ] {
            assert_eq!(new(input, bad, &weights).unwrap_err(), OpError::BadWindow);
        }
        let tiny = MapShape { c: 3, h: 1, w: 1 };
        let unpadded = ConvWindow {
            padding: 0,
            ..window
        };
        assert_eq!(
            new(tiny, unpadded, &weights).unwrap_err(),
            OpError::EmptyOutput
        );
        let huge = MapShape {
            c: usize::MAX,
            ..input
        };
        assert_eq!(new(huge, window, &weights).unwrap_err(), OpError::TooLarge);
        let deep = MapShape {
            c: 1 << 16,
            h: 3,
            w: 3,
        };
        assert_eq!(
            new(deep, window, &weights).unwrap_err(),
            OpError::DotTooLong
        );
        // The multiply-adds happen before the pool: 2 outputs · 6×5 positions · 27 taps.
        let output = window.output(input, 2).unwrap();
        assert_eq!((output.conv, output.macs()), ((6, 5), 2 * 6 * 5 * 27));
    }

    #[test]
    fn hand_worked_3x3_padding_uses_zero_point() {
        // 1×2×2 input, one 3×3 all-ones kernel, padding 1, input zero point −1: every output
        // sums the whole input plus (9 − 4) padding cells of −1.
        let case = Case {
            input: MapShape { c: 1, h: 2, w: 2 },
            conv: reference::Conv {
                kernel: 3,
                stride: 1,
                padding: 1,
                pool: (1, 1),
                input_zero_point: -1,
            },
            weights: vec![1; 9],
            data: identity_channels(1, 0, false),
        };
        let out = case.run(&[1, 2, 3, 4]);
        assert_eq!(out, [10 - 5; 4]);
        assert_eq!(out, case.reference(&[1, 2, 3, 4]));
    }

    #[test]
    fn hand_worked_two_channels_relu_pool_and_stride2() {
        // 2×3×3 input, a 1×1 kernel mixing channels as (a − b), then ReLU with output zero
        // point 0 and a 2×2 max pool.
        #[rustfmt::skip]
        let input = [
            5, 1, 0,   2, 9, 3,   0, 0, 7,
            1, 1, 1,   1, 1, 1,   1, 1, 1,
        ];
        let conv = reference::Conv {
            kernel: 1,
            stride: 1,
            padding: 0,
            pool: (2, 2),
            input_zero_point: 0,
        };
        let case = Case {
            input: MapShape { c: 2, h: 3, w: 3 },
            conv,
            weights: vec![1, -1],
            data: identity_channels(1, 0, true),
        };
        // a − b = [4, 0, −1, 1, 8, 2, −1, −1, 6]; ReLU; max of the top-left 2×2 = 8.
        assert_eq!(case.run(&input), [8]);
        // Stride 2 without pooling samples the four corners.
        let case = Case {
            conv: reference::Conv {
                stride: 2,
                pool: (1, 1),
                ..conv
            },
            ..case
        };
        assert_eq!(case.run(&input), [4, 0, 0, 6]);
    }

    /// A random conv (any kernel, padding, stride and fused pool that fit) with up to
    /// `max_channels` input and `max_outputs` output channels, and its input.
    fn random_case(rng: &mut SplitMix, max_channels: usize, max_outputs: usize) -> (Case, Vec<i8>) {
        let layer = rng.conv_layer(&ConvRanges {
            kernels: &[1, 3, 5],
            max_stride: 2,
            max_padding: 2,
            odd_pools: true,
            max_in_channels: max_channels,
            extra_rows: 6,
            extra_columns: 6,
            max_out_channels: max_outputs,
        });
        let window = layer.window;
        let case = Case {
            input: layer.input,
            conv: reference::Conv {
                kernel: window.kernel,
                stride: window.stride,
                padding: window.padding,
                pool: (window.pool.kernel, window.pool.stride),
                input_zero_point: layer.input_zero_point,
            },
            weights: rng.weights(layer.weights_len()),
            data: ChannelData::random(rng, layer.out_channels),
        };
        let x = rng.i8s(layer.input.c * layer.input.plane());
        (case, x)
    }

    #[test]
    fn randomized_against_reference() {
        let mut rng = SplitMix::new(3);
        let mut nonsaturated = 0;
        for _ in 0..400 {
            let (case, x) = random_case(&mut rng, 4, 5);
            let out = case.run(&x);
            assert_eq!(out, case.reference(&x), "{:?} {:?}", case.conv, case.input);
            nonsaturated += out.iter().filter(|&&v| v != 127 && v != -128).count();
        }
        // The data must exercise the arithmetic, not only the clamps.
        assert!(nonsaturated > 1000, "{nonsaturated}");
    }

    crate::kernel_tests!(im2col_matches_direct_and_reference);

    /// The im2col path over the tier's `gemm` kernel against the direct path and the
    /// reference, including left shifts, where requantization is not monotone and pooling
    /// must requantize every position, and more than `MAX_ROWS` output channels.
    fn im2col_matches_direct_and_reference(tier: KernelTier) {
        let gemm = crate::ops::gemm::gemm_kernel(tier);
        let mut rng = SplitMix::new(4);
        let mut non_monotone = 0;
        for i in 0..300 {
            let (mut case, x) = random_case(&mut rng, 8, 20);
            if i % 3 == 0 {
                // Small multipliers with left shifts: outputs still spread, some wrap.
                let n = case.data.len();
                case.data = ChannelData::new(
                    (0..n).map(|_| rng.i32() >> 8).collect(),
                    (0..n).map(|_| rng.below(1 << 24) as i32).collect(),
                    (0..n).map(|_| rng.below(8) as i8).collect(),
                    case.data.zero_point,
                    case.data.relu,
                );
                non_monotone += n;
            }
            let op = case.op();
            assert!(op.patch_len() <= PATCH_BYTES);
            let len = op.output.c * op.output.plane();
            let (mut im2col, mut direct) = (vec![0x55; len], vec![0x55; len]);
            let mut scratch = vec![0x5A; op.scratch_len(Kernels::Portable)];
            op.run_portable_with(gemm, &x, &mut im2col, &mut scratch);
            op.run_direct(&x, &mut direct);
            assert_eq!(im2col, direct, "{:?} {:?}", case.conv, case.input);
            assert_eq!(
                im2col,
                case.reference(&x),
                "{:?} {:?}",
                case.conv,
                case.input
            );
        }
        assert!(non_monotone > 100);
    }

    #[test]
    fn patches_beyond_the_stack_buffer_take_the_direct_path() {
        let mut rng = SplitMix::new(5);
        for i in 0..20 {
            // 24 channels × 5×5 = 600 bytes per patch > PATCH_BYTES.
            let input = MapShape {
                c: 24,
                h: 4 + rng.below(6),
                w: 4 + rng.below(6),
            };
            let out_channels = rng.below(3) + 1;
            let case = Case {
                input,
                conv: reference::Conv {
                    kernel: 5,
                    stride: rng.below(2) + 1,
                    padding: 2,
                    pool: [(1, 1), (2, 2)][i % 2],
                    input_zero_point: rng.next() as i8,
                },
                weights: rng.weights(out_channels * 24 * 25),
                data: ChannelData::random(&mut rng, out_channels),
            };
            let x = rng.i8s(input.c * input.plane());
            assert!(case.op().patch_len() > PATCH_BYTES);
            assert_eq!(case.run(&x), case.reference(&x), "{:?}", case.conv);
        }
    }

    #[test]
    fn seed_model_second_conv_shape() {
        // 8×28×28 → 16 channels, 3×3 padding 1, ReLU, 2×2 pool: four 72-byte patches a call.
        let mut rng = SplitMix::new(6);
        let mut data = ChannelData::random(&mut rng, 16);
        data.relu = true;
        let case = Case {
            input: MapShape { c: 8, h: 28, w: 28 },
            conv: reference::Conv {
                kernel: 3,
                stride: 1,
                padding: 1,
                pool: (2, 2),
                input_zero_point: -128,
            },
            weights: rng.weights(16 * 72),
            data,
        };
        let x = rng.i8s(8 * 28 * 28);
        let op = case.op();
        let mut out = vec![0; 16 * 14 * 14];
        // Four 72-byte patches; the Cortex-M4 path's buffers are larger.
        assert_eq!(op.scratch_len(Kernels::Portable), 4 * 72);
        assert_eq!(op.scratch_len(Kernels::CortexM4Dsp), 4951);
        let mut scratch = vec![0x5A; op.scratch_len(Kernels::Portable)];
        op.run_portable(&x, &mut out, &mut scratch);
        assert_eq!(out, case.reference(&x));
        // The direct loops, all a `Kernels::Direct` target runs, take no scratch (their
        // signature has none), and the arena holds none for them.
        assert_eq!(op.scratch_len(Kernels::Direct), 0);
        let mut direct = vec![0; out.len()];
        op.run_direct(&x, &mut direct);
        assert_eq!(direct, out);
    }
}
