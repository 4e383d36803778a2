#!/usr/bin/env bash
# make cluster-up: a real single-node Kubernetes on this machine, from the release modules.
#   etcd (Debian) -> containerd + runc (Debian) -> kube-apiserver (TLS, Node,RBAC, the default
#   admission plugins, service-account tokens) -> kube-controller-manager, kube-scheduler ->
#   kubelet (containerd's CRI, the CNI bridge plugin on the bridge mmbr0) -> kube-proxy
#   (iptables) -> kube-router (NetworkPolicy only) -> CoreDNS (a Deployment).
# The components come from hack/k8s/build.sh (built once into a cache outside the clone),
# images from hack/oci/images.sh (no registry, no Docker). Root only; one cluster per machine.
# Afterwards: KUBECONFIG=/var/lib/maskmesh-cluster/admin.kubeconfig (printed at the end).
# A failed or leftover cluster is torn down first (hack/cluster-down.sh does only that).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/cluster/lib.sh"
. "$root/hack/cluster/pki.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (it starts a kubelet, containerd and netfilter rules)"
exec 9>/run/lock/maskmesh-cluster.lock
flock -n 9 || die "another cluster-up or cluster-down is running (/run/lock/maskmesh-cluster.lock)"
t0=$SECONDS

"$root/hack/install-deps.sh" cluster
BIN="$("$root/hack/k8s/build.sh" | tail -1)"
log "components: $BIN ($((SECONDS - t0))s)"

log "tearing down what a previous run left"
cluster_teardown
mkdir -p "$MM_CLUSTER_DIR"/{pids,logs,etc,cni/net.d,cni/ipam} "$MM_CLUSTER_RUN"
chmod 700 "$MM_CLUSTER_DIR"
echo "$BIN/kube-proxy" >"$MM_CLUSTER_DIR/kube-proxy.path"
echo "$BIN" >"$MM_CLUSTER_DIR/bin.path"

# start NAME CMD...: a host process in its own session, its log and its pid recorded
start() {
    local name=$1 exe
    shift
    exe="$(readlink -f "$(command -v "$1")")"
    # 9>&-: the lock stays with this script, not with the processes that outlive it
    setsid "$@" >"$MM_CLUSTER_DIR/logs/$name.log" 2>&1 </dev/null 9>&- &
    echo "$! $exe" >"$(pidfile "$name")"
    log "started $name (pid $!)"
}
# wait_for WHAT SECONDS CMD...: until CMD succeeds; on timeout the component's log tail
wait_for() {
    local what=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    log "$what did not come up in ${secs}s; last log lines:"
    tail -25 "$MM_CLUSTER_DIR/logs/$what.log" >&2 2>/dev/null || true
    return 1
}
alive() { live_pid "$1" >/dev/null || { tail -25 "$MM_CLUSTER_DIR/logs/$1.log" >&2; die "$1 exited"; }; }
fail_cleanup() {
    local rc=$?
    [ $rc -eq 0 ] && return
    log "cluster-up failed (exit $rc); logs in $MM_CLUSTER_DIR/logs. MM_CLUSTER_KEEP=1 keeps them"
    [ "${MM_CLUSTER_KEEP:-0}" = 1 ] || { cp -r "$MM_CLUSTER_DIR/logs" /tmp/maskmesh-cluster-logs 2>/dev/null || true
        cluster_teardown; log "logs copied to /tmp/maskmesh-cluster-logs"; }
}
trap fail_cleanup EXIT

log "certificates and kubeconfigs"
make_pki
pki="$MM_CLUSTER_DIR/pki"

