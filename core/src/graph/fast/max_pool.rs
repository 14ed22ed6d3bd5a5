//! MaxPool ([`crate::graph::kernels::pool`] without an average), separably and four bytes a
//! word (`dsp::max_bytes4`: SSUB8 and SEL on the Cortex-M4): per output row, the window's
//! valid input rows are folded column by column into a row of the scratch laid out with the
//! window's left and right padding as −128 (padding never wins, as in the portable kernel:
//! every window of a validated node holds a valid tap), then each output is the maximum of
//! its `kw` columns there, at stride 1 four outputs a word from the words at `x .. x + kw`.
//! A row's last word overlaps the one before where the length is not a multiple of four (a
//! maximum taken twice is the same maximum).

use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::taps;
use super::dsp::max_bytes4;

/// Scratch bytes for a map `w` wide under `window`: the padded row of column maxima, and
/// the spare bytes its last words read.
pub fn scratch_bytes(w: usize, window: Window) -> usize {
    w + usize::from(window.pads[1]) + usize::from(window.pads[3]) + 3
}

/// `false` (nothing written) when `scratch` is shorter than [`scratch_bytes`].
pub fn max_pool(
    input: &[i8],
    in_shape: MapShape,
    output: &mut [i8],
    out_shape: MapShape,
    window: Window,
    scratch: &mut [i8],
) -> bool {
    let [kh, kw] = window.kernel.map(usize::from);
    let [sh, sw] = window.stride.map(usize::from);
    let [pt, pl, _, _] = window.pads.map(usize::from);
    let w = in_shape.w;
    let Some(columns) = scratch.get_mut(..scratch_bytes(w, window)) else {
        return false;
    };
    // The padding (and the spare bytes) stay −128; each row rewrites `pl .. pl + w`.
    columns.fill(i8::MIN);
    for (plane, out_plane) in input
        .chunks_exact(in_shape.plane().max(1))
        .zip(output.chunks_exact_mut(out_shape.plane().max(1)))
    {
        for (oy, out_row) in out_plane.chunks_exact_mut(out_shape.w.max(1)).enumerate() {
            let (ky_lo, ky_hi, iy0) = taps(oy * sh, pt, kh, in_shape.h);
            let Some(body) = columns.get_mut(pl..pl + w) else {
                return false;
            };
            for (n, iy) in (iy0..iy0 + (ky_hi - ky_lo)).enumerate() {
                let row = plane.get(iy * w..(iy + 1) * w).unwrap_or_default();
                if n == 0 {
                    for (b, &x) in body.iter_mut().zip(row) {
                        *b = x;
                    }
                } else {
                    fold_row(body, row);
                }
            }
            row_maxima(columns, out_row, kw, sw);
        }
    }
    true
}

/// `acc[i] = max(acc[i], row[i])`, a word at a time.
fn fold_row(acc: &mut [i8], row: &[i8]) {
    let n = acc.len().min(row.len());
    if n < 4 {
        for (a, &r) in acc.iter_mut().zip(row) {
            *a = (*a).max(r);
        }
        return;
    }
    // The words at 0, 4, 8, … and the last one at n − 4.
    let starts = (0..n - 3).step_by(4).chain(core::iter::once(n - 4));
    for at in starts {
        if let (Some(a), Some(r)) = (acc.get_mut(at..at + 4), row.get(at..at + 4)) {
            let m = max_bytes4(word(a), word(r));
            if let Ok(a) = <&mut [i8; 4]>::try_from(a) {
                *a = bytes(m);
            }
        }
    }
}

/// `out[i]` = the maximum of `columns[i·stride .. i·stride + kw]`.
fn row_maxima(columns: &[i8], out: &mut [i8], kw: usize, stride: usize) {
    let n = out.len();
    if stride != 1 || n < 4 {
        for (i, q) in out.iter_mut().enumerate() {
            let taps = columns.get(i * stride..i * stride + kw).unwrap_or_default();
            *q = taps.iter().fold(i8::MIN, |m, &x| m.max(x));
        }
        return;
    }
    for at in (0..n - 3).step_by(4).chain(core::iter::once(n - 4)) {
        let mut m = 0x8080_8080;
        for k in 0..kw {
            m = max_bytes4(m, columns.get(at + k..at + k + 4).map_or(0x8080_8080, word));
        }
        if let Some(Ok(q)) = out.get_mut(at..at + 4).map(<&mut [i8; 4]>::try_from) {
            *q = bytes(m);
        }
    }
}

/// Four int8 values as a word (an unaligned load on the Cortex-M4).
fn word(v: &[i8]) -> u32 {
    <[i8; 4]>::try_from(v).map_or(0x8080_8080, |b| u32::from_le_bytes(b.map(|b| b as u8)))
}

fn bytes(word: u32) -> [i8; 4] {
    word.to_le_bytes().map(|b| b as i8)
}
