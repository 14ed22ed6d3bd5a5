#!/usr/bin/env bash
# The graph models (ResNet-8, DS-CNN, MobileNet) on qcnn's kernel tiers against onnxruntime
# int8 on the same ONNX files, 1 thread: qcnn runs the blob `qcnn-quantize` makes from the
# float ONNX file (release `run_images`, batch 1: a graph runs image by image), onnxruntime
# the file's int8 QDQ version (bench/onnxruntime_peer.py, batch 1 and 256), each timing its
# own inference loop, interleaved in every round. Per figure the median over the rounds; the
# ratios are to onnxruntime int8 batch 1 of the same model. Fails unless every tier gives the
# same logits for a model.
#
#   bash bench/graphs_vs_onnxruntime.sh [--rounds N] [--images N] [--clock cpu|wall] [TIER...]
#     # default: 3 rounds, the first 2,000 test images, CPU time (as bench/tiers_vs_onnxruntime.sh),
#     # every supported tier
#
# Needs .venv with onnxruntime and numpy (bash bench/compare.sh creates it). Writes the blobs
# to out/graph-<model>.qcnn when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
images=2000
clock=cpu
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --images) images=$2; shift 2 ;;
        --clock) clock=$2; shift 2 ;;
        *) break ;;
    esac
done
python=.venv/bin/python
"$python" -c 'import onnxruntime, numpy' 2>/dev/null ||
    { echo "graphs_vs_onnxruntime: $python lacks onnxruntime (bash bench/compare.sh makes it)" >&2; exit 1; }
# name, float ONNX file (qcnn quantizes it), onnxruntime's int8 QDQ file of the same model.
models=(
    "resnet8 ../shared/fixtures/onnx/resnet8_fmnist.onnx ../shared/fixtures/onnx/resnet8_fmnist_int8.onnx"
    "ds_cnn models/ds_cnn.onnx models/ds_cnn_int8.onnx"
    "mobilenet models/mobilenet.onnx models/mobilenet_int8.onnx"
)

cargo build --quiet --release -p qcnn-core --features std --example run_images
runner=${CARGO_TARGET_DIR:-target}/release/examples/run_images
mkdir -p out
for entry in "${models[@]}"; do
    read -r name float _ <<<"$entry"
    blob=out/graph-$name.qcnn
    if [ ! -f "$blob" ]; then
        echo "graphs_vs_onnxruntime: quantizing $float into $blob" >&2
        cargo run --quiet -p qcnn-quantize -- "$float" -o "$blob" >&2
    fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gunzip -c data/FashionMNIST/raw/t10k-images-idx3-ubyte.gz >"$work/images"
if [ $# -eq 0 ]; then
    # Every supported tier: run_images refuses the others.
    for tier in portable avx2 avx-vnni avx512-vnni neon neon-dot; do
        "$runner" out/model.qcnn "$work/images" 1 "$tier" >/dev/null 2>&1 && set -- "$@" "$tier"
    done
fi

# One line per measurement: "<model> <engine> <batch> <images/s>".
for round in $(seq "$rounds"); do
    echo "round $round/$rounds" >&2
    for entry in "${models[@]}"; do
        read -r name float int8 <<<"$entry"
        "$python" bench/onnxruntime_peer.py --images data/FashionMNIST/raw/t10k-images-idx3-ubyte.gz \
            --float-model "$float" --int8-model "$int8" --count "$images" --repeats 1 --clock "$clock" |
            "$python" -c 'import json, sys; f = json.load(sys.stdin); m = sys.argv[1]
print(m, "onnxruntime-int8 1", f["int8_batch1"]); print(m, "onnxruntime-int8 256", f["int8_batch256"])' \
                "$name" >>"$work/figures"
        for tier in "$@"; do
            "$runner" "out/graph-$name.qcnn" "$work/images" "$images" "$tier" 1 \
                >>"$work/digests-$name" 2>"$work/time"
            awk -v model="$name" -v tier="$tier" -v n="$images" -v clock="$clock" \
                '/^inference/ { print model, "qcnn-" tier, 1, n / (clock == "cpu" ? $5 : $2) }' "$work/time" >>"$work/figures"
        done
    done
done

for entry in "${models[@]}"; do
    read -r name _ <<<"$entry"
    digests=$(sed 's/, tier [^,]*,/,/' "$work/digests-$name" | sort -u | wc -l)
    [ "$digests" -eq 1 ] || { echo "graphs_vs_onnxruntime: $name: the tiers' logits differ" >&2; exit 1; }
done

echo "images/s ($clock time) on the first $images test images: per engine the median over $rounds rounds; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) logical CPUs, Linux $(uname -r), 1 thread"
"$python" - "$work/figures" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    model, engine, batch, value = line.split()
    rows.setdefault((model, engine, int(batch)), []).append(float(value))
print(f"{'model':10} {'engine':24} {'batch':>5} {'images/s':>10} {'vs onnxruntime int8 b1':>24}")
for (model, engine, batch), values in rows.items():
    base = statistics.median(rows[(model, "onnxruntime-int8", 1)])
    median = statistics.median(values)
    print(f"{model:10} {engine:24} {batch:>5} {median:>10.0f} {median / base:>23.2f}x")
EOF
