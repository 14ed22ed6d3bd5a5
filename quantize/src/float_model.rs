//! The f32 reference forward pass of the configured layer sequence, as PyTorch computes it
//! (input = pixel/255, C×H×W), used to calibrate and to measure the float accuracy.
//!
//! Images run in small batches so that each Linear weight row is read once per batch
//! rather than once per image: the 3 MB of the seed model's first Linear does not fit in cache.

use rayon::prelude::*;

use crate::architecture::{Architecture, Shape, Step};
use crate::checkpoint::Checkpoint;
use crate::config::{Conv2dSpec, LayerSpec, PoolSpec};

/// Images per batch.
pub const BATCH: usize = 16;

pub struct FloatModel {
    architecture: Architecture,
    /// Per step: (weights, bias) for Conv2d (packed by `pack_conv`) and Linear, empty otherwise.
    parameters: Vec<(Vec<f32>, Vec<f32>)>,
}

impl FloatModel {
    /// `checkpoint` must have passed `Checkpoint::check` against `architecture`.
    pub fn new(architecture: &Architecture, checkpoint: &Checkpoint) -> FloatModel {
        let parameters = architecture
            .steps
            .iter()
            .map(|step| match step.layer {
                LayerSpec::Conv2d(spec) => pack_conv(
                    &spec,
                    &checkpoint.get(&architecture.weight_key(step.index)).data,
                    &checkpoint.get(&architecture.bias_key(step.index)).data,
                ),
                LayerSpec::Linear(_) => (
                    checkpoint
                        .get(&architecture.weight_key(step.index))
                        .data
                        .clone(),
                    checkpoint
                        .get(&architecture.bias_key(step.index))
                        .data
                        .clone(),
                ),
                _ => (Vec::new(), Vec::new()),
            })
            .collect();
        FloatModel {
            architecture: architecture.clone(),
            parameters,
        }
    }

    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// Logits of one image.
    pub fn forward(&self, image: &[u8]) -> Vec<f32> {
        self.forward_batch(&[image], &mut |_, _| {})
    }

