#!/usr/bin/env bash
# The CRD on the real kube-apiserver, without a cluster: starts only etcd (Debian, TLS with
# client certificates, 127.0.0.1, free ports, data in a temp dir) and kube-apiserver (TLS,
# Node,RBAC, service-account keys, loopback) from hack/k8s/build.sh's cache, applies crds/
# server-side, waits for Established, runs e2e/suite/crd.sh (bad policies refused with the
# server's own messages, kubectl explain, examples/policies accepted), then stops both and
# removes the temp dir (hack/live-apiserver.sh, which also builds kube-apiserver and kubectl
# when they are not cached, and says how long that took). Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
live_name=check-crd-live
# shellcheck source=hack/live-apiserver.sh
. hack/live-apiserver.sh
live_start
K() { "$BIN/kubectl" "$@"; }

log "kubectl apply --server-side -k crds/"
K apply --server-side -k crds/ || die "the API server refused crds/ (above)"
K wait --for=condition=Established crd/maskingpolicies.maskmesh.io --timeout=60s >/dev/null ||
    die "the CRD is not Established"

# e2e/suite/crd.sh is a part of run.sh: the same helpers, without helm or a cluster
passed=0; failed=0; t_start=$SECONDS
say() { printf '\n== %s (%ds)\n' "$*" "$((SECONDS - t_start))"; }
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
k() { "$BIN/kubectl" "$@"; }
cd "$root"
# shellcheck source=e2e/suite/crd.sh
. e2e/suite/crd.sh
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
