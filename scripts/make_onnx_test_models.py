#!/usr/bin/env python3
"""Builds the ONNX test models of quantize/tests/onnx/ and their golden logits.

The models are written with the `onnx` package (random weights from a fixed seed), and the
golden logits are onnxruntime's float outputs on the first 256 FashionMNIST test images
(pixel/255, N x 1 x 28 x 28), for these models and for the PyTorch export of the release
checkpoint (../shared/fixtures/torch/model.onnx). The Rust tests
(quantize/tests/onnx_import.rs) check qcnn's float reference against them and the bad models'
errors. Run from the project root, with onnx, onnxruntime and numpy in the venv:

    .venv/bin/pip install onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6
    .venv/bin/python scripts/make_onnx_test_models.py

The outputs are committed; running it again rewrites the same files (fixed seed, pinned versions).
"""

import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from onnx_builders import (  # noqa: E402  (the helpers shared with train_onnx_models.py)
    ROOT,
    batch_norm_node,
    clip_limits as shared_clip_limits,
    conv,
    fashion_mnist_test_images,
    image_input,
    logits_of,
    logits_output,
    model,
    shortest_floats,
)

OUT = ROOT / "quantize" / "tests" / "onnx"
# The Cortex-M4 graph models of the firmware's `graph` test part (issue 12's CMSIS-NN table).
M4_OUT = ROOT / "firmware" / "graph-models"
TORCH_EXPORT = ROOT.parent / "shared" / "fixtures" / "torch" / "model.onnx"
RESNET8 = ROOT.parent / "shared" / "fixtures" / "onnx" / "resnet8_fmnist.onnx"
GOLDEN_IMAGES = 256

rng = np.random.default_rng(12)


