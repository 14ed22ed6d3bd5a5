//! Conv with `group` 1 and any window (kernel h×w, strides, asymmetric pads), four output
//! positions of a row at a time:
//!
//! 1. The four positions' patches (C·kh·kw taps each, OIHW order, padding = the input zero
//!    point) are gathered as int8, about 64 taps a pass (whole input channels, a multiple of
//!    four), into a small staging area:
//!    each kernel row's taps (kw ≤ 4 inside the input) is one unaligned word copy.
//! 2. Each staged word of four taps becomes two int16 pair words with two SXTB16, exactly the
//!    pairs (x0 | x2 << 16) and (x1 | x3 << 16) that SXTB16 makes of a weight word, written
//!    to the patch interleaved so that one LDM brings two columns' words. The last
//!    `C·kh·kw mod 4` taps stay in the staging area (the tail).
//! 3. Each output channel's int8 weights are read straight from the blob (no copy, nothing
//!    repacked): one word of four taps, two SXTB16, and four columns' SMLAD pairs
//!    (`dsp::mac_patch4`, 29 instructions per 32 multiply-accumulates), starting from the bias.
//! 4. The tail taps, then the requantization with the channel prepared once per four outputs
//!    ([`PreparedRequantizer`]) and the fused clamp, exactly as
//!    [`crate::graph::kernels::conv`] does.
//!
//! With padding holding the zero point, `bias + Σ w·patch` is the portable kernel's
//! `bias + z·Σw + Σ_valid w·(x − z)` term for term (wrapping sums are exact).

use crate::ops::requant::PreparedRequantizer;
use crate::quant::Requantizer;
use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::{ChannelData, Residual};
use super::add::{TABLE_WORDS, Tables};
use super::dsp::{gather_runs, mac_patch4, requantize, sxtb16_pairs};
use super::requant::ChannelRequant;

/// Output positions computed together.
const COLUMNS: usize = 4;
/// Input channels staged at a time: a multiple of four, so that a staged pass is whole groups
/// of four taps, and about 64 taps a pass (a 1×1 conv stages 64 channels, a 3×3 one four).
fn staged_channels(taps: usize) -> usize {
    ((64 / taps.max(1)) & !3).max(4)
}

/// Words of the int16 patch: eight per group of four taps (four columns, two words each).
fn patch_words(k: usize) -> usize {
    2 * (k & !3)
}

/// Bytes of one column's staging: four channels' taps, and the three bytes a word copy of the
/// last kernel row may write past them (rounded to a word).
fn stage_stride(window: Window) -> usize {
    let taps = usize::from(window.kernel[0]) * usize::from(window.kernel[1]);
    staged_channels(taps) * taps + 4
}

/// Words of one prepared requantizer ([`PreparedRequantizer::to_words`]).
const REQUANT_WORDS: usize = 6;

/// Scratch bytes for a conv with patches of `k` taps through `window` and `out_c` output
/// channels: the patch, the staging, and when `batched`, every channel's prepared
/// requantizer, four columns' sums and one column's int8 values (with the slack of aligning
/// to a word).
pub fn scratch_bytes(k: usize, window: Window, out_c: usize) -> usize {
    let per_channel = if batched(k, out_c) {
        per_channel_bytes()
    } else {
        0
    };
    patch_words(k)
        .saturating_mul(4)
        .saturating_add(COLUMNS.saturating_mul(stage_stride(window)))
        .saturating_add(per_channel.saturating_mul(out_c))
        .saturating_add(3 + 3)
}

/// Scratch bytes for [`conv_add`]: the Add's tables, then the conv's.
pub fn conv_add_scratch_bytes(k: usize, window: Window, out_c: usize) -> usize {
    scratch_bytes(k, window, out_c).saturating_add(4 * TABLE_WORDS)
}

/// The conv of [`crate::graph::kernels::conv`] for `groups == 1`; `false` (nothing written)
/// when `scratch` is shorter than [`scratch_bytes`].
#[allow(clippy::too_many_arguments)]
pub fn conv(
    input: &[i8],
    in_shape: MapShape,
    output: &mut [i8],
    out_shape: MapShape,
    window: Window,
    input_zero_point: i8,
    weights: &[i8],
    channels: &ChannelData<'_>,
    scratch: &mut [i8],
) -> bool {
    let geometry = (in_shape, out_shape, window, input_zero_point);
    let (_, words, _) = bytemuck::pod_align_to_mut::<i8, u32>(scratch);
    conv_into(input, output, geometry, weights, channels, None, words)
}

