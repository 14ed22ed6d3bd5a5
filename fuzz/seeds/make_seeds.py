#!/usr/bin/env python3
"""Writes the seeds for the `idx` and `checkpoint` fuzz targets, with the standard library only.

IDX: the first two test images and their labels, cut from the real FashionMNIST test files,
raw and gzipped.

Checkpoints (no torch needed): the same four tensors as a safetensors file and as a torch.save zip/pickle
file, laid out as PyTorch writes them (archive/data.pkl with persistent storage ids,
archive/data/<n> raw little-endian storages, archive/version). The tensors fit
fuzz/seeds/tiny.yaml, so `qcnn-quantize` turns the checkpoint into the `blob` seed.

Usage: python3 fuzz/seeds/make_seeds.py   (from the repository root; rewrites the seeds)
"""

import collections
import gzip
import io
import json
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

FUZZ = Path(__file__).resolve().parent.parent

# tiny.yaml: conv2d(1→1, 3×3, stride 2, pad 1), relu, maxpool 2, flatten, linear(49→10).
SHAPES = {
    "layers.0.weight": [1, 1, 3, 3],
    "layers.0.bias": [1],
    "layers.4.weight": [10, 49],
    "layers.4.bias": [10],
}


def values(count, state):
    """Deterministic values in [-0.5, 0.5) from a 32-bit LCG, so reruns give the same bytes."""
    out = []
    for _ in range(count):
        state = (state * 1664525 + 1013904223) % 2**32
        out.append(state / 2**32 - 0.5)
    return out, state


def tensors():
    state, result = 1234, {}
    for key, shape in SHAPES.items():
        count = 1
        for d in shape:
            count *= d
        result[key], state = values(count, state)
    return result


def f32_bytes(data):
    return struct.pack(f"<{len(data)}f", *data)


def safetensors(data):
    header, offset = {}, 0
    for key, shape in SHAPES.items():
        size = 4 * len(data[key])
        header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    body = b"".join(f32_bytes(data[key]) for key in SHAPES)
    return struct.pack("<Q", len(text)) + text + body


def fake_torch():
    """Just enough of the `torch` module for pickle to name torch's globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise NotImplementedError

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage, torch._utils = FloatStorage, utils
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    sys.modules.update({"torch": torch, "torch._utils": utils})
    return torch, utils


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class TensorRef:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, grad, hooks)."""

    def __init__(self, rebuild, storage, shape):
        self.rebuild, self.storage, self.shape = rebuild, storage, shape

    def __reduce__(self):
        stride, step = [], 1
        for d in reversed(self.shape):
            stride.insert(0, step)
            step *= d
        args = (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict())
        return (self.rebuild, args)


def pth(data):
    torch, utils = fake_torch()
    state_dict = collections.OrderedDict()
    for n, (key, shape) in enumerate(SHAPES.items()):
        state_dict[key] = TensorRef(utils._rebuild_tensor_v2, Storage(str(n), len(data[key])), shape)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
            return None

    path = FUZZ / "corpus" / "checkpoint" / "tiny.pth"
    pickled = io.BytesIO()
    Pickler(pickled, protocol=2).dump(state_dict)
    entries = [("archive/data.pkl", pickled.getvalue()), ("archive/byteorder", b"little")]
    entries += [(f"archive/data/{n}", f32_bytes(data[key])) for n, key in enumerate(SHAPES)]
    entries += [("archive/version", b"3\n")]
    write_zip(path, entries)
    return path


DATASET_DIRS = [FUZZ.parent / "data" / "FashionMNIST" / "raw", Path("/usr/share/datasets/fashion-mnist")]


def idx_seeds(count=2):
    """IDX files holding the first `count` real test images and labels."""
    out = FUZZ / "corpus" / "idx"
    out.mkdir(parents=True, exist_ok=True)
    for name, magic, item in [("t10k-images-idx3-ubyte", 2051, 28 * 28), ("t10k-labels-idx1-ubyte", 2049, 1)]:
        source = next(d / f"{name}.gz" for d in DATASET_DIRS if (d / f"{name}.gz").is_file())
        content = gzip.decompress(source.read_bytes())
        assert struct.unpack(">I", content[:4])[0] == magic
        header_len = 8 if magic == 2049 else 16
        dims = struct.pack(">I", count) + content[8:header_len]
        cut = content[:4] + dims + content[header_len : header_len + count * item]
        (out / name).write_bytes(cut)
        # mtime=0 keeps the gzip bytes reproducible.
        (out / f"{name}.gz").write_bytes(gzip.compress(cut, mtime=0))
        print(out / name, len(cut), "bytes, and .gz")


def write_zip(path, entries):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, content in entries:
            # A fixed timestamp keeps the file's bytes reproducible.
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)


def hostile_pths():
    """Two .pth files that once broke the reader (quantize/tests/bad_inputs.rs replays them):
    a tensor rebuilt from a 1-tuple (candle indexed past its end and panicked), and a tensor
    whose shape claims 2^32 floats (candle would allocate them before reading)."""
    head = b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00kctorch._utils\n_rebuild_tensor_v2\n"
    short = head + b"K\x01\x85Ru."
    storage = b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ"
    # (storage, offset 0, size (65536, 65536), stride (65536, 1), False, OrderedDict()): 16 GiB
    big = b"J\x00\x00\x01\x00"
    huge = head + b"(" + storage + b"K\x00" + big + big + b"\x86" + big + b"K\x01\x86\x89ccollections\nOrderedDict\n)RtRu."
    out = FUZZ / "corpus" / "checkpoint"
    for name, pickled in [("short_rebuild_args.pth", short), ("huge_shape.pth", huge)]:
        write_zip(out / name, [("archive/data.pkl", pickled), ("archive/data/0", b"\0" * 4), ("archive/version", b"3\n")])
        print(out / name)


def main():
    idx_seeds()
    hostile_pths()
    data = tensors()
    (FUZZ / "corpus" / "checkpoint").mkdir(parents=True, exist_ok=True)
    st = FUZZ / "corpus" / "checkpoint" / "tiny.safetensors"
    st.write_bytes(safetensors(data))
    print(st, st.stat().st_size, "bytes")
    path = pth(data)
    print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
