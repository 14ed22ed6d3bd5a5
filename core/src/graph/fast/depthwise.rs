//! Depthwise Conv (`group` = input channels = output channels), any window up to 5×5:
//! per channel, each input row the window reaches is unpacked once to int16 with its left
//! and right padding (the input zero point) into a ring of `kh` rows in the scratch; rows
//! above or below the map are zero points throughout. Every output is then `bias + Σ w·x`
//! over its whole window, the taps of a kernel row taken in pairs: one unaligned word of two
//! int16 values and one SMLAD against the pair of weights packed once per channel.

use crate::ops::requant::PreparedRequantizer;
use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::ChannelData;
use super::dsp::smlad;

/// Largest kernel side this path takes.
const MAX_SIDE: usize = 5;
/// A ring slot holding no row yet: no row number, not even a wrapped negative one (a padding
/// row above the map), is this far from both 0 and `usize::MAX`.
const NOTHING: usize = usize::MAX / 2;
/// Weight pairs of one channel: `kh · ⌈kw / 2⌉`.
const MAX_PAIRS: usize = MAX_SIDE * MAX_SIDE.div_ceil(2);

fn row_values(w: usize, window: Window) -> usize {
    // The padded row, and one spare value so that a pair load at the end stays inside.
    w + usize::from(window.pads[1]) + usize::from(window.pads[3]) + 1
}

/// Scratch bytes for a map `w` wide under `window`; beyond [`super::MAX_SCRATCH`] (the path
/// declines) for kernels wider or taller than 5.
pub fn scratch_bytes(w: usize, window: Window) -> usize {
    let [kh, kw] = window.kernel.map(usize::from);
    if kh > MAX_SIDE || kw > MAX_SIDE {
        return usize::MAX;
    }
    (kh * row_values(w, window))
        .saturating_mul(2)
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
    let ring: &mut [i16] = bytemuck::pod_align_to_mut::<i8, i16>(scratch).1;
    let Some(ring) = ring.get_mut(..kh * stride) else {
        return false;
    };
    let z = i16::from(input_zero_point);
    let pairs_per_row = kw / 2;
    let (in_plane, out_plane) = (in_shape.plane(), out_shape.plane());
    let planes = input.chunks_exact(in_plane.max(1));
    let kernels = weights.chunks_exact(kh * kw);
    let outs = output.chunks_exact_mut(out_plane.max(1));
    for (o, ((plane, w_c), out_c)) in planes.zip(kernels).zip(outs).enumerate() {
        let (bias, requant) = channels.channel(o);
        let prepared = PreparedRequantizer::new(&requant);
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
                dst.fill(z);
                if iy < in_shape.h
                    && let Some(src) = plane.get(iy * in_shape.w..(iy + 1) * in_shape.w)
                {
                    for (d, &s) in dst.iter_mut().skip(pl).zip(src) {
                        *d = i16::from(s);
                    }
                }
                if let Some(l) = loaded.get_mut(slot) {
                    *l = iy;
                }
            }
            let ring: &[i16] = ring;
            let rows = bases.map(|base| ring.get(base..base + stride).unwrap_or_default());
            if let ([r0, r1, r2, ..], [3, 3]) = (rows, [kh, kw]) {
                // 3×3, the common case: three rows, a pair and a single tap each.
                let [p0, p1, p2, ..] = pairs;
                let [s0, s1, s2, ..] = singles;
                let tap3 = |acc: i32, row: &[i16], x: usize, pair: u32, single: i32| match row
                    .get(x..x + 3)
                {
                    Some(&[a, b, c]) => {
                        smlad(pair, u32::from(a as u16) | u32::from(b as u16) << 16, acc)
                            .wrapping_add(single * i32::from(c))
                    }
                    _ => acc,
                };
                for (ox, q) in out_row.iter_mut().enumerate() {
                    let x = ox * sw;
                    let acc = tap3(bias, r0, x, p0, s0);
                    let acc = tap3(acc, r1, x, p1, s1);
                    let acc = tap3(acc, r2, x, p2, s2);
                    *q = match &prepared {
                        Some(p) => clamp(p.apply(acc), channels.clamp),
                        None => channels.finish(&requant, acc),
                    };
                }
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

fn clamp(q: i8, [lo, hi]: [i8; 2]) -> i8 {
    q.max(lo).min(hi)
}
