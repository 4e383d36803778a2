# e2e suite, part of run.sh: a key rotation with format-preserving data written before and
# read after (issue 16). An app of its own (fpe-api: the sample response, no other policy
# selects it) behind the sidecar; a policy encrypting the card with FF1 (surrogate pan, first
# six and the three digits before the Luhn digit kept, the Luhn digit made valid) and the
# email with AES-SIV under key payments v1; the Secret maskmesh-keys gains payments.v2 and
# the policy moves to keyVersion 2; the sidecar picks both up from the kubelet's volume
# updates without a restart; maskctl reveal (on this machine, with both versions) turns what
# was written before and after back into the clear values, and with v1 alone only what was
# written before; no key bytes in the sidecar's log, the Events or the ConfigMaps.
#
# Sourced by run.sh after traffic.sh (its client pod, curl_in, APP_NS and the Secret
# maskmesh-keys, whose other keys stay); uses run.sh's helpers. tests/integration/
# test_fpe_proxy runs the same sequence against the proxy alone, with the files swapped as
# the kubelet swaps them.
# shellcheck shell=bash

say "FPE: data written with key v1, the Secret rotated to v2, both revealed after"
fpe_tmp="$(mktemp -d /tmp/mm-e2e-fpe.XXXXXX)"
mkdir -p "$fpe_tmp/keys" "$fpe_tmp/v1"
# AES-256 keys: 32 bytes each, kept on this machine for maskctl reveal
head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 32 >"$fpe_tmp/keys/payments.v1"
head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 32 >"$fpe_tmp/keys/payments.v2"
cp "$fpe_tmp/keys/payments.v1" "$fpe_tmp/v1/"
fpe_key1="$(cat "$fpe_tmp/keys/payments.v1")"
fpe_key2="$(cat "$fpe_tmp/keys/payments.v2")"
# add_key NAME FILE: one more key in the namespace's Secret; the keys already there stay
add_key() {
    k -n "$APP_NS" patch secret maskmesh-keys --type merge \
        -p "{\"data\":{\"$1\":\"$(base64 -w0 <"$2")\"}}" >/dev/null
}
fpe_policy() { # VERSION
    cat <<YAML
apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {name: fpe-rotation, namespace: $APP_NS}
spec:
  selector: {matchLabels: {app: fpe-api}}
  port: 8080
  rules:
    - name: card
      fields: ["\$.payment.card_number"]
      action: {type: encrypt, format: ff1, key: payments, keyVersion: $1, keepFirst: 6, keepLast: 4, luhn: valid, surrogate: pan}
    - name: contact
      fields: ["\$.customer.email"]
      action: {type: encrypt, mode: siv, key: payments, keyVersion: $1}
YAML
}
add_key payments.v1 "$fpe_tmp/keys/payments.v1"
fpe_policy 1 | k apply -f - >/dev/null
k -n "$APP_NS" wait --for=condition=Ready mp/fpe-rotation --timeout=90s >/dev/null
httpd_app fpe-api 'app: fpe-api' '' # traffic.sh's app, its own labels
check "fpe-api rolled out behind the sidecar" k -n "$APP_NS" rollout status deploy/fpe-api --timeout=180s
# the pods of fpe-api that are not on their way out
fpe_pods() {
    k -n "$APP_NS" get pod -l app=fpe-api -o go-template \
        --template '{{range .items}}{{if not .metadata.deletionTimestamp}}{{.metadata.name}} {{end}}{{end}}'
}
fpe_pod="$(fpe_pods)"; fpe_pod="${fpe_pod%% *}"
fpe_restarts() { k -n "$APP_NS" get pod "$fpe_pod" -o jsonpath='{.status.containerStatuses[*].restartCount}'; }
fpe_restarts_before="$(fpe_restarts)"
# written_with VERSION: the response, once the card and the email are encrypted with VERSION
fpe_body=""
written_with() {
    fpe_body="$(curl_in http://fpe-api/response.json 2>/dev/null | tr -d '\n' || true)"
    grep -q "\"pan.v$1:4111 11[0-9]\{2\} [0-9]\{4\} 111[0-9]\"" <<<"$fpe_body" &&
        grep -q "\"enc_v$1_" <<<"$fpe_body" && ! grep -q '4111 1111 1111 1111\|ada.lovelace@example.com' <<<"$fpe_body"
}
# luhn_valid TEXT: the card after pan.vN: passes the Luhn check (the policy's luhn: valid)
luhn_valid() {
    python3 -c 'import re,sys
d=[int(c) for c in re.search(r"\"pan\.v\d+:([0-9 ]+)\"", sys.argv[1]).group(1) if c != " "]
s=sum(x if i % 2 == 0 else (x*2 - 9 if x > 4 else x*2) for i, x in enumerate(reversed(d)))
sys.exit(0 if s % 10 == 0 else 1)' "$1"
}
if eventually 120 written_with 1; then
    ok "key v1: the card is FF1 (pan.v1:4111 11.. .... 111d: first six, the three before the check digit) and the email an enc_v1_ token"
