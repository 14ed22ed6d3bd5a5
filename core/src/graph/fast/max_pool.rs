//! MaxPool ([`crate::graph::kernels::pool`] without an average), separably: per output row,
//! the maximum of the window's valid input rows column by column into a row of the scratch,
//! then each output the maximum of its valid columns there. A 3×3 window costs about six
//! compares per output instead of nine taps each with its bounds. Padding never wins, as in
//! the portable kernel (every window holds at least one valid tap in a validated node).

use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::taps;

/// Scratch bytes for a map `w` wide: one row of column maxima.
pub fn scratch_bytes(w: usize) -> usize {
    w
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
    let Some(columns) = scratch.get_mut(..w) else {
        return false;
    };
    for (plane, out_plane) in input
        .chunks_exact(in_shape.plane().max(1))
        .zip(output.chunks_exact_mut(out_shape.plane().max(1)))
    {
        for (oy, out_row) in out_plane.chunks_exact_mut(out_shape.w.max(1)).enumerate() {
            let (ky_lo, ky_hi, iy0) = taps(oy * sh, pt, kh, in_shape.h);
            columns.fill(i8::MIN);
            for iy in iy0..iy0 + (ky_hi - ky_lo) {
                let row = plane.get(iy * w..(iy + 1) * w).unwrap_or_default();
                for (m, &x) in columns.iter_mut().zip(row) {
                    *m = (*m).max(x);
                }
            }
            let columns: &[i8] = columns;
            for (ox, q) in out_row.iter_mut().enumerate() {
                let (kx_lo, kx_hi, ix0) = taps(ox * sw, pl, kw, w);
                let valid = columns.get(ix0..ix0 + (kx_hi - kx_lo)).unwrap_or_default();
                *q = valid.iter().fold(i8::MIN, |m, &x| m.max(x));
            }
        }
    }
    true
}
