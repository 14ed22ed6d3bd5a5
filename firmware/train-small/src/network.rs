//! The configured `nn.Sequential` in plain f32 loops, with its backward pass: the layers of a
//! small CNN (Conv2d with bias and `groups` 1, ReLU, MaxPool2d, Flatten, Dropout left out,
//! Linear), trainable variables named as PyTorch names them (`<key_prefix>.<index>.weight|bias`).
//! One image at a time: the M0+ model is about 0.1 M multiply-accumulates an image, so a
//! tensor library would buy nothing but its build.

use std::path::Path;

use anyhow::Context;
use qcnn_config::architecture::{Architecture, Shape};
use qcnn_config::model::{Conv2dSpec, LayerSpec, PoolSpec};
use qcnn_dataset::rng::SplitMix64;
use safetensors::{Dtype, tensor::TensorView};

/// A weight or bias with its gradient and Adam's two moment estimates.
pub struct Parameter {
    key: String,
    shape: Vec<usize>,
    pub value: Vec<f32>,
    pub gradient: Vec<f32>,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
}

impl Parameter {
    /// PyTorch's default initialisation: uniform in ±1/√fan_in.
    fn uniform(key: String, shape: Vec<usize>, fan_in: usize, rng: &mut SplitMix64) -> Self {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let len = shape.iter().product();
        // 24 random bits: every f32 in [0, 1) on that grid.
        let value = (0..len)
            .map(|_| ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound)
            .collect();
        Parameter {
            key,
            shape,
            value,
            gradient: vec![0.0; len],
            first_moment: vec![0.0; len],
            second_moment: vec![0.0; len],
        }
    }
}

/// Adam (AdamW with no weight decay): PyTorch's and candle's defaults otherwise.
pub struct Adam {
    pub learning_rate: f32,
    steps: i32,
}

impl Adam {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;
    const EPSILON: f32 = 1e-8;

    pub fn new(learning_rate: f32) -> Adam {
        Adam {
            learning_rate,
            steps: 0,
        }
    }

    /// One step along the gradients summed over `batch` images (the mean's), which it clears.
    pub fn step(&mut self, network: &mut Network, batch: usize) {
        self.steps += 1;
        let (c1, c2) = (
            1.0 - Self::BETA1.powi(self.steps),
            1.0 - Self::BETA2.powi(self.steps),
        );
        for p in network.parameters_mut() {
            for i in 0..p.value.len() {
                let g = p.gradient[i] / batch as f32;
                p.first_moment[i] = Self::BETA1 * p.first_moment[i] + (1.0 - Self::BETA1) * g;
                p.second_moment[i] = Self::BETA2 * p.second_moment[i] + (1.0 - Self::BETA2) * g * g;
                let (m, v) = (p.first_moment[i] / c1, p.second_moment[i] / c2);
                p.value[i] -= self.learning_rate * m / (v.sqrt() + Self::EPSILON);
                p.gradient[i] = 0.0;
            }
        }
    }
}

enum Layer {
    Conv2d {
        spec: Conv2dSpec,
        /// C×H×W of the input.
        input: (usize, usize, usize),
        weight: Parameter,
        bias: Parameter,
    },
    Linear {
        weight: Parameter,
        bias: Parameter,
    },
    Relu,
    MaxPool2d {
        spec: PoolSpec,
        input: (usize, usize, usize),
    },
    /// Flatten and (at training time, left out: it only slows a model this small) Dropout.
    Identity,
}

pub struct Network {
    layers: Vec<Layer>,
}

/// What one layer's backward pass needs of its forward pass.
enum Saved {
    Input(Vec<f32>),
    /// For each pooled output, the index of the input it took.
    Argmax(Vec<usize>),
    None,
}

