#!/usr/bin/env bash
# Build Kubo (the `ipfs` binary) from source through the Go module proxy and
# cache it by version, so tests and local runs can compare Flare's CIDs with
# the real thing. The npm `kubo` package cannot be used here: its install step
# downloads from outside the package registries.
#
# Idempotent: when the cached binary exists and reports the wanted version the
# build is skipped. Prints the binary's path on stdout (and nothing else), so
# callers can do `IPFS="$(scripts/install_kubo.sh)"`.
#
# Environment:
#   KUBO_VERSION  version to build (default v0.43.1, known to be served)
#   FLARE_CACHE   cache root (default ~/.cache/flare)
set -euo pipefail

KUBO_VERSION="${KUBO_VERSION:-v0.43.1}"
CACHE_ROOT="${FLARE_CACHE:-$HOME/.cache/flare}"
DEST_DIR="$CACHE_ROOT/kubo/$KUBO_VERSION"
BINARY="$DEST_DIR/ipfs"

log() { printf '[install_kubo] %s\n' "$*" >&2; }

cached_binary_matches() {
    [[ -x "$BINARY" ]] || return 1
    local reported
    reported="$("$BINARY" version --number 2>/dev/null)" || return 1
    [[ "v$reported" == "$KUBO_VERSION" ]]
}

if cached_binary_matches; then
    log "Kubo $KUBO_VERSION already built"
    echo "$BINARY"
    exit 0
fi

command -v go >/dev/null 2>&1 || { log "error: the Go toolchain (go) is not on PATH"; exit 1; }
log "building Kubo $KUBO_VERSION with $(go version) (several minutes on a small machine)"

mkdir -p "$DEST_DIR"
# Build into a scratch directory and move the result into place with a rename,
# so an interrupted build never leaves a half-written binary at the cached path.
STAGING="$(mktemp -d "$DEST_DIR/.build.XXXXXX")"
trap 'chmod -R u+w "$STAGING" 2>/dev/null; rm -rf "$STAGING"' EXIT
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

# `go install github.com/ipfs/kubo/cmd/ipfs@VERSION` is refused for recent
# Kubo: its go.mod carries a `replace` directive (go-libp2p => a fork), which
# `go install pkg@version` does not allow. So fetch the Kubo module through
# the module proxy and build it as the main module, where the replace applies;
# every dependency, the fork included, still comes from the proxy.
SOURCE_DIR="$(go mod download -json "github.com/ipfs/kubo@$KUBO_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$SOURCE_DIR" ]] || { log "error: go mod download gave no source directory"; exit 1; }
cp -R "$SOURCE_DIR" "$STAGING/src"
chmod -R u+w "$STAGING/src"
(cd "$STAGING/src" && go build -o "$STAGING/ipfs" ./cmd/ipfs)
mv -f "$STAGING/ipfs" "$BINARY"

if ! cached_binary_matches; then
    log "error: built binary does not report version $KUBO_VERSION"
    exit 1
fi
log "Kubo $KUBO_VERSION built"
echo "$BINARY"