else
    bad "no v1 ciphertext in the response: ${fpe_body:0:400}"
fi
fpe_before="$fpe_body"
check "the FF1 card passes the Luhn check (luhn: valid)" luhn_valid "$fpe_before"

# the rotation: the new version joins the Secret, then the policy encrypts with it
add_key payments.v2 "$fpe_tmp/keys/payments.v2"
fpe_policy 2 | k apply -f - >/dev/null
if eventually 150 written_with 2; then
    ok "after the rotation the sidecar writes with key v2 (no restart: the kubelet's volume updates)"
else
    bad "no v2 ciphertext in the response: ${fpe_body:0:400}"
fi
fpe_after="$fpe_body"
check "the rotation restarted no container (restart counts $fpe_restarts_before)" \
    test "$fpe_restarts_before" = "$(fpe_restarts)"
check "the pod is the same one ($fpe_pod)" \
    test "$fpe_pod " = "$(fpe_pods)"
[ "$fpe_before" != "$fpe_after" ] && ok "the data written before and after differ" ||
    bad "the responses before and after the rotation are the same"

fpe_policy 2 >"$fpe_tmp/policy.yaml"
printf '%s\n%s\n' "$fpe_before" "$fpe_after" >"$fpe_tmp/both.ndjson"
fpe_revealed="$(bin/maskctl reveal -k "$fpe_tmp/keys" -p "$fpe_tmp/policy.yaml" -t application/x-ndjson \
    --audit "$fpe_tmp/audit.log" --who e2e "$fpe_tmp/both.ndjson" || true)"
if [ "$(grep -c '"card_number":"4111 1111 1111 1111"' <<<"$fpe_revealed")" = 2 ] &&
   [ "$(grep -c '"email":"ada.lovelace@example.com"' <<<"$fpe_revealed")" = 2 ]; then
    ok "maskctl reveal with v1 and v2 gives back the card and email written before and after"
else
    bad "reveal did not give the clear values back: ${fpe_revealed:0:400}"
fi
if grep -q '"keyVersion":1' "$fpe_tmp/audit.log" && grep -q '"keyVersion":2' "$fpe_tmp/audit.log" &&
   ! grep -q '4111 1111 1111 1111\|ada.lovelace' "$fpe_tmp/audit.log"; then
    ok "the audit names both key versions and no value"
else
    bad "audit: $(head -c 400 "$fpe_tmp/audit.log")"
fi
# the versions are real: v1 alone opens what was written before, not what was written after
printf '%s\n' "$fpe_before" >"$fpe_tmp/before.json"
printf '%s\n' "$fpe_after" >"$fpe_tmp/after.json"
check "with key v1 alone the data written before the rotation is revealed" bash -c \
    "bin/maskctl reveal -k '$fpe_tmp/v1' -p '$fpe_tmp/policy.yaml' --audit /dev/null '$fpe_tmp/before.json' | grep -q '\"4111 1111 1111 1111\"'"
check "with key v1 alone the data written after it is not" bash -c \
    "! bin/maskctl reveal -k '$fpe_tmp/v1' -p '$fpe_tmp/policy.yaml' --audit /dev/null '$fpe_tmp/after.json' 2>/dev/null | grep -q '4111 1111 1111 1111'"

# what could leak a key: the pod's logs (the sidecar logged its reloads), Events, ConfigMaps
if fpe_seen="$(k -n "$APP_NS" logs "$fpe_pod" --all-containers && k -n "$APP_NS" get events -o yaml &&
               k -n "$APP_NS" get configmap -o yaml)" && grep -q 'reload\|policies' <<<"$fpe_seen"; then
    if grep -qF -e "$fpe_key1" -e "$fpe_key2" <<<"$fpe_seen"; then
        bad "key bytes in the sidecar's log, the Events or a ConfigMap"
    else
        ok "no key bytes in the sidecar's log, the namespace's Events or its ConfigMaps ($(wc -l <<<"$fpe_seen") lines read)"
    fi
else
    bad "the sidecar's log, the Events or the ConfigMaps could not be read"
fi
k -n "$APP_NS" delete deploy/fpe-api svc/fpe-api mp/fpe-rotation --wait=true >/dev/null
k -n "$APP_NS" wait --for=delete pod -l app=fpe-api --timeout=90s >/dev/null 2>&1 || true
rm -rf "$fpe_tmp"
