//! Depthwise Conv (`group` = input channels = output channels), any window up to 5×5:
//! per channel, each input row the window reaches is unpacked once to int16 with its left
//! and right padding (the input zero point) into a ring of `kh` word-aligned rows in the
//! scratch; rows above or below the map are zero points throughout. Every output is then
//! `bias + Σ w·x` over its whole window.
//!
//! 3×3 at horizontal stride 1 or 2 (DS-CNN's and MobileNet's), the common case: the row's
//! aligned words `(x[2i], x[2i+1])` meet weight pairs held for the whole channel. At stride 2
//! output `i` is `(w0, w1)·word i + (w2, 0)·word i+1` per kernel row: one new word and two
//! SMLAD. At stride 1 two outputs share two words: output `2i` is `(w0, w1)·word i +
//! (w2, 0)·word i+1`, output `2i+1` is `(0, w0)·word i + (w1, w2)·word i+1`: four SMLAD for
//! six MACs and one new word. Other windows take their taps in pairs from the int16 row.

use crate::ops::requant::PreparedRequantizer;
use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::ChannelData;
use super::dsp::smlad;
use super::requant::ChannelRequant;

/// Largest kernel side this path takes.
const MAX_SIDE: usize = 5;
/// A ring slot holding no row yet: no row number, not even a wrapped negative one (a padding
/// row above the map), is this far from both 0 and `usize::MAX`.
const NOTHING: usize = usize::MAX / 2;
/// Weight pairs of one channel: `kh · ⌈kw / 2⌉`.
const MAX_PAIRS: usize = MAX_SIDE * MAX_SIDE.div_ceil(2);

fn row_values(w: usize, window: Window) -> usize {
    // The padded row, and spare values so that the last output's words stay inside; even,
    // so that every row starts on a word.
    (w + usize::from(window.pads[1]) + usize::from(window.pads[3]) + 3) & !1
}

/// Scratch bytes for a map `w` wide under `window`; beyond [`super::MAX_SCRATCH`] (the path
/// declines) for kernels wider or taller than 5.
pub fn scratch_bytes(w: usize, window: Window) -> usize {
    let [kh, kw] = window.kernel.map(usize::from);
    if kh > MAX_SIDE || kw > MAX_SIDE {
        return usize::MAX;
    }
    // The ring of int16 rows, then a row of i32 sums (3×3 at strides 1 and 2).
    (kh * row_values(w, window))
        .saturating_mul(2)
        .saturating_add(row_values(w, window).saturating_mul(4))
        .saturating_add(3)
}

