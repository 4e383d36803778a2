#!/usr/bin/env bash
# A shorter soak of maskmesh-proxy under a memory checker: valgrind (memcheck, leaks are
# errors) on the normal build, or, when MM_SANITIZED=1 (make test-asan), the ASan/UBSan
# build as it is. A mixed load covering the error paths too (502s, onError, limits,
# pipelining, a reload, aborted streams), then SIGTERM: the proxy must drain, free
# everything and exit 0 with a clean report. Prints `N passed, N failed`.
set -u
cd "$(dirname "$0")/../.."
BIN=${MM_BIN:-bin}
BUILD=${MM_BUILD:-build}
passed=0; failed=0
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }

if [ "${MM_SANITIZED:-0}" = 1 ]; then
    wrap=(); mode=asan; slow=1
elif command -v valgrind >/dev/null; then
    wrap=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
          --show-leak-kinds=definite,indirect --log-file="$tmp/valgrind.log"); mode=valgrind; slow=1
else
    echo "valgrind missing"; echo "0 passed, 1 failed"; exit 1
fi

"$BUILD/tools/mm-testapp" --listen 127.0.0.1:0 >"$tmp/app.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$tmp/app.out" && break; sleep 0.05; done
APP=$(awk '/^ready/ {print $2; exit}' "$tmp/app.out")

mkdir -p "$tmp/cfg/keys"
write_policy() { # email action
    cat >"$tmp/cfg/p.new" <<EOF
- apiVersion: maskmesh.io/v1alpha1
  kind: MaskingPolicy
  metadata: {name: leaks, namespace: shop}
  spec:
    selector: {matchLabels: {app: payments}}
    rules:
      - name: card
        fields: ["\$..card"]
        detectors: [credit_card]
        action: {type: mask, keepFirst: 6, keepLast: 4}
      - name: contact
        detectors: [email]
        action: {type: $1, key: k}
    headers:
      - {name: Authorization, action: {type: redact}}
      - {name: Set-Cookie, action: {type: remove}}
EOF
    mv "$tmp/cfg/p.new" "$tmp/cfg/policies.yaml"
}
write_policy tokenize
printf 'app="payments"\n' >"$tmp/cfg/labels"
printf 'leak-test-key' >"$tmp/cfg/keys/k"

"${wrap[@]}" "$BIN/maskmesh-proxy" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
    --upstream 127.0.0.1:"$APP" --policies "$tmp/cfg/policies.yaml" --labels "$tmp/cfg/labels" \
    --keys "$tmp/cfg/keys" --workers 2 --watch-interval 100 --max-body 100000 \
    --upstream-timeout 2000 >"$tmp/px.out" 2>"$tmp/px.err" &
PX_PID=$!
pids+=($PX_PID)
for _ in $(seq 600); do grep -q ready "$tmp/px.out" && break; sleep 0.05; done
PX=$(sed -n 's/^ready proxy=\([0-9]*\) admin=\([0-9]*\)/\1/p' "$tmp/px.out")
AD=$(sed -n 's/^ready proxy=\([0-9]*\) admin=\([0-9]*\)/\2/p' "$tmp/px.out")
[ -n "$PX" ] && ok "proxy started under $mode" || { bad "proxy did not start under $mode"; cat "$tmp/px.err"; echo "$passed passed, $failed failed"; exit 1; }

