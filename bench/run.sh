#!/usr/bin/env bash
# make bench: every benchmark, each printing its figures beside a baseline measured in the
# same run. A benchmark that misses its bar makes this exit non-zero (after running all).
set -u
cd "$(dirname "$0")/.."
export MM_BIN=${MM_BIN:-$PWD/bin} MM_BUILD=${MM_BUILD:-$PWD/build}
make --no-print-directory MM_DEPS_OK=1 units >/dev/null || exit 1
# the date and the machine, which the figures belong to (a VM can move to other hardware)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
ext=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512bw|pclmulqdq|sha_ni' | paste -sd' ')
echo "make bench, $(date -u '+%Y-%m-%d %H:%M UTC'): ${cpu:-unknown CPU} ($(nproc) CPUs: ${ext:-no AVX2}), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
started=$(date +%s)
status=0
for b in bench/engine.py bench/grpc.py bench/crypto.sh bench/proxy.sh bench/proxy_h2.sh bench/grpc_proxy.sh bench/webhook.sh bench/controller.py bench/stream.py; do
    [ -x "$b" ] || continue
    echo "== $b"
    "$b" || status=1
done
# the controller on the real kube-apiserver when its binaries are cached (hack/k8s/build.sh);
# the stand-in's figure above stays beside it. BENCH_NS scales both.
if [ -x "$(hack/k8s/build.sh --print)/kube-apiserver" ] && command -v etcd >/dev/null; then
    echo "== bench/controller-live.sh"
    bench/controller-live.sh || status=1
else
    echo "== bench/controller-live.sh: skipped (kube-apiserver not cached or etcd missing; hack/k8s/README.md)"
fi
echo "make bench: done at $(date -u '+%H:%M UTC') after $((($(date +%s) - started) / 60)) minutes, load average $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
