#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints, per target, the executions and the
# crashes (panics, hangs over 10 s, out-of-memory) found.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]     (default: 60 seconds, every target)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Targets are built with debug assertions, so an integer overflow is a crash too. The seed
# corpus in fuzz/corpus/<target>/ is read, never written: new inputs go to a work corpus
# under the target dir, and crashing inputs to fuzz/artifacts/<target>/. Replay one with
# `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`.
# SANITIZER=address (default none: the code under test is safe Rust) trades speed for ASan.
set -euo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(blob idx checkpoint onnx)
target_dir=${CARGO_TARGET_DIR:-$fuzz_dir/target}
sanitizer=${SANITIZER:-none}

cd "$fuzz_dir"
cargo +nightly fuzz build --debug-assertions --sanitizer "$sanitizer" --target-dir "$target_dir"

status=0
summary=()
for target in "${targets[@]}"; do
    work="$target_dir/fuzz-corpus/$target"
    mkdir -p "$work" "artifacts/$target"
    log="$target_dir/fuzz-$target.log"
    before=$(find "artifacts/$target" -type f | wc -l)
    set +e
    cargo +nightly fuzz run --debug-assertions --sanitizer "$sanitizer" --target-dir "$target_dir" \
        "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    code=$?
    set -e
    executions=$(grep -a -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
    crashes=$(($(find "artifacts/$target" -type f | wc -l) - before))
    line="$target: executions=$executions crashes=$crashes seconds=$seconds exit=$code"
    if [ "$crashes" -gt 0 ] || [ "$code" -ne 0 ]; then
        status=1
        line="$line  (see $log; inputs in fuzz/artifacts/$target/)"
    fi
    summary+=("$line")
    echo "$line"
done
echo "--- summary"
printf '%s\n' "${summary[@]}"
exit $status
