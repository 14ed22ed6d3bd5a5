# shellcheck shell=bash
# Sourced by every script in scripts/: the project root, PATH, and small helpers.
# Keeping these in one place means setup, main, test and CI all see the same tools.

QCNN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export QCNN_ROOT
QCNN_VENV="$QCNN_ROOT/.venv"
export QCNN_TARGET_DIR="${CARGO_TARGET_DIR:-$QCNN_ROOT/target}"
# The release checkpoint, as checkpoints.dvc brings it.
export QCNN_CHECKPOINT="$QCNN_ROOT/checkpoints/CNNModel_FashionMNIST_best_metric_model.pth"
export QCNN_CONFIG="$QCNN_ROOT/config.yaml"

# Sourcing this file twice (scripts do, after setup.sh) must not grow PATH.
path_prepend() {
    case ":$PATH:" in *":$1:"*) ;; *) PATH="$1:$PATH" ;; esac
}
# Debian's postgresql-NN packages put initdb/pg_ctl outside PATH; tests need them on it.
if ! command -v initdb >/dev/null 2>&1; then
    for pg_bin in /usr/lib/postgresql/*/bin; do
        if [ -x "$pg_bin/initdb" ]; then path_prepend "$pg_bin"; fi
    done
fi
if [ -d "$HOME/.cargo/bin" ]; then path_prepend "$HOME/.cargo/bin"; fi
path_prepend "$QCNN_VENV/bin"
export PATH

# DVC must not phone home: the machine only reaches package registries.
export DVC_NO_ANALYTICS=1

# Runs as root here; elsewhere (a developer's laptop, a GitHub runner) through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

log() { printf '==> %s\n' "$*" >&2; }
