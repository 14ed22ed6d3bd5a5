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

use super::super::channel_data::ChannelData;
use super::super::conv_params::ConvParams;
use super::super::format::Window;
use super::super::kernels::Residual;
use super::add::TABLE_WORDS;
use super::dsp::{Runs, add_columns, expand_columns, gather_runs, mac_patch4, requantize_columns};
use super::requant::{FOLDED_WORDS, FoldedRequant};

/// Output positions computed together.
const COLUMNS: usize = 4;
/// Input channels staged at a time: a multiple of four, so that a staged pass is whole groups
/// of four taps, and about 256 taps a pass (a 3×3 conv stages 28 channels: fewer calls of
/// the gather and the expansion per output than four at a time), no more than the conv's own
/// channels (rounded up to four), so that a stem's staging stays small.
fn staged_channels(taps: usize, channels: usize) -> usize {
    ((256 / taps.max(1)) & !3).clamp(4, channels.next_multiple_of(4).max(4))
}

/// Words of the int16 patch: eight per group of four taps (four columns, two words each).
fn patch_words(k: usize) -> usize {
    2 * (k & !3)
}

/// Bytes of one column's staging: four channels' taps, and the three bytes a word copy of the
/// last kernel row may write past them (rounded to a word).
fn stage_stride(window: Window, channels: usize) -> usize {
    let taps = usize::from(window.kernel[0]) * usize::from(window.kernel[1]);
    staged_channels(taps, channels) * taps + 4
}

/// Scratch bytes for a conv with patches of `k` taps through `window` and `out_c` output
/// channels: the patch, the staging, every channel's folded requantizer, and the slack of
/// aligning to a word.
pub fn scratch_bytes(k: usize, window: Window, out_c: usize) -> usize {
    let taps = usize::from(window.kernel[0]) * usize::from(window.kernel[1]);
    patch_words(k)
        .saturating_add(FOLDED_WORDS.saturating_mul(out_c))
        .saturating_mul(4)
        .saturating_add(COLUMNS.saturating_mul(stage_stride(window, k / taps.max(1))))
        .saturating_add(3)
}

/// Scratch bytes for [`conv_add`]: the Add's tables, then the conv's.
pub fn conv_add_scratch_bytes(k: usize, window: Window, out_c: usize) -> usize {
    scratch_bytes(k, window, out_c).saturating_add(4 * TABLE_WORDS)
}

/// The conv of [`crate::graph::kernels::conv`] for `groups == 1`; `false` (nothing written)
/// when `scratch` is shorter than [`scratch_bytes`].
#[inline(never)]
pub fn conv(conv: &ConvParams<'_>, input: &[i8], output: &mut [i8], scratch: &mut [i8]) -> bool {
    conv_into(
        input,
        output,
        geometry(conv),
        conv.weights,
        &conv.channels,
        None,
        scratch,
    )
}

/// [`crate::graph::kernels::conv_add`]: `output` holds the residual and receives the sums,
/// each input's rescaling looked up as [`super::add`] does; `false` (nothing written) when
/// `scratch` is shorter than [`conv_add_scratch_bytes`].
#[inline(never)]
pub fn conv_add(
    conv: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    residual: &Residual,
    scratch: &mut [i8],
) -> bool {
    let (weights, channels) = (conv.weights, &conv.channels);
    conv_into(
        input,
        output,
        geometry(conv),
        weights,
        channels,
        Some(residual),
        scratch,
    )
}

/// The shift word that marks a channel whose requantizer does not fold
/// ([`FoldedRequant::new`] is `None`): its outputs take the [`PreparedRequantizer`] instead.
const UNFOLDED_SHIFT: u32 = u32::MAX;
const UNFOLDED: [u32; FOLDED_WORDS] = [0, 0, UNFOLDED_SHIFT, 0, 0];

/// The shapes, window and input zero point [`conv_into`] takes by value: read once by its
/// entry points, not through the `ConvParams` in its loops, which cost the M4 up to 10
/// instructions per output channel and block of four outputs (ResNet-8: 57,200 per
/// inference). The entry points are never inlined, so that this copy sits in their short
/// frames, not in the runner's (inlined, ResNet-8's stack peak grew by 12 B; apart, it fell
/// by 52 B).
fn geometry(conv: &ConvParams<'_>) -> (MapShape, MapShape, Window, i8) {
    (
        conv.in_shape,
        conv.out_shape,
        conv.window,
        conv.input_zero_point,
    )
}

