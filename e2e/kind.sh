#!/usr/bin/env bash
# make e2e: the e2e suite (e2e/suite/run.sh) in a kind cluster, for users with Docker. Needs
# Docker, kind (hack/kind.env pins the version) and kubectl; installs helm itself.
#   create the cluster -> maskmesh's images from the Dockerfile (hack/build-images.sh) and the
#   suite's busybox+curl image as an OCI archive (hack/oci/images.sh), kind-loaded -> the suite
#   -> the cluster is deleted (E2E_KEEP=1 keeps it).
# make e2e-cluster runs the same suite on a local cluster without Docker (e2e/cluster.sh).
# Not run here since the suite gained streams, FPE, WebSocket and gRPC (no Docker engine on
# the machine): the WebSocket and gRPC clients reach the Services' ClusterIPs from this
# machine, which kind does not route; e2e-cluster is where those parts are proven.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/kind.env
. hack/images.env
TAG=${TAG:-0.1.0}-e2e
need() { command -v "$1" >/dev/null 2>&1 || { echo "e2e: $1 is required ($2)" >&2; exit 2; }; }
need docker "a Docker engine must be running"
need kind "install kind $KIND_VERSION, e.g. go install sigs.k8s.io/kind@$KIND_VERSION"
need kubectl "any kubectl within one minor version of $KIND_NODE_IMAGE"
docker info >/dev/null 2>&1 || { echo "e2e: no Docker engine answers (docker info failed)" >&2; exit 2; }
KC=$(mktemp)
cleanup() {
    rc=$?
    if [ "${E2E_KEEP:-0}" != 1 ]; then kind delete cluster --name "$KIND_CLUSTER" >/dev/null 2>&1 || true; fi
    rm -f "$KC"
    exit $rc
}
trap cleanup EXIT

echo "== kind cluster $KIND_CLUSTER ($KIND_NODE_IMAGE)"
kind delete cluster --name "$KIND_CLUSTER" >/dev/null 2>&1 || true
kind create cluster --name "$KIND_CLUSTER" --image "$KIND_NODE_IMAGE" --kubeconfig "$KC" --wait 180s

echo "== images: build and kind load ($REGISTRY/*:$TAG, maskmesh.local/e2e-client:dev)"
REGISTRY=$REGISTRY TAG=$TAG hack/build-images.sh
for img in "$CONTROLLER_IMAGE" "$WEBHOOK_IMAGE" "$PROXY_IMAGE" "$STREAM_IMAGE"; do
    kind load docker-image --name "$KIND_CLUSTER" "$REGISTRY/$img:$TAG"
done
hack/oci/images.sh project
for a in e2e-client e2e-apps; do
    kind load image-archive --name "$KIND_CLUSTER" "build/oci/project/maskmesh.local_${a}_dev.tar"
done
# the suite's Kafka broker runs on this machine: on the kind network's gateway, which the
# node's pods reach (the node's own address is the kind container's, not this machine's)
E2E_KAFKA_HOST="${E2E_KAFKA_HOST:-$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' |
    tr ' ' '\n' | grep -m1 -E '^[0-9]+(\.[0-9]+){3}$')}"
export E2E_KAFKA_HOST

KUBECONFIG="$KC" E2E_CLIENT_IMAGE=maskmesh.local/e2e-client:dev E2E_PULL_POLICY=IfNotPresent \
E2E_HELM_ARGS="--set image.registry=$REGISTRY --set image.tag=$TAG --set image.pullPolicy=IfNotPresent --set tests.image=maskmesh.local/e2e-client:dev" \
    e2e/suite/run.sh
