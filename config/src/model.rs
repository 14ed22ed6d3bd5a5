//! The `model:` section of `config.yaml`: a PyTorch `nn.Sequential` as the user writes it,
//! before any shape is worked out (that is `architecture.rs`).

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub input: InputShape,
    pub classes: usize,
    /// state_dict keys are `<key_prefix>.<index>.weight|bias`.
    pub key_prefix: String,
    /// The `nn.Sequential`, in order and numbering.
    pub layers: Vec<LayerSpec>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum LayerSpec {
    Conv2d(Conv2dSpec),
    /// Inference-mode BatchNorm2d: folded into the conv2d before it, or a per-channel affine
    /// op where there is none.
    BatchNorm2d(BatchNormSpec),
    Relu,
    Relu6,
    MaxPool2d(PoolSpec),
    AvgPool2d(AvgPoolSpec),
    /// `nn.AdaptiveAvgPool2d(1)`: global average pooling (the only output size supported).
    AdaptiveAvgPool2d(usize),
    Dropout,
    Flatten,
    Linear(LinearSpec),
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Conv2dSpec {
    #[serde(rename = "in")]
    pub in_channels: usize,
    #[serde(rename = "out")]
    pub out_channels: usize,
    pub kernel: usize,
    #[serde(default = "one")]
    pub stride: usize,
    #[serde(default)]
    pub padding: usize,
    /// PyTorch's `groups`: 1, the input channels (depthwise), or any common divisor.
    #[serde(default = "one")]
    pub groups: usize,
    /// `bias=False` (usual before a BatchNorm2d): the checkpoint has no `.bias` for it.
    #[serde(default = "yes")]
    pub bias: bool,
}

impl Conv2dSpec {
    /// An ungrouped conv with a bias: PyTorch's `nn.Conv2d` defaults.
    pub fn dense(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            groups: 1,
            bias: true,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchNormSpec {
    /// `num_features`: the channels it normalizes.
    pub features: usize,
    /// PyTorch's default 1e-5.
    #[serde(default = "default_eps")]
    pub eps: f64,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AvgPoolSpec {
    pub kernel: usize,
    /// PyTorch's default: the kernel size.
    pub stride: Option<usize>,
    #[serde(default)]
    pub padding: usize,
    /// PyTorch's default: padding counts in the divisor.
    #[serde(default = "yes")]
    pub count_include_pad: bool,
}

impl AvgPoolSpec {
    pub fn stride(&self) -> usize {
        self.stride.unwrap_or(self.kernel)
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub kernel: usize,
    /// PyTorch's default: the kernel size.
    pub stride: Option<usize>,
}

impl PoolSpec {
    pub fn stride(&self) -> usize {
        self.stride.unwrap_or(self.kernel)
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinearSpec {
    #[serde(rename = "in")]
    pub in_features: usize,
    #[serde(rename = "out")]
    pub out_features: usize,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn default_eps() -> f64 {
    1e-5
}
