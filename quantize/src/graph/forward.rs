//! The f32 reference of a [`FloatGraph`], as onnxruntime computes it: convolutions as im2col
//! + SGEMM per group, pools and Add elementwise. Images run in parallel, one at a time each.

use rayon::prelude::*;

use super::{FloatGraph, FloatOp, Window};
use crate::sgemm::{Layout, sgemm};

impl FloatGraph {
    pub fn classes(&self) -> usize {
        self.tensors[self.output].len()
    }

    /// Logits of one image (u8, C×H×W; the model sees [`super::InputNorm::apply`] of it), calling `observe` with
    /// every tensor the nodes write (tensor index, values).
    pub fn forward_observed(
        &self,
        image: &[u8],
        observe: &mut dyn FnMut(usize, &[f32]),
    ) -> Vec<f32> {
        let mut values: Vec<Vec<f32>> = vec![Vec::new(); self.tensors.len()];
        values[0] = image.iter().map(|&p| self.input_norm.apply(p)).collect();
        // The last node reading each tensor, so that dead tensors are freed as we go.
        let mut last_use = vec![0; self.tensors.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for &t in &node.inputs {
                last_use[t] = i;
            }
        }
        last_use[self.output] = usize::MAX;
        let mut columns = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let input = &values[node.inputs[0]];
            let in_shape = self.tensors[node.inputs[0]].shape;
            let out_shape = self.tensors[node.output].shape;
            let mut out = vec![0.0_f32; out_shape.iter().product()];
            match &node.op {
                FloatOp::Conv {
                    weight,
                    bias,
                    window,
                    groups,
                    ..
                } => conv(
                    input,
                    in_shape,
                    &mut out,
                    out_shape,
                    weight,
                    bias,
                    window,
                    *groups,
                    &mut columns,
                ),
                FloatOp::MaxPool(window) => {
                    pool(input, in_shape, &mut out, out_shape, window, None)
                }
                FloatOp::AveragePool {
                    window,
                    count_include_pad,
                } => pool(
                    input,
                    in_shape,
                    &mut out,
                    out_shape,
                    window,
                    Some(*count_include_pad),
                ),
                FloatOp::GlobalAveragePool => {
                    let plane = in_shape[1] * in_shape[2];
                    for (o, values) in out.iter_mut().zip(input.chunks(plane)) {
                        *o = values.iter().sum::<f32>() / plane as f32;
                    }
                }
                FloatOp::Add { .. } => {
                    let other = &values[node.inputs[1]];
                    for ((o, &a), &b) in out.iter_mut().zip(input).zip(other) {
                        *o = a + b;
                    }
                }
                FloatOp::Gemm { weight, bias, .. } => {
                    let n = out.len();
                    sgemm(
                        1,
                        input.len(),
                        n,
                        input,
                        weight,
                        Layout::Transposed,
                        &mut out,
                    );
                    for (o, &b) in out.iter_mut().zip(bias) {
                        *o += b;
                    }
                }
            }
            // The activation each op fuses, in one place (none leaves NaNs as they are).
            let clamp = node.op.clamp();
            if !clamp.is_none() {
                out.iter_mut().for_each(|v| *v = clamp.apply(*v));
            }
            observe(node.output, &out);
            values[node.output] = out;
            for &t in &node.inputs {
                if last_use[t] == i {
                    values[t] = Vec::new();
                }
            }
        }
        std::mem::take(&mut values[self.output])
    }

    pub fn forward(&self, image: &[u8]) -> Vec<f32> {
        self.forward_observed(image, &mut |_, _| {})
    }

    /// Logits of every image, in parallel.
    pub fn forward_all(&self, images: &[&[u8]]) -> Vec<Vec<f32>> {
        images.par_iter().map(|image| self.forward(image)).collect()
    }
}

/// Grouped convolution: per group, the OIHW weights (O/g × C/g·KH·KW) times the group's patch
/// matrix, then the bias.
#[allow(clippy::too_many_arguments)]
fn conv(
    input: &[f32],
    [c, h, w]: [usize; 3],
    output: &mut [f32],
    [o, oh, ow]: [usize; 3],
    weight: &[f32],
    bias: &[f32],
    window: &Window,
    groups: usize,
    columns: &mut Vec<f32>,
) {
    let (cg, og) = (c / groups, o / groups);
    let patch = cg * window.kernel[0] * window.kernel[1];
    for g in 0..groups {
        let group_input = &input[g * cg * h * w..(g + 1) * cg * h * w];
        im2col(group_input, [cg, h, w], [oh, ow], window, columns);
        sgemm(
            og,
            patch,
            oh * ow,
            &weight[g * og * patch..(g + 1) * og * patch],
            columns,
            Layout::RowMajor,
            &mut output[g * og * oh * ow..(g + 1) * og * oh * ow],
        );
    }
    for (plane, &b) in output.chunks_mut(oh * ow).zip(bias) {
        plane.iter_mut().for_each(|v| *v += b);
    }
}

/// Row `(i·KH + ky)·KW + kx` holds, for every output position, the input under that tap or 0
/// in the padding.
fn im2col(
    input: &[f32],
    [c, h, w]: [usize; 3],
    [oh, ow]: [usize; 2],
    window: &Window,
    columns: &mut Vec<f32>,
) {
    let [kh, kw] = window.kernel;
    let [sh, sw] = window.stride;
    let [pt, pl, _, _] = window.pads;
    columns.clear();
    columns.resize(c * kh * kw * oh * ow, 0.0);
    let mut rows = columns.chunks_exact_mut(oh * ow);
    for plane in input.chunks(h * w).take(c) {
        for ky in 0..kh {
            for kx in 0..kw {
                let Some(row) = rows.next() else { return };
                for oy in 0..oh {
                    let Some(y) = (oy * sh + ky).checked_sub(pt).filter(|&y| y < h) else {
                        continue;
                    };
                    for ox in 0..ow {
                        if let Some(x) = (ox * sw + kx).checked_sub(pl).filter(|&x| x < w) {
                            row[oy * ow + ox] = plane[y * w + x];
                        }
                    }
                }
            }
        }
    }
}

/// Max (`average` None) or average pooling; padding never wins a max, and counts as 0 in an
/// average with `count_include_pad`.
fn pool(
    input: &[f32],
    [_, h, w]: [usize; 3],
    output: &mut [f32],
    [_, oh, ow]: [usize; 3],
    window: &Window,
    average: Option<bool>,
) {
    let [kh, kw] = window.kernel;
    let [sh, sw] = window.stride;
    let [pt, pl, _, _] = window.pads;
    for (plane, out) in input.chunks(h * w).zip(output.chunks_mut(oh * ow)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut max, mut sum, mut count) = (f32::NEG_INFINITY, 0.0_f32, 0_usize);
                for ky in 0..kh {
                    let Some(y) = (oy * sh + ky).checked_sub(pt).filter(|&y| y < h) else {
                        continue;
                    };
                    for kx in 0..kw {
                        let Some(x) = (ox * sw + kx).checked_sub(pl).filter(|&x| x < w) else {
                            continue;
                        };
                        let v = plane[y * w + x];
                        max = max.max(v);
                        sum += v;
                        count += 1;
                    }
                }
                out[oy * ow + ox] = match average {
                    None => max,
                    Some(true) => sum / (kh * kw) as f32,
                    Some(false) => sum / count.max(1) as f32,
                };
            }
        }
    }
}
