#!/usr/bin/env bash
# lib/k8s, the controller and the webhook's Service lookup on the real kube-apiserver (make
# test-k8s-live): the same checks that tests/integration/test_k8s_client, test_controller,
# test_controller_stream.py and test_webhook_services.py run
# against the API stand-in,
# here against etcd + kube-apiserver + kube-controller-manager (hack/live-apiserver.sh; the
# controller-manager makes service accounts and collects garbage). Checks that need a fault
# only the stand-in injects are skipped and say so. Then the recorded wire samples
# (tests/k8s/recorded/) are compared with what this server answers now, so a recording that
# no longer matches the pinned release fails here (all but the three 410s, which need a server
# without its watch cache: hack/record-k8s-wire.sh). Ends with "N passed, N failed", skipped
# checks not counted.
# Usage: hack/test-k8s-live.sh [--build DIR] [--bin DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
build=build; bin=bin
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        *) echo "test-k8s-live: unknown argument $1" >&2; exit 2 ;;
    esac
done
live_name=test-k8s-live
# shellcheck source=hack/live-apiserver.sh
. hack/live-apiserver.sh
check="$build/tests/k8s/check_client"
[ -x "$check" ] || die "$check is not built (make units)"
[ -x "$bin/maskmesh-controller" ] || die "$bin/maskmesh-controller is not built (make)"

live_start controller-manager
"$BIN/kubectl" apply --server-side -k crds/ >/dev/null || die "the API server refused crds/"
"$BIN/kubectl" wait --for=condition=Established crd/maskingpolicies.maskmesh.io --timeout=60s \
    >/dev/null || die "the CRD is not Established"
live_token_kubeconfig "$MM_CLUSTER_DIR/token.kubeconfig"

passed=0; failed=0
# suite NAME CMD...: runs CMD, adds the counts it printed (cmocka's, unittest's without the
# skipped ones, or a closing "N passed, N failed")
suite() {
    local name=$1 out="$MM_CLUSTER_DIR/$1.out" rc=0 p f n skipped; shift
    log "$name"
    timeout --kill-after=10 600 "$@" >"$out" 2>&1 || rc=$?
    cat "$out"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
    n=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' "$out" | tail -1)
    if [ -z "$p$f" ] && [ -n "$n" ]; then
        f=$(sed -n 's/^FAILED (\(.*\))/\1/p' "$out" | { grep -oE '(failures|errors)=[0-9]+' || true; } |
            cut -d= -f2 | awk '{s+=$1} END {print s+0}')
        skipped=$({ grep -oE 'skipped=[0-9]+' "$out" || true; } | tail -1 | cut -d= -f2)
        p=$((n - f - ${skipped:-0}))
    elif [ -z "$p$f" ]; then
        p=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$out" | tail -1)
        f=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$out" | tail -1)
    fi
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
}

MM_KUBECONFIG="$MM_CLUSTER_DIR/token.kubeconfig" MM_K8S_LIVE=1 suite check_client "$check"
MM_BIN="$(cd "$bin" && pwd)" MM_K8S_LIVE_KUBECONFIG="$MM_CLUSTER_DIR/token.kubeconfig" \
    KUBECTL="$BIN/kubectl" suite test_controller python3 tests/integration/test_controller
MM_BIN="$(cd "$bin" && pwd)" MM_K8S_LIVE_KUBECONFIG="$MM_CLUSTER_DIR/token.kubeconfig" \
    KUBECTL="$BIN/kubectl" suite test_controller_stream python3 tests/integration/test_controller_stream.py
MM_BIN="$(cd "$bin" && pwd)" MM_K8S_LIVE_KUBECONFIG="$MM_CLUSTER_DIR/token.kubeconfig" \
    KUBECTL="$BIN/kubectl" suite test_webhook_services python3 tests/integration/test_webhook_services.py
suite recorded-samples python3 tests/k8s/recorded/wire.py --kubeconfig "$MM_CLUSTER_DIR/token.kubeconfig" \
    --compare tests/k8s/recorded/v1.37.2
cd "$root"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
