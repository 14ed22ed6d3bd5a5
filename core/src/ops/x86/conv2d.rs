//! A whole Conv2d (+ fused ReLU and 2×2 max pool) without im2col, bit-identical to the
//! portable operator: one body over [`Isa`] (AVX-512 VNNI, AVX-VNNI, AVX2).
//!
//! [`Isa::LANES`] horizontally adjacent output pixels share one vector, one i32 lane each; one
//! accumulator vector per output channel, [`Isa::CONV_CHANNELS`] channels at a time. The
//! input map is copied once per call into a padded buffer in one of two layouts
//! ([`Layer::new`] picks the one with fewer dot instructions per output):
//!
//! - **Channel-packed** (stride 1, any kernel): each 32-bit lane holds [`Isa::PACK`]
//!   consecutive input channels at one position (four u8 for `vpdpbusd`, two u16 for
//!   `vpmaddwd`), so for every tap `(channel group, ky, kx)` the pixels are one plain vector
//!   load and each output channel takes one [`Isa::dot_packed`] with its weights for that tap,
//!   broadcast. Every product is a real one when `C` is a multiple of `PACK` (the seed
//!   model's second convolution: 8 channels). A pooled layer computes the pool's two conv rows
//!   together, so that each broadcast serves both ([`Isa::PAIRED_CHANNELS`] channels at a time).
//! - **Row gathers** (kernel ≤ 4, for few input channels, e.g. an image's one): for every input
//!   channel `ci` and kernel row `ky`, one gather (`vpermb`, or `vpshufb` on each 128-bit
//!   half) puts, for each pixel, the four input bytes under that kernel row (the weights of
//!   columns past `K` are 0) into its lane, and one [`Isa::dot`] per output channel multiplies
//!   them by that channel's kernel row, broadcast.
//!
//! So there is no im2col copy, and the requantization ([`VectorRequant`]) and the pooling stay
//! in vectors. With non-decreasing requantizers (every real model's) the pool takes the max of
//! the sums and requantizes once per pooled pixel; otherwise it requantizes every conv output
//! first, as the portable code does.
//!
//! The products are u8 × i8: the input bytes are biased, `x ^ 0x80 = x + 128` (padding holds
//! the biased input zero point), and each channel's bias absorbs `−128·Σw`. Everything is
//! arithmetic mod 2^32, so the sums equal the portable wrapping ones exactly.
//!
//! Taken when the layer fits one layout: stride ≤ 3, no pool or a 2×2 stride-2 pool, and
//! for the row gathers kernel ≤ 4 and `C·K ≤` [`MAX_GROUPS`], for the packed layout stride 1
//! and at most [`MAX_TAPS`] taps; the padded input within [`PADDED_BYTES`]. The weights are
//! repacked per block of [`BLOCK`] output channels ([`Weights::pack`]): once per call on the
//! `no_std` path, once per model load in the `std` prepared model.

use core::arch::x86_64::*;

use super::isa::Isa;
use super::requant::VectorRequant;
use crate::ops::conv2d_op::Conv2dOp;
use crate::ops::maxpool2d::PoolWindow;
use crate::shape::MapShape;

/// The padded, biased copy of the input map lives in a stack buffer of this size; its last 64
/// bytes are slack for the vector loads at the end of the last row.
pub const PADDED_BYTES: usize = 32 * 1024;
pub(crate) const PADDED_WORDS: usize = PADDED_BYTES / 4;
/// Most `C·K` (input channel, kernel row) pairs: one weight word per output channel each.
pub const MAX_GROUPS: usize = 64;
/// Most taps (channel group, ky, kx) of the channel-packed layout.
pub const MAX_TAPS: usize = 128;
/// Output channels per block of packed weights.
pub const BLOCK: usize = 16;
const POOL_2X2: PoolWindow = PoolWindow {
    kernel: 2,
    stride: 2,
};

/// The sizes of a layer this path takes, all checked against each other and the buffers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layer {
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
    input_zero_point: i8,
    /// The channel-packed layout ([`Isa::PACK`] input channels per lane, one product per
    /// tap) rather than the row gathers; the number of channel groups.
    packed: Option<usize>,
}

