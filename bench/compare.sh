#!/usr/bin/env bash
# The side-by-side speed table of issue 7: qcnn's int8 engine (batch 1 and 16, 1 and 2
# threads), tract on the float32 ONNX export (batch 1), onnxruntime int8 and float32 (batch 1
# and 256), all over the 10,000 FashionMNIST test images in one run, as ratios to onnxruntime
# int8 batch 1, with the CPU it ran on.
#
#   bash bench/compare.sh [--rounds N] [--repeats M]
#
# Each round measures every engine M times (default 3) and the rounds (default 5) interleave
# the engines; each engine's figure is the median over the rounds of its best try in each.
#
# Creates .venv (onnxruntime + numpy from PyPI) and out/model.qcnn (qcnn-quantize on the release
# checkpoint) when they are missing or stale.
set -euo pipefail
cd "$(dirname "$0")/.."

fixtures=${QCNN_FIXTURES:-../shared/fixtures/torch}
checkpoint=checkpoints/CNNModel_FashionMNIST_best_metric_model.pth
model=out/model.qcnn
venv=.venv

if ! "$venv/bin/python" -c 'import onnxruntime, numpy' 2>/dev/null; then
    echo "compare: creating $venv with onnxruntime and numpy" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet onnxruntime numpy
fi

if [[ ! -f $model || $checkpoint -nt $model || config.yaml -nt $model ]]; then
    echo "compare: quantizing $checkpoint into $model" >&2
    mkdir -p "$(dirname "$model")"
    cargo run --quiet --release -p qcnn-quantize -- "$checkpoint" -o "$model" >&2
fi

# bench/ is a workspace of its own (tract is a long build); it shares the root target dir.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" \
    cargo run --quiet --release --manifest-path bench/Cargo.toml --example compare -- \
    --model "$model" \
    --onnx "$fixtures/model.onnx" \
    --onnx-int8 "$fixtures/model_int8.onnx" \
    --python "$venv/bin/python" \
    --peer-script bench/onnxruntime_peer.py \
    "$@"
