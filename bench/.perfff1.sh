#!/usr/bin/env bash
# bench/proxy_perreq.sh: what one HTTP/1.1 request costs the sidecar, in counts that do not
# depend on how busy the machine is (docs/proxy.md, "Per request at 1 KB"). One worker each,
# 1 KB JSON from mm-testapp, the realistic policy of bench/proxy.sh, h2load --h1 at
# PERREQ_CONNS (16) kept-alive connections:
#   - system calls per request, `strace -f -c` attached to the proxy and to an nginx worker
#     (a plain reverse proxy with upstream keepalive) over 20,000 requests each;
#   - instructions per request, `valgrind --tool=callgrind` on the whole proxy process:
#     (6,000 requests - 1,000 requests) / 5,000, which takes start-up out.
# PERREQ_ONLY=strace or callgrind runs one half. PERREQ_POLICY=ff1 takes proxy.sh's FF1
# policy (cards encrypted, issue 16) instead; PERREQ_KEEP=DIR keeps the callgrind outputs
# (cg.1000, cg.6000) there, for callgrind_annotate. Needs strace, valgrind, h2load, nginx.
# Environment: MM_BIN, MM_BUILD (as bench/run.sh sets them).
set -u; PERREQ_POLICY=${PERREQ_POLICY:-ff1}
cd "$(dirname "$0")/.."
BIN=${MM_BIN:-$PWD/bin}
BUILD=${MM_BUILD:-$PWD/build}
WORKERS=1
CONNS=${PERREQ_CONNS:-16}
ONLY=${PERREQ_ONLY:-}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for t in strace valgrind h2load "$NGINX" "$BIN/maskmesh-proxy" "$BUILD/tools/mm-testapp"; do
    command -v "$t" >/dev/null 2>&1 || [ -x "$t" ] || { echo "proxy_perreq.sh: missing $t"; exit 1; }
done
name=proxy_perreq.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
start_app 2
nginx_proxy_start
# bench/proxy.sh's realistic policy, as it writes it
sed -n '/^cat >"\$tmp\/cfg\/policies.yaml" <<.EOF.$/,/^EOF$/p' bench/proxy.sh | sed '1d;$d' >"$tmp/policies.yaml"
grep -q 'kind: MaskingPolicy' "$tmp/policies.yaml" || { echo "$name: no policy from bench/proxy.sh"; exit 1; }
if [ "${PERREQ_POLICY:-}" = ff1 ]; then
    ff1_policy "$tmp/policies.yaml" "$tmp/ff1.yaml"
    mv "$tmp/ff1.yaml" "$tmp/policies.yaml"
fi
mkdir -p "$tmp/keys"
printf 'bench-key-0123456789abcdef' >"$tmp/keys/payments"
printf 'bench-key-0123456789abcdef' >"$tmp/keys/payments.v1"
printf 'app="payments"\npod-template-hash="abc"\n' >"$tmp/labels"
URLPATH="/json?size=1024"

start_proxy() {
    PORT=$(free_port)
    "$BIN/maskmesh-proxy" --listen 127.0.0.1:"$PORT" --admin "" --upstream 127.0.0.1:"$APP" \
        --policies "$tmp/policies.yaml" --labels "$tmp/labels" --keys "$tmp/keys" \
        --workers 1 --log-level warn >/dev/null 2>"$tmp/proxy.err" &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return 0; sleep 0.1; done
    exit 1
}
start_proxy
h2load --h1 -n 5000 -c 16 "http://127.0.0.1:$PORT$URLPATH" >/dev/null 2>&1
h2load --h1 -D 8 -c 16 "http://127.0.0.1:$PORT$URLPATH" 2>&1 | grep -E "finished|requests:" &
sleep 1
perf record -F 2999 -g -p "$PID" -o /tmp/perf.data -- sleep 5 2>&1 | tail -1
wait
