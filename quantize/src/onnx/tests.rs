//! Crafted ONNX graphs, each breaking one rule, and random damage to a real file: every one is
//! a named error (or a model), never a panic.

use std::path::Path;

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::{Dimension, dimension};
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};
use super::*;

fn floats(name: &str, dims: &[i64], fill: f32) -> TensorProto {
    let count: i64 = dims.iter().product();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: (0..count).map(|i| fill + i as f32 * 0.01).collect(),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

fn attribute_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attributes,
        ..Default::default()
    }
}

fn tensor_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("batch".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// input [N, 1, 4, 4] → `middle` nodes (reading "x", writing "y") → Flatten → Gemm(32 → 3).
fn graph(
    middle: Vec<NodeProto>,
    mut initializers: Vec<TensorProto>,
    input: &[Option<i64>],
) -> Vec<u8> {
    let mut nodes = vec![node(
        "Conv",
        "/conv",
        &["input", "w"],
        "x",
        vec![
            attribute_ints("kernel_shape", &[3, 3]),
            attribute_ints("pads", &[1, 1, 1, 1]),
        ],
    )];
    nodes.extend(middle);
    nodes.push(node("Flatten", "/flatten", &["y"], "flat", vec![]));
    nodes.push(node(
        "Gemm",
        "/fc",
        &["flat", "fc"],
        "logits",
        vec![AttributeProto {
            name: "transB".into(),
            r#type: AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        }],
    ));
    initializers.push(floats("w", &[2, 1, 3, 3], 0.1));
    initializers.push(floats("fc", &[3, 32], -0.1));
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: initializers,
            input: vec![tensor_info("input", input)],
            output: vec![tensor_info("logits", &[None, Some(3)])],
            ..Default::default()
        }),
        ..Default::default()
    };
    model.encode_to_vec()
}

const IMAGE: [Option<i64>; 4] = [None, Some(1), Some(4), Some(4)];

fn relu() -> NodeProto {
    node("Relu", "/relu", &["x"], "y", vec![])
}

fn error(bytes: &[u8]) -> String {
    import_bytes(Path::new("t.onnx"), bytes)
        .unwrap_err()
        .to_string()
}

#[test]
fn the_base_graph_imports() {
    let imported = import_bytes(Path::new("t.onnx"), &graph(vec![relu()], vec![], &IMAGE)).unwrap();
    assert_eq!(imported.model.classes, 3);
    assert_eq!(imported.model.layers.len(), 4);
    assert_eq!(imported.checkpoint.tensors.len(), 4);
    // A Conv without bias gets zeros.
    assert_eq!(
        imported.checkpoint.tensors["layers.0.bias"].data,
        [0.0, 0.0]
    );
}

#[test]
fn conv_shapes_the_engine_cannot_run_name_the_node() {
    let with_conv = |w: TensorProto, attributes: Vec<AttributeProto>| {
        let mut middle = vec![node("Conv", "/conv2", &["x", "w2"], "x2", attributes)];
        middle.push(node("Relu", "/relu", &["x2"], "y", vec![]));
        graph(middle, vec![w], &IMAGE)
    };
    let message = error(&with_conv(floats("w2", &[2, 2, 3, 1], 0.0), vec![]));
    assert!(
        message.contains("node /conv2 (Conv): kernel 3x1 is not square"),
        "{message}"
    );
    let message = error(&with_conv(floats("w2", &[2, 2, 2, 2], 0.0), vec![]));
    assert!(
        message.contains("node /conv2 (Conv): kernel 2 must be odd"),
        "{message}"
    );
    let message = error(&with_conv(
        floats("w2", &[2, 2, 1, 1], 0.0),
        vec![attribute_ints("strides", &[3, 3])],
    ));
    assert!(
        message.contains("node /conv2 (Conv): stride 3 is not supported"),
        "{message}"
    );
    let message = error(&with_conv(
        floats("w2", &[2, 2, 3, 3], 0.0),
        vec![attribute_ints("dilations", &[2, 2])],
    ));
    assert!(
        message.contains("dilations [2, 2] are not supported"),
        "{message}"
    );
    let message = error(&with_conv(floats("w2", &[2, 5, 3, 3], 0.0), vec![]));
    assert!(
        message.contains("weight has 5 input channels, but its input has 2"),
        "{message}"
    );
    let message = error(&with_conv(
        floats("w2", &[2, 2, 1, 1], 0.0),
        vec![attribute_ints("output_padding", &[1, 1])],
    ));
    assert!(
        message.contains("attribute output_padding is not supported"),
        "{message}"
    );
}

