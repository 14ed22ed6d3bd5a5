//! A whole Conv2d (+ fused ReLU and 2×2 max pool) with AVX-512 VNNI, bit-identical to the
//! portable operator.
//!
//! Sixteen horizontally adjacent output pixels share one vector, one i32 lane each; one
//! accumulator vector per output channel, sixteen channels at a time. For every input channel
//! `ci` and kernel row `ky`, one `vpermb` gathers, for each of the sixteen pixels, the four
//! input bytes under that kernel row (`K ≤ 4`; the weights of columns past `K` are 0), and one
//! `vpdpbusd` per output channel multiplies them by that channel's kernel row, broadcast. So
//! there is no im2col copy, and the requantization (16 lanes at a time, [`Requant16`]) and the
//! pooling stay in vectors. With non-decreasing requantizers (every real model's) the pool takes
//! the max of the sums and requantizes once per pooled pixel; otherwise it requantizes every
//! conv output first, as the portable code does.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes: the input map is copied once per call into a
//! padded buffer with `x ^ 0x80 = x + 128` (padding holds the biased input zero point), and
//! each channel's bias absorbs `−128·Σw`. Everything is arithmetic mod 2^32, so the sums equal
//! the portable wrapping ones exactly.
//!
//! Taken when the CPU has the features and the layer fits: kernel ≤ 4, stride ≤ 3, no pool or
//! a 2×2 stride-2 pool, `C·K ≤` [`MAX_GROUPS`], and the padded input within [`PADDED_BYTES`].
//! Anything else returns `false` and runs the portable operator.

use core::arch::x86_64::*;

use super::has_avx512_vnni_vbmi;
use super::requant::Requant16;
use crate::ops::conv2d::Conv2dOp;
use crate::ops::maxpool2d::PoolWindow;
use crate::shape::MapShape;

/// The padded, biased copy of the input map lives in a stack buffer of this size; its last 64
/// bytes are slack for the vector loads at the end of the last row.
pub const PADDED_BYTES: usize = 16 * 1024;
/// Most `C·K` (input channel, kernel row) pairs: one weight dword per output channel each.
pub const MAX_GROUPS: usize = 64;
/// Output pixels per vector.
const LANES: usize = 16;
/// Output channels per block of accumulators.
const BLOCK: usize = 16;
const POOL_2X2: PoolWindow = PoolWindow {
    kernel: 2,
    stride: 2,
};

/// Runs `op` if this path takes it (see the module docs); `false` leaves `output` untouched.
pub(crate) fn conv2d(op: &Conv2dOp<'_>, input: &[i8], output: &mut [i8]) -> bool {
    let Some(layer) = Layer::new(op, input.len(), output.len()) else {
        return false;
    };
    if !has_avx512_vnni_vbmi() {
        return false;
    }
    let mut padded = [0_u8; PADDED_BYTES];
    layer.pad_and_bias(input, op.input_zero_point, &mut padded);
    for first in (0..layer.out_channels).step_by(BLOCK) {
        let weights = Weights::pack(op, &layer, first);
        // SAFETY: the CPU has every feature the kernels enable (checked above), and `Layer::new`
        // checked every size the loads and stores rely on.
        unsafe {
            if layer.out_channels - first <= BLOCK / 2 {
                layer.block::<{ BLOCK / 2 }>(&padded, &weights, output, first);
            } else {
                layer.block::<BLOCK>(&padded, &weights, output, first);
            }
        }
    }
    true
}

/// The sizes of a layer this path takes, all checked against each other and the buffers.
#[derive(Clone, Copy, Debug)]
struct Layer {
    input: MapShape,
    kernel: usize,
    stride: usize,
    padding: usize,
    pooled: bool,
    out_channels: usize,
    /// Conv output width, before pooling.
    conv_w: usize,
    /// After pooling.
    out_h: usize,
    out_w: usize,
    /// Padded input size.
    padded_h: usize,
    padded_w: usize,
}

