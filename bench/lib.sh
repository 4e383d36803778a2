# bench/lib.sh: what the proxy benches share, sourced after `name=<script>`: a temp dir and
# the processes started (stopped and removed on exit), free_port, wait_port, and start_app
# (mm-testapp on a free port; sets APP). Needs BUILD.
# shellcheck shell=bash
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "$name: nothing listens on $1"; exit 1
}
start_app() { # threads
    "$BUILD/tools/mm-testapp" --listen 127.0.0.1:0 --threads "$1" >"$tmp/app.out" 2>/dev/null &
    pids+=($!)
    for _ in $(seq 100); do grep -q ready "$tmp/app.out" && break; sleep 0.05; done
    APP=$(awk '/^ready/ {print $2; exit}' "$tmp/app.out")
    [ -n "$APP" ] || { echo "$name: mm-testapp did not start"; exit 1; }
}
