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
export GOFLAGS="${GOFLAGS:--buildvcs=false} -mod=mod"

# `go install github.com/ipfs/kubo/cmd/ipfs@VERSION` is refused for Kubo
# v0.43.1: its go.mod carries `replace github.com/libp2p/go-libp2p =>
# github.com/lidel/go-libp2p <pseudo-version>`, and `go install pkg@version`
# allows no replace directive. Honouring the replace does not work either: the
# module proxy answers 403 for that fork. Its go.mod says the fork exists only
# until a go-libp2p release requires quic-go >= v0.62.0 and webtransport-go >=
# v0.13.0; go-libp2p v0.50.0 is that release (upstream v0.49.0, the version
# Kubo requires, does not compile against webtransport-go v0.13.0). So: fetch
# the Kubo module through the proxy, swap the fork for upstream v0.50.0, build
# it as the main module. Content addressing (boxo) is untouched by the swap.
case "$KUBO_VERSION" in
    v0.43.1) LIBP2P_STAND_IN="v0.50.0" ;;
    *) LIBP2P_STAND_IN="" ;;
esac

SOURCE_DIR="$(go mod download -json "github.com/ipfs/kubo@$KUBO_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$SOURCE_DIR" ]] || { log "error: go mod download gave no source directory"; exit 1; }
cp -R "$SOURCE_DIR" "$STAGING/src"
chmod -R u+w "$STAGING/src"
cd "$STAGING/src"
if [[ -n "$LIBP2P_STAND_IN" ]]; then
    log "replacing Kubo's unpublished go-libp2p fork with upstream go-libp2p $LIBP2P_STAND_IN"
    go mod edit -dropreplace github.com/libp2p/go-libp2p \
        -require "github.com/libp2p/go-libp2p@$LIBP2P_STAND_IN"
fi
go build -o "$STAGING/ipfs" ./cmd/ipfs
cd - >/dev/null
mv -f "$STAGING/ipfs" "$BINARY"

if ! cached_binary_matches; then
    log "error: built binary does not report version $KUBO_VERSION"
    exit 1
fi
log "Kubo $KUBO_VERSION built"
echo "$BINARY"
