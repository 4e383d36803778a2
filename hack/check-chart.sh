#!/usr/bin/env bash
# Checks everything maskmesh installs with, offline (helm, kubectl, python3 stdlib, openssl):
#   * the CRD: parses, is structural, bounded, described, has the CEL rules (hack/check-crd.py),
#     and the chart's copy is identical (hack/sync-crds.sh --check);
#   * the chart: helm lint --strict, with the default values and with non-default ones;
#     helm template of several value sets, each checked object by object
#     (hack/check-rendered.py: kinds and names, RBAC verbs, webhook fields and opt-in logic,
#     port wiring, caBundle, hardened security contexts, images, monitoring, tests);
#     bad values are refused (values.schema.json, required caBundle);
#   * manifests/: kubectl kustomize of the base, the cert-manager overlay and the overlay
#     hack/gen-certs.sh writes, checked the same way;
#   * image names: the chart's and manifests/' defaults are those of hack/images.env;
#   * the examples: every examples/policies/*.yaml is a MaskingPolicy the CRD accepts in shape;
#   * when bin/maskmesh-webhook is built: the real webhook, started with a rendered Deployment's
#     arguments, sidecar configuration and certificate, answers its probes and every webhook
#     path over TLS verified as the API server verifies it (hack/check-webhook-live.py).
# Ends with `N passed, N failed`; exits 1 on any failure.
# YAML is turned into JSON by `kubectl annotate --local -o json` (no cluster needed).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# run a python checker, show its failures, add its counts
py() {
    local out last p f
    out="$("$@" 2>&1)"
    last="$(printf '%s\n' "$out" | tail -n1)"
    printf '%s\n' "$out" | grep -E '^(FAIL|--|Traceback|  )' || true
    if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        p="${BASH_REMATCH[1]}"; f="${BASH_REMATCH[2]}"
        pass=$((pass + p)); fail=$((fail + f))
        echo "   $last"
    else
        printf '%s\n' "$out" | tail -n 20
        bad "$* did not finish"
    fi
}
to_json() { kubectl annotate --local -o json -f - maskmesh.io/check-; }

for tool in kubectl python3 openssl; do
    command -v "$tool" >/dev/null || { echo "check-chart: $tool is required" >&2; exit 1; }
