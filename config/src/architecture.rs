//! The configured layer sequence with every tensor shape worked out, the parameters it expects
//! from a checkpoint, and its grouping into the fused int8 layers the engine runs.

use qcnn_core::ops::dot::MAX_DOT_LEN;
use qcnn_core::shape::MAX_TENSOR_LEN;

use crate::model::{Conv2dSpec, LayerSpec, LinearSpec, ModelConfig, PoolSpec};
use qcnn_core::graph::format::{MAX_NODES, MAX_TENSORS};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchitectureError {
    #[error("the model has no layers")]
    Empty,
    #[error("model.input: every dimension must be within 1..=65535")]
    InputShape,
    #[error("layer {index} ({layer}): {message}")]
    Layer {
        index: usize,
        layer: &'static str,
        message: String,
    },
    #[error("the model ends with {actual}, expected a vector of {classes} class scores")]
    Output { actual: Shape, classes: usize },
    #[error("{fused} fused layers, the engine holds at most {max}")]
    TooManyLayers { fused: usize, max: usize },
    #[error("{nodes} graph nodes, the engine holds at most {max}")]
    TooManyNodes { nodes: usize, max: usize },
}

/// An activation: a C×H×W feature map, or a flat vector after Flatten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Map { c: usize, h: usize, w: usize },
    Vector(usize),
}

impl Shape {
    pub fn len(&self) -> usize {
        match *self {
            Shape::Map { c, h, w } => c * h * w,
            Shape::Vector(n) => n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Map { c, h, w } => write!(f, "a {c}x{h}x{w} map"),
            Shape::Vector(n) => write!(f, "a vector of {n}"),
        }
    }
}

/// One layer of the sequence with its input and output shapes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The position in the `nn.Sequential`, which numbers its state_dict keys.
    pub index: usize,
    pub layer: LayerSpec,
    pub input: Shape,
    pub output: Shape,
}

/// A tensor the checkpoint must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterSpec {
    pub key: String,
    pub shape: Vec<usize>,
}

/// A layer as the int8 engine runs it: Conv2d(+ReLU)(+MaxPool2d) and Linear(+ReLU) fused,
/// Dropout gone, BatchNorm2d folded into its Conv2d.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedLayer {
    Conv2d {
        /// The Conv2d's step index (its parameters' key).
        index: usize,
        spec: Conv2dSpec,
        relu: bool,
        pool: Option<PoolSpec>,
        /// The step whose output is requantized: the ReLU if fused, else the Conv2d itself.
        /// Pooling comes after requantization, as max commutes with the monotone rounding.
        requantized: usize,
    },
    MaxPool2d(PoolSpec),
    Flatten,
    Linear {
        index: usize,
        spec: LinearSpec,
        relu: bool,
        requantized: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    pub key_prefix: String,
    pub input: Shape,
    pub steps: Vec<Step>,
}

/// The most layers the engine's blob holds.
pub const MAX_FUSED_LAYERS: usize = qcnn_core::format::MAX_LAYERS;

impl Architecture {
    pub fn new(model: &ModelConfig) -> Result<Architecture, ArchitectureError> {
        let i = model.input;
        if [i.channels, i.height, i.width]
            .iter()
            .any(|&d| d == 0 || d > usize::from(u16::MAX))
        {
            return Err(ArchitectureError::InputShape);
        }
        if model.layers.is_empty() {
            return Err(ArchitectureError::Empty);
        }
        let input = Shape::Map {
            c: i.channels,
            h: i.height,
            w: i.width,
        };
        let mut shape = input;
        let mut steps = Vec::with_capacity(model.layers.len());
        for (index, &layer) in model.layers.iter().enumerate() {
            let output =
                output_shape(&layer, shape, previous_compute(&steps)).map_err(|message| {
                    ArchitectureError::Layer {
                        index,
                        layer: layer_name(&layer),
                        message,
                    }
                })?;
            steps.push(Step {
                index,
                layer,
                input: shape,
                output,
            });
            shape = output;
        }
        if shape != Shape::Vector(model.classes) {
            return Err(ArchitectureError::Output {
                actual: shape,
                classes: model.classes,
            });
        }
        let architecture = Architecture {
            key_prefix: model.key_prefix.clone(),
            input,
            steps,
        };
        if architecture.needs_graph() {
            // One node per step that computes; each writes one tensor, and the image is one more.
            let nodes = architecture
                .steps
                .iter()
                .filter(|s| {
                    !matches!(
                        s.layer,
                        LayerSpec::Relu
                            | LayerSpec::Relu6
                            | LayerSpec::Dropout
                            | LayerSpec::Flatten
                    )
                })
                .count();
            let max = MAX_NODES.min(MAX_TENSORS - 1);
            if nodes > max {
                return Err(ArchitectureError::TooManyNodes { nodes, max });
            }
        } else {
            let fused = architecture.fused().len();
            if fused > MAX_FUSED_LAYERS {
                return Err(ArchitectureError::TooManyLayers {
                    fused,
                    max: MAX_FUSED_LAYERS,
                });
            }
        }
        Ok(architecture)
    }