impl Network {
    pub fn new(architecture: &Architecture, seed: u64) -> anyhow::Result<Network> {
        let mut rng = SplitMix64::new(seed);
        let mut layers = Vec::new();
        for step in &architecture.steps {
            let map = match step.input {
                Shape::Map { c, h, w } => Some((c, h, w)),
                Shape::Vector(_) => None,
            };
            let (weight_key, bias_key) = (
                architecture.weight_key(step.index),
                architecture.bias_key(step.index),
            );
            layers.push(match (step.layer, map) {
                (LayerSpec::Conv2d(spec), Some(input)) if spec.groups == 1 && spec.bias => {
                    let fan_in = spec.in_channels * spec.kernel * spec.kernel;
                    let shape = vec![
                        spec.out_channels,
                        spec.in_channels,
                        spec.kernel,
                        spec.kernel,
                    ];
                    Layer::Conv2d {
                        spec,
                        input,
                        weight: Parameter::uniform(weight_key, shape, fan_in, &mut rng),
                        bias: Parameter::uniform(
                            bias_key,
                            vec![spec.out_channels],
                            fan_in,
                            &mut rng,
                        ),
                    }
                }
                (LayerSpec::Linear(l), _) => Layer::Linear {
                    weight: Parameter::uniform(
                        weight_key,
                        vec![l.out_features, l.in_features],
                        l.in_features,
                        &mut rng,
                    ),
                    bias: Parameter::uniform(
                        bias_key,
                        vec![l.out_features],
                        l.in_features,
                        &mut rng,
                    ),
                },
                (LayerSpec::Relu, _) => Layer::Relu,
                (LayerSpec::MaxPool2d(spec), Some(input)) => Layer::MaxPool2d { spec, input },
                (LayerSpec::Flatten | LayerSpec::Dropout, _) => Layer::Identity,
                // The layers of the model it trains; the rest quantize but are not trained here.
                (layer, _) => anyhow::bail!("train-small does not train {layer:?}"),
            });
        }
        Ok(Network { layers })
    }

    fn parameters_mut(&mut self) -> impl Iterator<Item = &mut Parameter> {
        self.layers.iter_mut().flat_map(|layer| match layer {
            Layer::Conv2d { weight, bias, .. } | Layer::Linear { weight, bias } => {
                vec![weight, bias]
            }
            _ => vec![],
        })
    }

    /// Logits for one image (C×H×W, pixel/255).
    pub fn forward(&self, image: &[f32]) -> Vec<f32> {
        self.layers
            .iter()
            .fold(image.to_vec(), |x, layer| forward(layer, &x).0)
    }

    /// Runs one image forward and back: adds its cross-entropy's gradient to every
    /// parameter's and returns the loss.
    pub fn accumulate(&mut self, image: &[f32], label: usize) -> f32 {
        let mut saved = Vec::with_capacity(self.layers.len());
        let mut x = image.to_vec();
        for layer in &self.layers {
            let (y, s) = forward(layer, &x);
            saved.push(s);
            x = y;
        }
        // Softmax cross-entropy: d loss / d logit = softmax − one-hot.
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let loss = sum.ln() - (x[label] - max);
        let mut gradient: Vec<f32> = exp.iter().map(|e| e / sum).collect();
        gradient[label] -= 1.0;
        for (layer, saved) in self.layers.iter_mut().zip(saved).rev() {
            gradient = backward(layer, saved, &gradient);
        }
        loss
    }

