#!/usr/bin/env python3
"""Trains the DS-CNN and MobileNet models of models/ with JAX on the CPU and exports them to
ONNX in the form `torch.onnx.export` writes (opset 17, NCHW, BatchNormalization unfolded,
ReLU6 as `Clip` with `Constant` limits, a dynamic batch dimension), with onnxruntime's figures.

Data: FashionMNIST training images 0..49,999 train, 50,000..59,999 (validation) pick the epoch;
the test set is only scored. For each model it writes, in models/:

- `<name>.onnx`, the float model (input pixel/255, or for `mobilenet_norm` (pixel/255 - 0.2860)
  / 0.3530, FashionMNIST's training mean and standard deviation);
- `<name>_int8.onnx`, onnxruntime's static int8 quantization of it: `quant_pre_process` (which
  folds BatchNorm), then `quantize_static` in QDQ format, per channel, int8 weights and
  activations, MinMax, calibrated on training images 0..999;
- and in `models/reference.json`: parameters, MACs, the chosen epoch, validation and test
  accuracy of the float model (onnxruntime, graph optimizations off) and of the int8 model
  (onnxruntime's default session, which runs the QDQ pairs as int8 kernels), and onnxruntime's
  float logits of test images 0..255 (the golden logits the Rust tests compare against).

The architectures are fixed so that their MACs are those of the issue's CMSIS-NN table (the
firmware measures the same models). Run from the project root (a few minutes per model on 2
cores; on this busy shared machine the DS-CNN epoch took 30 minutes, each MobileNet epoch 4 to 6):

    .venv/bin/pip install jax==0.10.2 optax==0.2.8 onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6
    .venv/bin/python scripts/train_onnx_models.py [--epochs-scale 1.0] [name ...]

Training is seeded but XLA's CPU reductions are not bit-reproducible across machines, so a
rerun gives close, not identical, weights; the committed files are the reference.
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
from onnx import helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from onnx_builders import (  # noqa: E402
    ROOT,
    batch_norm_node,
    clip_limits,
    conv,
    idx_images,
    idx_labels,
    image_input,
    logits_of,
    model,
    session,
    shortest_floats,
)

OUT = ROOT / "models"
TRAIN, VALIDATION = range(0, 50_000), range(50_000, 60_000)
CALIBRATION = range(0, 1_000)
GOLDEN_IMAGES = 256
# FashionMNIST's training-set mean and standard deviation of pixel/255.
NORM_MEAN, NORM_STD = 0.2860, 0.3530


# An architecture is a list of layers:
#   ("conv", name, cin, cout, (kh, kw), (sh, sw), (top, left, bottom, right), groups, act)
#       a Conv without bias, BatchNorm `<name>_bn`, then act "relu" or "relu6";
#   ("maxpool", name, k, stride, pad), ("avgpool", name, k), ("gap", name), ("fc", name, in, out).
def ds_cnn():
    layers = [("conv", "conv1", 1, 64, (5, 3), (2, 2), (2, 1, 2, 1), 1, "relu")]
    for i in range(4):
        layers.append(("conv", f"blocks.{i}.dw", 64, 64, (3, 3), (1, 1), (1, 1, 1, 1), 64, "relu"))
        layers.append(("conv", f"blocks.{i}.pw", 64, 64, (1, 1), (1, 1), (0, 0, 0, 0), 1, "relu"))
    return layers + [("avgpool", "avgpool", 14), ("fc", "fc", 64, 10)]


def mobilenet():
    layers = [("conv", "conv1", 1, 8, (3, 3), (2, 2), (1, 1, 1, 1), 1, "relu6"), ("maxpool", "maxpool", 3, 1, 1)]
    for i, (cin, cout, stride) in enumerate([(8, 16, 1), (16, 32, 2), (32, 64, 1), (64, 128, 2)]):
        layers.append(("conv", f"blocks.{i}.dw", cin, cin, (3, 3), (stride, stride), (1, 1, 1, 1), cin, "relu6"))
        layers.append(("conv", f"blocks.{i}.pw", cin, cout, (1, 1), (1, 1), (0, 0, 0, 0), 1, "relu6"))
    return layers + [("gap", "gap"), ("fc", "fc", 128, 10)]


# name -> (architecture, epochs, normalized input)
MODELS = {
    "ds_cnn": (ds_cnn, 1, False),
    "mobilenet": (mobilenet, 3, False),
    "mobilenet_norm": (mobilenet, 3, True),
}


def init(layers, key):
    params, state = {}, {}
    for layer in layers:
        if layer[0] == "conv":
            _, name, cin, cout, kernel, _, _, groups, _ = layer
            key = init_conv(params, state, key, name, cin, cout, kernel, groups)
        elif layer[0] == "fc":
            _, name, n_in, n_out = layer
            key = init_fc(params, key, name, n_in, n_out)
    return params, state


def init_conv(params, state, key, name, cin, cout, kernel, groups):
    """A bias-free Conv's He-initialized weight and its BatchNorm `<name>_bn`; the next key."""
    (kh, kw) = kernel
    key, k = jax.random.split(key)
    fan_in = cin // groups * kh * kw
    params[f"{name}.weight"] = jax.random.normal(k, (cout, cin // groups, kh, kw)) * np.sqrt(2.0 / fan_in)
    params[f"{name}_bn.weight"] = jnp.ones(cout)
    params[f"{name}_bn.bias"] = jnp.zeros(cout)
    state[f"{name}_bn.running_mean"] = jnp.zeros(cout)
    state[f"{name}_bn.running_var"] = jnp.ones(cout)
    return key


def init_fc(params, key, name, n_in, n_out):
    """A Linear layer as PyTorch initializes it (bias zero here); the next key."""
    key, k = jax.random.split(key)
    bound = 1.0 / np.sqrt(n_in)
    params[f"{name}.weight"] = jax.random.uniform(k, (n_out, n_in), minval=-bound, maxval=bound)
    params[f"{name}.bias"] = jnp.zeros(n_out)
    return key


def conv2d(x, w, stride, pads, depthwise):
    """A convolution; depthwise ones as a sum of shifted products and 1x1 ones as a matrix
    product, which XLA's CPU backend runs many times faster than a grouped convolution."""
    (t, l, b, r), (sh, sw) = pads, stride
    kh, kw = w.shape[2], w.shape[3]
    if depthwise:
        x = jnp.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
        oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
        out = 0.0
        for i in range(kh):
            for j in range(kw):
                tap = x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                out = out + tap * w[:, 0, i, j][None, :, None, None]
        return out
    if kh == kw == 1 and stride == (1, 1) and not any(pads):
        return jnp.einsum("nchw,oc->nohw", x, w[:, :, 0, 0])
    return jax.lax.conv_general_dilated(x, w, stride, [(t, b), (l, r)], dimension_numbers=("NCHW", "OIHW", "NCHW"))


def forward(layers, params, state, x, train):
    """Logits, and in training the BatchNorm running statistics updated as PyTorch does
    (momentum 0.1, unbiased variance)."""
    new_state = dict(state)
    for layer in layers:
        kind, name = layer[0], layer[1]
        if kind == "conv":
            _, _, cin, _, _, stride, pads, groups, act = layer
            x = conv2d(x, params[f"{name}.weight"], stride, pads, groups == cin and groups > 1)
            x = batch_norm(params, state, new_state, f"{name}_bn", x, train)
            x = jnp.maximum(x, 0.0) if act == "relu" else jnp.clip(x, 0.0, 6.0)
        elif kind == "maxpool":
            _, _, k, s, p = layer
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, k, k), (1, 1, s, s), [(0, 0), (0, 0), (p, p), (p, p)])
        elif kind in ("avgpool", "gap"):
            x = x.mean(axis=(2, 3))
        elif kind == "fc":
            x = x.reshape(x.shape[0], -1) @ params[f"{name}.weight"].T + params[f"{name}.bias"]
    return x, new_state


