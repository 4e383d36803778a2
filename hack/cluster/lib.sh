# The local single-node cluster's names, places and teardown; sourced by hack/cluster-up.sh and
# hack/cluster-down.sh. One cluster per machine (fixed bridge, addresses and ports); a lock
# file keeps two runs apart. Everything listens on loopback or on the cluster's bridge.
# shellcheck shell=bash

MM_CLUSTER_DIR="${MM_CLUSTER_DIR:-/var/lib/maskmesh-cluster}"   # state: pki, etcd, kubelet, ...
MM_CLUSTER_RUN="${MM_CLUSTER_RUN:-/run/maskmesh-cluster}"       # sockets, runtime state, netns
MM_KUBECONFIG="$MM_CLUSTER_DIR/admin.kubeconfig"                 # kubectl, helm, maskmesh
MM_NODE=maskmesh-node
MM_BRIDGE=mmbr0
MM_NODE_IP=10.244.0.1            # the bridge's address: apiserver, kubelet, kube-proxy
MM_POD_CIDR=10.244.0.0/24        # this node's pods (the CNI bridge's subnet)
MM_CLUSTER_CIDR=10.244.0.0/16
MM_SERVICE_CIDR=10.96.0.0/16
MM_API_SERVICE_IP=10.96.0.1
MM_DNS_IP=10.96.0.10
MM_API_PORT=6443
MM_ETCD_PORT=23790               # not etcd's 2379: nothing else on the machine is touched
MM_ETCD_PEER_PORT=23800
MM_CONTAINERD_SOCK="$MM_CLUSTER_RUN/containerd/containerd.sock"
MM_NFT_TABLE=maskmesh_cluster    # our own forward guard (see cluster_net_up)
# host processes in start order; cluster-down stops them in reverse
MM_PROCS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kube-router)

log() { printf '%s cluster: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

pidfile() { echo "$MM_CLUSTER_DIR/pids/$1.pid"; }

# the pid of a recorded process if it still runs and is what we started (its exe matches)
live_pid() {
    local f pid exe
    f="$(pidfile "$1")"
    [ -f "$f" ] || return 1
    read -r pid exe <"$f" || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] || return 1
    echo "$pid"
}

