# The real kube-apiserver without a cluster, for checks that need only the API: Debian's etcd
# (TLS with client certificates, 127.0.0.1, free ports, data in a temp dir) and kube-apiserver
# (TLS, Node,RBAC, service-account keys, loopback) from hack/k8s/build.sh's cache, and on
# request kube-controller-manager beside them (service accounts, garbage collection, namespace
# deletion). Certificates and kubeconfigs come from hack/cluster/pki.sh, as for
# hack/cluster-up.sh. Sourced by hack/check-crd-live.sh, hack/test-k8s-live.sh and
# hack/record-k8s-wire.sh:
#
#   . hack/live-apiserver.sh        # defines log, die, free_port, live_* ; sets BIN
#   live_start [controller-manager] # MM_CLUSTER_DIR, KUBECONFIG (admin, client certificate);
#                                   # live_apiserver_args=(...) beforehand adds flags
#   live_token_kubeconfig FILE      # a kubeconfig with a cluster-admin bearer token
#   live_sa_kubeconfig FILE NS SA   # a kubeconfig with a bound token of ServiceAccount NS/SA
#   (live_stop runs on exit: every process it started, by pid, then the temp dir; on a
#   non-zero exit it prints the tail of each one's log first, unless live_quiet=1)
#
# Bench options (environment): LIVE_ETCD_TMPFS=1 puts etcd's data dir on /dev/shm (tmpfs:
# its fsyncs cost nothing, so the figure is the API server's and etcd's CPU, not the disk's);
# LIVE_AUDIT=1 writes an audit log of every write request (Metadata level) to
# $MM_CLUSTER_DIR/audit.log, for counting writes per resource.
#
# Needs: etcd (etcd-server), openssl, curl, go (only to build what is not cached).
# shellcheck shell=bash
live_name=${live_name:-live-apiserver}
log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$live_name" "$*" >&2; }
die() { log "error: $*"; exit 1; }
command -v etcd >/dev/null || die "etcd is not installed (hack/install-deps.sh cluster: etcd-server)"
command -v openssl >/dev/null || die "openssl is not installed"

