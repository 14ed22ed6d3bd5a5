//! The graph walk: ONNX nodes, in their (topological) order, mapped onto the engine's layer
//! sequence. The engine runs a chain, so every node but `Constant` must read the output of the
//! node before it; its other inputs must be constants. Anything the engine cannot compute
//! exactly is an error naming the node.

use std::collections::{BTreeMap, HashMap};

use super::fold::Weighted;
use super::node::Node;
use super::report::ImportReport;
use super::tensor::{self, Constant};
use qcnn_config::architecture::Shape;
use qcnn_config::model::{Conv2dSpec, LayerSpec, LinearSpec, PoolSpec};

/// The tensor flowing down the chain.
pub struct Current {
    pub name: String,
    pub shape: Shape,
}

pub struct Chain {
    pub constants: HashMap<String, Constant>,
    pub current: Current,
    pub layers: Vec<LayerSpec>,
    /// The node each layer came from, for errors found after the walk.
    pub layer_nodes: Vec<(String, String)>,
    /// Conv2d and Linear parameters by layer index.
    pub weighted: BTreeMap<usize, Weighted>,
    /// `current` is the untouched output of the last Conv2d or Linear, so a BatchNormalization
    /// or a constant Add can still fold into it.
    foldable: bool,
    /// A Softmax already dropped: only the end of the graph may follow it.
    softmax: Option<String>,
    pub report: ImportReport,
}

const SUPPORTED: &str = "Conv, Relu, MaxPool, Flatten, Reshape, Gemm, MatMul, Add (of a \
                         constant, folded into a bias), BatchNormalization, Dropout, Identity, \
                         Constant and a trailing Softmax";

impl Chain {
    pub fn new(
        constants: HashMap<String, Constant>,
        input: Current,
        report: ImportReport,
    ) -> Chain {
        Chain {
            constants,
            current: input,
            layers: Vec::new(),
            layer_nodes: Vec::new(),
            weighted: BTreeMap::new(),
            foldable: false,
            softmax: None,
            report,
        }
    }

    /// Maps one node; the error is the reason, which the caller puts beside the node's name.
    pub fn node(&mut self, node: &Node) -> Result<(), String> {
        if node.op() == "Constant" {
            return self.constant_node(node);
        }
        if let Some(softmax) = &self.softmax {
            return Err(format!(
                "follows Softmax {softmax}; only a Softmax at the very end of the graph can be \
                 dropped"
            ));
        }
        if !matches!(node.proto.domain.as_str(), "" | "ai.onnx") {
            return Err(format!(
                "operator of domain {} is not supported; qcnn imports {SUPPORTED}",
                node.proto.domain
            ));
        }
        let data = if node.op() == "Add" {
            self.add_data_input(node)?
        } else {
            node.input(0).ok_or("has no input")?
        };
        if data != self.current.name {
            return Err(self.not_the_chain(data));
        }
        let output = node.output(0).ok_or("has no output")?.to_owned();
        let foldable = match node.op() {
            "Conv" => self.conv(node)?,
            "Relu" => self.relu(node)?,
            "MaxPool" => self.max_pool(node)?,
            "Flatten" => self.flatten(node)?,
            "Reshape" => self.reshape(node)?,
            "Gemm" => self.gemm(node)?,
            "MatMul" => self.mat_mul(node)?,
            "Add" => self.add(node)?,
            "BatchNormalization" => self.batch_norm(node)?,
            "Dropout" => self.dropout(node)?,
            "Identity" => {
                node.only_attributes(&[])?;
                self.report.dropped.push(format!("Identity {}", node.label));
                self.foldable
            }
            "Softmax" => self.softmax(node)?,
            "AveragePool" | "GlobalAveragePool" | "ReduceMean" => {
                return Err("average pooling is not supported yet: the engine has no \
                            average-pooling layer"
                    .into());
            }
            "Clip" => {
                return Err(
                    "Clip (e.g. ReLU6) is not supported yet: the engine fuses ReLU only".into(),
                );
            }
            other => {
                return Err(format!(
                    "operator {other} is not supported; qcnn imports {SUPPORTED}"
                ));
            }
        };
        self.foldable = foldable;
        self.current.name = output;
        Ok(())
    }