stop_proc() {
    local name=$1 pid i
    pid="$(live_pid "$name")" || { rm -f "$(pidfile "$name")"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    if [ -d "/proc/$pid" ]; then
        log "$name ($pid) did not stop on SIGTERM in 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for i in $(seq 1 25); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    fi
    rm -f "$(pidfile "$name")"
}

# pids whose command line names our containerd socket: the shims it started (they outlive it)
our_shims() {
    local f pid c
    # one grep over every command line, then a closer look at the few candidates (grep itself)
    for f in $(grep -lsaF -- "$MM_CONTAINERD_SOCK" /proc/[0-9]*/cmdline); do
        pid="${f#/proc/}"; pid="${pid%/cmdline}"
        c="$(tr '\0' ' ' 2>/dev/null <"$f")" || continue
        [[ "$c" == /usr/bin/containerd-shim*" -address $MM_CONTAINERD_SOCK "* ]] && echo "$pid"
    done
    return 0
}

# every cgroup v1 and v2 directory the kubelet made (kubepods and below), deepest first
kubepods_cgroups() {
    local m
    for m in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
        [ -d "$m/kubepods" ] && find "$m/kubepods" -depth -type d
    done
    return 0
}

# Rules in the built-in chains that jump to chains of kube-proxy, the kubelet or kube-router,
# then those chains themselves; other chains on the machine are not touched.
iptables_cleanup() {
    local ipt table chain rule
    for ipt in iptables ip6tables; do
        command -v "$ipt" >/dev/null || continue
        for table in filter nat mangle raw; do
            "$ipt" -w -t "$table" -S >/dev/null 2>&1 || continue
            "$ipt" -w -t "$table" -S | { grep -E -- '^-A [A-Z]+ .*-j (KUBE-|CNI-)' || true; } |
                while read -r rule; do
                    eval "$ipt -w -t $table ${rule/-A/-D}" 2>/dev/null || true
                done
            for chain in $("$ipt" -w -t "$table" -S | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ { print $2 }'); do
                "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
            done
            for chain in $("$ipt" -w -t "$table" -S | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ { print $2 }'); do
                "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
            done
        done
    done
    if command -v ipset >/dev/null; then   # kube-router's sets
        for s in $(ipset list -n 2>/dev/null | { grep -E '^(KUBE-|kube-router-|inet6:KUBE-)' || true; }); do
            ipset destroy "$s" 2>/dev/null || true
        done
    fi
}

# Leaves nothing of a cluster (this run's or a failed earlier one's): processes, containers,
# mounts, network namespaces, links, netfilter rules, cgroups, state directories.
# Components of ours that name this cluster's directory but no pidfile records (started by
# hand, or left by a crash): one left running programs the next cluster's node from its stale
# view (a kube-router started by hand once opened a new pod's app port), so teardown kills them.
stray_procs() {
    local p exe
    for p in /proc/[0-9]*; do
        exe="$(readlink "$p/exe" 2>/dev/null)" || continue
        case "${exe##*/}" in
            etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | \
                kube-router | containerd) ;;
            *) continue ;;
        esac
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$MM_CLUSTER_DIR/" && echo "${p#/proc/} ${exe##*/}"
    done
}

cluster_teardown() {
    local i name pid shims cg exe
    for ((i = ${#MM_PROCS[@]} - 1; i >= 0; i--)); do
        name=${MM_PROCS[i]}
        # containers go while containerd still answers, once the kubelet no longer restarts them
        if [ "$name" = containerd ] && pid="$(live_pid containerd)"; then
            local ctr=(ctr --address "$MM_CONTAINERD_SOCK" -n k8s.io)
            for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
                "${ctr[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
            done
            sleep 1
            for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
                "${ctr[@]}" tasks delete -f "$t" >/dev/null 2>&1 || true
            done
        fi
        stop_proc "$name"
    done
    while read -r pid exe; do
        [ -n "$pid" ] || continue
        log "a $exe no pidfile records (pid $pid) still runs on $MM_CLUSTER_DIR: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    done < <(stray_procs)
    # what survived its containerd: the processes in the kubelet's cgroups, then the shims
    for cg in $(kubepods_cgroups); do
        [ -f "$cg/cgroup.procs" ] || continue
        for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    shims="$(our_shims)"
    if [ -n "$shims" ]; then
        # shellcheck disable=SC2086
        kill -KILL $shims 2>/dev/null || true
    fi
    sleep 0.5
    for cg in $(kubepods_cgroups); do rmdir "$cg" 2>/dev/null || true; done
    # kube-proxy's own cleanup knows its rules best; then whatever chains remain
    local kp
    kp="$(cat "$MM_CLUSTER_DIR/kube-proxy.path" 2>/dev/null || true)"
    if [ -n "$kp" ] && [ -x "$kp" ]; then
        "$kp" --cleanup --v=0 >/dev/null 2>&1 || true
    fi
    iptables_cleanup
    nft delete table inet "$MM_NFT_TABLE" 2>/dev/null || true
    # mounts (pods' volumes, netns, overlay snapshots, shm), deepest first
    local mnt
    for _ in 1 2 3; do
        mnt="$(awk -v a="$MM_CLUSTER_DIR" -v b="$MM_CLUSTER_RUN" \
            'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/self/mounts | sort -r)"
        [ -n "$mnt" ] || break
        for m in $mnt; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    done
    ip link show "$MM_BRIDGE" >/dev/null 2>&1 && ip link delete "$MM_BRIDGE"
    # veths whose pod netns are gone disappear with them; any left on our bridge go too
    for l in $(ip -o link show master "$MM_BRIDGE" 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
        ip link delete "$l" 2>/dev/null || true
    done
    # the kubelet's symlinks to our pods' logs
    find /var/log/containers -maxdepth 1 -type l -lname "$MM_CLUSTER_DIR/*" -delete 2>/dev/null || true
    if [ -f "$MM_CLUSTER_DIR/ip_forward.orig" ]; then
        sysctl -qw net.ipv4.ip_forward="$(cat "$MM_CLUSTER_DIR/ip_forward.orig")" || true
    fi
    rm -rf --one-file-system "$MM_CLUSTER_RUN" "$MM_CLUSTER_DIR"
    local left
    left="$(awk -v a="$MM_CLUSTER_DIR" -v b="$MM_CLUSTER_RUN" \
        'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/self/mounts)"
    [ -z "$left" ] || log "warning: still mounted: $left"
    [ -z "$(our_shims)" ] || log "warning: shims still running: $(our_shims)"
    [ -z "$(kubepods_cgroups)" ] || log "warning: cgroups left: $(kubepods_cgroups | head -3)"
    return 0
}

# the images every node needs, built by hack/oci/images.sh from this machine's binaries
MM_PAUSE_IMAGE=maskmesh.local/pause:1
MM_COREDNS_IMAGE=maskmesh.local/coredns:dev
