#!/usr/bin/env bash
# Builds grpcurl (github.com/fullstorydev/grpcurl, the version pinned in tests/grpc/tools/go.mod)
# from the Go module proxy into a cache outside the clone, as hack/k8s/build.sh does, so a second
# run, another worktree and CI reuse it. Prints the binary's path last.
# Usage: tests/grpc/build.sh [--print]
# Environment: MM_GRPC_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/maskmesh/grpc)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/fullstorydev/grpcurl" { print $3 }' "$here/tools/go.mod")"
[ -n "$version" ] || { echo "grpc/build: no grpcurl version in $here/tools/go.mod" >&2; exit 1; }
cache="${MM_GRPC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maskmesh/grpc}"
bin="$cache/grpcurl-$version/grpcurl"
if [ "${1:-}" = --print ] || [ -x "$bin" ]; then echo "$bin"; exit 0; fi
command -v go >/dev/null || { echo "grpc/build: go is not installed (golang-go or go.dev/dl)" >&2; exit 1; }
mkdir -p "$(dirname "$bin")"
tmp="$(mktemp -d "$(dirname "$bin")/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cp "$here/tools/go.mod" "$here/tools/tools.go" "$tmp/"
[ -f "$here/tools/go.sum" ] && cp "$here/tools/go.sum" "$tmp/"
echo "grpc/build: building grpcurl $version (a first build takes a few minutes)" >&2
(cd "$tmp" && go mod tidy >&2 && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath" \
    nice -n 10 go build -ldflags "-s -w -X main.version=$version" -o "$tmp/grpcurl" \
    github.com/fullstorydev/grpcurl/cmd/grpcurl >&2)
[ -f "$here/tools/go.sum" ] || cp "$tmp/go.sum" "$here/tools/go.sum"
mv "$tmp/grpcurl" "$bin"
echo "$bin"