BIN="$(hack/k8s/build.sh --print)"
# live_need NAME...: builds the named components when they are not cached
live_need() {
    local c missing=()
    for c in "$@"; do [ -x "$BIN/$c" ] || missing+=("$c"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "${missing[*]} not in $BIN: building (hack/k8s/build.sh --only ${missing[*]})"
    local t0=$SECONDS
    hack/k8s/build.sh --only "${missing[@]}" >/dev/null ||
        die "could not build ${missing[*]} (hack/k8s/build.sh --only ${missing[*]})"
    log "built ${missing[*]} in $((SECONDS - t0))s"
    for c in "$@"; do [ -x "$BIN/$c" ] || die "$c missing in $BIN"; done
}

# a free TCP port on 127.0.0.1 (the kernel picks; a tiny race is accepted, as the tests do)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

live_pids=()
live_names=()
live_stop() {
    local rc=$? i
    # the reverse of the start: controller-manager, API server, etcd
    for ((i = ${#live_pids[@]} - 1; i >= 0; i--)); do
        kill "${live_pids[i]}" 2>/dev/null || true; wait "${live_pids[i]}" 2>/dev/null || true
    done
    if [ $rc -ne 0 ] && [ "${live_quiet:-0}" != 1 ] && [ -n "${MM_CLUSTER_DIR:-}" ]; then
        for i in "${live_names[@]}"; do
            [ -f "$MM_CLUSTER_DIR/$i.log" ] && { echo "---- $i.log (tail)"; tail -20 "$MM_CLUSTER_DIR/$i.log"; }
        done
    fi
    [ -n "${MM_CLUSTER_DIR:-}" ] && rm -rf "$MM_CLUSTER_DIR"
    [ -n "${live_tmpfs_dir:-}" ] && rm -rf "$live_tmpfs_dir"
    exit $rc
}

# wait_for NAME SECONDS CMD...: until CMD succeeds; dies naming NAME, at once if the last
# process started has exited
wait_for() {
    local name=$1 secs=$2 i; shift 2
    for ((i = 0; i < secs * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "${live_pids[-1]}" 2>/dev/null || die "$name exited (log below)"
        sleep 0.5
    done
    die "$name not ready after ${secs}s"
}

# live_spawn NAME CMD...: CMD in the background, its output in $MM_CLUSTER_DIR/NAME.log
live_spawn() {
    local name=$1; shift
    "$@" >"$MM_CLUSTER_DIR/$name.log" 2>&1 &
    live_pids+=($!)
    live_names+=("$name")
}

live_start() {
    local with_kcm=${1:-} etcd_port peer_port
    live_need kube-apiserver kubectl
    [ "$with_kcm" = controller-manager ] && live_need kube-controller-manager
    MM_CLUSTER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/maskmesh-$live_name.XXXXXX")"
    trap live_stop EXIT
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

    local etcd_dir="$MM_CLUSTER_DIR/etcd" where=disk
    if [ "${LIVE_ETCD_TMPFS:-0}" = 1 ]; then
        etcd_dir="$(mktemp -d /dev/shm/maskmesh-etcd.XXXXXX)" where="tmpfs (/dev/shm)"
        ln -s "$etcd_dir" "$MM_CLUSTER_DIR/etcd-tmpfs" # live_stop's rm -rf removes the link only
        live_tmpfs_dir=$etcd_dir
    fi
    if [ "${LIVE_AUDIT:-0}" = 1 ]; then
        printf '%s\n' 'apiVersion: audit.k8s.io/v1' 'kind: Policy' 'omitStages: [RequestReceived]' \
            'rules:' '- level: Metadata' '  verbs: [create, update, patch, delete, deletecollection]' \
            '- level: None' >"$MM_CLUSTER_DIR/audit-policy.yaml"
        live_apiserver_args+=(--audit-policy-file="$MM_CLUSTER_DIR/audit-policy.yaml"
            --audit-log-path="$MM_CLUSTER_DIR/audit.log" --audit-log-mode=blocking
            --audit-log-maxsize=4096) # MB: one file for a 10,000-policy run (100 MB by default, then rotated)
    fi
    log "etcd $(etcd --version | head -1 | awk '{print $3}') on 127.0.0.1:$etcd_port, data on $where"
    live_spawn etcd etcd --name mm --data-dir "$etcd_dir" \
        --listen-client-urls "https://127.0.0.1:$etcd_port" --advertise-client-urls "https://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "mm=http://127.0.0.1:$peer_port" \
        --cert-file "$pki/etcd-server.crt" --key-file "$pki/etcd-server.key" \
        --client-cert-auth --trusted-ca-file "$pki/ca.crt"
    etcd_health() { curl -sf --cacert "$pki/ca.crt" --cert "$pki/apiserver-etcd-client.crt" \
        --key "$pki/apiserver-etcd-client.key" "https://127.0.0.1:$etcd_port/health" | grep -q '"true"'; }
    wait_for etcd 30 etcd_health

    log "kube-apiserver $("$BIN/kube-apiserver" --version | awk '{print $2}') on 127.0.0.1:$MM_API_PORT"
    live_spawn kube-apiserver "$BIN/kube-apiserver" \
        --bind-address=127.0.0.1 --secure-port="$MM_API_PORT" \
        --etcd-servers="https://127.0.0.1:$etcd_port" --etcd-cafile="$pki/ca.crt" \
        --etcd-certfile="$pki/apiserver-etcd-client.crt" --etcd-keyfile="$pki/apiserver-etcd-client.key" \
        --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" --authorization-mode=Node,RBAC \
        --service-cluster-ip-range=10.96.0.0/16 \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
        --endpoint-reconciler-type=none --profiling=false --v=1 ${live_apiserver_args[@]+"${live_apiserver_args[@]}"}
    wait_for kube-apiserver 120 "$BIN/kubectl" get --raw /readyz

    if [ "$with_kcm" = controller-manager ]; then
        # service accounts (and their "default" in every namespace), the garbage collector,
        # namespace deletion; no node controllers are needed without nodes
        log "kube-controller-manager on 127.0.0.1 (secure port $(free_port | tee "$MM_CLUSTER_DIR/kcm.port"))"
        live_spawn kube-controller-manager "$BIN/kube-controller-manager" \
            --kubeconfig="$MM_CLUSTER_DIR/controller-manager.kubeconfig" \
            --authentication-kubeconfig="$MM_CLUSTER_DIR/controller-manager.kubeconfig" \
            --authorization-kubeconfig="$MM_CLUSTER_DIR/controller-manager.kubeconfig" \
            --bind-address=127.0.0.1 --secure-port="$(cat "$MM_CLUSTER_DIR/kcm.port")" \
            --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
            --use-service-account-credentials=true \
            --controllers=serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller,namespace-controller \
            --leader-elect=false --profiling=false --v=1
        wait_for "kube-controller-manager (serviceaccount default/default)" 60 \
            "$BIN/kubectl" get serviceaccount default -n default
    fi
    # the API server makes namespace default shortly after start
    wait_for "namespace default" 30 "$BIN/kubectl" get namespace default
}

# live_token_kubeconfig FILE: service account kube-system/maskmesh-test bound to cluster-admin,
# and FILE a kubeconfig with its bearer token (what the stand-in's kubeconfig holds, so the
# tests that rotate or corrupt the token run unchanged)
live_token_kubeconfig() {
    "$BIN/kubectl" create serviceaccount maskmesh-test -n kube-system >/dev/null
    "$BIN/kubectl" create clusterrolebinding maskmesh-test --clusterrole=cluster-admin \
        --serviceaccount=kube-system:maskmesh-test >/dev/null
    live_sa_kubeconfig "$1" kube-system maskmesh-test
}

# live_sa_kubeconfig FILE NS SA: FILE a kubeconfig with a bound token (TokenRequest, 2 h) of
# the existing ServiceAccount NS/SA, with only the rights bound to it: how a pod's client
# authenticates in a cluster
live_sa_kubeconfig() {
    local out=$1 tok
    tok="$("$BIN/kubectl" create token "$3" -n "$2" --duration=2h)" ||
        die "no token for service account $2/$3"
    umask 077
    cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: maskmesh-live
  cluster:
    server: https://127.0.0.1:$MM_API_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: admin
  user:
    token: $tok
contexts:
- name: admin
  context: {cluster: maskmesh-live, user: admin, namespace: default}
current-context: admin
EOF
    umask 022
}