/// [`crate::graph::kernels::conv_add`]: `output` holds the residual and receives the sums,
/// each input's rescaling looked up as [`super::add`] does; `false` (nothing written) when
/// `scratch` is shorter than [`conv_add_scratch_bytes`].
#[allow(clippy::too_many_arguments)]
pub fn conv_add(
    input: &[i8],
    in_shape: MapShape,
    output: &mut [i8],
    out_shape: MapShape,
    window: Window,
    input_zero_point: i8,
    weights: &[i8],
    channels: &ChannelData<'_>,
    residual: &Residual,
    scratch: &mut [i8],
) -> bool {
    let geometry = (in_shape, out_shape, window, input_zero_point);
    let (_, words, _) = bytemuck::pod_align_to_mut::<i8, u32>(scratch);
    let Some((tables, words)) = super::add::residual_tables(words, residual) else {
        return false;
    };
    conv_into(
        input,
        output,
        geometry,
        weights,
        channels,
        Some(&tables),
        words,
    )
}

fn conv_into(
    input: &[i8],
    output: &mut [i8],
    (in_shape, out_shape, window, input_zero_point): (MapShape, MapShape, Window, i8),
    weights: &[i8],
    channels: &ChannelData<'_>,
    residual: Option<&Tables<'_>>,
    words: &mut [u32],
) -> bool {
    let [kh, kw] = window.kernel.map(usize::from);
    let taps = kh * kw;
    let k = in_shape.c * taps;
    let k4 = k & !3;
    let stride = stage_stride(window);
    let staged = staged_channels(taps);
    let out_c = out_shape.c;
    let Some((patch, rest)) = words.split_at_mut_checked(patch_words(k)) else {
        return false;
    };
    let Some((stage, rest)) = rest.split_at_mut_checked(COLUMNS * stride / 4) else {
        return false;
    };
    let batched = batched(k, out_c);
    let per = if batched { out_c } else { 0 };
    let Some((requants, rest)) = rest.split_at_mut_checked(REQUANT_WORDS * per) else {
        return false;
    };
    let Some((sums, rest)) = rest.split_at_mut_checked(COLUMNS * per) else {
        return false;
    };
    let Some(values) = rest.get_mut(..per.div_ceil(4)) else {
        return false;
    };
    // A negative multiplier (no validated blob has one): the portable code runs.
    if channels
        .multiplier
        .iter()
        .any(|m| i32::from_le_bytes(*m) < 0)
    {
        return false;
    }
    let stage: &mut [i8] = bytemuck::cast_slice_mut(stage);
    let sums: &mut [i32] = bytemuck::cast_slice_mut(sums);
    let values: &mut [i8] = bytemuck::cast_slice_mut(values);
    // Every channel's requantizer prepared once, the lower clamp as its minimum (both are a
    // max with the int8 value); the upper clamp after it.
    let [lo, hi] = channels.clamp;
    for (o, slot) in requants.chunks_exact_mut(REQUANT_WORDS).enumerate() {
        let (_, requant) = channels.channel(o);
        let clamped = Requantizer {
            min: i32::from(lo),
            ..requant
        };
        match PreparedRequantizer::new(&clamped) {
            Some(prepared) => {
                for (w, p) in slot.iter_mut().zip(prepared.to_words()) {
                    *w = p;
                }
            }
            // A negative multiplier (no validated blob has one): the portable code runs.
            None => return false,
        }
    }
    let geometry = Geometry {
        in_shape,
        window,
        zero_point: input_zero_point,
        stride,
    };
    let out_plane = out_shape.plane();
    let tail = k - k4;
    // The Add's output rescaling and its clamp, prepared once by `add::tables`.
    let residual = residual.map(|t| (t, t.output));
    for oy in 0..out_shape.h {
        for ox0 in (0..out_shape.w).step_by(COLUMNS) {
            let n = (out_shape.w - ox0).min(COLUMNS);
            // The last pass's staging holds the tail taps afterwards.
            let mut tail_start = 0;
            for c0 in (0..in_shape.c).step_by(staged) {
                let count = (in_shape.c - c0).min(staged);
                let staged = count * taps;
                geometry.gather(input, oy, ox0, c0, count, stage);
                let first_group = c0 * taps / 4;
                let groups = staged / 4;
                if let Some(dst) = patch.get_mut(8 * first_group..8 * (first_group + groups)) {
                    expand(dst, stage, stride);
                }
                tail_start = groups * 4;
            }
            // Each channel's four sums, kept per column so that a column's channels are
            // requantized together.
            let rows = weights.chunks_exact(k.max(1)).take(out_c);
            for (o, (w_row, bias)) in rows.zip(channels.bias).enumerate() {
                let mut acc = [i32::from_le_bytes(*bias); COLUMNS];
                mac_patch4(patch, w_row, k4 / 4, &mut acc);
                if tail > 0 {
                    let w_tail = w_row.get(k4..).unwrap_or_default();
                    for (col, a) in acc.iter_mut().enumerate() {
                        let start = col * stride + tail_start;
                        let xs = stage.get(start..start + tail).unwrap_or_default();
                        for (&w, &x) in w_tail.iter().zip(xs) {
                            *a = a.wrapping_add(i32::from(w) * i32::from(x));
                        }
                    }
                }
                if batched {
                    for (col, &a) in acc.iter().enumerate() {
                        if let Some(s) = sums.get_mut(col * out_c + o) {
                            *s = a;
                        }
                    }
                    continue;
                }
                // This channel's outputs now, its requantizer prepared for them.
                let (_, requant) = channels.channel(o);
                let clamped = Requantizer {
                    min: i32::from(lo),
                    ..requant
                };
                let (Some(prepared), Some(out)) = (
                    PreparedRequantizer::new(&clamped),
                    output.get_mut(o * out_plane + oy * out_shape.w + ox0..),
                ) else {
                    continue;
                };
                for (q, &a) in out.iter_mut().take(n).zip(&acc) {
                    let v = prepared.apply(a).min(hi);
                    *q = match &residual {
                        Some((t, sum)) => add(t, sum, v, *q),
                        None => v,
                    };
                }
            }
            if !batched {
                continue;
            }
            for col in 0..n {
                let pixel = oy * out_shape.w + ox0 + col;
                let column = sums.get(col * out_c..(col + 1) * out_c).unwrap_or_default();
                let out = output.get_mut(pixel..).unwrap_or_default();
                match residual {
                    None if hi == i8::MAX => requantize(column, requants, out_c, out, out_plane),
                    None => {
                        requantize(column, requants, out_c, values, 1);
                        let outputs = out.iter_mut().step_by(out_plane.max(1));
                        for (q, &v) in outputs.zip(values.iter()) {
                            *q = v.min(hi);
                        }
                    }
                    Some((t, sum)) => {
                        requantize(column, requants, out_c, values, 1);
                        let outputs = out.iter_mut().step_by(out_plane.max(1));
                        for (q, &v) in outputs.zip(values.iter()) {
                            *q = add(t, &sum, v.min(hi), *q);
                        }
                    }
                }
            }
        }
    }
    true
}

