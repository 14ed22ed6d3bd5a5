"""ONNX-building helpers shared by scripts/make_onnx_test_models.py (random-weight test models)
and scripts/train_onnx_models.py (trained models): nodes and graphs in the form
`torch.onnx.export` writes (opset 17, NCHW, input `input` [batch, C, 28, 28], output `logits`
[batch, 10], PyTorch's node and initializer names), the FashionMNIST IDX reader, and
onnxruntime's float logits with its graph rewriting off."""

import gzip
import pathlib

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
RAW = ROOT / "data" / "FashionMNIST" / "raw"
PRODUCER = "qcnn scripts"


def image_input(channels=1):
    return helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, 28, 28])


def logits_output(name="logits"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 10])


def model(nodes, inits, name, opset=17, inputs=None, outputs=None, producer="make_onnx_test_models.py"):
    """A checked model (full shape inference) with one image input and one logits output."""
    graph = helper.make_graph(
        nodes, name, inputs or [image_input()], outputs or [logits_output()], initializer=inits
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer)
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def conv(name, x, y, w, b=None, **attrs):
    """A Conv node reading initializers `w` (and `b`)."""
    inputs = [x, w.name] + ([b.name] if b is not None else [])
    return helper.make_node("Conv", inputs, [y], name=name, **attrs)


def batch_norm_node(prefix, x, y, scale, shift, mean, var, epsilon=1e-5):
    """Inference-mode BatchNormalization with PyTorch's initializer names and attributes
    (ONNX momentum = 1 - PyTorch's 0.1)."""
    inits = [
        numpy_helper.from_array(np.asarray(scale, np.float32), f"{prefix}.weight"),
        numpy_helper.from_array(np.asarray(shift, np.float32), f"{prefix}.bias"),
        numpy_helper.from_array(np.asarray(mean, np.float32), f"{prefix}.running_mean"),
        numpy_helper.from_array(np.asarray(var, np.float32), f"{prefix}.running_var"),
    ]
    node = helper.make_node(
        "BatchNormalization",
        [x] + [i.name for i in inits],
        [y],
        name=f"/{prefix}/BatchNormalization",
        epsilon=epsilon,
        momentum=0.9,
    )
    return node, inits


def clip_limits(prefix="", low=0.0, high=6.0):
    """The two `Constant` nodes torch.onnx.export writes for ReLU6's limits, named
    `{prefix}/Constant` and `{prefix}/Constant_1`; their outputs are `{prefix}zero` and
    `{prefix}six` (plain `zero` and `six` without a prefix)."""
    return [
        helper.make_node("Constant", [], [f"{prefix}zero"], name=f"{prefix}/Constant", value=helper.make_tensor("v", TensorProto.FLOAT, [], [low])),
        helper.make_node("Constant", [], [f"{prefix}six"], name=f"{prefix}/Constant_1", value=helper.make_tensor("v", TensorProto.FLOAT, [], [high])),
    ]


def idx_images(name):
    """All images of an IDX file in data/FashionMNIST/raw, u8, N x 1 x 28 x 28."""
    with gzip.open(RAW / name, "rb") as f:
        data = f.read()
    assert int.from_bytes(data[:4], "big") == 2051, f"{name}: not an IDX image file"
    count = int.from_bytes(data[4:8], "big")
    return np.frombuffer(data, dtype=np.uint8, offset=16)[: count * 784].reshape(count, 1, 28, 28)


def idx_labels(name):
    with gzip.open(RAW / name, "rb") as f:
        data = f.read()
    assert int.from_bytes(data[:4], "big") == 2049, f"{name}: not an IDX label file"
    return np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int64)


def fashion_mnist_test_images(count):
    """Test images 0..count as the float models see them: pixel/255."""
    return idx_images("t10k-images-idx3-ubyte.gz")[:count].astype(np.float32) / 255.0


def session(m):
    """onnxruntime on the CPU with no graph rewriting (fusions), so it computes the nodes as
    written."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])


def logits_of(m, images):
    """onnxruntime's float output; for a model ending in Softmax, the tensor the Softmax reads."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    last = m.graph.node[-1]
    if last.op_type == "Softmax":
        m.graph.output.append(helper.make_tensor_value_info(last.input[0], TensorProto.FLOAT, ["batch", 10]))
        name = last.input[0]
    else:
        name = m.graph.output[0].name
    (logits,) = session(m).run([name], {"input": images})
    return logits


def shortest_floats(rows):
    """float32 values as the shortest text that reads back to the same float32."""
    return [[float(str(v)) for v in row] for row in np.asarray(rows, np.float32)]
