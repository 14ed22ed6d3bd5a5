#!/usr/bin/env python3
"""Builds models/variants/: small trained networks of the DS-CNN, MobileNet and ResNet kinds
whose shapes differ from the repository's own models, to check that qcnn runs models it was
not tuned on (issue 12: "the acceptance check also runs trained models that you do not have").

Each variant changes what the repository's models keep fixed: widths that are not multiples
of 8 (nor of 4), other depths, depthwise convs at stride 2 and 5x5, ReLU instead of ReLU6 in a
MobileNet, a residual block with a 1x1 projection shortcut. They are trained briefly with JAX
(training images 0..TRAIN_IMAGES-1, one epoch; scripts/train_onnx_models.py's training step
and ONNX export conventions), then scored by onnxruntime as scripts/train_onnx_models.py
scores its models: float (graph optimizations off) and its own QDQ per-channel int8
(`quant_pre_process`, then `quantize_static`, MinMax on training images 0..999), on the
validation images 50,000..59,999 and the 10,000 test images, with the float logits of test
images 0..255 as golden logits. It writes models/variants/<name>.onnx and
models/variants/reference.json, which quantize/tests/onnx_variants.rs reads. Run from the
project root (about a minute per model on 2 cores):

    .venv/bin/python scripts/make_variant_models.py [name ...]
"""

import argparse
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import optax
from onnx import helper

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from onnx_builders import (  # noqa: E402
    ROOT,
    idx_images,
    idx_labels,
    model,
)
from train_onnx_models import (  # noqa: E402
    CALIBRATION,
    VALIDATION,
    activation_nodes,
    batch_norm,
    conv2d,
    export_conv_bn,
    export_fc,
    init_conv,
    init_fc,
    onnxruntime_scores,
    run_epoch,
    training_step,
)

OUT = ROOT / "models" / "variants"
TRAIN_IMAGES = 20_000


# A network is a list of nodes over named tensors ("input" is the image):
#   ("conv", name, x, y, cin, cout, (kh, kw), (sh, sw), (top, left, bottom, right), groups, act)
#       a Conv without bias, BatchNorm `<name>_bn`, then act "relu", "relu6" or None;
#   ("add", name, a, b, y, act)   a residual Add, act "relu" or None;
#   ("maxpool", name, x, y, k, stride, pad), ("avgpool", name, x, y, k), ("gap", name, x, y),
#   ("fc", name, x, y, n_in, n_out).
def dw_block(nodes, prefix, x, cin, cout, k, stride, act):
    """A depthwise-separable block: k x k depthwise at `stride`, then a 1x1 pointwise."""
    pad = k // 2
    nodes.append(("conv", f"{prefix}.dw", x, f"{prefix}.dw", cin, cin, (k, k), (stride, stride), (pad,) * 4, cin, act))
    nodes.append(("conv", f"{prefix}.pw", f"{prefix}.dw", f"{prefix}.pw", cin, cout, (1, 1), (1, 1), (0,) * 4, 1, act))
    return f"{prefix}.pw"


def ds_cnn_narrow():
    """DS-CNN kind: 20 to 44 channels, three blocks, a 5x5 depthwise, a stride-2 depthwise."""
    nodes = [("conv", "conv1", "input", "conv1", 1, 20, (3, 3), (2, 2), (1, 1, 1, 1), 1, "relu")]
    x = dw_block(nodes, "blocks.0", "conv1", 20, 36, 5, 1, "relu")
    x = dw_block(nodes, "blocks.1", x, 36, 44, 3, 2, "relu")
    x = dw_block(nodes, "blocks.2", x, 44, 44, 5, 1, "relu")
    return nodes + [("avgpool", "avgpool", x, "avgpool", 7), ("fc", "fc", "avgpool", "logits", 44, 10)]


def mobilenet_relu():
    """MobileNet kind with ReLU (not ReLU6): 6, 14, 30, 58, 94 channels, five blocks."""
    nodes = [
        ("conv", "conv1", "input", "conv1", 1, 6, (3, 3), (2, 2), (1, 1, 1, 1), 1, "relu"),
        ("maxpool", "maxpool", "conv1", "maxpool", 3, 1, 1),
    ]
    x = "maxpool"
    for i, (cin, cout, stride) in enumerate([(6, 14, 1), (14, 30, 2), (30, 58, 1), (58, 94, 2), (94, 94, 1)]):
        x = dw_block(nodes, f"blocks.{i}", x, cin, cout, 3, stride, "relu")
    return nodes + [("gap", "gap", x, "gap"), ("fc", "fc", "gap", "logits", 94, 10)]