#[test]
fn misplaced_nodes_are_explained() {
    // A BatchNormalization after a Relu has nothing to fold into.
    let stats = ["s", "b", "m", "v"].map(|n| floats(n, &[2], 1.0)).to_vec();
    let bn = node(
        "BatchNormalization",
        "/bn",
        &["r", "s", "b", "m", "v"],
        "y",
        vec![],
    );
    let message = error(&graph(
        vec![node("Relu", "/relu", &["x"], "r", vec![]), bn],
        stats,
        &IMAGE,
    ));
    assert!(
        message.contains(
            "node /bn (BatchNormalization): BatchNormalization is supported only right after a Conv"
        ),
        "{message}"
    );
    // A Relu that follows nothing it can fuse into.
    let twice = vec![relu(), node("Relu", "/relu2", &["y"], "y2", vec![])];
    let message = error(&graph(twice, vec![], &IMAGE));
    assert!(
        message.contains("node /relu2 (Relu): relu must follow a conv2d or linear"),
        "{message}"
    );
    // A node after a Softmax: only a trailing Softmax is dropped.
    let mut model = ModelProto::decode(&graph(vec![relu()], vec![], &IMAGE)[..]).unwrap();
    let g = model.graph.as_mut().unwrap();
    g.node.push(node(
        "Softmax",
        "/softmax",
        &["logits"],
        "probabilities",
        vec![],
    ));
    g.node.push(node(
        "Identity",
        "/after",
        &["probabilities"],
        "out",
        vec![],
    ));
    g.output[0].name = "out".into();
    let message = error(&model.encode_to_vec());
    assert!(
        message.contains("node /after (Identity): follows Softmax /softmax"),
        "{message}"
    );
    // Without the node after it, the Softmax is dropped and said so.
    let g = model.graph.as_mut().unwrap();
    g.node.pop();
    g.output[0].name = "probabilities".into();
    let imported = import_bytes(Path::new("t.onnx"), &model.encode_to_vec()).unwrap();
    assert!(imported.report.softmax_dropped());
}

#[test]
fn reshapes_other_than_to_two_dimensions_are_refused() {
    let reshape = |shape: &[i64]| {
        let nodes = vec![
            relu(),
            node("Reshape", "/reshape", &["y", "shape"], "r", vec![]),
        ];
        let mut model =
            ModelProto::decode(&graph(nodes, vec![ints("shape", shape)], &IMAGE)[..]).unwrap();
        model.graph.as_mut().unwrap().node[3].input[0] = "r".into();
        import_bytes(Path::new("t.onnx"), &model.encode_to_vec())
    };
    assert!(reshape(&[-1, 32]).is_ok());
    assert!(reshape(&[0, -1]).is_ok());
    let message = reshape(&[1, 2, -1]).unwrap_err().to_string();
    assert!(
        message.contains(
            "node /reshape (Reshape): shape [1, 2, -1]: only a reshape to 2-D (batch, 32)"
        ),
        "{message}"
    );
    assert!(reshape(&[-1, 16]).is_err());
    assert!(reshape(&[-1, -1]).is_err());
}

#[test]
fn inputs_and_outputs_are_checked() {
    let message = error(&graph(
        vec![relu()],
        vec![],
        &[Some(4), Some(1), Some(4), Some(4)],
    ));
    assert!(
        message.contains("input input: has a fixed batch of 4"),
        "{message}"
    );
    let message = error(&graph(vec![relu()], vec![], &[None, Some(1), Some(4)]));
    assert!(
        message.contains("has 3 dimensions, expected 4"),
        "{message}"
    );
    let message = error(&graph(
        vec![relu()],
        vec![],
        &[None, Some(1), Some(100_000), Some(4)],
    ));
    assert!(message.contains("within 1..=65535"), "{message}");
    // A graph whose declared output is not where the chain ends.
    let mut model = ModelProto::decode(&graph(vec![relu()], vec![], &IMAGE)[..]).unwrap();
    model.graph.as_mut().unwrap().output[0].name = "flat".into();
    let message = error(&model.encode_to_vec());
    assert!(
        message.contains("the output flat is not where the chain of nodes ends (logits)"),
        "{message}"
    );
    // A node reading something that exists nowhere.
    let mut model = ModelProto::decode(&graph(vec![relu()], vec![], &IMAGE)[..]).unwrap();
    model.graph.as_mut().unwrap().node[1].input[0] = "ghost".into();
    let message = error(&model.encode_to_vec());
    assert!(
        message.contains(
            "node /relu (Relu): reads ghost, which is not the output of the node before it"
        ),
        "{message}"
    );
}

/// Random byte damage and every truncation of a real model: a model or a named error, never a
/// panic (the test fails on a panic).
#[test]
fn damaged_files_never_panic() {
    let original = include_bytes!("../../tests/onnx/matmul.onnx");
    for len in (0..original.len()).step_by(41) {
        let _ = import_bytes(Path::new("t.onnx"), &original[..len]);
    }
    let mut seed = 0x2545_f491u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as usize
    };
    let mut named = 0;
    for _ in 0..3000 {
        let mut bytes = original.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = next() % bytes.len();
            bytes[at] = next() as u8;
        }
        if import_bytes(Path::new("t.onnx"), &bytes).is_err() {
            named += 1;
        }
    }
    // Most single-byte damage lands in weight data and still imports; some must be refused.
    assert!(named > 0);
}
