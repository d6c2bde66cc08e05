#!/usr/bin/env bash
# Install the Solidity toolchain into node_modules/, idempotently: forge, anvil and cast 1.7.1
# (@foundry-rs/*, the platform binary ships inside an npm package), solc-js (the `solc` package,
# driven by forge through the scripts/solc shim) and forge-std (vendored by
# @layerzerolabs/toolbox-foundry), exactly as pinned by package-lock.json.
#
# Re-running is cheap: nothing happens while node_modules/ holds an install stamped with the
# current lock file and Node major version; otherwise `npm ci` reinstalls from npm's cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STAMP="$ROOT/node_modules/.flare-tools-stamp"

log() { printf '[install_tools] %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "Node.js (20 or newer) and npm are required: apt-get install nodejs npm"
    exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
    log "Node.js 20 or newer is required (found $(node --version))"
    exit 1
fi

want="$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1) node-$node_major"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

log "installing forge, anvil, cast and solc-js from package-lock.json (npm ci)"
# The @foundry-rs install scripts only download a binary when the platform package is missing;
# npm installs that package itself (an optional dependency), so no script needs to run.
(cd "$ROOT" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2

forge_version="$("$ROOT/node_modules/.bin/forge" --version | head -n1)"
solc_version="$("$ROOT/scripts/solc" --version | grep '^Version: ')"
for tool in anvil cast; do
    "$ROOT/node_modules/.bin/$tool" --version >/dev/null
done
echo "$want" > "$STAMP"
log "ready: $forge_version; solc $solc_version"
