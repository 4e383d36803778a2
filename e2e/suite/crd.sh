# e2e suite, part of run.sh: the CRD's OpenAPI schema and CEL rules, run by the real API server.
# Each bad policy goes to the server (dry run: validation runs, nothing is stored) and must be
# refused with the message the CRD or the API server's schema validation gives.
# shellcheck shell=bash

say "the CRD refuses bad policies with the API server's messages"
# refuse NAME 'expected message' SPEC-YAML (indented under spec:)
refuse() {
    local name=$1 want=$2 spec=$3 out
    if out="$(k create --dry-run=server -f - 2>&1 <<EOF
apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {name: bad-$name, namespace: default}
spec:
$spec
EOF
)"; then
        bad "bad policy $name was accepted"
    elif grep -qF -- "$want" <<<"$out"; then
        ok "refused $name: $(grep -oF -- "$want" <<<"$out" | head -1)"
    else
        bad "bad policy $name refused, but not with \"$want\": $out"
    fi
}
sel='  selector: {matchLabels: {app: x}}'
refuse no-matcher "a rule needs at least one of fields, detectors or patterns" "$sel
  rules: [{name: r, action: {type: redact}}]"
refuse tokenize-no-key "tokenize requires key" "$sel
  rules: [{name: r, detectors: [email], action: {type: tokenize}}]"
refuse replace-no-value "replace requires value" "$sel
  rules: [{name: r, detectors: [email], action: {type: replace}}]"
refuse replacement-not-redact "replacement applies only to type redact" "$sel
  rules: [{name: r, detectors: [email], action: {type: hash, key: k, replacement: x}}]"
refuse keep-on-redact "keepFirst and keepLast apply only to type mask and encrypt with mode ff1" "$sel
  rules: [{name: r, detectors: [credit_card], action: {type: redact, keepFirst: 4}}]"
refuse keep-too-many "keepFirst + keepLast must be at most 64" "$sel
  rules: [{name: r, detectors: [credit_card], action: {type: mask, keepFirst: 40, keepLast: 40}}]"
refuse exemption-unknown-rule "every rule named in spec.exemptions[].rules must be the name of a rule in spec.rules" "$sel
  rules: [{name: r, detectors: [email], action: {type: redact}}]
  exemptions: [{principals: [system:serviceaccount:x:y], rules: [nope]}]"
refuse header-twice "a header has at most one rule" "$sel
  rules: [{name: r, detectors: [email], action: {type: redact}}]
  headers: [{name: Authorization, action: {type: redact}}, {name: authorization, action: {type: redact}}]"
refuse port-name "a port name has at most 15 of a-z, 0-9 and '-'" "$sel
  port: web--api
  rules: [{name: r, detectors: [email], action: {type: redact}}]"
refuse ipblock-and-selector "ipBlock cannot be combined with a selector in one peer" "$sel
  rules: [{name: r, detectors: [email], action: {type: redact}}]
  network: {allowFrom: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}"
refuse in-without-values "values must be non-empty for In and NotIn" "  selector: {matchExpressions: [{key: app, operator: In}]}
  rules: [{name: r, detectors: [email], action: {type: redact}}]"
refuse port-range "should be less than or equal to 65535" "$sel
  port: 70000
  rules: [{name: r, detectors: [email], action: {type: redact}}]"
refuse bad-mode 'Unsupported value: "sometimes"' "$sel
  mode: sometimes
  rules: [{name: r, detectors: [email], action: {type: redact}}]"
refuse field-path "should match '^[\$]'" "$sel
  rules: [{name: r, fields: [payment.card], action: {type: redact}}]"
refuse no-rules "spec.rules needs at least one rule (or spec.defaultDeny)" "$sel"
r='  rules: [{name: r, detectors: [credit_card], action: {type: redact}}]'
refuse deny-empty "body or headers" "$sel
  defaultDeny: {}"
