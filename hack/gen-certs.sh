#!/usr/bin/env bash
# Generates the webhook's serving certificate with openssl: a CA, and a certificate for
# <service>.<namespace>.svc signed by it. Writes, in --out:
#   ca.crt ca.key tls.crt tls.key      PEM files (keys mode 0600)
#   secret.yaml                        the Secret <secret> (type kubernetes.io/tls, plus ca.crt)
#   kustomization.yaml                 an overlay of manifests/ that adds the Secret and puts
#                                      the CA into every webhook's clientConfig.caBundle
# Then either `kubectl apply -k <out>` (a fresh install), or --apply, which applies the Secret
# to the current kubectl context and patches caBundle into the live webhook configurations
# (an existing install, e.g. after rotating).
#
# Idempotent: a CA and certificate already in --out are kept while they are valid for more
# than --renew-days and name the same service; --force makes new ones.
#
# Usage: hack/gen-certs.sh [--namespace maskmesh] [--service maskmesh-webhook]
#          [--secret maskmesh-webhook-tls] [--out .tools/webhook-certs] [--days 730]
#          [--renew-days 30] [--mutating maskmesh-injector] [--validating maskmesh-validator]
#          [--force] [--apply]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ns=maskmesh
svc=maskmesh-webhook
secret=maskmesh-webhook-tls
out="$root/.tools/webhook-certs"
days=730
renew_days=30
mutating=maskmesh-injector
validating=maskmesh-validator
force=0
apply=0

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
need_arg() { [ $# -ge 2 ] || { echo "gen-certs: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --namespace) need_arg "$@"; ns="$2"; shift 2 ;;
        --service) need_arg "$@"; svc="$2"; shift 2 ;;
        --secret) need_arg "$@"; secret="$2"; shift 2 ;;
        --out) need_arg "$@"; out="$2"; shift 2 ;;
        --days) need_arg "$@"; days="$2"; shift 2 ;;
        --renew-days) need_arg "$@"; renew_days="$2"; shift 2 ;;
        --mutating) need_arg "$@"; mutating="$2"; shift 2 ;;
        --validating) need_arg "$@"; validating="$2"; shift 2 ;;
        --force) force=1; shift ;;
        --apply) apply=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gen-certs: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$days$renew_days" in *[!0-9]*) echo "gen-certs: --days and --renew-days take whole numbers" >&2; exit 2 ;; esac
[ "$days" -gt "$renew_days" ] || { echo "gen-certs: --days must exceed --renew-days" >&2; exit 2; }
command -v openssl >/dev/null || { echo "gen-certs: openssl is required (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$out"
out="$(cd "$out" && pwd)"
fqdn="$svc.$ns.svc"
sans="DNS:$svc,DNS:$svc.$ns,DNS:$fqdn,DNS:$fqdn.cluster.local"

# Is the pair in $out still good: valid past the renewal window, for this service, from this CA?
still_good() {
    [ -s "$out/ca.crt" ] && [ -s "$out/ca.key" ] && [ -s "$out/tls.crt" ] && [ -s "$out/tls.key" ] || return 1
    local window=$((renew_days * 86400))
    openssl x509 -in "$out/ca.crt" -noout -checkend "$window" >/dev/null 2>&1 || return 1
    openssl x509 -in "$out/tls.crt" -noout -checkend "$window" >/dev/null 2>&1 || return 1
    openssl verify -CAfile "$out/ca.crt" "$out/tls.crt" >/dev/null 2>&1 || return 1
    openssl x509 -in "$out/tls.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:$fqdn\(,\|$\)" || return 1
    # the key must belong to the certificate
    [ "$(openssl x509 -in "$out/tls.crt" -noout -pubkey | openssl sha256)" = \
      "$(openssl pkey -in "$out/tls.key" -pubout | openssl sha256)" ]
}

if [ "$force" -eq 1 ] || ! still_good; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    umask 077
    openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days "$days" \
        -subj "/O=maskmesh/CN=maskmesh-webhook-ca" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$tmp/ca.crt"
    openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/tls.key" 2>/dev/null
    openssl req -new -key "$tmp/tls.key" -subj "/O=maskmesh/CN=$fqdn" -out "$tmp/tls.csr"
    cat >"$tmp/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$sans
authorityKeyIdentifier=keyid
EOF
    openssl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
        -days "$days" -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/tls.crt" 2>/dev/null
    openssl verify -CAfile "$tmp/ca.crt" "$tmp/tls.crt" >/dev/null
    for f in ca.key tls.key; do install -m 0600 "$tmp/$f" "$out/$f"; done
    for f in ca.crt tls.crt; do install -m 0644 "$tmp/$f" "$out/$f"; done
    echo "gen-certs: new CA and certificate for $fqdn in $out (valid $days days)" >&2
else
    echo "gen-certs: keeping the valid certificate for $fqdn in $out" >&2
fi

b64() { base64 -w0 <"$1"; }
ca_b64="$(b64 "$out/ca.crt")"

umask 077
cat >"$out/secret.yaml" <<EOF
# Generated by hack/gen-certs.sh: the webhook's serving certificate. Holds a private key:
# never commit it.
apiVersion: v1
kind: Secret
metadata:
  name: $secret
  namespace: $ns
  labels:
    app.kubernetes.io/name: maskmesh-webhook
    app.kubernetes.io/part-of: maskmesh
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$out/tls.crt")
  tls.key: $(b64 "$out/tls.key")
  ca.crt: $ca_b64
EOF

base_rel="$(python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$root/manifests" "$out")"
umask 022
cat >"$out/kustomization.yaml" <<EOF
# Generated by hack/gen-certs.sh: manifests/ plus the serving certificate and the caBundles.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $base_rel
  - secret.yaml
patches:
  - target:
      group: admissionregistration.k8s.io
      version: v1
      kind: MutatingWebhookConfiguration
      name: $mutating
    patch: |-
      - op: add
        path: /webhooks/0/clientConfig/caBundle
        value: $ca_b64
      - op: add
        path: /webhooks/1/clientConfig/caBundle
        value: $ca_b64
  - target:
      group: admissionregistration.k8s.io
      version: v1
      kind: ValidatingWebhookConfiguration
      name: $validating
    patch: |-
      - op: add
        path: /webhooks/0/clientConfig/caBundle
        value: $ca_b64
EOF
echo "gen-certs: wrote $out/secret.yaml and $out/kustomization.yaml (kubectl apply -k $out)" >&2

if [ "$apply" -eq 1 ]; then
    command -v kubectl >/dev/null || { echo "gen-certs: --apply needs kubectl" >&2; exit 1; }
    kubectl apply -f "$out/secret.yaml"
    for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
        name="$mutating"
        [ "$kind" = validatingwebhookconfiguration ] && name="$validating"
        n="$(kubectl get "$kind" "$name" -o jsonpath='{range .webhooks[*]}{.name}{"\n"}{end}' | grep -c . || true)"
        [ "$n" -gt 0 ] || { echo "gen-certs: $kind $name has no webhooks (is maskmesh installed?)" >&2; exit 1; }
        ops=""
        for ((i = 0; i < n; i++)); do
            ops="$ops${ops:+,}{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$ca_b64\"}"
        done
        kubectl patch "$kind" "$name" --type=json -p "[$ops]"
    done
fi
