#!/usr/bin/env bash
# Records the Kubernetes wire samples (tests/k8s/recorded/wire.py's scenario) from the real
# kube-apiserver of hack/k8s/build.sh's pinned release into tests/k8s/recorded/<version>/,
# with RELEASE naming the server's version. etcd + kube-apiserver + kube-controller-manager
# as hack/test-k8s-live.sh runs them (hack/live-apiserver.sh), the project's CRD applied.
#
# Two servers, one after the other: the first as clusters run it (with the watch cache) for
# every sample but the 410s; the second with --watch-cache=false and etcd compacted every 5 s
# for the 410s (list-continue-410, list-exact-rv-410, watch-expired). With the watch cache,
# v1.37.2 serves an old continue token or resourceVersion from its own snapshots and history,
# so no 410 can be had on demand; what a client gets once the cache passes a request on to
# etcd is what the second server shows.
# Usage: hack/record-k8s-wire.sh [DIR]   (default tests/k8s/recorded/<gitVersion>)
set -euo pipefail
cd "$(dirname "$0")/.."
phase=main
if [ "${1:-}" = --phase-410 ]; then phase=410; shift; fi
live_name=record-k8s-wire-$phase
# shellcheck source=hack/live-apiserver.sh
. hack/live-apiserver.sh
expired=list-continue-410,list-exact-rv-410,watch-expired
[ $phase = 410 ] && live_apiserver_args=(--watch-cache=false --etcd-compaction-interval=5s)
live_start controller-manager
"$BIN/kubectl" apply --server-side -k crds/ >/dev/null || die "the API server refused crds/"
"$BIN/kubectl" wait --for=condition=Established crd/maskingpolicies.maskmesh.io --timeout=60s \
    >/dev/null || die "the CRD is not Established"
live_token_kubeconfig "$MM_CLUSTER_DIR/token.kubeconfig"
version="$("$BIN/kubectl" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
dir=${1:-tests/k8s/recorded/$version}
if [ $phase = 410 ]; then
    python3 tests/k8s/recorded/wire.py --kubeconfig "$MM_CLUSTER_DIR/token.kubeconfig" --record "$dir" \
        --compaction-wait 12 --only "$expired"
    exit 0
fi
rm -rf "$dir.new"
python3 tests/k8s/recorded/wire.py --kubeconfig "$MM_CLUSTER_DIR/token.kubeconfig" --record "$dir.new"
# the second server, in a process of its own (hack/live-apiserver.sh runs one per shell)
"$0" --phase-410 "$dir.new"
rm -rf "$dir"; mv "$dir.new" "$dir"
log "recorded into $dir"
