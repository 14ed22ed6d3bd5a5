#!/usr/bin/env bash
# Guest instructions per image of the aarch64 kernel tiers, counted under qemu-aarch64 user
# mode (no real aarch64 CPU is at hand, and qemu's speed says nothing about one). Debian's
# qemu-user ships no TCG plugins, so the count comes from qemu's own log: `-d in_asm,exec,nochain`
# lists every translated block once and every block executed, and bench/qemu_count.py sums
# them. One run with 1 image and one with 3; the difference / 2 is one image's cost (startup
# and file reading cancel out).
#
#   bash bench/qemu_instructions.sh [BLOB]     # default out/model.qcnn
set -euo pipefail
cd "$(dirname "$0")/.."

blob=${1:-out/model.qcnn}
[ -f "$blob" ] || { echo "qemu_instructions: $blob not found (qcnn-quantize ... -o $blob)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gunzip -c data/FashionMNIST/raw/t10k-images-idx3-ubyte.gz >"$work/images"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
cargo build --quiet -p qcnn-core --features std --example run_images --target aarch64-unknown-linux-gnu
runner=target/aarch64-unknown-linux-gnu/debug/examples/run_images

count() { # tier images -> guest instructions of the whole run
    qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max -d in_asm,exec,nochain -D "$work/log" \
        "$runner" "$blob" "$work/images" "$2" "$1" >"$work/out"
    python3 bench/qemu_count.py "$work/log"
    rm -f "$work/log"
}

echo "guest instructions per image, qemu-aarch64 -cpu max, $(basename "$blob"), batch 1"
for tier in portable neon neon-dot; do
    one=$(count "$tier" 1)
    three=$(count "$tier" 3)
    echo "$tier: $(((three - one) / 2))"
done
