#!/usr/bin/env bash
# Set up everything Flare needs, idempotently: the Python virtualenv with the
# package and its dev tools. Re-running is cheap: each step is skipped when a
# stamp says its inputs have not changed since it last succeeded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLARE_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

log() { printf '[setup] %s\n' "$*" >&2; }

python_env() {
    local stamp="$VENV/.flare-stamp"
    local want
    want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    log "creating Python environment in $VENV (first run downloads torch; pip's cache keeps later runs fast)"
    "$PYTHON_BIN" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"
    echo "$want" > "$stamp"
    log "Python environment ready"
}

python_env
"$ROOT/scripts/install_tools.sh"
# Kubo from source (cached by version): the IPFS daemon for real-network runs and CID checks.
"$ROOT/scripts/install_kubo.sh" >/dev/null
