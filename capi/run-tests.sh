#!/usr/bin/env bash
# The C API's tests (issue 16), run by the project's test command (step `capi`). The library
# comes in two flavours from one crate and one header (capi/Cargo.toml's `graph` feature):
#   full        libqcnn_capi_full.a: every model, graph models (format version 4) included;
#   chain-only  libqcnn_capi_chain.a (--no-default-features): layer chains only, no graph
#               engine linked; a version-2 blob is refused with QCNN_ERR_GRAPH_NOT_BUILT.
# The parts:
#   unit        cargo test (the API's checks and codes, the header drift test) with each
#               flavour, and clippy for the capi crate, a workspace of its own that the
#               workspace-wide steps miss;
#   header      include/qcnn.h compiles cleanly as C99 and C++11 (-Wall -Wextra -Werror
#               -pedantic), for the host and, C99, for the Cortex-M4;
#   host        the host C example (gcc, the full host static library, then the shared one)
#               prints exactly `qcnn predict`'s lines for the first 100 test images, for the
#               seed model and for a graph model (tests/onnx/batchnorm.onnx, quantized here);
#               linked with the chain-only library it runs the seed model the same and refuses
#               the graph model by name;
#   panic-never the Cortex-M4 and the Cortex-M0 static libraries, both flavours, each link into
#               a program that calls every function with no C library, so without the `abort`
#               their panic handler calls: each links only if no panic is reachable from any
#               exported function;
#   m4          the C firmware (gcc-arm-none-eabi, newlib, the blob from `qcnn-quantize
#               --emit-c`), linked with each flavour, on qemu mps2-an386 prints exactly
#               `qcnn predict`'s lines; its instructions per inference are within 1% of the Rust
#               firmware's (`firmware/run-tests.sh m4`, run here); what each library adds to its
#               flash (the firmware minus the same objects linked without it) is within limits:
#               16,384 B for the chain-only library (issue 16), 35,584 B for the full one.
# Every part runs even when an earlier one failed; the exit status is non-zero if any failed.
# Usage: bash capi/run-tests.sh [PART...]   (from anywhere; honours CARGO_TARGET_DIR)
set -euo pipefail

test_name=capi
# shellcheck source=scripts/lib/firmware.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/firmware.sh"
capi="$root/capi"
examples="$capi/examples"
# Issue 16: what the library adds to a C firmware's flash (loader, kernels, C API and every
# helper they pull in), at most 16 KiB for the chain-only library; the full one, with the
# graph engine, is held at the figure it reached (firmware/README.md and README.md have both):
# 48,804 B with the graph's Cortex-M4 fast kernels after the merges of gconv's staged patch conv
# and fused Conv + Add, ram, hostsimd and coremap (46,244 B before the last three, 40,356 B with gdw's pointwise and max-pool kernels and
# the row-wise depthwise 3×3 alone, 35,540 B before them, 27,796 B before any, 27,340 B before
# the xxHash32); 48,228 B with the layer header decoded without serde/postcard (branch flash,
# core/src/format/decode.rs: 576 B less); 53,028 B on branch dw before the merge with main (the
# stems on the depthwise kernel, its whole-plane and ring ways, the folded requantization,
# MaxPool by words); 54,948 B with dw merged with main (one FoldedRequant); 58,596 B with all
# of session 8's branches merged (pw's pointwise assembly, inplace's staging too); 60,772 B on
# session 9's branch dw (the depthwise kernel's row loops and run requantization in asm, its
# in-place path: 2,176 B more; the limit leaves a few bytes for its last widening fix). The chain-only
# library: 14,548 B (15,700 B before that decoder, 15,380 B
# before those merges).
# Session 9 merged (flash, small, mram, dw, dups): full 62,436 B, chain 13,076 B measured.
# Branch mram2: full 63,332 B (the stems' bands of rows beside the ring: 896 B more).
# Branch params: full 62,948 B (one ConvParams per conv node, passed by reference: 384 B less).
# Branch mnram with params merged: full 63,204 B (the load's and the runner's frames split, a
# channel's taps in one form: 256 B more, for MobileNet's 444 B less RAM).
# Branch gemmgap merged with params: full 63,392 B (Gemm on the chain's Linear kernel, the
# whole-map AveragePool as the global average: 444 B more); chain 13,076 B, unchanged.
# Merged (gemmgap with mnram and params): full 63,648 B, 444 B over mnram's. Merged with branch
# m0flash too: full 63,520 B (the chain's direct conv: 128 B less).
# Branch dw5 merged with that: full 64,480 B (5-wide depthwise kernels through the 3-wide row
# passes: 960 B more); 64,544 B with branch fold15 merged too. Session 11's branch dspsig (the
# M4 kernels' checks shared with the host's stand-ins): full 64,672 B, 128 B more (the patch
# conv's `conv_into`, laid out differently by the compiler); chain 12,948 B. Branch fwhonest's
# `Kernels::Direct` (the arena sizing of bare-metal targets without DSP) merged: full 64,736 B,
# chain 13,012 B (64 B more each). Branch graphsig
# (an Add's parameters one AddOp, the pool kernel's one PoolOp, one host-kernel entry): 64 B
# less on its own (64,480 B); all of session 11 merged (dspsig, graphsig, fwhonest, inferdup):
# 64,608 B.
declare -A library_flash_limit=([chain]=16384 [full]=64608)
flavours=(chain full)
m4_target=thumbv7em-none-eabihf
m4_flags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16)
m0_target=thumbv6m-none-eabi
m0_flags=(-mcpu=cortex-m0 -mthumb)
c_warnings=(-Wall -Wextra -Werror -pedantic)

