#!/usr/bin/env bash
# Set up what every flare command needs: the Python virtualenv with the package, its dev
# tools, Ray and aiohttp (the optional extras the tests of `--backend ray` and of
# `flare dashboard` need). What only some
# commands need is set up by those commands: the Solidity tools
# (scripts/install_tools.sh) and Kubo (scripts/install_kubo.sh) by scripts/test and, when
# missing, by `flare node up`.
#
# Quiet and idempotent: one line when there is work to do, nothing when a stamp says the
# inputs have not changed since the last success. pip's own output goes to $VENV/setup.log
# and is shown only when it fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLARE_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

log() { printf '[setup] %s\n' "$*" >&2; }

python_env() {
    local stamp="$VENV/.flare-stamp"
    local want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    if [[ -x "$VENV/bin/python" ]]; then
        log "updating the Python environment in $VENV (pyproject.toml changed)"
    else
        log "creating the Python environment in $VENV (the first time downloads torch;" \
            "later ones reuse pip's cache)"
    fi
    mkdir -p "$VENV"
    local setup_log="$VENV/setup.log"
    if ! {
        "$PYTHON_BIN" -m venv "$VENV" &&
            "$VENV/bin/python" -m pip install --upgrade pip &&
            "$VENV/bin/python" -m pip install -e "$ROOT[dev,ray,dashboard]"
    } >"$setup_log" 2>&1; then
        log "error: setting up $VENV failed; the end of $setup_log:"
        tail -n 30 "$setup_log" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
}

python_env
