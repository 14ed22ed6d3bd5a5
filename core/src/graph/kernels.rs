//! The graph's portable int8 kernels: the bit-exact definitions every faster path must match.
//! They run on validated nodes only, and use checked slicing throughout, so inconsistent
//! parameters give wrong numbers, never a panic.

use crate::ops::dot::{dot, dot_constant};
use crate::quant::multiply_by_quantized_multiplier;
use crate::shape::MapShape;

pub use super::channel_data::ChannelData;
use super::channel_data::clamp;
use super::conv_params::ConvParams;
use super::format::Window;

/// The output length of a window along one axis: `(n + pads − kernel) / stride + 1`.
pub fn window_len(
    n: usize,
    kernel: u8,
    stride: u8,
    pad_before: u8,
    pad_after: u8,
) -> Option<usize> {
    crate::shape::window_len(
        n,
        usize::from(kernel),
        usize::from(stride),
        usize::from(pad_before),
        usize::from(pad_after),
    )
}

/// The valid kernel taps `lo..hi` of an output position whose window starts at
/// `start − pad` in an axis of length `n`.
pub(crate) fn taps(start: usize, pad: usize, kernel: usize, n: usize) -> (usize, usize, usize) {
    let lo = pad.saturating_sub(start).min(kernel);
    let hi = (n + pad).saturating_sub(start).min(kernel).max(lo);
    // First input index read: start + lo − pad.
    (lo, hi, (start + lo).saturating_sub(pad))
}

/// Conv with any kernel h×w, strides, asymmetric pads and groups; OIHW weights with
/// I = in/groups. Padding holds the input zero point (a real 0), which the bias, holding
/// `−z_in·Σw`, cancels.
///
/// Computed as `bias + z_in·Σw + Σ_valid w·(x − z_in)`, which is the definition's
/// `bias + Σ_valid w·x + Σ_padding w·z_in` rearranged (exact: no dot product can overflow an
/// i32 in a validated model), a row of outputs at a time so that the inner loop runs along
/// contiguous input.
pub fn conv(conv: &ConvParams<'_>, input: &[i8], output: &mut [i8]) {
    conv_body(conv, input, output, None);
}

/// [`conv`] followed by the residual Add of a fused node: `output` holds the residual and
/// receives `residual.add(conv value, residual value)` element by element.
pub fn conv_add(conv: &ConvParams<'_>, input: &[i8], output: &mut [i8], residual: &AddOp) {
    conv_body(conv, input, output, Some(residual));
}

/// An Add ready to run: its parameters and the zero points of its first input, its second
/// input and its output. The Add node's, and the residual Add fused into a conv (whose first
/// input is the conv's int8 output).
#[derive(Clone, Copy, Debug)]
pub struct AddOp {
    pub params: super::format::Add,
    pub zero_points: [i8; 3],
}

impl AddOp {
    /// The sum of the first input's int8 value `q` and the second's `r`, exactly as [`add`].
    #[inline]
    pub fn add(&self, q: i8, r: i8) -> i8 {
        add_element(q, r, self.zero_points, &self.params)
    }
}

