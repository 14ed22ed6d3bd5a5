//! The f32 reference forward pass of the configured layer sequence, as PyTorch computes it
//! (input = pixel/255, C×H×W), used to calibrate and to measure the float accuracy.
//!
//! Convolutions run as im2col + SGEMM, one image at a time; Linear layers take a whole batch of
//! images in one SGEMM, so each weight is read once per batch rather than once per image (the
//! 3 MB of the seed model's first Linear does not fit in cache). Batches run in parallel.

use rayon::prelude::*;

use crate::checkpoint::Checkpoint;
use crate::sgemm::{Layout, sgemm};
use qcnn_config::architecture::{Architecture, Shape, Step};
use qcnn_config::model::{Conv2dSpec, LayerSpec, PoolSpec};

/// Images per batch: the rows of each Linear SGEMM. Fewer rows and streaming the weights
/// dominates (64 rows ran the seed model's first Linear a third slower than 128).
pub const BATCH: usize = 128;

pub struct FloatModel {
    architecture: Architecture,
    /// Per step: (weights, bias) for Conv2d (OIHW) and Linear (`[out][in]`), empty otherwise.
    parameters: Vec<(Vec<f32>, Vec<f32>)>,
}

impl FloatModel {
    /// `checkpoint` must have passed `Checkpoint::check` against `architecture`.
    pub fn new(architecture: &Architecture, checkpoint: &Checkpoint) -> FloatModel {
        let parameters = architecture
            .steps
            .iter()
            .map(|step| match step.layer {
                LayerSpec::Conv2d(_) | LayerSpec::Linear(_) => (
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
    /// every step's output: the step index and the activations of one image, or of the whole
    /// batch image after image.
    ///
    /// The steps before the first Linear run image by image, so that each image's feature maps
    /// stay in cache from one step to the next; the Linear layers and what follows them run on
    /// the whole batch at once.
    pub fn forward_batch(
        &self,
        images: &[&[u8]],
        observe: &mut dyn FnMut(usize, &[f32]),
    ) -> Vec<f32> {
        let steps = &self.architecture.steps;
        let first_linear = steps
            .iter()
            .position(|step| matches!(step.layer, LayerSpec::Linear(_)))
            .unwrap_or(steps.len());
        let (per_image, batched) = steps.split_at(first_linear);
        let parameters = self.parameters.split_at(first_linear);
        let mut columns = Vec::new();
        let mut x = Vec::new();
        for image in images {
            let mut y: Vec<f32> = image.iter().map(|&p| f32::from(p) / 255.0).collect();
            for (step, (weights, bias)) in per_image.iter().zip(parameters.0) {
                y = run_step(step, weights, bias, y, 1, &mut columns);
                observe(step.index, &y);
            }
            x.extend_from_slice(&y);
        }
        for (step, (weights, bias)) in batched.iter().zip(parameters.1) {
            x = run_step(step, weights, bias, x, images.len(), &mut columns);
            observe(step.index, &x);
        }
        x
    }
}

/// One step on `batch` images back to back. `columns` is im2col scratch, kept between calls.
fn run_step(
    step: &Step,
    weights: &[f32],
    bias: &[f32],
    mut x: Vec<f32>,
    batch: usize,
    columns: &mut Vec<f32>,
) -> Vec<f32> {
    let (in_len, out_len) = (step.input.len(), step.output.len());
    match step.layer {
        LayerSpec::Conv2d(spec) => {
            let mut out = vec![0.0; batch * out_len];
            for (input, output) in x.chunks(in_len).zip(out.chunks_mut(out_len)) {
                conv2d(
                    &spec,
                    step.input,
                    step.output,
                    weights,
                    bias,
                    input,
                    output,
                    columns,
                );
            }
            out
        }
        LayerSpec::Relu => {
            // A plain compare (not f32::max) vectorizes; inputs are finite (checked).
            x.iter_mut()
                .for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 });
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
            // The batch (rows) times the transposed weights.
            let mut out = vec![0.0; batch * out_len];
            sgemm(
                batch,
                spec.in_features,
                spec.out_features,
                &x,
                weights,
                Layout::Transposed,
                &mut out,
            );
            for output in out.chunks_mut(out_len) {
                output.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
            }
            out
        }
        // `sequential::prepare` folds BatchNorm2d into a chain and sends the rest to the graph.
        LayerSpec::BatchNorm2d(_)
        | LayerSpec::Relu6
        | LayerSpec::AvgPool2d(_)
        | LayerSpec::AdaptiveAvgPool2d(_) => {
            unreachable!("a FloatModel is built from a prepared chain only")
        }
    }
}

fn map_dims(shape: Shape) -> (usize, usize, usize) {
    match shape {
        Shape::Map { c, h, w } => (c, h, w),
        Shape::Vector(n) => (n, 1, 1),
    }
}

/// Convolution as one matrix product: OIHW weights (O × C·K·K) times the im2col patch matrix
/// (C·K·K × OH·OW) gives the O×OH×OW output directly; then the bias.
#[allow(clippy::too_many_arguments)]
fn conv2d(
    spec: &Conv2dSpec,
    input_shape: Shape,
    output_shape: Shape,
    weights: &[f32],
    bias: &[f32],
    input: &[f32],
    output: &mut [f32],
    columns: &mut Vec<f32>,
) {
    let (o, oh, ow) = map_dims(output_shape);
    im2col(spec, input_shape, (oh, ow), input, columns);
    let patch = columns.len() / (oh * ow).max(1);
    sgemm(
        o,
        patch,
        oh * ow,
        weights,
        columns,
        Layout::RowMajor,
        output,
    );
    for (plane, &b) in output.chunks_mut(oh * ow).zip(bias) {
        plane.iter_mut().for_each(|v| *v += b);
    }
}

/// The patch matrix: row `(i·K + ky)·K + kx` (OIHW's order within one output channel) holds,
/// for every output position, the input under that tap, or 0 in the padding. Every element is
/// written, so `columns` is reused between images without clearing.
fn im2col(
    spec: &Conv2dSpec,
    input_shape: Shape,
    (oh, ow): (usize, usize),
    input: &[f32],
    columns: &mut Vec<f32>,
) {
    let (c, h, w) = map_dims(input_shape);
    let (k, s, p) = (spec.kernel, spec.stride, spec.padding);
    columns.resize(c * k * k * oh * ow, 0.0);
    let mut rows = columns.chunks_exact_mut(oh * ow);
    for plane in input.chunks(h * w) {
        for ky in 0..k {
            for kx in 0..k {
                let row = rows.next().expect("C·K·K rows");
                // Output columns whose tap lands inside the input: x = ox·s + kx − p in 0..w.
                let first = p.saturating_sub(kx).div_ceil(s).min(ow);
                let end = (w + p)
                    .checked_sub(kx)
                    .map_or(0, |n| n.div_ceil(s))
                    .clamp(first, ow);
                for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                    let line = (oy * s + ky)
                        .checked_sub(p)
                        .filter(|&y| y < h)
                        .map(|y| &plane[y * w..(y + 1) * w]);
                    let Some(line) = line else {
                        out.fill(0.0);
                        continue;
                    };
                    let (left, rest) = out.split_at_mut(first);
                    let (inside, right) = rest.split_at_mut(end - first);
                    left.fill(0.0);
                    right.fill(0.0);
                    if inside.is_empty() {
                        continue;
                    }
                    let x0 = first * s + kx - p;
                    if s == 1 {
                        inside.copy_from_slice(&line[x0..x0 + inside.len()]);
                    } else {
                        for (v, &x) in inside.iter_mut().zip(line[x0..].iter().step_by(s)) {
                            *v = x;
                        }
                    }
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
    // Row by row, one window tap at a time across the whole output row: no per-element index
    // arithmetic, and a plain compare instead of f32::max (inputs are finite).
    for (plane, out_plane) in input.chunks(h * w).zip(output.chunks_mut(oh * ow)) {
        for (oy, out_row) in out_plane.chunks_exact_mut(ow).enumerate() {
            out_row.fill(f32::NEG_INFINITY);
            for ky in 0..k {
                let in_row = &plane[(oy * s + ky) * w..(oy * s + ky + 1) * w];
                for kx in 0..k {
                    for (m, &v) in out_row.iter_mut().zip(in_row[kx..].iter().step_by(s)) {
                        *m = if v > *m { v } else { *m };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::abs_diff_eq;

    /// A 1×4×4 input through a 3×3 kernel, stride 2, padding 1, checked by hand.
    #[test]
    fn strided_padded_conv_by_hand() {
        let spec = Conv2dSpec::dense(1, 1, 3, 2, 1);
        let input: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let weights = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]; // centre, right, below
        let mut out = [0.0; 4];
        conv2d(
            &spec,
            Shape::Map { c: 1, h: 4, w: 4 },
            Shape::Map { c: 1, h: 2, w: 2 },
            &weights,
            &[0.5],
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
    fn im2col_conv_matches_the_naive_loop_over_shapes() {
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
            // Padding wider than the kernel's reach: whole rows and columns of zeros.
            (2, 3, 3, 1, 3, 2, 3),
            (1, 2, 5, 3, 4, 5, 6),
        ] {
            let spec = Conv2dSpec::dense(c, o, k, s, p);
            let weights: Vec<f32> = (0..o * c * k * k).map(|_| next()).collect();
            let bias: Vec<f32> = (0..o).map(|_| next()).collect();
            let input: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
            let expected = naive_conv(&spec, (c, h, w), &weights, &bias, &input);
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            let mut out = vec![0.0; expected.len()];
            conv2d(
                &spec,
                Shape::Map { c, h, w },
                Shape::Map { c: o, h: oh, w: ow },
                &weights,
                &bias,
                &input,
                &mut out,
                &mut Vec::new(),
            );
            for (a, b) in out.iter().zip(&expected) {
                assert!(
                    abs_diff_eq!(a, b, epsilon = 1e-5),
                    "{c} {o} {k} {s} {p}: {a} vs {b}"
                );
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

    /// Overlapping (stride < kernel) and gapped (stride > kernel) windows against the
    /// per-output maximum over its window.
    #[test]
    fn max_pool_matches_the_naive_window_max() {
        for (k, s, h, w) in [(3, 1, 5, 6), (3, 2, 7, 7), (2, 3, 8, 7), (1, 1, 3, 2)] {
            let input: Vec<f32> = (0..2 * h * w)
                .map(|i| ((i * 37 + 11) % 23) as f32 - 11.0)
                .collect();
            let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
            let mut out = vec![0.0; 2 * oh * ow];
            let spec = PoolSpec {
                kernel: k,
                stride: Some(s),
            };
            max_pool(
                &spec,
                Shape::Map { c: 2, h, w },
                Shape::Map { c: 2, h: oh, w: ow },
                &input,
                &mut out,
            );
            for c in 0..2 {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let window = (0..k * k)
                            .map(|t| input[(c * h + oy * s + t / k) * w + ox * s + t % k]);
                        let expected = window.fold(f32::NEG_INFINITY, f32::max);
                        assert_eq!(
                            out[(c * oh + oy) * ow + ox],
                            expected,
                            "{k} {s} {c} {oy} {ox}"
                        );
                    }
                }
            }
        }
    }
}