impl Layer {
    fn new(op: &Conv2dOp<'_>, input_len: usize, output_len: usize) -> Option<Layer> {
        let (kernel, stride, padding) = (op.kernel, op.stride, op.padding);
        let pooled = match op.pool {
            PoolWindow::IDENTITY => false,
            POOL_2X2 => true,
            _ => return None,
        };
        if !(1..=4).contains(&kernel) || !(1..=3).contains(&stride) {
            return None;
        }
        let input = op.input;
        let padded_h = input.h.checked_add(2 * padding)?;
        let padded_w = input.w.checked_add(2 * padding)?;
        let conv_h = padded_h.checked_sub(kernel)? / stride + 1;
        let conv_w = padded_w.checked_sub(kernel)? / stride + 1;
        let pool = if pooled {
            POOL_2X2
        } else {
            PoolWindow::IDENTITY
        };
        let (out_h, out_w) = (pool.output_len(conv_h)?, pool.output_len(conv_w)?);
        let out_channels = op.output.c;
        let groups = input.c.checked_mul(kernel)?;
        let padded_len = input.c.checked_mul(padded_h)?.checked_mul(padded_w)?;
        let channels = &op.channels;
        let fits = (op.output.h, op.output.w) == (out_h, out_w)
            && groups <= MAX_GROUPS
            && padded_len + 64 <= PADDED_BYTES
            && input_len >= input.c * input.h * input.w
            && output_len >= out_channels * out_h * out_w
            && op.weights.len() >= out_channels * groups * kernel
            && channels
                .bias
                .len()
                .min(channels.multiplier.len())
                .min(channels.shift.len())
                >= out_channels;
        fits.then_some(Layer {
            input,
            kernel,
            stride,
            padding,
            pooled,
            out_channels,
            conv_w,
            out_h,
            out_w,
            padded_h,
            padded_w,
        })
    }

    /// Copies the input map into `padded` (C × padded_h × padded_w, row-major), each byte
    /// biased by +128, the border filled with the biased input zero point.
    fn pad_and_bias(&self, input: &[i8], zero_point: i8, padded: &mut [u8]) {
        let (p, w) = (self.padding, self.input.w);
        let border = zero_point as u8 ^ 0x80;
        let rows = padded
            .chunks_exact_mut(self.padded_w)
            .take(self.input.c * self.padded_h);
        for (i, row) in rows.enumerate() {
            let y = (i % self.padded_h).wrapping_sub(p);
            let source = (y < self.input.h).then(|| {
                let start = (i / self.padded_h * self.input.h + y) * w;
                input.get(start..start + w)
            });
            match source.flatten() {
                Some(source) => {
                    let (left, rest) = row.split_at_mut(p);
                    let (middle, right) = rest.split_at_mut(w);
                    left.fill(border);
                    right.fill(border);
                    for (d, &s) in middle.iter_mut().zip(source) {
                        *d = s as u8 ^ 0x80;
                    }
                }
                None => row.fill(border),
            }
        }
    }

