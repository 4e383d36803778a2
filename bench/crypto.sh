#!/usr/bin/env bash
# bench/crypto.sh (issue 16): values per second on one thread for encrypt — FF1 on 16-digit
# cards (first six and last four kept, and whole), AES-SIV on emails — beside tokenize
# (HMAC-SHA256) measured in the same run (build/tools/mm-fpebench). values/s is per second
# of the thread's CPU time (one core, whatever else runs); wall/s per wall-clock second,
# which a shared machine (or a VM's stolen time) pulls down. Bar: at least 500,000
# FF1 card encryptions per second on one core; the ratio to tokenize is printed too, since
# on a shared machine the absolute figure moves with the load (BENCH_CRYPTO_SECONDS, 2).
set -u
cd "$(dirname "$0")/.."
BUILD=${MM_BUILD:-$PWD/build}
SECS=${BENCH_CRYPTO_SECONDS:-2}
tool="$BUILD/tools/mm-fpebench"
[ -x "$tool" ] || { echo "crypto.sh: missing $tool (make units builds it)"; exit 1; }
# one core: pinned to the CPU this script started on, when taskset is there
pin=()
command -v taskset >/dev/null && pin=(taskset -c "$(awk '{print $39}' /proc/self/stat)")
printf '%-16s %12s %10s %12s\n' case values/s /tokenize wall/s
out=$("${pin[@]}" "$tool" "$SECS") || { echo "crypto.sh: mm-fpebench failed"; exit 1; }
echo "$out" | awk '{ printf "%-16s %12s %10s %12s\n", $1, $2, $3, $4 }'
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
ff1=$(echo "$out" | awk '$1 == "ff1-card-6/4" { print $2 }')
if awk -v r="$ff1" 'BEGIN { exit !(r >= 500000) }'; then
    exit 0
fi
echo "  BAR MISSED: FF1 cards $ff1/s (< 500000)"
exit 1