# Builds the static library of `flavour` (full, chain) for `target` (empty: the host), copies
# it, with the shared library on the host, to $work/lib/TARGET/libqcnn_capi_FLAVOUR.{a,so}
# (cargo writes both flavours to the same name); prints the .a's path.
build_library() {
    local target="$1" flavour="$2" features=() built
    [[ "$flavour" == chain ]] && features=(--no-default-features)
    local out="$work/lib/${target:-host}"
    mkdir -p "$out"
    if [[ -z "$target" ]]; then
        (cd "$capi" && CARGO_TARGET_DIR="$own_target_dir" cargo build --release "${features[@]}" >&2) || return 1
        built="$own_target_dir/release/libqcnn_capi"
        # The shared library keeps its soname, libqcnn_capi.so: one flavour per directory.
        mkdir -p "$out/$flavour"
        cp "$built.so" "$out/$flavour/libqcnn_capi.so"
    else
        (cd "$capi" && CARGO_TARGET_DIR="$own_target_dir" \
            cargo rustc --release --target "$target" "${features[@]}" --crate-type staticlib >&2) || return 1
        built="$own_target_dir/$target/release/libqcnn_capi"
    fi
    cp "$built.a" "$out/libqcnn_capi_$flavour.a"
    echo "$out/libqcnn_capi_$flavour.a"
}

# The first $images test images, raw u8 back to back, from the IDX file config.yaml finds.
extract_images() {
    local out="$1" dir idx=""
    for dir in "$root/data/FashionMNIST/raw" /usr/share/datasets/fashion-mnist; do
        for candidate in "$dir/t10k-images-idx3-ubyte.gz" "$dir/t10k-images-idx3-ubyte"; do
            [[ -z "$idx" && -f "$candidate" ]] && idx="$candidate"
        done
    done
    [[ -n "$idx" ]] || fail "no t10k-images-idx3-ubyte(.gz) in data/FashionMNIST/raw or /usr/share/datasets/fashion-mnist"
    if [[ "$idx" == *.gz ]]; then gzip -dc "$idx" >"$work/t10k-images.idx"; else cp "$idx" "$work/t10k-images.idx"; fi
    # Past the 16-byte IDX header. `qcnn predict` reads the same file through its SHA-256
    # check, so a wrong image here shows as a diff.
    dd if="$work/t10k-images.idx" of="$out" iflag=skip_bytes,count_bytes skip=16 count=$((images * 784)) status=none
}

part_unit() {
    (cd "$capi" && CARGO_TARGET_DIR="$own_target_dir" cargo test)
    (cd "$capi" && CARGO_TARGET_DIR="$own_target_dir" cargo test --no-default-features)
    # Not --all-targets: building the tests enables std in serde (through cbindgen), which
    # the no_std library with its own panic handler must not link; so the library and its
    # tests are checked apart.
    (cd "$capi" && CARGO_TARGET_DIR="$own_target_dir" cargo clippy --lib -- -D warnings)
    (cd "$capi" && CARGO_TARGET_DIR="$own_target_dir" cargo clippy --tests -- -D warnings)
    (cd "$capi" && CARGO_TARGET_DIR="$own_target_dir" cargo clippy --lib --no-default-features -- -D warnings)
}

