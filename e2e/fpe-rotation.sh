# e2e/fpe-rotation.sh: the FPE key-rotation check for the real-cluster suite (issue 16), to
# be sourced by e2e/kind.sh after "a policy change takes effect without a restart" and
# called as `fpe_rotation_check` while the sample app runs. NOT YET WIRED INTO kind.sh and
# NOT YET RUN ON A CLUSTER (written where no cluster was available); its local twin,
# tests/integration/test_fpe_proxy, runs the same sequence against the real proxy.
#
# Uses kind.sh's helpers and variables: k, curl_in, ok, bad, say, APP_NS, and bin/maskctl.
# Sequence: Secret maskmesh-keys with payments.v1; a policy encrypting the card (FF1,
# surrogate pan) and emails (SIV) with v1; a response read (written with v1); the Secret
# gains payments.v2 and the policy moves to keyVersion 2 (no restart); a response read
# after; maskctl reveal with both versions turns both back into the clear values; the
# sidecar's log and the namespace's events hold no key bytes.

fpe_rotation_check() {
    local tmp key1 key2 before="" after="" pod restarts_before revealed audit
    say "FPE: write with key v1, rotate to v2 through the Secret, read both back"
    tmp=$(mktemp -d)
    key1=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 32)
    key2=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 32)
    mkdir -p "$tmp/keys"
    printf '%s' "$key1" >"$tmp/keys/payments.v1"
    printf '%s' "$key2" >"$tmp/keys/payments.v2"
    fpe_policy() { # version
        cat <<YAML
apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {name: fpe-rotation, namespace: $APP_NS}
spec:
  selector: {matchLabels: {app: shop-api}}
  rules:
    - name: card
      fields: ["\$.payment.card_number"]
      action: {type: encrypt, format: ff1, key: payments, keyVersion: $1, keepFirst: 6, keepLast: 4, luhn: valid, surrogate: pan}
    - name: contact
      fields: ["\$.customer.email"]
      action: {type: encrypt, mode: siv, key: payments, keyVersion: $1}
YAML
    }
    fpe_read() { # VERSION: the response once it is written with that key version
        local body=""
        for _ in $(seq 1 60); do   # kubelet refreshes mounted volumes within about a minute
            body=$(curl_in http://shop-api/response.json || true)
            grep -q "\"pan.v$1:4111 11" <<<"$body" && break
            sleep 3
        done
        printf '%s' "$body"
    }
    pod=$(k -n "$APP_NS" get pod -l app=shop-api -o jsonpath='{.items[0].metadata.name}')
    restarts_before=$(k -n "$APP_NS" get pod "$pod" -o jsonpath='{.status.containerStatuses[*].restartCount}')
    k -n "$APP_NS" create secret generic maskmesh-keys --from-file=payments.v1="$tmp/keys/payments.v1" \
        --dry-run=client -o yaml | k apply -f -
    fpe_policy 1 | k apply -f -
    before=$(fpe_read 1)
    grep -q '"pan.v1:4111 11' <<<"$before" && grep -q '"enc_v1_' <<<"$before" \
        && ok "FF1 and SIV with key v1 in the response" || bad "no v1 ciphertext in: ${before:0:300}"

    k -n "$APP_NS" create secret generic maskmesh-keys --from-file=payments.v1="$tmp/keys/payments.v1" \
        --from-file=payments.v2="$tmp/keys/payments.v2" --dry-run=client -o yaml | k apply -f -
    sleep 2   # the Secret's update is mounted before the policy asks for v2 (else one failed reload)
    fpe_policy 2 | k apply -f -
    after=$(fpe_read 2)
    grep -q '"pan.v2:4111 11' <<<"$after" && grep -q '"enc_v2_' <<<"$after" \
        && ok "after the rotation the response is written with key v2" || bad "no v2 ciphertext in: ${after:0:300}"
    [ "$restarts_before" = "$(k -n "$APP_NS" get pod "$pod" -o jsonpath='{.status.containerStatuses[*].restartCount}')" ] \
        && ok "the rotation restarted no container" || bad "containers restarted during the rotation"

    fpe_policy 2 >"$tmp/policy.yaml"
    printf '%s\n%s\n' "$(tr -d '\n' <<<"$before")" "$(tr -d '\n' <<<"$after")" >"$tmp/both.ndjson"
    revealed=$(bin/maskctl reveal -k "$tmp/keys" -p "$tmp/policy.yaml" -t application/x-ndjson \
        --audit "$tmp/audit.log" --who e2e "$tmp/both.ndjson")
    [ "$(grep -c '"card_number":"4111 1111 1111 1111"' <<<"$revealed")" = 2 ] &&
        [ "$(grep -c '"email":"ada.lovelace@example.com"' <<<"$revealed")" = 2 ] \
        && ok "maskctl reveal reads the data written before and after the rotation" \
        || bad "reveal did not give the clear values back: ${revealed:0:300}"
    grep -q '"keyVersion":1' "$tmp/audit.log" && grep -q '"keyVersion":2' "$tmp/audit.log" \
        && ok "the audit names both key versions" || bad "audit: $(cat "$tmp/audit.log")"

    if k -n "$APP_NS" logs "$pod" -c maskmesh-proxy | grep -qF -e "$key1" -e "$key2" ||
       k -n "$APP_NS" get events -o yaml | grep -qF -e "$key1" -e "$key2"; then
        bad "key bytes in the sidecar's log or the events"
    else
        ok "no key bytes in the sidecar's log or the namespace's events"
    fi
    k -n "$APP_NS" delete mp fpe-rotation --ignore-not-found
    rm -rf "$tmp"
}