def batch_norm(params, state, new_state, bn, x, train):
    """BatchNorm `bn` over x; in training with the batch's statistics, updating the running
    ones in `new_state` as PyTorch does (momentum 0.1, unbiased variance)."""
    if train:
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        n = x.shape[0] * x.shape[2] * x.shape[3]
        new_state[f"{bn}.running_mean"] = 0.9 * state[f"{bn}.running_mean"] + 0.1 * mean
        new_state[f"{bn}.running_var"] = 0.9 * state[f"{bn}.running_var"] + 0.1 * var * n / (n - 1)
    else:
        mean, var = state[f"{bn}.running_mean"], state[f"{bn}.running_var"]
    x = (x - mean[None, :, None, None]) / jnp.sqrt(var[None, :, None, None] + 1e-5)
    return x * params[f"{bn}.weight"][None, :, None, None] + params[f"{bn}.bias"][None, :, None, None]


def training_step(logits_and_state, optimizer):
    """One jitted `optimizer` step on the cross-entropy of `logits_and_state(params, state, x)`
    (the logits and the updated BatchNorm statistics)."""
    @jax.jit
    def step(params, state, opt_state, x, y):
        def loss_fn(p):
            logits, new_state = logits_and_state(p, state, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_state
        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, loss
    return step


def run_epoch(step, weights, x, y, batch, order):
    """`step` over the batches of x, y in `order`; the new (params, state, opt_state) and the
    losses."""
    params, state, opt_state = weights
    losses = []
    for i in range(0, len(order) - batch + 1, batch):
        idx = order[i:i + batch]
        params, state, opt_state, loss = step(params, state, opt_state, x[idx], y[idx])
        losses.append(float(loss))
    return params, state, opt_state, losses


def train(name, layers, epochs, normalized, seed=0):
    images = idx_images("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = idx_labels("train-labels-idx1-ubyte.gz")
    if normalized:
        images = (images - NORM_MEAN) / NORM_STD
    x_train, y_train = images[TRAIN.start:TRAIN.stop], labels[TRAIN.start:TRAIN.stop]
    x_val, y_val = images[VALIDATION.start:VALIDATION.stop], labels[VALIDATION.start:VALIDATION.stop]

    batch = 128
    steps = epochs * (len(x_train) // batch)
    optimizer = optax.adamw(optax.cosine_decay_schedule(3e-3, steps), weight_decay=1e-4)
    params, state = init(layers, jax.random.PRNGKey(seed))
    opt_state = optimizer.init(params)

    step = training_step(lambda p, s, x: forward(layers, p, s, x, True), optimizer)

    @jax.jit
    def predict(params, state, x):
        return forward(layers, params, state, x, False)[0].argmax(axis=1)

    def accuracy(params, state, x, y):
        hits = sum(int((predict(params, state, x[i:i + 1000]) == y[i:i + 1000]).sum()) for i in range(0, len(x), 1000))
        return hits / len(x)

    rng = np.random.default_rng(seed)
    best = (-1.0, 0, None)
    for epoch in range(1, epochs + 1):
        started = time.time()
        order = rng.permutation(len(x_train))
        params, state, opt_state, losses = run_epoch(step, (params, state, opt_state), x_train, y_train, batch, order)
        val = accuracy(params, state, x_val, y_val)
        print(f"{name} epoch {epoch}: loss {np.mean(losses):.4f}, validation accuracy {val:.4f} ({time.time() - started:.0f} s)", flush=True)
        if val > best[0]:
            best = (val, epoch, jax.device_get((params, state)))
    val, epoch, (params, state) = best
    print(f"{name}: epoch {epoch} chosen (validation accuracy {val:.4f})", flush=True)
    return {k: np.asarray(v, np.float32) for k, v in {**params, **state}.items()}, epoch, val


def export(name, layers, weights, normalized):
    """The ONNX graph torch.onnx.export writes for the equivalent nn.Module in eval mode."""
    nodes, inits, x = [], [], "input"
    for layer in layers:
        kind, lname = layer[0], layer[1]
        prefix = "/" + lname.replace(".", "/")
        if kind == "conv":
            _, _, _, _, kernel, stride, pads, groups, act = layer
            x = export_conv_bn(nodes, inits, weights, lname, x, kernel, stride, pads, groups)
            y = f"{prefix}_act/output_0"
            nodes += activation_nodes(f"{prefix}_act", x, y, act)
            x = y
        elif kind == "maxpool":
            _, _, k, s, p = layer
            nodes.append(helper.make_node("MaxPool", [x], [f"{prefix}/MaxPool_output_0"], name=f"{prefix}/MaxPool", ceil_mode=0,
                                          dilations=[1, 1], kernel_shape=[k, k], pads=[p] * 4, strides=[s, s]))
            x = nodes[-1].output[0]
        elif kind == "avgpool":
            _, _, k = layer
            nodes.append(helper.make_node("AveragePool", [x], [f"{prefix}/AveragePool_output_0"], name=f"{prefix}/AveragePool",
                                          ceil_mode=0, count_include_pad=1, kernel_shape=[k, k], pads=[0] * 4, strides=[k, k]))
            x = nodes[-1].output[0]
        elif kind == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [f"{prefix}/GlobalAveragePool_output_0"], name=f"{prefix}/GlobalAveragePool"))
            x = nodes[-1].output[0]
        elif kind == "fc":
            export_fc(nodes, inits, weights, lname, x)
    return model(nodes, inits, name, producer="train_onnx_models.py")


def export_fc(nodes, inits, weights, lname, x):
    """`Flatten` of x, then the Linear layer `lname` as a `Gemm` writing the logits."""
    nodes.append(helper.make_node("Flatten", [x], ["/Flatten_output_0"], name="/Flatten", axis=1))
    w = numpy_helper.from_array(weights[f"{lname}.weight"], f"{lname}.weight")
    b = numpy_helper.from_array(weights[f"{lname}.bias"], f"{lname}.bias")
    inits += [w, b]
    nodes.append(helper.make_node("Gemm", ["/Flatten_output_0", w.name, b.name], ["logits"],
                                  name="/" + lname.replace(".", "/") + "/Gemm", alpha=1.0, beta=1.0, transB=1))


def export_conv_bn(nodes, inits, weights, lname, x, kernel, stride, pads, groups):
    """A bias-free Conv reading x and its BatchNorm `<lname>_bn`, as PyTorch names them;
    returns the BatchNorm's output."""
    prefix = "/" + lname.replace(".", "/")
    w = numpy_helper.from_array(weights[f"{lname}.weight"], f"{lname}.weight")
    inits.append(w)
    nodes.append(conv(f"{prefix}/Conv", x, f"{prefix}/Conv_output_0", w, dilations=[1, 1], group=groups,
                      kernel_shape=list(kernel), pads=list(pads), strides=list(stride)))
    bn = f"{lname}_bn"
    node, bn_inits = batch_norm_node(bn, f"{prefix}/Conv_output_0", f"{prefix}_bn/BatchNormalization_output_0",
                                     weights[f"{bn}.weight"], weights[f"{bn}.bias"],
                                     weights[f"{bn}.running_mean"], weights[f"{bn}.running_var"])
    nodes.append(node)
    inits += bn_inits
    return node.output[0]


def activation_nodes(prefix, x, y, act):
    """`Relu`, or ReLU6 as `Clip` with `Constant` limits, from x to y."""
    if act == "relu":
        return [helper.make_node("Relu", [x], [y], name=f"{prefix}/Relu")]
    limits = clip_limits(prefix)
    return limits + [helper.make_node("Clip", [x, limits[0].output[0], limits[1].output[0]], [y], name=f"{prefix}/Clip")]


def macs_and_params(layers):
    macs, params, (c, h, w) = 0, 0, (1, 28, 28)
    for layer in layers:
        if layer[0] == "conv":
            _, _, cin, cout, (kh, kw), (sh, sw), (t, l, b, r), groups, _ = layer
            h, w = (h + t + b - kh) // sh + 1, (w + l + r - kw) // sw + 1
            macs += cout * h * w * (cin // groups) * kh * kw
            params += cout * (cin // groups) * kh * kw + 2 * cout
            c = cout
        elif layer[0] == "maxpool":
            _, _, k, s, p = layer
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif layer[0] in ("avgpool", "gap"):
            h = w = 1
        elif layer[0] == "fc":
            macs += layer[2] * layer[3]
            params += layer[2] * layer[3] + layer[3]
    return macs, params


class Calibration(CalibrationDataReader):
    def __init__(self, images):
        self.batches = iter([{"input": images[i:i + 1]} for i in range(len(images))])

    def get_next(self):
        return next(self.batches, None)


def accuracy_of(sess, images, labels):
    hits = 0
    for i in range(0, len(images), 1000):
        (logits,) = sess.run(None, {"input": images[i:i + 1000]})
        hits += int((logits.argmax(axis=1) == labels[i:i + 1000]).sum())
    return hits / len(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="name", help=f"models to train (default: all of {', '.join(MODELS)})")
    parser.add_argument("--epochs-scale", type=float, default=1.0)
    parser.add_argument("--fixtures", action="store_true",
                        help="only score the shared QDQ fixtures with onnxruntime (no training)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    reference_path = OUT / "reference.json"
    reference = json.loads(reference_path.read_text()) if reference_path.exists() else {"models": {}}
    if args.fixtures:
        reference["fixtures"] = fixture_figures()
        write_reference(reference_path, reference)
        print(json.dumps(reference["fixtures"]))
        return

    train_images = idx_images("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    train_labels = idx_labels("train-labels-idx1-ubyte.gz")
    test_images = idx_images("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    test_labels = idx_labels("t10k-labels-idx1-ubyte.gz")
    for name in args.names or list(MODELS):
        if name not in MODELS:
            parser.error(f"unknown model {name}; the models are {', '.join(MODELS)}")
        architecture, epochs, normalized = MODELS[name]
        layers = architecture()
        epochs = max(1, round(epochs * args.epochs_scale))
        weights, epoch, _ = train(name, layers, epochs, normalized)
        m = export(name, layers, weights, normalized)
        float_path, int8_path = OUT / f"{name}.onnx", OUT / f"{name}_int8.onnx"
        onnx.save(m, float_path)

        prepare = (lambda x: (x - NORM_MEAN) / NORM_STD) if normalized else (lambda x: x)
        val_x, val_y = prepare(train_images[VALIDATION.start:VALIDATION.stop]), train_labels[VALIDATION.start:VALIDATION.stop]
        test_x = prepare(test_images)
        scores = onnxruntime_scores(m, float_path, int8_path, prepare(train_images[CALIBRATION.start:CALIBRATION.stop]),
                                    (val_x, val_y), (test_x, test_labels))
        macs, params = macs_and_params(layers)
        reference["models"][name] = {
            "file": f"models/{name}.onnx",
            "int8_file": f"models/{name}_int8.onnx",
            "input": "(pixel/255 - 0.2860) / 0.3530" if normalized else "pixel/255",
            "mean": [NORM_MEAN] if normalized else [0.0],
            "std": [NORM_STD] if normalized else [1.0],
            "params": params,
            "macs": macs,
            "epochs": epochs,
            "chosen_epoch": epoch,
            **scores,
        }
        summary = {k: v for k, v in reference["models"][name].items() if k != "golden_logits"}
        print(json.dumps(summary), flush=True)
        reference["made_by"] = (f"scripts/train_onnx_models.py, jax {jax.__version__}, optax {optax.__version__}, "
                                f"onnxruntime {__import__('onnxruntime').__version__}")
        reference["golden_logits_of"] = f"test images 0..{GOLDEN_IMAGES - 1}, onnxruntime float, graph optimizations off"
        # Written after every model, so a stopped run keeps the others.
        write_reference(reference_path, reference)


def onnxruntime_scores(m, float_path, int8_path, calibration, validation, test):
    """onnxruntime's figures for float model `m` (saved at float_path): its own static int8
    quantization written to int8_path (`quant_pre_process`, then `quantize_static` in QDQ
    format, per channel, int8, MinMax on `calibration`), the accuracy of both on the
    validation and test (images, labels), and the float logits of the first test images."""
    import onnxruntime
    preprocessed = int8_path.with_name(int8_path.stem + "_pre.onnx")
    quant_pre_process(str(float_path), str(preprocessed), skip_symbolic_shape=True)
    quantize_static(str(preprocessed), str(int8_path), Calibration(calibration),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8)
    preprocessed.unlink()
    int8_session = onnxruntime.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    float_session = session(m)
    return {
        "float": {"validation_accuracy": accuracy_of(float_session, *validation),
                  "test_accuracy": accuracy_of(float_session, *test)},
        "int8": {"validation_accuracy": accuracy_of(int8_session, *validation),
                 "test_accuracy": accuracy_of(int8_session, *test)},
        "golden_logits": shortest_floats(logits_of(m, test[0][:GOLDEN_IMAGES])),
    }


def write_reference(path, reference):
    """A temp file, then a rename."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(reference, indent=None, separators=(",", ":")) + "\n")
    tmp.replace(path)


def fixture_figures():
    """onnxruntime's test accuracy (default session: int8 kernels) for the QDQ files in
    ../shared/fixtures, which the Rust tests import as they are."""
    import onnxruntime
    test_images = idx_images("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    test_labels = idx_labels("t10k-labels-idx1-ubyte.gz")
    figures = {}
    for name in ["onnx/resnet8_fmnist_int8.onnx", "torch/model_int8.onnx"]:
        path = ROOT.parent / "shared" / "fixtures" / name
        sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        figures[name] = {"int8_test_accuracy": accuracy_of(sess, test_images, test_labels)}
    return figures


if __name__ == "__main__":
    main()
