#!/usr/bin/env bash
# bench/controller.py against the real kube-apiserver (issue 17: "all rendered from a cold
# start in under 10 s against the real API server; the stand-in's figure beside it"): etcd +
# kube-apiserver + kube-controller-manager from hack/live-apiserver.sh on loopback, then the
# same bench with --kubeconfig, once per worker count in BENCH_WORKERS (default "1 4": the
# sequential baseline and the default, measured in the same run). BENCH_NS / BENCH_PER_NS
# scale it as for bench/controller.py. LIVE_ETCD_TMPFS=1 keeps etcd's data on tmpfs (no disk
# fsync: a measurement setup choice, printed beside the figure); LIVE_AUDIT=1 (the default
# here) counts the writes per resource and client from the API server's audit log;
# BENCH_API_PROFILE=SECONDS profiles the API server's CPU over the cold start (go tool pprof).
# Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
live_name=bench-controller-live
# shellcheck source=hack/live-apiserver.sh
. hack/live-apiserver.sh
# BENCH_CONTROLLER: another build of the controller (an A/B against a copy of the old one)
ctrl_bin=${BENCH_CONTROLLER:-$PWD/bin/maskmesh-controller}
[ -x "$ctrl_bin" ] || die "$ctrl_bin is not built (make)"
export LIVE_AUDIT=${LIVE_AUDIT:-1}
# BENCH_API_PROFILE=SECONDS (bench/controller.py): the API server's CPU profile of the cold
# start, which needs its profiling endpoint (off in hack/live-apiserver.sh; the last flag wins)
[ "${BENCH_API_PROFILE:-0}" != 0 ] && live_apiserver_args+=(--profiling=true)
live_start controller-manager
if [ "${LIVE_ETCD_TMPFS:-0}" = 1 ]; then
    echo "== etcd's data dir on tmpfs (/dev/shm; LIVE_ETCD_TMPFS=1): no fsync reaches a disk"
else
    echo "== etcd's data dir on disk ($(df --output=source,fstype "${TMPDIR:-/tmp}" | tail -1 | xargs)), fsync per commit"
fi
export PATH="$BIN:$PATH"
"$BIN/kubectl" apply --server-side -k crds/ >/dev/null || die "the API server refused crds/"
"$BIN/kubectl" wait --for=condition=Established crd/maskingpolicies.maskmesh.io --timeout=60s \
    >/dev/null || die "the CRD is not Established"
# The controller authenticates as in a cluster: the chart's ServiceAccount with a bound token,
# authorized by the chart's ClusterRole (BENCH_CTRL_AUTH=serviceaccount, the default), or
# with the admin's client certificate (BENCH_CTRL_AUTH=admin; system:masters skips RBAC, and
# kube-apiserver verifies a client certificate's chain on every request, which a cluster's
# controller never costs it: its token's verdict is cached). The bench's own requests stay
# the admin's.
ctrl_kc=$KUBECONFIG
case ${BENCH_CTRL_AUTH:-serviceaccount} in
serviceaccount)
    helm="$(hack/install-helm.sh)" || die "cannot install helm (hack/install-helm.sh)"
    "$BIN/kubectl" create namespace maskmesh >/dev/null || die "the API server refused namespace maskmesh"
    "$helm" template maskmesh charts/maskmesh --namespace maskmesh \
        --show-only templates/rbac.yaml --show-only templates/serviceaccounts.yaml |
        "$BIN/kubectl" apply -f - >/dev/null || die "the API server refused the chart's RBAC"
    ctrl_kc="$MM_CLUSTER_DIR/controller.kubeconfig"
    live_sa_kubeconfig "$ctrl_kc" maskmesh maskmesh-controller
    echo "== the controller as service account maskmesh/maskmesh-controller (the chart's RBAC, a bound token)"
    ;;
admin) echo "== the controller as the admin (client certificate, system:masters)" ;;
*) die "BENCH_CTRL_AUTH is serviceaccount or admin, not ${BENCH_CTRL_AUTH}" ;;
esac
wrap="$MM_CLUSTER_DIR/bin" rc=0
mkdir -p "$wrap"
for w in ${BENCH_WORKERS:-1 4}; do
    # bench/controller.py starts $MM_BIN/maskmesh-controller: a wrapper adds --workers
    printf '#!/bin/sh\nexec %q --workers %d "$@"\n' "$ctrl_bin" "$w" \
        >"$wrap/maskmesh-controller"
    chmod +x "$wrap/maskmesh-controller"
    echo "== controller on kube-apiserver $("$BIN/kube-apiserver" --version | awk '{print $2}'), --workers $w"
    # a missed bar is a figure to print, not a reason to skip the next run
    audit_from=$(wc -l <"$MM_CLUSTER_DIR/audit.log" 2>/dev/null || echo 0)
    r=0
    BENCH_MARKS="$MM_CLUSTER_DIR/marks" BENCH_CTRL_KUBECONFIG="$ctrl_kc" MM_BIN="$wrap" \
        python3 -u bench/controller.py --kubeconfig "$KUBECONFIG" || r=$?
    # 3: measured, a bar missed; anything else: the bench failed, and the servers' logs tell
    # (a failure outranks a missed bar)
    case $r in
    0) ;;
    3) [ "$rc" -eq 1 ] || rc=3 ;;
    *) rc=1 ;;
    esac
    [ -f "$MM_CLUSTER_DIR/audit.log" ] && [ -s "$MM_CLUSTER_DIR/marks" ] &&
        python3 bench/audit-writes.py --skip "$audit_from" --marks "$MM_CLUSTER_DIR/marks" \
            "$MM_CLUSTER_DIR/audit.log"
    rm -f "$MM_CLUSTER_DIR/marks"
    # the bench deletes its namespaces without waiting: wait, so the next run starts cold
    for _ in $(seq 1 240); do
        "$BIN/kubectl" get ns -o name | grep -q '^namespace/ns-[0-9]' || break
        sleep 1
    done
done
# a missed bar is not the servers' failure: their logs stay out of the figures
[ "$rc" -eq 3 ] && live_quiet=1
exit $rc