def weight(name, *shape, scale=None):
    """A He-style random initializer, so activations stay in a sensible range."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    scale = scale if scale is not None else np.sqrt(2.0 / fan_in)
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def batch_norm(prefix, channels, x, y):
    """Inference-mode BatchNormalization with random statistics, as PyTorch exports it."""
    return batch_norm_node(
        prefix, x, y,
        rng.uniform(0.5, 1.5, channels), rng.uniform(-0.2, 0.2, channels),
        rng.uniform(-0.3, 0.3, channels), rng.uniform(0.2, 2.0, channels),
    )


def batchnorm_model():
    """BatchNorm after Conv (no bias, as PyTorch writes bias=False) and after Gemm; channels
    5, 7, 9, 13; a 5x5 kernel at stride 2 with padding 2; odd widths 7 and 5."""
    w1, w2, w3 = weight("conv1.weight", 5, 1, 3, 3), weight("conv2.weight", 7, 5, 5, 5), weight("conv3.weight", 9, 7, 3, 3)
    b2, b3 = weight("conv2.bias", 7, scale=0.1), weight("conv3.bias", 9, scale=0.1)
    fc1, fc1b = weight("fc1.weight", 13, 225), weight("fc1.bias", 13, scale=0.1)
    fc2, fc2b = weight("fc2.weight", 13, 10), weight("fc2.bias", 10, scale=0.1)
    bn1, bn1i = batch_norm("bn1", 5, "c1", "n1")
    bn2, bn2i = batch_norm("bn2", 7, "c2", "n2")
    bn3, bn3i = batch_norm("bn3", 13, "f1", "nf1")
    nodes = [
        conv("/conv1/Conv", "input", "c1", w1, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1),
        bn1,
        helper.make_node("Relu", ["n1"], ["r1"], name="/relu1/Relu"),
        conv("/conv2/Conv", "r1", "c2", w2, b2, kernel_shape=[5, 5], pads=[2, 2, 2, 2], strides=[2, 2]),
        bn2,
        helper.make_node("Relu", ["n2"], ["r2"], name="/relu2/Relu"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="/pool2/MaxPool", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=0),
        conv("/conv3/Conv", "p2", "c3", w3, b3, kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c3"], ["r3"], name="/relu3/Relu"),
        helper.make_node("Flatten", ["r3"], ["flat"], name="/Flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["f1"], name="/fc1/Gemm", transB=1),
        bn3,
        helper.make_node("Relu", ["nf1"], ["rf1"], name="/relu4/Relu"),
        helper.make_node("Dropout", ["rf1"], ["d1"], name="/dropout/Dropout"),
        # transB = 0 (weight stored in x out), alpha and beta not 1.
        helper.make_node("Gemm", ["d1", "fc2.weight", "fc2.bias"], ["logits"], name="/fc2/Gemm", alpha=0.5, beta=2.0),
    ]
    inits = [w1, w2, b2, w3, b3, fc1, fc1b, fc2, fc2b] + bn1i + bn2i + bn3i
    return model(nodes, inits, "batchnorm")


def matmul_model():
    """MatMul + Add (the bias first in one Add), Relu after MaxPool (reordered on import), a
    1x1 kernel, a stride-2 padded 3x3 kernel, Reshape by a Constant node, Identity, opset 13,
    and a trailing Softmax."""
    w1, b1 = weight("conv1.weight", 3, 1, 3, 3), weight("conv1.bias", 3, scale=0.1)
    w2, b2 = weight("conv2.weight", 6, 3, 1, 1), weight("conv2.bias", 6, scale=0.1)
    m1, a1 = weight("fc1.weight", 294, 11), weight("fc1.bias", 11, scale=0.1)
    m2, a2 = weight("fc2.weight", 11, 10), weight("fc2.bias", 10, scale=0.1)
    shape = numpy_helper.from_array(np.array([-1, 294], dtype=np.int64), "shape")
    nodes = [
        conv("/conv1/Conv", "input", "c1", w1, b1, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("MaxPool", ["c1"], ["p1"], name="/pool1/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["p1"], ["r1"], name="/relu1/Relu"),
        conv("/conv2/Conv", "r1", "c2", w2, b2, kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="/relu2/Relu"),
        helper.make_node("Constant", [], ["shape"], name="/Constant", value=shape),
        helper.make_node("Reshape", ["r2", "shape"], ["flat"], name="/Reshape"),
        helper.make_node("Identity", ["flat"], ["flat2"], name="/Identity"),
        helper.make_node("MatMul", ["flat2", "fc1.weight"], ["mm1"], name="/fc1/MatMul"),
        helper.make_node("Add", ["mm1", "fc1.bias"], ["f1"], name="/fc1/Add"),
        helper.make_node("Relu", ["f1"], ["rf1"], name="/relu3/Relu"),
        helper.make_node("MatMul", ["rf1", "fc2.weight"], ["mm2"], name="/fc2/MatMul"),
        helper.make_node("Add", ["fc2.bias", "mm2"], ["scores"], name="/fc2/Add"),
        helper.make_node("Softmax", ["scores"], ["probabilities"], name="/Softmax", axis=1),
    ]
    inits = [w1, b1, w2, b2, m1, a1, m2, a2]
    return model(nodes, inits, "matmul", opset=13, outputs=[logits_output("probabilities")])


def small_chain(extra_nodes=(), extra_inits=(), conv_attrs=None, after_conv="c1"):
    """Conv(1->2, 3x3, stride 2) -> Relu -> Flatten -> Gemm(392->10): the bad models' base."""
    w1, b1 = weight("conv.weight", 2, 1, 3, 3), weight("conv.bias", 2, scale=0.1)
    fc, fcb = weight("fc.weight", 10, 392), weight("fc.bias", 10, scale=0.1)
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]} | (conv_attrs or {})
    nodes = [conv("/conv/Conv", "input", "c1", w1, b1, **attrs), *extra_nodes,
             helper.make_node("Relu", [after_conv], ["r1"], name="/relu/Relu"),
             helper.make_node("Flatten", ["r1"], ["flat"], name="/Flatten", axis=1),
             helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1)]
    return nodes, [w1, b1, fc, fcb, *extra_inits]


