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
set -u
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

# start_proxy [WRAPPER...]: the proxy (under WRAPPER) on a free port; sets PORT and PID
start_proxy() {
    PORT=$(free_port)
    "$@" "$BIN/maskmesh-proxy" --listen 127.0.0.1:"$PORT" --admin "" --upstream 127.0.0.1:"$APP" \
        --policies "$tmp/policies.yaml" --labels "$tmp/labels" --keys "$tmp/keys" \
        --workers "$WORKERS" --log-level warn >/dev/null 2>"$tmp/proxy.err" &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return 0; sleep 0.1; done
    echo "$name: the proxy did not start"; exit 1
}
# requests PORT N: N requests; prints how many succeeded
requests() {
    h2load --h1 -n "$2" -c "$CONNS" "http://127.0.0.1:$1$URLPATH" 2>&1 |
        awk '/^requests:/ { print $8 }'
}
# syscalls PID PORT LABEL: strace -c over 20,000 requests; the calls per request
syscalls() {
    strace -f -c -o "$tmp/strace.$3" -p "$1" 2>/dev/null &
    local sp=$! n
    sleep 1
    n=$(requests "$2" 20000)
    kill -INT "$sp"
    wait "$sp"
    echo "$3: system calls per request ($n requests, strace -c)"
    awk -v n="$n" '$NF != "total" && $4 ~ /^[0-9]+$/ && $4 / n >= 0.01 {
                       printf "  %-14s %6.2f\n", $NF, $4 / n; tot += $4 }
                   $NF != "total" && $4 ~ /^[0-9]+$/ && $4 / n < 0.01 { rest += $4 }
                   END { printf "  %-14s %6.2f\n  %-14s %6.2f\n", "(others)", rest / n, "total", (tot + rest) / n }' \
        "$tmp/strace.$3"
}
if [ "$ONLY" != callgrind ]; then
    start_proxy
    if curl -s "http://127.0.0.1:$PORT$URLPATH" | grep -qE '4111 1111 1111 1111|@example.com'; then
        echo "$name: the proxy did not mask"; exit 1
    fi
    requests "$PORT" 2000 >/dev/null # warm: pooled app connections, grown buffers
    syscalls "$PID" "$PORT" maskmesh-proxy
    kill "$PID"
    NW=$(pgrep -P "$(cat "$tmp/nginx/nginx.pid")" | head -1)
    requests "$NGX" 2000 >/dev/null
    syscalls "$NW" "$NGX" "nginx (one worker)"
fi
[ "$ONLY" = strace ] && exit 0
# instructions N: callgrind's total for a proxy that served N requests
instructions() {
    start_proxy valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1"
    [ "$(requests "$PORT" "$1")" = "$1" ] || { echo "$name: requests failed under callgrind"; exit 1; }
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null
    awk '/^(summary|totals):/ { print $2; exit }' "$tmp/cg.$1"
}
i1=$(instructions 1000)
i2=$(instructions 6000)
if [ -n "${PERREQ_KEEP:-}" ]; then mkdir -p "$PERREQ_KEEP" && cp "$tmp/cg.1000" "$tmp/cg.6000" "$PERREQ_KEEP/"; fi
echo "maskmesh-proxy: instructions per request (callgrind, whole process): $(( (i2 - i1) / 5000 ))"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
