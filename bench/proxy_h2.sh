#!/usr/bin/env bash
# bench/proxy_h2.sh: maskmesh-proxy over HTTP/2 (h2c) against nginx as an h2c reverse proxy
# (`listen ... http2`, prior knowledge; HTTP/1.1 with keepalive to the app, as the proxy
# speaks to it), measured in the same run on this machine. h2load, 1 KB JSON, BENCH_H2_CONNS
# (4) connections x BENCH_H2_STREAMS (64) concurrent streams for BENCH_SECONDS (10) each,
# BENCH_ROUNDS (3) rounds alternating the two; p99 from h2load's per-request log. Then the
# proxy's VmHWM at 256 concurrent streams (2 connections x 128, the default limit) of 1 KB.
# Bars (issue 15): req/s at least 0.8x nginx's, p99 at most 1.5x. Exits 1 on a miss.
# Also the CPU time each spent per request (user + system, all threads, from /proc): on a
# shared machine req/s follows whoever else runs, CPU per request much less.
# Environment: MM_BIN, MM_BUILD, BENCH_SECONDS, BENCH_ROUNDS, BENCH_WORKERS, BENCH_H2_CONNS,
# BENCH_H2_STREAMS.
set -u
cd "$(dirname "$0")/.."
BIN=${MM_BIN:-$PWD/bin}
BUILD=${MM_BUILD:-$PWD/build}
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_H2_CONNS:-4}
STREAMS=${BENCH_H2_STREAMS:-64}
WORKERS=${BENCH_WORKERS:-$(( $(nproc) * 2 ))}   # as bench/proxy.sh, for the same reason
[ "$WORKERS" -gt 8 ] && WORKERS=8
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

for t in h2load "$NGINX" "$BIN/maskmesh-proxy" "$BUILD/tools/mm-testapp"; do
    command -v "$t" >/dev/null 2>&1 || [ -x "$t" ] || { echo "proxy_h2.sh: missing $t (hack/install-deps.sh)"; exit 1; }
done

name=proxy_h2.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

start_app "$(nproc)"

NGX=$(free_port)
nginx_start "$tmp/nginx" "http2_max_concurrent_streams 128;
    keepalive_requests 100000000;  # else nginx ends each h2 connection after 1000 requests
    upstream app { server 127.0.0.1:$APP; keepalive 128; }
    server {
        listen 127.0.0.1:$NGX http2 reuseport;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
wait_port "$NGX"

mkdir -p "$tmp/cfg"
cat >"$tmp/cfg/policies.yaml" <<'EOF'
- apiVersion: maskmesh.io/v1alpha1
  kind: MaskingPolicy
  metadata: {name: payments-api, namespace: shop}
  spec:
    selector: {matchLabels: {app: payments}}
    port: 8080
    rules:
      - name: card
        fields: ["$..card"]
        detectors: [credit_card]
        action: {type: mask, keepFirst: 6, keepLast: 4, char: "*", preserveFormat: true}
      - name: contact
        detectors: [email, phone]
        action: {type: redact}
      - name: ssn
        fields: ["$.items[*].ssn"]
        action: {type: redact}
    headers:
      - {name: Authorization, action: {type: redact}}
      - {name: Set-Cookie, action: {type: remove}}
EOF
printf 'app="payments"\n' >"$tmp/cfg/labels"
PX=$(free_port)
"$BIN/maskmesh-proxy" --listen 127.0.0.1:"$PX" --admin "" --upstream 127.0.0.1:"$APP" \
    --policies "$tmp/cfg/policies.yaml" --labels "$tmp/cfg/labels" --keys "$tmp/cfg/keys" \
    --workers "$WORKERS" --log-level warn >/dev/null 2>"$tmp/proxy.err" &
PXPID=$!
pids+=($PXPID)
wait_port "$PX"
body=$(curl -s --http2-prior-knowledge "http://127.0.0.1:$PX/json?size=1024")
if [ -z "$body" ] || echo "$body" | grep -qE '4111 1111 1111 1111|@example.com'; then
    echo "proxy_h2.sh: the proxy did not mask over HTTP/2; refusing to report figures"; exit 1
fi
curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version}' "http://127.0.0.1:$NGX/json?size=64" |
    grep -qx 2 || { echo "proxy_h2.sh: nginx does not speak h2c"; exit 1; }

bench() { # url conns streams secs
    h2load_run "$1" -c "$2" -m "$3" -D "$4"
}

path="/json?size=1024"
NGX_PIDS=$(pgrep -P "$(cat "$tmp/nginx/nginx.pid")" | tr '\n' ' ')
: >"$tmp/n"; : >"$tmp/m"
for _ in $(seq "$ROUNDS"); do
    CPU_PIDS=$NGX_PIDS bench "http://127.0.0.1:$NGX$path" "$CONNS" "$STREAMS" "$SECS" >>"$tmp/n"
    CPU_PIDS=$PXPID bench "http://127.0.0.1:$PX$path" "$CONNS" "$STREAMS" "$SECS" >>"$tmp/m"
done
status=0
h2_table "nginx h2c 1KB" "maskmesh-proxy h2c 1KB"
if [ "$(cut -d' ' -f3 "$tmp/n" "$tmp/m" | sort -n | tail -1)" != 0 ]; then
    echo "  failed requests during the run"; status=1
fi
awk -v r="$r_rps" 'BEGIN { exit !(r >= 0.80) }' || { echo "  BAR MISSED: h2c 1KB req/s $r_rps of nginx (< 0.80)"; status=1; }
awk -v r="$r_p99" 'BEGIN { exit !(r <= 1.50) }' || { echo "  BAR MISSED: h2c 1KB p99 $r_p99 x nginx (> 1.50)"; status=1; }

# memory at 256 concurrent streams
bench "http://127.0.0.1:$PX$path" 2 128 "$SECS" >/dev/null
printf 'memory: proxy VmHWM after 256 concurrent h2c streams: %.1f MB\n' \
    "$(awk '/VmHWM/ {print $2 / 1024}' "/proc/$PXPID/status")"
[ $status -eq 0 ] && echo "proxy h2 bench: every bar met"
exit $status
