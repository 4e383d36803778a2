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

# ff1_policy IN OUT: the realistic policy IN (proxy.sh's) with the card rule's action an FF1
# encrypt (first six and last four kept; issue 16), key payments.v1; fails when IN has no
# such card rule
ff1_policy() {
    sed 's/action: {type: mask, keepFirst: 6, keepLast: 4, char: "\*", preserveFormat: true}/action: {type: encrypt, format: ff1, key: payments, keyVersion: 1, keepFirst: 6, keepLast: 4}/' \
        "$1" >"$2"
    grep -q 'type: encrypt' "$2" || { echo "$name: no FF1 policy"; exit 1; }
}
# One h2load run against url with the extra h2load arguments: prints "rps p99_ms failed"
# (p99 from h2load's per-request log).
# CPU clock ticks (user + system) of the processes given, all their threads
ticks() {
    local p t sum=0
    for p in "$@"; do
        for t in /proc/"$p"/task/*/stat; do
            sum=$((sum + $(awk '{ print $14 + $15 }' "$t" 2>/dev/null || echo 0)))
        done
    done
    echo "$sum"
}
# one h2load run: prints "rps p99_ms failed cpu_us_per_request", the CPU being that of the
# pids in CPU_PIDS (the server's workers; 0 when unset)
h2load_run() { # url h2load-args...
    local url=$1 out rps failed p99 ok t0 t1 cpu
    shift
    rm -f "$tmp/lat"
    # shellcheck disable=SC2086 # the pids, one word each
    t0=$(ticks ${CPU_PIDS:-})
    out=$(h2load "$@" --log-file="$tmp/lat" "$url" 2>&1)
    # shellcheck disable=SC2086
    t1=$(ticks ${CPU_PIDS:-})
    rps=$(echo "$out" | awk '/^finished in/ { gsub(",", "", $4); print $4 }')
    failed=$(echo "$out" | awk '/^requests:/ { print $10 + $12 }')
    ok=$(echo "$out" | awk '/^requests:/ { print $8 }')
    p99=$(awk '{ print $3 }' "$tmp/lat" 2>/dev/null | sort -n |
          awk '{ v[NR] = $1 } END { if (NR) printf "%.3f", v[int(NR * 0.99)] / 1000; else print 0 }')
    cpu=$(awk -v t=$((t1 - t0)) -v n="${ok:-0}" -v hz="$(getconf CLK_TCK)" \
          'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }')
    [ "${failed:-1}" != 0 ] && echo "$out" | grep -E "^requests:|^status codes:" | sed "s|^|  $url: |" >&2
    echo "${rps:-0} ${p99:-0} ${failed:-1} $cpu"
}
# nginx_start DIR HTTP: nginx with $WORKERS workers ($NGINX), its files under DIR (nginx.pid,
# error.log, temp paths), the http block's common settings followed by HTTP (the bench's own
# settings, upstreams and servers); in the background, stopped with the bench's processes.
nginx_start() {
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    $2
}
EOF
    "$NGINX" -c "$1/nginx.conf" -p "$1" 2>"$1/stderr" &
    pids+=($!)
}
# nginx as a plain HTTP/1.1 reverse proxy to the app (start_app) with upstream keepalive:
# the baseline of proxy.sh and proxy_perreq.sh; sets NGX, its port.
nginx_proxy_start() {
    NGX=$(free_port)
    nginx_start "$tmp/nginx" "upstream app { server 127.0.0.1:$APP; keepalive 128; }
    server {
        listen 127.0.0.1:$NGX reuseport;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
    wait_port "$NGX"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# The rounds in $tmp/n (nginx) and $tmp/m (maskmesh-proxy), h2load_run lines, as a table of
# medians with the proxy's ratios to nginx; sets r_rps and r_p99.
h2_table() { # nginx-label proxy-label
    local n_rps n_p99 m_rps m_p99
    n_rps=$(cut -d' ' -f1 "$tmp/n" | median); n_p99=$(cut -d' ' -f2 "$tmp/n" | median)
    m_rps=$(cut -d' ' -f1 "$tmp/m" | median); m_p99=$(cut -d' ' -f2 "$tmp/m" | median)
    r_rps=$(awk -v a="$m_rps" -v b="$n_rps" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
    r_p99=$(awk -v a="$m_p99" -v b="$n_p99" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
    printf '%-34s %10s %9s %9s %9s\n' target req/s p99_ms rps/nginx p99/nginx
    printf '%-34s %10s %9s %9s %9s\n' "$1" "$n_rps" "$n_p99" 1.00 1.00
    printf '%-34s %10s %9s %9s %9s\n' "$2" "$m_rps" "$m_p99" "$r_rps" "$r_p99"
    echo "  ${CONNS} connections x ${STREAMS} streams; rounds (req/s): nginx $(cut -d' ' -f1 "$tmp/n" | tr '\n' ' ')| proxy $(cut -d' ' -f1 "$tmp/m" | tr '\n' ' ')"
    local n_cpu m_cpu
    n_cpu=$(cut -d' ' -f4 "$tmp/n" | median); m_cpu=$(cut -d' ' -f4 "$tmp/m" | median)
    [ "$n_cpu" = 0.0 ] && return 0
    echo "  CPU per request (user+sys, median of rounds): nginx ${n_cpu} us, proxy ${m_cpu} us ($(awk -v a="$m_cpu" -v b="$n_cpu" 'BEGIN { printf "%.2f", b ? a / b : 0 }')x); load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