/// Runs the layer with `I`, with weights packed beforehand (`packed`, one per [`BLOCK`]
/// channels) or, when `None`, packed here block by block, its padded input in `padded`.
///
/// `padded` may hold anything beforehand (the prepared model passes the same arena bytes
/// for every call, so it is not zeroed 32 KB at a time): the copy writes every word the
/// output lanes read, and the words past it feed only lanes that are never stored.
///
/// # Safety
/// The CPU supports `I`; `layer` came from [`Layer::new`] for `op`, `input` and `output`.
#[inline(always)]
pub(crate) unsafe fn run<I: Isa>(
    layer: &Layer,
    op: &Conv2dOp<'_>,
    packed: Option<&[Weights<I>]>,
    input: &[i8],
    output: &mut [i8],
    padded: &mut [u32; PADDED_WORDS],
) {
    match layer.packed {
        Some(groups) => layer.pack_channels::<I>(input, groups, padded),
        None => layer.pad_and_bias(input, bytemuck::must_cast_slice_mut(&mut padded[..])),
    }
    let padded = &*padded;
    let mut scratch = None;
    for (index, first) in (0..layer.out_channels).step_by(BLOCK).enumerate() {
        let weights = match packed.and_then(|p| p.get(index)) {
            Some(weights) => weights,
            None => scratch.insert(Weights::<I>::pack(op, layer, first)),
        };
        let per_block = if layer.paired() {
            I::PAIRED_CHANNELS
        } else {
            I::CONV_CHANNELS
        };
        for sub in (0..BLOCK).step_by(per_block) {
            let left = layer.out_channels.saturating_sub(first + sub);
            // SAFETY: as this function.
            unsafe {
                match (per_block, left) {
                    (_, 0) => break,
                    (16, 9..) => layer.block::<I, 16>(padded, weights, output, first, sub),
                    (16, _) | (8, 5..) => layer.block::<I, 8>(padded, weights, output, first, sub),
                    _ => layer.block::<I, 4>(padded, weights, output, first, sub),
                }
            }
        }
    }
}

