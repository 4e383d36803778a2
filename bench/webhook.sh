#!/usr/bin/env bash
# bench/webhook.sh: maskmesh-webhook's /mutate-pods against nginx over TLS, same machine,
# same run, the sample pod AdmissionReview POSTed; nginx (Debian nginx-light) answers the
# same POST over TLS with a static body of the webhook's response size. Rounds alternate
# nginx and the webhook, so a busy spell of a shared machine hits both alike; each figure
# is the median of its rounds.
# 1. Latency at a fixed arrival rate, as an API server sends reviews (issue 17): open loop
#    at BENCH_RATES reviews/s over 16 kept-alive TLS connections; p50/p99/p99.9 measured
#    from each request's intended send time (bench/openloop.py says how). Two generators,
#    each with nginx beside the webhook: tests/tools/mm-loadgen (one C thread, a timerfd
#    at each slot; the bar's figure) and vegeta (Go; its pacer runs late on 2 shared CPUs,
#    and that lateness counts against the server, so its rows are the upper bound).
#    Bar: webhook p99 < 1 ms at 2,000/s, by mm-loadgen.
# 2. Throughput, closed loop: wrk, 32 keep-alive TLS connections; requests/s, p50/p99, and
#    the CPU time per request of the server and of wrk (from /proc and `times`).
#    Bar: webhook >= 50% of nginx's requests/s. (A closed loop's p99 is conns / (req/s)
#    plus queueing: it measures the load generator as much as the server; printed only.)
# 3. Instructions per review in lib/admission (callgrind, tests/tools/mm-admbench): the one
#    figure a shared machine does not move.
# Exits 1 when a bar is missed.
# Env: MM_BIN (binaries), BENCH_SECONDS (closed-loop round, default 10), BENCH_CONNECTIONS
# (default 32), BENCH_ROUNDS (default 3), BENCH_WEBHOOK_THREADS (--threads; default: the
# webhook's own), BENCH_RATES (default "500 2000 5000"), BENCH_VEGETA_RATES (default "2000";
# empty: vegeta is not run), BENCH_RATE_SECONDS (default 5), BENCH_RATE_ROUNDS (default 5),
# BENCH_RATE_CONNECTIONS (default 16).
set -u
cd "$(dirname "$0")/.."
BIN=${MM_BIN:-$PWD/bin}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-32}
rounds=${BENCH_ROUNDS:-3}
wthreads=${BENCH_WEBHOOK_THREADS:+--threads $BENCH_WEBHOOK_THREADS}
rates=${BENCH_RATES:-500 2000 5000}
rsecs=${BENCH_RATE_SECONDS:-5}
vrates=${BENCH_VEGETA_RATES-2000}
rrounds=${BENCH_RATE_ROUNDS:-5}
rconns=${BENCH_RATE_CONNECTIONS:-16}
sample=tests/k8s-samples/admissionreview-pod-create.json
# vegeta, pinned, built through the Go module proxy into build/tools on first use
VEGETA_VERSION=v12.13.0
vegeta=${MM_BUILD:-$PWD/build}/tools/vegeta-$VEGETA_VERSION
if [ -n "$vrates" ] && [ ! -x "$vegeta" ]; then
    command -v go >/dev/null 2>&1 || { echo "webhook bench: go is missing (needed once to build vegeta)" >&2; exit 1; }
    echo "webhook bench: building vegeta $VEGETA_VERSION (go install, once)" >&2
    mkdir -p "$(dirname "$vegeta")"
    gobin=$(mktemp -d)
    GOBIN=$gobin go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION" &&
        mv "$gobin/vegeta" "$vegeta" || { rm -rf "$gobin"; echo "webhook bench: go install vegeta failed" >&2; exit 1; }
    rm -rf "$gobin"
