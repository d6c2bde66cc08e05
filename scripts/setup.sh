#!/usr/bin/env bash
# Set up what a flare command needs: the Python virtualenv with the package and its dev
# tools. $FLARE_EXTRAS (comma-separated, default "dev") names the optional extras to have:
# scripts/test asks for ray and dashboard too, which `--backend ray` and `flare dashboard`
# need, so the README's first command downloads neither. Extras once installed stay. What
# only some commands need is set up by those commands: the Solidity tools
# (scripts/install_tools.sh) and Kubo (scripts/install_kubo.sh) by scripts/test and, when
# missing, by `flare node up`. Flare's native kernels (native/, Rust) are built here too.
#
# Quiet and idempotent: one line when there is work to do, nothing when a stamp says the
# inputs have not changed since the last success and the extras asked for are installed.
# pip's own output goes to $VENV/setup.log and is shown only when it fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLARE_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

log() { printf '[setup] %s\n' "$*" >&2; }
SAID=""

python_env() {
    local stamp="$VENV/.flare-stamp"
    local want have_hash="" have_extras="" extras
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [[ -f "$stamp" ]]; then
        read -r have_hash have_extras <"$stamp" || true
    fi
    # The extras asked for and those already installed, sorted, without repeats.
    extras="$(printf '%s\n' ${FLARE_EXTRAS:-dev} $have_extras | tr ',' '\n' | sed '/^$/d' |
        sort -u | paste -sd, -)"
    if [[ -x "$VENV/bin/python" && "$have_hash" == "$want" && "$extras" == "$have_extras" ]]; then
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating the Python environment in $VENV (the first time downloads torch;" \
            "later ones reuse pip's cache)"
    elif [[ "$have_hash" != "$want" ]]; then
        log "updating the Python environment in $VENV (pyproject.toml changed)"
    else
        log "adding the extras $extras to the Python environment in $VENV"
    fi
    mkdir -p "$VENV"
    local setup_log="$VENV/setup.log"
    if ! {
        "$PYTHON_BIN" -m venv "$VENV" &&
            "$VENV/bin/python" -m pip install --upgrade pip &&
            "$VENV/bin/python" -m pip install -e "$ROOT[$extras]"
    } >"$setup_log" 2>&1; then
        log "error: setting up $VENV failed; the end of $setup_log:"
        tail -n 30 "$setup_log" >&2
        exit 1
    fi
    echo "$want $extras" >"$stamp"
    SAID=1
}

# Flare's native kernels (native/, Rust through maturin: the pairing check and PowerSGD
# blobs), built into the environment when their sources change. Without a Rust toolchain
# Python runs both, the same answers more slowly, and setup says so instead of failing.
native_kernels() {
    local stamp="$VENV/.flare-native-stamp" want
    want="$(cat "$ROOT"/native/Cargo.toml "$ROOT"/native/Cargo.lock "$ROOT"/native/pyproject.toml \
        "$ROOT"/native/src/*.rs | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        log "warning: no cargo (Rust) here: native/ is not built; pairing checks run on" \
            "pyblst alone and PowerSGD blobs in Python (the same answers, more slowly)"
        return 0
    fi
    # A fresh environment has said its one line already; a changed native/ says its own.
    [[ -n "${SAID:-}" ]] || log "building the native kernels (native/; the first time" \
        "fetches their crates)"
    local native_log="$VENV/native.log"
    if ! "$VENV/bin/python" -m pip install "$ROOT/native" >"$native_log" 2>&1; then
        log "error: building native/ failed; the end of $native_log:"
        tail -n 30 "$native_log" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
}

python_env
native_kernels
