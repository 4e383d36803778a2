#!/usr/bin/env bash
# bench/webhook.sh: maskmesh-webhook's /mutate-pods against nginx over TLS, same machine,
# same run. wrk, 32 keep-alive TLS connections, the sample pod AdmissionReview POSTed; nginx
# (Debian nginx-light) answers the same POST over TLS with a static body of the webhook's
# response size. BENCH_ROUNDS rounds alternate nginx and the webhook, so a busy spell of a
# shared machine hits both alike; each figure is the median of its rounds. Prints requests/s,
# p50/p99, and the CPU time per request of the server and of wrk (from /proc and `times`),
# which say where the time goes when wrk and the server share the cores.
# Bar: webhook >= 50% of nginx's requests/s and webhook p99 < 2 ms; exits 1 when missed.
# Env: MM_BIN (binaries), BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 32),
# BENCH_ROUNDS (default 3), BENCH_WEBHOOK_THREADS (--threads; default: the webhook's own).
set -u
cd "$(dirname "$0")/.."
BIN=${MM_BIN:-$PWD/bin}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-32}
rounds=${BENCH_ROUNDS:-3}
wthreads=${BENCH_WEBHOOK_THREADS:+--threads $BENCH_WEBHOOK_THREADS}
sample=tests/k8s-samples/admissionreview-pod-create.json
for tool in wrk nginx openssl curl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "webhook bench: $tool is missing (hack/install-deps.sh bench)" >&2; exit 1; }
done
[ -x "$BIN/maskmesh-webhook" ] || { echo "webhook bench: $BIN/maskmesh-webhook not built" >&2; exit 1; }
[ -f "$sample" ] || { echo "webhook bench: $sample not found" >&2; exit 1; }

tmp=$(mktemp -d /tmp/mm-bench-webhook.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
chmod 755 "$tmp"   # nginx workers run as another user and read the static body

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # url
    for _ in $(seq 100); do
        curl -ksf -o /dev/null "$1" -X POST -H 'Content-Type: application/json' --data-binary @"$sample" && return 0
        sleep 0.1
    done
    echo "webhook bench: $1 did not come up" >&2; return 1
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" \
    -out "$tmp/cert.pem" -days 1 -subj /CN=bench -addext subjectAltName=IP:127.0.0.1 2>/dev/null || exit 1
chmod 644 "$tmp/key.pem"

wport=$(free_port)
"$BIN/maskmesh-webhook" --listen "127.0.0.1:$wport" --cert "$tmp/cert.pem" --key "$tmp/key.pem" \
    --log-level warn $wthreads 2>"$tmp/webhook.log" &
pids+=($!)
wpid=$!
wait_up "https://127.0.0.1:$wport/mutate-pods" || exit 1
curl -ks -o "$tmp/body.json" -X POST -H 'Content-Type: application/json' --data-binary @"$sample" \
    "https://127.0.0.1:$wport/mutate-pods"
size=$(stat -c %s "$tmp/body.json")
mkdir -p "$tmp/www"
head -c "$size" /dev/zero | tr '\0' ' ' >"$tmp/www/mutate-pods"
chmod -R a+rX "$tmp/www"

nport=$(free_port)
cat >"$tmp/nginx.conf" <<EOF
worker_processes auto;
error_log $tmp/nginx-error.log;
pid $tmp/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    server {
        listen 127.0.0.1:$nport ssl;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $tmp/www;
        default_type application/json;
        # static files refuse POST with 405; answer it with the file
        error_page 405 =200 \$uri;
    }
}
EOF
nginx -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx-start.log" &
pids+=($!)
npid=$!
wait_up "https://127.0.0.1:$nport/mutate-pods" || { cat "$tmp"/nginx-*.log >&2; exit 1; }
nsize=$(curl -ks -X POST -H 'Content-Type: application/json' --data-binary @"$sample" \
    "https://127.0.0.1:$nport/mutate-pods" | wc -c)
[ "$nsize" -eq "$size" ] || { echo "webhook bench: nginx body $nsize bytes, webhook $size" >&2; exit 1; }

