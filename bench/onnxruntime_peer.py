"""Images/s of onnxruntime on the FashionMNIST test set: the peer figures for `bench/compare.sh`.

Single-threaded (intra- and inter-op 1), batch 1 and batch 256, for the float32 export and
onnxruntime's own int8 (QDQ) quantization. Prints one JSON object on stdout.

`--clock cpu` times with this process's CPU time instead of the elapsed time: on a machine
shared with other jobs it leaves out the time they had the core (run_images reports both).
"""

import argparse
import gzip
import json
import time

import numpy as np
import onnxruntime as ort


def load_images(path, limit):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, h, w = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 2051:
        raise SystemExit(f"{path}: not an IDX image file (magic {magic})")
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, 1, h, w)
    return (images[:limit].astype(np.float32) / 255.0).copy()


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def images_per_s(sess, images, batch, repeats, clock):
    name = sess.get_inputs()[0].name
    batches = [images[i : i + batch] for i in range(0, len(images), batch)]
    sess.run(None, {name: batches[0]})  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = clock()
        for b in batches:
            sess.run(None, {name: b})
        best = max(best, len(images) / (clock() - start))
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", required=True, help="t10k-images-idx3-ubyte.gz")
    p.add_argument("--float-model", required=True)
    p.add_argument("--int8-model", required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    a = p.parse_args()
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    images = load_images(a.images, a.count)
    out = {"onnxruntime_version": ort.__version__, "images": len(images)}
    for label, path in (("int8", a.int8_model), ("float32", a.float_model)):
        sess = session(path)
        for batch in (1, 256):
            out[f"{label}_batch{batch}"] = images_per_s(sess, images, batch, a.repeats, clock)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