/// [`conv`]'s body (with a fused residual Add: [`conv_add`]), inlined into every caller: the
/// host's prepared model compiles it a second time inside an AVX2 function
/// (`crate::prepared_graph`), so that it vectorizes for AVX2.
#[inline(always)]
pub(crate) fn conv_body(
    conv: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    residual: Option<&AddOp>,
) {
    const BLOCK: usize = 64;
    let ConvParams {
        in_shape,
        out_shape,
        input_zero_point,
        weights,
        ref channels,
        ..
    } = *conv;
    let [kh, kw] = conv.kernel();
    let [sh, sw] = conv.stride();
    let [pt, pl, _, _] = conv.pads();
    let groups = usize::from(conv.groups.max(1));
    let in_per_group = in_shape.c / groups;
    let out_per_group = (out_shape.c / groups).max(1);
    let per_output = conv.per_output();
    let (in_plane, out_plane) = (in_shape.plane(), out_shape.plane());
    let z = i32::from(input_zero_point);
    let mut acc = [0_i32; BLOCK];
    for (o, (w_oc, out_oc)) in weights
        .chunks_exact(per_output.max(1))
        .zip(output.chunks_exact_mut(out_plane.max(1)))
        .enumerate()
    {
        let (bias, requant) = channels.channel(o);
        let start = bias.wrapping_add(dot_constant(w_oc, input_zero_point));
        let first_in = (o / out_per_group) * in_per_group;
        let group_input = input.get(first_in * in_plane..).unwrap_or_default();
        for (oy, out_row) in out_oc.chunks_exact_mut(out_shape.w.max(1)).enumerate() {
            let (ky_lo, ky_hi, iy0) = taps(oy * sh, pt, kh, in_shape.h);
            for (block, out_block) in out_row.chunks_mut(BLOCK).enumerate() {
                let ox0 = block * BLOCK;
                let acc = acc.get_mut(..out_block.len()).unwrap_or_default();
                acc.fill(start);
                for (icg, w_ic) in w_oc.chunks_exact((kh * kw).max(1)).enumerate() {
                    let plane = group_input
                        .get(icg * in_plane..(icg + 1) * in_plane)
                        .unwrap_or_default();
                    for ky in ky_lo..ky_hi {
                        let iy = iy0 + (ky - ky_lo);
                        let row = plane
                            .get(iy * in_shape.w..(iy + 1) * in_shape.w)
                            .unwrap_or_default();
                        let w_row = w_ic.get(ky * kw..(ky + 1) * kw).unwrap_or_default();
                        for (kx, &w) in w_row.iter().enumerate() {
                            if w == 0 {
                                continue;
                            }
                            let w = i32::from(w);
                            // Outputs whose tap lands inside the row: ix = ox·sw + kx − pl.
                            let lo = pl.saturating_sub(kx).div_ceil(sw.max(1));
                            let hi = (in_shape.w + pl)
                                .saturating_sub(kx)
                                .div_ceil(sw.max(1))
                                .min(out_shape.w);
                            let (lo, hi) = (lo.max(ox0), hi.min(ox0 + acc.len()));
                            if lo >= hi {
                                continue;
                            }
                            let first = lo * sw + kx - pl;
                            let xs = row
                                .get(first..)
                                .unwrap_or_default()
                                .iter()
                                .step_by(sw.max(1));
                            for (a, &x) in acc
                                .get_mut(lo - ox0..hi - ox0)
                                .unwrap_or_default()
                                .iter_mut()
                                .zip(xs)
                            {
                                *a = a.wrapping_add(w * (i32::from(x) - z));
                            }
                        }
                    }
                }
                for (out, &a) in out_block.iter_mut().zip(acc.iter()) {
                    let q = channels.finish(&requant, a);
                    *out = residual.map_or(q, |r| r.add(q, *out));
                }
            }
        }
    }
}

/// A pooling node: its input's and output's shapes, its window, and for an average
/// `Some((count_include_pad, zero point))` (`None`: the max).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOp {
    pub in_shape: MapShape,
    pub out_shape: MapShape,
    pub window: Window,
    pub average: Option<(bool, i8)>,
}

impl PoolOp {
    /// The pooling node `Prepared::Pool` holds field by field (a nested struct there costs
    /// the M4's loader 108 B of flash).
    #[inline(always)]
    pub fn new(
        in_shape: MapShape,
        out_shape: MapShape,
        window: Window,
        average: Option<(bool, i8)>,
    ) -> PoolOp {
        PoolOp {
            in_shape,
            out_shape,
            window,
            average,
        }
    }
}

/// Max or average pooling over a padded window; the output has the input's quantization.
/// Padding never wins a max; for the average it counts as the zero point (a real 0) when
/// `count_include_pad`, else the mean is over the valid taps only. The averages' runs of
/// values are summed by `sum` ([`sum_values`], one at a time; the Cortex-M4's four bytes a
/// word). A window as wide as the map sums its rows as one run. Inlined into every caller,
/// so that the host's prepared model compiles it again with AVX2, like `conv_body`.
#[inline(always)]
pub fn pool(input: &[i8], output: &mut [i8], op: &PoolOp, sum: impl Fn(&[i8]) -> i32) {
    let PoolOp {
        in_shape,
        out_shape,
        window,
        average,
    } = *op;
    let [kh, kw] = window.kernel.map(usize::from);
    let [sh, sw] = window.stride.map(usize::from);
    let [pt, pl, _, _] = window.pads.map(usize::from);
    let w = in_shape.w;
    for (plane, out_plane) in input
        .chunks_exact(in_shape.plane().max(1))
        .zip(output.chunks_exact_mut(out_shape.plane().max(1)))
    {
        for (oy, out_row) in out_plane.chunks_exact_mut(out_shape.w.max(1)).enumerate() {
            let (ky_lo, ky_hi, iy0) = taps(oy * sh, pt, kh, in_shape.h);
            let height = ky_hi - ky_lo;
            for (ox, out) in out_row.iter_mut().enumerate() {
                let (kx_lo, kx_hi, ix0) = taps(ox * sw, pl, kw, w);
                let width = kx_hi - kx_lo;
                let rows = (iy0..iy0 + height)
                    .filter_map(|iy| plane.get(iy * w + ix0..iy * w + ix0 + width));
                *out = match average {
                    None => rows.flatten().copied().max().unwrap_or(i8::MIN),
                    Some((count_include_pad, zero_point)) => {
                        let valid = height * width;
                        let mut total = if width == w {
                            sum(plane.get(iy0 * w..(iy0 + height) * w).unwrap_or_default())
                        } else {
                            rows.map(&sum).sum()
                        };
                        let count = if count_include_pad {
                            total += (kh * kw - valid) as i32 * i32::from(zero_point);
                            kh * kw
                        } else {
                            valid
                        };
                        rounded_mean(total, count)
                    }
                };
            }
        }
    }
}