/// `Tables::apply` of the conv's value `v` and the residual `r`, the output's rescaling
/// prepared once (`sum`).
#[inline(always)]
fn add(t: &Tables<'_>, sum: &ChannelRequant, v: i8, r: i8) -> i8 {
    let total = t.a[usize::from(v as u8)].saturating_add(t.b[usize::from(r as u8)]);
    sum.apply(total)
}

/// Whether the channels are requantized a column at a time (every channel's requantizer
/// prepared once per call, the chain conv's assembly): when their scratch is at most the
/// patch's, so that it never more than doubles the node's scratch (a stem's or a 1×1 conv's
/// channels are requantized one at a time instead).
fn batched(k: usize, out_c: usize) -> bool {
    per_channel_bytes().saturating_mul(out_c) <= 4 * patch_words(k)
}

fn per_channel_bytes() -> usize {
    4 * (REQUANT_WORDS + COLUMNS) + 1
}

/// Writes the int16 pair words of the staged taps: group `g` of column `col` (bytes
/// `4g..4g + 4` of its staging) at words `8g + 2·col` and `8g + 2·col + 1`.
#[inline(always)]
fn expand(patch: &mut [u32], stage: &[i8], stride: usize) {
    let column = |col: usize| {
        stage
            .get(col * stride..(col + 1) * stride)
            .unwrap_or_default()
            .chunks_exact(4)
    };
    let words =
        |b: &[i8]| <[i8; 4]>::try_from(b).map_or(0, |b| u32::from_le_bytes(b.map(|x| x as u8)));
    let groups = patch
        .chunks_exact_mut(8)
        .zip(column(0))
        .zip(column(1))
        .zip(column(2))
        .zip(column(3));
    for ((((dst, b0), b1), b2), b3) in groups {
        let pairs = [b0, b1, b2, b3].map(|b| sxtb16_pairs(words(b)));
        for (d, pair) in dst.chunks_exact_mut(2).zip(pairs) {
            if let [even, odd] = d {
                (*even, *odd) = pair;
            }
        }
    }
}

