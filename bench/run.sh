#!/usr/bin/env bash
# make bench: every benchmark, each printing its figures beside a baseline measured in the
# same run. A benchmark that misses its bar makes this exit non-zero (after running all).
set -u
cd "$(dirname "$0")/.."
export MM_BIN=${MM_BIN:-$PWD/bin} MM_BUILD=${MM_BUILD:-$PWD/build}
make --no-print-directory MM_DEPS_OK=1 units >/dev/null || exit 1
status=0
for b in bench/engine.py bench/grpc.py bench/crypto.sh bench/proxy.sh bench/proxy_h2.sh bench/webhook.sh bench/controller.py bench/stream.py; do
    [ -x "$b" ] || continue
    echo "== $b"
    "$b" || status=1
done
exit $status
