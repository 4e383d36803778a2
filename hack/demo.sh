#!/usr/bin/env bash
# make demo: maskmesh's engine on built-in sample data (examples/demo/), narrated. Shows the
# policy being checked, a leak report, then what the application sent beside what the
# client receives, for a JSON response, an NDJSON event stream and a log file.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MM_BIN:-bin}
d=examples/demo
m() { "$bin/maskctl" mask --policy "$d/policy.yaml" --keys "$d/keys" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "The policy (examples/demo/policy.yaml): cards masked to 6+4, contacts tokenized, employee ids redacted"
sed -n '/rules:/,/headers:/p' "$d/policy.yaml" | sed '$d'

say "maskctl check: is it valid, and what will it do?"
"$bin/maskctl" check --policy "$d/policy.yaml" --keys "$d/keys"

say "maskctl scan: every sensitive value in the sample, and the rule that covers it (never the value)"
"$bin/maskctl" scan --policy "$d/policy.yaml" "$d/response.json"

say "A JSON response: what the app sent (left) and what the client receives (right)"
m "$d/response.json" > /tmp/maskmesh-demo.$$
paste -d'|' <(expand "$d/response.json" | cut -c1-62 | awk '{printf "%-62s\n", $0}') \
            <(expand /tmp/maskmesh-demo.$$ | cut -c1-62) | sed 's/|/ | /'
rm -f /tmp/maskmesh-demo.$$

say "An NDJSON event stream (e.g. kcat -C ... | maskctl mask): masked line by line"
echo "in:";  sed 's/^/  /' "$d/events.ndjson"
echo "out:"; m -t application/x-ndjson "$d/events.ndjson" | sed 's/^/  /'

say "A log file: detectors over plain text; timestamps and order numbers are left alone.
   The same email gets the same token in the JSON, the events and the log: joins still work"
echo "in:";  sed 's/^/  /' "$d/app.log"
echo "out:"; m -t text/plain "$d/app.log" | sed 's/^/  /'

say "Bad input gets an error naming the place, and nothing of the value in progress leaks"
printf '{"payment": {"card_number": "4111 1111 11' | m -t application/json || true
echo
say "Done. Try: bin/maskctl mask --help"
