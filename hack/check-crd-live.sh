#!/usr/bin/env bash
# The CRD on the real kube-apiserver, without a cluster: starts only etcd (Debian, TLS with
# client certificates, 127.0.0.1, free ports, data in a temp dir) and kube-apiserver (TLS,
# Node,RBAC, service-account keys, loopback) from hack/k8s/build.sh's cache, applies crds/
# server-side, waits for Established, runs e2e/suite/crd.sh (bad policies refused with the
# server's own messages, kubectl explain, examples/policies accepted), then stops both and
# removes the temp dir. Certificates and kubeconfig come from hack/cluster/pki.sh, as for
# hack/cluster-up.sh. Ends with "N passed, N failed".
#
# If kube-apiserver or kubectl is not cached it builds just those two (hack/k8s/build.sh
# --only) and prints how long that took. Needs: etcd (etcd-server), openssl, curl, go (build).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
log() { printf '%s check-crd-live: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
command -v etcd >/dev/null || die "etcd is not installed (hack/install-deps.sh cluster: etcd-server)"
command -v openssl >/dev/null || die "openssl is not installed"

BIN="$(hack/k8s/build.sh --print)"
if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kubectl" ]; then
    log "kube-apiserver/kubectl not in $BIN: building them (hack/k8s/build.sh --only)"
    t0=$SECONDS
    hack/k8s/build.sh --only kube-apiserver kubectl >/dev/null ||
        die "could not build kube-apiserver and kubectl (hack/k8s/build.sh --only kube-apiserver kubectl)"
    log "built kube-apiserver and kubectl in $((SECONDS - t0))s"
fi
[ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kubectl" ] || die "kube-apiserver or kubectl missing in $BIN"

# a free TCP port on 127.0.0.1 (the kernel picks; a tiny race is accepted, as the tests do)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

MM_CLUSTER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/maskmesh-crd-live.XXXXXX")"
pids=()
cleanup() {
    local rc=$? p i
    # the API server first, then etcd: the reverse of the start
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true
    done
    if [ $rc -ne 0 ]; then
        for p in etcd kube-apiserver; do
            [ -f "$MM_CLUSTER_DIR/$p.log" ] && { echo "---- $p.log (tail)"; tail -20 "$MM_CLUSTER_DIR/$p.log"; }
        done
    fi
    rm -rf "$MM_CLUSTER_DIR"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MM_NODE_IP=127.0.0.1
MM_API_PORT="$(free_port)"
etcd_port="$(free_port)"; peer_port="$(free_port)"
# pki.sh's make_pki also names the node and the service address; loopback only here
MM_NODE=localhost MM_API_SERVICE_IP=127.0.0.1
# shellcheck source=hack/cluster/pki.sh
. hack/cluster/pki.sh
make_pki
pki="$MM_CLUSTER_DIR/pki"
export KUBECONFIG="$MM_CLUSTER_DIR/admin.kubeconfig"

# wait_for NAME SECONDS CMD...: until CMD succeeds; dies naming NAME, at once if the last
# process started has exited
wait_for() {
    local name=$1 secs=$2 i; shift 2
    for ((i = 0; i < secs * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || die "$name exited (log below)"
        sleep 0.5
    done
    die "$name not ready after ${secs}s"
}

log "etcd $(etcd --version | head -1 | awk '{print $3}') on 127.0.0.1:$etcd_port"
etcd --name mm --data-dir "$MM_CLUSTER_DIR/etcd" \
    --listen-client-urls "https://127.0.0.1:$etcd_port" --advertise-client-urls "https://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "mm=http://127.0.0.1:$peer_port" \
    --cert-file "$pki/etcd-server.crt" --key-file "$pki/etcd-server.key" \
    --client-cert-auth --trusted-ca-file "$pki/ca.crt" >"$MM_CLUSTER_DIR/etcd.log" 2>&1 &
pids+=($!)
etcd_health() { curl -sf --cacert "$pki/ca.crt" --cert "$pki/apiserver-etcd-client.crt" \
    --key "$pki/apiserver-etcd-client.key" "https://127.0.0.1:$etcd_port/health" | grep -q '"true"'; }
wait_for etcd 30 etcd_health

log "kube-apiserver $("$BIN/kube-apiserver" --version | awk '{print $2}') on 127.0.0.1:$MM_API_PORT"
"$BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --secure-port="$MM_API_PORT" \
    --etcd-servers="https://127.0.0.1:$etcd_port" --etcd-cafile="$pki/ca.crt" \
    --etcd-certfile="$pki/apiserver-etcd-client.crt" --etcd-keyfile="$pki/apiserver-etcd-client.key" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --authorization-mode=Node,RBAC \
    --service-cluster-ip-range=10.96.0.0/16 \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --endpoint-reconciler-type=none --profiling=false --v=1 >"$MM_CLUSTER_DIR/kube-apiserver.log" 2>&1 &
pids+=($!)
K() { "$BIN/kubectl" "$@"; }
wait_for kube-apiserver 120 K get --raw /readyz

log "kubectl apply --server-side -k crds/"
K apply --server-side -k crds/ || die "the API server refused crds/ (above)"
K wait --for=condition=Established crd/maskingpolicies.maskmesh.io --timeout=60s >/dev/null ||
    die "the CRD is not Established"
# crd.sh creates in namespace default; the API server makes it shortly after start
wait_for "namespace default" 30 K get namespace default

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