    /// Why a node reading `name` breaks the chain.
    fn not_the_chain(&self, name: &str) -> String {
        if self.constants.contains_key(name) {
            format!(
                "computes on the constant {name} only; fold such nodes first (for example \
                 with onnxsim)"
            )
        } else {
            format!(
                "reads {name}, which is not the output of the node before it ({}): qcnn runs \
                 a chain of layers, and branches such as residual connections are not \
                 supported yet",
                self.current.name
            )
        }
    }

    fn constant_node(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&[
            "value",
            "value_float",
            "value_floats",
            "value_int",
            "value_ints",
        ])?;
        let value = if let Some(t) = node.tensor("value")? {
            tensor::decode(t)?
        } else if let Some(v) = node.float("value_float")? {
            Constant {
                dims: vec![],
                values: tensor::Values::Float(vec![v]),
                data_type: tensor::DataType::Float,
            }
        } else if let Some(v) = node.floats("value_floats")? {
            Constant {
                dims: vec![v.len()],
                values: tensor::Values::Float(v),
                data_type: tensor::DataType::Float,
            }
        } else if let Some(v) = node.int("value_int")? {
            Constant {
                dims: vec![],
                values: tensor::Values::Int(vec![v]),
                data_type: tensor::DataType::Int64,
            }
        } else if let Some(v) = node.ints("value_ints")? {
            Constant {
                dims: vec![v.len()],
                values: tensor::Values::Int(v),
                data_type: tensor::DataType::Int64,
            }
        } else {
            return Err("has no value attribute".into());
        };
        if let Some((index, v)) = value.floats().and_then(tensor::first_non_finite) {
            return Err(format!("its value holds {v} at flat index {index}"));
        }
        let output = node.output(0).ok_or("has no output")?;
        self.constants.insert(output.to_owned(), value);
        Ok(())
    }

    /// Input `i`, which must be a constant.
    pub(super) fn constant(&self, node: &Node, i: usize, what: &str) -> Result<&Constant, String> {
        let name = node
            .input(i)
            .ok_or_else(|| format!("has no {what} (input {i})"))?;
        self.constants.get(name).ok_or_else(|| {
            format!(
                "its {what} {name} is computed at run time; qcnn needs it as an initializer or \
                 a Constant"
            )
        })
    }

    pub(super) fn optional_constant(
        &self,
        node: &Node,
        i: usize,
        what: &str,
    ) -> Result<Option<&Constant>, String> {
        match node.input(i) {
            Some(_) => self.constant(node, i, what).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn floats<'c>(constant: &'c Constant, what: &str) -> Result<&'c [f32], String> {
        constant
            .floats()
            .ok_or_else(|| format!("its {what} is not a float tensor"))
    }

    fn map(&self, what: &str) -> Result<(usize, usize, usize), String> {
        match self.current.shape {
            Shape::Map { c, h, w } => Ok((c, h, w)),
            Shape::Vector(n) => Err(format!(
                "{what} needs an N×C×H×W input, but gets a 2-D (N, {n}) tensor"
            )),
        }
    }

    fn vector(&self, what: &str) -> Result<usize, String> {
        match self.current.shape {
            Shape::Vector(n) => Ok(n),
            Shape::Map { c, h, w } => Err(format!(
                "{what} needs a 2-D (N, features) input, but gets an N×{c}×{h}×{w} tensor; \
                 add a Flatten before it"
            )),
        }
    }

    /// Appends a layer, checked by the same rules as config.yaml's layers.
    fn push(
        &mut self,
        node: &Node,
        layer: LayerSpec,
        weighted: Option<Weighted>,
    ) -> Result<(), String> {
        let output = qcnn_config::architecture::output_shape(
            &layer,
            self.current.shape,
            self.layers.last().copied(),
        )?;
        if let Some(weighted) = weighted {
            self.weighted.insert(self.layers.len(), weighted);
        }
        self.layers.push(layer);
        self.layer_nodes
            .push((node.label.clone(), node.op().to_owned()));
        self.current.shape = output;
        Ok(())
    }

    fn conv(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ])?;
        let group = node.int("group")?.unwrap_or(1);
        if group != 1 {
            return Err(format!(
                "group {group} (grouped or depthwise convolution) is not supported yet; the \
                 engine's Conv2d has group 1"
            ));
        }
        let weight = self.constant(node, 1, "weight")?;
        let &[out, inputs, kh, kw] = &weight.dims[..] else {
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
        if kh != kw {
            return Err(format!(
                "kernel {kh}x{kw} is not square; the engine's Conv2d takes square kernels"
            ));
        }
        let stride = node.square("strides", 1)?;
        node.no_dilation()?;
        let padding = node.symmetric_pads()?;
        let (c, _, _) = self.map("Conv")?;
        if inputs != c {
            return Err(format!(
                "weight has {inputs} input channels, but its input has {c}"
            ));
        }
        let weight_values = Self::floats(weight, "weight")?.to_vec();
        let bias = match self.optional_constant(node, 2, "bias")? {
            Some(b) if b.value_count() == out => Self::floats(b, "bias")?.to_vec(),
            Some(b) => return Err(format!("bias has shape {:?}, expected [{out}]", b.dims)),
            None => vec![0.0; out],
        };
        let spec = Conv2dSpec {
            in_channels: inputs,
            out_channels: out,
            kernel: kh,
            stride,
            padding,
            groups: 1,
            bias: true,
        };
        let weighted = Weighted {
            weight_shape: weight.dims.clone(),
            weight: weight_values,
            bias,
        };
        self.push(node, LayerSpec::Conv2d(spec), Some(weighted))?;
        Ok(true)
    }

    fn relu(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&[])?;
        // Conv → MaxPool → Relu is Conv → Relu → MaxPool exactly (max commutes with ReLU), and
        // the engine fuses the latter.
        let n = self.layers.len();
        if n >= 2
            && matches!(self.layers[n - 1], LayerSpec::MaxPool2d(_))
            && matches!(self.layers[n - 2], LayerSpec::Conv2d(_))
        {
            self.layers.insert(n - 1, LayerSpec::Relu);
            self.layer_nodes
                .insert(n - 1, (node.label.clone(), node.op().to_owned()));
            self.report.moved.push(format!(
                "Relu {} before MaxPool {} (the same result: max commutes with ReLU)",
                node.label, self.layer_nodes[n].0
            ));
            return Ok(false);
        }
        self.push(node, LayerSpec::Relu, None)?;
        Ok(false)
    }

    fn max_pool(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&[
            "auto_pad",
            "ceil_mode",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ])?;
        if node.output(1).is_some() {
            return Err("its Indices output is not supported".into());
        }
        if node.ints("kernel_shape")?.is_none() {
            return Err("has no kernel_shape".into());
        }
        let kernel = node.square("kernel_shape", 0)?;
        let stride = node.square("strides", 1)?;
        node.no_dilation()?;
        if node.symmetric_pads()? != 0 {
            return Err("padding is not supported yet; the engine's MaxPool has none".into());
        }
        let (_, h, w) = self.map("MaxPool")?;
        // ceil_mode only changes the output when a last, partial window would start inside.
        if node.int("ceil_mode")?.unwrap_or(0) != 0
            && [h, w]
                .iter()
                .any(|&d| d >= kernel && (d - kernel) % stride != 0)
        {
            return Err(format!(
                "ceil_mode 1 adds a partial window on a {h}x{w} input; the engine's MaxPool \
                 rounds down"
            ));
        }
        let spec = PoolSpec {
            kernel,
            stride: Some(stride),
        };
        self.push(node, LayerSpec::MaxPool2d(spec), None)?;
        Ok(false)
    }

    fn flatten(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&["axis"])?;
        let axis = node.int("axis")?.unwrap_or(1);
        match self.current.shape {
            Shape::Map { .. } if axis == 1 || axis == -3 => {
                self.push(node, LayerSpec::Flatten, None)?;
            }
            Shape::Vector(_) if axis == 1 || axis == -1 => {}
            _ => {
                return Err(format!(
                    "axis {axis}: only a flatten to (batch, features) is supported (axis 1)"
                ));
            }
        }
        Ok(false)
    }

    fn reshape(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&["allowzero"])?;
        let allow_zero = node.int("allowzero")?.unwrap_or(0) != 0;
        let shape = self.constant(node, 1, "shape")?;
        let target = shape.ints().ok_or("its shape is not an integer tensor")?;
        let features = self.current.shape.len() as i64;
        // The batch dimension: copied (0), inferred (-1) or 1; the rest: every feature.
        let ok = match *target {
            [batch, rest] => {
                let batch_ok = (batch == 0 && !allow_zero) || batch == 1;
                (batch_ok && (rest == -1 || rest == features)) || (batch == -1 && rest == features)
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "shape {target:?}: only a reshape to 2-D (batch, {features}) is supported"
            ));
        }
        if let Shape::Map { .. } = self.current.shape {
            self.push(node, LayerSpec::Flatten, None)?;
        }
        Ok(false)
    }

    fn linear(
        &mut self,
        node: &Node,
        weight: Vec<f32>,
        out: usize,
        inputs: usize,
        bias: Vec<f32>,
    ) -> Result<bool, String> {
        let spec = LinearSpec {
            in_features: inputs,
            out_features: out,
        };
        let weighted = Weighted {
            weight_shape: vec![out, inputs],
            weight,
            bias,
        };
        self.push(node, LayerSpec::Linear(spec), Some(weighted))?;
        Ok(true)
    }

    fn gemm(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&["alpha", "beta", "transA", "transB"])?;
        self.vector("Gemm")?;
        if node.int("transA")?.unwrap_or(0) != 0 {
            return Err("transA 1 is not supported (the input is the left operand as is)".into());
        }
        let alpha = node.float("alpha")?.unwrap_or(1.0);
        let beta = node.float("beta")?.unwrap_or(1.0);
        let b = self.constant(node, 1, "weight")?;
        let &[rows, columns] = &b.dims[..] else {
            return Err(format!("weight has shape {:?}, expected 2-D", b.dims));
        };
        let values = Self::floats(b, "weight")?;
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
        let bias = match self.optional_constant(node, 2, "bias")? {
            Some(c) => {
                let values = Self::floats(c, "bias")?;
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

    fn mat_mul(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&[])?;
        self.vector("MatMul")?;
        let b = self.constant(node, 1, "right operand")?;
        let &[inputs, out] = &b.dims[..] else {
            return Err(format!(
                "right operand has shape {:?}, expected 2-D (in, out)",
                b.dims
            ));
        };
        let weight = transpose(Self::floats(b, "right operand")?, inputs, out);
        self.linear(node, weight, out, inputs, vec![0.0; out])
    }

    /// Add's input that flows down the chain: the one that is not a constant.
    fn add_data_input<'n>(&self, node: &Node<'n>) -> Result<&'n str, String> {
        let (Some(a), Some(b)) = (node.input(0), node.input(1)) else {
            return Err("needs two inputs".into());
        };
        match (
            self.constants.contains_key(a),
            self.constants.contains_key(b),
        ) {
            (false, true) => Ok(a),
            (true, false) => Ok(b),
            (true, true) => Err(self.not_the_chain(a)),
            (false, false) => Err(format!(
                "adds two computed tensors ({a} and {b}): residual connections are not \
                 supported yet; qcnn runs a chain of layers"
            )),
        }
    }

    fn add(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&[])?;
        let constant_input = if node.input(0) == Some(self.current.name.as_str()) {
            1
        } else {
            0
        };
        let constant = self.constant(node, constant_input, "addend")?;
        let values = Self::floats(constant, "addend")?.to_vec();
        let dims = constant.dims.clone();
        let layer = self.foldable_layer("Add of a constant")?;
        let per_channel: &[usize] = match self.current.shape {
            Shape::Map { c, .. } => &[c, 1, 1],
            Shape::Vector(n) => &[n],
        };
        let outputs = self.weighted[&layer].outputs();
        let per_output = broadcast_per_output(&dims, outputs, per_channel).ok_or_else(|| {
            format!(
                "the constant has shape {dims:?}; only a scalar or one value per output \
                 channel ({per_channel:?}) folds into the bias"
            )
        })?;
        let values = if per_output { values } else { vec![values[0]] };
        self.weighted
            .get_mut(&layer)
            .expect("foldable_layer names a weighted layer")
            .add_to_bias(&values)?;
        self.report.folded.push(format!(
            "Add {} into the bias of {} {}",
            node.label, self.layer_nodes[layer].1, self.layer_nodes[layer].0
        ));
        Ok(true)
    }

    /// The index of the Conv2d or Linear whose untouched output `current` is.
    fn foldable_layer(&self, what: &str) -> Result<usize, String> {
        match self.layers.last() {
            Some(LayerSpec::Conv2d(_) | LayerSpec::Linear(_)) if self.foldable => {
                Ok(self.layers.len() - 1)
            }
            _ => Err(format!(
                "{what} is supported only right after a Conv, Gemm or MatMul, which it is \
                 folded into; on its own it is not supported yet"
            )),
        }
    }

    fn batch_norm(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&["epsilon", "momentum", "training_mode", "spatial"])?;
        if node.int("training_mode")?.unwrap_or(0) != 0 || node.output(1).is_some() {
            return Err("training mode is not supported; export the model in eval mode".into());
        }
        if node.int("spatial")?.unwrap_or(1) != 1 {
            return Err("spatial 0 is not supported".into());
        }
        let epsilon = node.float("epsilon")?.unwrap_or(1e-5);
        let layer = self.foldable_layer("BatchNormalization")?;
        let outputs = self.weighted[&layer].outputs();
        let mut parameters = Vec::new();
        for (i, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
            let c = self.constant(node, i, what)?;
            if c.dims != [outputs] {
                return Err(format!(
                    "its {what} has shape {:?}, expected [{outputs}] (one per channel)",
                    c.dims
                ));
            }
            parameters.push(Self::floats(c, what)?.to_vec());
        }
        self.weighted
            .get_mut(&layer)
            .expect("foldable_layer names a weighted layer")
            .fold_batch_norm(
                &parameters[0],
                &parameters[1],
                &parameters[2],
                &parameters[3],
                epsilon,
            )?;
        self.report.folded.push(format!(
            "BatchNormalization {} into {} {}",
            node.label, self.layer_nodes[layer].1, self.layer_nodes[layer].0
        ));
        Ok(true)
    }

    fn dropout(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&["seed"])?;
        if let Some(training) = self.optional_constant(node, 2, "training_mode")? {
            if training.ints().is_none_or(|v| v.iter().any(|&t| t != 0)) {
                return Err("training_mode is true; export the model in eval mode".into());
            }
        } else if node.input(2).is_some() {
            return Err("training_mode is computed at run time".into());
        }
        if node.input(1).is_some() {
            self.constant(node, 1, "ratio")?;
        }
        self.report.dropped.push(format!(
            "Dropout {} (the identity at inference)",
            node.label
        ));
        Ok(self.foldable)
    }

    fn softmax(&mut self, node: &Node) -> Result<bool, String> {
        node.only_attributes(&["axis"])?;
        self.vector("Softmax")?;
        let axis = node.int("axis")?.unwrap_or(-1);
        if axis != 1 && axis != -1 {
            return Err(format!(
                "axis {axis}: only a softmax over the classes (axis 1) is dropped"
            ));
        }
        self.softmax = Some(node.label.clone());
        self.report.dropped.push(format!(
            "Softmax {}: the model's outputs are the logits before it (the same argmax)",
            node.label
        ));
        Ok(false)
    }
}

