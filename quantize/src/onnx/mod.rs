//! ONNX import: a float model as `torch.onnx.export` writes it (opset 13 to 18, NCHW, weights
//! as initializers or `Constant` nodes, a dynamic batch dimension, one input, one output),
//! mapped onto the same layer sequence and parameters that config.yaml and a `.pth` give, so
//! the float reference, calibration and export that follow are the ones the PyTorch path runs.
//!
//! BatchNormalization (and a constant Add) fold into the Conv or Gemm before them in float;
//! Dropout, Identity and a trailing Softmax are dropped, and the report lists each. Anything
//! else the engine cannot run exactly is an `OnnxError` naming the node.

mod chain;
mod error;
pub(crate) mod fold;
mod graph;
mod node;
// Generated code (see its header), kept as generated.
#[allow(clippy::all)]
mod proto;
mod report;
mod tensor;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use prost::Message;

use self::chain::{Chain, Current};
pub use self::error::OnnxError;
use self::node::Node;
use self::proto::tensor_shape_proto::dimension::Value as Dim;
use self::proto::{ModelProto, ValueInfoProto, type_proto};
pub use self::report::ImportReport;
use crate::checkpoint::{Checkpoint, Tensor};
use qcnn_config::architecture::{Architecture, ArchitectureError, Shape};
use qcnn_config::model::{InputShape, ModelConfig};

/// The opsets whose operator definitions the importer follows.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=18;

/// An ONNX model as the rest of the quantizer takes a `.pth` and config.yaml's model section.
#[derive(Clone, Debug)]
pub struct Imported {
    pub model: ModelConfig,
    pub architecture: Architecture,
    /// The parameters under the keys `architecture` expects, BatchNorm already folded.
    pub checkpoint: Checkpoint,
    pub report: ImportReport,
}

/// Does `path` name an ONNX file (by its extension, as protobuf has no magic number)?
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

pub fn import(path: &Path) -> Result<Imported, OnnxError> {
    let bytes =
        qcnn_config::regular_file::read(path, qcnn_config::regular_file::MAX_CHECKPOINT_BYTES)
            .map_err(|source| OnnxError::Io {
                path: path.to_owned(),
                source,
            })?;
    import_bytes(path, &bytes)
}

/// An ONNX model as one of the two engines runs it.
#[derive(Clone, Debug)]
pub enum AnyImport {
    /// A chain of layers: the layer-sequence path a `.pth` takes.
    Sequential(Imported),
    /// Anything else the graph engine runs (graph blobs).
    Graph(crate::graph::FloatGraph, ImportReport),
}

/// Imports `path` as a chain of layers when it is one (so such models keep their layer-sequence
/// blobs), else as a graph.
pub fn import_any(path: &Path) -> Result<AnyImport, OnnxError> {
    let bytes =
        qcnn_config::regular_file::read(path, qcnn_config::regular_file::MAX_CHECKPOINT_BYTES)
            .map_err(|source| OnnxError::Io {
                path: path.to_owned(),
                source,
            })?;
    import_any_bytes(path, &bytes)
}

/// [`import_any`] of the bytes of `path`.
pub fn import_any_bytes(path: &Path, bytes: &[u8]) -> Result<AnyImport, OnnxError> {
    match import_bytes(path, bytes) {
        Ok(imported) => Ok(AnyImport::Sequential(imported)),
        Err(OnnxError::Node { .. } | OnnxError::Graph { .. }) => {
            let (graph, report) = import_graph_bytes(path, bytes)?;
            Ok(AnyImport::Graph(graph, report))
        }
        Err(other) => Err(other),
    }
}

/// Imports `path` as a graph, even when it is a chain of layers.
pub fn import_graph(path: &Path) -> Result<(crate::graph::FloatGraph, ImportReport), OnnxError> {
    let bytes =
        qcnn_config::regular_file::read(path, qcnn_config::regular_file::MAX_CHECKPOINT_BYTES)
            .map_err(|source| OnnxError::Io {
                path: path.to_owned(),
                source,
            })?;
    import_graph_bytes(path, &bytes)
}