    /// Every output row for output channels `first..first + CB` (those past the last channel
    /// are computed with zero weights and not stored).
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL, VNNI and VBMI; `self` came from [`Layer::new`] for this
    /// `padded` and `output`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    unsafe fn block<const CB: usize>(
        &self,
        padded: &[u8; PADDED_BYTES],
        weights: &Weights,
        output: &mut [i8],
        first: usize,
    ) {
        let stored = (self.out_channels - first).min(CB);
        let plane = self.out_h * self.out_w;
        // Lane i, byte b reads padded column i·stride + b of the chunk.
        let index: [u8; 64] = core::array::from_fn(|i| gather_index(i, self.stride));
        // SAFETY: `index` holds 64 bytes.
        let gather = unsafe { _mm512_loadu_si512(index.as_ptr().cast()) };
        // Conv pixels computed per row: all of them, or those the pool reads.
        let conv_w = if self.pooled {
            2 * self.out_w
        } else {
            self.conv_w
        };
        for oy in 0..self.out_h {
            for x0 in (0..conv_w).step_by(LANES) {
                // SAFETY (all the kernel calls below): as this function; `oy` and `x0` are in
                // range.
                let top = unsafe {
                    self.accumulate::<CB>(padded, weights, gather, self.conv_row(oy, 0), x0)
                };
                let mut bytes = [_mm_setzero_si128(); CB];
                let (start, len) = if self.pooled {
                    let bottom = unsafe {
                        self.accumulate::<CB>(padded, weights, gather, self.conv_row(oy, 1), x0)
                    };
                    let rows = top.into_iter().zip(bottom).zip(&weights.requant);
                    for (b, ((top, bottom), requant)) in bytes.iter_mut().zip(rows) {
                        *b = unsafe { pool_2x2(top, bottom, requant, weights.monotone) };
                    }
                    (
                        oy * self.out_w + x0 / 2,
                        (self.out_w - x0 / 2).min(LANES / 2),
                    )
                } else {
                    for ((b, acc), requant) in bytes.iter_mut().zip(top).zip(&weights.requant) {
                        *b = unsafe { requant.apply(acc) };
                    }
                    (oy * self.out_w + x0, (self.out_w - x0).min(LANES))
                };
                let mask = ((1_u32 << len) - 1) as __mmask16;
                for (c, b) in bytes.iter().enumerate().take(stored) {
                    let at = (first + c) * plane + start;
                    if let Some(out) = output.get_mut(at..at + len) {
                        // SAFETY: `out` has `len ≤ 16` bytes and the mask stores only those.
                        unsafe { _mm_mask_storeu_epi8(out.as_mut_ptr(), mask, *b) };
                    }
                }
            }
        }
    }

    /// The conv output row feeding output row `oy` (`dy` = 1 for a pool's second row).
    fn conv_row(&self, oy: usize, dy: usize) -> usize {
        if self.pooled { 2 * oy + dy } else { oy }
    }

    /// The sums of conv row `y`, pixels `x0..x0 + 16`, for `CB` output channels.
    ///
    /// # Safety
    /// As [`Layer::block`]; `y` is a conv output row, `x0 < conv_w`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    #[inline]
    unsafe fn accumulate<const CB: usize>(
        &self,
        padded: &[u8; PADDED_BYTES],
        weights: &Weights,
        gather: __m512i,
        y: usize,
        x0: usize,
    ) -> [__m512i; CB] {
        let mut acc = [_mm512_setzero_si512(); CB];
        for (acc, &bias) in acc.iter_mut().zip(&weights.bias) {
            *acc = _mm512_set1_epi32(bias);
        }
        let row_len = self.padded_w;
        let channel_len = self.padded_h * row_len;
        let (k, s) = (self.kernel, self.stride);
        // Group g = ci·K + ky reads the padded map from this offset plus ci·channel_len +
        // ky·row_len. (Nested plain loops: LLVM keeps the accumulators in registers.)
        let corner = y * s * row_len + x0 * s;
        let per_channel = weights.groups.chunks_exact(k).take(self.input.c);
        for (ci, groups) in per_channel.enumerate() {
            for (ky, group) in groups.iter().enumerate() {
                let at = corner + ci * channel_len + ky * row_len;
                // `Layer::new` guarantees `at + 64 ≤ PADDED_BYTES`; the fallback only keeps
                // the compiler's bounds check panic-free.
                let bytes = padded.get(at..at + 64).unwrap_or(&padded[..64]);
                // SAFETY: `bytes` holds 64 readable bytes.
                let pixels = _mm512_permutexvar_epi8(gather, unsafe {
                    _mm512_loadu_si512(bytes.as_ptr().cast())
                });
                for (acc, &w) in acc.iter_mut().zip(group) {
                    *acc = _mm512_dpbusd_epi32(*acc, pixels, _mm512_set1_epi32(w));
                }
            }
        }
        acc
    }
}

