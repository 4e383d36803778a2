#!/usr/bin/env bash
# bench/webhook.sh: maskmesh-webhook's /mutate-pods against nginx over TLS, same machine,
# same run. wrk, 32 keep-alive TLS connections, the sample pod AdmissionReview POSTed; nginx
# (Debian nginx-light) answers the same POST over TLS with a static body of the webhook's
# response size. Prints requests/s and p50/p99 for both and the ratio.
# Bar: webhook >= 50% of nginx's requests/s and webhook p99 < 2 ms; exits 1 when missed.
# Env: MM_BIN (binaries), BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 32).
set -u
cd "$(dirname "$0")/.."
BIN=${MM_BIN:-$PWD/bin}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-32}
sample=../shared/k8s-samples/admissionreview-pod-create.json
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
    --log-level warn 2>"$tmp/webhook.log" &
pids+=($!)
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
bench() { # name url -> sets rps p50 p99
    local out="$tmp/wrk-$1.txt"
    wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$tmp/post.lua" "$2" >"$out" 2>&1 || { cat "$out" >&2; return 1; }
    if grep -q "Non-2xx" "$out" || grep -qE "Socket errors" "$out"; then
        echo "webhook bench: $1 had errors:" >&2; cat "$out" >&2; return 1
    fi
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
}

echo "webhook bench: ${conns} keep-alive TLS connections, ${secs}s each, POST $(stat -c %s "$sample")-byte AdmissionReview, ${size}-byte response, $(nproc) CPUs"
bench nginx "https://127.0.0.1:$nport/mutate-pods" || exit 1
n_rps=$rps n_p50=$p50 n_p99=$p99
bench webhook "https://127.0.0.1:$wport/mutate-pods" || exit 1
w_rps=$rps w_p50=$p50 w_p99=$p99
ratio=$(awk -v a="$w_rps" -v b="$n_rps" 'BEGIN { printf "%.2f", a / b }')
printf '  %-28s %12s %10s %10s\n' "" "requests/s" "p50 ms" "p99 ms"
printf '  %-28s %12.0f %10.3f %10.3f\n' "nginx (static, TLS)" "$n_rps" "$n_p50" "$n_p99"
printf '  %-28s %12.0f %10.3f %10.3f\n' "maskmesh-webhook /mutate-pods" "$w_rps" "$w_p50" "$w_p99"
echo "  webhook/nginx requests/s: $ratio (bar >= 0.50); webhook p99 ${w_p99} ms (bar < 2 ms)"
if awk -v r="$ratio" -v p="$w_p99" 'BEGIN { exit !(r >= 0.5 && p < 2.0) }'; then
    echo "webhook bench: bar met"
else
    echo "webhook bench: bar MISSED"
    exit 1
fi
