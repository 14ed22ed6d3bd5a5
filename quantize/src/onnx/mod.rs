//! ONNX import: a float model as `torch.onnx.export` writes it (opset 13 to 18, NCHW, weights
//! as initializers or `Constant` nodes, a dynamic batch dimension, one input, one output), or
//! onnxruntime's QDQ int8 form of one.
//!
//! One walk (`graph.rs`) maps the nodes, in order, onto a [`FloatGraph`]. When that graph is a
//! chain the layer-sequence format holds (`chain.rs`), it becomes the same layer sequence and
//! parameters that config.yaml and a `.pth` give, so the float reference, calibration and
//! export that follow are the ones the PyTorch path runs; else the graph engine runs it.
//!
//! BatchNormalization (and a constant Add) fold into the Conv or Gemm before them in float;
//! Dropout, Identity and a trailing Softmax are dropped, and the report lists each. Anything
//! else the engine cannot run exactly is an `OnnxError` naming the node.

mod chain;
mod constants;
mod error;
pub(crate) mod fold;
mod graph;
mod node;
// Generated code (see its header), kept as generated.
#[allow(clippy::all)]
mod proto;
mod report;
mod tensor;

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use self::constants::Constants;
pub use self::error::OnnxError;
use self::node::Node;
use self::proto::tensor_shape_proto::dimension::Value as Dim;
use self::proto::{ModelProto, ValueInfoProto, type_proto};
pub use self::report::ImportReport;
use crate::checkpoint::Checkpoint;
use crate::graph::FloatGraph;
use qcnn_config::architecture::Architecture;
use qcnn_config::model::{InputShape, ModelConfig};

/// The opsets whose operator definitions the importer follows.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=18;

/// An ONNX model that is a chain of layers, as the rest of the quantizer takes a `.pth` and
/// config.yaml's model section.
#[derive(Clone, Debug)]
pub struct Imported {
    pub model: ModelConfig,
    pub architecture: Architecture,
    /// The parameters under the keys `architecture` expects, BatchNorm already folded.
    pub checkpoint: Checkpoint,
    pub report: ImportReport,
}

/// An ONNX model as one of the two engines runs it.
#[derive(Clone, Debug)]
pub enum AnyImport {
    /// A chain of layers: the layer-sequence path a `.pth` takes.
    Sequential(Imported),
    /// Anything else the graph engine runs (graph blobs).
    Graph(FloatGraph, ImportReport),
}

impl AnyImport {
    /// What the import did, whichever engine runs the model.
    pub fn report(&self) -> &ImportReport {
        match self {
            AnyImport::Sequential(imported) => &imported.report,
            AnyImport::Graph(_, report) => report,
        }
    }

    /// The input's length (C·H·W) and the number of classes.
    pub fn input_and_classes(&self) -> (usize, usize) {
        match self {
            AnyImport::Sequential(i) => (i.architecture.input.len(), i.architecture.output().len()),
            AnyImport::Graph(graph, _) => (graph.tensors[0].len(), graph.classes()),
        }
    }
}

/// Does `path` name an ONNX file (by its extension, as protobuf has no magic number)?
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Imports `path`: a chain of layers when it is one (so such models keep their layer-sequence
/// blobs), else a graph.
pub fn import(path: &Path) -> Result<AnyImport, OnnxError> {
    import_bytes(path, &read(path)?)
}

/// [`import`] of the bytes of `path`.
pub fn import_bytes(path: &Path, bytes: &[u8]) -> Result<AnyImport, OnnxError> {
    let (graph, report) = import_graph_bytes(path, bytes)?;
    Ok(match chain::as_chain(&graph, path) {
        Some((model, architecture, checkpoint)) => AnyImport::Sequential(Imported {
            model,
            architecture,
            checkpoint,
            report,
        }),
        None => AnyImport::Graph(graph, report),
    })
}

/// Imports `path` as a graph, even when it is a chain of layers.
pub fn import_graph(path: &Path) -> Result<(FloatGraph, ImportReport), OnnxError> {
    import_graph_bytes(path, &read(path)?)
}

fn read(path: &Path) -> Result<Vec<u8>, OnnxError> {
    qcnn_config::regular_file::read(path, qcnn_config::regular_file::MAX_CHECKPOINT_BYTES).map_err(
        |source| OnnxError::Io {
            path: path.to_owned(),
            source,
        },
    )
}

/// The one walk: every node of the ONNX model in `bytes`, in order, onto a graph.
pub fn import_graph_bytes(
    path: &Path,
    bytes: &[u8],
) -> Result<(FloatGraph, ImportReport), OnnxError> {
    let setup = setup(path, bytes)?;
    let graph_error = |message: String| OnnxError::Graph {
        path: path.to_owned(),
        message,
    };
    let nodes = setup
        .model
        .graph
        .as_ref()
        .map(|g| g.node.as_slice())
        .unwrap_or_default();
    let uses = graph::count_uses(
        nodes
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str)),
        &setup.output,
    );
    let name = path
        .file_stem()
        .map_or_else(|| "onnx".into(), |s| s.to_string_lossy().into_owned());
    let i = setup.input_shape;
    let mut walk = graph::GraphWalk::new(
        Constants::new(setup.constants),
        setup.report,
        name,
        (setup.input, [i.channels, i.height, i.width]),
        uses,
        setup.output.clone(),
    );
    for (position, proto) in nodes.iter().enumerate() {
        let node = Node::new(proto, position);
        walk.node(&node).map_err(|message| OnnxError::Node {
            path: path.to_owned(),
            node: node.label.clone(),
            op: proto.op_type.clone(),
            message,
        })?;
    }
    let Some(&output) = walk.value(&walk.output_name) else {
        return Err(graph_error(format!(
            "no node writes the output {}",
            setup.output
        )));
    };
    let shape = walk.graph.tensors[output].shape;
    if shape[1] * shape[2] != 1 {
        return Err(graph_error(format!(
            "the model ends with an N×{shape:?} map, expected a 2-D (batch, classes) output"
        )));
    }
    if walk.graph.nodes.is_empty() {
        return Err(graph_error("the graph computes nothing".into()));
    }
    walk.graph.output = output;
    Ok((walk.graph, walk.report))
}

