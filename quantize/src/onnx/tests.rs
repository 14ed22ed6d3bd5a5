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

/// The model in `bytes`, which must be a chain of layers.
fn chain(bytes: &[u8]) -> Imported {
    match import_bytes(Path::new("t.onnx"), bytes).unwrap() {
        AnyImport::Sequential(imported) => imported,
        AnyImport::Graph(graph, _) => panic!("a graph: {:?}", graph.nodes),
    }
}

/// The model in `bytes`, which must be a graph: its nodes' op names.
fn graph_ops(bytes: &[u8]) -> Vec<String> {
    match import_bytes(Path::new("t.onnx"), bytes).unwrap() {
        AnyImport::Graph(graph, _) => graph.nodes.iter().map(|n| n.op.name()).collect(),
        AnyImport::Sequential(imported) => panic!("a chain: {:?}", imported.model.layers),
    }
}

#[test]
fn the_base_graph_imports() {
    let imported = chain(&graph(vec![relu()], vec![], &IMAGE));
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
fn conv_shapes_the_chain_cannot_hold_become_graphs_and_the_rest_name_the_node() {
    let with_conv = |w: TensorProto, attributes: Vec<AttributeProto>| {
        let mut middle = vec![node("Conv", "/conv2", &["x", "w2"], "x2", attributes)];
        middle.push(node("Relu", "/relu", &["x2"], "y", vec![]));
        graph(middle, vec![w], &IMAGE)
    };
    // A non-square kernel, an even one with asymmetric pads, a depthwise one: the layer
    // sequence has none of them (the input stays 4×4 for the Gemm).
    let ops = graph_ops(&with_conv(
        floats("w2", &[2, 2, 3, 1], 0.0),
        vec![attribute_ints("pads", &[1, 0, 1, 0])],
    ));
    assert_eq!(ops, ["conv3x3/1", "conv3x1/1+relu", "gemm"]);
    let ops = graph_ops(&with_conv(
        floats("w2", &[2, 2, 2, 2], 0.0),
        vec![attribute_ints("pads", &[0, 0, 1, 1])],
    ));
    assert_eq!(ops[1], "conv2x2/1+relu");
    let depthwise = vec![
        attribute_ints("pads", &[1, 1, 1, 1]),
        AttributeProto {
            name: "group".into(),
            r#type: AttributeType::Int as i32,
            i: 2,
            ..Default::default()
        },
    ];
    let ops = graph_ops(&with_conv(floats("w2", &[2, 1, 3, 3], 0.0), depthwise));
    assert_eq!(ops[1], "conv3x3/1 groups 2+relu");
    let message = error(&with_conv(
        floats("w2", &[2, 2, 3, 3], 0.0),
        vec![attribute_ints("dilations", &[2, 2])],
    ));
    assert!(
        message.contains("node /conv2 (Conv): dilations [2, 2] are not supported"),
        "{message}"
    );
    let message = error(&with_conv(floats("w2", &[2, 5, 3, 3], 0.0), vec![]));
    assert!(
        message.contains(
            "node /conv2 (Conv): group 1 does not fit 2 input channels and a weight of shape \
             [2, 5, 3, 3]"
        ),
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
fn nodes_the_chain_cannot_hold_become_graph_nodes() {
    // A BatchNormalization after a Relu has nothing to fold into: a per-channel affine op.
    let stats = ["s", "b", "m", "v"].map(|n| floats(n, &[2], 1.0)).to_vec();
    let bn = node(
        "BatchNormalization",
        "/bn",
        &["r", "s", "b", "m", "v"],
        "y",
        vec![],
    );
    let ops = graph_ops(&graph(
        vec![node("Relu", "/relu", &["x"], "r", vec![]), bn],
        stats,
        &IMAGE,
    ));
    assert_eq!(ops, ["conv3x3/1+relu", "conv1x1/1 groups 2", "gemm"]);
    // A second Relu changes nothing: both fuse into the Conv, which stays a chain.
    let twice = vec![
        node("Relu", "/relu", &["x"], "r", vec![]),
        node("Relu", "/relu2", &["r"], "y", vec![]),
    ];
    let layers = chain(&graph(twice, vec![], &IMAGE)).model.layers;
    assert_eq!(layers.len(), 4, "{layers:?}");
    // A Relu after a MaxPool fuses into the Conv before it (max commutes with ReLU).
    let pool = vec![
        node(
            "MaxPool",
            "/pool",
            &["x"],
            "p",
            vec![attribute_ints("kernel_shape", &[1, 1])],
        ),
        node("Relu", "/relu", &["p"], "y", vec![]),
    ];
    let imported = chain(&graph(pool, vec![], &IMAGE));
    assert_eq!(
        imported.report.moved,
        ["Relu /relu before MaxPool /pool (the same result: max commutes with ReLU)"]
    );
    let kinds = qcnn_config::architecture::layer_names(&imported.model.layers);
    assert_eq!(kinds, ["conv2d", "relu", "maxpool2d", "flatten", "linear"]);
}

#[test]
fn a_softmax_is_dropped_only_at_the_end() {
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
        message.contains(
            "node /softmax (Softmax): only a Softmax at the very end of the graph can be dropped"
        ),
        "{message}"
    );
    // Without the node after it, the Softmax is dropped and said so.
    let g = model.graph.as_mut().unwrap();
    g.node.pop();
    g.output[0].name = "probabilities".into();
    let imported = chain(&model.encode_to_vec());
    assert!(imported.report.softmax_dropped());
    // Over another axis than the classes it would change the argmax.
    let g = model.graph.as_mut().unwrap();
    g.node.last_mut().unwrap().attribute.push(AttributeProto {
        name: "axis".into(),
        r#type: AttributeType::Int as i32,
        i: 0,
        ..Default::default()
    });
    let message = error(&model.encode_to_vec());
    assert!(
        message.contains("node /softmax (Softmax): axis 0: only a softmax over the classes"),
        "{message}"
    );
}

#[test]
fn a_constant_add_folds_only_per_channel() {
    // [2, 1, 1] is one value per channel of the Conv's N×2×4×4 output: folded into its bias.
    let add = |dims: &[i64]| {
        let nodes = vec![node("Add", "/add", &["x", "k"], "y", vec![])];
        import_bytes(
            Path::new("t.onnx"),
            &graph(nodes, vec![floats("k", dims, 0.5)], &IMAGE),
        )
    };
    let imported = match add(&[2, 1, 1]).unwrap() {
        AnyImport::Sequential(imported) => imported,
        AnyImport::Graph(..) => panic!("a graph"),
    };
    assert_eq!(
        imported.checkpoint.tensors["layers.0.bias"].data,
        [0.5, 0.51]
    );
    assert_eq!(
        imported.report.folded,
        ["Add /add into the bias of Conv /conv"]
    );
    // [4] broadcasts along W in ONNX, not per channel: refused, never folded as if it were.
    let message = add(&[4]).unwrap_err().to_string();
    assert!(
        message.contains("node /add (Add): adds a constant of shape [4]"),
        "{message}"
    );
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
    // A graph whose declared output is a map, not (batch, classes).
    let mut model = ModelProto::decode(&graph(vec![relu()], vec![], &IMAGE)[..]).unwrap();
    model.graph.as_mut().unwrap().output[0].name = "flat".into();
    let message = error(&model.encode_to_vec());
    assert!(
        message.contains("the model ends with an N×[2, 4, 4] map, expected a 2-D"),
        "{message}"
    );
    // A node reading something that exists nowhere.
    let mut model = ModelProto::decode(&graph(vec![relu()], vec![], &IMAGE)[..]).unwrap();
    model.graph.as_mut().unwrap().node[1].input[0] = "ghost".into();
    let message = error(&model.encode_to_vec());
    assert!(
        message.contains("node /relu (Relu): reads ghost, which no earlier node writes"),
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
