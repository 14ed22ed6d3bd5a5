#!/usr/bin/env bash
# README command #2: the whole test suite, on a fresh machine or a used one.
#
#   bash scripts/test.sh            # set up, then every step below
#   bash scripts/test.sh STEP...    # set up, then only the named steps (CI runs them one by one)
#
# Steps run in order; a failing step does not stop the later ones, so one run shows every
# failure. The exit status is non-zero if any step failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$QCNN_ROOT"

ALL_STEPS=(dvc-status fmt shellcheck imports clippy doc test train-small tiers aarch64 cross-core firmware capi workflows containers)
SKIPPED=200 # a step's exit status meaning "nothing to run here"

step_dvc_status() {
    # `dvc status` after the pull must report nothing: data/ and checkpoints/ are exactly
    # what data.dvc and checkpoints.dvc name.
    local status
    status="$(dvc status --json)"
    dvc status
    [ "$status" = "{}" ] || { echo "dvc status is not clean: $status" >&2; return 1; }
}

step_fmt() {
    cargo fmt --all --check
    # The firmware, fuzz and firmware/train-small crates are workspaces of their own (thumb
    # targets, nightly), which the command above does not reach.
    local manifest
    for manifest in $(git ls-files '*/Cargo.toml'); do
        if grep -q '^\[workspace\]' "$manifest"; then
            echo "cargo fmt --check: $manifest"
            cargo fmt --manifest-path "$manifest" --all --check
        fi
    done
}

