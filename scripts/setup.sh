#!/usr/bin/env bash
# Prepares a fresh Debian bookworm machine (as root, or with sudo) to build, run and test qcnn:
# apt packages, rustup targets and components, the project's Python venv with DVC and the
# static checkers, and `dvc pull` of data/ and checkpoints/. Every step checks first and
# skips what is already done, so a second run takes seconds.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$QCNN_ROOT"

# --- apt -------------------------------------------------------------------------------
# qemu-system-arm: the Cortex-M4 firmware test; dataset-fashion-mnist: the fallback data dir;
# postgresql-15: initdb/pg_ctl for the tests' own server; openssl: TLS test certificates;
# the shellcheck package lints these scripts and the workflows' run: blocks (via actionlint);
# libssl-dev and pkg-config: native-tls (the host's PostgreSQL TLS) links the system OpenSSL;
# gcc-arm-none-eabi and libnewlib-arm-none-eabi build the C firmware (capi/), gcc and g++ the
# host C example and the header's C99 and C++ checks.
# qemu-user, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross: the aarch64 NEON kernels' tests,
# cross-linked and run under qemu-aarch64 (the `aarch64` test step).
apt_packages=(qemu-system-arm dataset-fashion-mnist openssl libssl-dev pkg-config shellcheck ca-certificates
    gcc g++ gcc-arm-none-eabi libnewlib-arm-none-eabi
    qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
# A machine may already carry initdb from another PostgreSQL build; only install if it has none.
command -v initdb >/dev/null 2>&1 || apt_packages+=(postgresql-15)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3 python3-venv)

missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # postgresql-15 lands in /usr/lib/postgresql/15/bin; re-read lib.sh to put it on PATH.
    # shellcheck source=scripts/lib.sh
    source "$QCNN_ROOT/scripts/lib.sh"
else
    log "apt: all packages present"
fi
command -v initdb >/dev/null || { echo "initdb not found after installing postgresql-15" >&2; exit 1; }

# --- Rust --------------------------------------------------------------------------------
rust_targets=(thumbv6m-none-eabi thumbv7em-none-eabihf aarch64-unknown-linux-gnu)
rust_components=(llvm-tools clippy rustfmt)
installed_targets="$(rustup target list --installed)"
installed_components="$(rustup component list --installed)"
for target in "${rust_targets[@]}"; do
    grep -qx "$target" <<<"$installed_targets" || { log "rustup: adding target $target"; rustup target add "$target"; }
done
for component in "${rust_components[@]}"; do
    # Installed components are listed with their host triple (and llvm-tools as llvm-tools-preview
    # on older toolchains), so match on the prefix.
    grep -q "^$component" <<<"$installed_components" || { log "rustup: adding component $component"; rustup component add "$component"; }
done
log "rust: $(rustc --version); targets ${rust_targets[*]}"

# --- Python venv with DVC and the static checkers -----------------------------------------
requirements="$QCNN_ROOT/scripts/requirements-tools.txt"
stamp="$QCNN_VENV/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    log "venv: installing $(grep -cv '^#' "$requirements") tools into .venv"
    python3 -m venv "$QCNN_VENV"
    "$QCNN_VENV/bin/pip" install -q --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$stamp"
else
    log "venv: up to date"
fi

# --- Data and checkpoint from the DVC remote `storage` (../shared/dvc-store) --------------
# dvc pull compares hashes and fetches only what is missing, so it is quick when up to date.
log "dvc: pulling data/ and checkpoints/"
dvc pull -q
log "setup done"