impl Layer {
    /// The layer's sizes if this path takes it; `None` leaves it to the portable operator.
    pub fn new<I: Isa>(op: &Conv2dOp<'_>, input_len: usize, output_len: usize) -> Option<Layer> {
        let (kernel, stride, padding) = (op.kernel, op.stride, op.padding);
        let pooled = match op.pool {
            PoolWindow::IDENTITY => false,
            POOL_2X2 => true,
            _ => return None,
        };
        if kernel == 0 || !(1..=3).contains(&stride) {
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
        // The row gathers take kernels up to 4 wide; the channel-packed layout any kernel at
        // stride 1. Where both fit, the one with fewer dot instructions per output.
        let rows_fit = kernel <= 4 && groups <= MAX_GROUPS && padded_len + 64 <= PADDED_BYTES;
        let channel_groups = input.c.div_ceil(I::PACK);
        let taps = channel_groups.checked_mul(kernel)?.checked_mul(kernel)?;
        let packed_words = channel_groups
            .checked_mul(padded_h)?
            .checked_mul(padded_w)?
            .checked_add(I::LANES)?;
        let packed_fits = stride == 1 && taps <= MAX_TAPS && packed_words <= PADDED_WORDS;
        let packed = match (rows_fit, packed_fits) {
            (_, true) if !rows_fit || taps < groups * I::ROW_DOTS => Some(channel_groups),
            (true, _) => None,
            _ => return None,
        };
        let fits = (op.output.h, op.output.w) == (out_h, out_w)
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
            input_zero_point: op.input_zero_point,
            packed,
        })
    }

    /// The pool's two conv rows are computed together ([`Layer::accumulate_packed`]).
    fn paired(&self) -> bool {
        self.pooled && self.packed.is_some()
    }

    /// The output channels this layer writes (read by the packing, which needs `std`).
    #[cfg(any(test, feature = "std"))]
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// Copies the input map into `padded` (C × padded_h × padded_w, row-major), each byte
    /// biased by +128, the border filled with the biased input zero point.
    #[inline(always)]
    fn pad_and_bias(&self, input: &[i8], padded: &mut [u8]) {
        let (p, w) = (self.padding, self.input.w);
        let border = self.input_zero_point as u8 ^ 0x80;
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

    /// Copies the input map into `padded` as `groups × padded_h × padded_w` lanes, each
    /// holding [`Isa::PACK`] consecutive input channels' biased bytes at one position; the
    /// border, and channels past the last (whose weights are 0), hold the biased zero point.
    #[inline(always)]
    fn pack_channels<I: Isa>(&self, input: &[i8], groups: usize, padded: &mut [u32]) {
        let (p, h, w) = (self.padding, self.input.h, self.input.w);
        let border_byte = self.input_zero_point as u8 ^ 0x80;
        let border = I::pack_lane([border_byte; 4]);
        let rows = padded
            .chunks_exact_mut(self.padded_w)
            .take(groups * self.padded_h);
        for (i, row) in rows.enumerate() {
            let (group, y) = (i / self.padded_h, (i % self.padded_h).wrapping_sub(p));
            if y >= h {
                row.fill(border);
                continue;
            }
            let (left, rest) = row.split_at_mut(p);
            let (middle, right) = rest.split_at_mut(w.min(rest.len()));
            left.fill(border);
            right.fill(border);
            middle.fill(0);
            // One pass per channel of the group: plain loops over slices, which vectorize.
            let shift = 32 / I::PACK;
            for j in 0..I::PACK {
                let channel = group * I::PACK + j;
                let start = (channel * h + y) * w;
                let source = (channel < self.input.c)
                    .then(|| input.get(start..start + w))
                    .flatten();
                let part = j * shift;
                match source {
                    Some(source) => {
                        for (lane, &x) in middle.iter_mut().zip(source) {
                            *lane |= u32::from(x as u8 ^ 0x80) << part;
                        }
                    }
                    None => {
                        for lane in middle.iter_mut() {
                            *lane |= u32::from(border_byte) << part;
                        }
                    }
                }
            }
        }
    }

    /// Every output row for output channels `first + sub..first + sub + CB` (those past the
    /// last channel are computed with zero weights and not stored).
    ///
    /// # Safety
    /// As [`run`]; `sub + CB ≤ BLOCK`.
    #[inline(always)]
    unsafe fn block<I: Isa, const CB: usize>(
        &self,
        padded: &[u32; PADDED_WORDS],
        weights: &Weights<I>,
        output: &mut [i8],
        first: usize,
        sub: usize,
    ) {
        let first = first + sub;
        let stored = (self.out_channels - first).min(CB);
        let plane = self.out_h * self.out_w;
        let requant: [VectorRequant; CB] = core::array::from_fn(|c| weights.requant[sub + c]);
        // SAFETY (all the vector calls below): as this function; `oy` and `x0` are in range.
        let gather = unsafe { I::gather_index(self.stride) };
        // Conv pixels computed per row: all of them, or those the pool reads.
        let conv_w = if self.pooled {
            2 * self.out_w
        } else {
            self.conv_w
        };
        let lanes = I::LANES;
        for oy in 0..self.out_h {
            for x0 in (0..conv_w).step_by(lanes) {
                // (No closures: their intrinsics would not inline.)
                let (top, bottom) = match (self.pooled, self.packed) {
                    (true, Some(groups)) => {
                        let [top, bottom] = unsafe {
                            self.accumulate_packed::<I, CB, 2>(
                                padded,
                                groups,
                                weights,
                                sub,
                                2 * oy,
                                x0,
                            )
                        };
                        (top, bottom)
                    }
                    _ => {
                        let (y, pooled) = (self.conv_row(oy, 0), self.pooled);
                        let top =
                            unsafe { self.sums::<I, CB>(padded, weights, sub, gather, y, x0) };
                        let bottom = match pooled {
                            true => unsafe {
                                self.sums::<I, CB>(padded, weights, sub, gather, y + 1, x0)
                            },
                            false => top,
                        };
                        (top, bottom)
                    }
                };
                let mut bytes = [unsafe { _mm_setzero_si128() }; CB];
                let (start, len) = if self.pooled {
                    let rows = top.into_iter().zip(bottom).zip(&requant);
                    for (b, ((top, bottom), requant)) in bytes.iter_mut().zip(rows) {
                        *b = unsafe { pool_2x2::<I>(top, bottom, requant, weights.monotone) };
                    }
                    (
                        oy * self.out_w + x0 / 2,
                        (self.out_w - x0 / 2).min(lanes / 2),
                    )
                } else {
                    for ((b, acc), requant) in bytes.iter_mut().zip(top).zip(&requant) {
                        *b = unsafe { requant.apply::<I>(acc) };
                    }
                    (oy * self.out_w + x0, (self.out_w - x0).min(lanes))
                };
                for (c, b) in bytes.iter().enumerate().take(stored) {
                    let at = (first + c) * plane + start;
                    if let Some(out) = output.get_mut(at..at + len) {
                        // SAFETY: each store writes exactly `out.len()` bytes.
                        unsafe { store_bytes(*b, out) };
                    }
                }
            }
        }
    }

    /// The conv output row feeding output row `oy` (`dy` = 1 for a pool's second row).
    fn conv_row(&self, oy: usize, dy: usize) -> usize {
        if self.pooled { 2 * oy + dy } else { oy }
    }

    /// [`Layer::sums`] in the channel-packed layout, for conv rows `y..y + ROWS` (one, or a
    /// pool's two at once: each weight broadcast then serves both rows): per tap and row one
    /// plain load of `LANES` adjacent lanes (stride 1), and one [`Isa::dot_packed`] per output
    /// channel and row.
    ///
    /// # Safety
    /// As [`Layer::sums`], for every row, with `groups` from [`Layer::new`].
    #[inline(always)]
    unsafe fn accumulate_packed<I: Isa, const CB: usize, const ROWS: usize>(
        &self,
        padded: &[u32; PADDED_WORDS],
        groups: usize,
        weights: &Weights<I>,
        sub: usize,
        y: usize,
        x0: usize,
    ) -> [[I::V; CB]; ROWS] {
        // SAFETY (the vector calls): as the caller guarantees.
        let biases = unsafe { biases::<I, CB>(weights, sub) };
        let mut acc = [biases; ROWS];
        let mut pixels = [unsafe { I::splat(0) }; ROWS];
        let (k, w, h) = (self.kernel, self.padded_w, self.padded_h);
        let base = padded.as_ptr();
        let mut tap = weights.taps.as_ptr();
        for group in 0..groups {
            for ky in 0..k {
                // `Layer::new` guarantees that the last lane read, `LANES − 1` past the
                // start of the last row's last tap, lies within the buffer.
                // SAFETY: within `padded`, as above; `tap` stays within `taps` (taps ≤ MAX_TAPS).
                unsafe {
                    let row = base.add((group * h + y + ky) * w + x0);
                    for kx in 0..k {
                        for (r, pixels) in pixels.iter_mut().enumerate() {
                            *pixels = I::load_lanes(row.add(r * w + kx));
                        }
                        let words = (*tap).as_ptr().add(sub);
                        for c in 0..CB {
                            let word = *words.add(c);
                            for (acc, &pixels) in acc.iter_mut().zip(&pixels) {
                                acc[c] = I::dot_packed(acc[c], pixels, word);
                            }
                        }
                        tap = tap.add(1);
                    }
                }
            }
        }
        acc
    }

    /// The sums of conv row `y`, pixels `x0..x0 + LANES`, for channels `sub..sub + CB` of the
    /// block, in the layer's layout: the row gathers here, the channel-packed layout in
    /// [`Layer::accumulate_packed`].
    ///
    /// # Safety
    /// As [`Layer::block`]; `y` is a conv output row, `x0 < conv_w`.
    #[inline(always)]
    unsafe fn sums<I: Isa, const CB: usize>(
        &self,
        padded: &[u32; PADDED_WORDS],
        weights: &Weights<I>,
        sub: usize,
        gather: I::Index,
        y: usize,
        x0: usize,
    ) -> [I::V; CB] {
        if let Some(groups) = self.packed {
            // SAFETY: as the caller guarantees.
            let [acc] =
                unsafe { self.accumulate_packed::<I, CB, 1>(padded, groups, weights, sub, y, x0) };
            return acc;
        }
        let padded: &[u8] = bytemuck::must_cast_slice(&padded[..]);
        // SAFETY (the vector calls): as the caller guarantees.
        let mut acc = unsafe { biases::<I, CB>(weights, sub) };
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
                // `Layer::new` guarantees `at + 64 ≤ PADDED_BYTES`; the `else` only keeps
                // the compiler's bounds check panic-free.
                let Some(bytes) = padded.get(at..at + 64) else {
                    continue;
                };
                // SAFETY: `bytes` holds 64 readable bytes.
                let pixels = unsafe { I::gather(bytes.as_ptr(), gather, s) };
                // A fixed-size view, so that the loop unrolls and the accumulators stay in
                // registers (`sub + CB ≤ BLOCK`).
                let Some(Ok(words)) = group.get(sub..sub + CB).map(<&[I::Word; CB]>::try_from)
                else {
                    continue;
                };
                for (acc, w) in acc.iter_mut().zip(words) {
                    *acc = unsafe { I::dot(*acc, pixels, w) };
                }
            }
        }
        acc
    }
}

