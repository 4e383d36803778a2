#!/usr/bin/env bash
# make e2e-cluster: the e2e suite (e2e/suite/run.sh) on a real single-node Kubernetes built
# here from the release modules (hack/cluster-up.sh), with maskmesh's images as OCI archives
# imported into its containerd (no registry, no Docker, pull policy Never). The cluster is
# torn down at the end whatever happened; E2E_KEEP=1 keeps it (and the release) for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/cluster/lib.sh
. hack/images.env
t0=$SECONDS
keep="${E2E_KEEP:-0}"
down() {
    local rc=$?
    if [ "$keep" = 1 ]; then log "E2E_KEEP=1: the cluster stays up (make cluster-down)"
    else hack/cluster-down.sh || rc=1; fi
    if [ "$rc" -eq 0 ]; then log "e2e-cluster: passed in $((SECONDS - t0))s"
    else log "e2e-cluster: failed (exit $rc) after $((SECONDS - t0))s"; fi
    exit "$rc"
}
trap down EXIT
# the suite's Kafka broker (Java, the release jars by Maven) and its client (confluent-kafka)
hack/install-deps.sh kafka
hack/cluster-up.sh
BIN="$(cat "$MM_CLUSTER_DIR/bin.path")"
t1=$SECONDS
hack/oci/images.sh project
hack/oci/images.sh import project
log "maskmesh's images imported in $((SECONDS - t1))s"
KUBECONFIG="$MM_KUBECONFIG" KUBECTL="$BIN/kubectl" \
E2E_CLIENT_IMAGE=maskmesh.local/e2e-client:dev E2E_PULL_POLICY=Never \
E2E_HELM_ARGS="--set image.registry=$REGISTRY --set image.tag=$TAG --set image.pullPolicy=Never --set tests.image=maskmesh.local/e2e-client:dev" \
    e2e/suite/run.sh