U="http://127.0.0.1:$PX"
codes=()
req() { codes+=("$(curl -s -o /dev/null -m 20 -w '%{http_code}' "$@")"); }
rounds=$([ "$slow" = 1 ] && echo 3 || echo 10)
for r in $(seq "$rounds"); do
    # keep-alive: several URLs on one curl connection
    req "$U/json?size=3000" "$U/chunked?size=5000&chunk=7" "$U/gzip?size=2000" "$U/hdrs"
    req "$U/ndjson?lines=30" "$U/sse?events=4" "$U/text?size=400" "$U/status?code=204"
    req -I "$U/json?size=100"
    req "$U/malformed"          # onError block: 502
    req "$U/reset"              # upstream reset: 502
    req -H 'Content-Type: application/json' -d '{"card":"4111 1111 1111 1111"}' "$U/echo"
    req -H 'X-Big: '"$(head -c 20000 /dev/zero | tr '\0' a)" "$U/json"   # 431
    req -H 'Content-Type: text/plain' --data-binary @<(head -c 200000 /dev/zero) "$U/echo" # 413
    req "$U/large?size=2000000"
    req -m 1 "$U/ndjson?lines=5&delay_ms=3000"   # client gives up mid-stream
    req "$U/sleep?ms=3000"                        # upstream timeout: 504
    # the same over HTTP/2 (prior knowledge and Upgrade): streams, failures, limits, a client
    # leaving mid-stream, many streams at once
    req --http2-prior-knowledge "$U/json?size=3000" "$U/chunked?size=5000&chunk=7" "$U/gzip?size=2000" "$U/malformed"
    req --http2 "$U/hdrs" "$U/status?code=204"
    req --http2-prior-knowledge -H 'Content-Type: application/json' -d '{"card":"4111 1111 1111 1111"}' "$U/echo"
    req --http2-prior-knowledge -H 'Content-Type: text/plain' --data-binary @<(head -c 200000 /dev/zero) "$U/echo"
    req --http2-prior-knowledge -H 'X-Big: '"$(head -c 20000 /dev/zero | tr '\0' a)" "$U/json"
    req --http2-prior-knowledge "$U/reset" "$U/ndjson?lines=3&delay_ms=200&ct=application/json"
    req --http2-prior-knowledge -m 1 "$U/ndjson?lines=5&delay_ms=3000"
    command -v h2load >/dev/null && h2load -n 100 -c 2 -m 16 "$U/json?size=500" >/dev/null 2>&1
done
# pipelined requests on a raw socket, then a connection closed mid-request
exec 3<>/dev/tcp/127.0.0.1/"$PX"
printf 'GET /json?size=100 HTTP/1.1\r\nHost: a\r\n\r\nGET /peer HTTP/1.1\r\nHost: a\r\n\r\nGET /json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' >&3
timeout 20 cat <&3 >"$tmp/pipe.out"
exec 3>&-
exec 3<>/dev/tcp/127.0.0.1/"$PX"
printf 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhalf' >&3
exec 3>&-
[ "$(grep -ao "HTTP/1.1 200 OK" "$tmp/pipe.out" | wc -l)" = 3 ] && ok "pipelined responses" || { bad "pipelined responses"; head -c 400 "$tmp/pipe.out"; }

# a reload (new snapshot while old streams may still hold the old one) and a refused one
write_policy hash
sleep 1
printf -- '- kind: [broken\n' >"$tmp/cfg/policies.yaml"
# the watcher polls the files; under ASan on a loaded machine that can take a while
refused=0
for _ in $(seq 1 75); do
    curl -s "http://127.0.0.1:$AD/metrics" >"$tmp/metrics.txt"
    if grep -q 'maskmesh_proxy_reloads_total{result="failure"} 1' "$tmp/metrics.txt"; then refused=1; break; fi
    sleep 0.2
done
req "$U/json?size=500"
[ $refused = 1 ] && ok "bad config refused" || bad "bad config refused"

got=" $(printf '%s' "${codes[@]}" | sed 's/\(...\)/\1 /g') "
missing=""
for want in 200 204 502 431 413 504; do
    case "$got" in *" $want "*) ;; *) missing="$missing $want" ;; esac
done
[ -z "$missing" ] && ok "load ran with every expected status" || bad "statuses missing:$missing (got$got)"

kill -TERM "$PX_PID"
rc=0
for _ in $(seq 600); do kill -0 "$PX_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PX_PID" 2>/dev/null; then
    bad "proxy did not exit after SIGTERM"
else
    wait "$PX_PID"; rc=$?
    [ "$rc" = 0 ] && ok "drained and exited 0 under $mode" || bad "exit code $rc under $mode"
fi
if [ "$mode" = valgrind ]; then
    if [ -s "$tmp/valgrind.log" ]; then bad "valgrind report"; head -60 "$tmp/valgrind.log"; else ok "valgrind: no errors, no leaks"; fi
else
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error' "$tmp/px.err"; then
        bad "sanitizer report"; grep -A30 -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$tmp/px.err" | head -60
    else
        ok "ASan/UBSan: no errors, no leaks"
    fi
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