/// Channels `sub..sub + CB`' biases, each in every lane: where their sums start.
///
/// # Safety
/// The CPU supports `I`.
#[inline(always)]
unsafe fn biases<I: Isa, const CB: usize>(weights: &Weights<I>, sub: usize) -> [I::V; CB] {
    // (A loop, not `array::from_fn`: a closure's intrinsics would not inline.)
    // SAFETY: as the caller guarantees.
    let mut acc = [unsafe { I::splat(0) }; CB];
    for (acc, &bias) in acc.iter_mut().zip(&weights.bias[sub..]) {
        *acc = unsafe { I::splat(bias) };
    }
    acc
}

/// The first `out.len()` (≤ 16) bytes of `bytes` into `out`: one store for 16 bytes, else one
/// 8-, 4-, 2- and 1-byte store per bit of the length. (A variable-length copy is a `memcpy`
/// call: that was 2% of the AVX2 tier's time, whose pooled vectors are 4 bytes, and every
/// AVX-512 row ends in one, 28 = 16 + 12.)
///
/// # Safety
/// SSE2 (every tier).
#[inline(always)]
unsafe fn store_bytes(bytes: __m128i, out: &mut [i8]) {
    let len = out.len().min(16);
    let at = out.as_mut_ptr();
    // SAFETY: the stores write bytes `0..len` of `out`, each piece where the last one ended.
    unsafe {
        if len == 16 {
            return _mm_storeu_si128(at.cast(), bytes);
        }
        let (mut rest, mut done) = (bytes, 0);
        if len & 8 != 0 {
            _mm_storel_epi64(at.cast(), rest);
            (rest, done) = (_mm_srli_si128::<8>(rest), 8);
        }
        if len & 4 != 0 {
            _mm_storeu_si32(at.add(done).cast(), rest);
            (rest, done) = (_mm_srli_si128::<4>(rest), done + 4);
        }
        if len & 2 != 0 {
            _mm_storeu_si16(at.add(done).cast(), rest);
            (rest, done) = (_mm_srli_si128::<2>(rest), done + 2);
        }
        if len & 1 != 0 {
            *at.add(done) = _mm_cvtsi128_si32(rest) as i8;
        }
    }
}