    /// Writes a temporary file and renames it, so a failed run leaves no partial checkpoint.
    pub fn save(&mut self, path: &Path) -> anyhow::Result<()> {
        let parameters: Vec<&Parameter> = self.parameters_mut().map(|p| &*p).collect();
        let bytes: Vec<Vec<u8>> = parameters
            .iter()
            .map(|p| p.value.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let mut views = Vec::new();
        for (p, data) in parameters.iter().zip(&bytes) {
            views.push((
                p.key.clone(),
                TensorView::new(Dtype::F32, p.shape.clone(), data)?,
            ));
        }
        let temporary = path.with_extension("safetensors.tmp");
        safetensors::serialize_to_file(views, None, &temporary)
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
    }
}

fn forward(layer: &Layer, x: &[f32]) -> (Vec<f32>, Saved) {
    match layer {
        Layer::Conv2d {
            spec,
            input,
            weight,
            bias,
        } => (
            conv2d(spec, *input, x, &weight.value, &bias.value),
            Saved::Input(x.to_vec()),
        ),
        Layer::Linear { weight, bias } => {
            let y = bias
                .value
                .iter()
                .zip(weight.value.chunks_exact(x.len()))
                .map(|(b, row)| b + row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>())
                .collect();
            (y, Saved::Input(x.to_vec()))
        }
        Layer::Relu => (
            x.iter().map(|v| v.max(0.0)).collect(),
            Saved::Input(x.to_vec()),
        ),
        Layer::MaxPool2d { spec, input } => {
            let argmax = max_pool(spec, *input, x);
            (
                argmax.iter().map(|&i| x[i]).collect(),
                Saved::Argmax(argmax),
            )
        }
        Layer::Identity => (x.to_vec(), Saved::None),
    }
}

/// The gradient with respect to the layer's input, from that with respect to its output; adds
/// to the layer's parameter gradients.
fn backward(layer: &mut Layer, saved: Saved, dy: &[f32]) -> Vec<f32> {
    match (layer, saved) {
        (
            Layer::Conv2d {
                spec,
                input: (c, h, w),
                weight,
                bias,
            },
            Saved::Input(x),
        ) => {
            let (k, s, p) = (spec.kernel, spec.stride, spec.padding);
            let (oh, ow) = (out_len(*h, spec), out_len(*w, spec));
            let mut dx = vec![0.0; x.len()];
            for o in 0..spec.out_channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let g = dy[(o * oh + oy) * ow + ox];
                        bias.gradient[o] += g;
                        for_taps((*c, *h, *w), (k, s, p), (oy, ox), |ci, ky, kx, at| {
                            let wi = ((o * *c + ci) * k + ky) * k + kx;
                            weight.gradient[wi] += g * x[at];
                            dx[at] += g * weight.value[wi];
                        });
                    }
                }
            }
            dx
        }
        (Layer::Linear { weight, bias }, Saved::Input(x)) => {
            let mut dx = vec![0.0; x.len()];
            for (o, g) in dy.iter().enumerate() {
                bias.gradient[o] += g;
                let row = o * x.len();
                for (i, v) in x.iter().enumerate() {
                    weight.gradient[row + i] += g * v;
                    dx[i] += g * weight.value[row + i];
                }
            }
            dx
        }
        (Layer::Relu, Saved::Input(x)) => x
            .iter()
            .zip(dy)
            .map(|(v, g)| if *v > 0.0 { *g } else { 0.0 })
            .collect(),
        (
            Layer::MaxPool2d {
                input: (c, h, w), ..
            },
            Saved::Argmax(argmax),
        ) => {
            let mut dx = vec![0.0; *c * *h * *w];
            for (i, g) in argmax.iter().zip(dy) {
                dx[*i] += g;
            }
            dx
        }
        _ => dy.to_vec(),
    }
}

/// PyTorch's output length along one axis (floor mode).
fn out_len(n: usize, spec: &Conv2dSpec) -> usize {
    (n + 2 * spec.padding - spec.kernel) / spec.stride + 1
}

/// Calls `tap(channel, ky, kx, input index)` for each in-bounds tap of output `(oy, ox)`.
fn for_taps(
    (c, h, w): (usize, usize, usize),
    (k, s, p): (usize, usize, usize),
    (oy, ox): (usize, usize),
    mut tap: impl FnMut(usize, usize, usize, usize),
) {
    for ci in 0..c {
        for ky in 0..k {
            let Some(iy) = (oy * s + ky).checked_sub(p).filter(|&y| y < h) else {
                continue;
            };
            for kx in 0..k {
                let Some(ix) = (ox * s + kx).checked_sub(p).filter(|&x| x < w) else {
                    continue;
                };
                tap(ci, ky, kx, (ci * h + iy) * w + ix);
            }
        }
    }
}

fn conv2d(
    spec: &Conv2dSpec,
    input: (usize, usize, usize),
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    let (c, h, w) = input;
    let (k, s, p) = (spec.kernel, spec.stride, spec.padding);
    let (oh, ow) = (out_len(h, spec), out_len(w, spec));
    let mut y = Vec::with_capacity(spec.out_channels * oh * ow);
    for (o, b) in bias.iter().enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = *b;
                for_taps((c, h, w), (k, s, p), (oy, ox), |ci, ky, kx, at| {
                    sum += weight[((o * c + ci) * k + ky) * k + kx] * x[at];
                });
                y.push(sum);
            }
        }
    }
    y
}