log "network: bridge $MM_BRIDGE $MM_NODE_IP, pods $MM_POD_CIDR, services $MM_SERVICE_CIDR"
ip link add "$MM_BRIDGE" type bridge
ip addr add "$MM_NODE_IP/24" dev "$MM_BRIDGE"
ip link set "$MM_BRIDGE" up
# Services route through the host (DNAT, then forward to the pod): forwarding is needed, but
# only on the bridge; our own table drops anything forwarded between it and other links.
sysctl -n net.ipv4.ip_forward >"$MM_CLUSTER_DIR/ip_forward.orig"
sysctl -qw net.ipv4.ip_forward=1
[ "$(sysctl -n net.bridge.bridge-nf-call-iptables)" = 1 ] || sysctl -qw net.bridge.bridge-nf-call-iptables=1
nft -f - <<EOF
table inet $MM_NFT_TABLE {
    chain forward {
        type filter hook forward priority -10; policy accept;
        iifname "$MM_BRIDGE" oifname != "$MM_BRIDGE" drop
        iifname != "$MM_BRIDGE" oifname "$MM_BRIDGE" drop
    }
}
EOF

log "etcd $(etcd --version | head -1)"
start etcd etcd --name mm --data-dir "$MM_CLUSTER_DIR/etcd" \
    --listen-client-urls "https://127.0.0.1:$MM_ETCD_PORT" --advertise-client-urls "https://127.0.0.1:$MM_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$MM_ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$MM_ETCD_PEER_PORT" \
    --initial-cluster "mm=http://127.0.0.1:$MM_ETCD_PEER_PORT" \
    --cert-file "$pki/etcd-server.crt" --key-file "$pki/etcd-server.key" \
    --client-cert-auth --trusted-ca-file "$pki/ca.crt" --snapshot-count 10000 --quota-backend-bytes 2147483648
etcd_health() { curl -sf --cacert "$pki/ca.crt" --cert "$pki/apiserver-etcd-client.crt" \
    --key "$pki/apiserver-etcd-client.key" "https://127.0.0.1:$MM_ETCD_PORT/health" | grep -q '"true"'; }
wait_for etcd 30 etcd_health

log "containerd $(containerd --version | awk '{print $3}'), runc"
mkdir -p "$MM_CLUSTER_RUN/containerd"
cat >"$MM_CLUSTER_DIR/etc/containerd.toml" <<EOF
version = 2
root = "$MM_CLUSTER_DIR/containerd"
state = "$MM_CLUSTER_RUN/containerd"
[grpc]
  address = "$MM_CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$MM_CLUSTER_DIR/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$MM_PAUSE_IMAGE"
  netns_mounts_under_state_dir = true
  # The process here lacks CAP_SYS_RESOURCE (CapEff in /proc/self/status): runc's
  # "update /proc/self/oom_score_adj to '-998'" for a sandbox then fails with EACCES ("can't
  # get final child's PID from pipe: EOF"). Clamp every container's score to containerd's own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$MM_CLUSTER_DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$MM_CLUSTER_RUN/runc"
EOF
start containerd containerd --config "$MM_CLUSTER_DIR/etc/containerd.toml"
wait_for containerd 30 ctr --address "$MM_CONTAINERD_SOCK" version

log "images: pause and CoreDNS as OCI archives, into containerd's k8s.io namespace"
"$root/hack/oci/images.sh" cluster "$BIN"
"$root/hack/oci/images.sh" import cluster

log "kube-apiserver"
start kube-apiserver "$BIN/kube-apiserver" \
    --advertise-address="$MM_NODE_IP" --bind-address="$MM_NODE_IP" --secure-port="$MM_API_PORT" \
    --etcd-servers="https://127.0.0.1:$MM_ETCD_PORT" --etcd-cafile="$pki/ca.crt" \
    --etcd-certfile="$pki/apiserver-etcd-client.crt" --etcd-keyfile="$pki/apiserver-etcd-client.key" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --service-cluster-ip-range="$MM_SERVICE_CIDR" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --profiling=false --v=1
K() { "$BIN/kubectl" --kubeconfig "$MM_KUBECONFIG" "$@"; }
wait_for kube-apiserver 120 K get --raw /readyz

log "kube-controller-manager, kube-scheduler"
start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$MM_CLUSTER_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$MM_CLUSTER_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$MM_CLUSTER_DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --allocate-node-cidrs=true --cluster-cidr="$MM_CLUSTER_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$MM_SERVICE_CIDR" --profiling=false --v=1
start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$MM_CLUSTER_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$MM_CLUSTER_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig="$MM_CLUSTER_DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --profiling=false --v=1