/// The conv of [`crate::graph::kernels::conv`] for a depthwise node; `false` (nothing
/// written) outside this path's limits or when `scratch` is short.
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
    let [kh, kw] = window.kernel.map(usize::from);
    let [sh, sw] = window.stride.map(usize::from);
    let [pt, pl, _, _] = window.pads.map(usize::from);
    if kh > MAX_SIDE || kw > MAX_SIDE || kh == 0 || kw == 0 {
        return false;
    }
    let stride = row_values(in_shape.w, window);
    let ring: &mut [u32] = bytemuck::pod_align_to_mut::<i8, u32>(scratch).1;
    let Some((ring, sums)) = ring.split_at_mut_checked(kh * stride / 2) else {
        return false;
    };
    let ring: &mut [i16] = bytemuck::cast_slice_mut(ring);
    // The sums of one output row (at most `stride − 1` outputs, rounded up to even).
    let mut acc_row: Option<&mut [i32]> = sums
        .get_mut(..stride)
        .map(bytemuck::cast_slice_mut::<u32, i32>);
    let z = i16::from(input_zero_point);
    let pairs_per_row = kw / 2;
    let (in_plane, out_plane) = (in_shape.plane(), out_shape.plane());
    let planes = input.chunks_exact(in_plane.max(1));
    let kernels = weights.chunks_exact(kh * kw);
    let outs = output.chunks_exact_mut(out_plane.max(1));
    for (o, ((plane, w_c), out_c)) in planes.zip(kernels).zip(outs).enumerate() {
        let (bias, requant) = channels.channel(o);
        let prepared = PreparedRequantizer::new(&requant);
        let fast_requant = ChannelRequant::new(&requant, channels.clamp);
        // (w[2i], w[2i+1]) of each kernel row as a word; an odd width's last tap apart.
        let mut pairs = [0_u32; MAX_PAIRS];
        let mut singles = [0_i32; MAX_SIDE];
        for (ky, w_row) in w_c.chunks_exact(kw).enumerate() {
            for (i, pair) in w_row.chunks_exact(2).enumerate() {
                if let (Some(p), [a, b]) = (pairs.get_mut(ky * pairs_per_row + i), pair) {
                    *p = u32::from(i16::from(*a) as u16) | u32::from(i16::from(*b) as u16) << 16;
                }
            }
            if let (Some(s), Some(&last)) = (singles.get_mut(ky), w_row.get(kw - 1)) {
                *s = if kw % 2 == 1 { i32::from(last) } else { 0 };
            }
        }
        // Which input row each ring slot holds.
        let mut loaded = [NOTHING; MAX_SIDE];
        for (oy, out_row) in out_c.chunks_exact_mut(out_shape.w.max(1)).enumerate() {
            let mut bases = [0_usize; MAX_SIDE];
            for (ky, base) in bases.iter_mut().enumerate().take(kh) {
                // Padding rows (above or below the map) map to slots of their own row
                // number too: filled with zero points, and never taken for a real row.
                let iy = (oy * sh + ky).wrapping_sub(pt);
                let slot = iy.wrapping_add(kh * MAX_SIDE) % kh;
                *base = slot * stride;
                if loaded.get(slot) == Some(&iy) {
                    continue;
                }
                let Some(dst) = ring.get_mut(slot * stride..(slot + 1) * stride) else {
                    continue;
                };
                let src = if iy < in_shape.h {
                    plane.get(iy * in_shape.w..(iy + 1) * in_shape.w)
                } else {
                    None
                };
                match src {
                    Some(src) => {
                        let (left, rest) = dst.split_at_mut(pl.min(stride));
                        left.fill(z);
                        let (middle, right) = rest.split_at_mut(src.len().min(rest.len()));
                        for (d, &s) in middle.iter_mut().zip(src) {
                            *d = i16::from(s);
                        }
                        right.fill(z);
                    }
                    _ => dst.fill(z),
                }
                if let Some(l) = loaded.get_mut(slot) {
                    *l = iy;
                }
            }
            let ring: &[i16] = ring;
            let rows = bases.map(|base| ring.get(base..base + stride).unwrap_or_default());
            if let (Some(fast_requant), Some(acc), [3, 3], 1 | 2) =
                (&fast_requant, acc_row.as_deref_mut(), [kh, kw], sw)
            {
                let acc = acc
                    .get_mut(..out_row.len().next_multiple_of(2))
                    .unwrap_or_default();
                let weights = [0, 1, 2].map(|k| {
                    let pair = pairs.get(k).copied().unwrap_or(0);
                    (pair, singles.get(k).map_or(0, |&s| s as u16 as u32))
                });
                sums_3x3(
                    [rows[0], rows[1], rows[2]].map(words),
                    weights,
                    sw,
                    bias,
                    acc,
                );
                requantize_row(acc, out_row, fast_requant);
                continue;
            }
            for (ox, q) in out_row.iter_mut().enumerate() {
                let mut acc = bias;
                let x = ox * sw;
                for (ky, row) in rows.iter().enumerate().take(kh) {
                    let row = row.get(x..).unwrap_or_default();
                    let row_pairs = pairs.get(ky * pairs_per_row..).unwrap_or_default();
                    for (i, &p) in row_pairs.iter().enumerate().take(pairs_per_row) {
                        if let Some(&[a, b]) = row.get(2 * i..2 * i + 2) {
                            let word = u32::from(a as u16) | u32::from(b as u16) << 16;
                            acc = smlad(p, word, acc);
                        }
                    }
                    if let (Some(&s), Some(&v)) = (singles.get(ky), row.get(kw - 1)) {
                        acc = acc.wrapping_add(s * i32::from(v));
                    }
                }
                *q = match &prepared {
                    Some(p) => clamp(p.apply(acc), channels.clamp),
                    None => channels.finish(&requant, acc),
                };
            }
        }
    }
    true
}

/// `acc[i] = bias + Σ_k (w_k0, w_k1, w_k2) · row_k[x .. x + 3]` for output `i` at `x = i·stride`
/// (1 or 2), `weights[k]` = ((w_k0 | w_k1 << 16), w_k2), the rows as word-aligned int16 pairs.
/// One pass over the sums per kernel row, so that few registers are live: its weight pairs,
/// a word or two, two sums. At stride 1, `acc.len()` is even (its last sum may be a spare).
#[inline(never)]
fn sums_3x3(
    rows: [&[u32]; 3],
    weights: [(u32, u32); 3],
    stride: usize,
    bias: i32,
    acc: &mut [i32],
) {
    // The first kernel row starts each sum at the bias (no separate fill pass).
    for (k, (row, (a, b))) in rows.into_iter().zip(weights).enumerate() {
        let first = k == 0;
        if stride == 2 {
            for (sum, w) in acc.iter_mut().zip(row.windows(2)) {
                if let &[x01, x23] = w {
                    let start = if first { bias } else { *sum };
                    *sum = smlad(b, x23, smlad(a, x01, start));
                }
            }
        } else {
            // Output 2i+1's weights: (0, w0) and (w1, w2).
            let (c, d) = (a << 16, a >> 16 | b << 16);
            for (sums, w) in acc.chunks_exact_mut(2).zip(row.windows(2)) {
                if let ([even, odd], &[x01, x23]) = (sums, w) {
                    let (e, o) = if first { (bias, bias) } else { (*even, *odd) };
                    *even = smlad(b, x23, smlad(a, x01, e));
                    *odd = smlad(d, x23, smlad(c, x01, o));
                }
            }
        }
    }
}

/// `out[i] = requantize(acc[i])` with the fused clamp, the channel's parameters in registers.
#[inline(never)]
fn requantize_row(acc: &[i32], out: &mut [i8], requant: &ChannelRequant) {
    for (q, &a) in out.iter_mut().zip(acc) {
        *q = requant.apply(a);
    }
}

/// A ring row as its words (word-aligned and of even length by construction).
fn words(row: &[i16]) -> &[u32] {
    bytemuck::try_cast_slice(row).unwrap_or_default()
}

fn clamp(q: i8, [lo, hi]: [i8; 2]) -> i8 {
    q.max(lo).min(hi)
}