/// `rows × columns` row-major to `columns × rows`.
pub(super) fn transpose(values: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    (0..columns)
        .flat_map(|c| (0..rows).map(move |r| values[r * columns + c]))
        .collect()
}

/// Does a constant of `dims` broadcast onto the outputs as a scalar (`Some(false)`) or as one
/// value per output (`Some(true)`, its shape `per_output` after leading 1s)?
pub(super) fn broadcast_per_output(
    dims: &[usize],
    outputs: usize,
    per_output: &[usize],
) -> Option<bool> {
    let count: usize = dims.iter().product();
    if count == 1 {
        return Some(false);
    }
    let first = dims.iter().position(|&d| d != 1).unwrap_or(dims.len());
    let trimmed = &dims[first..];
    let mut expected = per_output;
    while expected.len() > trimmed.len() && expected.first() == Some(&1) {
        expected = &expected[1..];
    }
    (count == outputs && trimmed == expected).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_broadcasting() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        assert_eq!(broadcast_per_output(&[], 4, &[4]), Some(false));
        assert_eq!(broadcast_per_output(&[1, 1], 4, &[4]), Some(false));
        assert_eq!(broadcast_per_output(&[4], 4, &[4]), Some(true));
        assert_eq!(broadcast_per_output(&[1, 4], 4, &[4]), Some(true));
        assert_eq!(broadcast_per_output(&[4, 1, 1], 4, &[4, 1, 1]), Some(true));
        assert_eq!(
            broadcast_per_output(&[1, 4, 1, 1], 4, &[4, 1, 1]),
            Some(true)
        );
        // One value per column of a map, not per channel.
        assert_eq!(broadcast_per_output(&[4], 4, &[4, 1, 1]), None);
        assert_eq!(broadcast_per_output(&[3], 4, &[4]), None);
    }
}
