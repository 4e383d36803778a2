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
refuse keep-on-redact "keepFirst, keepLast, char and preserveFormat apply only to type mask" "$sel
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
refuse no-rules "spec.rules: Required value" "$sel"

explain="$(k explain mp.spec.rules 2>&1 || true)"
if grep -q "The masking rules, in order" <<<"$explain" && grep -q "detectors" <<<"$explain" &&
   grep -q "action" <<<"$explain"; then
    ok "kubectl explain mp.spec.rules reads the CRD's descriptions"
else
    bad "kubectl explain mp.spec.rules: $explain"
fi
