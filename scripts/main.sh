#!/usr/bin/env bash
# README command #1, the main job: set up (data and checkpoint via `dvc pull`), build,
# quantize the release checkpoint to an int8 blob, evaluate it on the 10,000 test images,
# record the result in the embedded SQLite database, and print the metrics.
#
# Writes out/model.qcnn (the blob) and out/report.json (the quantization report).
# The release workflow (.github/workflows/release.yml) runs this script and attaches both.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$QCNN_ROOT"

bash scripts/setup.sh
# Again, now that setup may have installed what lib.sh puts on PATH (PostgreSQL's bin/).
# shellcheck source=scripts/lib.sh
source "$QCNN_ROOT/scripts/lib.sh"

log "build: cargo build --release"
cargo build --release --bin qcnn --bin qcnn-quantize

out="$QCNN_ROOT/out"
mkdir -p "$out"
log "quantize: $QCNN_CHECKPOINT -> out/model.qcnn"
"$QCNN_TARGET_DIR/release/qcnn-quantize" "$QCNN_CHECKPOINT" \
    -o "$out/model.qcnn" --config "$QCNN_CONFIG" --report "$out/report.json"

# No --database-url and no DATABASE_URL: the result goes to the embedded SQLite file named by
# config.yaml (database.sqlite_path). Set DATABASE_URL=postgres://... to record it in PostgreSQL.
log "evaluate: out/model.qcnn on the test set"
"$QCNN_TARGET_DIR/release/qcnn" evaluate --model "$out/model.qcnn" --config "$QCNN_CONFIG"
