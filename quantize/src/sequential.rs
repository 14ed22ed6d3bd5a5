//! A configured `nn.Sequential` and its checked checkpoint, made ready to quantize: each
//! BatchNorm2d folded into the conv2d before it (f64, rounded once), each conv2d without bias
//! given a zero one. What comes out is the version-1 chain (the architecture with every folded
//! BatchNorm2d as the identity) or, where the chain cannot express the model
//! ([`Architecture::needs_graph`]), a [`FloatGraph`] for a version-2 blob.

use std::collections::BTreeMap;

use qcnn_config::architecture::{Architecture, Shape, layer_name, previous_compute};
use qcnn_config::model::{BatchNormSpec, LayerSpec};

use crate::checkpoint::{Checkpoint, Tensor};
use crate::graph::{Clamp, FloatGraph, FloatNode, FloatOp, FloatTensor, InputNorm, Window};
use crate::onnx::fold::Weighted;

#[derive(Debug, thiserror::Error)]
#[error("{}: folding {key_prefix}.{index} (batchnorm2d) into the conv2d before it: {message}", path.display())]
pub struct FoldError {
    path: std::path::PathBuf,
    key_prefix: String,
    index: usize,
    message: String,
}

pub enum Sequential {
    Chain(Architecture, Checkpoint),
    Graph(FloatGraph),
}

/// `checkpoint` must have passed `Checkpoint::check` against `architecture`.
pub fn prepare(
    architecture: &Architecture,
    checkpoint: &Checkpoint,
    name: &str,
) -> Result<Sequential, FoldError> {
    if architecture.needs_graph() {
        return Ok(Sequential::Graph(graph(architecture, checkpoint, name)?));
    }
    let mut chain = architecture.clone();
    let mut folded = checkpoint.clone();
    for i in 0..chain.steps.len() {
        let index = chain.steps[i].index;
        match chain.steps[i].layer {
            LayerSpec::Conv2d(mut spec) if !spec.bias => {
                let zeros = vec![0.0; spec.out_channels];
                let shape = vec![zeros.len()];
                folded
                    .tensors
                    .insert(chain.key(index, "bias"), Tensor { shape, data: zeros });
                spec.bias = true;
                chain.steps[i].layer = LayerSpec::Conv2d(spec);
            }
            LayerSpec::BatchNorm2d(spec) => {
                // A chain has a BatchNorm2d only right after a conv2d (`needs_graph`).
                let conv = chain.steps[..i]
                    .iter()
                    .rfind(|s| s.layer != LayerSpec::Dropout)
                    .map_or(0, |s| s.index);
                let (weight_key, bias_key) = (chain.key(conv, "weight"), chain.key(conv, "bias"));
                let mut weighted = Weighted {
                    weight_shape: folded.get(&weight_key).shape.clone(),
                    weight: folded.get(&weight_key).data.clone(),
                    bias: folded.get(&bias_key).data.clone(),
                };
                fold(&mut weighted, &chain, checkpoint, index, spec)?;
                for name in ["weight", "bias", "running_mean", "running_var"] {
                    folded.tensors.remove(&chain.key(index, name));
                }
                for (key, data) in [(weight_key, weighted.weight), (bias_key, weighted.bias)] {
                    if let Some(tensor) = folded.tensors.get_mut(&key) {
                        tensor.data = data;
                    }
                }
                chain.steps[i].layer = LayerSpec::Dropout;
            }
            _ => {}
        }
    }
    Ok(Sequential::Chain(chain, folded))
}

/// BatchNorm2d step `index`'s parameters folded into `weighted`.
fn fold(
    weighted: &mut Weighted,
    architecture: &Architecture,
    checkpoint: &Checkpoint,
    index: usize,
    spec: BatchNormSpec,
) -> Result<(), FoldError> {
    let get = |name| &checkpoint.get(&architecture.key(index, name)).data;
    weighted
        .fold_batch_norm(
            get("weight"),
            get("bias"),
            get("running_mean"),
            get("running_var"),
            spec.eps as f32,
        )
        .map_err(|message| FoldError {
            path: checkpoint.path.clone(),
            key_prefix: architecture.key_prefix.clone(),
            index,
            message,
        })
}

fn dims(shape: Shape) -> [usize; 3] {
    match shape {
        Shape::Map { c, h, w } => [c, h, w],
        Shape::Vector(n) => [n, 1, 1],
    }
}

