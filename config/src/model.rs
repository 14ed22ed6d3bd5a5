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

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LayerSpec {
    Conv2d(Conv2dSpec),
    Relu,
    MaxPool2d(PoolSpec),
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
