#!/usr/bin/env bash
# make cluster-down: stops the local cluster of hack/cluster-up.sh and leaves nothing of it:
# its processes (by their recorded pids), containers and shims, mounts, network namespaces,
# the bridge and veths, its iptables chains, ipsets and nft table, the kubelet's cgroups, the
# state directories, and net.ipv4.ip_forward as it was. Safe to run when nothing is up.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/cluster/lib.sh"
[ "$(id -u)" -eq 0 ] || die "must run as root"
exec 9>/run/lock/maskmesh-cluster.lock
flock -w 120 9 || die "another cluster-up or cluster-down holds /run/lock/maskmesh-cluster.lock"
t0=$SECONDS
cluster_teardown
log "down in $((SECONDS - t0))s"
