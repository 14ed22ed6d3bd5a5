#!/usr/bin/env bash
# qcnn's kernel tiers against onnxruntime int8, 1 thread, without bench/compare.sh's long tract
# build: qcnn's release `run_images` example (batch 1 and 16) and bench/onnxruntime_peer.py
# (int8 batch 1 and 256), each timing its own inference loop (model loading and file reading
# outside it), interleaved in every round over the 10,000 test images. Per figure the median
# over the rounds; the ratios are to onnxruntime int8 batch 1.
#
#   bash bench/tiers_vs_onnxruntime.sh [--rounds N] [--clock cpu|wall] [TIER...]
#                        # default: 5 rounds, CPU time, every tier this CPU supports
#
# --clock cpu (the default) times both engines with their process's CPU time: on a machine
# shared with other jobs it leaves out the time they had the core; wall is elapsed time.
#
# Needs .venv with onnxruntime and numpy (bash bench/compare.sh creates it) and out/model.qcnn.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5
clock=cpu
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --clock) clock=$2; shift 2 ;;
        *) break ;;
    esac
done
blob=out/model.qcnn
fixtures=${QCNN_FIXTURES:-../shared/fixtures/torch}
python=.venv/bin/python
[ -f "$blob" ] || { echo "tiers_vs_onnxruntime: $blob not found (bash bench/compare.sh makes it)" >&2; exit 1; }
"$python" -c 'import onnxruntime, numpy' 2>/dev/null ||
    { echo "tiers_vs_onnxruntime: $python lacks onnxruntime (bash bench/compare.sh makes it)" >&2; exit 1; }

cargo build --quiet --release -p qcnn-core --features std --example run_images
runner=${CARGO_TARGET_DIR:-target}/release/examples/run_images
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gunzip -c data/FashionMNIST/raw/t10k-images-idx3-ubyte.gz >"$work/images"
if [ $# -eq 0 ]; then
    # Every supported tier: run_images refuses the others.
    for tier in portable avx2 avx-vnni avx512-vnni neon neon-dot; do
        "$runner" "$blob" "$work/images" 1 "$tier" >/dev/null 2>&1 && set -- "$@" "$tier"
    done
fi

# One line per measurement: "<engine> <batch> <images/s>".
for round in $(seq "$rounds"); do
    echo "round $round/$rounds" >&2
    "$python" bench/onnxruntime_peer.py --images data/FashionMNIST/raw/t10k-images-idx3-ubyte.gz \
        --float-model "$fixtures/model.onnx" --int8-model "$fixtures/model_int8.onnx" --repeats 1 --clock "$clock" |
        "$python" -c 'import json, sys; f = json.load(sys.stdin)
print("onnxruntime-int8 1", f["int8_batch1"]); print("onnxruntime-int8 256", f["int8_batch256"])' \
            >>"$work/figures"
    for tier in "$@"; do
        for batch in 1 16; do
            "$runner" "$blob" "$work/images" 10000 "$tier" "$batch" >>"$work/digests" 2>"$work/time"
            awk -v tier="$tier" -v batch="$batch" -v clock="$clock" \
                '/^inference/ { print "qcnn-" tier, batch, 10000 / (clock == "cpu" ? $5 : $2) }' "$work/time" >>"$work/figures"
        done
    done
done

# Every tier and batch gave the same logits (one digest line per run, the tier named in it).
digests=$(sed 's/, tier [^,]*,/,/' "$work/digests" | sort -u | wc -l)
[ "$digests" -eq 1 ] || { echo "tiers_vs_onnxruntime: the tiers' logits differ" >&2; exit 1; }

echo "images/s ($clock time): per engine the median over $rounds rounds; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) logical CPUs, Linux $(uname -r), 1 thread"
"$python" - "$work/figures" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    engine, batch, value = line.split()
    rows.setdefault((engine, int(batch)), []).append(float(value))
base = statistics.median(rows[("onnxruntime-int8", 1)])
print(f"{'engine':24} {'batch':>5} {'images/s':>10} {'vs onnxruntime int8 b1':>24}")
for (engine, batch), values in rows.items():
    median = statistics.median(values)
    print(f"{engine:24} {batch:>5} {median:>10.0f} {median / base:>23.2f}x")
EOF