part_header() {
    local source="$work/header_check.c"
    # Every declaration used, so that a wrong prototype cannot hide.
    cat >"$source" <<'EOF'
#include "qcnn.h"
qcnn_status use_every_function(const uint8_t *blob, size_t len, uint8_t *arena, int8_t *logits);
qcnn_status use_every_function(const uint8_t *blob, size_t len, uint8_t *arena, int8_t *logits) {
    static qcnn_model model;
    size_t value = 0;
    qcnn_status status = qcnn_model_init(blob, len, &model);
    status |= qcnn_arena_len(&model, &value);
    status |= qcnn_input_len(&model, &value);
    status |= qcnn_num_classes(&model, &value);
    status |= qcnn_infer(&model, blob, len, arena, value, logits, value);
    status |= qcnn_argmax(logits, value, &value);
    return qcnn_error_str(status)[0] == 'o' ? QCNN_OK : QCNN_ERR_NULL_POINTER;
}
EOF
    cp "$source" "$work/header_check.cpp"
    gcc -std=c99 "${c_warnings[@]}" -I "$capi/include" -c "$source" -o "$work/header_check.c99.o"
    echo "qcnn.h: C99 (gcc -std=c99 ${c_warnings[*]}) ok"
    g++ -std=c++11 "${c_warnings[@]}" -I "$capi/include" -c "$work/header_check.cpp" -o "$work/header_check.cpp.o"
    echo "qcnn.h: C++11 (g++ -std=c++11 ${c_warnings[*]}) ok"
    arm-none-eabi-gcc -std=c99 "${m4_flags[@]}" "${c_warnings[@]}" -I "$capi/include" -c "$source" -o "$work/header_check.m4.o"
    echo "qcnn.h: C99 for the Cortex-M4 (arm-none-eabi-gcc) ok"
}

# Compiles the host C example against `library` (a .a, or a directory holding
# libqcnn_capi.so) into `program`.
build_host_example() {
    local library="$1" program="$2" link=("$1")
    [[ -d "$library" ]] && link=(-L "$library" -lqcnn_capi "-Wl,-rpath,$library")
    gcc -std=c99 "${c_warnings[@]}" -O2 -I "$capi/include" -I "$examples/common" \
        "$examples/host/predict.c" "$examples/common/print_prediction.c" "${link[@]}" -o "$program"
}

part_host() {
    # A graph model (format version 4) with every graph operator, quantized here.
    local graph_blob="$work/graph_ops.qcnn" full chain program
    make_blob "$root/config.yaml" "$root/quantize/tests/onnx/graph_ops.onnx" "$graph_blob"
    full="$(build_library "" full)"
    chain="$(build_library "" chain)"
    # The full library, static then shared: the seed model and the graph model.
    for program in "$work/predict-full" "$work/predict-full-shared"; do
        if [[ "$program" == *-shared ]]; then
            build_host_example "$work/lib/host/full" "$program"
            ldd "$program" | grep -q "$work/lib/host/full/libqcnn_capi.so" ||
                fail "$program does not load the full libqcnn_capi.so"
        else
            build_host_example "$full" "$program"
        fi
        echo "$program $release_blob $work/images.bin"
        "$program" "$release_blob" "$work/images.bin" >"$program.seed.out"
        diff_with_host "$release_blob" "$program.seed.out" "$(basename "$program")-seed"
        echo "$program $graph_blob $work/images.bin"
        "$program" "$graph_blob" "$work/images.bin" >"$program.graph.out"
        diff_with_host "$graph_blob" "$program.graph.out" "$(basename "$program")-graph"
    done
    # The chain-only library: the seed model the same; the graph model refused by name.
    program="$work/predict-chain"
    build_host_example "$chain" "$program"
    "$program" "$release_blob" "$work/images.bin" >"$program.seed.out"
    diff_with_host "$release_blob" "$program.seed.out" predict-chain-seed
    local status=0
    "$program" "$graph_blob" "$work/images.bin" >"$program.graph.out" 2>"$program.graph.err" || status=$?
    [[ $status -ne 0 ]] || fail "the chain-only library ran a graph model"
    grep -qx "$graph_blob: graph model, but this library has no graph engine" "$program.graph.err" ||
        fail "the chain-only library refused the graph model otherwise: $(cat "$program.graph.err")"
    echo "predict-chain: the graph model refused: $(cat "$program.graph.err")"
}