fn square(kernel: usize, stride: usize, padding: usize) -> Window {
    Window {
        kernel: [kernel; 2],
        stride: [stride; 2],
        pads: [padding; 4],
    }
}

/// The sequence as a graph: one node per step that computes, activations fused into the node
/// before them, BatchNorm2d folded into its conv2d or else a depthwise 1×1 conv.
fn graph(
    architecture: &Architecture,
    checkpoint: &Checkpoint,
    name: &str,
) -> Result<FloatGraph, FoldError> {
    let mut graph = FloatGraph {
        name: name.to_owned(),
        tensors: vec![FloatTensor {
            name: "input".into(),
            shape: dims(architecture.input),
        }],
        nodes: Vec::new(),
        output: 0,
        input_norm: InputNorm::PIXEL_OVER_255,
        file_quant: BTreeMap::new(),
    };
    let parameter = |index, name| checkpoint.get(&architecture.key(index, name)).data.clone();
    for (i, step) in architecture.steps.iter().enumerate() {
        let clamp = |max| Clamp { min: 0.0, max };
        let op = match step.layer {
            LayerSpec::Conv2d(spec) => FloatOp::Conv {
                weight: parameter(step.index, "weight"),
                bias: match spec.bias {
                    true => parameter(step.index, "bias"),
                    false => vec![0.0; spec.out_channels],
                },
                window: square(spec.kernel, spec.stride, spec.padding),
                groups: spec.groups,
                clamp: Clamp::NONE,
            },
            LayerSpec::BatchNorm2d(spec) => {
                let folds_into_last = matches!(
                    previous_compute(&architecture.steps[..i]),
                    Some(LayerSpec::Conv2d(_))
                );
                let mut weighted = Weighted {
                    weight_shape: vec![spec.features, 1],
                    weight: vec![1.0; spec.features],
                    bias: vec![0.0; spec.features],
                };
                if folds_into_last
                    && let Some(FloatOp::Conv { weight, bias, .. }) =
                        graph.nodes.last_mut().map(|n| &mut n.op)
                {
                    weighted.weight_shape = vec![bias.len(), weight.len() / bias.len().max(1)];
                    weighted.weight = std::mem::take(weight);
                    weighted.bias = std::mem::take(bias);
                    let folded = fold(&mut weighted, architecture, checkpoint, step.index, spec);
                    (*weight, *bias) = (weighted.weight, weighted.bias);
                    folded?;
                    continue;
                }
                // Nothing to fold into: a per-channel affine op.
                fold(&mut weighted, architecture, checkpoint, step.index, spec)?;
                FloatOp::Conv {
                    weight: weighted.weight,
                    bias: weighted.bias,
                    window: square(1, 1, 0),
                    groups: spec.features,
                    clamp: Clamp::NONE,
                }
            }
            LayerSpec::Relu | LayerSpec::Relu6 => {
                let max = match step.layer {
                    LayerSpec::Relu6 => 6.0,
                    _ => f32::INFINITY,
                };
                // The chaining rules put a conv2d, batchnorm2d or linear right before.
                if let Some(FloatOp::Conv { clamp: c, .. } | FloatOp::Gemm { clamp: c, .. }) =
                    graph.nodes.last_mut().map(|n| &mut n.op)
                {
                    *c = c.and(clamp(max));
                }
                continue;
            }
            LayerSpec::MaxPool2d(spec) => FloatOp::MaxPool(square(spec.kernel, spec.stride(), 0)),
            LayerSpec::AvgPool2d(spec) => FloatOp::AveragePool {
                window: square(spec.kernel, spec.stride(), spec.padding),
                count_include_pad: spec.count_include_pad,
            },
            LayerSpec::AdaptiveAvgPool2d(_) => FloatOp::GlobalAveragePool,
            // The graph's Gemm reads a C×H×W tensor as PyTorch flattens it.
            LayerSpec::Dropout | LayerSpec::Flatten => continue,
            LayerSpec::Linear(_) => FloatOp::Gemm {
                weight: parameter(step.index, "weight"),
                bias: parameter(step.index, "bias"),
                clamp: Clamp::NONE,
            },
        };
        let output = graph.tensors.len();
        let key = format!("{}.{}", architecture.key_prefix, step.index);
        graph.tensors.push(FloatTensor {
            name: key.clone(),
            shape: dims(step.output),
        });
        graph.nodes.push(FloatNode {
            name: format!("{key} ({})", layer_name(&step.layer)),
            op,
            inputs: vec![graph.output],
            output,
        });
        graph.output = output;
    }
    Ok(graph)
}
