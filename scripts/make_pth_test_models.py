#!/usr/bin/env python3
"""Builds the `.pth` + config test models of quantize/tests/pth/ and their golden logits.

Each model is a PyTorch `nn.Sequential` written twice from the same random weights (fixed
seed): as a `.pth` laid out exactly as `torch.save(model.state_dict())` writes it (a zip of
`data.pkl`, pickled with protocol 2 and `persistent_id` storages, and one file per storage;
PyTorch does not install here, so the standard library's zipfile and pickle write it), with a
config whose `model:` section describes the layers, and as the ONNX graph `torch.onnx.export`
would give, which onnxruntime runs on the first 256 FashionMNIST test images for the golden
float logits. quantize/tests/pth_sequential.rs checks qcnn's float reference against them.
Run from the project root, with onnx, onnxruntime and numpy in the venv:

    .venv/bin/python scripts/make_pth_test_models.py

The outputs are committed; running it again rewrites the same files.
"""

import collections
import io
import json
import pathlib
import pickle
import sys
import types
import zipfile

import numpy as np
from onnx import helper, numpy_helper

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_onnx_test_models import conv, fashion_mnist_test_images, logits_of, model  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "quantize" / "tests" / "pth"
GOLDEN_IMAGES = 256

rng = np.random.default_rng(15)