done
helm="$(hack/install-helm.sh)" || { echo "check-chart: cannot install helm" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chart=charts/maskmesh

# ---- image names, from the one place that names them ----
set -a; . hack/images.env; set +a
img() { echo "$REGISTRY/$1:$TAG"; }
workload_images="$(img "$CONTROLLER_IMAGE"),$(img "$WEBHOOK_IMAGE")"
proxy_image="$(img "$PROXY_IMAGE")"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' $chart/Chart.yaml)"
[ "$app_version" = "$TAG" ] && ok || bad "Chart.yaml appVersion $app_version is not hack/images.env's TAG $TAG"
for name in "$CONTROLLER_IMAGE" "$WEBHOOK_IMAGE" "$PROXY_IMAGE" "$STREAM_IMAGE" "$MASKCTL_IMAGE"; do
    grep -q "^FROM .* AS $name\$" Dockerfile && ok || bad "Dockerfile has no target $name"
done
grep -q "^  registry: $REGISTRY\$" $chart/values.yaml && ok || bad "values.yaml image.registry is not $REGISTRY"
for want in "$(img "$CONTROLLER_IMAGE")" "$(img "$WEBHOOK_IMAGE")" "$proxy_image"; do
    grep -rq "$want" manifests/base && ok || bad "manifests/base does not use $want"
done
[ "$(hack/build-images.sh --list | tr '\n' ' ')" = "$(img "$CONTROLLER_IMAGE") $(img "$WEBHOOK_IMAGE") $proxy_image $(img "$STREAM_IMAGE") $(img "$MASKCTL_IMAGE") " ] \
    && ok || bad "hack/build-images.sh --list does not print hack/images.env's references"

# ---- the CRD ----
echo "== CRD"
if hack/sync-crds.sh --check >/dev/null; then ok; else bad "charts/maskmesh/crds/ differs from crds/ (run hack/sync-crds.sh)"; fi
if to_json <crds/maskmesh.io_maskingpolicies.yaml >"$tmp/crd.json"; then
    ok
    py python3 hack/check-crd.py "$tmp/crd.json"
else
    bad "crds/maskmesh.io_maskingpolicies.yaml does not parse"
fi

# ---- the chart ----
echo "== helm lint"
lint() {
    if "$helm" lint --strict "$chart" "$@" >"$tmp/lint.out" 2>&1; then ok; else
        cat "$tmp/lint.out"; bad "helm lint --strict $*"; fi
}
lint
lint --set certificates.mode=cert-manager --set sidecar.injectionMode=iptables --set sidecar.nativeSidecar=true \
     --set webhook.port=10250 --set 'controller.watchNamespaces={shop,payments}' --set networkPolicy.enabled=true \
     --set crds.templated=true
lint --set certificates.mode=external --set certificates.external.caBundle=LS0tLS1CRUdJTg==

render() { # render LABEL -- helm args -- check args
    local label="$1"; shift
    local hargs=() cargs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do hargs+=("$1"); shift; done
    shift
    cargs=("$@")
    echo "== helm template: $label"
    if "$helm" template mm "$chart" "${hargs[@]}" >"$tmp/r.yaml" 2>"$tmp/r.err" && to_json <"$tmp/r.yaml" >"$tmp/r.json"; then
        ok
        py python3 hack/check-rendered.py --label "$label" --helm-test --images "$workload_images" "${cargs[@]}" <"$tmp/r.json"
        cp "$tmp/r.json" "$tmp/last.json"
    else
        cat "$tmp/r.err"; bad "helm template ($label) failed"
    fi
}
render "default values" -n maskmesh --include-crds -- \
    --crd --topology-spread --sidecar-image "$proxy_image"
# the real webhook with this rendering: the chart's own generated certificate
review="$root/tests/k8s-samples/admissionreview-pod-create.json"
[ -f "$review" ] || review=""
live() { # live LABEL OBJECTS.json CERTDIR
    if [ ! -x bin/maskmesh-webhook ]; then
        echo "   (bin/maskmesh-webhook is not built: the live webhook check of $1 did not run)"
        return
    fi
    to_json <examples/policies/shop-cards.yaml >"$tmp/policy.json"
    py python3 hack/check-webhook-live.py --label "$1" --bin bin/maskmesh-webhook --objects "$2" \
        --cert "$3/tls.crt" --key "$3/tls.key" --ca "$3/ca.crt" ${review:+--review "$review"} --policy "$tmp/policy.json"
}
python3 - "$tmp/last.json" "$tmp/helmcert" <<'PY' && ok || bad "no Secret in the default rendering"
import base64, os, sys
sys.path.insert(0, "tests/pylib")
from mmcheck import load
objs = load(open(sys.argv[1]).read())
secret = [o for o in objs if o["kind"] == "Secret"][0]
os.makedirs(sys.argv[2], exist_ok=True)
for k in ("tls.crt", "tls.key", "ca.crt"):
    open(os.path.join(sys.argv[2], k), "wb").write(base64.b64decode(secret["data"][k]))
PY
live "live webhook: default values, chart-made certificate" "$tmp/last.json" "$tmp/helmcert"
render "cert-manager, iptables, native sidecar, port 10250, two namespaces, monitoring, NetworkPolicies, templated CRD" \
    -n mm-system --set certificates.mode=cert-manager --set sidecar.injectionMode=iptables \
    --set sidecar.nativeSidecar=true --set webhook.port=10250 --set 'controller.watchNamespaces={shop,payments}' \
    --api-versions monitoring.coreos.com/v1 --set networkPolicy.enabled=true --set crds.templated=true -- \
    --namespace mm-system --cert-mode cert-manager --injection-mode iptables --native --webhook-port 10250 \
    --watch shop,payments --monitoring --network-policy --crd --crd-keep --topology-spread
hack/gen-certs.sh --namespace mm-system --out "$tmp/mmcert" >/dev/null 2>&1 || bad "hack/gen-certs.sh --namespace mm-system failed"
live "live webhook: iptables, native sidecar, port 10250, gen-certs certificate" "$tmp/last.json" "$tmp/mmcert"
hack/gen-certs.sh --out "$tmp/ext" >/dev/null 2>&1 || bad "hack/gen-certs.sh --out failed"
ext_ca="$(base64 -w0 "$tmp/ext/ca.crt" 2>/dev/null)"
render "external certificates, monitoring off, own registry and tag, Service port 8443" \
    -n maskmesh --set certificates.mode=external --set certificates.external.caBundle="$ext_ca" \
    --set monitoring.serviceMonitor.enabled=false --api-versions monitoring.coreos.com/v1 \
    --set image.registry=registry.local/mm --set image.tag=dev --set webhook.service.port=8443 -- \
    --cert-mode external --ca-bundle "$ext_ca" --service-port 8443 \
    --images "registry.local/mm/$CONTROLLER_IMAGE:dev,registry.local/mm/$WEBHOOK_IMAGE:dev" \
    --sidecar-image "registry.local/mm/$PROXY_IMAGE:dev"
render "cert-manager with an existing ClusterIssuer, no spread constraints" \
    -n maskmesh --set certificates.mode=cert-manager --set certificates.certManager.issuerRef.name=corp-ca \
    --set certificates.certManager.issuerRef.kind=ClusterIssuer --set-json 'webhook.topologySpreadConstraints=[]' -- \
    --cert-mode cert-manager

# what must be refused
refuse() { # refuse WHAT -- helm args
    local what="$1"; shift; shift
    if "$helm" template mm "$chart" -n maskmesh "$@" >/dev/null 2>&1; then bad "helm template accepted $what"; else ok; fi
}
refuse "an unknown injection mode" -- --set sidecar.injectionMode=ebpf
refuse "an unknown certificate mode" -- --set certificates.mode=selfsigned
refuse "external certificates without a caBundle" -- --set certificates.mode=external
refuse "a webhook port out of range" -- --set webhook.port=70000
refuse "an unknown value" -- --set webhook.failurePolicy=Ignore

# the webhook's sidecar configuration is one the webhook accepts: only its keys, with a
# nested resources map and no empty values
"$helm" template mm "$chart" -n maskmesh --set sidecar.resources.limits.memory= --set sidecar.resources.requests.cpu= \
    --show-only templates/webhook-configmap.yaml >"$tmp/cm.yaml" 2>&1
if grep -q '^    resources:' "$tmp/cm.yaml" && ! grep -Eq ':[[:space:]]*(""|)$' <(sed -n '/sidecar.yaml/,$p' "$tmp/cm.yaml" | grep -v 'sidecar.yaml\|resources:\|requests:\|limits:'); then
    ok
else
    cat "$tmp/cm.yaml"; bad "sidecar configuration with some resources unset renders empty values"
fi

# ---- manifests/ ----
echo "== kubectl kustomize manifests/"
kust() { # kust LABEL DIR -- check args
    local label="$1" dir="$2"; shift 3
    if kubectl kustomize "$dir" >"$tmp/k.yaml" 2>"$tmp/k.err" && to_json <"$tmp/k.yaml" >"$tmp/k.json"; then
        ok
        py python3 hack/check-rendered.py --label "$label" --images "$workload_images" --crd "$@" <"$tmp/k.json"
    else
        cat "$tmp/k.err"; bad "kubectl kustomize $dir failed"
    fi
}
kust "manifests/ (kubectl apply -k manifests/)" manifests -- --cert-mode none --topology-spread --sidecar-image "$proxy_image"
kust "manifests/cert-manager" manifests/cert-manager -- --cert-mode cert-manager
hack/gen-certs.sh --out "$tmp/local" >/dev/null 2>&1 || bad "hack/gen-certs.sh failed"
kust "hack/gen-certs.sh overlay" "$tmp/local" -- --cert-mode helm
# gen-certs keeps a valid pair, and --force replaces it
before="$(openssl x509 -in "$tmp/local/tls.crt" -noout -fingerprint 2>/dev/null)"
hack/gen-certs.sh --out "$tmp/local" >/dev/null 2>&1
[ "$(openssl x509 -in "$tmp/local/tls.crt" -noout -fingerprint)" = "$before" ] && ok || bad "gen-certs replaced a valid certificate"
hack/gen-certs.sh --out "$tmp/local" --force >/dev/null 2>&1
[ "$(openssl x509 -in "$tmp/local/tls.crt" -noout -fingerprint)" != "$before" ] && ok || bad "gen-certs --force kept the old certificate"
[ "$(stat -c %a "$tmp/local/tls.key")" = 600 ] && ok || bad "gen-certs: tls.key is not mode 0600"

# ---- examples ----
echo "== examples"
for f in examples/policies/*.yaml; do
    [ -e "$f" ] || { bad "no examples/policies/*.yaml"; break; }
    if to_json <"$f" >"$tmp/ex.json"; then
        py python3 hack/check-crd.py --objects "$tmp/crd.json" "$tmp/ex.json"
    else
        bad "$f does not parse"
    fi
done
for f in examples/app/response.json examples/app/response.masked.json; do
    python3 -m json.tool "$f" >/dev/null 2>&1 && ok || bad "$f is not valid JSON"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
