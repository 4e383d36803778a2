#!/usr/bin/env bash
# Runs maskmesh's test suites and prints one closing line: `N passed, N failed`.
# Usage: hack/run-tests.sh --build DIR --bin DIR {all|unit|golden|integration|apiserver|kafka}...
# kafka: tests/integration/test_stream*, which start a real Kafka broker (JVM) of their own;
# left out of `integration` and `all` (make test-kafka runs them).
# Environment: MM_VALGRIND=1 runs unit tests under valgrind; MM_SANITIZED=1 tells suites the
# binaries are ASan builds (slower: they may shorten loads). lib/mask's stream tests (golden
# files included) also run with MM_SIMD=off and avx2, so each JSON scanning path is tested.
set -u
build=build; bin=bin; suites=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        all) suites+=(unit golden integration apiserver); shift ;;
        unit|golden|integration|apiserver|kafka) suites+=("$1"); shift ;;
        *) echo "run-tests: unknown argument $1" >&2; exit 2 ;;
    esac
done
export MM_BUILD="$build" MM_BIN="$(cd "$bin" 2>/dev/null && pwd || echo "$bin")"
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2

passed=0; failed=0; failures=()
mkdir -p "$build"; log=$(mktemp -d "$build/test-logs.XXXXXX"); trap 'rm -rf "$log"' EXIT

# Adds the counts a finished command printed (cmocka, unittest or our plain line); a command
# that failed without printing counts is one failure, one that passed silently one pass.
count() { # name rc output-file
    local name=$1 rc=$2 out=$3 p=0 f=0 seen=0 n
    while read -r n; do p=$((p + n)); seen=1; done < <(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out")
    while read -r n; do f=$((f + n)); seen=1; done < <(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out")
    if grep -qE '^Ran [0-9]+ tests? in' "$out"; then
        n=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' "$out" | tail -1); seen=1
        local bad
        bad=$(sed -n 's/^FAILED (\(.*\))/\1/p' "$out" | grep -oE '(failures|errors)=[0-9]+' | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
        bad=${bad:-0}; f=$((f + bad)); p=$((p + n - bad))
    fi
    if [ $seen -eq 0 ] && grep -qE '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$out"; then
        local line; line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
        p=$(echo "$line" | sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed.*/\2/')
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/'); seen=1
    fi
    if [ $seen -eq 0 ]; then [ "$rc" -eq 0 ] && p=1 || f=1; fi
    # a crash after the summary, a leak report, a sanitizer error: the exit code decides
    if [ "$rc" -ne 0 ] && [ $f -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] || [ $f -gt 0 ]; then
        failures+=("$name")
        echo "---- $name failed (exit $rc); its output:"; tail -n 60 "$out"
    fi
    printf '%-58s %s\n' "$name" "$([ "$rc" -eq 0 ] && [ $f -eq 0 ] && echo "ok ($p)" || echo "FAILED ($f)")"
}

run() { # name cmd...
    local name=$1; shift
    local out="$log/out"
    timeout --kill-after=10 "${MM_TEST_TIMEOUT:-600}" "$@" >"$out" 2>&1
    count "$name" $? "$out"
}

for suite in "${suites[@]}"; do
    case $suite in
    unit)
        for t in $(find "$build/tests" -type f -name 'test_*' -perm -u+x 2>/dev/null | sort); do
            if [ "${MM_VALGRIND:-0}" = 1 ]; then
                MM_PCRE2_NO_JIT=1 run "unit(valgrind): ${t#$build/tests/}" valgrind -q --error-exitcode=99 \
                    --leak-check=full --errors-for-leak-kinds=definite,indirect "$t"
            else
                run "unit: ${t#$build/tests/}" "$t"
                # the JSON masker's portable path and each SIMD level (lib/mask/simd_int.h)
                # must give the same bytes: its tests run under each MM_SIMD setting too
                case $t in */tests/mask/test_stream|*/tests/mask/test_golden|*/tests/mask/test_property|*/tests/mask/test_grants|*/tests/mask/test_tweak)
                    for lvl in off avx2; do
                        MM_SIMD=$lvl run "unit(MM_SIMD=$lvl): ${t#$build/tests/}" "$t"
                    done ;;
                esac
            fi
        done ;;
    golden)
        [ -x tests/golden/run.sh ] && run "golden: tests/golden" tests/golden/run.sh "$MM_BIN" ;;
    integration)
        for t in $(find -L tests/integration -maxdepth 1 -type f -name 'test_*' ! -name 'test_stream*' -perm -u+x 2>/dev/null | sort); do
            run "integration: ${t#tests/integration/}" "$t"
        done ;;
    kafka)
        for t in $(find -L tests/integration -maxdepth 1 -type f -name 'test_stream*' -perm -u+x 2>/dev/null | sort); do
            run "kafka: ${t#tests/integration/}" "$t"
        done ;;
    apiserver)
        [ -d e2e/apiserver/tests ] && run "apiserver: e2e/apiserver/tests" \
            python3 -m unittest discover -s e2e/apiserver/tests -t . ;;
    esac
done

[ ${#failures[@]} -gt 0 ] && { echo "failed:"; printf '  %s\n' "${failures[@]}"; }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