/// The 2×2 max pool of two conv rows' sums (lanes `2i`, `2i + 1` of both), requantized, in
/// byte `i`.
///
/// # Safety
/// The CPU supports `I`.
#[inline(always)]
unsafe fn pool_2x2<I: Isa>(
    top: I::V,
    bottom: I::V,
    requant: &VectorRequant,
    monotone: bool,
) -> __m128i {
    // SAFETY: as the caller guarantees; SSE4.1 is part of every tier.
    unsafe {
        let in_lane_order = if monotone {
            // A non-decreasing requantizer commutes with max: requantize once per pooled pixel.
            let rows = I::max(top, bottom);
            requant.apply::<I>(I::max(rows, I::odd_to_even(rows)))
        } else {
            let rows = _mm_max_epi8(requant.apply::<I>(top), requant.apply::<I>(bottom));
            _mm_max_epi8(rows, _mm_srli_si128::<1>(rows))
        };
        // The even bytes: one per pooled pixel.
        let even = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
        _mm_shuffle_epi8(in_lane_order, even)
    }
}

/// One block of [`BLOCK`] output channels, repacked for `I`.
#[derive(Clone, Copy)]
pub(crate) struct Weights<I: Isa> {
    /// `groups[ci·K + ky][c]`: the kernel row `(ci, ky)` of channel `first + c` (columns past
    /// `K` zero), as [`Isa::dot`] takes it, so that it broadcasts to every pixel lane.
    groups: [[I::Word; BLOCK]; MAX_GROUPS],
    /// The channel-packed layout's weights: `taps[(g·K + ky)·K + kx][c]`, the [`Isa::PACK`]
    /// weights of input channels `g·PACK..` at `(ky, kx)` of channel `first + c`.
    taps: [[i32; BLOCK]; MAX_TAPS],
    /// `bias − 128·Σw` per channel: undoes the +128 on the inputs.
    bias: [i32; BLOCK],
    requant: [VectorRequant; BLOCK],
    /// Every requantizer of the block is non-decreasing ([`crate::quant::Requantizer::is_monotone`]).
    monotone: bool,
}