refuse exempt-deny-without-deny "or defaultDeny when the policy has one" "$sel
$r
  exemptions: [{principals: [spiffe://x], rules: [defaultDeny]}]"
refuse encrypt-no-version "encrypt requires key and keyVersion" "$sel
  rules: [{name: r, detectors: [credit_card], action: {type: encrypt, key: k, mode: ff1}}]"
refuse encrypt-mode-and-format "encrypt requires mode (ff1 or siv) or format (ff1), not both" "$sel
  rules: [{name: r, detectors: [credit_card], action: {type: encrypt, key: k, keyVersion: 1, mode: ff1, format: ff1}}]"
refuse luhn-on-mask "mode, format, luhn and surrogate apply only to type encrypt" "$sel
  rules: [{name: r, detectors: [credit_card], action: {type: mask, luhn: valid}}]"
refuse deny-encrypt-no-version "encrypt requires key and keyVersion" "$sel
  defaultDeny: {body: {action: {type: encrypt, key: k, mode: siv}}}"
refuse deny-headers-encrypt 'Unsupported value: "encrypt"' "$sel
$r
  defaultDeny: {headers: {names: [Content-Type], action: {type: encrypt, key: k}}}"
refuse reveal-unknown-rule "every rule named in spec.reveal[].rules must be the name of a rule in spec.rules" "$sel
$r
  reveal: [{principals: [spiffe://x], rules: [{rule: nope, clear: true}]}]"
refuse reveal-remove "remove cannot be granted" "$sel
$r
  reveal: [{principals: [spiffe://x], rules: [{rule: r, action: {type: remove}}]}]"
refuse reveal-action-and-clear "give either action or clear true" "$sel
$r
  reveal: [{principals: [spiffe://x], rules: [{rule: r, clear: true, action: {type: redact}}]}]"
refuse reveal-too-many "Too many: 17: must have at most 16 items" "$sel
$r
  reveal: [$(for i in $(seq 17); do printf '{principals: [spiffe://p%d], rules: [{rule: r, clear: true}]},' "$i"; done)]"
refuse headers-too-many "Too many: 129: must have at most 128 items" "$sel
$r
  headers: [$(for i in $(seq 129); do printf '{name: x-h%d, action: {type: redact}},' "$i"; done)]"
refuse stream-loop "outputTopic must not be one of the inputTopics" "$sel
$r
  streams: {bootstrapServers: kafka:9092, inputTopics: [a, b], outputTopic: b}"
refuse stream-dead-letter "onError dead-letter needs deadLetterTopic" "$sel
$r
  streams: {bootstrapServers: kafka:9092, inputTopics: [a], outputTopic: b, onError: dead-letter}"
refuse unlisted-types 'Unsupported value: "drop"' "$sel
  unlistedTypes: drop
$r"
refuse member-names-type "useMemberNames in body must be of type boolean" "$sel
  rules: [{name: r, detectors: [ssn], useMemberNames: sometimes, action: {type: redact}}]"
refuse grpc-no-key 'spec.grpc.descriptorSet.configMapKeyRef.key: Required value' "$sel
  rules: [{name: r, fields: [\$..ssn], action: {type: redact}}]
  grpc: {descriptorSet: {configMapKeyRef: {name: protos}}}"
refuse grpc-bad-key 'spec.grpc.descriptorSet.configMapKeyRef.key in body should match' "$sel
  rules: [{name: r, fields: [\$..ssn], action: {type: redact}}]
  grpc: {descriptorSet: {configMapKeyRef: {name: protos, key: a/b}}}"

# what lib/policy accepts the server stores: encrypt as the default deny of bodies
if out="$(k create --dry-run=server -f - 2>&1 <<EOF
apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {name: deny-encrypt, namespace: default}
spec:
$sel
  defaultDeny:
    body: {fields: [$.id], action: {type: encrypt, key: payments, keyVersion: 2, mode: ff1, keepLast: 4, tweak: {fromRule: true}}}
EOF
)"; then
    ok "defaultDeny.body with an encrypt action is accepted"
else
    bad "defaultDeny.body with an encrypt action refused: $out"
fi

explain="$(k explain mp.spec.rules 2>&1 || true)"
if grep -q "The masking rules, in order" <<<"$explain" && grep -q "detectors" <<<"$explain" &&
   grep -q "action" <<<"$explain"; then
    ok "kubectl explain mp.spec.rules reads the CRD's descriptions"
else
    bad "kubectl explain mp.spec.rules: $explain"
fi

# the examples, in namespace default (their own, shop, may not exist yet)
for f in examples/policies/*.yaml; do
    if out="$(sed 's/^\(  namespace:\).*/\1 default/' "$f" | k create --dry-run=server -f - 2>&1)"; then
        ok "example $f is accepted"
    else
        bad "example $f refused: $out"
    fi
done
