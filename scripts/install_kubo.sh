#!/usr/bin/env bash
# Build Kubo (the `ipfs` binary) from source through the Go module proxy and
# cache it by version, so tests and local runs can compare Flare's CIDs with
# the real thing. The npm `kubo` package cannot be used here: its install step
# downloads from outside the package registries.
#
# Idempotent and quiet: when the cached binary exists and reports the wanted
# version nothing is built and nothing is said. A build says so in one line; Go's
# own output goes to build.log beside the binary and is shown only if the build
# fails. Prints the binary's path on stdout (and nothing else), so callers can do
# `IPFS="$(scripts/install_kubo.sh)"`.
#
# Environment:
#   KUBO_VERSION  version to build (default v0.43.1, known to be served)
#   FLARE_CACHE   cache root (default ~/.cache/flare)
set -euo pipefail

KUBO_VERSION="${KUBO_VERSION:-v0.43.1}"
CACHE_ROOT="${FLARE_CACHE:-$HOME/.cache/flare}"
DEST_DIR="$CACHE_ROOT/kubo/$KUBO_VERSION"
BINARY="$DEST_DIR/ipfs"

# Messages go to file descriptor 3, the caller's stderr: stderr itself is the build log.
exec 3>&2
log() { printf '[install_kubo] %s\n' "$*" >&3; }

cached_binary_matches() {
    [[ -x "$BINARY" ]] || return 1
    local reported
    reported="$("$BINARY" version --number 2>/dev/null)" || return 1
    [[ "v$reported" == "$KUBO_VERSION" ]]
}

if cached_binary_matches; then
    echo "$BINARY"
    exit 0
fi

command -v go >/dev/null 2>&1 || { log "error: the Go toolchain (go) is not on PATH"; exit 1; }
log "building Kubo $KUBO_VERSION from source (first time only, a few minutes)…"

mkdir -p "$DEST_DIR"
BUILD_LOG="$DEST_DIR/build.log"
exec 2>"$BUILD_LOG"
go version >&2
fail() {
    log "error: $1; the end of $BUILD_LOG:"
    tail -n 25 "$BUILD_LOG" >&3
    exit 1
}
trap 'fail "building Kubo $KUBO_VERSION failed"' ERR
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
[[ -d "$SOURCE_DIR" ]] || fail "go mod download gave no source directory"
cp -R "$SOURCE_DIR" "$STAGING/src"
chmod -R u+w "$STAGING/src"
cd "$STAGING/src"
if [[ -n "$LIBP2P_STAND_IN" ]]; then
    echo "replacing Kubo's unpublished go-libp2p fork with upstream go-libp2p $LIBP2P_STAND_IN" >&2
    go mod edit -dropreplace github.com/libp2p/go-libp2p \
        -require "github.com/libp2p/go-libp2p@$LIBP2P_STAND_IN"
fi
go build -o "$STAGING/ipfs" ./cmd/ipfs
cd - >/dev/null
mv -f "$STAGING/ipfs" "$BINARY"

cached_binary_matches || fail "the built binary does not report version $KUBO_VERSION"
echo "$BINARY"