/// For each pooled output, in order, the index of its window's largest input (the first on
/// ties, as PyTorch).
fn max_pool(spec: &PoolSpec, (c, h, w): (usize, usize, usize), x: &[f32]) -> Vec<usize> {
    let (k, s) = (spec.kernel, spec.stride());
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    let mut argmax = Vec::with_capacity(c * oh * ow);
    for ci in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = (ci * h + oy * s) * w + ox * s;
                for ky in 0..k {
                    for kx in 0..k {
                        let at = (ci * h + oy * s + ky) * w + ox * s + kx;
                        if x[at] > x[best] {
                            best = at;
                        }
                    }
                }
                argmax.push(best);
            }
        }
    }
    argmax
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcnn_config::model::ModelConfig;

    /// conv(1→2, 3×3, pad 1) on 4×4, ReLU, 2×2 max pool, flatten, linear(8→3).
    fn tiny() -> Network {
        let yaml = "name: tiny\ninput: { channels: 1, height: 4, width: 4 }\nclasses: 3\n\
                    key_prefix: layers\nlayers:\n\
                    - conv2d: { in: 1, out: 2, kernel: 3, stride: 1, padding: 1 }\n\
                    - relu\n- maxpool2d: { kernel: 2, stride: 2 }\n- flatten\n\
                    - linear: { in: 8, out: 3 }\n";
        let model: ModelConfig = serde_saphyr::from_str(yaml).unwrap();
        Network::new(&Architecture::new(&model).unwrap(), 3).unwrap()
    }

    /// Distinct values, so that no pooling window holds a tie (a kink of the loss).
    fn image() -> Vec<f32> {
        (0..16)
            .map(|i| ((i * 7 % 11) as f32) / 10.0 + i as f32 * 0.003)
            .collect()
    }

    fn loss(network: &Network, image: &[f32], label: usize) -> f64 {
        let logits = network.forward(image);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = logits.iter().map(|v| f64::from(v - max).exp()).sum();
        sum.ln() - f64::from(logits[label] - max)
    }

    /// Every parameter's gradient against a central finite difference of the loss.
    #[test]
    fn gradients_match_finite_differences() {
        let mut network = tiny();
        let (image, label) = (image(), 1);
        network.accumulate(&image, label);
        let analytic: Vec<Vec<f32>> = network
            .parameters_mut()
            .map(|p| p.gradient.clone())
            .collect();
        let h = 1e-3;
        for (n, gradients) in analytic.iter().enumerate() {
            for (i, &expected) in gradients.iter().enumerate() {
                let nudge = |network: &mut Network, by: f32| {
                    network.parameters_mut().nth(n).unwrap().value[i] += by;
                };
                nudge(&mut network, h);
                let up = loss(&network, &image, label);
                nudge(&mut network, -2.0 * h);
                let down = loss(&network, &image, label);
                nudge(&mut network, h);
                let numeric = (up - down) / (2.0 * f64::from(h));
                assert!(
                    (numeric - f64::from(expected)).abs() < 2e-3,
                    "parameter {n}[{i}]: backward {expected}, finite difference {numeric}"
                );
            }
        }
    }

    #[test]
    fn adam_steps_fit_a_small_batch() {
        let mut network = tiny();
        let images: Vec<Vec<f32>> = (0..3)
            .map(|k| image().iter().map(|v| (v + k as f32 * 0.3) % 1.0).collect())
            .collect();
        let total = |network: &Network| -> f64 {
            images
                .iter()
                .enumerate()
                .map(|(label, x)| loss(network, x, label))
                .sum()
        };
        let before = total(&network);
        let mut adam = Adam::new(1e-2);
        for _ in 0..100 {
            for (label, x) in images.iter().enumerate() {
                network.accumulate(x, label);
            }
            adam.step(&mut network, images.len());
        }
        let after = total(&network);
        assert!(after < before / 4.0, "loss {before} -> {after}");
    }
}
