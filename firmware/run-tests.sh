#!/usr/bin/env bash
# The firmware's tests (issues 6 and 8), run by the project's test command:
#  1. builds qcnn-quantize and qcnn, and quantizes the release checkpoint into a blob;
#  2. builds the Cortex-M4 firmware with that blob and runs it in qemu (mps2-an386,
#     -icount shift=0): it must exit 0, and its `img` lines must equal `qcnn predict`'s;
#  3. prints the firmware's measurements and checks the seed model's targets
#     (arena <= 9,408 bytes, code without the blob <= 16 KiB);
#  4. links the panic-never check binary: a link failure means a reachable panic;
#  5. does 1-2 for the Cortex-M0+ (thumbv6m) build with the small model of m0-config.yaml on
#     qemu's micro:bit, and checks from the ELF that it fits the 256 KiB part.
# Usage: bash firmware/run-tests.sh   (from anywhere; honours CARGO_TARGET_DIR)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
firmware="$root/firmware"
host_target_dir="${CARGO_TARGET_DIR:-$root/target}"
firmware_target_dir="${CARGO_TARGET_DIR:-$firmware/target}"
work="$firmware_target_dir/qcnn-firmware-tests"
images=100
qemu_timeout=600
mkdir -p "$work"

fail() {
    echo "firmware: FAIL: $*" >&2
    exit 1
}
step() { echo "== firmware: $*"; }

host_tuple="$(rustc -vV | sed -n 's/^host: //p')"
llvm_size="$(rustc --print sysroot)/lib/rustlib/$host_tuple/bin/llvm-size"
[[ -x "$llvm_size" ]] || fail "llvm-size not found at $llvm_size (rustup component add llvm-tools)"

step "building qcnn-quantize and qcnn (release)"
(cd "$root" && cargo build --release -p qcnn-quantize -p qcnn-host)
quantize="$host_target_dir/release/qcnn-quantize"
qcnn="$host_target_dir/release/qcnn"

# Quantizes `checkpoint` with `config` into `blob`.
make_blob() {
    local config="$1" checkpoint="$2" blob="$3"
    "$quantize" "$checkpoint" -o "$blob" --config "$config" >"$blob.log" 2>&1 ||
        { cat "$blob.log" >&2; fail "qcnn-quantize $checkpoint"; }
}

# Builds the firmware binary `bin` for `target` with `blob` embedded; prints the ELF's path.
build_firmware() {
    local target="$1" bin="$2" blob="$3"
    (cd "$firmware" && QCNN_BLOB="$blob" QCNN_IMAGE_COUNT="$images" CARGO_TARGET_DIR="$firmware_target_dir" \
        cargo build --release --target "$target" --bin "$bin" >&2)
    echo "$firmware_target_dir/$target/release/$bin"
}

# Runs `elf` on qemu `machine`; semihosting output goes to `out`; fails unless it exits 0.
run_qemu() {
    local machine="$1" elf="$2" out="$3" status=0
    local cpu=()
    [[ "$machine" == mps2-an386 ]] && cpu=(-cpu cortex-m4)
    timeout "$qemu_timeout" qemu-system-arm -M "$machine" "${cpu[@]}" -icount shift=0 -nographic \
        -semihosting-config enable=on,target=native -kernel "$elf" >"$out" </dev/null || status=$?
    if [[ $status -ne 0 ]]; then
        tail -n 20 "$out" >&2
        fail "$elf on qemu $machine exited with $status (124 = timed out after ${qemu_timeout}s)"
    fi
}

# The firmware's `img` lines must be exactly `qcnn predict`'s for the same blob and images.
diff_with_host() {
    local blob="$1" out="$2" name="$3"
    grep '^img ' "$out" >"$work/$name.firmware.txt" || true
    "$qcnn" --config "$root/config.yaml" predict --model "$blob" --first "$images" >"$work/$name.host.txt"
    local lines
    lines="$(wc -l <"$work/$name.firmware.txt")"
    [[ "$lines" -eq "$images" ]] || fail "$name: the firmware printed $lines img lines, expected $images"
    diff -u "$work/$name.host.txt" "$work/$name.firmware.txt" ||
        fail "$name: the firmware's predictions differ from qcnn predict's"
    echo "$name: $images firmware predictions and logits identical to qcnn predict's"
}

# The value of measurement `key` in `out` (a `# key value ...` line).
measurement() { awk -v key="$2" '$1 == "#" && $2 == key { print $3 }' "$1"; }

# Flash bytes an ELF occupies: everything loaded into the FLASH region.
flash_bytes() {
    "$llvm_size" -A "$1" | awk '$1 ~ /^\.(vector_table|text|rodata|data|gnu\.sgstubs)$/ { sum += $2 } END { print sum }'
}

# Checks `value <= limit` for a measurement named `what`.
check_at_most() {
    local what="$1" value="$2" limit="$3"
    [[ -n "$value" ]] || fail "no $what measurement"
    [[ "$value" -le "$limit" ]] || fail "$what is $value bytes, the target is <= $limit"
    echo "$what $value <= $limit"
}

step "Cortex-M4: quantizing the release checkpoint"
m4_blob="$work/model.qcnn"
make_blob "$root/config.yaml" "$root/checkpoints/CNNModel_FashionMNIST_best_metric_model.pth" "$m4_blob"

step "Cortex-M4: building and running on qemu mps2-an386"
m4_elf="$(build_firmware thumbv7em-none-eabihf qcnn-firmware "$m4_blob")"
run_qemu mps2-an386 "$m4_elf" "$work/m4.out"
diff_with_host "$m4_blob" "$work/m4.out" m4
grep '^# ' "$work/m4.out"
[[ "$(measurement "$work/m4.out" flash_total_bytes)" -eq "$(flash_bytes "$m4_elf")" ]] ||
    fail "the firmware's flash figure disagrees with llvm-size's"
check_at_most ram_arena_bytes "$(measurement "$work/m4.out" ram_arena_bytes)" 9408
check_at_most flash_code_bytes "$(measurement "$work/m4.out" flash_code_bytes)" 16384

step "panic-never: linking inference with a panic handler that does not exist"
if ! panic_elf="$(build_firmware thumbv7em-none-eabihf panic_check "$m4_blob" 2>"$work/panic_check.log")"; then
    grep -E 'panic-never|undefined symbol|referenced by' "$work/panic_check.log" | head -n 20 >&2 || tail -n 30 "$work/panic_check.log" >&2
    fail "a panic is reachable from Model::from_bytes or infer (panic_check did not link)"
fi
run_qemu mps2-an386 "$panic_elf" "$work/panic_check.out"
echo "panic_check linked (no reachable panic) and ran $images inferences"

step "Cortex-M0+: the small model (m0-config.yaml) on qemu micro:bit (256 KiB flash, 16 KiB RAM)"
m0_blob="$work/small_cnn.qcnn"
make_blob "$firmware/m0-config.yaml" "$firmware/m0/small_cnn.safetensors" "$m0_blob"
m0_elf="$(build_firmware thumbv6m-none-eabi qcnn-firmware "$m0_blob")"
m0_flash="$(flash_bytes "$m0_elf")"
check_at_most m0_flash_bytes "$m0_flash" $((256 * 1024))
run_qemu microbit "$m0_elf" "$work/m0.out"
diff_with_host "$m0_blob" "$work/m0.out" m0
grep '^# ' "$work/m0.out" | sed 's/^# /# m0 /'

echo "firmware: all checks passed"
