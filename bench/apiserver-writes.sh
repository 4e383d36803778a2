#!/usr/bin/env bash
# bench/apiserver-writes.py against the real kube-apiserver and etcd of hack/live-apiserver.sh
# (loopback, stopped on exit): kube-apiserver's and etcd's CPU per write for server-side
# apply, create and the smallest create there is, beside the controller's cold-start bar
# (docs/controller.md, *What one write costs*). Arguments go to the driver: [N] [ROUNDS]
# [THREADS]. LIVE_ETCD_TMPFS=1 keeps etcd's data on tmpfs, as for bench/controller-live.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
live_name=bench-apiserver-writes
# shellcheck source=hack/live-apiserver.sh
. hack/live-apiserver.sh
live_start
live_token_kubeconfig "$MM_CLUSTER_DIR/token.kubeconfig"
export PATH="$BIN:$PATH" # bench/controller.py's Api reads the kubeconfig with kubectl
# live_start spawns etcd first, then kube-apiserver
[ "${live_names[0]}" = etcd ] && [ "${live_names[1]}" = kube-apiserver ] ||
    die "unexpected processes: ${live_names[*]}"
python3 bench/apiserver-writes.py "$MM_CLUSTER_DIR/token.kubeconfig" "${live_pids[1]}" \
    "${live_pids[0]}" "$@"