log "kubelet (cgroup v1: failCgroupV1 false), CNI bridge on $MM_BRIDGE"
cat >"$MM_CLUSTER_DIR/cni/net.d/10-maskmesh.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "maskmesh-local",
  "plugins": [
    {
      "type": "bridge", "bridge": "$MM_BRIDGE", "isGateway": true, "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$MM_CLUSTER_DIR/cni/ipam",
        "ranges": [[{"subnet": "$MM_POD_CIDR", "gateway": "$MM_NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
cat >"$MM_CLUSTER_DIR/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 (with cgroup2 beside it at /sys/fs/cgroup/unified); since 1.35 the
# kubelet refuses to start on cgroup v1 unless told otherwise (hack/k8s/README.md).
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$MM_CONTAINERD_SOCK
address: $MM_NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet-server.crt
tlsPrivateKeyFile: $pki/kubelet-server.key
clusterDomain: cluster.local
clusterDNS: [$MM_DNS_IP]
resolvConf: ""
podLogsDir: $MM_CLUSTER_DIR/pod-logs
# ConfigMap and Secret volumes follow their objects within this period (the default is 1m)
syncFrequency: 10s
# the images are imported, never pulled: they must never be garbage-collected
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
EOF
start kubelet "$BIN/kubelet" --config="$MM_CLUSTER_DIR/etc/kubelet.yaml" \
    --kubeconfig="$MM_CLUSTER_DIR/kubelet.kubeconfig" --root-dir="$MM_CLUSTER_DIR/kubelet" \
    --hostname-override="$MM_NODE" --node-ip="$MM_NODE_IP" --v=1
wait_for kubelet 90 K get node "$MM_NODE"

log "kube-proxy (iptables)"
cat >"$MM_CLUSTER_DIR/etc/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $MM_CLUSTER_DIR/kube-proxy.kubeconfig}
hostnameOverride: $MM_NODE
bindAddress: $MM_NODE_IP
clusterCIDR: $MM_CLUSTER_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$MM_NODE_IP/32"]
conntrack: {maxPerCore: 0, min: 0}
EOF
start kube-proxy "$BIN/kube-proxy" --config="$MM_CLUSTER_DIR/etc/kube-proxy.yaml" --v=1

# --iptables-sync-period 20s, not 5m: a new pod's rules come from pod events and otherwise
# from the periodic full sync, which this bounds (kube-router is built with
# hack/k8s/kube-router/named-ports.patch: hack/k8s/README.md)
log "kube-router (NetworkPolicy only)"
K apply -f "$root/hack/cluster/rbac-kube-router.yaml" >/dev/null
start kube-router "$BIN/kube-router" --kubeconfig="$MM_CLUSTER_DIR/kube-router.kubeconfig" \
    --hostname-override="$MM_NODE" --run-firewall=true --run-router=false --run-service-proxy=false \
    --enable-cni=false --health-port=0 --metrics-port=0 --service-cluster-ip-range="$MM_SERVICE_CIDR" \
    --iptables-sync-period=20s --v=1

wait_for kubelet 120 K wait --for=condition=Ready "node/$MM_NODE" --timeout=2s
for p in "${MM_PROCS[@]}"; do alive "$p"; done

log "CoreDNS"
sed -e "s|@DNS_IP@|$MM_DNS_IP|g" -e "s|@IMAGE@|$MM_COREDNS_IMAGE|g" "$root/hack/cluster/coredns.yaml" | K apply -f - >/dev/null
K -n kube-system rollout status deploy/coredns --timeout=120s >/dev/null
for p in "${MM_PROCS[@]}"; do alive "$p"; done

trap - EXIT
log "up in $((SECONDS - t0))s: node $MM_NODE Ready"
cat <<EOF
export KUBECONFIG=$MM_KUBECONFIG
export PATH=$BIN:\$PATH    # kubectl $("$BIN/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | head -1)
EOF
