//! Graph models (residual branches, depthwise and grouped convolution, average pooling, Add):
//! the float graph an ONNX file imports to ([`FloatGraph`]), its f32 reference forward pass,
//! calibration of every tensor, and the export to a graph blob (format version 4) whose arena the core's
//! planner lays out by tensor lifetimes.

pub mod export;
pub mod forward;
pub mod in_place_plan;
pub mod order_search;

use std::collections::BTreeMap;

use qcnn_core::format::QuantParams;

/// A float model as a graph: nodes in topological order over tensors.
#[derive(Clone, Debug)]
pub struct FloatGraph {
    pub name: String,
    /// C×H×W of every tensor; tensor 0 is the input image (pixel/255).
    pub tensors: Vec<FloatTensor>,
    pub nodes: Vec<FloatNode>,
    /// The logits tensor (C×1×1).
    pub output: usize,
    /// What the model sees of a pixel: `(pixel/255 − mean) / std` (config.yaml's
    /// `preprocess`; 0 and 1 by default).
    pub input_norm: InputNorm,
    /// Quantization a QDQ model's file gives a tensor (its QuantizeLinear's scale and zero
    /// point), used instead of calibration.
    pub file_quant: BTreeMap<usize, QuantParams>,
}

/// `(pixel/255 − mean) / std`, the same for every channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputNorm {
    pub mean: f32,
    pub std: f32,
}

impl InputNorm {
    pub const PIXEL_OVER_255: InputNorm = InputNorm {
        mean: 0.0,
        std: 1.0,
    };

    /// The float value the model sees for `pixel`, computed in f32 as numpy does.
    pub fn apply(&self, pixel: u8) -> f32 {
        if *self == Self::PIXEL_OVER_255 {
            f32::from(pixel) / 255.0
        } else {
            (f32::from(pixel) / 255.0 - self.mean) / self.std
        }
    }

    /// The image tensor's quantization: the engine reads `q = pixel − 128`, which stands for
    /// `(q − zero_point)·scale = (pixel − round(255·mean))/(255·std)`; the zero point is
    /// rounded to an integer, a shift of at most half an input step.
    pub fn quant(&self) -> QuantParams {
        if *self == Self::PIXEL_OVER_255 {
            return QuantParams {
                scale: qcnn_core::format::INPUT_SCALE,
                zero_point: qcnn_core::format::INPUT_ZERO_POINT,
            };
        }
        let zero = (255.0 * f64::from(self.mean)).round() - 128.0;
        QuantParams {
            scale: (1.0 / (255.0 * f64::from(self.std))) as f32,
            zero_point: zero.clamp(-128.0, 127.0) as i8,
        }
    }
}

#[derive(Clone, Debug)]
pub struct FloatTensor {
    /// The ONNX value it holds (the last name, when Flatten or Identity renamed it).
    pub name: String,
    pub shape: [usize; 3],
}

impl FloatTensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug)]
pub struct FloatNode {
    /// The ONNX node(s) it came from, for reports and errors.
    pub name: String,
    pub op: FloatOp,
    pub inputs: Vec<usize>,
    pub output: usize,
}

/// A 2-D window: kernel and stride (h, w), pads (top, left, bottom, right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pads: [usize; 4],
}

/// A fused activation: the output is clamped to `min..=max` (ReLU: 0..inf, ReLU6: 0..6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    pub min: f32,
    pub max: f32,
}

impl Clamp {
    pub const NONE: Clamp = Clamp {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };

    pub fn is_none(&self) -> bool {
        *self == Clamp::NONE
    }

    /// Both clamps applied one after the other.
    pub fn and(self, other: Clamp) -> Clamp {
        Clamp {
            min: self.min.max(other.min),
            max: self.max.min(other.max).max(self.min.max(other.min)),
        }
    }

    pub fn apply(&self, v: f32) -> f32 {
        v.max(self.min).min(self.max)
    }
}

#[derive(Clone, Debug)]
pub enum FloatOp {
    /// OIHW weights with I = in/groups.
    Conv {
        weight: Vec<f32>,
        bias: Vec<f32>,
        window: Window,
        groups: usize,
        clamp: Clamp,
    },
    MaxPool(Window),
    AveragePool {
        window: Window,
        count_include_pad: bool,
    },
    GlobalAveragePool,
    Add {
        clamp: Clamp,
    },
    /// `[out][in]` weights over the flattened input.
    Gemm {
        weight: Vec<f32>,
        bias: Vec<f32>,
        clamp: Clamp,
    },
}

impl FloatOp {
    pub fn name(&self) -> String {
        let clamp = |c: &Clamp| match (c.min, c.max) {
            _ if c.is_none() => String::new(),
            (0.0, f32::INFINITY) => "+relu".into(),
            (0.0, 6.0) => "+relu6".into(),
            (lo, hi) => format!("+clip({lo},{hi})"),
        };
        match self {
            FloatOp::Conv {
                window,
                groups,
                clamp: c,
                ..
            } => format!(
                "conv{}x{}/{}{}{}",
                window.kernel[0],
                window.kernel[1],
                window.stride[0],
                if *groups > 1 {
                    format!(" groups {groups}")
                } else {
                    String::new()
                },
                clamp(c)
            ),
            FloatOp::MaxPool(w) => format!("maxpool{}x{}", w.kernel[0], w.kernel[1]),
            FloatOp::AveragePool { window: w, .. } => {
                format!("avgpool{}x{}", w.kernel[0], w.kernel[1])
            }
            FloatOp::GlobalAveragePool => "globalavgpool".into(),
            FloatOp::Add { clamp: c } => format!("add{}", clamp(c)),
            FloatOp::Gemm { clamp: c, .. } => format!("gemm{}", clamp(c)),
        }
    }

    /// Whether the output keeps its input's quantization (pools move or average int8 values).
    pub fn keeps_quantization(&self) -> bool {
        matches!(
            self,
            FloatOp::MaxPool(_) | FloatOp::AveragePool { .. } | FloatOp::GlobalAveragePool
        )
    }

    pub fn clamp(&self) -> Clamp {
        match self {
            FloatOp::Conv { clamp, .. } | FloatOp::Add { clamp } | FloatOp::Gemm { clamp, .. } => {
                *clamp
            }
            _ => Clamp::NONE,
        }
    }
}

/// The output length of a window along one axis, or `None` if the window does not fit.
pub use qcnn_core::shape::window_len;
