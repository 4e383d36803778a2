#!/usr/bin/env bash
# maskmesh's end-to-end suite, for any cluster a kubeconfig reaches (make e2e: kind;
# make e2e-cluster: the local cluster of hack/cluster-up.sh). It installs the chart as users
# do and asserts, on the real API server, kubelet, runtime and NetworkPolicy implementation:
#   helm install --wait with the chart's defaults; the CRD's schema and CEL rules refuse bad
#   policies with the API server's own messages; the webhook is called over TLS and injects the
#   sidecar in each mode (named-port, iptables, native sidecar) with the probes passing;
#   responses through the Service's ClusterIP are masked; a direct connection to the app port
#   is refused by the rendered NetworkPolicy; a policy edit reaches the sidecar without a
#   restart; with the webhook down an opted-in pod is refused and a kube-system pod is not;
#   a policy with spec.streams masks a Kafka topic into another through the maskmesh-stream
#   Deployment the controller renders (a real broker outside the cluster, read_committed),
#   its status.stream Ready with lag 0; FF1 and SIV data written with key v1, the Secret
#   rotated to v2 without a restart, both revealed by maskctl reveal; a WebSocket app (text
#   masked both ways, binary refused) and a gRPC service (h2c upstream, grpcurl; fields masked
#   by name with spec.grpc.descriptorSet) behind the sidecar;
#   the controller's Lease moves when its leader is killed; helm upgrade keeps the webhook's
#   certificate; helm test passes; helm uninstall leaves nothing of maskmesh.
#
# Environment:
#   KUBECONFIG (required)   KUBECTL (default kubectl)   HELM (default: hack/install-helm.sh)
#   E2E_HELM_ARGS           extra helm install arguments (images, pull policy)
#   E2E_CLIENT_IMAGE        busybox + curl image for the app and the client pods
#   E2E_PULL_POLICY         the test pods' imagePullPolicy (default IfNotPresent)
#   E2E_KEEP=1              leave everything installed at the end
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${KUBECONFIG:?KUBECONFIG must name the cluster}"
export KUBECONFIG
KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-$(hack/install-helm.sh)}"
CLIENT_IMAGE="${E2E_CLIENT_IMAGE:-maskmesh.local/e2e-client:dev}"
PULL="${E2E_PULL_POLICY:-IfNotPresent}"
read -r -a HELM_ARGS <<<"${E2E_HELM_ARGS:-}"
NS=maskmesh
APP_NS=shop
REL=maskmesh
passed=0; failed=0; t_start=$SECONDS
say() { printf '\n\033[1m== %s\033[0m (%ds)\n' "$*" "$((SECONDS - t_start))"; }
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
k() { "$KUBECTL" "$@"; }
helm_() { "$HELM" --kubeconfig "$KUBECONFIG" "$@"; }
# until CMD succeeds, at most SECONDS
eventually() { local secs=$1 i; shift; for ((i = 0; i < secs; i += 2)); do "$@" && return 0; sleep 2; done; return 1; }

dump() {
    echo "---- diagnostics"
    k get pods -A -o wide || true
    k get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -40 || true
    k -n "$NS" logs -l app.kubernetes.io/part-of=maskmesh --all-containers --tail=60 --prefix || true
    k -n "$APP_NS" logs -l app=shop-api --all-containers --tail=60 --prefix || true
}
finish() {
    local rc=$?
    { [ $rc -ne 0 ] || [ $failed -ne 0 ]; } && dump
    echo "suite: $((SECONDS - t_start))s"
    echo "$passed passed, $failed failed"
    [ $rc -eq 0 ] && [ $failed -eq 0 ]
}
trap finish EXIT

# a clean slate if an earlier run stopped half-way
helm_ uninstall "$REL" -n "$NS" --wait >/dev/null 2>&1 || true
k delete namespace "$APP_NS" --ignore-not-found --wait=true --timeout=120s >/dev/null

say "helm install --wait (the chart's defaults; images: ${HELM_ARGS[*]:-chart defaults})"
helm_ install "$REL" charts/maskmesh --namespace "$NS" --create-namespace "${HELM_ARGS[@]}" \
    --wait --timeout 300s
ok "helm install --wait succeeded"
k wait --for=condition=Established crd/maskingpolicies.maskmesh.io --timeout=60s >/dev/null
. e2e/suite/crd.sh
. e2e/suite/traffic.sh
. e2e/suite/stream.sh
. e2e/suite/fpe.sh
. e2e/suite/protocols.sh
. e2e/suite/lifecycle.sh