fi
for tool in wrk nginx openssl curl python3; do
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
# the middle value; of an even count, the mean of the two middle ones
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# 1. fixed arrival rate, HTTP/1.1 as the API server speaks to webhooks; a request finding
# all $rconns connections busy waits for one, inside its latency. The first second (the
# handshakes) is left out. mm-loadgen opens its connections before the first slot. vegeta:
# -max-connections caps its pool; -max-workers is left unbounded so the pacer never waits
# for a free worker.
loadgen=${MM_BUILD:-$PWD/build}/tools/mm-loadgen
[ -x "$loadgen" ] || { echo "webhook bench: $loadgen not built (make units)" >&2; exit 1; }
rate_round() { # gen name port rate -> appends "count errors p50 p99 p999 own-p99 lag achieved/s" to $tmp/rate-<gen>-<name>-<rate>
    if [ "$1" = mm-loadgen ]; then
        "$loadgen" --url "https://127.0.0.1:$3/mutate-pods" --rate "$4" --duration "$rsecs" \
            --connections "$rconns" --insecure --body "$PWD/$sample" \
            --header 'Content-Type: application/json' --timeout 10 >"$tmp/results.csv" ||
            { echo "webhook bench: mm-loadgen on $2 failed" >&2; return 1; }
    else
        printf 'POST https://127.0.0.1:%s/mutate-pods\nContent-Type: application/json\n@%s\n' "$3" "$PWD/$sample" >"$tmp/target"
        "$vegeta" attack -targets "$tmp/target" -rate "$4/s" -duration "${rsecs}s" -insecure -http2=false \
            -keepalive=true -connections "$rconns" -max-connections "$rconns" -timeout 10s >"$tmp/results.bin" ||
            { echo "webhook bench: vegeta attack on $2 failed" >&2; return 1; }
        "$vegeta" encode --to csv <"$tmp/results.bin" >"$tmp/results.csv" || return 1
        rm -f "$tmp/results.bin"
    fi
    python3 bench/openloop.py "$4" 1 <"$tmp/results.csv" >>"$tmp/rate-$1-$2-$4" || return 1
    rm -f "$tmp/results.csv"
}
rate_bar=1
for gen in mm-loadgen ${vrates:+vegeta}; do
[ "$gen" = vegeta ] && rates=$vrates
echo "webhook bench: fixed arrival rate ($gen$([ $gen = vegeta ] && echo " $VEGETA_VERSION"), open loop), ${rconns} keep-alive TLS connections, ${rrounds} rounds of ${rsecs}s per rate and server, latency from the intended send time, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# achieved/s: the measured hits over the time from the first one's slot to the last response:
# below the rate when vegeta could not send it (pacer lag) or the server fell behind; nginx's
# row, under the same load, is the generator's own accuracy
# "own p99": the generator's own figure, from its stamp (a late pacer not counted)
printf '  %-8s %-30s %10s %8s %8s %8s %9s %11s %13s %7s\n' "rate/s" "" "achieved/s" "p50 ms" "p99 ms" "p99.9 ms" "p99 ratio" "own p99 ms" "pacer lag ms" "errors"
for rate in $rates; do
    for _ in $(seq "$rrounds"); do
        rate_round "$gen" nginx "$nport" "$rate" || exit 1
        rate_round "$gen" webhook "$wport" "$rate" || exit 1
    done
    for t in nginx webhook; do
        for col in 1 2 3 4 5 6 7 8; do
            eval "${t}_r$col=$(cut -d' ' -f$col "$tmp/rate-$gen-$t-$rate" | median)"
        done
        errs=$(awk '{ e += $2 } END { print e + 0 }' "$tmp/rate-$gen-$t-$rate")
        r=$(awk -v a="$(eval echo \$${t}_r4)" -v b="$nginx_r4" 'BEGIN { printf "%.2f", a / b }')
        printf '  %-8s %-30s %10.0f %8.3f %8.3f %8.3f %9s %11.3f %13.3f %7d\n' "$rate" \
            "$([ $t = nginx ] && echo "nginx (static, TLS)" || echo "maskmesh-webhook /mutate-pods")" \
            "$(eval echo \$${t}_r8)" "$(eval echo \$${t}_r3)" "$(eval echo \$${t}_r4)" "$(eval echo \$${t}_r5)" "$r" \
            "$(eval echo \$${t}_r6)" "$(eval echo \$${t}_r7)" "$errs"
        [ "$errs" -eq 0 ] || rate_bar=0
    done
    echo "           rounds (p99 ms): nginx $(cut -d' ' -f4 "$tmp/rate-$gen-nginx-$rate" | tr '\n' ' ')| webhook $(cut -d' ' -f4 "$tmp/rate-$gen-webhook-$rate" | tr '\n' ' ')"
    if [ "$rate" = 2000 ] && [ "$gen" = mm-loadgen ]; then
        awk -v p="$webhook_r4" 'BEGIN { exit !(p < 1.0) }' || rate_bar=0
        echo "  webhook p99 at 2000/s: $webhook_r4 ms (bar < 1 ms; nginx $nginx_r4 ms)"
    elif [ "$rate" = 2000 ]; then
        echo "  webhook p99 at 2000/s by vegeta: $webhook_r4 ms (nginx $nginx_r4 ms; printed, no bar)"
    fi
done
done

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
echo "  webhook/nginx requests/s: $ratio (bar >= 0.50); webhook p99 ${webhook_3} ms (closed loop: printed, no bar)"
# 3. lib/admission's own cost, which a busy machine does not change: callgrind's instruction
# count of answering the sample review (parse, inject, response) in tests/tools/mm-admbench,
# N=101 minus N=1 over 100. (The template hash of a pod like the one before on the same thread
# is remembered; a new template adds SHA-256, about 50k instructions in valgrind, which hides SHA-NI.)
admbench=${MM_BUILD:-$PWD/build}/tools/mm-admbench
if command -v valgrind >/dev/null 2>&1 && [ -x "$admbench" ]; then
    ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$admbench" "$sample" "$1" 2>&1 |
           awk '/Collected/ { print $NF }'; }
    i1=$(ir 1); i101=$(ir 101)
    echo "  lib/admission per review (callgrind): $(( (i101 - i1) / 100 )) instructions"
else
    echo "  lib/admission per review (callgrind): skipped (valgrind or $admbench missing)"
fi
if [ "$rate_bar" = 1 ] && awk -v r="$ratio" 'BEGIN { exit !(r >= 0.5) }'; then
    echo "webhook bench: bar met"
else
    echo "webhook bench: bar MISSED"
    exit 1
fi