def mobilenet_dw5():
    """MobileNet kind, ReLU6: 5x5 depthwise at stride 2, 12, 24, 48, 96 channels, no pool."""
    nodes = [("conv", "conv1", "input", "conv1", 1, 12, (3, 3), (1, 1), (1, 1, 1, 1), 1, "relu6")]
    x = dw_block(nodes, "blocks.0", "conv1", 12, 24, 5, 2, "relu6")
    x = dw_block(nodes, "blocks.1", x, 24, 48, 5, 2, "relu6")
    x = dw_block(nodes, "blocks.2", x, 48, 96, 3, 1, "relu6")
    return nodes + [("gap", "gap", x, "gap"), ("fc", "fc", "gap", "logits", 96, 10)]


def resnet_projection():
    """ResNet kind: 12 then 20 channels, a stride-2 block whose shortcut is a 1x1 stride-2
    projection conv (with BatchNorm), then an identity block."""
    return [
        ("conv", "stem", "input", "stem", 1, 12, (3, 3), (1, 1), (1, 1, 1, 1), 1, "relu"),
        ("conv", "b1.conv1", "stem", "b1.conv1", 12, 20, (3, 3), (2, 2), (1, 1, 1, 1), 1, "relu"),
        ("conv", "b1.conv2", "b1.conv1", "b1.conv2", 20, 20, (3, 3), (1, 1), (1, 1, 1, 1), 1, None),
        ("conv", "b1.proj", "stem", "b1.proj", 12, 20, (1, 1), (2, 2), (0,) * 4, 1, None),
        ("add", "b1.add", "b1.conv2", "b1.proj", "b1", "relu"),
        ("conv", "b2.conv1", "b1", "b2.conv1", 20, 20, (3, 3), (1, 1), (1, 1, 1, 1), 1, "relu"),
        ("conv", "b2.conv2", "b2.conv1", "b2.conv2", 20, 20, (3, 3), (1, 1), (1, 1, 1, 1), 1, None),
        ("add", "b2.add", "b2.conv2", "b1", "b2", "relu"),
        ("gap", "gap", "b2", "gap"),
        ("fc", "fc", "gap", "logits", 20, 10),
    ]


MODELS = {
    "ds_cnn_narrow": ds_cnn_narrow,
    "mobilenet_relu": mobilenet_relu,
    "mobilenet_dw5": mobilenet_dw5,
    "resnet_projection": resnet_projection,
}


def init(nodes, key):
    params, state = {}, {}
    for node in nodes:
        if node[0] == "conv":
            _, name, _, _, cin, cout, kernel, _, _, groups, _ = node
            key = init_conv(params, state, key, name, cin, cout, kernel, groups)
        elif node[0] == "fc":
            _, name, _, _, n_in, n_out = node
            key = init_fc(params, key, name, n_in, n_out)
    return params, state


def activation(x, act):
    if act == "relu":
        return jnp.maximum(x, 0.0)
    if act == "relu6":
        return jnp.clip(x, 0.0, 6.0)
    return x


def forward(nodes, params, state, x, train):
    """Logits, and in training the BatchNorm running statistics updated as PyTorch does."""
    new_state, t = dict(state), {"input": x}
    for node in nodes:
        kind, name = node[0], node[1]
        if kind == "conv":
            _, _, src, dst, cin, _, _, stride, pads, groups, act = node
            y = conv2d(t[src], params[f"{name}.weight"], stride, pads, groups == cin and groups > 1)
            t[dst] = activation(batch_norm(params, state, new_state, f"{name}_bn", y, train), act)
        elif kind == "add":
            _, _, a, b, dst, act = node
            t[dst] = activation(t[a] + t[b], act)
        elif kind == "maxpool":
            _, _, src, dst, k, s, p = node
            t[dst] = jax.lax.reduce_window(t[src], -jnp.inf, jax.lax.max, (1, 1, k, k), (1, 1, s, s), [(0, 0), (0, 0), (p, p), (p, p)])
        elif kind in ("avgpool", "gap"):
            t[node[3]] = t[node[2]].mean(axis=(2, 3), keepdims=True)
        elif kind == "fc":
            _, _, src, dst, _, _ = node
            t[dst] = t[src].reshape(t[src].shape[0], -1) @ params[f"{name}.weight"].T + params[f"{name}.bias"]
    return t["logits"], new_state


