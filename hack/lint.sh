#!/usr/bin/env bash
# Project rules a compiler does not check (in the spirit of curl's checksrc):
#  - banned calls: sprintf, vsprintf, strcpy, strcat, gets, atoi, atol, strtok
#  - the masking path (lib/mask, lib/proxy) never logs or prints with a format that could
#    carry a value: mm_log's key/value arguments there must be literals or names, so any
#    printf-family call in those folders is flagged unless it writes to a buffer.
#  - every module has its one public header lib/<m>/<m>.h
# Prints each finding as FILE:LINE: message, and `N passed, N failed` last, counting the
# checks (a check with any finding fails).
set -u
cd "$(dirname "$(readlink -f "$0")")/.."
fail=0; pass=0; found=0
report() { echo "$1"; found=$((found + 1)); }
check_done() { if [ $found -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi; found=0; }

files=$(git ls-files 'lib/*.c' 'lib/*.h' 'cmd/*.c' 'cmd/*.h' 'tests/tools/*.c' 'fuzz/*.c' 2>/dev/null)
while IFS=: read -r f l rest; do
    [ -n "$f" ] && report "$f:$l: banned call: $(echo "$rest" | grep -oE '\b(v?sprintf|strcpy|strcat|gets|atoi|atol|strtok)\b' | head -1)"
done < <(grep -nE '\b(v?sprintf|strcpy|strcat|gets|atoi|atol|strtok)[[:space:]]*\(' $files /dev/null |
         grep -vE '^\S+:[0-9]+:\s*(/\*|\*)')
check_done

for f in $(git ls-files 'lib/mask/*.c' 'lib/proxy/*.c' | grep -v '/test_'); do
    while IFS=: read -r l rest; do
        [ -n "$l" ] && report "$f:$l: print call in the masking path (values must never reach a log): $(echo "$rest" | sed 's/^[[:space:]]*//' | cut -c1-60)"
    done < <(grep -nE '\b(f?printf|puts|fputs|perror|syslog)[[:space:]]*\(' "$f" | grep -vE 'snprintf|mm_buf_printf')
done
check_done

for d in lib/*/; do
    m=$(basename "$d")
    [ -f "$d$m.h" ] || report "$d: module $m has no public header $d$m.h"
done
check_done

[ $fail -eq 0 ] && echo "lint: clean"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