/// The 2×2 max pool of two conv rows' sums (lanes `2i`, `2i + 1` of both), requantized, in
/// byte `i`.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn pool_2x2(top: __m512i, bottom: __m512i, requant: &Requant16, monotone: bool) -> __m128i {
    // SAFETY: the features `apply` needs are enabled here.
    let even_bytes = unsafe {
        if monotone {
            // A non-decreasing requantizer commutes with max: requantize once per pooled pixel.
            let rows = _mm512_max_epi32(top, bottom);
            requant.apply(_mm512_max_epi32(rows, _mm512_srli_epi64::<32>(rows)))
        } else {
            let rows = _mm_max_epi8(requant.apply(top), requant.apply(bottom));
            _mm_max_epi8(rows, _mm_srli_si128::<1>(rows))
        }
    };
    // The low byte of each 16-bit pair: the even bytes.
    _mm_cvtepi16_epi8(even_bytes)
}

/// `vpermb` index of byte `i` of the gathered vector: lane `i / 4` (pixel), byte `i % 4`
/// (kernel column) reads column `pixel·stride + column` of the chunk.
const fn gather_index(i: usize, stride: usize) -> u8 {
    (((i / 4) * stride + i % 4) & 63) as u8
}

/// One block of output channels, repacked for the kernel.
struct Weights {
    /// `groups[ci·K + ky][c]`: the kernel row `(ci, ky)` of channel `first + c` as four bytes
    /// (little-endian, columns past `K` zero), so that it broadcasts to every pixel lane.
    groups: [[i32; BLOCK]; MAX_GROUPS],
    /// `bias − 128·Σw` per channel: undoes the +128 on the inputs.
    bias: [i32; BLOCK],
    requant: [Requant16; BLOCK],
    /// Every requantizer of the block is non-decreasing ([`crate::quant::Requantizer::is_monotone`]).
    monotone: bool,
}