    pub fn output(&self) -> Shape {
        self.steps.last().map_or(self.input, |s| s.output)
    }

    pub fn weight_key(&self, index: usize) -> String {
        format!("{}.{index}.weight", self.key_prefix)
    }

    pub fn bias_key(&self, index: usize) -> String {
        format!("{}.{index}.bias", self.key_prefix)
    }

    pub fn key(&self, index: usize, name: &str) -> String {
        format!("{}.{index}.{name}", self.key_prefix)
    }

    /// Whether the version-1 layer chain cannot express the model, so that it becomes a graph
    /// (format version 2): grouped convolution, average pooling, ReLU6, or a BatchNorm2d with
    /// no conv2d right before it to fold into.
    pub fn needs_graph(&self) -> bool {
        self.steps
            .iter()
            .enumerate()
            .any(|(i, step)| match step.layer {
                LayerSpec::Conv2d(c) => c.groups != 1,
                LayerSpec::AvgPool2d(_) | LayerSpec::AdaptiveAvgPool2d(_) | LayerSpec::Relu6 => {
                    true
                }
                LayerSpec::BatchNorm2d(_) => !matches!(
                    previous_compute(&self.steps[..i]),
                    Some(LayerSpec::Conv2d(_))
                ),
                _ => false,
            })
    }

