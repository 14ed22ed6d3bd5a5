//! AveragePool and GlobalAveragePool ([`crate::graph::kernels::pool`] and
//! [`crate::graph::kernels::global_average`]) with each run of values summed a word of four
//! bytes at a time (`dsp::sum_bytes`: two SXTAB16 a word on the Cortex-M4); a window as wide
//! as the map (DS-CNN's 14×14 average) is one run.

use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::{global_average_body, pool_body};
use super::dsp::sum_bytes;

/// The mean of each channel over H×W, same quantization.
pub fn global_average(input: &[i8], in_shape: MapShape, output: &mut [i8]) {
    global_average_body(input, in_shape, output, sum_bytes);
}

/// Average pooling over a padded window, `count_include_pad` as ONNX's.
pub fn average_pool(
    input: &[i8],
    in_shape: MapShape,
    output: &mut [i8],
    out_shape: MapShape,
    window: Window,
    average: (bool, i8),
) {
    pool_body(
        input,
        in_shape,
        output,
        out_shape,
        window,
        Some(average),
        sum_bytes,
    );
}
