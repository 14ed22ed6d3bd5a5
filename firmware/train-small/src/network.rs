//! The configured `nn.Sequential` as candle operations over trainable variables named as
//! PyTorch names them (`<key_prefix>.<index>.weight|bias`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use candle_core::{Device, Tensor, Var};
use qcnn_config::architecture::Architecture;
use qcnn_config::model::LayerSpec;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Network {
    layers: Vec<LayerSpec>,
    /// Per layer: the weight and bias of a Conv2d or Linear.
    parameters: Vec<Option<Parameters>>,
}

struct Parameters {
    weight_key: String,
    weight: Var,
    bias_key: String,
    bias: Var,
}

impl Network {
    /// PyTorch's default initialisation: weights and biases uniform in ±1/√fan_in.
    pub fn new(architecture: &Architecture, seed: u64, device: &Device) -> anyhow::Result<Network> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut uniform = |shape: &[usize], fan_in: usize| -> anyhow::Result<Var> {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let values: Vec<f32> = (0..shape.iter().product())
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            Ok(Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?)
        };
        let mut parameters = Vec::new();
        for step in &architecture.steps {
            let shapes = match step.layer {
                LayerSpec::Conv2d(c) => Some((
                    vec![c.out_channels, c.in_channels, c.kernel, c.kernel],
                    c.out_channels,
                    c.in_channels * c.kernel * c.kernel,
                )),
                LayerSpec::Linear(l) => Some((
                    vec![l.out_features, l.in_features],
                    l.out_features,
                    l.in_features,
                )),
                _ => None,
            };
            parameters.push(match shapes {
                Some((weight, outputs, fan_in)) => Some(Parameters {
                    weight_key: architecture.weight_key(step.index),
                    weight: uniform(&weight, fan_in)?,
                    bias_key: architecture.bias_key(step.index),
                    bias: uniform(&[outputs], fan_in)?,
                }),
                None => None,
            });
        }
        Ok(Network {
            layers: architecture.steps.iter().map(|s| s.layer).collect(),
            parameters,
        })
    }

    pub fn variables(&self) -> Vec<Var> {
        self.parameters
            .iter()
            .flatten()
            .flat_map(|p| [p.weight.clone(), p.bias.clone()])
            .collect()
    }

    /// Logits for a batch of `N×C×H×W` images; Dropout is left out, which only slows learning
    /// of a model this small.
    pub fn forward(&self, images: &Tensor) -> anyhow::Result<Tensor> {
        let mut x = images.clone();
        for (layer, parameters) in self.layers.iter().zip(&self.parameters) {
            x = match (layer, parameters) {
                (LayerSpec::Conv2d(c), Some(p)) if c.groups == 1 && c.bias => x
                    .conv2d(&p.weight, c.padding, c.stride, 1, 1)?
                    .broadcast_add(&p.bias.reshape((1, c.out_channels, 1, 1))?)?,
                (LayerSpec::Linear(_), Some(p)) => {
                    x.matmul(&p.weight.t()?)?.broadcast_add(&p.bias)?
                }
                (LayerSpec::Relu, _) => x.relu()?,
                (LayerSpec::MaxPool2d(p), _) => x.max_pool2d_with_stride(p.kernel, p.stride())?,
                (LayerSpec::Flatten, _) => x.flatten_from(1)?,
                (LayerSpec::Dropout, _) => x,
                // The layers of the model it trains; the rest quantize but are not trained here.
                (layer, _) => anyhow::bail!("train-small does not train {layer:?}"),
            };
        }
        Ok(x)
    }

    /// Writes a temporary file and renames it, so a failed run leaves no partial checkpoint.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tensors: HashMap<String, Tensor> = self
            .parameters
            .iter()
            .flatten()
            .flat_map(|p| {
                [
                    (p.weight_key.clone(), p.weight.as_tensor().clone()),
                    (p.bias_key.clone(), p.bias.as_tensor().clone()),
                ]
            })
            .collect();
        let temporary = path.with_extension("safetensors.tmp");
        candle_core::safetensors::save(&tensors, &temporary)
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
    }
}