def train(name, nodes, seed=0):
    images = idx_images("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = idx_labels("train-labels-idx1-ubyte.gz")
    x_train, y_train = images[:TRAIN_IMAGES], labels[:TRAIN_IMAGES]
    batch = 64
    steps = len(x_train) // batch
    optimizer = optax.adamw(optax.cosine_decay_schedule(3e-3, steps), weight_decay=1e-4)
    params, state = init(nodes, jax.random.PRNGKey(seed))
    opt_state = optimizer.init(params)

    step = training_step(lambda p, s, x: forward(nodes, p, s, x, True), optimizer)
    started = time.time()
    order = np.random.default_rng(seed).permutation(len(x_train))
    params, state, _, losses = run_epoch(step, (params, state, opt_state), x_train, y_train, batch, order)
    print(f"{name}: one epoch on {TRAIN_IMAGES} images, loss {np.mean(losses[-50:]):.4f} ({time.time() - started:.0f} s)", flush=True)
    return {k: np.asarray(v, np.float32) for k, v in {**params, **state}.items()}


def export(name, nodes, weights):
    """The ONNX graph torch.onnx.export writes for the equivalent nn.Module in eval mode."""
    out, inits = [], []
    onnx_name = {"input": "input", "logits": "logits"}
    for node in nodes:
        kind, lname = node[0], node[1]
        prefix = "/" + lname.replace(".", "/")
        if kind == "conv":
            _, _, src, dst, _, _, kernel, stride, pads, groups, act = node
            y = export_conv_bn(out, inits, weights, lname, onnx_name[src], kernel, stride, pads, groups)
            if act is not None:
                out += activation_nodes(f"{prefix}_act", y, f"{prefix}_act/output_0", act)
                y = f"{prefix}_act/output_0"
            onnx_name[dst] = y
        elif kind == "add":
            _, _, a, b, dst, act = node
            y = f"{prefix}/Add_output_0"
            out.append(helper.make_node("Add", [onnx_name[a], onnx_name[b]], [y], name=f"{prefix}/Add"))
            if act is not None:
                out += activation_nodes(f"{prefix}_act", y, f"{prefix}_act/output_0", act)
                y = f"{prefix}_act/output_0"
            onnx_name[dst] = y
        elif kind == "maxpool":
            _, _, src, dst, k, s, p = node
            out.append(helper.make_node("MaxPool", [onnx_name[src]], [f"{prefix}/MaxPool_output_0"], name=f"{prefix}/MaxPool",
                                        ceil_mode=0, dilations=[1, 1], kernel_shape=[k, k], pads=[p] * 4, strides=[s, s]))
            onnx_name[dst] = out[-1].output[0]
        elif kind == "avgpool":
            _, _, src, dst, k = node
            out.append(helper.make_node("AveragePool", [onnx_name[src]], [f"{prefix}/AveragePool_output_0"], name=f"{prefix}/AveragePool",
                                        ceil_mode=0, count_include_pad=1, kernel_shape=[k, k], pads=[0] * 4, strides=[k, k]))
            onnx_name[dst] = out[-1].output[0]
        elif kind == "gap":
            _, _, src, dst = node
            out.append(helper.make_node("GlobalAveragePool", [onnx_name[src]], [f"{prefix}/GlobalAveragePool_output_0"],
                                        name=f"{prefix}/GlobalAveragePool"))
            onnx_name[dst] = out[-1].output[0]
        elif kind == "fc":
            export_fc(out, inits, weights, lname, onnx_name[node[2]])
    return model(out, inits, name, producer="make_variant_models.py")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="name", help=f"variants to build (default: all of {', '.join(MODELS)})")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    reference_path = OUT / "reference.json"
    reference = json.loads(reference_path.read_text()) if reference_path.exists() else {"models": {}}
    train_images = idx_images("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    train_labels = idx_labels("train-labels-idx1-ubyte.gz")
    test_images = idx_images("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    test_labels = idx_labels("t10k-labels-idx1-ubyte.gz")
    val_x, val_y = train_images[VALIDATION.start:VALIDATION.stop], train_labels[VALIDATION.start:VALIDATION.stop]
    import onnxruntime
    for name in args.names or list(MODELS):
        if name not in MODELS:
            parser.error(f"unknown variant {name}; the variants are {', '.join(MODELS)}")
        nodes = MODELS[name]()
        weights = train(name, nodes)
        m = export(name, nodes, weights)
        float_path, int8_path = OUT / f"{name}.onnx", OUT / f"{name}_int8.onnx"
        onnx.save(m, float_path)
        scores = onnxruntime_scores(m, float_path, int8_path, train_images[CALIBRATION.start:CALIBRATION.stop],
                                    (val_x, val_y), (test_images, test_labels))
        # Only onnxruntime's figures are kept: the QDQ file itself is not committed.
        reference["models"][name] = {"file": f"models/variants/{name}.onnx", "train_images": TRAIN_IMAGES, **scores}
        int8_path.unlink()
        summary = {k: v for k, v in reference["models"][name].items() if k != "golden_logits"}
        print(json.dumps(summary), flush=True)
        reference["made_by"] = (f"scripts/make_variant_models.py, jax {jax.__version__}, optax {optax.__version__}, "
                                f"onnxruntime {onnxruntime.__version__}")
        tmp = reference_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(reference, indent=None, separators=(",", ":")) + "\n")
        tmp.replace(reference_path)


if __name__ == "__main__":
    main()