def bad_models():
    """Each breaks one rule; the tests check the error names the right node or input."""
    out = {}
    nodes, inits = small_chain()
    second = helper.make_tensor_value_info("second", TensorProto.FLOAT, ["batch", 1, 28, 28])
    out["bad_two_inputs"] = model(nodes, inits, "two_inputs", inputs=[image_input(), second])

    # An operator of the default domain that qcnn does not know.
    nodes, inits = small_chain([helper.make_node("Tanh", ["c1"], ["t1"], name="/act/Tanh")], after_conv="t1")
    out["bad_unknown_op"] = model(nodes, inits, "unknown_op")

    # An operator of another domain.
    nodes, inits = small_chain([helper.make_node("Gelu", ["c1"], ["g1"], name="/act/Gelu", domain="com.example")], after_conv="g1")
    graph = helper.make_graph(nodes, "unknown_op", [image_input()], [logits_output()], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)], producer_name="make_onnx_test_models.py")
    m.ir_version = 8
    out["bad_custom_domain"] = m

    nodes, inits = small_chain()
    nan = numpy_helper.to_array(inits[0]).copy()
    nan[1, 0, 1, 1] = np.nan
    inits[0] = numpy_helper.from_array(nan, "conv.weight")
    out["bad_nan_initializer"] = model(nodes, inits, "nan_initializer")

    # group 2: a grouped convolution.
    grouped = helper.make_node("Conv", ["c1", "g.weight"], ["g1"], name="/grouped/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2)
    g = weight("g.weight", 2, 1, 3, 3)
    nodes, inits = small_chain([grouped], [g], after_conv="g1")
    out["bad_group"] = model(nodes, inits, "grouped_conv")

    nodes, inits = small_chain([helper.make_node("AveragePool", ["c1"], ["a1"], name="/avg/AveragePool", kernel_shape=[1, 1])], after_conv="a1")
    out["bad_average_pool"] = model(nodes, inits, "average_pool")

    nodes, inits = small_chain()
    out["bad_opset_11"] = model(nodes, inits, "opset_11", opset=11)

    nodes, inits = small_chain(conv_attrs={"kernel_shape": [3, 3], "pads": [0, 0, 2, 2]})
    out["bad_asymmetric_pads"] = model(nodes, inits, "asymmetric_pads")
    out.update(bad_qdq_models())
    return out


def qdq_pair(x, prefix, scale, zero_point, axis=None):
    """QuantizeLinear then DequantizeLinear of activation `x`, onnxruntime's QDQ form."""
    inits = [numpy_helper.from_array(np.asarray(scale, np.float32), f"{prefix}_scale"),
             numpy_helper.from_array(np.asarray(zero_point, np.int8), f"{prefix}_zero_point")]
    attrs = {} if axis is None else {"axis": axis}
    nodes = [helper.make_node("QuantizeLinear", [x, inits[0].name, inits[1].name], [f"{prefix}_q"], name=f"{prefix}_QuantizeLinear", **attrs),
             helper.make_node("DequantizeLinear", [f"{prefix}_q", inits[0].name, inits[1].name], [f"{prefix}_dq"], name=f"{prefix}_DequantizeLinear", **attrs)]
    return nodes, inits


def bad_qdq_models():
    """QDQ patterns qcnn does not map onto its int8 scheme, each a named error (no random
    draws: the models above stay as they were)."""
    out = {}
    # Per-channel activation quantization (one scale per channel of the Conv's output).
    pair, pair_inits = qdq_pair("c1", "/act", [0.05, 0.07], [-128, -128], axis=1)
    nodes, inits = small_chain(pair, pair_inits, after_conv="/act_dq")
    out["bad_qdq_per_channel_activation"] = model(nodes, inits, "qdq_per_channel_activation")

    # A DequantizeLinear whose scale is not its QuantizeLinear's (a requantization).
    pair, pair_inits = qdq_pair("c1", "/act", 0.05, -128)
    other = numpy_helper.from_array(np.asarray(0.1, np.float32), "/act_other_scale")
    pair[1].input[1] = other.name
    nodes, inits = small_chain(pair, pair_inits + [other], after_conv="/act_dq")
    out["bad_qdq_requantize"] = model(nodes, inits, "qdq_requantize")

    # QOperator format: QLinearConv on uint8 tensors.
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.uint8), "qconv.weight")
    scalars = [numpy_helper.from_array(np.asarray(v, dt), n) for n, v, dt in [
        ("x_scale", 1 / 255, np.float32), ("x_zero_point", 0, np.uint8), ("w_scale", 0.01, np.float32),
        ("w_zero_point", 0, np.uint8), ("y_scale", 0.05, np.float32), ("y_zero_point", 0, np.uint8)]]
    fc, fcb = (numpy_helper.from_array(np.zeros((10, 392), np.float32), "fc.weight"),
               numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias"))
    nodes = [helper.make_node("QuantizeLinear", ["input", "x_scale", "x_zero_point"], ["xq"], name="/input_QuantizeLinear"),
             helper.make_node("QLinearConv", ["xq", "x_scale", "x_zero_point", "qconv.weight", "w_scale", "w_zero_point", "y_scale", "y_zero_point"],
                              ["yq"], name="/qconv/QLinearConv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero_point"], ["y"], name="/qconv_DequantizeLinear"),
             helper.make_node("Flatten", ["y"], ["flat"], name="/Flatten", axis=1),
             helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1)]
    out["bad_qoperator"] = model(nodes, [w, *scalars, fc, fcb], "qoperator")
    return out


