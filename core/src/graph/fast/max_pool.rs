//! MaxPool ([`crate::graph::kernels::pool`] without an average), separably and four bytes a
//! word (`dsp::max_bytes4`: SSUB8 and SEL on the Cortex-M4): per output row, the window's
//! valid input rows are folded into a row of column maxima in one pass, a word of every row
//! per four columns (into the scratch, laid out with the window's left and right padding as
//! −128: padding never wins, as in the portable kernel: every window of a validated node
//! holds a valid tap), then each output is the maximum of its `kw` columns there, at stride
//! 1 four outputs a word from the words at `x .. x + kw`. A row's last word overlaps the one
//! before where the length is not a multiple of four (a maximum taken twice is the same
//! maximum).

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
            let rows = plane
                .get(iy0 * w..(iy0 + ky_hi - ky_lo) * w)
                .unwrap_or_default();
            let Some(body) = columns.get_mut(pl..pl + w) else {
                return false;
            };
            column_maxima(rows, body);
            row_maxima(columns, out_row, kw, sw);
        }
    }
    true
}

/// The word starts covering `n ≥ 4` bytes: 0, 4, 8, … and the last one at `n − 4`.
fn word_starts(n: usize) -> impl Iterator<Item = usize> {
    (0..n - 3).step_by(4).chain(core::iter::once(n - 4))
}

/// `body[i]` = the maximum of `rows[r·w + i]` over the rows (`w = body.len()`), one pass.
fn column_maxima(rows: &[i8], body: &mut [i8]) {
    let w = body.len();
    if w < 4 {
        for (i, b) in body.iter_mut().enumerate() {
            let column = rows.iter().skip(i).step_by(w.max(1));
            *b = column.fold(i8::MIN, |m, &x| m.max(x));
        }
        return;
    }
    let mut three = rows.chunks_exact(w);
    match (three.next(), three.next(), three.next(), three.next()) {
        // Three rows (a 3-high window inside the map), or two (at its top and bottom
        // edges): no loop over the rows.
        (Some(r0), Some(r1), Some(r2), None) => {
            for at in word_starts(w) {
                let m = max_bytes4(max_bytes4(word(r0, at), word(r1, at)), word(r2, at));
                store(body, at, m);
            }
        }
        (Some(r0), Some(r1), None, _) => {
            for at in word_starts(w) {
                store(body, at, max_bytes4(word(r0, at), word(r1, at)));
            }
        }
        _ => {
            for at in word_starts(w) {
                let m = rows
                    .chunks_exact(w)
                    .fold(0x8080_8080, |m, row| max_bytes4(m, word(row, at)));
                store(body, at, m);
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
    for at in word_starts(n) {
        // MobileNet's 3×3 window: the six bytes its three words read, one bounds check.
        let m = match columns.get(at..at + 6).map(<[i8; 6]>::try_from) {
            Some(Ok(six)) if kw == 3 => {
                let w = |k: usize| word(&six, k);
                max_bytes4(max_bytes4(w(0), w(1)), w(2))
            }
            _ => (0..kw).fold(0x8080_8080, |m, k| max_bytes4(m, word(columns, at + k))),
        };
        store(out, at, m);
    }
}

/// The four int8 values at `v[at..]` as a word (an unaligned load on the Cortex-M4); −128s
/// past the end.
#[inline(always)]
fn word(v: &[i8], at: usize) -> u32 {
    v.get(at..at + 4)
        .and_then(|s| <[i8; 4]>::try_from(s).ok())
        .map_or(0x8080_8080, |b| u32::from_le_bytes(b.map(|b| b as u8)))
}

/// `word` as the four bytes at `out[at..]`.
#[inline(always)]
fn store(out: &mut [i8], at: usize, word: u32) {
    if let Some(Ok(q)) = out.get_mut(at..at + 4).map(<&mut [i8; 4]>::try_from) {
        *q = word.to_le_bytes().map(|b| b as i8);
    }
}