def fake_torch():
    """Just enough of the `torch` module for pickle to name torch's globals as torch.save does."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise NotImplementedError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ["FloatStorage", "LongStorage"]:
        cls = type(name, (), {})
        cls.__module__ = "torch"
        setattr(torch, name, cls)
    torch._utils = utils
    sys.modules.update({"torch": torch, "torch._utils": utils})
    return torch


TORCH = fake_torch()


class Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class TensorRef:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, grad, hooks)."""

    def __init__(self, storage):
        self.storage = storage

    def __reduce__(self):
        array = self.storage.array
        # Strides in elements, as torch counts them; the arrays are C-contiguous.
        stride = tuple(s // array.itemsize for s in array.strides)
        args = (self.storage, 0, array.shape, stride, False, collections.OrderedDict())
        return (TORCH._utils._rebuild_tensor_v2, args)


def write_pth(path, state_dict, prefix):
    storages = []
    refs = collections.OrderedDict()
    for key, array in state_dict.items():
        storage = Storage(str(len(storages)), array)
        storages.append(storage)
        refs[key] = TensorRef(storage)
    # torch.save keeps the modules' versions as an attribute, which pickle writes with BUILD.
    refs._metadata = collections.OrderedDict([("", {"version": 1}), (prefix, {"version": 1})])

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                kind = TORCH.LongStorage if obj.array.dtype == np.int64 else TORCH.FloatStorage
                return ("storage", kind, obj.key, "cpu", obj.array.size)
            return None

    pickled = io.BytesIO()
    Pickler(pickled, protocol=2).dump(refs)
    archive = path.stem
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        entries = [("data.pkl", pickled.getvalue()), ("byteorder", b"little")]
        entries += [(f"data/{s.key}", s.array.astype(s.array.dtype.newbyteorder("<")).tobytes()) for s in storages]
        entries += [("version", b"3\n")]
        for name, content in entries:
            z.writestr(zipfile.ZipInfo(f"{archive}/{name}", date_time=(1980, 1, 1, 0, 0, 0)), content)


class Sequential:
    """Layers added in nn.Sequential order: the state_dict, the config's YAML and ONNX nodes."""

    def __init__(self, name, prefix="layers"):
        self.name, self.prefix = name, prefix
        self.state, self.yaml, self.nodes, self.inits = collections.OrderedDict(), [], [], []
        self.x = "input"

    def _key(self, name):
        return f"{self.prefix}.{len(self.yaml)}.{name}"

    def _param(self, name, array):
        array = np.asarray(array, dtype=np.float32)
        self.state[self._key(name)] = array
        self.inits.append(numpy_helper.from_array(array, self._key(name)))
        return self._key(name)

    def _out(self):
        return f"/{self.prefix}.{len(self.yaml)}"

    def conv2d(self, cin, cout, kernel, stride=1, padding=0, groups=1, bias=True):
        fan_in = cin // groups * kernel * kernel
        w = self._param("weight", rng.standard_normal((cout, cin // groups, kernel, kernel)) * np.sqrt(2.0 / fan_in))
        inputs = [self.x, w]
        if bias:
            inputs.append(self._param("bias", rng.uniform(-0.1, 0.1, cout)))
        y = self._out()
        self.nodes.append(
            helper.make_node("Conv", inputs, [y], kernel_shape=[kernel] * 2, strides=[stride] * 2, pads=[padding] * 4, group=groups)
        )
        self.x = y
        fields = f"in: {cin}, out: {cout}, kernel: {kernel}, stride: {stride}, padding: {padding}"
        fields += f", groups: {groups}" if groups != 1 else ""
        fields += ", bias: false" if not bias else ""
        self.yaml.append(f"conv2d: {{ {fields} }}")

    def batchnorm2d(self, c):
        names = [
            self._param("weight", rng.uniform(0.5, 1.5, c)),
            self._param("bias", rng.uniform(-0.2, 0.2, c)),
            self._param("running_mean", rng.uniform(-0.3, 0.3, c)),
            self._param("running_var", rng.uniform(0.2, 2.0, c)),
        ]
        # An int64 scalar that only training uses: the reader must skip it.
        self.state[self._key("num_batches_tracked")] = np.array(1000, dtype=np.int64)
        y = self._out()
        self.nodes.append(helper.make_node("BatchNormalization", [self.x] + names, [y], epsilon=1e-5))
        self.x = y
        self.yaml.append(f"batchnorm2d: {{ features: {c} }}")

    def simple(self, yaml, op, inputs=(), **attrs):
        y = self._out()
        self.nodes.append(helper.make_node(op, [self.x, *inputs], [y], **attrs))
        self.x = y
        self.yaml.append(yaml)

    def relu6(self):
        lo, hi = f"{self._out()}/min", f"{self._out()}/max"
        self.inits += [numpy_helper.from_array(np.array(0.0, np.float32), lo), numpy_helper.from_array(np.array(6.0, np.float32), hi)]
        self.simple("relu6", "Clip", [lo, hi])

    def linear(self, n_in, n_out):
        w = self._param("weight", rng.standard_normal((n_out, n_in)) * np.sqrt(1.0 / n_in))
        b = self._param("bias", rng.uniform(-0.1, 0.1, n_out))
        self.nodes.append(helper.make_node("Gemm", [self.x, w, b], ["logits"], transB=1))
        self.x = "logits"
        self.yaml.append(f"linear: {{ in: {n_in}, out: {n_out} }}")

    def config(self, checkpoint):
        layers = "\n".join(f"    - {line}" for line in self.yaml)
        return f"""# Written by scripts/make_pth_test_models.py: the nn.Sequential of {checkpoint}.
model:
  name: {self.name}
  input: {{ channels: 1, height: 28, width: 28 }}
  classes: 10
  key_prefix: {self.prefix}
  layers:
{layers}
checkpoint:
  path: {checkpoint}
data:
  dirs:
    - ../../../data/FashionMNIST/raw
  split: {{ train: 50000, validation: 10000, seed: 42 }}
quantize:
  calibration_images: 500
  method: percentile
  percentile: 99.9
evaluate:
  min_accuracy: 0.0
  min_f1_macro: 0.0
database:
  url_env: DATABASE_URL
  sqlite_path: qcnn.sqlite
"""


def graph_ops():
    """Every sequential op the chain format cannot express: a graph (version-2) blob."""
    s = Sequential("pth_graph_ops")
    s.conv2d(1, 6, 3, padding=1, bias=False)
    s.batchnorm2d(6)  # folded into the conv before it
    s.relu6()
    s.conv2d(6, 6, 3, stride=2, padding=1, groups=6)  # depthwise, 14x14
    s.batchnorm2d(6)
    s.simple("relu", "Relu")
    s.conv2d(6, 10, 1, groups=2)  # grouped pointwise
    s.simple("relu", "Relu")
    s.simple("avgpool2d: { kernel: 3, stride: 2, padding: 1 }", "AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4, count_include_pad=1)
    s.batchnorm2d(10)  # after a pool: nothing to fold into, a per-channel affine op
    s.conv2d(10, 12, 3, padding=1)
    s.simple("relu", "Relu")
    s.simple("adaptiveavgpool2d: 1", "GlobalAveragePool")
    s.simple("flatten", "Flatten", axis=1)
    s.simple("dropout", "Identity")
    s.linear(12, 10)
    return s


def folded_chain():
    """Conv2d + BatchNorm2d + ReLU: the BatchNorm folds, and the chain format (version 1) holds it."""
    s = Sequential("pth_folded_chain", prefix="features")
    s.conv2d(1, 5, 3, padding=1, bias=False)
    s.batchnorm2d(5)
    s.simple("relu", "Relu")
    s.simple("maxpool2d: { kernel: 2 }", "MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    s.conv2d(5, 7, 3, stride=2, padding=1)
    s.batchnorm2d(7)
    s.simple("flatten", "Flatten", axis=1)
    s.linear(7 * 7 * 7, 10)
    return s


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    images = fashion_mnist_test_images(GOLDEN_IMAGES)
    golden = {"images": GOLDEN_IMAGES, "models": {}}
    for s in [graph_ops(), folded_chain()]:
        checkpoint = f"{s.name}.pth"
        write_pth(OUT / checkpoint, s.state, s.prefix)
        (OUT / f"{s.name}.yaml").write_text(s.config(checkpoint))
        logits = logits_of(model(s.nodes, s.inits, s.name), images)
        golden["models"][checkpoint] = [[float(str(v)) for v in row] for row in logits]
    with open(OUT / "golden_logits.json", "w") as f:
        json.dump(golden, f, indent=None, separators=(",", ":"))
    print(f"wrote {len(golden['models'])} checkpoints, their configs and golden logits to {OUT}")


if __name__ == "__main__":
    main()
