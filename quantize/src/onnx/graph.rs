//! The graph walk: ONNX nodes, in their (topological) order, onto a [`FloatGraph`] for the
//! graph engine. Residual branches, grouped and depthwise Conv, any kernel, stride and pads,
//! Max/AveragePool, GlobalAveragePool and ReduceMean over H,W, Add of two tensors, and
//! Relu/Clip fused into the node that produces their input when nothing else reads it.
//! BatchNormalization (and a constant Add) fold into a Conv or Gemm before them, else a
//! BatchNormalization becomes a per-channel affine op (a depthwise 1×1 Conv). Anything else
//! is an error naming the node.

use std::collections::{BTreeMap, HashMap};

use qcnn_core::format::QuantParams;

use super::constants::{Constants, as_floats, broadcast_per_output, transpose};
use super::fold::Weighted;
use super::node::Node;
use super::report::ImportReport;
use super::tensor::{Constant, DataType, Values};
use crate::graph::{
    Clamp, FloatGraph, FloatNode, FloatOp, FloatTensor, InputNorm, Window, window_len,
};

const SUPPORTED: &str = "Conv, BatchNormalization, Relu, Clip, MaxPool, AveragePool, \
                         GlobalAveragePool, ReduceMean (over H and W), Add, Flatten, Reshape (to \
                         2-D), Gemm, MatMul, Dropout, Identity, Constant, QuantizeLinear and \
                         DequantizeLinear (QDQ models) and a trailing Softmax";

pub struct GraphWalk {
    /// Initializers and `Constant` nodes.
    pub constants: Constants,
    pub report: ImportReport,
    pub graph: FloatGraph,
    /// The ONNX operator each graph node came from, for the report.
    ops: Vec<String>,
    /// ONNX value name → tensor index.
    values: HashMap<String, usize>,
    /// How many nodes not walked yet (and the graph output) read each ONNX value.
    uses: HashMap<String, usize>,
    /// The node that writes each tensor (none for the image).
    producer: Vec<Option<usize>>,
    pub output_name: String,
    /// QuantizeLinear outputs (int8 values in a QDQ model): the tensor they quantize and the
    /// quantization. Only a DequantizeLinear may read them.
    quantized: HashMap<String, (usize, QuantParams)>,
}

impl GraphWalk {
    pub fn new(
        constants: Constants,
        report: ImportReport,
        name: String,
        input: (String, [usize; 3]),
        uses: HashMap<String, usize>,
        output_name: String,
    ) -> GraphWalk {
        let mut values = HashMap::new();
        values.insert(input.0.clone(), 0);
        GraphWalk {
            constants,
            report,
            ops: Vec::new(),
            graph: FloatGraph {
                name,
                tensors: vec![FloatTensor {
                    name: input.0,
                    shape: input.1,
                }],
                nodes: Vec::new(),
                output: 0,
                input_norm: InputNorm::PIXEL_OVER_255,
                file_quant: BTreeMap::new(),
            },
            values,
            uses,
            producer: vec![None],
            output_name,
            quantized: HashMap::new(),
        }
    }

    /// The tensor an ONNX value names.
    pub fn value(&self, name: &str) -> Option<&usize> {
        self.values.get(name)
    }

    /// Node `p` as the report names it: its ONNX operator and name.
    fn described(&self, p: usize) -> String {
        format!("{} {}", self.ops[p], self.graph.nodes[p].name)
    }

    /// The tensor an input names.
    fn tensor(&self, node: &Node, i: usize) -> Result<usize, String> {
        let name = node.input(i).ok_or_else(|| format!("has no input {i}"))?;
        if self.quantized.contains_key(name) {
            return Err(format!(
                "reads {name}, the integer output of a QuantizeLinear; in the QDQ models qcnn \
                 reads, only a DequantizeLinear reads it"
            ));
        }
        self.values.get(name).copied().ok_or_else(|| {
            if self.constants.contains(name) {
                format!(
                    "computes on the constant {name} only; fold such nodes first (for example \
                     with onnxsim)"
                )
            } else {
                format!("reads {name}, which no earlier node writes")
            }
        })
    }

    fn shape(&self, t: usize) -> [usize; 3] {
        self.graph.tensors[t].shape
    }

    fn push(
        &mut self,
        node: &Node,
        op: FloatOp,
        inputs: Vec<usize>,
        shape: [usize; 3],
    ) -> Result<(), String> {
        let output = node.output(0).ok_or("has no output")?.to_owned();
        if shape.contains(&0) {
            return Err(format!("its output {shape:?} would be empty"));
        }
        let t = self.graph.tensors.len();
        self.graph.tensors.push(FloatTensor {
            name: output.clone(),
            shape,
        });
        self.producer.push(Some(self.graph.nodes.len()));
        self.ops.push(node.op().to_owned());
        self.graph.nodes.push(FloatNode {
            name: node.label.clone(),
            op,
            inputs,
            output: t,
        });
        self.values.insert(output, t);
        Ok(())
    }

