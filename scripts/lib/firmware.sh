# shellcheck shell=bash disable=SC2154,SC2034
# Sourced by firmware/run-tests.sh and capi/run-tests.sh, the two scripts that test a firmware
# under qemu-system-arm: what they do alike, written once. The sourcing script sets
# `test_name` (`firmware`, `capi`: its folder, and the prefix of its messages) first, and
# `all_parts` before select_parts; it uses the variables set here. Read alone, this file
# seems to use unset variables and set unused ones (SC2154 and SC2034 are off here).

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Where cargo puts the host tools, the firmware, and this script's own crate (CARGO_TARGET_DIR
# overrides all three); `work` holds this script's outputs.
host_target_dir="${CARGO_TARGET_DIR:-$root/target}"
firmware_target_dir="${CARGO_TARGET_DIR:-$root/firmware/target}"
own_target_dir="${CARGO_TARGET_DIR:-$root/$test_name/target}"
work="$own_target_dir/qcnn-$test_name-tests"
mkdir -p "$work"
# Both run the first 100 test images, so that their figures compare; one qemu run may take 600 s.
images=100
qemu_timeout=600

fail() {
    echo "$test_name: FAIL: $*" >&2
    exit 1
}

# Builds qcnn-quantize and qcnn in the dev profile (libraries optimised, see Cargo.toml), which
# shares its build with the test step, and quantizes the release checkpoint with config.yaml
# into `release_blob`.
prepare_release_blob() {
    echo "== $test_name: building qcnn-quantize and qcnn"
    (cd "$root" && cargo build -p qcnn-quantize -p qcnn-host)
    quantize="$host_target_dir/debug/qcnn-quantize"
    qcnn="$host_target_dir/debug/qcnn"
    echo "== $test_name: quantizing the release checkpoint"
    release_blob="$work/model.qcnn"
    make_blob "$root/config.yaml" "$root/checkpoints/CNNModel_FashionMNIST_best_metric_model.pth" "$release_blob"
}

# Quantizes `checkpoint` with `config` into `blob` (its log beside it).
make_blob() {
    local config="$1" checkpoint="$2" blob="$3"
    "$quantize" "$checkpoint" -o "$blob" --config "$config" >"$blob.log" 2>&1 ||
        { cat "$blob.log" >&2; fail "qcnn-quantize $checkpoint --config $config"; }
}

# Runs `elf` on qemu `machine` with semihosting output to `out`; fails unless it exits 0.
# -icount shift=0: one instruction per virtual nanosecond, so SysTick counts instructions.
run_qemu() {
    local machine="$1" elf="$2" out="$3" status=0
    local cpu=()
    [[ "$machine" == mps2-an386 ]] && cpu=(-cpu cortex-m4)
    echo "qemu-system-arm -M $machine ${cpu[*]} -icount shift=0 -nographic -semihosting-config enable=on,target=native -kernel $elf"
    timeout "$qemu_timeout" qemu-system-arm -M "$machine" "${cpu[@]}" -icount shift=0 -nographic \
        -semihosting-config enable=on,target=native -kernel "$elf" >"$out" </dev/null || status=$?
    if [[ $status -ne 0 ]]; then
        tail -n 20 "$out" >&2
        fail "$elf on qemu $machine exited with $status (124: timed out after ${qemu_timeout}s)"
    fi
}

# Runs `elf` on qemu `machine` into "$work/$name.out", whose `img` lines must be exactly
# `qcnn predict`'s for `blob`, and prints its `# key value` measurements.
run_firmware() {
    local machine="$1" elf="$2" blob="$3" name="$4"
    run_qemu "$machine" "$elf" "$work/$name.out"
    diff_with_host "$blob" "$work/$name.out" "$name"
    grep '^# ' "$work/$name.out"
}

# The flash figure the firmware printed in `out` must be `flash`, measured from its ELF by `tool`.
check_reported_flash() {
    local out="$1" flash="$2" tool="$3"
    [[ "$(measurement "$out" flash_total_bytes)" -eq "$flash" ]] ||
        fail "the firmware's flash figure disagrees with $tool's $flash"
}

# The `img` lines in `out` must be exactly `qcnn predict`'s for the same blob and images.
diff_with_host() {
    local blob="$1" out="$2" name="$3"
    grep '^img ' "$out" >"$work/$name.firmware.txt" || true
    "$qcnn" --config "$root/config.yaml" predict --model "$blob" --first "$images" >"$work/$name.host.txt"
    local lines
    lines="$(wc -l <"$work/$name.firmware.txt")"
    [[ "$lines" -eq "$images" ]] || fail "$name: $out has $lines img lines, expected $images"
    diff -u "$work/$name.host.txt" "$work/$name.firmware.txt" ||
        fail "$name: the predictions in $out differ from qcnn predict's"
    echo "$name: all $images predictions and logits identical to qcnn predict's"
}

# The value of measurement `key` in `out` (a `# key value ...` line).
measurement() { awk -v key="$2" '$1 == "#" && $2 == key { print $3 }' "$1"; }

# Checks `value <= limit` for the figure named `what`, and prints both.
check_at_most() {
    local what="$1" value="$2" limit="$3"
    [[ -n "$value" ]] || fail "no $what figure"
    [[ "$value" -le "$limit" ]] || fail "$what is $value, the target is <= $limit"
    echo "$what $value <= $limit"
}

# Sets `parts` to the named parts (when none is named, `default_parts` if the script sets it,
# else all of `all_parts`); fails on an unknown one.
select_parts() {
    parts=("$@")
    if [[ ${#parts[@]} -eq 0 && -n "${default_parts+set}" ]]; then
        parts=("${default_parts[@]}")
    fi
    [[ ${#parts[@]} -gt 0 ]] || parts=("${all_parts[@]}")
    local part
    for part in "${parts[@]}"; do
        [[ " ${all_parts[*]} " == *" $part "* ]] || fail "unknown part $part; parts: ${all_parts[*]}"
    done
}

# Runs each of `parts` as the function part_<name>; every part runs even when an earlier one
# failed. Prints a summary; returns non-zero if any part failed.
run_parts() {
    local part status passed=0 failed=()
    for part in "${parts[@]}"; do
        echo "== $test_name: $part"
        # errexit stays on inside the subshell; its status is read with errexit off.
        set +e
        (
            set -e
            "part_${part//-/_}"
        )
        status=$?
        set -e
        if [[ $status -eq 0 ]]; then passed=$((passed + 1)); else failed+=("$part"); fi
    done
    echo "$test_name: ${#parts[@]} parts: $passed passed, ${#failed[@]} failed${failed[*]:+ (${failed[*]})}"
    [[ ${#failed[@]} -eq 0 ]]
}