    /// Logits of every image, `classes` per image, computed in parallel batches.
    pub fn forward_all(&self, images: &[&[u8]]) -> Vec<Vec<f32>> {
        let classes = self.architecture.output().len();
        images
            .par_chunks(BATCH)
            .flat_map_iter(|batch| {
                let logits = self.forward_batch(batch, &mut |_, _| {});
                logits
                    .chunks(classes)
                    .map(<[f32]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Runs `images` (u8, C×H×W each) and returns their logits back to back. `observe` sees
    /// every step's output: the step index and the batch's activations, image after image.
    pub fn forward_batch(
        &self,
        images: &[&[u8]],
        observe: &mut dyn FnMut(usize, &[f32]),
    ) -> Vec<f32> {
        let mut x: Vec<f32> = images
            .iter()
            .flat_map(|img| img.iter().map(|&p| f32::from(p) / 255.0))
            .collect();
        for (step, (weights, bias)) in self.architecture.steps.iter().zip(&self.parameters) {
            x = self.run_step(step, weights, bias, x, images.len());
            observe(step.index, &x);
        }
        x
    }

    fn run_step(
        &self,
        step: &Step,
        weights: &[f32],
        bias: &[f32],
        mut x: Vec<f32>,
        batch: usize,
    ) -> Vec<f32> {
        let (in_len, out_len) = (step.input.len(), step.output.len());
        match step.layer {
            LayerSpec::Conv2d(spec) => {
                let mut out = vec![0.0; batch * out_len];
                let mut padded = Vec::new();
                for (input, output) in x.chunks(in_len).zip(out.chunks_mut(out_len)) {
                    conv2d(
                        &spec,
                        step.input,
                        step.output,
                        weights,
                        bias,
                        input,
                        output,
                        &mut padded,
                    );
                }
                out
            }
            LayerSpec::Relu => {
                x.iter_mut().for_each(|v| *v = v.max(0.0));
                x
            }
            LayerSpec::MaxPool2d(spec) => {
                let mut out = vec![0.0; batch * out_len];
                for (input, output) in x.chunks(in_len).zip(out.chunks_mut(out_len)) {
                    max_pool(&spec, step.input, step.output, input, output);
                }
                out
            }
            // C,H,W is already PyTorch's flatten order; Dropout is the identity at inference.
            LayerSpec::Dropout | LayerSpec::Flatten => x,
            LayerSpec::Linear(spec) => {
                let mut out = vec![0.0; batch * out_len];
                for (o, (row, &b)) in weights.chunks(spec.in_features).zip(bias).enumerate() {
                    for (input, output) in x.chunks(in_len).zip(out.chunks_mut(out_len)) {
                        output[o] = b + dot(row, input);
                    }
                }
                out
            }
        }
    }
}

fn map_dims(shape: Shape) -> (usize, usize, usize) {
    match shape {
        Shape::Map { c, h, w } => (c, h, w),
        Shape::Vector(n) => (n, 1, 1),
    }
}

/// Eight independent partial sums, so the loop vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Output channels computed together, in registers.
const LANES: usize = 8;

/// Rearranges OIHW weights to `[output chunk][ky][kx][input channel][LANES]`, and the bias to
/// whole chunks, zero-padding the output channels to a multiple of `LANES`.
fn pack_conv(spec: &Conv2dSpec, weights: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (o, c, k) = (spec.out_channels, spec.in_channels, spec.kernel);
    let chunks = o.div_ceil(LANES);
    let mut packed = vec![0.0; chunks * k * k * c * LANES];
    for oc in 0..o {
        for i in 0..c {
            for tap in 0..k * k {
                let (chunk, lane) = (oc / LANES, oc % LANES);
                packed[((chunk * k * k + tap) * c + i) * LANES + lane] =
                    weights[(oc * c + i) * k * k + tap];
            }
        }
    }
    let mut padded_bias = bias.to_vec();
    padded_bias.resize(chunks * LANES, 0.0);
    (packed, padded_bias)
}

/// Direct convolution over a zero-padded H×W×C copy of the input: each output pixel
/// accumulates `LANES` output channels in registers over every tap and input channel.
#[allow(clippy::too_many_arguments)]
fn conv2d(
    spec: &Conv2dSpec,
    input_shape: Shape,
    output_shape: Shape,
    packed: &[f32],
    bias: &[f32],
    input: &[f32],
    output: &mut [f32],
    padded: &mut Vec<f32>,
) {
    let (c, h, w) = map_dims(input_shape);
    let (o, oh, ow) = map_dims(output_shape);
    let (k, s, p) = (spec.kernel, spec.stride, spec.padding);
    let pw = w + 2 * p;
    padded.clear();
    padded.resize((h + 2 * p) * pw * c, 0.0);
    for (i, plane) in input.chunks(h * w).enumerate() {
        for (y, row) in plane.chunks(w).enumerate() {
            for (x, &v) in row.iter().enumerate() {
                padded[((y + p) * pw + x + p) * c + i] = v;
            }
        }
    }
    let chunk_len = k * k * c * LANES;
    for (chunk, (weights, bias)) in packed.chunks(chunk_len).zip(bias.chunks(LANES)).enumerate() {
        let lanes = LANES.min(o - chunk * LANES);
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = [0.0f32; LANES];
                acc.copy_from_slice(bias);
                for ky in 0..k {
                    let row = (oy * s + ky) * pw + ox * s;
                    let pixels = &padded[row * c..(row + k) * c];
                    let taps = &weights[ky * k * c * LANES..(ky + 1) * k * c * LANES];
                    for (&v, tap) in pixels.iter().zip(taps.chunks_exact(LANES)) {
                        for l in 0..LANES {
                            acc[l] += v * tap[l];
                        }
                    }
                }
                for (l, &a) in acc[..lanes].iter().enumerate() {
                    output[((chunk * LANES + l) * oh + oy) * ow + ox] = a;
                }
            }
        }
    }
}

fn max_pool(
    spec: &PoolSpec,
    input_shape: Shape,
    output_shape: Shape,
    input: &[f32],
    output: &mut [f32],
) {
    let (_, h, w) = map_dims(input_shape);
    let (_, oh, ow) = map_dims(output_shape);
    let (k, s) = (spec.kernel, spec.stride());
    for (plane, out_plane) in input.chunks(h * w).zip(output.chunks_mut(oh * ow)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..k {
                    for kx in 0..k {
                        m = m.max(plane[(oy * s + ky) * w + ox * s + kx]);
                    }
                }
                out_plane[oy * ow + ox] = m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_handles_tails() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![2.0f32; 19];
        assert_eq!(dot(&a, &b), 2.0 * (0..19).sum::<i32>() as f32);
    }

    /// A 1×4×4 input through a 3×3 kernel, stride 2, padding 1, checked by hand.
    #[test]
    fn strided_padded_conv_by_hand() {
        let spec = Conv2dSpec {
            in_channels: 1,
            out_channels: 1,
            kernel: 3,
            stride: 2,
            padding: 1,
        };
        let input: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let weights = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]; // centre, right, below
        let (packed, bias) = pack_conv(&spec, &weights, &[0.5]);
        let mut out = [0.0; 4];
        conv2d(
            &spec,
            Shape::Map { c: 1, h: 4, w: 4 },
            Shape::Map { c: 1, h: 2, w: 2 },
            &packed,
            &bias,
            &input,
            &mut out,
            &mut Vec::new(),
        );
        // Output (0,0) centres on input (0,0)=1: 1 + 2 + 5; (0,1) on (0,2)=3: 3 + 4 + 7;
        // (1,0) on (2,0)=9: 9 + 10 + 13; (1,1) on (2,2)=11: 11 + 12 + 15.
        assert_eq!(out, [8.5, 14.5, 32.5, 38.5]);
    }

    /// The textbook loop nest over OIHW weights.
    fn naive_conv(
        spec: &Conv2dSpec,
        (c, h, w): (usize, usize, usize),
        weights: &[f32],
        bias: &[f32],
        input: &[f32],
    ) -> Vec<f32> {
        let (k, s, p) = (spec.kernel, spec.stride, spec.padding);
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let mut out = vec![0.0; spec.out_channels * oh * ow];
        for o in 0..spec.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[o];
                    for i in 0..c {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (y, x) = (
                                    (oy * s + ky) as isize - p as isize,
                                    (ox * s + kx) as isize - p as isize,
                                );
                                if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                                    acc += weights[((o * c + i) * k + ky) * k + kx]
                                        * input[(i * h + y as usize) * w + x as usize];
                                }
                            }
                        }
                    }
                    out[(o * oh + oy) * ow + ox] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn packed_conv_matches_the_naive_loop_over_shapes() {
        let mut seed = 1u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        for (c, o, k, s, p, h, w) in [
            (1, 8, 3, 1, 1, 6, 5),
            (3, 5, 5, 2, 2, 9, 7),
            (2, 17, 1, 1, 0, 4, 4),
            (4, 3, 3, 2, 0, 7, 8),
        ] {
            let spec = Conv2dSpec {
                in_channels: c,
                out_channels: o,
                kernel: k,
                stride: s,
                padding: p,
            };
            let weights: Vec<f32> = (0..o * c * k * k).map(|_| next()).collect();
            let bias: Vec<f32> = (0..o).map(|_| next()).collect();
            let input: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
            let expected = naive_conv(&spec, (c, h, w), &weights, &bias, &input);
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            let (packed, padded_bias) = pack_conv(&spec, &weights, &bias);
            let mut out = vec![0.0; expected.len()];
            conv2d(
                &spec,
                Shape::Map { c, h, w },
                Shape::Map { c: o, h: oh, w: ow },
                &packed,
                &padded_bias,
                &input,
                &mut out,
                &mut Vec::new(),
            );
            for (a, b) in out.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-5, "{c} {o} {k} {s} {p}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn max_pool_by_hand() {
        let input: Vec<f32> = [1, 5, 2, 0, -1, 3, 7, 4, 6, 0, 0, 9]
            .iter()
            .map(|&v| v as f32)
            .collect();
        let mut out = [0.0; 2];
        let spec = PoolSpec {
            kernel: 2,
            stride: None,
        };
        max_pool(
            &spec,
            Shape::Map { c: 1, h: 3, w: 4 },
            Shape::Map { c: 1, h: 1, w: 2 },
            &input,
            &mut out,
        );
        assert_eq!(out, [5.0, 7.0]);
    }
}