impl<I: Isa> Weights<I> {
    /// Channels `first..first + BLOCK` of `op` (zeros past the last one).
    pub fn pack(op: &Conv2dOp<'_>, layer: &Layer, first: usize) -> Weights<I> {
        let k = layer.kernel;
        let per_channel = layer.input.c * k * k;
        let mut packed = Weights {
            groups: [[I::Word::default(); BLOCK]; MAX_GROUPS],
            taps: [[0; BLOCK]; MAX_TAPS],
            bias: [0; BLOCK],
            requant: [VectorRequant::default(); BLOCK],
            monotone: true,
        };
        let channels = op
            .weights
            .chunks_exact(per_channel.max(1))
            .zip(op.channels.iter())
            .skip(first)
            .take(BLOCK);
        for (c, (w, (bias, requant))) in channels.enumerate() {
            match layer.packed {
                Some(groups) => {
                    let taps = (0..groups).flat_map(|g| (0..k * k).map(move |t| (g, t)));
                    for (slot, (g, t)) in packed.taps.iter_mut().zip(taps) {
                        let mut words = [0_i8; 4];
                        for (j, word) in words.iter_mut().enumerate().take(I::PACK) {
                            let ci = g * I::PACK + j;
                            if ci < layer.input.c {
                                *word = w.get(ci * k * k + t).copied().unwrap_or(0);
                            }
                        }
                        slot[c] = I::pack_word(words);
                    }
                }
                None => {
                    for (g, row) in w.chunks_exact(k).enumerate().take(MAX_GROUPS) {
                        let mut bytes = [0_i8; 4];
                        for (b, &v) in bytes.iter_mut().zip(row) {
                            *b = v;
                        }
                        packed.groups[g][c] = I::word(bytes);
                    }
                }
            }
            let sum = w.iter().fold(0_i32, |s, &v| s.wrapping_add(i32::from(v)));
            packed.bias[c] = bias.wrapping_sub(sum.wrapping_mul(128));
            packed.requant[c] = VectorRequant::new(&requant);
            packed.monotone &= requant.is_monotone();
        }
        packed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv2d_op::ConvWindow;
    use crate::ops::tier::KernelTier;
    use crate::ops::x86::conv2d_with;
    use crate::reference::{self, ChannelData};
    use crate::test_util::SplitMix;
    use crate::test_util::cases::ConvRanges;

    crate::kernel_tests!(direct_conv_matches_reference);

    /// Random layers this path takes (up to 40 output channels, maps up to 40 wide, every
    /// stride, kernel and padding it supports, with and without the pool), against the
    /// reference; plus layers it must refuse. The portable tier has no direct kernel: it
    /// must decline every layer and write nothing.
    fn direct_conv_matches_reference(tier: KernelTier) {
        let mut rng = SplitMix::new(88);
        let (mut taken, mut nonsaturated) = (0, 0);
        for case in 0..600 {
            let layer = rng.conv_layer(&ConvRanges {
                kernels: &[1, 2, 3, 4, 5],
                max_stride: 3,
                max_padding: 2,
                odd_pools: false,
                max_in_channels: if case % 4 == 0 { 16 } else { 4 },
                extra_rows: 12,
                extra_columns: if case % 3 == 0 { 40 } else { 20 },
                max_out_channels: if case % 2 == 0 { 40 } else { 9 },
            });
            let (input, kernel, stride) = (layer.input, layer.window.kernel, layer.window.stride);
            let out_channels = layer.out_channels;
            let conv = reference::Conv {
                kernel,
                stride,
                padding: layer.window.padding,
                pool: (layer.window.pool.kernel, layer.window.pool.stride),
                input_zero_point: layer.input_zero_point,
            };
            let Some(shape) = conv.output(input, out_channels) else {
                continue;
            };
            let weights = rng.weights(layer.weights_len());
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
            let op = Conv2dOp::new(
                input,
                conv.window(),
                &weights,
                data.channels(),
                conv.input_zero_point,
            )
            .unwrap();
            assert_eq!(op.output, shape);
            let mut out = vec![0x55; shape.c * shape.plane() + 1];
            let took = conv2d_with(tier, &op, &x, &mut out);
            // The same layer through weights packed beforehand, as the prepared model runs it.
            if let Some(packed) = crate::ops::x86::PackedConv::new(tier, &op) {
                let mut again = vec![0x55; out.len()];
                // Leftovers of another layer in the padded buffer change nothing.
                let mut padded = vec![[0xA5C3_5A3C_u32; PADDED_WORDS]; 1];
                assert!(packed.run(&op, &x, &mut again, &mut padded[0]));
                if took {
                    let mut direct = vec![0x55; out.len()];
                    conv2d_with(tier, &op, &x, &mut direct);
                    assert_eq!(again, direct, "{tier} case {case}: packed once vs per call");
                }
            }
            if tier == KernelTier::Portable {
                assert!(!took, "case {case}: the portable tier has no direct kernel");
            }
            // Kernels up to 4 always fit one layout; wider ones only the stride-1 packed one.
            else if kernel <= 4 || stride > 1 {
                assert_eq!(took, kernel <= 4, "case {case}: {conv:?} {input:?}");
            }
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
                "{tier} case {case}: {conv:?} {input:?}"
            );
            assert_eq!(out[expected.len()], 0x55, "wrote past the output");
            nonsaturated += expected.iter().filter(|&&v| v != 127 && v != -128).count();
        }
        if tier == KernelTier::Portable {
            assert_eq!(taken, 0);
        } else {
            assert!(taken > 300, "{taken}");
            assert!(nonsaturated > 10_000, "{nonsaturated}");
        }
    }

