//! AveragePool and GlobalAveragePool ([`crate::graph::kernels::pool`] and
//! [`crate::graph::kernels::global_average`]) with each run of values summed a word of four
//! bytes at a time (`dsp::sum_bytes`: two SXTAB16 a word on the Cortex-M4); a window as wide
//! as the map is one run, and one over the whole map unpadded (DS-CNN's 14×14 average) is the
//! global average.

use crate::shape::MapShape;

use super::super::format::Window;
use super::super::kernels::{PoolOp, global_average_body, pool};
use super::dsp::sum_bytes;

/// The mean of each channel over H×W, same quantization. Never inlined: the GlobalAveragePool
/// node and a whole-map [`average_pool`] share one copy.
#[inline(never)]
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
    // A window over the whole map, unpadded (DS-CNN's 14×14): the mean of each plane, with
    // none of the window bookkeeping per output (the same taps and count either way).
    let whole = usize::from(window.kernel[0]) == in_shape.h
        && usize::from(window.kernel[1]) == in_shape.w
        && window.pads == [0; 4];
    if whole && out_shape.plane() == 1 {
        global_average(input, in_shape, output);
        return;
    }
    let op = PoolOp {
        in_shape,
        out_shape,
        window,
        average: Some(average),
    };
    pool(input, output, &op, sum_bytes);
}