/// The sum of `values`, one at a time.
#[inline(always)]
pub fn sum_values(values: &[i8]) -> i32 {
    values.iter().map(|&q| i32::from(q)).sum()
}

/// The mean of each channel over H×W, same quantization.
#[inline(always)]
pub fn global_average(input: &[i8], in_shape: MapShape, output: &mut [i8]) {
    global_average_body(input, in_shape, output, sum_values);
}

/// [`global_average`]'s body, inlined into every caller (see [`conv_body`]), each plane
/// summed by `sum`.
#[inline(always)]
pub(crate) fn global_average_body(
    input: &[i8],
    in_shape: MapShape,
    output: &mut [i8],
    sum: impl Fn(&[i8]) -> i32,
) {
    let plane = in_shape.plane();
    for (values, out) in input.chunks_exact(plane.max(1)).zip(output.iter_mut()) {
        *out = rounded_mean(sum(values), plane);
    }
}

/// `sum / count` rounded half away from zero, as TFLite's reference average pool.
#[inline(always)]
pub(crate) fn rounded_mean(sum: i32, count: usize) -> i8 {
    let count = i32::try_from(count.max(1)).unwrap_or(i32::MAX);
    let mean = if sum > 0 {
        (sum + count / 2) / count
    } else {
        (sum - count / 2) / count
    };
    mean.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
}

/// TFLite's int8 Add (see [`super::format::Add`]).
pub fn add(a: &[i8], b: &[i8], output: &mut [i8], op: &AddOp) {
    add_body(a, b, output, op);
}

/// [`add`]'s body, inlined into every caller (see [`conv_body`]).
#[inline(always)]
pub(crate) fn add_body(a: &[i8], b: &[i8], output: &mut [i8], op: &AddOp) {
    for ((out, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *out = add_element(x, y, op.zero_points, &op.params);
    }
}

/// [`add`] written over one of its inputs (an in-place Add, which the planner may make):
/// `inout` holds the first input (`inout_is_first`) or the second, and receives the sum.
pub fn add_in_place(inout: &mut [i8], other: &[i8], inout_is_first: bool, op: &AddOp) {
    add_in_place_body(inout, other, inout_is_first, op);
}

/// [`add_in_place`]'s body, inlined into every caller (see [`conv_body`]).
#[inline(always)]
pub(crate) fn add_in_place_body(inout: &mut [i8], other: &[i8], inout_is_first: bool, op: &AddOp) {
    for (q, &o) in inout.iter_mut().zip(other) {
        let (x, y) = if inout_is_first { (*q, o) } else { (o, *q) };
        *q = add_element(x, y, op.zero_points, &op.params);
    }
}

#[inline(always)]
fn add_element(x: i8, y: i8, zero_points: [i8; 3], params: &super::format::Add) -> i8 {
    let left = 1_i32 << params.left_shift.min(20);
    let [ma, mb, mo] = params.multipliers;
    let [sa, sb, so] = params.shifts.map(i32::from);
    let [za, zb, zo] = zero_points.map(i32::from);
    let x = multiply_by_quantized_multiplier((i32::from(x) - za) * left, ma, sa);
    let y = multiply_by_quantized_multiplier((i32::from(y) - zb) * left, mb, sb);
    let sum = multiply_by_quantized_multiplier(x.saturating_add(y), mo, so).saturating_add(zo);
    let q = sum.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8;
    clamp(q, params.clamp)
}

/// Fully connected: `[out][in]` weights over the whole input tensor (C,H,W order, as
/// PyTorch's flatten).
pub fn gemm(input: &[i8], output: &mut [i8], weights: &[i8], channels: &ChannelData<'_>) {
    let in_features = input.len().max(1);
    for (o, (row, out)) in weights
        .chunks_exact(in_features)
        .zip(output.iter_mut())
        .enumerate()
    {
        let (bias, requant) = channels.channel(o);
        *out = channels.finish(&requant, bias.wrapping_add(dot(row, input)));
    }
}
