# e2e suite, part of run.sh: RBAC, failure of the webhook, leader election, upgrade, helm test
# and uninstall, on the real API server.
# shellcheck shell=bash

say "the controller runs with the chart's RBAC only"
csa="$(k -n "$NS" get deploy -l app.kubernetes.io/component=controller -o jsonpath='{.items[0].spec.template.spec.serviceAccountName}')"
as="system:serviceaccount:$NS:$csa"
check "the controller's service account ($csa) is not cluster-admin (can-i '*' '*': no)" \
    bash -c "! $KUBECTL auth can-i '*' '*' --as=$as >/dev/null 2>&1"
check "it cannot read Secrets" bash -c "! $KUBECTL auth can-i get secrets -n $APP_NS --as=$as >/dev/null 2>&1"
check "it can create NetworkPolicies (the chart's ClusterRole)" \
    bash -c "$KUBECTL auth can-i create networkpolicies -n $APP_NS --as=$as >/dev/null 2>&1"
role="$(k get clusterrole -l app.kubernetes.io/instance=$REL,app.kubernetes.io/component=controller -o name | head -1)"
saved="$(mktemp)"
k get "$role" -o json >"$saved"
# the chart's role without its NetworkPolicy rule: a new policy cannot be rendered
python3 - "$saved" <<'PY' | k replace -f - >/dev/null
import json, sys
role = json.load(open(sys.argv[1]))
role["rules"] = [r for r in role["rules"] if "networkpolicies" not in r.get("resources", [])]
for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
    role["metadata"].pop(k, None)
print(json.dumps(role))
PY
cat <<YAML | k apply -f - >/dev/null
apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {name: shop-rbac, namespace: $APP_NS}
spec:
  selector: {matchLabels: {app: shop-rbac}}
  rules: [{name: email, detectors: [email], action: {type: redact}}]
YAML
not_ready_403() {
    local c
    c="$(k -n "$APP_NS" get mp shop-rbac -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}{.status} {.reason} {.message}{end}')"
    [[ "$c" == False* ]] && grep -q 403 <<<"$c" && echo "    Ready: $c"
}
check "without the permission the policy is Ready=False with the 403" eventually 90 not_ready_403
event_403() {
    k -n "$APP_NS" get events --field-selector involvedObject.name=shop-rbac -o jsonpath='{range .items[*]}{.reason}: {.message}{"\n"}{end}' |
        grep -E '403|[Ff]orbidden' | head -1 | grep .
}
check "and an Event on it says so" eventually 60 event_403
python3 - "$saved" <<'PY' | k replace -f - >/dev/null
import json, sys
role = json.load(open(sys.argv[1]))
for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
    role["metadata"].pop(k, None)