fn conv_into(
    input: &[i8],
    output: &mut [i8],
    (in_shape, out_shape, window, input_zero_point): (MapShape, MapShape, Window, i8),
    weights: &[i8],
    channels: &ChannelData<'_>,
    residual: Option<&Residual>,
    scratch: &mut [i8],
) -> bool {
    let (_, words, _) = bytemuck::pod_align_to_mut::<i8, u32>(scratch);
    // The Add's tables first, when a residual Add is fused.
    let (tables, words) = match residual {
        Some(residual) => {
            let Some((tables, words)) = words.split_at_mut_checked(TABLE_WORDS) else {
                return false;
            };
            let tables = bytemuck::cast_slice_mut(tables);
            let Some(tables) = super::add::tables(tables, residual.zero_points, &residual.params)
            else {
                return false;
            };
            (Some(tables), words)
        }
        None => (None, words),
    };
    let [kh, kw] = window.kernel.map(usize::from);
    let taps = kh * kw;
    let k = in_shape.c * taps;
    let k4 = k & !3;
    let stride = stage_stride(window, in_shape.c);
    let staged = staged_channels(taps, in_shape.c);
    let out_c = out_shape.c;
    let Some((patch, rest)) = words.split_at_mut_checked(patch_words(k)) else {
        return false;
    };
    let Some((stage, rest)) = rest.split_at_mut_checked(COLUMNS * stride / 4) else {
        return false;
    };
    let Some(requants) = rest.get_mut(..FOLDED_WORDS * out_c) else {
        return false;
    };
    if channels.any_negative_multiplier() {
        return false;
    }
    let stage: &mut [i8] = bytemuck::cast_slice_mut(stage);
    // Every channel's requantizer and clamp folded once.
    for (o, slot) in requants.chunks_exact_mut(FOLDED_WORDS).enumerate() {
        let (_, requant) = channels.channel(o);
        let folded = FoldedRequant::new(&requant, channels.clamp);
        slot.copy_from_slice(&folded.and_then(FoldedRequant::to_words).unwrap_or(UNFOLDED));
    }
    let requants = &*requants;
    // The fused Add's output requantizer folded too, when it folds (validated ones do).
    let add_words = residual.and_then(|r| {
        let output = super::add::output_requantizer(&r.params, r.zero_points);
        FoldedRequant::new(&output, r.params.clamp).and_then(FoldedRequant::to_words)
    });
    let geometry = Geometry {
        in_shape,
        window,
        zero_point: input_zero_point,
        stride,
    };
    let plane = out_shape.plane();
    let tail = k - k4;
    // The output positions in row-major order, four at a time across row ends, so that a
    // narrow map (7 or 14 wide) wastes no columns but in its last pass.
    for p0 in (0..plane).step_by(COLUMNS) {
        let n = (plane - p0).min(COLUMNS);
        // The last pass's missing columns repeat its last position; their sums are dropped.
        let positions: [(usize, usize); COLUMNS] = core::array::from_fn(|col| {
            let p = (p0 + col).min(plane - 1);
            (p / out_shape.w.max(1), p % out_shape.w.max(1))
        });
        // The last pass's staging holds the tail taps afterwards.
        let mut tail_start = 0;
        for c0 in (0..in_shape.c).step_by(staged) {
            let count = (in_shape.c - c0).min(staged);
            let staged = count * taps;
            geometry.gather(input, &positions, c0, count, stage);
            let first_group = c0 * taps / 4;
            let groups = staged / 4;
            if let Some(dst) = patch.get_mut(8 * first_group..) {
                expand_columns(dst, stage, stride, groups);
            }
            tail_start = groups * 4;
        }
        let rows = weights.chunks_exact(k.max(1)).take(out_c);
        let per_channel = rows
            .zip(channels.bias)
            .zip(requants.chunks_exact(FOLDED_WORDS));
        for (o, ((w_row, bias), folded)) in per_channel.enumerate() {
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
            let Some(out) = output.get_mut(o * plane + p0..o * plane + p0 + n) else {
                continue;
            };
            // (Slices, not arrays: a copy or a comparison of five words costs a call here.)
            let is_folded = folded.get(2).is_some_and(|&shift| shift != UNFOLDED_SHIFT);
            match (&tables, out) {
                // The common case: four outputs requantized, clamped and stored together.
                (None, out) if n == COLUMNS && is_folded => {
                    requantize_columns(&acc, folded, out);
                }
                (Some(t), out) if n == COLUMNS && is_folded && add_words.is_some() => {
                    let add = add_words.as_ref().map_or(&[][..], |w| &w[..]);
                    add_columns(&acc, folded, (t.a, t.b), add, out);
                }
                (tables, out) => {
                    let values = match <[u32; FOLDED_WORDS]>::try_from(folded) {
                        Ok(words) if is_folded => {
                            acc.map(|a| FoldedRequant::from_words(words).apply(a))
                        }
                        _ => unfolded(channels, o, &acc),
                    };
                    for (q, &v) in out.iter_mut().zip(&values) {
                        *q = match tables {
                            Some(t) => t.apply(v, *q),
                            None => v,
                        };
                    }
                }
            }
        }
    }
    true
}