    #[test]
    fn store_bytes_writes_exactly_the_first_len_bytes() {
        let source: [i8; 16] = core::array::from_fn(|i| i as i8 + 1);
        for len in 0..=16 {
            let mut out = [0x55_i8; 17];
            // SAFETY: SSE2 is part of x86-64; `source` holds 16 bytes.
            unsafe { store_bytes(_mm_loadu_si128(source.as_ptr().cast()), &mut out[..len]) };
            assert_eq!(out[..len], source[..len], "length {len}");
            assert!(out[len..].iter().all(|&b| b == 0x55), "length {len}");
        }
    }

    crate::kernel_tests!(simd: refuses_other_pools_and_oversized_inputs);

    fn refuses_other_pools_and_oversized_inputs(tier: KernelTier) {
        let data = ChannelData::random(&mut SplitMix::new(1), 2);
        let weights = [1; 2 * 8 * 9];
        let op = |c: usize, h: usize, pool: PoolWindow| {
            let window = ConvWindow {
                kernel: 3,
                stride: 1,
                padding: 1,
                pool,
            };
            let input = MapShape { c, h, w: h };
            Conv2dOp::new(input, window, &weights[..2 * c * 9], data.channels(), 0).unwrap()
        };
        let mut out = [0; 2 * 64 * 64];
        let x = [0; 8 * 64 * 64];
        let pool3 = PoolWindow {
            kernel: 3,
            stride: 3,
        };
        let conv2d = |op: &Conv2dOp<'_>, x: &[i8], out: &mut [i8]| conv2d_with(tier, op, x, out);
        assert!(!conv2d(&op(3, 12, pool3), &x, &mut out));
        // 8 × 66 × 66 padded bytes fit neither layout's buffer.
        assert!(!conv2d(&op(8, 64, PoolWindow::IDENTITY), &x, &mut out));
        // Short buffers (an output shape that disagrees with the layer cannot be built).
        assert!(!conv2d(&op(3, 12, POOL_2X2), &x[..100], &mut out));
        assert!(conv2d(&op(3, 12, POOL_2X2), &x, &mut out));
    }
}