print(json.dumps(role))
PY
rm -f "$saved"
ready_true() { [ "$(k -n "$APP_NS" get mp shop-rbac -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
check "with the permission back the policy becomes Ready" eventually 120 ready_true
k -n "$APP_NS" delete mp shop-rbac >/dev/null

say "the webhook down: an opted-in pod is refused, a kube-system pod is not"
wh="$(k -n "$NS" get deploy -l app.kubernetes.io/component=webhook -o name | head -1)"
replicas="$(k -n "$NS" get "$wh" -o jsonpath='{.spec.replicas}')"
k -n "$NS" scale "$wh" --replicas=0 >/dev/null
k -n "$NS" wait --for=delete pod -l app.kubernetes.io/component=webhook --timeout=90s >/dev/null 2>&1 || true
probe_pod() {  # probe_pod NS NAME: create a small opted-in pod, print the API server's answer
    cat <<YAML | k create -f - 2>&1
apiVersion: v1
kind: Pod
metadata: {name: $2, namespace: $1, labels: {maskmesh.io/inject: "true"}}
spec:
  containers: [{name: c, image: $CLIENT_IMAGE, imagePullPolicy: $PULL, command: [/bin/sleep, "60"]}]
YAML
}
out="$(probe_pod "$APP_NS" down-probe || true)"
if grep -q "failed calling webhook" <<<"$out"; then
    ok "an opted-in pod is refused: $(grep -o 'failed calling webhook[^:]*' <<<"$out" | head -1)"
else
    bad "an opted-in pod was not refused while the webhook is down: $out"
    k -n "$APP_NS" delete pod down-probe --ignore-not-found >/dev/null
fi
out="$(probe_pod kube-system down-probe || true)"
grep -q "created" <<<"$out" && ok "a kube-system pod is admitted ($out)" || bad "a kube-system pod was refused: $out"
k -n kube-system delete pod down-probe --ignore-not-found --wait=false >/dev/null
k -n "$NS" scale "$wh" --replicas="$replicas" >/dev/null
check "the webhook is back" k -n "$NS" rollout status "$wh" --timeout=120s

say "two controller replicas: the Lease moves when the leader is killed"
lease=maskmesh-controller-leader
holder() { k -n "$NS" get lease "$lease" -o jsonpath='{.spec.holderIdentity}'; }
leader="$(holder || true)"
if [ -z "$leader" ]; then
    bad "no holder in Lease $NS/$lease"
else
    ok "Lease $lease is held by $leader"
    lpod="$(k -n "$NS" get pod -l app.kubernetes.io/component=controller -o name | sed 's|pod/||' | grep -F "${leader%%_*}" | head -1 || true)"
    [ -n "$lpod" ] || lpod="$leader"
    k -n "$NS" delete pod "$lpod" --grace-period=0 --force >/dev/null 2>&1 || true
    moved() { local h; h="$(holder)"; [ -n "$h" ] && [ "$h" != "$leader" ] && echo "    new holder: $h"; }
    check "another replica took the Lease over after $lpod was killed" eventually 90 moved
fi

say "helm upgrade keeps the webhook's certificate; helm test"
cert() { k -n "$NS" get secret -l app.kubernetes.io/instance=$REL -o jsonpath='{.items[?(@.type=="kubernetes.io/tls")].data.tls\.crt}'; }
c1="$(cert)"
helm_ upgrade "$REL" charts/maskmesh --namespace "$NS" --reuse-values --wait --timeout 300s >/dev/null
c2="$(cert)"
[ -n "$c1" ] && [ "$c1" = "$c2" ] && ok "the certificate is the same after helm upgrade" || bad "the certificate changed on upgrade"
check "helm test passes (the webhook's /healthz over TLS through its Service name)" \
    helm_ test "$REL" --namespace "$NS" --timeout 180s

if [ "${E2E_KEEP:-0}" = 1 ]; then echo "E2E_KEEP=1: everything stays installed"; return 0 2>/dev/null || exit 0; fi
say "helm uninstall leaves nothing of maskmesh"
k delete namespace "$APP_NS" --wait=true --timeout=180s >/dev/null
helm_ uninstall "$REL" --namespace "$NS" --wait --timeout 180s >/dev/null
k delete crd maskingpolicies.maskmesh.io --ignore-not-found --wait=true --timeout=90s >/dev/null
# helm --wait waits for the Deployments; their pods go after the garbage collector and their
# graceful shutdown
k -n "$NS" wait --for=delete pod -l "app.kubernetes.io/instance=$REL" --timeout=120s >/dev/null 2>&1 || true
left="$(k get mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings,crd -o name | grep -i maskmesh || true)"
# The controller's leader-election Lease is no chart object: the controller writes it at run
# time (as client-go's leader election does) and it stays in the release's namespace until
# that goes; the namespace's deletion below must take it.
left+="$(k -n "$NS" get all,secrets,configmaps,leases,serviceaccounts,roles,rolebindings -o name 2>/dev/null |
        grep -v -e kube-root-ca -e 'serviceaccount/default$' -e "lease.coordination.k8s.io/$lease\$" || true)"
[ -z "$left" ] && ok "nothing of the chart is left after helm uninstall" || bad "left behind: $left"
k -n "$NS" get lease "$lease" -o name >/dev/null 2>&1 && echo "    (the controller's Lease $lease stays until its namespace goes)"
k delete namespace "$NS" --ignore-not-found --wait=true --timeout=120s >/dev/null
ns_gone() { ! k get namespace "$NS" >/dev/null 2>&1; }
check "the namespace $NS, and with it the Lease, is gone" eventually 60 ns_gone