# A program that calls every exported function on values the compiler cannot see through,
# linked with no C library and dead code removed: `abort` stays undefined unless a panic
# path survives. Checked for the Cortex-M4 and the Cortex-M0 library.
part_panic_never() {
    cat >"$work/panic_check.c" <<'EOF'
#include "qcnn.h"
volatile uintptr_t sink;
void entry(void);
void entry(void) {
    static qcnn_model model;
    static uint8_t arena[64];
    static int8_t logits[16];
    size_t value;
    sink = (uintptr_t)qcnn_model_init((const uint8_t *)sink, sink, &model);
    sink = (uintptr_t)qcnn_arena_len(&model, &value);
    sink = (uintptr_t)qcnn_input_len(&model, &value);
    sink = (uintptr_t)qcnn_num_classes(&model, &value);
    sink = (uintptr_t)qcnn_infer(&model, (const uint8_t *)sink, sink, arena, sink, logits, sink);
    sink = (uintptr_t)qcnn_argmax(logits, sink, &value);
    sink = (uintptr_t)qcnn_error_str((qcnn_status)sink);
}
EOF
    local target flavour library flags unlinked=0
    for target in "$m4_target" "$m0_target"; do
        for flavour in "${flavours[@]}"; do
            library="$(build_library "$target" "$flavour")"
            if [[ "$target" == "$m4_target" ]]; then flags=("${m4_flags[@]}"); else flags=("${m0_flags[@]}"); fi
            local elf="$work/panic_check.$target.$flavour.elf"
            if ! arm-none-eabi-gcc "${flags[@]}" -Os -I "$capi/include" -nostdlib -Wl,--gc-sections \
                -Wl,--no-warn-rwx-segments -Wl,--no-warn-execstack -Wl,-e,entry "$work/panic_check.c" "$library" \
                -o "$elf" 2>"${elf%.elf}.log"; then
                grep -E 'undefined reference|in function' "${elf%.elf}.log" | head -n 20 >&2
                echo "capi: $target, $flavour library: a panic is reachable from the C API: the library needs abort()" >&2
                unlinked=1
                continue
            fi
            echo "$target, $(basename "$library"): panic_check links without a C library: no panic is reachable from any qcnn_* function"
        done
    done
    [[ $unlinked -eq 0 ]] || fail "a panic is reachable from the C API"
}

# Bytes of FLASH that input files containing `pattern` contribute,
# from a GNU ld map: the input sections listed under the output sections placed in flash.
map_flash_bytes() {
    local map="$1" pattern="$2"
    awk -v pattern="$pattern" '
        function hex(text,   i, value) {
            text = tolower(substr(text, 3))
            for (i = 1; i <= length(text); i++) value = value * 16 + index("0123456789abcdef", substr(text, i, 1)) - 1
            return value
        }
        /^Linker script and memory map/ { in_map = 1; next }
        !in_map { next }
        /^\.[A-Za-z]/ { output = $1; pending = ""; next }
        output !~ /^\.(vectors|text|ARM\.exidx|data)$/ { next }
        # An input section name alone on its line; its address and size follow on the next.
        NF == 1 && $1 ~ /^\./ { pending = $1; next }
        NF == 4 && $1 ~ /^\./ && $2 ~ /^0x/ && $3 ~ /^0x/ { size = $3; file = $4 }
        NF == 3 && pending != "" && $1 ~ /^0x/ && $2 ~ /^0x/ { size = $2; file = $3 }
        { pending = "" }
        file != "" { if (index(file, pattern)) sum += hex(size); file = "" }
        END { print sum + 0 }
    ' "$map"
}

# Links the C firmware `elf` from the given objects and libraries, with its map beside it.
link_c_firmware() {
    local elf="$1"
    shift
    arm-none-eabi-gcc "${m4_flags[@]}" "$@" -nostartfiles -T "$examples/c-firmware/link.ld" \
        --specs=nano.specs --specs=rdimon.specs -Wl,--gc-sections -Wl,--no-warn-rwx-segments \
        -Wl,--no-warn-execstack -Wl,-Map="${elf%.elf}.map" -o "$elf"
}

# Flash bytes of a C firmware ELF: the sections link.ld places in FLASH.
c_flash_bytes() {
    arm-none-eabi-size -A "$1" | awk '$1 ~ /^\.(vectors|text|ARM\.exidx|data)$/ { sum += $2 } END { print sum }'
}