/// Channel `o`'s outputs from its sums with the [`PreparedRequantizer`] and the clamp (a
/// requantizer [`FoldedRequant`] does not take; none the quantize tool writes).
#[cold]
fn unfolded(channels: &ChannelData<'_>, o: usize, acc: &[i32; COLUMNS]) -> [i8; COLUMNS] {
    let (_, requant) = channels.channel(o);
    let [lo, hi] = channels.clamp;
    let clamped = Requantizer {
        min: i32::from(lo),
        ..requant
    };
    match PreparedRequantizer::new(&clamped) {
        Some(prepared) => acc.map(|a| prepared.apply(a).min(hi)),
        // Never: the multipliers were checked non-negative.
        None => [0; COLUMNS],
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
    /// Stages the int8 taps of input channels `c0..c0 + count` of the patches of the output
    /// positions `(oy, ox)` in `positions`, column `col` at `stage[col · stride..]`.
    fn gather(
        &self,
        input: &[i8],
        positions: &[(usize, usize); COLUMNS],
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
        for (col, &(oy, ox)) in positions.iter().enumerate() {
            // Input column of tap kx = 0 (wrapping below 0: then never inside a row).
            let x0 = (ox * sw).wrapping_sub(pl);
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
                let runs = Runs {
                    plane: plane_len,
                    row: w,
                    rows: kh,
                    channels: count,
                    step: kw,
                };
                if gather_runs(src, runs, dst) {
                    continue;
                }
            }
            // A window over the padding: every kernel row still one word, shifted and filled.
            if self.gather_padded((oy, x0), c0, count, input, dst) {
                continue;
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

    /// Stages one column's taps (output row `oy`, input column `x0` of tap kx = 0, wrapped
    /// below 0) when its window lies over the padding, for `kw ≤ 4`, `kh ≤ 8` and a row of at
    /// least four values: each kernel row is one word read inside its input row, shifted so
    /// that its taps inside the row land in place, and the zero point filled in where the
    /// padding is (a kernel row wholly over the padding: the zero point's word). `false` when
    /// the window is not of that kind, or a word would be read past the input (the caller then
    /// stages tap by tap).
    fn gather_padded(
        &self,
        (oy, x0): (usize, usize),
        c0: usize,
        count: usize,
        input: &[i8],
        dst: &mut [i8],
    ) -> bool {
        const MAX_ROWS: usize = 8;
        let [kh, kw] = self.window.kernel.map(usize::from);
        let [pt, _, _, _] = self.window.pads.map(usize::from);
        let MapShape { h, w, .. } = self.in_shape;
        if kw > 4 || kh > MAX_ROWS || w < 4 {
            return false;
        }
        let z = u32::from_le_bytes([self.zero_point as u8; 4]);
        // Where a kernel row inside the input is read (from its row's start), and the shifts
        // and the zero-point fill that put its taps in place: left of the input (x0 = −p),
        // the word at the row's start moved up p bytes; right of it (v taps inside), the
        // row's last word moved down 4 − v bytes.
        let (start, up, down, fill) = if x0 > w {
            let p = x0.wrapping_neg();
            (
                0,
                8 * p as u32,
                0,
                z.checked_shr(32 - 8 * p as u32).unwrap_or(0),
            )
        } else if x0 + kw > w {
            let v = w - x0;
            (w - 4, 0, 8 * (4 - v) as u32, z << (8 * v as u32))
        } else {
            (x0, 0, 0, 0)
        };
        // Per kernel row: (offset in a channel's plane, shift up, shift down, fill).
        let mut rows = [(0, 32, 0, z); MAX_ROWS];
        for (ky, row) in rows.iter_mut().enumerate().take(kh) {
            let iy = (oy * usize::from(self.window.stride[0]) + ky).wrapping_sub(pt);
            if iy < h {
                *row = (iy * w + start, up, down, fill);
            }
        }
        let plane = self.in_shape.plane();
        let mut j = 0;
        for c in c0..c0 + count {
            for &(offset, up, down, fill) in rows.iter().take(kh) {
                let at = c * plane + offset;
                let (Some(src), Some(d)) = (input.get(at..at + 4), dst.get_mut(j..j + 4)) else {
                    return false;
                };
                let word = src
                    .first_chunk::<4>()
                    .map_or(0, |b| u32::from_le_bytes(b.map(|x| x as u8)));
                let word = (word.checked_shl(up).unwrap_or(0) >> down) | fill;
                for (d, b) in d.iter_mut().zip(word.to_le_bytes()) {
                    *d = b as i8;
                }
                j += kw;
            }
        }
        true
    }
}
