#!/usr/bin/env bash
# Install Debian's Chromium, which the dashboard's browser test drives headless
# (tests/cli/test_dashboard_browser.py), idempotently: nothing happens when a chromium binary
# is already on PATH; otherwise one line, and apt's own output goes to a log shown only when
# it fails. No browser is ever downloaded from anywhere but the distribution's archive.
set -euo pipefail

log() { printf '[install_chromium] %s\n' "$*" >&2; }

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "no chromium and no apt-get: install Chromium with this system's package manager"
    exit 1
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
    sudo=(sudo)
fi
log "installing Debian's chromium (apt-get) for the dashboard's browser test"
apt_log="$(mktemp -t flare-chromium.XXXXXX.log)"
if ! {
    "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium
} >"$apt_log" 2>&1; then
    log "error: installing chromium failed; the end of $apt_log:"
    tail -n 30 "$apt_log" >&2
    exit 1
fi
rm -f "$apt_log"
