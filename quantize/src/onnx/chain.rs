//! The walked graph as a chain of layers, when it is one the layer-sequence blob (version 3)
//! holds: every node reads the one before it, Conv has group 1, a square kernel, equal strides
//! and the same padding on every side, MaxPool has no padding, and the only fused activation
//! is ReLU. Such a model then quantizes exactly as the `.pth` it was exported from; anything
//! else stays a graph.

use std::collections::BTreeMap;

use crate::checkpoint::{Checkpoint, Tensor};
use crate::graph::{Clamp, FloatGraph, FloatOp, InputNorm, Window};
use qcnn_config::architecture::Architecture;
use qcnn_config::model::{Conv2dSpec, InputShape, LayerSpec, LinearSpec, ModelConfig, PoolSpec};

const RELU: Clamp = Clamp {
    min: 0.0,
    max: f32::INFINITY,
};

/// A layer's parameters: its weight's shape, the weights, the bias.
type Parameters = (Vec<usize>, Vec<f32>, Vec<f32>);

/// `graph` as a layer sequence (the model section and checkpoint a `.pth` would come with), or
/// `None` when the layer-sequence format cannot hold it (a QDQ model's own activation
/// quantization and a normalized input need a graph blob too).
pub fn as_chain(
    graph: &FloatGraph,
    path: &std::path::Path,
) -> Option<(ModelConfig, Architecture, Checkpoint)> {
    if !graph.file_quant.is_empty() || graph.input_norm != InputNorm::PIXEL_OVER_255 {
        return None;
    }
    let [channels, height, width] = graph.tensors[0].shape;
    let mut layers = Vec::new();
    let mut parameters: BTreeMap<usize, Parameters> = BTreeMap::new();
    let mut current = 0;
    // Whether `current` is (batch, features): a Linear needs a Flatten before it otherwise.
    let mut flat = false;
    for node in &graph.nodes {
        if node.inputs != [current] {
            return None;
        }
        let in_channels = graph.tensors[current].shape[0];
        let relu = match node.op.clamp() {
            c if c.is_none() => false,
            c if c == RELU => true,
            _ => return None,
        };
        match &node.op {
            FloatOp::Conv {
                weight,
                bias,
                window,
                groups: 1,
                ..
            } => {
                let (kernel, stride, padding) = square(window)?;
                let spec = Conv2dSpec::dense(in_channels, bias.len(), kernel, stride, padding);
                let shape = vec![bias.len(), in_channels, kernel, kernel];
                parameters.insert(layers.len(), (shape, weight.clone(), bias.clone()));
                layers.push(LayerSpec::Conv2d(spec));
                flat = false;
            }
            FloatOp::MaxPool(window) => {
                let (kernel, stride, 0) = square(window)? else {
                    return None;
                };
                layers.push(LayerSpec::MaxPool2d(PoolSpec {
                    kernel,
                    stride: Some(stride),
                }));
                flat = false;
            }
            FloatOp::Gemm { weight, bias, .. } => {
                if !flat {
                    layers.push(LayerSpec::Flatten);
                    flat = true;
                }
                let (out, inputs) = (bias.len(), weight.len() / bias.len().max(1));
                let spec = LinearSpec {
                    in_features: inputs,
                    out_features: out,
                };
                parameters.insert(
                    layers.len(),
                    (vec![out, inputs], weight.clone(), bias.clone()),
                );
                layers.push(LayerSpec::Linear(spec));
            }
            _ => return None,
        }
        if relu {
            layers.push(LayerSpec::Relu);
        }
        current = node.output;
    }
    if current != graph.output || !flat {
        return None;
    }
    let model = ModelConfig {
        name: graph.name.clone(),
        input: InputShape {
            channels,
            height,
            width,
        },
        classes: graph.classes(),
        key_prefix: "layers".into(),
        layers,
    };
    // The engine's layer-sequence limits (odd kernels, strides 1 or 2, sizes) are the
    // architecture's: a model outside them stays a graph.
    let architecture = Architecture::new(&model).ok()?;
    let mut tensors = BTreeMap::new();
    for (index, (shape, weight, bias)) in parameters {
        let outputs = bias.len();
        tensors.insert(
            architecture.weight_key(index),
            Tensor {
                shape,
                data: weight,
            },
        );
        tensors.insert(
            architecture.bias_key(index),
            Tensor {
                shape: vec![outputs],
                data: bias,
            },
        );
    }
    let checkpoint = Checkpoint {
        path: path.to_owned(),
        tensors,
    };
    checkpoint.check(&architecture).ok()?;
    Some((model, architecture, checkpoint))
}

/// A window with a square kernel, equal strides and the same padding on every side.
fn square(window: &Window) -> Option<(usize, usize, usize)> {
    let Window {
        kernel: [kh, kw],
        stride: [sh, sw],
        pads: [p, q, r, s],
    } = *window;
    (kh == kw && sh == sw && p == q && q == r && r == s).then_some((kh, sh, p))
}
