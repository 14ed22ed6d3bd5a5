//! AveragePool and GlobalAveragePool ([`crate::graph::kernels::pool`] and
//! [`crate::graph::kernels::global_average`]) with each window row summed a word of four
//! bytes at a time (`dsp::sum_bytes`: two SXTAB16 a word on the Cortex-M4).

use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::{rounded_mean, taps};
use super::dsp::sum_bytes;

/// The mean of each channel over H×W, same quantization.
pub fn global_average(input: &[i8], in_shape: MapShape, output: &mut [i8]) {
    let plane = in_shape.plane();
    for (values, out) in input.chunks_exact(plane.max(1)).zip(output.iter_mut()) {
        *out = rounded_mean(sum_bytes(values), plane);
    }
}

/// Average pooling over a padded window, `count_include_pad` as ONNX's.
pub fn average_pool(
    input: &[i8],
    in_shape: MapShape,
    output: &mut [i8],
    out_shape: MapShape,
    window: Window,
    (count_include_pad, zero_point): (bool, i8),
) {
    let [kh, kw] = window.kernel.map(usize::from);
    let [sh, sw] = window.stride.map(usize::from);
    let [pt, pl, _, _] = window.pads.map(usize::from);
    for (plane, out_plane) in input
        .chunks_exact(in_shape.plane().max(1))
        .zip(output.chunks_exact_mut(out_shape.plane().max(1)))
    {
        for (oy, out_row) in out_plane.chunks_exact_mut(out_shape.w.max(1)).enumerate() {
            let (ky_lo, ky_hi, iy0) = taps(oy * sh, pt, kh, in_shape.h);
            for (ox, out) in out_row.iter_mut().enumerate() {
                let (kx_lo, kx_hi, ix0) = taps(ox * sw, pl, kw, in_shape.w);
                let width = kx_hi - kx_lo;
                let mut sum = 0_i32;
                for iy in iy0..iy0 + (ky_hi - ky_lo) {
                    let start = iy * in_shape.w + ix0;
                    sum += sum_bytes(plane.get(start..start + width).unwrap_or_default());
                }
                let valid = (ky_hi - ky_lo) * width;
                let count = if count_include_pad {
                    sum += (kh * kw - valid) as i32 * i32::from(zero_point);
                    kh * kw
                } else {
                    valid
                };
                *out = rounded_mean(sum, count);
            }
        }
    }
}