/// Imports the ONNX model in `bytes` as a graph.
pub fn import_graph_bytes(
    path: &Path,
    bytes: &[u8],
) -> Result<(crate::graph::FloatGraph, ImportReport), OnnxError> {
    let setup = setup(path, bytes)?;
    let graph_error = |message: String| OnnxError::Graph {
        path: path.to_owned(),
        message,
    };
    let nodes = &setup
        .model
        .graph
        .as_ref()
        .map(|g| g.node.clone())
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
        Chain::new(
            setup.constants,
            Current {
                name: setup.input.clone(),
                shape: Shape::Vector(0),
            },
            setup.report,
        ),
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
    let Some(&output) = walk_output(&walk) else {
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
    Ok((walk.graph, walk.constants.report))
}

fn walk_output(walk: &graph::GraphWalk) -> Option<&usize> {
    walk.value(&walk.output_name)
}

/// What both walks start from: the decoded model, its constants, its one input and output.
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

/// Imports the ONNX model in `bytes`; `path` names it in errors and in the checkpoint.
pub fn import_bytes(path: &Path, bytes: &[u8]) -> Result<Imported, OnnxError> {
    let graph_error = |message: String| OnnxError::Graph {
        path: path.to_owned(),
        message,
    };
    let Setup {
        model,
        constants,
        input: input_name,
        input_shape,
        output: output_name,
        report,
    } = setup(path, bytes)?;
    let graph = model.graph.as_ref().ok_or_else(|| OnnxError::NoGraph {
        path: path.to_owned(),
    })?;
    let start = Current {
        name: input_name,
        shape: Shape::Map {
            c: input_shape.channels,
            h: input_shape.height,
            w: input_shape.width,
        },
    };
    let mut chain = Chain::new(constants, start, report);
    for (position, proto) in graph.node.iter().enumerate() {
        let node = Node::new(proto, position);
        chain.node(&node).map_err(|message| OnnxError::Node {
            path: path.to_owned(),
            node: node.label.clone(),
            op: proto.op_type.clone(),
            message,
        })?;
    }
    if chain.current.name != output_name {
        return Err(graph_error(format!(
            "the output {} is not where the chain of nodes ends ({})",
            output_name, chain.current.name
        )));
    }
    let Shape::Vector(classes) = chain.current.shape else {
        return Err(graph_error(format!(
            "the model ends with {}, expected a 2-D (batch, classes) output",
            chain.current.shape
        )));
    };

    let model = ModelConfig {
        name: path
            .file_stem()
            .map_or_else(|| "onnx".into(), |s| s.to_string_lossy().into_owned()),
        input: input_shape,
        classes,
        key_prefix: "layers".into(),
        layers: chain.layers.clone(),
    };
    let architecture = Architecture::new(&model).map_err(|err| match err {
        ArchitectureError::Layer { index, message, .. } => OnnxError::Node {
            path: path.to_owned(),
            node: chain.layer_nodes[index].0.clone(),
            op: chain.layer_nodes[index].1.clone(),
            message,
        },
        other => graph_error(other.to_string()),
    })?;
    let mut tensors = BTreeMap::new();
    for (&index, weighted) in &chain.weighted {
        let outputs = weighted.outputs();
        tensors.insert(
            architecture.weight_key(index),
            Tensor {
                shape: weighted.weight_shape.clone(),
                data: weighted.weight.clone(),
            },
        );
        tensors.insert(
            architecture.bias_key(index),
            Tensor {
                shape: vec![outputs],
                data: weighted.bias.clone(),
            },
        );
    }
    let checkpoint = Checkpoint {
        path: path.to_owned(),
        tensors,
    };
    // The walk checked every shape; this is the same check a `.pth` gets.
    checkpoint
        .check(&architecture)
        .map_err(|err| graph_error(format!("the imported parameters: {err}")))?;
    Ok(Imported {
        model,
        architecture,
        checkpoint,
        report: chain.report,
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