    /// The output names the same tensor as the input (Flatten, Identity, ...).
    fn alias(&mut self, node: &Node, t: usize) -> Result<(), String> {
        let output = node.output(0).ok_or("has no output")?.to_owned();
        self.values.insert(output, t);
        Ok(())
    }

    /// The node writing input 0's tensor, if this node is its only reader (so it can be
    /// changed in place) and its output is not the graph's.
    fn sole_producer(&self, node: &Node) -> Option<usize> {
        self.sole_producer_of(node, 0)
    }

    /// [`Self::sole_producer`] of input `i`.
    fn sole_producer_of(&self, node: &Node, i: usize) -> Option<usize> {
        let t = *self.values.get(node.input(i)?)?;
        let p = self.producer.get(t).copied().flatten()?;
        // Every name of the tensor (Flatten, Identity and folds give it more than one): this
        // node must be the last reader of all of them, and none may be the graph's output.
        let mut readers = 0;
        for (name, _) in self.values.iter().filter(|(_, v)| **v == t) {
            if *name == self.output_name {
                return None;
            }
            readers += self.uses.get(name).copied().unwrap_or(0);
        }
        (readers == 1).then_some(p)
    }

    /// Whether no node still to come reads tensor `t`, under any of its names, and it is not
    /// the graph's output.
    fn unread(&self, t: usize) -> bool {
        self.values
            .iter()
            .filter(|(_, v)| **v == t)
            .all(|(name, _)| {
                *name != self.output_name && self.uses.get(name).copied().unwrap_or(0) == 0
            })
    }

    /// One node walked: its inputs have one reader fewer to come.
    fn consumed(&mut self, node: &Node) {
        for name in &node.proto.input {
            if let Some(n) = self.uses.get_mut(name) {
                *n = n.saturating_sub(1);
            }
        }
    }

    pub fn node(&mut self, node: &Node) -> Result<(), String> {
        if node.op() == "Constant" {
            return self.constants.constant_node(node);
        }
        if !matches!(node.proto.domain.as_str(), "" | "ai.onnx") {
            return Err(format!(
                "operator of domain {} is not supported; qcnn imports {SUPPORTED}",
                node.proto.domain
            ));
        }
        if node.op() == "DequantizeLinear"
            && node.input(0).is_some_and(|n| self.constants.contains(n))
        {
            return self.dequantize_constant(node);
        }
        let walked = self.walk(node);
        self.consumed(node);
        walked
    }

    fn walk(&mut self, node: &Node) -> Result<(), String> {
        match node.op() {
            "Conv" => self.conv(node),
            "BatchNormalization" => self.batch_norm(node),
            "Relu" => {
                node.only_attributes(&[])?;
                self.activation(
                    node,
                    Clamp {
                        min: 0.0,
                        max: f32::INFINITY,
                    },
                )
            }
            "Clip" => self.clip(node),
            "MaxPool" | "AveragePool" => self.pool(node),
            "GlobalAveragePool" => {
                node.only_attributes(&[])?;
                self.global_average(node)
            }
            "ReduceMean" => self.reduce_mean(node),
            "Add" => self.add(node),
            "Flatten" => {
                node.only_attributes(&["axis"])?;
                let axis = node.int("axis")?.unwrap_or(1);
                if axis != 1 {
                    return Err(format!(
                        "axis {axis}: only a flatten to (batch, features) is supported (axis 1)"
                    ));
                }
                let t = self.tensor(node, 0)?;
                self.alias(node, t)
            }
            "Reshape" => self.reshape(node),
            "Gemm" => self.gemm(node),
            "MatMul" => self.mat_mul(node),
            "Dropout" | "Identity" => {
                let t = self.tensor(node, 0)?;
                self.report.dropped.push(format!(
                    "{} {} (the identity at inference)",
                    node.op(),
                    node.label
                ));
                self.alias(node, t)
            }
            "QuantizeLinear" => self.quantize_linear(node),
            "DequantizeLinear" => self.dequantize_linear(node),
            "QLinearConv"
            | "QLinearMatMul"
            | "QLinearAdd"
            | "QLinearAveragePool"
            | "QLinearGlobalAveragePool"
            | "ConvInteger"
            | "MatMulInteger" => Err(format!(
                "{} is a QOperator-format integer operator; qcnn reads QDQ models (float \
                 operators between QuantizeLinear and DequantizeLinear): quantize with \
                 onnxruntime's QuantFormat.QDQ, or give the float model",
                node.op()
            )),
            "Softmax" => {
                node.only_attributes(&["axis"])?;
                let axis = node.int("axis")?.unwrap_or(-1);
                if axis != 1 && axis != -1 {
                    return Err(format!(
                        "axis {axis}: only a softmax over the classes (axis 1) is dropped"
                    ));
                }
                let t = self.tensor(node, 0)?;
                if node.output(0) != Some(self.output_name.as_str()) {
                    return Err("only a Softmax at the very end of the graph can be dropped".into());
                }
                self.report.dropped.push(format!(
                    "Softmax {}: the model's outputs are the logits before it (the same argmax)",
                    node.label
                ));
                self.alias(node, t)
            }
            other => Err(format!(
                "operator {other} is not supported; qcnn imports {SUPPORTED}"
            )),
        }
    }

