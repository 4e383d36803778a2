#!/usr/bin/env bash
# Builds mm-e2e-apps (e2e/apps: the gRPC service and WebSocket app of the cluster suite) as a
# static binary from the Go module proxy into a cache outside the clone, keyed by the hash of
# its sources, as tests/grpc/build.sh does for grpcurl: a rerun, another worktree and CI reuse
# it. Prints the binary's path last.
# Usage: e2e/apps/build.sh [--print]
# Environment: MM_E2E_APPS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/maskmesh/e2e-apps)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)"
cache="${MM_E2E_APPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maskmesh/e2e-apps}"
bin="$cache/$key/mm-e2e-apps"
if [ "${1:-}" = --print ] || [ -x "$bin" ]; then echo "$bin"; exit 0; fi
command -v go >/dev/null || { echo "e2e/apps/build: go is not installed (golang-go or go.dev/dl)" >&2; exit 1; }
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "e2e/apps/build: building mm-e2e-apps $key (a first build fetches grpc-go and takes minutes)" >&2
(cd "$here" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath -mod=readonly" \
    nice -n 10 go build -ldflags "-s -w" -o "$tmp/mm-e2e-apps" . >&2)
mkdir -p "$(dirname "$bin")"
mv "$tmp/mm-e2e-apps" "$bin"
echo "$bin"