step_shellcheck() {
    # Every shell script git tracks, found by its name (*.sh) or its #! line (.ci/run), so that
    # a new script is checked without being listed here.
    local file scripts=()
    while IFS= read -r file; do
        if [[ "$file" == *.sh ]] || head -n 1 "$file" | grep -qE '^#!.*\b(ba|da|k)?sh\b'; then
            scripts+=("$file")
        fi
    done < <(git ls-files)
    [ ${#scripts[@]} -gt 0 ] || { echo "no shell script found" >&2; return 1; }
    echo "shellcheck on ${#scripts[@]} scripts: ${scripts[*]}"
    shellcheck --external-sources "${scripts[@]}"
}

step_clippy() {
    cargo clippy --workspace --all-targets -- -D warnings
    # core without its default `graph` feature, as the firmware and the chain-only C library
    # build it.
    cargo clippy -p qcnn-core --all-targets --no-default-features -- -D warnings
}

step_imports() {
    # No import cycle between the Rust files of any crate (ARCHITECTURE.md's rules): one crept
    # in unnoticed once, from a merge.
    python3 scripts/import_cycles.py
}

step_doc() {
    # The API docs of every workspace crate, warnings as errors: a broken intra-doc link fails.
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
}

step_test() {
    # The PostgreSQL tests (host/tests) start their own throwaway servers with initdb/pg_ctl as
    # the `postgres` user on loopback; setup.sh put those binaries on PATH.
    # Dev profile with optimised libraries (see Cargo.toml): fast to build, and the tests that
    # evaluate all 10,000 test images still finish in seconds.
    cargo test --workspace --no-fail-fast
    # core's loader without the `graph` feature: a version-2 blob is refused by name
    # (every_error_has_a_crafted_blob covers GraphSupportNotBuilt in this build).
    cargo test -p qcnn-core --no-default-features --lib -- model::
}

step_train_small() {
    # firmware/train-small, a workspace of its own (the tool that trained the M0+ checkpoint,
    # plain Rust): clippy, and its tests (the backward pass against finite differences, Adam
    # fitting a small batch).
    local manifest=firmware/train-small/Cargo.toml
    cargo clippy --manifest-path "$manifest" --locked --all-targets -- -D warnings
    cargo test --manifest-path "$manifest" --locked
}

step_tiers() {
    # Every kernel tier this CPU has, on all 10,000 test images, with the list of tiers that ran
    # and were skipped in the log; fails if the CPU's best tier did not run.
    cargo test -p qcnn-host --test kernel_tiers -- --nocapture 2>&1 | tee "$QCNN_ROOT/target/tiers.log"
    grep '^kernel tiers on' "$QCNN_ROOT/target/tiers.log"
    # The speed bench's own check, so that bench/ keeps compiling and its engines agree: every
    # supported tier in every (batch, threads) of qcnn's rows gives identical logits on 1,000
    # test images; no timing. Built without tract (its build does not fit a CI run here), in
    # the root target directory and the same dev profile, so it reuses the workspace's build.
    local blob=target/bench-smoke.qcnn fixtures=${QCNN_FIXTURES:-../shared/fixtures/torch}
    cargo run --quiet -p qcnn-quantize -- -o "$blob" >/dev/null
    CARGO_TARGET_DIR="$QCNN_ROOT/target" cargo run --quiet --manifest-path bench/Cargo.toml \
        --no-default-features --example compare -- --smoke 1000 --model "$blob" \
        --onnx "$fixtures/model.onnx" --onnx-int8 "$fixtures/model_int8.onnx"
}

step_aarch64() {
    # The NEON kernels, cross-built for aarch64 and run under qemu-aarch64 user mode: core's
    # unit tests (every supported tier against the portable code, the prepared model against
    # Model::infer) on qemu's `max` CPU (NEON and sdot) and on a Cortex-A53 (NEON only, so
    # neon-dot must not run there). Bit-exactness only: qemu says nothing about speed.
    # One cross-built binary serves both CPUs, so the build cannot mark neon-dot's
    # `kernel_tests!` as ignored: on the Cortex-A53 they are filtered out by name (they would
    # fail there, never pass), and each tier that runs prints `ran <tier>`.
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    local cpu skip
    for cpu in max cortex-a53; do
        echo "qemu-aarch64 -cpu $cpu"
        skip=()
        [ "$cpu" = cortex-a53 ] && skip=(--skip neon_dot)
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu $cpu" \
            cargo test -p qcnn-core --features std --lib --target aarch64-unknown-linux-gnu \
            -- --nocapture "${skip[@]}" 2>&1 | tee "$QCNN_ROOT/target/aarch64-$cpu.log"
        grep -E '^ran ' "$QCNN_ROOT/target/aarch64-$cpu.log" | sort | uniq -c
    done
    grep -q '^ran neon-dot' "$QCNN_ROOT/target/aarch64-max.log"
    grep -q '^ran neon$' "$QCNN_ROOT/target/aarch64-cortex-a53.log"
    if grep -q '^ran neon-dot' "$QCNN_ROOT/target/aarch64-cortex-a53.log"; then
        echo "neon-dot ran on a Cortex-A53, which lacks it" >&2
        return 1
    fi
    # The release model on the first 1,000 test images: every aarch64 tier under qemu must give
    # the logits (FNV digest) the x86-64 host gives with its best tier.
    local blob=target/aarch64-check.qcnn images=target/aarch64-check-images n=1000 host tier
    cargo run --quiet -p qcnn-quantize -- -o "$blob"
    gunzip -c data/FashionMNIST/raw/t10k-images-idx3-ubyte.gz >"$images"
    cargo build --quiet -p qcnn-core --features std --example run_images --target aarch64-unknown-linux-gnu
    cargo build --quiet -p qcnn-core --features std --example run_images
    host=$(target/debug/examples/run_images "$blob" "$images" "$n" "$(target/debug/examples/run_images --best)")
    echo "x86-64: $host"
    for tier in portable neon neon-dot; do
        local a64
        a64=$(qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max \
            target/aarch64-unknown-linux-gnu/debug/examples/run_images "$blob" "$images" "$n" "$tier")
        echo "aarch64: $a64"
        [ "${a64##* }" = "${host##* }" ] || { echo "aarch64 $tier logits differ from x86-64" >&2; return 1; }
    done
}

step_cross_core() {
    # core is no_std and allocation-free: it must build for Cortex-M0+ and Cortex-M4F.
    # Both with the graph engine (the default) and without it (as the firmware builds it).
    cargo build -p qcnn-core --release --target thumbv6m-none-eabi
    cargo build -p qcnn-core --release --target thumbv7em-none-eabihf
    cargo build -p qcnn-core --release --target thumbv6m-none-eabi --no-default-features
    cargo build -p qcnn-core --release --target thumbv7em-none-eabihf --no-default-features
}

step_firmware() {
    # ---- firmware hook ------------------------------------------------------------------
    # firmware/run-tests.sh (owned by the firmware crate) builds the Cortex-M4 firmware, runs it
    # under qemu-system-arm and diffs its output against `qcnn predict`.
    if [ -f firmware/run-tests.sh ]; then
        bash firmware/run-tests.sh
    else
        echo "firmware/run-tests.sh does not exist: no firmware test to run"
        return "$SKIPPED"
    fi
}

step_capi() {
    # The C API (capi/, a workspace of its own): its unit and header drift tests, the header
    # as C99 and C++, the host C example and the C firmware on qemu against `qcnn predict`,
    # the panic-never link and the flash budget (see capi/run-tests.sh).
    bash capi/run-tests.sh
}

step_workflows() {
    check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
    # actionlint also runs shellcheck on every `run:` block.
    actionlint -verbose .github/workflows/*.yml
}

step_containers() {
    # Static only: no Docker engine runs here, so the image is never built in this suite.
    hadolint Dockerfile
    echo "hadolint: Dockerfile ok"
    check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
    python scripts/check_containers.py "$QCNN_ROOT"
}

usage() {
    echo "usage: bash scripts/test.sh [STEP...]; steps: ${ALL_STEPS[*]}" >&2
    exit 2
}

# Everything runs from main(), so bash has read the whole file before the first step: editing
# (or pulling) this script during a long run cannot change what the run executes.
main() {
    local -a steps=("$@") summary=()
    local step start status elapsed failed=0 passed=0 skipped=0
    [ ${#steps[@]} -gt 0 ] || steps=("${ALL_STEPS[@]}")
    for step in "${steps[@]}"; do
        [[ " ${ALL_STEPS[*]} " == *" $step "* ]] || usage
    done

    record() { summary+=("$(printf '%-5s %-12s %5ss' "$1" "$2" "$3")"); }

    start=$SECONDS
    log "[setup] scripts/setup.sh"
    bash "$QCNN_ROOT/scripts/setup.sh"
    # Again, now that setup may have installed what lib.sh puts on PATH (PostgreSQL's bin/).
    # shellcheck source=scripts/lib.sh
    source "$QCNN_ROOT/scripts/lib.sh"
    record PASS setup $((SECONDS - start))

    for step in "${steps[@]}"; do
        start=$SECONDS
        log "[$step]"
        # errexit is off around the subshell so its status can be read; inside it, set -e holds
        # (a subshell in an `if` would silently ignore failures of its inner commands).
        set +e
        (
            set -e
            "step_${step//-/_}"
        )
        status=$?
        set -e
        elapsed=$((SECONDS - start))
        case $status in
        0) record PASS "$step" "$elapsed" && passed=$((passed + 1)) ;;
        "$SKIPPED") record SKIP "$step" "$elapsed" && skipped=$((skipped + 1)) ;;
        *) record FAIL "$step" "$elapsed" && failed=$((failed + 1)) && log "[$step] FAILED (exit $status)" ;;
        esac
    done

    echo
    echo "qcnn test summary (steps, wall seconds):"
    printf '  %s\n' "${summary[@]}"
    echo "Summary: steps ok=$passed failed=$failed skipped=$skipped"
    [ "$failed" -eq 0 ]
}

main "$@"