    /// A QuantizeLinear's or DequantizeLinear's scale (input 1) and zero point (input 2, 0
    /// when absent), and the integer type it quantizes to.
    fn qdq_params(&self, node: &Node) -> Result<(Vec<f32>, Vec<i64>, DataType), String> {
        node.only_attributes(&["axis"])?;
        let scale = self.constants.input(node, 1, "scale")?;
        let scales = as_floats(scale, "scale")?.to_vec();
        if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("its scale {s} is not a positive number"));
        }
        let (zero_points, data_type) = match self.constants.optional_input(node, 2, "zero point")? {
            Some(z) => {
                let values = z.ints().ok_or("its zero point is not an integer tensor")?;
                if values.len() != scales.len() {
                    return Err(format!(
                        "its zero point has {} values and its scale {}",
                        values.len(),
                        scales.len()
                    ));
                }
                (values.to_vec(), z.data_type)
            }
            // ONNX's default: uint8, zero point 0.
            None => (vec![0; scales.len()], DataType::Uint8),
        };
        Ok((scales, zero_points, data_type))
    }

    /// An activation's quantization in qcnn's scheme: one int8 scale and zero point. A uint8
    /// one maps exactly (both the values and the zero point shift by 128).
    fn activation_quant(&self, node: &Node) -> Result<QuantParams, String> {
        let (scales, zero_points, data_type) = self.qdq_params(node)?;
        if scales.len() != 1 {
            return Err(format!(
                "quantizes an activation per channel ({} scales); qcnn's activations have one \
                 scale and zero point per tensor (quantize activations per tensor)",
                scales.len()
            ));
        }
        let zero_point = match data_type {
            DataType::Int8 => zero_points[0],
            DataType::Uint8 => zero_points[0] - 128,
            other => {
                return Err(format!(
                    "quantizes an activation to {}; qcnn's activations are 8-bit (quantize \
                     with activation_type QInt8 or QUInt8)",
                    other.as_str_name()
                ));
            }
        };
        Ok(QuantParams {
            scale: scales[0],
            zero_point: i8::try_from(zero_point)
                .map_err(|_| format!("its zero point {zero_point} is outside the 8-bit range"))?,
        })
    }

    /// An activation's QuantizeLinear: the int8 range it saturates to is a clamp on the float
    /// tensor (onnxruntime drops a Relu before it and lets the zero point clip at 0), fused
    /// like a Relu; the scale and zero point replace calibration for that tensor.
    fn quantize_linear(&mut self, node: &Node) -> Result<(), String> {
        let q = self.activation_quant(node)?;
        let x = self.tensor(node, 0)?;
        let output = node.output(0).ok_or("has no output")?.to_owned();
        let keeps = self
            .producer
            .get(x)
            .copied()
            .flatten()
            .is_some_and(|p| self.graph.nodes[p].op.keeps_quantization());
        if x == 0 {
            self.report.qdq.push(format!(
                "QuantizeLinear {} of the image not used: the engine reads the exact u8 pixel, \
                 quantized by config.yaml's preprocess",
                node.label
            ));
            self.values.insert(output.clone(), x);
        } else if keeps {
            // A pool's output keeps its input's quantization in qcnn; the values stay in range.
            self.values.insert(output.clone(), x);
        } else {
            let (lo, hi) = (
                f64::from(-128 - i32::from(q.zero_point)) * f64::from(q.scale),
                f64::from(127 - i32::from(q.zero_point)) * f64::from(q.scale),
            );
            self.activation(
                node,
                Clamp {
                    min: lo as f32,
                    max: hi as f32,
                },
            )?;
        }
        let t = self.values[&output];
        self.values.remove(&output);
        if t != 0 && !keeps {
            self.graph.file_quant.insert(t, q);
        }
        self.quantized.insert(output, (t, q));
        Ok(())
    }

    /// The DequantizeLinear after an activation's QuantizeLinear: the same tensor again.
    fn dequantize_linear(&mut self, node: &Node) -> Result<(), String> {
        let name = node.input(0).ok_or("has no input")?;
        let Some(&(t, q)) = self.quantized.get(name) else {
            return Err(format!(
                "reads {name}, which is neither a constant nor a QuantizeLinear output; qcnn \
                 reads QDQ pairs (QuantizeLinear then DequantizeLinear)"
            ));
        };
        let own = self.activation_quant(node)?;
        if own != q {
            return Err(format!(
                "dequantizes with scale {} and zero point {}, its QuantizeLinear with {} and {}; \
                 requantizing between the two is not supported",
                own.scale, own.zero_point, q.scale, q.zero_point
            ));
        }
        self.alias(node, t)
    }

    /// A DequantizeLinear of an integer initializer (weights, biases): the float constant it
    /// gives, `(q − zero_point)·scale` in f32 as onnxruntime computes it, per tensor or along
    /// `axis`. qcnn quantizes it again per output channel, symmetric: for onnxruntime's
    /// symmetric per-channel int8 weights this gives back the file's integers and scales.
    fn dequantize_constant(&mut self, node: &Node) -> Result<(), String> {
        let (scales, zero_points, _) = self.qdq_params(node)?;
        let c = self.constants.input(node, 0, "integers")?;
        let ints = c.ints().ok_or("dequantizes a tensor that is not integer")?;
        if !matches!(
            c.data_type,
            DataType::Int8 | DataType::Uint8 | DataType::Int32
        ) {
            return Err(format!(
                "dequantizes a {} tensor; qcnn reads int8 and uint8 weights and int32 biases",
                c.data_type.as_str_name()
            ));
        }
        let dims = c.dims.clone();
        let stride_and_len = if scales.len() == 1 {
            None
        } else {
            let rank = dims.len() as i64;
            let axis = node.int("axis")?.unwrap_or(1);
            let axis = usize::try_from(if axis < 0 { axis + rank } else { axis })
                .ok()
                .filter(|&a| a < dims.len())
                .ok_or_else(|| format!("axis {axis} does not fit a tensor of shape {dims:?}"))?;
            if dims[axis] != scales.len() {
                return Err(format!(
                    "has {} scales along axis {axis} of a tensor of shape {dims:?}",
                    scales.len()
                ));
            }
            Some((dims[axis + 1..].iter().product::<usize>(), dims[axis]))
        };
        let values: Vec<f32> = ints
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let k = stride_and_len.map_or(0, |(stride, len)| (i / stride.max(1)) % len);
                (q - zero_points[k]) as f32 * scales[k]
            })
            .collect();
        let output = node.output(0).ok_or("has no output")?;
        self.report.qdq.push(format!(
            "{} {dims:?} {} read through DequantizeLinear {}",
            c.data_type.as_str_name(),
            node.input(0).unwrap_or_default(),
            node.label
        ));
        self.constants.insert(
            output.to_owned(),
            Constant {
                dims,
                values: Values::Float(values),
                data_type: DataType::Float,
            },
        );
        Ok(())
    }

    fn window(node: &Node, kernel: [usize; 2]) -> Result<Window, String> {
        let auto_pad = node.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
        if auto_pad != "NOTSET" && auto_pad != "VALID" {
            return Err(format!(
                "auto_pad {auto_pad} is not supported; export with explicit pads"
            ));
        }
        let positive = |name: &str, values: Vec<i64>, n: usize| -> Result<Vec<usize>, String> {
            if values.len() != n {
                return Err(format!(
                    "{name} {values:?} must hold {n} values (a 2-D operator)"
                ));
            }
            values
                .iter()
                .map(|&v| usize::try_from(v).map_err(|_| format!("{name} {values:?} is negative")))
                .collect()
        };
        let strides = positive("strides", node.ints("strides")?.unwrap_or(vec![1, 1]), 2)?;
        if strides.contains(&0) {
            return Err("a stride is 0".into());
        }
        let pads = positive("pads", node.ints("pads")?.unwrap_or(vec![0; 4]), 4)?;
        if let Some(dilations) = node.ints("dilations")?
            && dilations.iter().any(|&d| d != 1)
        {
            return Err(format!(
                "dilations {dilations:?} are not supported (only 1)"
            ));
        }
        if pads
            .iter()
            .zip([kernel[0], kernel[1], kernel[0], kernel[1]])
            .any(|(&p, k)| p >= k)
        {
            return Err(format!(
                "pads {pads:?} are not all smaller than the kernel {kernel:?}"
            ));
        }
        Ok(Window {
            kernel,
            stride: [strides[0], strides[1]],
            pads: [pads[0], pads[1], pads[2], pads[3]],
        })
    }

    fn windowed(&self, window: &Window, [c, h, w]: [usize; 3]) -> Result<[usize; 3], String> {
        let oh = window_len(
            h,
            window.kernel[0],
            window.stride[0],
            window.pads[0],
            window.pads[2],
        );
        let ow = window_len(
            w,
            window.kernel[1],
            window.stride[1],
            window.pads[1],
            window.pads[3],
        );
        match (oh, ow) {
            (Some(oh), Some(ow)) => Ok([c, oh, ow]),
            _ => Err(format!(
                "window {:?} does not fit the {h}x{w} input",
                window.kernel
            )),
        }
    }

    fn conv(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ])?;
        let x = self.tensor(node, 0)?;
        let [c, h, w] = self.shape(x);
        let weight = self.constants.input(node, 1, "weight")?;
        let &[out, per_group, kh, kw] = &weight.dims[..] else {
            return Err(format!(
                "weight has shape {:?}, expected 4-D OIHW",
                weight.dims
            ));
        };
        if let Some(kernel) = node.ints("kernel_shape")?
            && kernel != [kh as i64, kw as i64]
        {
            return Err(format!(
                "kernel_shape {kernel:?} does not match the weight's {kh}x{kw}"
            ));
        }
        let group = node.int("group")?.unwrap_or(1);
        let groups = usize::try_from(group)
            .ok()
            .filter(|&g| {
                g > 0 && c.is_multiple_of(g) && out.is_multiple_of(g) && c / g == per_group
            })
            .ok_or_else(|| {
                format!(
                    "group {group} does not fit {c} input channels and a weight of shape {:?} \
                     (O, I/group, kH, kW)",
                    weight.dims
                )
            })?;
        let window = Self::window(node, [kh, kw])?;
        let weight_values = as_floats(weight, "weight")?.to_vec();
        let bias = match self.constants.optional_input(node, 2, "bias")? {
            Some(b) if b.value_count() == out => as_floats(b, "bias")?.to_vec(),
            Some(b) => return Err(format!("bias has shape {:?}, expected [{out}]", b.dims)),
            None => vec![0.0; out],
        };
        let [_, oh, ow] = self.windowed(&window, [c, h, w])?;
        self.push(
            node,
            FloatOp::Conv {
                weight: weight_values,
                bias,
                window,
                groups,
                clamp: Clamp::NONE,
            },
            vec![x],
            [out, oh, ow],
        )
    }

    fn batch_norm(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&["epsilon", "momentum", "training_mode", "spatial"])?;
        if node.int("training_mode")?.unwrap_or(0) != 0 || node.output(1).is_some() {
            return Err("training mode is not supported; export the model in eval mode".into());
        }
        if node.int("spatial")?.unwrap_or(1) != 1 {
            return Err("spatial 0 is not supported".into());
        }
        let epsilon = node.float("epsilon")?.unwrap_or(1e-5);
        let x = self.tensor(node, 0)?;
        let channels = self.shape(x)[0];
        let mut parameters = Vec::new();
        for (i, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
            let c = self.constants.input(node, i, what)?;
            if c.value_count() != channels {
                return Err(format!(
                    "its {what} has shape {:?}, expected [{channels}] (one per channel)",
                    c.dims
                ));
            }
            parameters.push(as_floats(c, what)?.to_vec());
        }
        let fold = |weighted: &mut Weighted| {
            weighted.fold_batch_norm(
                &parameters[0],
                &parameters[1],
                &parameters[2],
                &parameters[3],
                epsilon,
            )
        };
        if let Some(p) = self.sole_producer(node)
            && let FloatOp::Conv {
                weight,
                bias,
                clamp,
                ..
            }
            | FloatOp::Gemm {
                weight,
                bias,
                clamp,
                ..
            } = &mut self.graph.nodes[p].op
            && clamp.is_none()
        {
            let mut weighted = Weighted {
                weight_shape: vec![bias.len(), weight.len() / bias.len().max(1)],
                weight: std::mem::take(weight),
                bias: std::mem::take(bias),
            };
            let folded = fold(&mut weighted);
            (*weight, *bias) = (weighted.weight, weighted.bias);
            folded?;
            let into = self.described(p);
            self.report
                .folded
                .push(format!("BatchNormalization {} into {into}", node.label));
            return self.alias(node, x);
        }
        // Nothing to fold into: a per-channel affine op, as a depthwise 1×1 Conv.
        let mut weighted = Weighted {
            weight_shape: vec![channels, 1],
            weight: vec![1.0; channels],
            bias: vec![0.0; channels],
        };
        fold(&mut weighted)?;
        let shape = self.shape(x);
        self.push(
            node,
            FloatOp::Conv {
                weight: weighted.weight,
                bias: weighted.bias,
                window: Window {
                    kernel: [1, 1],
                    stride: [1, 1],
                    pads: [0; 4],
                },
                groups: channels,
                clamp: Clamp::NONE,
            },
            vec![x],
            shape,
        )
    }

    /// Relu or Clip: fused into the producer when this is its only reader, else a depthwise
    /// 1×1 identity Conv that clamps.
    fn activation(&mut self, node: &Node, clamp: Clamp) -> Result<(), String> {
        let x = self.tensor(node, 0)?;
        if let Some(p) = self.sole_producer(node)
            && let FloatOp::Conv { clamp: c, .. }
            | FloatOp::Gemm { clamp: c, .. }
            | FloatOp::Add { clamp: c } = &mut self.graph.nodes[p].op
        {
            *c = c.and(clamp);
            return self.alias(node, x);
        }
        if let Some(pool) = self.sole_producer(node)
            && let FloatOp::MaxPool(_) = self.graph.nodes[pool].op
            && let before = self.graph.nodes[pool].inputs[0]
            && self.unread(before)
            && let Some(p) = self.producer[before]
            && let FloatOp::Conv { clamp: c, .. }
            | FloatOp::Gemm { clamp: c, .. }
            | FloatOp::Add { clamp: c } = &mut self.graph.nodes[p].op
        {
            // Max commutes with a clamp (both are monotone, and padding never wins the max),
            // so the clamp fuses into the node before the MaxPool.
            *c = c.and(clamp);
            let why = if node.op() == "Relu" {
                "ReLU"
            } else {
                "clamping"
            };
            self.report.moved.push(format!(
                "{} {} before MaxPool {} (the same result: max commutes with {why})",
                node.op(),
                node.label,
                self.graph.nodes[pool].name
            ));
            return self.alias(node, x);
        }
        let shape = self.shape(x);
        let channels = shape[0];
        self.push(
            node,
            FloatOp::Conv {
                weight: vec![1.0; channels],
                bias: vec![0.0; channels],
                window: Window {
                    kernel: [1, 1],
                    stride: [1, 1],
                    pads: [0; 4],
                },
                groups: channels,
                clamp,
            },
            vec![x],
            shape,
        )
    }

    fn clip(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&[])?;
        let bound = |i: usize, what: &str, default: f32| -> Result<f32, String> {
            match self.constants.optional_input(node, i, what)? {
                Some(c) => match as_floats(c, what)? {
                    [v] => Ok(*v),
                    _ => Err(format!("its {what} is not a scalar")),
                },
                None => Ok(default),
            }
        };
        let min = bound(1, "min", f32::NEG_INFINITY)?;
        let max = bound(2, "max", f32::INFINITY)?;
        if min > max {
            return Err(format!("min {min} exceeds max {max}"));
        }
        self.activation(node, Clamp { min, max })
    }

    fn pool(&mut self, node: &Node) -> Result<(), String> {
        let average = node.op() == "AveragePool";
        node.only_attributes(if average {
            &[
                "auto_pad",
                "ceil_mode",
                "count_include_pad",
                "dilations",
                "kernel_shape",
                "pads",
                "strides",
            ]
        } else {
            &[
                "auto_pad",
                "ceil_mode",
                "dilations",
                "kernel_shape",
                "pads",
                "storage_order",
                "strides",
            ]
        })?;
        if node.output(1).is_some() {
            return Err("the indices output is not supported".into());
        }
        if node.int("storage_order")?.unwrap_or(0) != 0 {
            return Err("storage_order 1 is not supported".into());
        }
        let kernel = node.ints("kernel_shape")?.ok_or("has no kernel_shape")?;
        let [kh, kw] = kernel[..] else {
            return Err(format!("kernel_shape {kernel:?} must hold two values"));
        };
        let size = |v: i64| usize::try_from(v).ok().filter(|&v| v > 0);
        let (Some(kh), Some(kw)) = (size(kh), size(kw)) else {
            return Err(format!("kernel_shape {kernel:?} must be positive"));
        };
        let window = Self::window(node, [kh, kw])?;
        let x = self.tensor(node, 0)?;
        let shape = self.windowed(&window, self.shape(x))?;
        if node.int("ceil_mode")?.unwrap_or(0) != 0 {
            let [_, h, w] = self.shape(x);
            let ceil =
                |n: usize, k: usize, s: usize, a: usize, b: usize| (n + a + b - k).div_ceil(s) + 1;
            let (w0, w1) = (&window.pads, &window.stride);
            if ceil(h, kh, w1[0], w0[0], w0[2]) != shape[1]
                || ceil(w, kw, w1[1], w0[1], w0[3]) != shape[2]
            {
                return Err(
                    "ceil_mode 1 changes the output size here; only floor is supported".into(),
                );
            }
        }
        let op = if average {
            FloatOp::AveragePool {
                window,
                count_include_pad: node.int("count_include_pad")?.unwrap_or(0) != 0,
            }
        } else {
            FloatOp::MaxPool(window)
        };
        self.push(node, op, vec![x], shape)
    }

    fn global_average(&mut self, node: &Node) -> Result<(), String> {
        let x = self.tensor(node, 0)?;
        let [c, _, _] = self.shape(x);
        self.push(node, FloatOp::GlobalAveragePool, vec![x], [c, 1, 1])
    }

    fn reduce_mean(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&["axes", "keepdims", "noop_with_empty_axes"])?;
        let axes = match node.ints("axes")? {
            Some(axes) => axes,
            None => match self.constants.optional_input(node, 1, "axes")? {
                Some(c) => c.ints().ok_or("its axes are not integers")?.to_vec(),
                None => return Err("has no axes; only a mean over H and W is supported".into()),
            },
        };
        let mut sorted: Vec<i64> = axes
            .iter()
            .map(|&a| if a < 0 { a + 4 } else { a })
            .collect();
        sorted.sort_unstable();
        if sorted != [2, 3] {
            return Err(format!(
                "axes {axes:?}: only a mean over H and W (axes 2 and 3) is supported"
            ));
        }
        self.global_average(node)
    }

    fn add(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&[])?;
        let (a, b) = (
            node.input(0).ok_or("has no input 0")?,
            node.input(1).ok_or("has no input 1")?,
        );
        let constant = [a, b].into_iter().position(|n| self.constants.contains(n));
        if let Some(i) = constant {
            // A constant added to a Conv or Gemm output is its bias.
            let addend = self.constants.input(node, i, "addend")?;
            let addend_dims = addend.dims.clone();
            let values = as_floats(addend, "addend")?.to_vec();
            let data = if i == 0 { 1 } else { 0 };
            let x = self.tensor(node, data)?;
            let p = self
                .producer
                .get(x)
                .copied()
                .flatten()
                .filter(|_| self.sole_producer_of(node, data).is_some());
            // A scalar, or one value per output channel: `[C, 1, 1]` for a Conv's N×C×H×W
            // output (ONNX broadcasts a `[C]` along W), `[out]` for a Gemm's.
            let per_output = |op: &FloatOp, outputs: usize| {
                let dims: &[usize] = match op {
                    FloatOp::Conv { .. } => &[outputs, 1, 1],
                    _ => &[outputs],
                };
                broadcast_per_output(&addend_dims, outputs, dims).is_some()
            };
            if let Some(p) = p
                && let op = &self.graph.nodes[p].op
                && per_output(op, self.shape(x)[0])
                && let FloatOp::Conv { bias, clamp, .. } | FloatOp::Gemm { bias, clamp, .. } =
                    &mut self.graph.nodes[p].op
                && clamp.is_none()
            {
                let mut weighted = Weighted {
                    weight_shape: vec![bias.len()],
                    weight: Vec::new(),
                    bias: std::mem::take(bias),
                };
                let added = weighted.add_to_bias(&values);
                *bias = weighted.bias;
                added?;
                let into = self.described(p);
                self.report
                    .folded
                    .push(format!("Add {} into the bias of {into}", node.label));
                return self.alias(node, x);
            }
            return Err(format!(
                "adds a constant of shape {addend_dims:?} to something other than a Conv or Gemm \
                 output it alone reads, or not one value per channel; only such an Add folds \
                 into a bias"
            ));
        }
        let (x, y) = (self.tensor(node, 0)?, self.tensor(node, 1)?);
        if self.shape(x) != self.shape(y) {
            return Err(format!(
                "adds tensors of shapes {:?} and {:?}; only equal shapes (no broadcasting) are \
                 supported",
                self.shape(x),
                self.shape(y)
            ));
        }
        let shape = self.shape(x);
        self.push(node, FloatOp::Add { clamp: Clamp::NONE }, vec![x, y], shape)
    }

    fn reshape(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&["allowzero"])?;
        let x = self.tensor(node, 0)?;
        let features = self.graph.tensors[x].len();
        let target = self.constants.input(node, 1, "shape")?;
        let target = target.ints().ok_or("its shape is not integers")?;
        let allow_zero = node.int("allowzero")?.unwrap_or(0) != 0;
        let all = i64::try_from(features).unwrap_or(-1);
        // The batch dimension copied (0), 1, or inferred (-1) from every feature given.
        let to_2d = match *target {
            [batch, rest] => {
                (((batch == 0 && !allow_zero) || batch == 1) && (rest == -1 || rest == all))
                    || (batch == -1 && rest == all)
            }
            _ => false,
        };
        if !to_2d {
            return Err(format!(
                "shape {target:?}: only a reshape to 2-D (batch, {features}) is supported"
            ));
        }
        self.alias(node, x)
    }

    fn gemm(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&["alpha", "beta", "transA", "transB"])?;
        if node.int("transA")?.unwrap_or(0) != 0 {
            return Err("transA 1 is not supported (the input is the left operand as is)".into());
        }
        let alpha = node.float("alpha")?.unwrap_or(1.0);
        let beta = node.float("beta")?.unwrap_or(1.0);
        let b = self.constants.input(node, 1, "weight")?;
        let &[rows, columns] = &b.dims[..] else {
            return Err(format!("weight has shape {:?}, expected 2-D", b.dims));
        };
        let values = as_floats(b, "weight")?;
        let trans_b = node.int("transB")?.unwrap_or(0) != 0;
        let (out, inputs) = if trans_b {
            (rows, columns)
        } else {
            (columns, rows)
        };
        let mut weight = if trans_b {
            values.to_vec()
        } else {
            transpose(values, rows, columns)
        };
        if alpha != 1.0 {
            weight
                .iter_mut()
                .for_each(|w| *w = (f64::from(*w) * f64::from(alpha)) as f32);
        }
        let bias = match self.constants.optional_input(node, 2, "bias")? {
            Some(c) => {
                let values = as_floats(c, "bias")?;
                let per_output = broadcast_per_output(&c.dims, out, &[out]).ok_or_else(|| {
                    format!(
                        "bias has shape {:?}, which does not broadcast to [{out}]",
                        c.dims
                    )
                })?;
                (0..out)
                    .map(|o| {
                        let v = if per_output { values[o] } else { values[0] };
                        (f64::from(v) * f64::from(beta)) as f32
                    })
                    .collect()
            }
            None => vec![0.0; out],
        };
        self.linear(node, weight, out, inputs, bias)
    }

    fn mat_mul(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&[])?;
        let b = self.constants.input(node, 1, "right operand")?;
        let &[inputs, out] = &b.dims[..] else {
            return Err(format!(
                "right operand has shape {:?}, expected 2-D",
                b.dims
            ));
        };
        let weight = transpose(as_floats(b, "right operand")?, inputs, out);
        self.linear(node, weight, out, inputs, vec![0.0; out])
    }

    fn linear(
        &mut self,
        node: &Node,
        weight: Vec<f32>,
        out: usize,
        inputs: usize,
        bias: Vec<f32>,
    ) -> Result<(), String> {
        let x = self.tensor(node, 0)?;
        let features = self.graph.tensors[x].len();
        let [_, h, w] = self.shape(x);
        if h * w != 1 && !self.is_flattened(node) {
            return Err(format!(
                "needs a 2-D (batch, features) input, but gets an N×{:?} tensor; add a Flatten \
                 before it",
                self.shape(x)
            ));
        }
        if inputs != features {
            return Err(format!(
                "weight takes {inputs} features, but its input has {features}"
            ));
        }
        self.push(
            node,
            FloatOp::Gemm {
                weight,
                bias,
                clamp: Clamp::NONE,
            },
            vec![x],
            [out, 1, 1],
        )
    }

    /// Whether input 0 is a Flatten's or Reshape's output (not the map itself).
    fn is_flattened(&self, node: &Node) -> bool {
        let Some(name) = node.input(0) else {
            return false;
        };
        let t = self.values.get(name).copied();
        t.is_some_and(|t| self.graph.tensors[t].name != name)
    }
}

/// Every ONNX value name read by a node, counted, plus the graph output once.
pub fn count_uses<'a>(
    nodes: impl Iterator<Item = &'a str>,
    output: &str,
) -> HashMap<String, usize> {
    let mut uses = HashMap::new();
    for name in nodes {
        *uses.entry(name.to_owned()).or_insert(0) += 1;
    }
    *uses.entry(output.to_owned()).or_insert(0) += 1;
    uses
}
