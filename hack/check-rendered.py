#!/usr/bin/env python3
"""Checks maskmesh's rendered install objects (python3 stdlib only).

Input on stdin: the objects as JSON, concatenated (what
`kubectl annotate --local -o json -f - maskmesh.io/check-` prints for `helm template` or
`kubectl kustomize` output). The flags say what this rendering was asked to produce; every
check compares the objects with the contract of docs/webhook.md and docs/policy.md and the chart's promises:

  kinds and names; RBAC verbs exactly as designed (controller: policies read, status write,
  ConfigMaps/NetworkPolicies owned, Events created, its Lease; webhook: list services, or nothing); webhook
  configurations (failurePolicy Fail, sideEffects None, timeouts, namespaceSelector excluding
  kube-system and the release namespace, objectSelectors that give "pod label OR namespace
  label opts in, pod label false opts out" with every pod matched by at most one entry,
  Service and port wiring, caBundle); hardened security contexts; the sidecar configuration;
  images; certificates; monitoring; NetworkPolicies; the helm test pod.

Prints FAIL lines and `N passed, N failed` last; exit 1 on any failure.
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pylib"))
from mmcheck import check, load, selector_matches, summary  # noqa: E402


def rules_map(rules):
    """{(apiGroup, resource): set(verbs)} of a Role/ClusterRole."""
    out = {}
    for r in rules or []:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                out.setdefault((g, res), set()).update(r.get("verbs", []))
    return out


CONTROLLER_RULES = {
    ("maskmesh.io", "maskingpolicies"): {"get", "list", "watch"},
    ("maskmesh.io", "maskingpolicies/status"): {"update", "patch"},
    ("", "configmaps"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    # the maskmesh-stream Deployments of policies with spec.streams (stream.enabled)
    ("apps", "deployments"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    # their pods' addresses, for the lag in status.stream (read from the pods' metrics)
    ("", "pods"): {"list"},
}
LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
# the webhook's one read, with webhook.serviceAppProtocol (docs/http2.md): Services' appProtocol
WEBHOOK_RULES = {("", "services"): {"list"}}


def pod_spec(obj):
    if obj["kind"] == "Pod":
        return obj.get("spec", {})
    return obj.get("spec", {}).get("template", {}).get("spec", {})


def check_hardened(obj):
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    spec = pod_spec(obj)
    psc = spec.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
    check(not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"),
          f"{where}: no host namespaces")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})
        check(sc.get("allowPrivilegeEscalation") is False, f"{cw}: allowPrivilegeEscalation false")
        check(sc.get("readOnlyRootFilesystem") is True, f"{cw}: readOnlyRootFilesystem")
        check(not sc.get("privileged"), f"{cw}: not privileged")
        check("ALL" in (sc.get("capabilities", {}).get("drop") or []), f"{cw}: drops ALL capabilities")
        check(not (sc.get("capabilities", {}).get("add")), f"{cw}: adds no capability")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        check(seccomp == "RuntimeDefault", f"{cw}: seccomp RuntimeDefault")
        check(sc.get("runAsNonRoot") is not False and sc.get("runAsUser", psc.get("runAsUser", 1)) != 0,
              f"{cw}: not root")
        check(bool(c.get("resources", {}).get("requests")), f"{cw}: resource requests")
        check(bool(c.get("resources", {}).get("limits", {}).get("memory")), f"{cw}: memory limit")


def openssl_ok(secret, dns):
    """tls.crt is signed by ca.crt, names `dns`, and matches tls.key."""
    data = secret.get("data", {})
    with tempfile.TemporaryDirectory() as d:
        for k in ("ca.crt", "tls.crt", "tls.key"):
            with open(os.path.join(d, k), "wb") as f:
                f.write(base64.b64decode(data.get(k, "")))
        v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "ca.crt"), os.path.join(d, "tls.crt")],
                           capture_output=True, text=True)
        check(v.returncode == 0, f"Secret {secret['metadata']['name']}: tls.crt verifies against ca.crt ({v.stderr.strip()})")
        t = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "tls.crt"), "-noout", "-text"],
                           capture_output=True, text=True)
        check(f"DNS:{dns}" in t.stdout, f"Secret {secret['metadata']['name']}: certificate names {dns}")
        a = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "tls.crt"), "-noout", "-pubkey"],
                           capture_output=True, text=True).stdout
        b = subprocess.run(["openssl", "pkey", "-in", os.path.join(d, "tls.key"), "-pubout"],
                           capture_output=True, text=True).stdout
        check(a and a == b, f"Secret {secret['metadata']['name']}: tls.key belongs to tls.crt")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", default="render")
    ap.add_argument("--namespace", default="maskmesh")
    ap.add_argument("--prefix", default="maskmesh")
    ap.add_argument("--cert-mode", choices=["helm", "cert-manager", "external", "none"], default="helm")
    ap.add_argument("--ca-bundle", default="", help="external mode: the caBundle expected")
    ap.add_argument("--webhook-port", type=int, default=8443)
    ap.add_argument("--service-port", type=int, default=443)
    ap.add_argument("--watch", default="", help="comma-separated watched namespaces")
    ap.add_argument("--injection-mode", default="named-port")
    ap.add_argument("--native", action="store_true")
    ap.add_argument("--monitoring", action="store_true")
    ap.add_argument("--network-policy", action="store_true")
    ap.add_argument("--helm-test", action="store_true")
    ap.add_argument("--crd", action="store_true", help="the CRD must be among the objects")
    ap.add_argument("--crd-keep", action="store_true", help="the CRD must carry helm.sh/resource-policy: keep")
    ap.add_argument("--images", default="", help="registry/name:tag,... every workload image must be one")
    ap.add_argument("--sidecar-image", default="")
    ap.add_argument("--topology-spread", action="store_true")
    a = ap.parse_args()

    objs = [o for o in load(sys.stdin.read(), flatten_lists=True) if isinstance(o, dict)]
    ns, p = a.namespace, a.prefix
    watch = [w for w in a.watch.split(",") if w]
    by = {}
    for o in objs:
        by.setdefault((o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]), o)

    def get(kind, name, namespace=None):
        return by.get((kind, ns if namespace is None else namespace, name))

    print(f"-- {a.label}: {len(objs)} objects")
    # ---- kinds and names ----
    want = [("ServiceAccount", ns, f"{p}-controller"), ("ServiceAccount", ns, f"{p}-webhook"),
            ("Deployment", ns, f"{p}-controller"), ("Deployment", ns, f"{p}-webhook"),
            ("Service", ns, f"{p}-webhook"), ("ConfigMap", ns, f"{p}-webhook-config"),
            ("PodDisruptionBudget", ns, f"{p}-webhook"),
            ("MutatingWebhookConfiguration", "", f"{p}-injector"),
            ("ValidatingWebhookConfiguration", "", f"{p}-validator"),
            ("Role", ns, f"{p}-controller-leader-election"), ("RoleBinding", ns, f"{p}-controller-leader-election")]
    if watch:
        for w in watch:
            want += [("Role", w, f"{p}-controller"), ("RoleBinding", w, f"{p}-controller")]
    else:
        want += [("ClusterRole", "", f"{p}-controller"), ("ClusterRoleBinding", "", f"{p}-controller")]
    if a.cert_mode == "helm":
        want.append(("Secret", ns, f"{p}-webhook-tls"))
    if a.cert_mode == "cert-manager":
        want.append(("Certificate", ns, f"{p}-webhook"))
    if a.crd:
        want.append(("CustomResourceDefinition", "", "maskingpolicies.maskmesh.io"))
    for k in want:
        check(k in by, f"{k[0]} {k[1] + '/' if k[1] else ''}{k[2]} is rendered")
    check(not any(k[0] == "ClusterRole" for k in by) or not watch, "no ClusterRole when namespaces are listed")
    check(sum(1 for k in by if k[0] == "Secret") == (1 if a.cert_mode == "helm" else 0),
          "a Secret is rendered exactly when the chart makes the certificate")
    sm = [k for k in by if k[0] == "ServiceMonitor"]
    check(len(sm) == (2 if a.monitoring else 0), f"{len(sm)} ServiceMonitors, want {2 if a.monitoring else 0}")
    nps = [k for k in by if k[0] == "NetworkPolicy"]
    check(bool(nps) == a.network_policy, "NetworkPolicies rendered exactly when enabled")
    if a.crd_keep:
        crd = get("CustomResourceDefinition", "maskingpolicies.maskmesh.io", "") or {}
        check((crd.get("metadata", {}).get("annotations") or {}).get("helm.sh/resource-policy") == "keep",
              "the templated CRD is kept on uninstall")
        check(crd.get("spec", {}).get("names", {}).get("shortNames") == ["mp"], "the templated CRD is the real one")

    # ---- RBAC ----
    sa_ctl = {"kind": "ServiceAccount", "name": f"{p}-controller", "namespace": ns}
    if watch:
        for w in watch:
            r = get("Role", f"{p}-controller", w)
            if r:
                check(rules_map(r.get("rules")) == CONTROLLER_RULES, f"Role {w}/{p}-controller: verbs exactly as designed")
            rb = get("RoleBinding", f"{p}-controller", w)
            if rb:
                check(rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{p}-controller"}
                      and rb.get("subjects") == [sa_ctl], f"RoleBinding {w}/{p}-controller binds the controller only")
    else:
        cr = get("ClusterRole", f"{p}-controller", "")
        if cr:
            got = rules_map(cr.get("rules"))
            check(got == CONTROLLER_RULES, f"ClusterRole {p}-controller: verbs exactly as designed (got {sorted((k, sorted(v)) for k, v in got.items())})")
        crb = get("ClusterRoleBinding", f"{p}-controller", "")
        if crb:
            check(crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{p}-controller"}
                  and crb.get("subjects") == [sa_ctl], f"ClusterRoleBinding {p}-controller binds the controller only")
    lr = get("Role", f"{p}-controller-leader-election")
    if lr:
        check(rules_map(lr.get("rules")) == LEASE_RULES, "leader-election Role: leases get/create/update only")
    lrb = get("RoleBinding", f"{p}-controller-leader-election")
    if lrb:
        check(lrb.get("subjects") == [sa_ctl], "leader-election RoleBinding binds the controller only")
    wsa = get("ServiceAccount", f"{p}-webhook")
    # the webhook holds a token only to list Services, and then exactly that right
    webhook_api = bool(wsa) and wsa.get("automountServiceAccountToken") is True
    sa_wh = {"kind": "ServiceAccount", "name": f"{p}-webhook", "namespace": ns}
    if webhook_api:
        for w in (watch or [""]):
            kind = "Role" if w else "ClusterRole"
            r, rb = get(kind, f"{p}-webhook", w), get(kind + "Binding", f"{p}-webhook", w)
            check(bool(r) and rules_map(r.get("rules")) == WEBHOOK_RULES,
                  f"{kind} {w + '/' if w else ''}{p}-webhook: list services, nothing else")
            check(bool(rb) and rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": f"{p}-webhook"}
                  and rb.get("subjects") == [sa_wh], f"{kind}Binding {w + '/' if w else ''}{p}-webhook binds the webhook only")
    for o in objs:
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            subj = o.get("subjects") or []
            check(all(s.get("name") != f"{p}-webhook" for s in subj) or
                  (webhook_api and o["metadata"]["name"] == f"{p}-webhook"),
                  f"{o['kind']} {o['metadata']['name']}: the webhook has no API rights but listing Services")
        if o["kind"] in ("Role", "ClusterRole"):
            check(all("*" not in r.get("verbs", []) and "*" not in r.get("resources", []) for r in o.get("rules", [])),
                  f"{o['kind']} {o['metadata']['name']}: no wildcards")
    if wsa:
        check(isinstance(wsa.get("automountServiceAccountToken"), bool), "webhook ServiceAccount says whether it mounts a token")

    # ---- workloads ----
    wd = get("Deployment", f"{p}-webhook")
    cd = get("Deployment", f"{p}-controller")
    svc = get("Service", f"{p}-webhook")
    images = [i for i in a.images.split(",") if i]
    for d in (wd, cd):
        if not d:
            continue
        check_hardened(d)
        for c in pod_spec(d).get("containers", []):
            if images:
                check(c.get("image") in images, f"Deployment {d['metadata']['name']}: image {c.get('image')} is one of hack/images.env's")
        check(selector_matches(d["spec"]["selector"], d["spec"]["template"]["metadata"].get("labels", {})),
              f"Deployment {d['metadata']['name']}: selector matches its pods")
        if a.topology_spread:
            check(bool(pod_spec(d).get("topologySpreadConstraints")), f"Deployment {d['metadata']['name']}: topologySpreadConstraints")
    webhook_cfg = None
    if wd:
        spec = pod_spec(wd)
        check(wd["spec"].get("replicas", 1) >= 2, "webhook runs 2+ replicas")
        check(spec.get("automountServiceAccountToken") is webhook_api,
              "webhook pod mounts a token exactly when it may list Services")
        check(spec.get("serviceAccountName") == f"{p}-webhook", "webhook pod uses its ServiceAccount")
        c = spec["containers"][0]
        args = c.get("args", [])
        check(f"--listen=0.0.0.0:{a.webhook_port}" in args, f"webhook listens on {a.webhook_port}")
        lookup = [x for x in args if x.startswith("--services-timeout=")]
        check(len(lookup) == 1 and (lookup[0] != "--services-timeout=0") == webhook_api,
              "webhook --services-timeout is 0 exactly when it has no API access")
        https = [pt for pt in c.get("ports", []) if pt.get("name") == "https"]
        check(len(https) == 1 and https[0]["containerPort"] == a.webhook_port, "webhook container port https = --listen port")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            g = c.get(probe, {}).get("httpGet", {})
            check(g.get("path") == path and g.get("scheme") == "HTTPS" and g.get("port") in ("https", a.webhook_port),
                  f"webhook {probe}: HTTPS {path} on the webhook port")
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        tls = vols.get("tls", {}).get("secret", {}).get("secretName")
        check(tls == f"{p}-webhook-tls", "webhook mounts the Secret <prefix>-webhook-tls")
        check(f"--cert={mounts.get('tls')}/tls.crt" in args and f"--key={mounts.get('tls')}/tls.key" in args,
              "webhook --cert/--key point into the mounted Secret")
        cm = vols.get("config", {}).get("configMap", {}).get("name")
        check(cm == f"{p}-webhook-config" and f"--config={mounts.get('config')}/sidecar.yaml" in args,
              "webhook --config is the mounted sidecar configuration")
        cmo = get("ConfigMap", f"{p}-webhook-config")
        webhook_cfg = (cmo or {}).get("data", {}).get("sidecar.yaml", "")
    if webhook_cfg is not None:
        lines = {l.split(":", 1)[0].strip(): l.split(":", 1)[1].strip().strip('"')
                 for l in webhook_cfg.splitlines() if ":" in l and not l.startswith(" ")}
        check(lines.get("mode") == a.injection_mode, f"sidecar mode {a.injection_mode} (got {lines.get('mode')})")
        check(lines.get("nativeSidecar") == ("true" if a.native else "false"), f"sidecar nativeSidecar {a.native}")
        if a.sidecar_image:
            check(lines.get("image") == a.sidecar_image, f"sidecar image {a.sidecar_image} (got {lines.get('image')})")
        check(set(lines) <= {"image", "initImage", "imagePullPolicy", "mode", "nativeSidecar",
                             "holdApplicationUntilProxyStarts", "runAsUser", "resources"},
              f"sidecar configuration has only keys maskmesh-webhook --config knows ({sorted(lines)})")
    if cd:
        spec = pod_spec(cd)
        args = spec["containers"][0].get("args", [])
        check("--leader-elect" in args and f"--lease-namespace={ns}" in args, "controller: --leader-elect in its namespace")
        check(sorted(x.split("=", 1)[1] for x in args if x.startswith("--namespace=")) == sorted(watch),
              "controller: one --namespace per watched namespace")
        check(spec.get("serviceAccountName") == f"{p}-controller", "controller pod uses its ServiceAccount")
    if svc:
        ports = svc["spec"].get("ports", [])
        check(len(ports) == 1 and ports[0]["port"] == a.service_port and ports[0].get("targetPort") in ("https", a.webhook_port),
              f"Service {p}-webhook: {a.service_port} -> the webhook port")
        if wd:
            check(selector_matches({"matchLabels": svc["spec"].get("selector", {})}, wd["spec"]["template"]["metadata"]["labels"]),
                  "Service selects the webhook pods")
    pdb = get("PodDisruptionBudget", f"{p}-webhook")
    if pdb and wd:
        check(selector_matches(pdb["spec"]["selector"], wd["spec"]["template"]["metadata"]["labels"]),
              "PodDisruptionBudget selects the webhook pods")
        check(pdb["spec"].get("minAvailable", 0) not in (0, "0%") and pdb["spec"].get("minAvailable", 0) < wd["spec"].get("replicas", 1),
              "PodDisruptionBudget keeps one webhook up and still lets a node drain")

    # ---- webhook configurations ----
    mwc = get("MutatingWebhookConfiguration", f"{p}-injector", "")
    vwc = get("ValidatingWebhookConfiguration", f"{p}-validator", "")
    secret = get("Secret", f"{p}-webhook-tls")
    expect_ca = None
    if a.cert_mode == "helm" and secret:
        expect_ca = secret.get("data", {}).get("ca.crt")
        openssl_ok(secret, f"{p}-webhook.{ns}.svc")
    elif a.cert_mode == "external":
        expect_ca = a.ca_bundle
    for cfg, kind in ((mwc, "mutating"), (vwc, "validating")):
        if not cfg:
            continue
        ann = cfg["metadata"].get("annotations") or {}
        if a.cert_mode == "cert-manager":
            check(ann.get("cert-manager.io/inject-ca-from", "").startswith(f"{ns}/"),
                  f"{kind}: cert-manager injects the CA (inject-ca-from {ns}/...)")
            cert = ann.get("cert-manager.io/inject-ca-from", "/").split("/", 1)[1]
            c = get("Certificate", cert)
            check(bool(c), f"{kind}: inject-ca-from names a rendered Certificate ({cert})")
        for w in cfg.get("webhooks", []):
            wn = f"{kind} webhook {w.get('name')}"
            check(w.get("failurePolicy") == "Fail", f"{wn}: failurePolicy Fail")
            check(w.get("sideEffects") == "None", f"{wn}: sideEffects None")
            check(w.get("timeoutSeconds") == 10, f"{wn}: timeoutSeconds 10")
            check(w.get("admissionReviewVersions") == ["v1"], f"{wn}: admissionReviewVersions [v1]")
            check(w.get("matchPolicy", "Equivalent") == "Equivalent", f"{wn}: matchPolicy Equivalent")
            s = w.get("clientConfig", {}).get("service", {})
            check(s.get("name") == f"{p}-webhook" and s.get("namespace") == ns and s.get("port", 443) == a.service_port,
                  f"{wn}: calls Service {ns}/{p}-webhook:{a.service_port}")
            nsel = w.get("namespaceSelector")
            for excluded in ("kube-system", ns):
                check(not selector_matches(nsel, {"kubernetes.io/metadata.name": excluded, "maskmesh.io/inject": "true"}),
                      f"{wn}: never acts in namespace {excluded}")
            ca = w.get("clientConfig", {}).get("caBundle")
            if a.cert_mode in ("helm", "external"):
                check(bool(ca) and ca == expect_ca, f"{wn}: caBundle is the serving certificate's CA")
                if ca:
                    check(base64.b64decode(ca).startswith(b"-----BEGIN CERTIFICATE-----"), f"{wn}: caBundle is a PEM certificate")
            elif a.cert_mode == "cert-manager":
                check(not ca, f"{wn}: no caBundle of its own (cert-manager injects it)")
        if kind == "mutating":
            hooks = {w["name"]: w for w in cfg.get("webhooks", [])}
            check(set(hooks) == {"inject.maskmesh.io", "namespace.inject.maskmesh.io"},
                  f"mutating webhooks are inject.maskmesh.io and namespace.inject.maskmesh.io ({sorted(hooks)})")
            paths = {n: w.get("clientConfig", {}).get("service", {}).get("path") for n, w in hooks.items()}
            check(paths.get("inject.maskmesh.io") == "/mutate-pods", "inject.maskmesh.io calls /mutate-pods")
            check(paths.get("namespace.inject.maskmesh.io") == "/mutate-pods/namespace-opted-in",
                  "namespace.inject.maskmesh.io calls /mutate-pods/namespace-opted-in")
            for n, w in hooks.items():
                check(w.get("reinvocationPolicy") == "Never", f"{n}: reinvocationPolicy Never")
                r = w.get("rules", [])
                check(len(r) == 1 and r[0].get("operations") == ["CREATE"] and r[0].get("resources") == ["pods"]
                      and r[0].get("apiGroups") == [""] and r[0].get("apiVersions") == ["v1"], f"{n}: CREATE pods only")
            # opt-in semantics (docs/webhook.md: the label on a pod or its namespace opts in; "false" on
            # the pod opts out), over every combination, in a watched namespace or not
            namespaces = ["shop"] + ([w for w in watch] if watch else []) + ["kube-system", ns]
            for nsname in namespaces:
                for nsl in (None, "true", "false"):
                    for pl in (None, "true", "false", "other"):
                        nlabels = {"kubernetes.io/metadata.name": nsname}
                        if nsl is not None:
                            nlabels["maskmesh.io/inject"] = nsl
                        plabels = {"app": "x"}
                        if pl is not None:
                            plabels["maskmesh.io/inject"] = pl
                        hit = [n for n, w in hooks.items()
                               if selector_matches(w.get("namespaceSelector"), nlabels)
                               and selector_matches(w.get("objectSelector"), plabels)]
                        in_scope = nsname not in ("kube-system", ns) and (not watch or nsname in watch)
                        want_inject = in_scope and (pl == "true" or (nsl == "true" and pl != "false"))
                        case = f"ns {nsname} label {nsl}, pod label {pl}"
                        check(len(hit) <= 1, f"{case}: sent to at most one webhook ({hit})")
                        check(bool(hit) == want_inject, f"{case}: injected={bool(hit)}, want {want_inject}")
                        if hit == ["namespace.inject.maskmesh.io"]:
                            check(nsl == "true", f"{case}: the namespace-opted-in path only for opted-in namespaces")
        else:
            hooks = cfg.get("webhooks", [])
            check([w.get("name") for w in hooks] == ["validate.maskmesh.io"], "validating webhook validate.maskmesh.io")
            if hooks:
                w = hooks[0]
                check(w.get("clientConfig", {}).get("service", {}).get("path") == "/validate-maskingpolicies",
                      "validate.maskmesh.io calls /validate-maskingpolicies")
                r = w.get("rules", [])
                check(len(r) == 1 and sorted(r[0].get("operations", [])) == ["CREATE", "UPDATE"]
                      and r[0].get("apiGroups") == ["maskmesh.io"] and r[0].get("resources") == ["maskingpolicies"]
                      and r[0].get("apiVersions") == ["v1alpha1"], "validate.maskmesh.io: CREATE/UPDATE maskingpolicies")

    # ---- cert-manager ----
    if a.cert_mode == "cert-manager":
        c = get("Certificate", f"{p}-webhook")
        if c:
            check(c["spec"].get("secretName") == f"{p}-webhook-tls", "Certificate writes the webhook's Secret")
            check(f"{p}-webhook.{ns}.svc" in c["spec"].get("dnsNames", []), f"Certificate names {p}-webhook.{ns}.svc")
            check(bool(c["spec"].get("issuerRef", {}).get("name")), "Certificate has an issuer")

    # ---- NetworkPolicies: the API server must still reach the webhook ----
    if a.network_policy:
        np = get("NetworkPolicy", f"{p}-webhook")
        check(bool(np), "webhook NetworkPolicy rendered")
        if np and wd:
            check(selector_matches(np["spec"]["podSelector"], wd["spec"]["template"]["metadata"]["labels"]),
                  "webhook NetworkPolicy selects the webhook pods")
            open_rules = [r for r in np["spec"].get("ingress", []) if not r.get("from")]
            check(any(any(pt.get("port") in (a.webhook_port, "https") for pt in r.get("ports", [])) for r in open_rules),
                  "webhook NetworkPolicy admits the webhook port from any source (the API server)")

    # ---- monitoring ----
    if a.monitoring:
        smw = get("ServiceMonitor", f"{p}-webhook")
        if smw:
            ep = smw["spec"]["endpoints"][0]
            check(ep.get("port") == "https" and ep.get("scheme") == "https" and ep.get("path") == "/metrics",
                  "webhook ServiceMonitor scrapes https /metrics")
            check(ep.get("tlsConfig", {}).get("serverName") == f"{p}-webhook.{ns}.svc", "webhook ServiceMonitor verifies the server name")

    # ---- helm test ----
    tests = [o for o in objs if o["kind"] == "Pod" and (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
    check(bool(tests) == a.helm_test, "a helm test pod exactly when rendering the chart")
    for t in tests:
        check_hardened(t)
        args = " ".join(pod_spec(t)["containers"][0].get("args", []))
        check(f"https://{p}-webhook.{ns}.svc:{a.service_port}/healthz" in args, "helm test calls the webhook's /healthz through its Service")
        check("--cacert" in args and "--fail" in args, "helm test verifies TLS and fails on an error status")

    return summary()


if __name__ == "__main__":
    sys.exit(main())