/// What the walk starts from: the decoded model, its constants, its one input and output.
struct Setup {
    model: ModelProto,
    constants: HashMap<String, tensor::Constant>,
    input: String,
    input_shape: InputShape,
    output: String,
    report: ImportReport,
}

fn setup(path: &Path, bytes: &[u8]) -> Result<Setup, OnnxError> {
    let graph_error = |message: String| OnnxError::Graph {
        path: path.to_owned(),
        message,
    };
    let model = ModelProto::decode(bytes).map_err(|source| OnnxError::Decode {
        path: path.to_owned(),
        source,
    })?;
    let graph = model.graph.as_ref().ok_or_else(|| OnnxError::NoGraph {
        path: path.to_owned(),
    })?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| OnnxError::NoOpset {
            path: path.to_owned(),
        })?;
    if !OPSETS.contains(&opset) {
        return Err(OnnxError::Opset {
            path: path.to_owned(),
            version: opset,
        });
    }

    let mut constants = HashMap::new();
    for initializer in &graph.initializer {
        let invalid = |message: String| OnnxError::Initializer {
            path: path.to_owned(),
            name: initializer.name.clone(),
            message,
        };
        let constant = tensor::decode(initializer).map_err(invalid)?;
        if let Some((index, value)) = constant.floats().and_then(tensor::first_non_finite) {
            return Err(invalid(format!(
                "shape {:?} holds {value} at flat index {index}",
                constant.dims
            )));
        }
        constants.insert(initializer.name.clone(), constant);
    }
    if !graph.sparse_initializer.is_empty() {
        return Err(graph_error("sparse initializers are not supported".into()));
    }

    // Older exporters also list the initializers among the inputs.
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !constants.contains_key(&i.name))
        .collect();
    let [input] = inputs[..] else {
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        return Err(graph_error(format!(
            "the graph has {} inputs {names:?}; qcnn runs models with one image input",
            inputs.len()
        )));
    };
    let input_shape = image_input(input)
        .map_err(|message| graph_error(format!("input {}: {message}", input.name)))?;
    let [output] = &graph.output[..] else {
        let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        return Err(graph_error(format!(
            "the graph has {} outputs {names:?}; qcnn runs models with one output",
            names.len()
        )));
    };

    let report = ImportReport {
        opset,
        producer: format!("{} {}", model.producer_name, model.producer_version)
            .trim()
            .to_owned(),
        nodes: graph.node.len(),
        ..ImportReport::default()
    };
    let (input, output) = (input.name.clone(), output.name.clone());
    Ok(Setup {
        model,
        constants,
        input,
        input_shape,
        output,
        report,
    })
}

/// The input's C×H×W: a float N×C×H×W tensor whose batch dimension is symbolic or 1.
fn image_input(input: &ValueInfoProto) -> Result<InputShape, String> {
    let Some(type_proto::Value::TensorType(tensor)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err("is not a tensor".into());
    };
    if tensor.elem_type != proto::tensor_proto::DataType::Float as i32 {
        return Err(format!(
            "has element type {}, expected float (pixel/255)",
            proto::tensor_proto::DataType::try_from(tensor.elem_type)
                .map_or("unknown", |t| t.as_str_name())
        ));
    }
    let dims: Vec<Option<i64>> = tensor
        .shape
        .as_ref()
        .ok_or("has no shape")?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Dim::DimValue(v)) => Some(v),
            _ => None,
        })
        .collect();
    let [batch, c, h, w] = dims[..] else {
        return Err(format!(
            "has {} dimensions, expected 4 (N, C, H, W)",
            dims.len()
        ));
    };
    if batch.is_some_and(|b| b != 1) {
        return Err(format!(
            "has a fixed batch of {}; export with a dynamic batch dimension (or batch 1)",
            batch.unwrap_or_default()
        ));
    }
    let size = |d: Option<i64>| {
        d.and_then(|v| usize::try_from(v).ok())
            .filter(|&v| (1..=usize::from(u16::MAX)).contains(&v))
            .ok_or_else(|| format!("C, H and W must be fixed sizes within 1..=65535, got {dims:?}"))
    };
    Ok(InputShape {
        channels: size(c)?,
        height: size(h)?,
        width: size(w)?,
    })
}

#[cfg(test)]
mod tests;