impl Weights {
    fn pack(op: &Conv2dOp<'_>, layer: &Layer, first: usize) -> Weights {
        let k = layer.kernel;
        let per_channel = layer.input.c * k * k;
        let mut packed = Weights {
            groups: [[0; BLOCK]; MAX_GROUPS],
            bias: [0; BLOCK],
            requant: [Requant16::default(); BLOCK],
            monotone: true,
        };
        let channels = op
            .weights
            .chunks_exact(per_channel.max(1))
            .zip(op.channels.iter())
            .skip(first)
            .take(BLOCK);
        for (c, (w, (bias, requant))) in channels.enumerate() {
            for (g, row) in w.chunks_exact(k).enumerate().take(MAX_GROUPS) {
                let mut bytes = [0_u8; 4];
                for (b, &v) in bytes.iter_mut().zip(row) {
                    *b = v as u8;
                }
                packed.groups[g][c] = i32::from_le_bytes(bytes);
            }
            let sum = w.iter().fold(0_i32, |s, &v| s.wrapping_add(i32::from(v)));
            packed.bias[c] = bias.wrapping_sub(sum.wrapping_mul(128));
            packed.requant[c] = Requant16::new(&requant);
            packed.monotone &= requant.is_monotone();
        }
        packed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{self, ChannelData};
    use crate::test_util::SplitMix;

    /// Random layers this path takes (up to 40 output channels, maps up to 40 wide, every
    /// stride, kernel and padding it supports, with and without the pool), against the
    /// reference; plus layers it must refuse.
    #[test]
    fn matches_the_reference() {
        if !has_avx512_vnni_vbmi() {
            eprintln!("skipped: this CPU has no AVX-512 VNNI/VBMI");
            return;
        }
        let mut rng = SplitMix(88);
        let (mut taken, mut nonsaturated) = (0, 0);
        for case in 0..600 {
            let kernel = rng.below(5) + 1;
            let (stride, padding) = (rng.below(3) + 1, rng.below(3));
            let pool = if rng.below(2) == 0 { (2, 2) } else { (1, 1) };
            let conv = reference::Conv {
                kernel,
                stride,
                padding,
                pool,
                input_zero_point: rng.next() as i8,
            };
            let min = (kernel + 2 * stride).saturating_sub(2 * padding).max(1);
            let input = MapShape {
                c: rng.below(if case % 4 == 0 { 16 } else { 4 }) + 1,
                h: min + rng.below(12),
                w: min + rng.below(if case % 3 == 0 { 40 } else { 20 }),
            };
            let out_channels = rng.below(if case % 2 == 0 { 40 } else { 9 }) + 1;
            let Some(shape) = conv.output(input, out_channels) else {
                continue;
            };
            let weights = rng.weights(out_channels * input.c * kernel * kernel);
            let mut data = ChannelData::random(&mut rng, out_channels);
            if case % 3 == 0 {
                // A left shift that may wrap makes the requantizer non-monotone: the pool must
                // then requantize before taking the max.
                let mut shift = data.shift.clone();
                shift[rng.below(out_channels)] = rng.below(3) as i8 + 1;
                data = ChannelData::new(
                    data.bias.clone(),
                    data.multiplier.clone(),
                    shift,
                    data.zero_point,
                    data.relu,
                );
            }
            let x = rng.i8s(input.c * input.plane());
            let op = Conv2dOp {
                input,
                output: shape,
                kernel,
                stride,
                padding,
                pool: PoolWindow {
                    kernel: pool.0,
                    stride: pool.1,
                },
                weights: &weights,
                channels: data.channels(),
                input_zero_point: conv.input_zero_point,
            };
            let mut out = vec![0x55; shape.c * shape.plane() + 1];
            let took = conv2d(&op, &x, &mut out);
            assert_eq!(took, kernel <= 4, "case {case}: {conv:?} {input:?}");
            if !took {
                assert!(out.iter().all(|&v| v == 0x55), "refused but wrote");
                continue;
            }
            taken += 1;
            let (expected_shape, expected) = reference::conv2d(input, &x, &conv, &weights, &data);
            assert_eq!(expected_shape, shape);
            assert_eq!(
                out[..expected.len()],
                expected,
                "case {case}: {conv:?} {input:?}"
            );
            assert_eq!(out[expected.len()], 0x55, "wrote past the output");
            nonsaturated += expected.iter().filter(|&&v| v != 127 && v != -128).count();
        }
        assert!(taken > 300, "{taken}");
        assert!(nonsaturated > 10_000, "{nonsaturated}");
    }

    #[test]
    fn refuses_other_pools_and_oversized_inputs() {
        let data = ChannelData::random(&mut SplitMix(1), 2);
        let weights = [1; 2 * 4 * 9];
        let op = |c: usize, h: usize, pool: PoolWindow, output: MapShape| Conv2dOp {
            input: MapShape { c, h, w: h },
            output,
            kernel: 3,
            stride: 1,
            padding: 1,
            pool,
            weights: &weights,
            channels: data.channels(),
            input_zero_point: 0,
        };
        let mut out = [0; 2 * 64 * 64];
        let x = [0; 4 * 64 * 64];
        let pool3 = PoolWindow {
            kernel: 3,
            stride: 3,
        };
        let square = |h| MapShape { c: 2, h, w: h };
        assert!(!conv2d(&op(3, 12, pool3, square(4)), &x, &mut out));
        // 4 × 66 × 66 padded bytes do not fit the buffer.
        assert!(!conv2d(
            &op(4, 64, PoolWindow::IDENTITY, square(64)),
            &x,
            &mut out
        ));
        // An output shape that disagrees with the layer, or short buffers.
        assert!(!conv2d(&op(3, 12, POOL_2X2, square(7)), &x, &mut out));
        assert!(!conv2d(
            &op(3, 12, POOL_2X2, square(6)),
            &x[..100],
            &mut out
        ));
        if has_avx512_vnni_vbmi() {
            assert!(conv2d(&op(3, 12, POOL_2X2, square(6)), &x, &mut out));
        }
    }
}
