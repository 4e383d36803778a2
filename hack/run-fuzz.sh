#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS on a copy of its seed corpus (fuzz/corpus/<name>/),
# so the tree's corpus only changes by hand. A crash, leak or timeout fails the run and
# leaves the reproducer in build-fuzz/artifacts/.
# Usage: hack/run-fuzz.sh SECONDS TARGET...
set -u
secs=$1; shift
cd "$(dirname "$0")/.."
mkdir -p build-fuzz/artifacts
passed=0; failed=0
for t in "$@"; do
    name=$(basename "$t"); name=${name#fuzz_}
    work=build-fuzz/corpus-run/$name
    rm -rf "$work"; mkdir -p "$work"
    [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
    dict=(); [ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
    echo "== fuzz $name for ${secs}s"
    if "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
           -artifact_prefix=build-fuzz/artifacts/"$name"- "${dict[@]}" "$work" \
           >build-fuzz/"$name".log 2>&1; then
        grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' build-fuzz/"$name".log | tail -1
        passed=$((passed + 1))
    else
        tail -40 build-fuzz/"$name".log
        echo "fuzz $name FAILED (reproducer in build-fuzz/artifacts/)"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