    /// Every parameter, in layer order, with PyTorch's shapes (OIHW with I = in/groups,
    /// `[out][in]`, one value per channel for BatchNorm2d). BatchNorm2d's
    /// `num_batches_tracked` is left out: the checkpoint readers skip it.
    pub fn parameters(&self) -> Vec<ParameterSpec> {
        let mut out = Vec::new();
        let mut push = |index, name: &str, shape: Vec<usize>| {
            out.push(ParameterSpec {
                key: self.key(index, name),
                shape,
            })
        };
        for step in &self.steps {
            match step.layer {
                LayerSpec::Conv2d(c) => {
                    let per_group = c.in_channels / c.groups.max(1);
                    push(
                        step.index,
                        "weight",
                        vec![c.out_channels, per_group, c.kernel, c.kernel],
                    );
                    if c.bias {
                        push(step.index, "bias", vec![c.out_channels]);
                    }
                }
                LayerSpec::Linear(l) => {
                    push(step.index, "weight", vec![l.out_features, l.in_features]);
                    push(step.index, "bias", vec![l.out_features]);
                }
                LayerSpec::BatchNorm2d(b) => {
                    for name in ["weight", "bias", "running_mean", "running_var"] {
                        push(step.index, name, vec![b.features]);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The int8 layers of a chain (`needs_graph()` false): every ReLU follows a Conv2d or
    /// Linear (a BatchNorm2d between is folded into the Conv2d), so each is fused.
    pub fn fused(&self) -> Vec<Fused> {
        let mut fused: Vec<Fused> = Vec::new();
        for step in &self.steps {
            let new = |layer| Fused {
                layer,
                steps: Vec::new(),
            };
            let last = fused.last_mut().map(|f| &mut f.layer);
            match step.layer {
                LayerSpec::Conv2d(spec) => fused.push(new(FusedLayer::Conv2d {
                    index: step.index,
                    spec,
                    relu: false,
                    pool: None,
                    requantized: step.index,
                })),
                LayerSpec::Linear(spec) => fused.push(new(FusedLayer::Linear {
                    index: step.index,
                    spec,
                    relu: false,
                    requantized: step.index,
                })),
                LayerSpec::Relu => match last {
                    Some(
                        FusedLayer::Conv2d {
                            relu,
                            pool: None,
                            requantized,
                            ..
                        }
                        | FusedLayer::Linear {
                            relu, requantized, ..
                        },
                    ) => {
                        *relu = true;
                        *requantized = step.index;
                    }
                    _ => unreachable!(
                        "a chain has ReLU only right after Conv2d or Linear (and BatchNorm2d)"
                    ),
                },
                LayerSpec::MaxPool2d(spec) => match last {
                    Some(FusedLayer::Conv2d {
                        pool: pool @ None, ..
                    }) => *pool = Some(spec),
                    _ => fused.push(new(FusedLayer::MaxPool2d(spec))),
                },
                LayerSpec::Flatten => fused.push(new(FusedLayer::Flatten)),
                // Folded into the Conv2d before it, whose output it then is.
                LayerSpec::Dropout | LayerSpec::BatchNorm2d(_) => {}
                LayerSpec::Relu6 | LayerSpec::AvgPool2d(_) | LayerSpec::AdaptiveAvgPool2d(_) => {
                    unreachable!("fused() is for chains; these layers make a graph")
                }
            }
            if let Some(last) = fused.last_mut() {
                last.steps.push(step.index);
            }
        }
        fused
    }
}

/// A fused layer and the sequence indices it covers (a Dropout goes with the layer before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fused {
    pub layer: FusedLayer,
    pub steps: Vec<usize>,
}

/// The last layer that is not a Dropout (Dropout is the identity at inference).
pub fn previous_compute(steps: &[Step]) -> Option<LayerSpec> {
    steps
        .iter()
        .rev()
        .map(|s| s.layer)
        .find(|l| *l != LayerSpec::Dropout)
}

/// Each layer's [`layer_name`], in order: what a report (or a test) lists of a model.
pub fn layer_names(layers: &[LayerSpec]) -> Vec<&'static str> {
    layers.iter().map(layer_name).collect()
}

pub fn layer_name(layer: &LayerSpec) -> &'static str {
    match layer {
        LayerSpec::Conv2d(_) => "conv2d",
        LayerSpec::BatchNorm2d(_) => "batchnorm2d",
        LayerSpec::Relu => "relu",
        LayerSpec::Relu6 => "relu6",
        LayerSpec::MaxPool2d(_) => "maxpool2d",
        LayerSpec::AvgPool2d(_) => "avgpool2d",
        LayerSpec::AdaptiveAvgPool2d(_) => "adaptiveavgpool2d",
        LayerSpec::Dropout => "dropout",
        LayerSpec::Flatten => "flatten",
        LayerSpec::Linear(_) => "linear",
    }
}

/// Window positions along one axis, or an error when the window does not fit.
fn windows(size: usize, kernel: usize, stride: usize, padding: usize) -> Result<usize, String> {
    if kernel == 0 || stride == 0 {
        return Err("kernel and stride must be at least 1".into());
    }
    qcnn_core::shape::window_len(size, kernel, stride, padding, padding).ok_or_else(|| {
        format!(
            "kernel {kernel} is larger than the padded input {}",
            size.saturating_add(padding.saturating_mul(2))
        )
    })
}

/// The engine's limit on one tensor ([`MAX_TENSOR_LEN`] bytes), checked here so that a model
/// too large for it fails when the config loads, not when the blob does.
fn fits(shape: Shape) -> Result<Shape, String> {
    if shape.len() > MAX_TENSOR_LEN {
        return Err(format!(
            "its output, {shape}, exceeds the engine's {MAX_TENSOR_LEN} bytes per tensor"
        ));
    }
    Ok(shape)
}

/// The engine's limit on one output's dot product ([`MAX_DOT_LEN`] inputs), which keeps the
/// int32 accumulator from overflowing.
fn dot_fits(inputs: usize) -> Result<(), String> {
    if inputs > MAX_DOT_LEN {
        return Err(format!(
            "each output sums {inputs} inputs, the engine's kernels at most {MAX_DOT_LEN}"
        ));
    }
    Ok(())
}

/// The shape `layer` makes of `input`, or why it cannot: the one place the layer-chaining
/// rules (and the engine's limits on them) are written, used for `config.yaml` and for ONNX
/// imports alike. `previous` is the last layer that is not a Dropout.
pub fn output_shape(
    layer: &LayerSpec,
    input: Shape,
    previous: Option<LayerSpec>,
) -> Result<Shape, String> {
    let map = |what: &str| match input {
        Shape::Map { c, h, w } => Ok((c, h, w)),
        Shape::Vector(_) => Err(format!(
            "{what} needs a feature map, but gets {input} (after flatten)"
        )),
    };
    match *layer {
        LayerSpec::Conv2d(spec) => {
            let (c, h, w) = map("conv2d")?;
            if spec.in_channels != c {
                return Err(format!(
                    "in {} does not match the {c} channels it gets",
                    spec.in_channels
                ));
            }
            if spec.out_channels == 0 {
                return Err("out must be at least 1".into());
            }
            let groups = spec.groups;
            if groups == 0
                || !c.is_multiple_of(groups)
                || !spec.out_channels.is_multiple_of(groups)
                || groups > usize::from(u16::MAX)
            {
                return Err(format!(
                    "groups {groups} must divide both in {c} and out {}",
                    spec.out_channels
                ));
            }
            // The engine's kernels centre the window, which needs an odd size.
            if spec.kernel % 2 == 0 {
                return Err(format!("kernel {} must be odd", spec.kernel));
            }
            if !(1..=2).contains(&spec.stride) {
                return Err(format!(
                    "stride {} is not supported; the engine's kernels take 1 or 2",
                    spec.stride
                ));
            }
            if spec.kernel > 255 || spec.padding > 255 || spec.out_channels > usize::from(u16::MAX)
            {
                return Err(
                    "kernel and padding must fit a byte, out 16 bits (the blob's fields)".into(),
                );
            }
            dot_fits(c / groups * spec.kernel * spec.kernel)?;
            fits(Shape::Map {
                c: spec.out_channels,
                h: windows(h, spec.kernel, spec.stride, spec.padding)?,
                w: windows(w, spec.kernel, spec.stride, spec.padding)?,
            })
        }
        LayerSpec::MaxPool2d(spec) => {
            let (c, h, w) = map("maxpool2d")?;
            if spec.kernel > 255 || spec.stride() > 255 {
                return Err("kernel and stride must fit a byte (the blob's fields)".into());
            }
            Ok(Shape::Map {
                c,
                h: windows(h, spec.kernel, spec.stride(), 0)?,
                w: windows(w, spec.kernel, spec.stride(), 0)?,
            })
        }
        LayerSpec::BatchNorm2d(spec) => {
            let (c, _, _) = map("batchnorm2d")?;
            if spec.features != c {
                return Err(format!(
                    "features {} does not match the {c} channels it gets",
                    spec.features
                ));
            }
            if !(spec.eps.is_finite() && spec.eps > 0.0) {
                return Err(format!("eps {} must be finite and positive", spec.eps));
            }
            Ok(input)
        }
        LayerSpec::Relu | LayerSpec::Relu6 => match previous {
            Some(LayerSpec::Conv2d(_) | LayerSpec::Linear(_) | LayerSpec::BatchNorm2d(_)) => {
                Ok(input)
            }
            _ => Err(format!(
                "{} must follow a conv2d or linear layer, or a batchnorm2d (dropout between is fine), so it can be fused",
                layer_name(layer)
            )),
        },
        LayerSpec::AvgPool2d(spec) => {
            let (c, h, w) = map("avgpool2d")?;
            if spec.kernel > 255 || spec.stride() > 255 {
                return Err("kernel and stride must fit a byte (the blob's fields)".into());
            }
            // PyTorch's own rule, which also keeps every window over at least one pixel.
            if spec.padding > spec.kernel / 2 {
                return Err(format!(
                    "padding {} must be at most half the kernel {}",
                    spec.padding, spec.kernel
                ));
            }
            Ok(Shape::Map {
                c,
                h: windows(h, spec.kernel, spec.stride(), spec.padding)?,
                w: windows(w, spec.kernel, spec.stride(), spec.padding)?,
            })
        }
        LayerSpec::AdaptiveAvgPool2d(size) => {
            let (c, _, _) = map("adaptiveavgpool2d")?;
            if size != 1 {
                return Err(format!(
                    "output size {size} is not supported; only 1 (global average pooling)"
                ));
            }
            Ok(Shape::Map { c, h: 1, w: 1 })
        }
        LayerSpec::Dropout => Ok(input),
        LayerSpec::Flatten => {
            map("flatten")?;
            Ok(Shape::Vector(input.len()))
        }
        LayerSpec::Linear(spec) => {
            let Shape::Vector(n) = input else {
                return Err(format!(
                    "linear needs a flat input, but gets {input}; add a flatten before it"
                ));
            };
            if spec.in_features != n {
                return Err(format!(
                    "in {} does not match the {n} features it gets",
                    spec.in_features
                ));
            }
            if spec.out_features == 0 {
                return Err("out must be at least 1".into());
            }
            dot_fits(n)?;
            fits(Shape::Vector(spec.out_features))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InputShape;

    fn model(layers: Vec<LayerSpec>, classes: usize) -> ModelConfig {
        ModelConfig {
            name: "t".into(),
            input: InputShape {
                channels: 1,
                height: 28,
                width: 28,
            },
            classes,
            key_prefix: "layers".into(),
            layers,
        }
    }

    fn conv(i: usize, o: usize, k: usize, s: usize, p: usize) -> LayerSpec {
        LayerSpec::Conv2d(Conv2dSpec::dense(i, o, k, s, p))
    }

    fn linear(i: usize, o: usize) -> LayerSpec {
        LayerSpec::Linear(LinearSpec {
            in_features: i,
            out_features: o,
        })
    }

    fn pool(k: usize) -> LayerSpec {
        LayerSpec::MaxPool2d(PoolSpec {
            kernel: k,
            stride: None,
        })
    }

    fn seed_model() -> ModelConfig {
        use LayerSpec::*;
        model(
            vec![
                conv(1, 8, 3, 1, 1),
                Relu,
                conv(8, 16, 3, 1, 1),
                Relu,
                pool(2),
                Dropout,
                Flatten,
                linear(3136, 256),
                Relu,
                Dropout,
                linear(256, 10),
            ],
            10,
        )
    }

    #[test]
    fn seed_model_shapes_parameters_and_fusion() {
        let a = Architecture::new(&seed_model()).unwrap();
        assert_eq!(
            a.steps[4].output,
            Shape::Map {
                c: 16,
                h: 14,
                w: 14
            }
        );
        assert_eq!(a.steps[6].output, Shape::Vector(3136));
        let p = a.parameters();
        let keys: Vec<_> = p
            .iter()
            .map(|p| (p.key.as_str(), p.shape.clone()))
            .collect();
        assert_eq!(
            keys,
            [
                ("layers.0.weight", vec![8, 1, 3, 3]),
                ("layers.0.bias", vec![8]),
                ("layers.2.weight", vec![16, 8, 3, 3]),
                ("layers.2.bias", vec![16]),
                ("layers.7.weight", vec![256, 3136]),
                ("layers.7.bias", vec![256]),
                ("layers.10.weight", vec![10, 256]),
                ("layers.10.bias", vec![10]),
            ]
        );
        let fused = a.fused();
        assert_eq!(fused[1].steps, [2, 3, 4, 5]);
        assert_eq!(fused[4].steps, [10]);
        let fused: Vec<_> = fused.into_iter().map(|f| f.layer).collect();
        assert_eq!(fused.len(), 5);
        assert!(matches!(
            fused[0],
            FusedLayer::Conv2d {
                index: 0,
                relu: true,
                pool: None,
                requantized: 1,
                ..
            }
        ));
        assert!(matches!(
            fused[1],
            FusedLayer::Conv2d {
                index: 2,
                relu: true,
                pool: Some(_),
                requantized: 3,
                ..
            }
        ));
        assert_eq!(fused[2], FusedLayer::Flatten);
        assert!(matches!(
            fused[3],
            FusedLayer::Linear {
                index: 7,
                relu: true,
                requantized: 8,
                ..
            }
        ));
        assert!(matches!(
            fused[4],
            FusedLayer::Linear {
                index: 10,
                relu: false,
                requantized: 10,
                ..
            }
        ));
    }

    #[test]
    fn strided_conv_and_standalone_pool() {
        use LayerSpec::*;
        let m = model(
            vec![
                conv(1, 4, 5, 2, 2),
                Relu,
                pool(2),
                pool(1),
                Flatten,
                linear(4 * 7 * 7, 10),
            ],
            10,
        );
        let a = Architecture::new(&m).unwrap();
        assert_eq!(a.steps[0].output, Shape::Map { c: 4, h: 14, w: 14 });
        let fused: Vec<_> = a.fused().into_iter().map(|f| f.layer).collect();
        // The second pool cannot fuse into a conv that already pools.
        assert!(matches!(fused[0], FusedLayer::Conv2d { pool: Some(_), .. }));
        assert_eq!(
            fused[1],
            FusedLayer::MaxPool2d(PoolSpec {
                kernel: 1,
                stride: None
            })
        );
    }

    fn layer_error(layers: Vec<LayerSpec>) -> String {
        Architecture::new(&model(layers, 10))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_sequences_are_explained() {
        use LayerSpec::*;
        assert!(
            layer_error(vec![conv(3, 8, 3, 1, 1)])
                .contains("layer 0 (conv2d): in 3 does not match the 1 channels")
        );
        assert!(layer_error(vec![linear(784, 10)]).contains("add a flatten"));
        assert!(
            layer_error(vec![Flatten, linear(700, 10)]).contains("in 700 does not match the 784")
        );
        assert!(layer_error(vec![Relu]).contains("layer 0 (relu): relu must follow"));
        assert!(layer_error(vec![conv(1, 2, 4, 1, 1)]).contains("must be odd"));
        assert!(layer_error(vec![conv(1, 2, 3, 3, 1)]).contains("stride 3 is not supported"));
        assert!(layer_error(vec![pool(29)]).contains("larger than"));
        assert!(layer_error(vec![Flatten, pool(2)]).contains("needs a feature map"));
        assert!(layer_error(vec![Flatten, linear(784, 9)]).contains("expected a vector of 10"));
        assert!(
            layer_error(vec![
                Flatten,
                linear(784, 200_000),
                Relu,
                linear(200_000, 10)
            ])
            .contains("layer 3 (linear): each output sums 200000 inputs")
        );
        assert!(
            layer_error(vec![conv(1, 65_535, 1, 1, 255)])
                .contains("exceeds the engine's 2147483647 bytes per tensor")
        );
        assert_eq!(
            Architecture::new(&model(vec![], 10)).unwrap_err(),
            ArchitectureError::Empty
        );
        let many: Vec<_> = std::iter::once(Flatten)
            .chain(std::iter::once(linear(784, 10)))
            .chain((0..16).map(|_| linear(10, 10)))
            .collect();
        assert!(matches!(
            Architecture::new(&model(many, 10)),
            Err(ArchitectureError::TooManyLayers { fused: 18, .. })
        ));
    }

    fn batchnorm(features: usize) -> LayerSpec {
        LayerSpec::BatchNorm2d(crate::model::BatchNormSpec {
            features,
            eps: 1e-5,
        })
    }

    fn grouped(i: usize, o: usize, k: usize, groups: usize, bias: bool) -> LayerSpec {
        LayerSpec::Conv2d(Conv2dSpec {
            in_channels: i,
            out_channels: o,
            kernel: k,
            stride: 1,
            padding: k / 2,
            groups,
            bias,
        })
    }

    #[test]
    fn batchnorm_after_a_conv_stays_a_chain_and_the_rest_make_a_graph() {
        use LayerSpec::*;
        let chain = model(
            vec![
                grouped(1, 4, 3, 1, false),
                batchnorm(4),
                Relu,
                Flatten,
                linear(3136, 10),
            ],
            10,
        );
        let a = Architecture::new(&chain).unwrap();
        assert!(!a.needs_graph());
        let keys: Vec<_> = a.parameters().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "layers.0.weight",
                "layers.1.weight",
                "layers.1.bias",
                "layers.1.running_mean",
                "layers.1.running_var",
                "layers.4.weight",
                "layers.4.bias"
            ]
        );
        // The BatchNorm2d goes with the conv it folds into; the ReLU fuses into that conv.
        assert_eq!(a.fused()[0].steps, [0, 1, 2]);

        let depthwise = grouped(4, 4, 3, 4, true);
        let avg = LayerSpec::AvgPool2d(crate::model::AvgPoolSpec {
            kernel: 3,
            stride: Some(2),
            padding: 1,
            count_include_pad: true,
        });
        for (layers, classes) in [
            (
                vec![
                    grouped(1, 4, 3, 1, true),
                    depthwise,
                    Flatten,
                    linear(3136, 10),
                ],
                10,
            ),
            (
                vec![grouped(1, 4, 3, 1, true), Relu6, Flatten, linear(3136, 10)],
                10,
            ),
            (
                vec![
                    grouped(1, 4, 3, 1, true),
                    avg,
                    Flatten,
                    linear(4 * 14 * 14, 10),
                ],
                10,
            ),
            (
                vec![
                    grouped(1, 4, 3, 1, true),
                    AdaptiveAvgPool2d(1),
                    Flatten,
                    linear(4, 10),
                ],
                10,
            ),
            (
                vec![
                    grouped(1, 4, 3, 1, true),
                    Relu,
                    batchnorm(4),
                    Flatten,
                    linear(3136, 10),
                ],
                10,
            ),
        ] {
            let a = Architecture::new(&model(layers.clone(), classes)).unwrap();
            assert!(a.needs_graph(), "{layers:?}");
        }
        assert_eq!(
            Architecture::new(&model(
                vec![
                    grouped(1, 4, 3, 1, true),
                    AdaptiveAvgPool2d(1),
                    Flatten,
                    linear(4, 10)
                ],
                10
            ))
            .unwrap()
            .steps[1]
                .output,
            Shape::Map { c: 4, h: 1, w: 1 }
        );
    }

    #[test]
    fn malformed_new_layers_are_explained() {
        use LayerSpec::*;
        assert!(
            layer_error(vec![grouped(1, 4, 3, 1, true), grouped(4, 6, 3, 4, true)])
                .contains("layer 1 (conv2d): groups 4 must divide both in 4 and out 6")
        );
        assert!(
            layer_error(vec![grouped(1, 4, 3, 1, true), batchnorm(5)])
                .contains("layer 1 (batchnorm2d): features 5 does not match the 4 channels")
        );
        assert!(
            layer_error(vec![AdaptiveAvgPool2d(2)])
                .contains("output size 2 is not supported; only 1")
        );
        let wide_pad = LayerSpec::AvgPool2d(crate::model::AvgPoolSpec {
            kernel: 2,
            stride: None,
            padding: 2,
            count_include_pad: true,
        });
        assert!(
            layer_error(vec![wide_pad]).contains("padding 2 must be at most half the kernel 2")
        );
        assert!(layer_error(vec![Relu6]).contains("layer 0 (relu6): relu6 must follow"));
        let deep: Vec<_> = (0..70)
            .map(|_| grouped(1, 1, 1, 1, true))
            .chain([AdaptiveAvgPool2d(1), Flatten, linear(1, 10)])
            .collect();
        assert!(matches!(
            Architecture::new(&model(deep, 10)),
            Err(ArchitectureError::TooManyNodes { nodes: 72, .. })
        ));
    }
}
