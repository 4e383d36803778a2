#!/usr/bin/env bash
# Project rules a compiler does not check (in the spirit of curl's checksrc):
#  - banned calls: sprintf, vsprintf, strcpy, strcat, gets, atoi, atol, strtok
#  - the masking path (lib/mask, lib/proxy) never logs or prints with a format that could
#    carry a value: mm_log's key/value arguments there must be literals or names, so any
#    printf-family call in those folders is flagged unless it writes to a buffer.
#  - every module has its one public header lib/<m>/<m>.h
#  - module.mk files only name dependencies (`<x>_DEPS := ...` / `<x>_MODULES := ...` /
#    `<x>_PKGS := ...`)
#  - no source file of lib/ or cmd/ (tests aside) is longer than 1,000 lines
#  - no call circle between the files of a module (hack/check-calls.py, on the objects
#    built in $MM_BUILD, default build/)
#  - the README's folder table names every top-level folder and every module
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

for f in $(git ls-files '*module.mk'); do
    while IFS=: read -r l rest; do
        [ -n "$l" ] && report "$f:$l: a module.mk only names dependencies (rules belong in the Makefile): $(echo "$rest" | cut -c1-60)"
    done < <(grep -nvE '^[[:space:]]*(#.*)?$|^[A-Za-z0-9_-]+_(DEPS|MODULES|PKGS)[[:space:]]*:=' "$f")
done
check_done

# Files still being split by other work of issue 14 (remove each as it lands).
long_pending=""
for f in $(git ls-files 'lib/*.c' 'lib/*.h' 'cmd/*.c' 'cmd/*.h' | grep -v '/test_'); do
    n=$(wc -l <"$f")
    case " $long_pending " in *" $f "*) continue ;; esac
    [ "$n" -gt 1000 ] && report "$f: $n lines (at most 1,000 outside tests: split it by role)"
done
check_done

# Modules whose circles other work of issue 14 removes (remove each as it lands).
circles_pending=""
if ! out=$(python3 hack/check-calls.py "${MM_BUILD:-build}" --allow $circles_pending); then
    echo "$out" | grep -v ' passed, '
    report "call circles between the files of a module (hack/check-calls.py)"
fi
check_done

table=$(sed -n '/^| folder | what is there |$/,/^$/p' README.md)
for d in $(git ls-files | sed -n 's#^\([^/.][^/]*\)/.*#\1#p' | sort -u); do
    grep -qF "\`$d/" <<<"$table" || report "README.md: the folder table does not name $d/"
done
for d in lib/*/; do
    grep -qF "\`${d%/}\`" <<<"$table" || report "README.md: the folder table does not name ${d%/}"
done
check_done

[ $fail -eq 0 ] && echo "lint: clean"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
