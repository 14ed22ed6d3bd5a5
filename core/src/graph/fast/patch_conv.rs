//! Conv with `group` 1 and any window (kernel h×w, strides, asymmetric pads), four output
//! positions of a row at a time:
//!
//! 1. The four positions' patches (C·kh·kw taps each, OIHW order, padding = the input zero
//!    point) are unpacked to int16 into the scratch, interleaved so that one LDM brings two
//!    columns' words for four taps: per group of four taps, for each column, the words
//!    (x0 | x2 << 16) and (x1 | x3 << 16). The last `C·kh·kw mod 4` taps go to a small tail.
//! 2. Each output channel's int8 weights are read straight from the blob (no copy, nothing
//!    repacked): one word of four taps, two SXTB16, and four columns' SMLAD pairs
//!    (`dsp::mac_patch4`), starting from the bias.
//! 3. The tail taps, then the requantization and the fused clamp, exactly as
//!    [`crate::graph::kernels::conv`] does.
//!
//! With padding holding the zero point, `bias + Σ w·patch` is the portable kernel's
//! `bias + z·Σw + Σ_valid w·(x − z)` term for term (wrapping sums are exact).

use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::ChannelData;
use super::dsp::mac_patch4;

/// Output positions computed together.
const COLUMNS: usize = 4;

fn words_for(k: usize) -> usize {
    // Eight words per group of four taps; the tail's 4 × 4 int16 values.
    2 * (k & !3) + 8
}

/// Scratch bytes for patches of `k` taps (with the slack of aligning to a word).
pub fn scratch_bytes(k: usize) -> usize {
    words_for(k).saturating_mul(4).saturating_add(3)
}

/// The int16 slot of tap `j` (below the tail) for column 0; column `col` adds `4·col`.
#[inline(always)]
fn slot(j: usize) -> usize {
    ((j >> 2) << 4) | ((j & 1) << 1) | ((j >> 1) & 1)
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
    let [kh, kw] = window.kernel.map(usize::from);
    let k = in_shape.c * kh * kw;
    let k4 = k & !3;
    let words = bytemuck::pod_align_to_mut::<i8, u32>(scratch).1;
    let Some(words) = words.get_mut(..words_for(k)) else {
        return false;
    };
    let Some((main, tail)) = words.split_at_mut_checked(2 * k4) else {
        return false;
    };
    let out_plane = out_shape.plane();
    let geometry = Geometry {
        in_shape,
        window,
        zero_point: i16::from(input_zero_point),
        k4,
    };
    for oy in 0..out_shape.h {
        for ox0 in (0..out_shape.w).step_by(COLUMNS) {
            let n = (out_shape.w - ox0).min(COLUMNS);
            geometry.fill(
                input,
                oy,
                ox0,
                bytemuck::cast_slice_mut(&mut *main),
                bytemuck::cast_slice_mut(&mut *tail),
            );
            let tail_values: &[i16] = bytemuck::cast_slice(&*tail);
            for (o, w_row) in weights.chunks_exact(k.max(1)).enumerate() {
                let (bias, requant) = channels.channel(o);
                let mut acc = [bias; COLUMNS];
                mac_patch4(main, w_row, k4 / 4, &mut acc);
                for (t, &w) in w_row.get(k4..).unwrap_or_default().iter().enumerate() {
                    let w = i32::from(w);
                    for (col, a) in acc.iter_mut().enumerate() {
                        let x = tail_values.get(col * 4 + t).copied().unwrap_or(0);
                        *a = a.wrapping_add(w * i32::from(x));
                    }
                }
                let start = o * out_plane + oy * out_shape.w + ox0;
                if let Some(out) = output.get_mut(start..start + n) {
                    for (q, &a) in out.iter_mut().zip(&acc) {
                        *q = channels.finish(&requant, a);
                    }
                }
            }
        }
    }
    true
}

struct Geometry {
    in_shape: MapShape,
    window: Window,
    zero_point: i16,
    k4: usize,
}

impl Geometry {
    /// Unpacks the patches of positions `ox0..ox0 + 4` of output row `oy` (columns past the
    /// row's end get whatever their window holds; their sums are never stored).
    fn fill(&self, input: &[i8], oy: usize, ox0: usize, values: &mut [i16], tails: &mut [i16]) {
        let [kh, kw] = self.window.kernel.map(usize::from);
        let [sh, sw] = self.window.stride.map(usize::from);
        let [pt, pl, _, _] = self.window.pads.map(usize::from);
        let MapShape { h, w, .. } = self.in_shape;
        let plane_len = self.in_shape.plane();
        let z = self.zero_point;
        // Input column of column 0's tap kx = 0 (wrapping below 0: then never inside a row).
        let x0 = (ox0 * sw).wrapping_sub(pl);
        // The input bytes the four columns' windows cover when they lie inside a row at
        // stride 1: one slice per kernel row, no per-tap checks.
        let span = kw + COLUMNS - 1;
        let interior = sw == 1 && x0.checked_add(span).is_some_and(|end| end <= w);
        let mut j = 0;
        for plane in input.chunks_exact(plane_len.max(1)).take(self.in_shape.c) {
            for ky in 0..kh {
                let iy = (oy * sh + ky).wrapping_sub(pt);
                let row = if iy < h {
                    plane.get(iy * w..(iy + 1) * w).unwrap_or_default()
                } else {
                    &[]
                };
                if interior
                    && j + kw <= self.k4
                    && let Some(window) = row.get(x0..x0 + span)
                {
                    for kx in 0..kw {
                        let s = slot(j + kx);
                        if let (Some(dst), Some(src)) =
                            (values.get_mut(s..s + 13), window.get(kx..kx + COLUMNS))
                        {
                            for (col, &x) in src.iter().enumerate() {
                                if let Some(d) = dst.get_mut(col * 4) {
                                    *d = i16::from(x);
                                }
                            }
                        }
                    }
                    j += kw;
                    continue;
                }
                for kx in 0..kw {
                    let first = x0.wrapping_add(kx);
                    let xs: [i16; COLUMNS] = core::array::from_fn(|col| {
                        row.get(first.wrapping_add(col * sw))
                            .map_or(z, |&v| i16::from(v))
                    });
                    let (dst, base) = if j < self.k4 {
                        (&mut *values, slot(j))
                    } else {
                        (&mut *tails, j - self.k4)
                    };
                    for (col, x) in xs.into_iter().enumerate() {
                        if let Some(d) = dst.get_mut(base + col * 4) {
                            *d = x;
                        }
                    }
                    j += 1;
                }
            }
        }
    }
}