cat >"$tmp/post.lua" <<EOF
local f = assert(io.open("$sample", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
EOF

# wrk's latency (e.g. 812.00us, 1.20ms, 1.01s) in milliseconds
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
# CPU ticks (user+system) of a process and its children threads/processes (nginx workers)
ticks() { # pid...
    local t=0 p
    for p in "$@" $(pgrep -P "$1" 2>/dev/null); do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$t"
}
hz=$(getconf CLK_TCK)
round() { # name url pid -> appends "rps p50 p99 server-us/req wrk-us/req" to $tmp/<name>
    local out="$tmp/wrk-$1.txt" t0 t1 n wrk_cpu
    t0=$(ticks "$3")
    TIMEFORMAT='%U %S'
    { time wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$tmp/post.lua" "$2" >"$out" 2>&1; } 2>"$tmp/time" ||
        { cat "$out" >&2; return 1; }
    t1=$(ticks "$3")
    if grep -q "Non-2xx" "$out" || grep -qE "Socket errors" "$out"; then
        echo "webhook bench: $1 had errors:" >&2; cat "$out" >&2; return 1
    fi
    n=$(awk '/requests in/ { print $1 }' "$out")
    wrk_cpu=$(awk '{ print $1 + $2 }' "$tmp/time")
    echo "$(awk '/^Requests\/sec:/ {print $2}' "$out") $(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")" \
         "$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")" \
         "$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f", d / hz / n * 1e6 }')" \
         "$(awk -v c="$wrk_cpu" -v n="$n" 'BEGIN { printf "%.1f", c / n * 1e6 }')" >>"$tmp/$1"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "webhook bench: ${conns} keep-alive TLS connections, ${rounds} rounds of ${secs}s each, POST $(stat -c %s "$sample")-byte AdmissionReview, ${size}-byte response, $(nproc) CPUs"
for _ in $(seq "$rounds"); do
    round nginx "https://127.0.0.1:$nport/mutate-pods" "$npid" || exit 1
    round webhook "https://127.0.0.1:$wport/mutate-pods" "$wpid" || exit 1
done
for t in nginx webhook; do
    for col in 1 2 3 4 5; do
        eval "${t}_$col=$(cut -d' ' -f$col "$tmp/$t" | median)"
    done
done
ratio=$(awk -v a="$webhook_1" -v b="$nginx_1" 'BEGIN { printf "%.2f", a / b }')
printf '  %-30s %11s %8s %9s %17s %14s\n' "" "requests/s" "p50 ms" "p99 ms" "server CPU us/req" "wrk CPU us/req"
printf '  %-30s %11.0f %8.3f %9.3f %17.1f %14.1f\n' "nginx (static, TLS)" "$nginx_1" "$nginx_2" "$nginx_3" "$nginx_4" "$nginx_5"
printf '  %-30s %11.0f %8.3f %9.3f %17.1f %14.1f\n' "maskmesh-webhook /mutate-pods" "$webhook_1" "$webhook_2" "$webhook_3" "$webhook_4" "$webhook_5"
echo "  rounds (req/s): nginx $(cut -d' ' -f1 "$tmp/nginx" | tr '\n' ' ')| webhook $(cut -d' ' -f1 "$tmp/webhook" | tr '\n' ' ')"
echo "  rounds (p99 ms): nginx $(cut -d' ' -f3 "$tmp/nginx" | tr '\n' ' ')| webhook $(cut -d' ' -f3 "$tmp/webhook" | tr '\n' ' ')"
# Little's law: $conns requests always in flight means a mean latency of conns / (req/s)
echo "  mean latency floor at ${conns} connections (conns / req/s): nginx $(awk -v c="$conns" -v r="$nginx_1" 'BEGIN { printf "%.2f", c / r * 1000 }') ms, webhook $(awk -v c="$conns" -v r="$webhook_1" 'BEGIN { printf "%.2f", c / r * 1000 }') ms"
echo "  webhook/nginx requests/s: $ratio (bar >= 0.50); webhook p99 ${webhook_3} ms (bar < 2 ms)"
if awk -v r="$ratio" -v p="$webhook_3" 'BEGIN { exit !(r >= 0.5 && p < 2.0) }'; then
    echo "webhook bench: bar met"
else
    echo "webhook bench: bar MISSED"
    exit 1
fi