def graph_models():
    """Random-weight graphs for the graph engine, one per operator and layer kind, with odd
    sizes: channels not a multiple of 4, odd widths, stride 2 with padding, non-square
    kernels, asymmetric pads. Their own generator, so the models above stay as they were."""
    global rng
    saved, rng = rng, np.random.default_rng(13)
    out = {}
    clip_limits = shared_clip_limits()

    # Every graph operator once: non-square kernel with asymmetric pads, BatchNorm folded,
    # Clip (ReLU6), depthwise and grouped Conv, MaxPool with padding, both AveragePool
    # paddings, an Add of two branches with a fused Relu, a BatchNorm with nothing to fold
    # into, ReduceMean over H and W.
    w1 = weight("c1.weight", 6, 1, 3, 5)
    bn1, bn1_inits = batch_norm("bn1", 6, "c1", "b1")
    w2, b2 = weight("dw.weight", 6, 1, 3, 3), weight("dw.bias", 6, scale=0.1)
    w3, b3 = weight("gc.weight", 9, 2, 1, 1), weight("gc.bias", 9, scale=0.1)
    bn2, bn2_inits = batch_norm("bn2", 9, "sum", "b2")
    fc, fcb = weight("fc.weight", 10, 9), weight("fc.bias", 10, scale=0.1)
    nodes = [
        *clip_limits,
        conv("/c1/Conv", "input", "c1", w1, kernel_shape=[3, 5], strides=[2, 1], pads=[1, 2, 0, 1]),
        bn1,
        helper.make_node("Clip", ["b1", "zero", "six"], ["r1"], name="/relu6/Clip"),
        conv("/dw/Conv", "r1", "d1", w2, b2, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], group=6),
        helper.make_node("Relu", ["d1"], ["r2"], name="/relu2/Relu"),
        conv("/gc/Conv", "r2", "g1", w3, b3, kernel_shape=[1, 1], group=3),
        helper.make_node("MaxPool", ["g1"], ["m1"], name="/pool/MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["m1"], ["a1"], name="/avg1/AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("AveragePool", ["m1"], ["a2"], name="/avg2/AveragePool", kernel_shape=[2, 3], pads=[1, 1, 0, 1], count_include_pad=0),
        helper.make_node("Add", ["a1", "a2"], ["add"], name="/add/Add"),
        helper.make_node("Relu", ["add"], ["sum"], name="/relu3/Relu"),
        bn2,
        helper.make_node("ReduceMean", ["b2"], ["gap"], name="/mean/ReduceMean", axes=[2, 3], keepdims=1),
        helper.make_node("Flatten", ["gap"], ["flat"], name="/Flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1),
    ]
    out["graph_ops"] = model(nodes, [w1, *bn1_inits, w2, b2, w3, b3, *bn2_inits, fc, fcb], "graph_ops")

    # DS-CNN style: a non-square first conv, then depthwise-separable blocks (BN, ReLU),
    # AveragePool over the whole map, Gemm.
    nodes, inits, x, c = [], [], "input", 1
    def block(prefix, x, cin, cout, k, group, stride, pads):
        w = weight(f"{prefix}.weight", cout, cin // group, *k)
        bn, bn_inits = batch_norm(f"{prefix}_bn", cout, f"{prefix}_c", f"{prefix}_b")
        nodes.extend([conv(f"/{prefix}/Conv", x, f"{prefix}_c", w, kernel_shape=list(k), strides=stride, pads=pads, group=group), bn,
                      helper.make_node("Relu", [f"{prefix}_b"], [f"{prefix}_r"], name=f"/{prefix}/Relu")])
        inits.extend([w, *bn_inits])
        return f"{prefix}_r"
    x = block("conv1", x, 1, 13, (5, 3), 1, [2, 2], [2, 1, 2, 1])   # 13x14x14
    for i in range(2):
        x = block(f"dw{i}", x, 13, 13, (3, 3), 13, [1, 1], [1, 1, 1, 1])
        x = block(f"pw{i}", x, 13, 13, (1, 1), 1, [1, 1], [0, 0, 0, 0])
    fc, fcb = weight("ds_fc.weight", 10, 13), weight("ds_fc.bias", 10, scale=0.1)
    nodes += [helper.make_node("AveragePool", [x], ["avg"], name="/avg/AveragePool", kernel_shape=[14, 14]),
              helper.make_node("Flatten", ["avg"], ["flat"], name="/Flatten", axis=1),
              helper.make_node("Gemm", ["flat", "ds_fc.weight", "ds_fc.bias"], ["logits"], name="/fc/Gemm", transB=1)]
    out["ds_cnn"] = model(nodes, [*inits, fc, fcb], "ds_cnn")

    # MobileNet style: ReLU6 as Clip with Constant limits, depthwise stride 2, pointwise,
    # MaxPool with padding, GlobalAveragePool.
    nodes, inits = list(clip_limits), []
    def relu6_block(prefix, x, cin, cout, k, group, stride, pad):
        w = weight(f"{prefix}.weight", cout, cin // group, k, k)
        bn, bn_inits = batch_norm(f"{prefix}_bn", cout, f"{prefix}_c", f"{prefix}_b")
        nodes.extend([conv(f"/{prefix}/Conv", x, f"{prefix}_c", w, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group), bn,
                      helper.make_node("Clip", [f"{prefix}_b", "zero", "six"], [f"{prefix}_r"], name=f"/{prefix}/Clip")])
        inits.extend([w, *bn_inits])
        return f"{prefix}_r"
    x = relu6_block("stem", "input", 1, 7, 3, 1, 2, 1)          # 7x14x14
    x = relu6_block("dw1", x, 7, 7, 3, 7, 2, 1)                  # 7x7x7
    x = relu6_block("pw1", x, 7, 18, 1, 1, 1, 0)                 # 18x7x7
    nodes.append(helper.make_node("MaxPool", [x], ["mp"], name="/mp/MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))  # 18x4x4
    x = relu6_block("dw2", "mp", 18, 18, 3, 18, 1, 1)
    x = relu6_block("pw2", x, 18, 30, 1, 1, 1, 0)
    fc, fcb = weight("mb_fc.weight", 10, 30), weight("mb_fc.bias", 10, scale=0.1)
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="/gap/GlobalAveragePool"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="/Flatten", axis=1),
              helper.make_node("Gemm", ["flat", "mb_fc.weight", "mb_fc.bias"], ["logits"], name="/fc/Gemm", transB=1)]
    out["mobilenet"] = model(nodes, [*inits, fc, fcb], "mobilenet")
    rng = saved
    return out


def m4_models():
    """The DS-CNN and MobileNet architectures of issue 12's CMSIS-NN table, random weights
    (instruction counts barely depend on them): their MACs equal the table's, 3,851,648 and
    341,488. Their own generator, so the models above stay as they were."""
    global rng
    saved, rng = rng, np.random.default_rng(14)
    out = {}
    clip_limits = [
        helper.make_node("Constant", [], ["zero"], name="/Constant", value=helper.make_tensor("v", TensorProto.FLOAT, [], [0.0])),
        helper.make_node("Constant", [], ["six"], name="/Constant_1", value=helper.make_tensor("v", TensorProto.FLOAT, [], [6.0])),
    ]

    def block(nodes, inits, prefix, x, cin, cout, k, group, stride, pads, relu6=False):
        w = weight(f"{prefix}.weight", cout, cin // group, *k)
        bn, bn_inits = batch_norm(f"{prefix}_bn", cout, f"{prefix}_c", f"{prefix}_b")
        act = (helper.make_node("Clip", [f"{prefix}_b", "zero", "six"], [f"{prefix}_r"], name=f"/{prefix}/Clip") if relu6
               else helper.make_node("Relu", [f"{prefix}_b"], [f"{prefix}_r"], name=f"/{prefix}/Relu"))
        nodes.extend([conv(f"/{prefix}/Conv", x, f"{prefix}_c", w, kernel_shape=list(k), strides=stride, pads=pads, group=group), bn, act])
        inits.extend([w, *bn_inits])
        return f"{prefix}_r"

    # DS-CNN: Conv 1->64 5x3 s2 pads (2,1,2,1) -> 64x14x14; 4 x (depthwise 3x3, pointwise 64->64);
    # AveragePool 14x14; Gemm 64->10.
    nodes, inits = [], []
    x = block(nodes, inits, "conv1", "input", 1, 64, (5, 3), 1, [2, 2], [2, 1, 2, 1])
    for i in range(4):
        x = block(nodes, inits, f"dw{i}", x, 64, 64, (3, 3), 64, [1, 1], [1, 1, 1, 1])
        x = block(nodes, inits, f"pw{i}", x, 64, 64, (1, 1), 1, [1, 1], [0, 0, 0, 0])
    fc, fcb = weight("fc.weight", 10, 64), weight("fc.bias", 10, scale=0.1)
    nodes += [helper.make_node("AveragePool", [x], ["avg"], name="/avg/AveragePool", kernel_shape=[14, 14]),
              helper.make_node("Flatten", ["avg"], ["flat"], name="/Flatten", axis=1),
              helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1)]
    out["ds_cnn_m4"] = model(nodes, [*inits, fc, fcb], "ds_cnn_m4")

    # MobileNet: Conv 1->8 3x3 s2 p1 -> 8x14x14, ReLU6; depthwise-separable blocks 8->16 s1,
    # 16->32 s2, 32->64 s1, 64->128 s2 (-> 128x4x4), a MaxPool 3x3 s1 p1 (no MACs);
    # GlobalAveragePool; Gemm 128->10.
    nodes, inits = list(clip_limits), []
    x = block(nodes, inits, "stem", "input", 1, 8, (3, 3), 1, [2, 2], [1, 1, 1, 1], relu6=True)
    for i, (cin, cout, stride) in enumerate([(8, 16, 1), (16, 32, 2), (32, 64, 1), (64, 128, 2)]):
        x = block(nodes, inits, f"dw{i}", x, cin, cin, (3, 3), cin, [stride, stride], [1, 1, 1, 1], relu6=True)
        x = block(nodes, inits, f"pw{i}", x, cin, cout, (1, 1), 1, [1, 1], [0, 0, 0, 0], relu6=True)
        if i == 1:
            nodes.append(helper.make_node("MaxPool", [x], ["mp"], name="/mp/MaxPool", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]))
            x = "mp"
    fc, fcb = weight("fc.weight", 10, 128), weight("fc.bias", 10, scale=0.1)
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="/gap/GlobalAveragePool"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="/Flatten", axis=1),
              helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1)]
    out["mobilenet_m4"] = model(nodes, [*inits, fc, fcb], "mobilenet_m4")
    rng = saved
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    images = fashion_mnist_test_images(GOLDEN_IMAGES)
    golden = {
        "first_test_index": 0,
        "images": GOLDEN_IMAGES,
        "input": "pixel/255, N x 1 x 28 x 28",
        "made_by": f"scripts/make_onnx_test_models.py, onnxruntime {onnxruntime.__version__} "
        "(CPU, graph optimizations off)",
        "models": {},
    }
    good = {"batchnorm": batchnorm_model(), "matmul": matmul_model()}
    for name, m in good.items():
        onnx.save(m, OUT / f"{name}.onnx")
        golden["models"][f"{name}.onnx"] = logits_of(m, images)
    golden["models"]["torch/model.onnx"] = logits_of(onnx.load(TORCH_EXPORT), images)
    for name, m in graph_models().items():
        onnx.save(m, OUT / f"{name}.onnx")
        golden["models"][f"{name}.onnx"] = logits_of(m, images)
    golden["models"]["onnx/resnet8_fmnist.onnx"] = logits_of(onnx.load(RESNET8), images)
    M4_OUT.mkdir(parents=True, exist_ok=True)
    for name, m in m4_models().items():
        onnx.save(m, M4_OUT / f"{name}.onnx")
    for name, m in bad_models().items():
        onnx.save(m, OUT / f"{name}.onnx")
    for name, logits in golden["models"].items():
        golden["models"][name] = shortest_floats(logits)
    with open(OUT / "golden_logits.json", "w") as f:
        json.dump(golden, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(good)} models, their golden logits and the bad models to {OUT}")


if __name__ == "__main__":
    main()