struct Geometry {
    in_shape: MapShape,
    window: Window,
    zero_point: i8,
    /// Bytes between two columns' staging.
    stride: usize,
}

impl Geometry {
    /// Stages the int8 taps of input channels `c0..c0 + count` of the patches of positions
    /// `ox0..ox0 + 4` of output row `oy`, column `col` at `stage[col · stride..]` (columns past
    /// the row's end get whatever their window holds; their sums are never stored).
    fn gather(
        &self,
        input: &[i8],
        oy: usize,
        ox0: usize,
        c0: usize,
        count: usize,
        stage: &mut [i8],
    ) {
        let [kh, kw] = self.window.kernel.map(usize::from);
        let [sh, sw] = self.window.stride.map(usize::from);
        let [pt, pl, _, _] = self.window.pads.map(usize::from);
        let MapShape { h, w, .. } = self.in_shape;
        let plane_len = self.in_shape.plane();
        let z = self.zero_point;
        for col in 0..COLUMNS {
            // Input column of tap kx = 0 (wrapping below 0: then never inside a row).
            let x0 = (ox0 + col) * sw;
            let x0 = x0.wrapping_sub(pl);
            let inside = x0.checked_add(kw).is_some_and(|end| end <= w);
            let Some(dst) = stage.get_mut(col * self.stride..(col + 1) * self.stride) else {
                return;
            };
            // A window inside the input: every kernel row one word, copied by `gather_runs`.
            let iy0 = (oy * sh).wrapping_sub(pt);
            let rows_inside = iy0.checked_add(kh).is_some_and(|end| end <= h);
            if inside && rows_inside && kw <= 4 {
                let start = c0 * plane_len + iy0 * w + x0;
                let src = input.get(start..).unwrap_or_default();
                if gather_runs(src, (plane_len, w, kh, count), dst, kw) {
                    continue;
                }
            }
            let mut j = 0;
            for c in c0..c0 + count {
                for ky in 0..kh {
                    let iy = (oy * sh + ky).wrapping_sub(pt);
                    if iy < h && inside && kw <= 4 {
                        let start = c * plane_len + iy * w + x0;
                        // One word: the run and the bytes after it, which the next run (or
                        // the staging's slack) takes.
                        if let (Some(src), Some(d)) =
                            (input.get(start..start + 4), dst.get_mut(j..j + 4))
                        {
                            if let (Ok(d), Ok(s)) =
                                (<&mut [i8; 4]>::try_from(d), <[i8; 4]>::try_from(src))
                            {
                                *d = s;
                            }
                            j += kw;
                            continue;
                        }
                    }
                    let row = if iy < h {
                        input.get(c * plane_len + iy * w..c * plane_len + (iy + 1) * w)
                    } else {
                        None
                    };
                    let row = row.unwrap_or_default();
                    for (kx, d) in dst.iter_mut().skip(j).take(kw).enumerate() {
                        *d = row.get(x0.wrapping_add(kx)).copied().unwrap_or(z);
                    }
                    j += kw;
                }
            }
        }
    }
}