part_m4() {
    local generated="$work/generated"
    "$quantize" "$root/checkpoints/CNNModel_FashionMNIST_best_metric_model.pth" -o "$work/emitted.qcnn" \
        --config "$root/config.yaml" --emit-c "$generated" >"$work/emit-c.log" 2>&1 ||
        { cat "$work/emit-c.log" >&2; fail "qcnn-quantize --emit-c"; }
    cmp "$work/emitted.qcnn" "$release_blob" || fail "qcnn-quantize --emit-c wrote a different blob"
    # The C objects are compiled once and linked three times: with each library, and without.
    local source objects=()
    mkdir -p "$work/objects"
    for source in "$examples/c-firmware/"{main,startup,footprint,instructions}.c "$examples/c-firmware/images.S" \
        "$examples/common/print_prediction.c" "$generated/model_data.c"; do
        objects+=("$work/objects/$(basename "$source").o")
        arm-none-eabi-gcc "${m4_flags[@]}" -std=c99 "${c_warnings[@]}" -Os -ffunction-sections -fdata-sections \
            -I "$capi/include" -I "$examples/common" -I "$generated" \
            -DQCNN_IMAGES_PATH="\"$work/images.bin\"" -c "$source" -o "${objects[-1]}"
    done

    # The firmware without the library, each qcnn_* function then an absolute address (no
    # code; this ELF is never run): what each library adds is the difference. Everything the
    # library brings counts: loader, kernels, C API, its compiler_builtins members and
    # whatever of the C library only its code needs.
    local symbol defsyms=() without_flash library
    library="$(build_library "$m4_target" chain)"
    for symbol in $(arm-none-eabi-nm -A -g --defined-only "$library" 2>/dev/null |
        awk '$1 ~ /:qcnn_capi-/ && $3 ~ /^qcnn_/ { print $3 }'); do
        defsyms+=("-Wl,--defsym=$symbol=1")
    done
    [[ ${#defsyms[@]} -eq 7 ]] || fail "expected the 7 qcnn_* functions in $library, found ${#defsyms[@]}"
    link_c_firmware "$work/c-firmware-without-library.elf" "${objects[@]}" "${defsyms[@]}"
    without_flash="$(c_flash_bytes "$work/c-firmware-without-library.elf")"

    local flavour elf flash added name
    for flavour in "${flavours[@]}"; do
        library="$(build_library "$m4_target" "$flavour")"
        elf="$work/c-firmware-$flavour.elf"
        name="m4-$flavour"
        echo "== capi: the C firmware with $(basename "$library")"
        # The C library serves the memory functions the library's code calls
        # (__aeabi_memcpy...): a C firmware links newlib's anyway, and otherwise the archive's
        # own compiler_builtins copies would be linked beside them. `-u` makes them undefined
        # before newlib is searched.
        local needs_from_libc=()
        for symbol in $(arm-none-eabi-nm -A -u "$library" 2>/dev/null | awk '$1 ~ /:qcnn_capi-/ { print $NF }' | sort -u); do
            needs_from_libc+=("-Wl,-u,$symbol")
        done
        link_c_firmware "$elf" "${objects[@]}" "${needs_from_libc[@]}" -lc -lgcc "$library"
        run_firmware mps2-an386 "$elf" "$release_blob" "$name"
        flash="$(c_flash_bytes "$elf")"
        check_reported_flash "$work/$name.out" "$flash" arm-none-eabi-size
        added=$((flash - without_flash))
        echo "# library_added_flash_bytes $added $(basename "$library") (C firmware $flash - the same without the library $without_flash)"
        echo "# library_members_flash_bytes $(map_flash_bytes "${elf%.elf}.map" "$(basename "$library")(")" \
            "(members of $(basename "$library") in the C firmware's flash, compiler_builtins" \
            "$(map_flash_bytes "${elf%.elf}.map" "$(basename "$library")(compiler_builtins-"))"
        check_at_most "library_added_flash_bytes ($flavour)" "$added" "${library_flash_limit[$flavour]}"
    done

    echo "== capi: the Rust firmware's figures (firmware/run-tests.sh m4), to compare"
    bash "$root/firmware/run-tests.sh" m4 >"$work/rust-firmware.log" 2>&1 ||
        { tail -n 20 "$work/rust-firmware.log" >&2; fail "firmware/run-tests.sh m4"; }
    local c_count rust_count difference
    rust_count="$(measurement "$firmware_target_dir/qcnn-firmware-tests/m4.out" instructions_per_inference)"
    for flavour in "${flavours[@]}"; do
        c_count="$(measurement "$work/m4-$flavour.out" instructions_per_inference)"
        [[ -n "$c_count" && -n "$rust_count" ]] || fail "missing an instructions_per_inference figure"
        difference=$((c_count > rust_count ? c_count - rust_count : rust_count - c_count))
        echo "instructions per inference: C firmware ($flavour library) $c_count, Rust firmware $rust_count (difference $difference)"
        [[ $((difference * 100)) -le "$rust_count" ]] ||
            fail "the C firmware's instructions per inference ($flavour library) differ from the Rust firmware's by more than 1%"
    done
}

all_parts=(unit header host panic-never m4)
select_parts "$@"
prepare_release_blob
extract_images "$work/images.bin"
run_parts
