"""StandIn: the API semantics (resource registry, CRDs, create/update/patch/apply/delete, GC, lists,
tables, admission webhooks, auth rules).
"""
import base64
import copy
import http.client
import json
import os
import random
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

from . import clientcert
from .builtins import admit_pod_builtin, check_pod_update, default_pod
from .fields import deep_merge, delete_at, field_paths, fields_to_paths, paths_to_fields, value_at
from .patch import check_apply_escapes, json_patch, merge_patch, parse_simple_yaml, strategic_merge
from .schema import apply_defaults, prune, validate_schema
from .selectors import FieldSelector, LabelSelector, jsonpath, selector_from_labelselector
from .store import State
from .wire import (ApiError, NAME_CHARS, READONLY_USER, Res, already_exists, bad_request, conflict, fmt_value,
                   human_age, invalid, not_found, now_rfc3339)


class StandIn:
    def __init__(self, args):
        self.args = args
        self.state = State()
        self.admin_token = args.token or uuid.uuid4().hex
        self.readonly_token = args.readonly_token
        self.service_hosts = {}
        self.tokens = {}  # token -> (user, verbs, resources) from --tokens
        if getattr(args, "tokens", None):
            with open(args.tokens) as f:
                for line in f:
                    fs = line.split()
                    if len(fs) < 3 or fs[0].startswith("#"):
                        continue
                    res = set(fs[3].split(",")) if len(fs) > 3 else {"*"}
                    self.tokens[fs[0]] = (fs[1], set(fs[2].split(",")), res)
        for s in args.service_host or []:
            k, _, v = s.partition("=")
            self.service_hosts[k.strip()] = v.strip()
        self.faults = {"fail": None, "delay": 0.0, "delayPath": None}
        self.snapshots = {}  # (gp, ns, rv) -> objects at rv, for continue tokens (consistent pages)
        self.fault_lock = threading.Lock()
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.stopping = threading.Event()
        self.restart_requested = threading.Event()
        self.httpd = None
        self.port = None
        self.tmp = tempfile.mkdtemp(prefix="maskmesh-apiserver-")
        self.make_certs()
        self.install_builtins()

    # -- certificates
    def make_certs(self):
        d = self.tmp
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        def run(cmd):
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=d)
        run(["openssl", "req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
            "-subj", "/CN=maskmesh-e2e-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        run(["openssl", "req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
        run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "7", "-extfile", "ext.cnf"])
        self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
        self.ssl_ctx.set_alpn_protocols(["http/1.1"])
        # x509 client certificates (kube-apiserver --client-ca-file): the stand-in's own CA,
        # which signs the --client-cert certificates, and any --client-ca-file bundles
        clientcert.request_client_certs(self.ssl_ctx, [os.path.join(d, "ca.crt")] +
                                        list(getattr(self.args, "client_ca_file", None) or []))
        with open(os.path.join(d, "ca.crt"), "rb") as f:
            self.ca_pem = f.read()
        self.client_certs = []  # (name, groups, cert PEM, key PEM)
        for spec in getattr(self.args, "client_cert", None) or []:
            name, groups = clientcert.parse_spec(spec)
            cert, key = clientcert.issue(d, "ca.crt", "ca.key", "client-%d" % len(self.client_certs),
                                         name, groups)
            self.client_certs.append((name, groups, cert, key))

    # -- resources
    def add_res(self, res):
        key = (res.group, res.version, res.plural)
        self.state.resources[key] = res
        if res.group not in self.state.group_order:
            self.state.group_order.append(res.group)

    def install_builtins(self):
        A = self.add_res
        A(Res("", "v1", "namespaces", "Namespace", False, short=["ns"], status=True))
        A(Res("", "v1", "pods", "Pod", True, short=["po"], categories=["all"], status=True, generation=True))
        A(Res("", "v1", "configmaps", "ConfigMap", True, short=["cm"]))
        A(Res("", "v1", "secrets", "Secret", True))
        A(Res("", "v1", "events", "Event", True, short=["ev"]))
        A(Res("", "v1", "services", "Service", True, short=["svc"], categories=["all"], status=True))
        A(Res("", "v1", "serviceaccounts", "ServiceAccount", True, short=["sa"]))
        A(Res("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
              False, categories=["api-extensions"], generation=True))
        A(Res("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
              False, categories=["api-extensions"], generation=True))
        A(Res("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
              short=["crd", "crds"], categories=["api-extensions"], status=True, generation=True))
        A(Res("coordination.k8s.io", "v1", "leases", "Lease", True))
        A(Res("events.k8s.io", "v1", "events", "Event", True, short=["ev"]))
        A(Res("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short=["netpol"], generation=True))
        # the controller renders maskmesh-stream Deployments for policies with spec.streams
        A(Res("apps", "v1", "deployments", "Deployment", True, short=["deploy"], categories=["all"], status=True,
              generation=True))
        nsres = self.state.resources[("", "v1", "namespaces")]
        with self.state.lock:
            for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
                obj = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": n}}
                self.finalize_new(nsres, obj, "kube-apiserver", "Update")
                self.state.commit(nsres, "ADDED", obj, None)

    def lookup(self, group, version, plural):
        return self.state.resources.get((group, version, plural))

    def crd_versions(self, crd):
        return [v for v in crd.get("spec", {}).get("versions", []) if v.get("served", True)]

    def register_crd(self, crd):
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        group = spec.get("group")
        for v in self.crd_versions(crd):
            subs = v.get("subresources") or {}
            res = Res(group, v["name"], names.get("plural"), names.get("kind"), spec.get("scope") == "Namespaced",
                      singular=names.get("singular") or names.get("kind", "").lower(), short=names.get("shortNames") or [],
                      categories=names.get("categories") or [], status="status" in subs, generation=True, crd=v)
            self.add_res(res)

    def unregister_crd(self, crd):
        spec = crd.get("spec", {})
        for k in [k for k, r in self.state.resources.items()
                  if r.is_cr and r.group == spec.get("group") and r.plural == spec.get("names", {}).get("plural")]:
            del self.state.resources[k]
        if not any(r.group == spec.get("group") for r in self.state.resources.values()):
            if spec.get("group") in self.state.group_order:
                self.state.group_order.remove(spec.get("group"))

    # -- object lifecycle helpers
    def finalize_new(self, res, obj, manager, op, sub=None):
        md = obj["metadata"]
        if not md.get("name") and md.get("generateName"):
            for _ in range(100):
                cand = md["generateName"] + "".join(random.choice(NAME_CHARS) for _ in range(5))
                if self.state.get(res, md.get("namespace"), cand) is None:
                    md["name"] = cand
                    break
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        if res.generation:
            md["generation"] = 1
        if res.gp == ("", "namespaces"):
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.crd_status(obj)
        self.set_managed(res, None, obj, manager, op, sub)
        self.order_metadata(obj)

    def crd_status(self, obj):
        names = copy.deepcopy(obj.get("spec", {}).get("names", {}))
        names.setdefault("singular", names.get("kind", "").lower())
        names.setdefault("listKind", names.get("kind", "") + "List")
        ts = now_rfc3339()
        obj["status"] = {
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": ts, "reason": "NoConflicts",
                 "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": ts, "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted"}],
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")],
        }

    def order_metadata(self, obj):
        order = ["name", "generateName", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                 "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
                 "finalizers", "managedFields"]
        md = obj["metadata"]
        obj["metadata"] = {k: md[k] for k in order if k in md}
        obj["metadata"].update({k: v for k, v in md.items() if k not in obj["metadata"]})

    def set_managed(self, res, old, new, manager, op, sub, applied=None, force=False):
        """Update metadata.managedFields of new (old: previous object or None)."""
        entries = copy.deepcopy((old or {}).get("metadata", {}).get("managedFields") or [])
        sets = [(e, fields_to_paths(e.get("fieldsV1"))) for e in entries]
        new_paths = field_paths(new, res, sub)
        if op == "Apply":
            mine = field_paths(applied, res, sub)
            changed = mine
        else:
            old_paths = field_paths(old, res, sub) if old else set()
            changed = {p for p in new_paths if old is None or value_at(old, p) != value_at(new, p) or p not in old_paths}
            mine = None
        out = []
        found = False
        for e, ps in sets:
            same = e.get("manager") == manager and e.get("operation") == op and e.get("subresource") == sub
            ps = ps & new_paths
            if same:
                found = True
                ps = mine if mine is not None else (ps | changed)
            else:
                ps = ps - changed
            if ps:
                e["fieldsV1"] = paths_to_fields(ps, e.get("operation") != "Apply", res.is_cr)
                if same:
                    e["time"] = now_rfc3339()
                out.append(e)
        if not found:
            ps = mine if mine is not None else changed
            if ps:
                e = {"manager": manager, "operation": op, "apiVersion": res.gv, "time": now_rfc3339(),
                     "fieldsType": "FieldsV1", "fieldsV1": paths_to_fields(ps, op != "Apply", res.is_cr)}
                if sub:
                    e["subresource"] = sub
                out.append(e)
        if out:
            new["metadata"]["managedFields"] = out
        else:
            new["metadata"].pop("managedFields", None)

    def apply_conflicts(self, res, cur, applied, manager, sub):
        mine = field_paths(applied, res, sub)
        conflicts = []
        for e in (cur.get("metadata", {}).get("managedFields") or []):
            if e.get("manager") == manager and e.get("operation") == "Apply":
                continue
            if (e.get("subresource") or None) != sub:
                continue
            who = json.dumps(e.get("manager"))
            if e.get("subresource"):
                who += " with subresource %s" % json.dumps(e["subresource"])
            if e.get("operation") == "Update":
                # managedfields BuildManagerIdentifier drops the time, so printManager never
                # prints "at <time>" (k8s.io/apimachinery/pkg/util/managedfields/internal)
                who += " using %s" % e.get("apiVersion")
            for p in sorted(fields_to_paths(e.get("fieldsV1")) & mine):
                if value_at(cur, p) != value_at(applied, p):
                    conflicts.append((who, "." + ".".join(x[2:] for x in p)))
        return conflicts

    def strip_for_compare(self, obj, res, generation=False):
        o = copy.deepcopy(obj)
        md = o.get("metadata", {})
        md.pop("resourceVersion", None)
        for e in md.get("managedFields") or []:
            e.pop("time", None)
        if generation:
            o.pop("metadata", None)
            if res.status:
                o.pop("status", None)
        return o

    # -- validation and admission
    def validate(self, res, obj, name):
        causes = []
        if res.group == "admissionregistration.k8s.io":
            for i, wh in enumerate(obj.get("webhooks") or []):
                f = "webhooks[%d]" % i
                se = wh.get("sideEffects")
                if se is None:
                    causes.append({"reason": "FieldValueRequired", "message": "Required value: must specify one of None, "
                                   "NoneOnDryRun", "field": f + ".sideEffects"})
                elif se not in ("None", "NoneOnDryRun"):
                    causes.append({"reason": "FieldValueNotSupported", "message": 'Unsupported value: %s: supported '
                                   'values: "None", "NoneOnDryRun"' % fmt_value(se), "field": f + ".sideEffects"})
                if not wh.get("admissionReviewVersions"):
                    causes.append({"reason": "FieldValueRequired", "message": "Required value: must specify one of v1, "
                                   "v1beta1", "field": f + ".admissionReviewVersions"})
                cc = wh.get("clientConfig") or {}
                if bool(cc.get("url")) == bool(cc.get("service")):
                    causes.append({"reason": "FieldValueRequired", "message": "Required value: exactly one of url or "
                                   "service is required", "field": f + ".clientConfig"})
        md = obj.get("metadata", {})
        if not md.get("name") and not md.get("generateName"):
            causes.append({"reason": "FieldValueRequired", "message": "Required value: name or generateName is required",
                           "field": "metadata.name"})
        n = md.get("name")
        if n and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", n) and res.gp != ("", "events"):
            causes.append({"reason": "FieldValueInvalid",
                           "message": "Invalid value: %s: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                                      "characters, '-' or '.', and must start and end with an alphanumeric character" % fmt_value(n),
                           "field": "metadata.name"})
        if res.is_cr:
            schema = ((res.crd.get("schema") or {}).get("openAPIV3Schema")) or {}
            validate_schema(schema, obj, "", causes, top=True)
        if causes:
            raise invalid(res, name or md.get("name") or "", causes)

    def limits(self, user, groups=()):
        """None for the admin (or a certificate in group system:masters, RBAC's superuser
        group); else (verbs, resources) the user may use."""
        if user == "admin" or "system:masters" in groups:
            return None
        if user == READONLY_USER:
            return ({"get", "list", "watch"}, {"*"})
        for u, verbs, res in self.tokens.values():
            if u == user:
                return (verbs, res)
        return (set(), set())

    def user_info(self, ctx):
        if ctx.get("groups"):
            return {"username": ctx["user"], "groups": list(ctx["groups"]) + ["system:authenticated"]}
        if ctx["user"] != "admin":
            return {"username": ctx["user"], "uid": ctx["user"] + "-uid", "groups": ["system:authenticated"]}
        return {"username": "admin", "uid": "admin-uid", "groups": ["system:masters", "system:authenticated"]}

    def namespace_labels(self, ns):
        nsres = self.state.resources[("", "v1", "namespaces")]
        with self.state.lock:
            o = self.state.get(nsres, None, ns)
        if o is None:
            return {"kubernetes.io/metadata.name": ns}
        return o["metadata"].get("labels") or {}

    @staticmethod
    def _rule_match(rule, res, sub, op):
        ops = rule.get("operations") or []
        if "*" not in ops and op not in ops:
            return False
        if "*" not in (rule.get("apiGroups") or []) and res.group not in (rule.get("apiGroups") or []):
            return False
        if "*" not in (rule.get("apiVersions") or []) and res.version not in (rule.get("apiVersions") or []):
            return False
        want = res.plural + ("/" + sub if sub else "")
        ok = False
        for r in rule.get("resources") or []:
            rp, _, rs = r.partition("/")
            if r == "*" and not sub:
                ok = True
            elif r == "*/*":
                ok = True
            elif rp == "*" and rs == (sub or ""):
                ok = True
            elif rp == res.plural and (rs == (sub or "") or rs == "*"):
                ok = True
            elif r == want:
                ok = True
        if not ok:
            return False
        scope = rule.get("scope") or "*"
        if scope == "Namespaced" and not res.namespaced:
            return False
        if scope == "Cluster" and res.namespaced:
            return False
        return True

    def webhook_matches(self, wh, res, sub, op, obj, old, ns):
        if not any(self._rule_match(r, res, sub, op) for r in wh.get("rules") or []):
            return False
        if res.namespaced or res.gp == ("", "namespaces"):
            nsname = ns if res.namespaced else obj["metadata"].get("name")
            labels = self.namespace_labels(nsname) if res.namespaced else (obj["metadata"].get("labels") or {})
            if not selector_from_labelselector(wh.get("namespaceSelector"))(labels):
                return False
        osel = selector_from_labelselector(wh.get("objectSelector"))
        if not (osel(obj["metadata"].get("labels")) or (old is not None and osel(old["metadata"].get("labels")))):
            return False
        return True

    def call_webhook(self, wh, review):
        cc = wh.get("clientConfig") or {}
        timeout = wh.get("timeoutSeconds") or 10
        if cc.get("url"):
            u = urllib.parse.urlsplit(cc["url"])
            host, port, path = u.hostname, u.port or 443, (u.path or "/") + ("?" + u.query if u.query else "")
            connect_host, connect_port, sni = host, port, host
            target = True
        else:
            svc = cc.get("service") or {}
            dns = "%s.%s.svc" % (svc.get("name"), svc.get("namespace"))
            port = svc.get("port") or 443
            path = svc.get("path") or "/"
            target = self.service_hosts.get(dns) or self.service_hosts.get("%s:%d" % (dns, port))
            sni = dns
            if target:
                connect_host, _, p = target.rpartition(":")
                connect_port = int(p)
        path += ("&" if "?" in path else "?") + "timeout=%ds" % timeout
        # errors read like the apiserver's Go client: Post "URL": <net/http, crypto/tls text>
        post = 'Post "https://%s%s%s"' % (sni, "" if port == 443 and cc.get("url") else ":%d" % port, path)
        if not target:
            raise OSError('%s: dial tcp: lookup %s: no such host (no --service-host for it)' % (post, sni))
        ctx = ssl.create_default_context()
        if cc.get("caBundle"):
            ctx = ssl.create_default_context(cadata=base64.b64decode(cc["caBundle"]).decode())
        body = json.dumps(review).encode()
        try:
            sock = socket.create_connection((connect_host, connect_port), timeout=timeout)
        except ConnectionRefusedError:
            raise OSError("%s: dial tcp %s:%d: connect: connection refused" % (post, connect_host, connect_port))
        except socket.timeout:
            raise OSError("%s: context deadline exceeded" % post)
        try:
            tls = ctx.wrap_socket(sock, server_hostname=sni)
            conn = http.client.HTTPConnection(sni, connect_port, timeout=timeout)
            conn.sock = tls
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json",
                                                           "Accept": "application/json",
                                                           "User-Agent": "kube-apiserver-admission"})
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except socket.timeout:
            raise OSError("%s: context deadline exceeded (Client.Timeout exceeded while awaiting headers)" % post)
        except ssl.SSLCertVerificationError as e:
            why = {"unable to get local issuer certificate": "x509: certificate signed by unknown authority",
                   "self-signed certificate": "x509: certificate signed by unknown authority"}.get(
                       e.verify_message, "x509: " + str(e.verify_message or e))
            raise OSError("%s: tls: failed to verify certificate: %s" % (post, why))
        finally:
            sock.close()
        if resp.status != 200:
            raise OSError("the server responded with the status code %d but did not return more information" % resp.status)
        out = json.loads(data)
        r = out.get("response") or {}
        if out.get("kind") != "AdmissionReview" or out.get("apiVersion") != "admission.k8s.io/v1":
            raise OSError("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got %s, Kind=%s"
                          % (out.get("apiVersion"), out.get("kind")))
        if r.get("uid") != review["request"]["uid"]:
            raise OSError("expected response.uid=%r, got %r" % (review["request"]["uid"], r.get("uid")))
        return r

    def run_webhooks(self, kind, ctx, res, sub, op, obj, old, ns, name, dry_run, options, warnings):
        if res.group == "admissionregistration.k8s.io":
            return obj
        wres = self.state.resources[("admissionregistration.k8s.io", "v1", kind)]
        with self.state.lock:
            configs = sorted(self.state.store(wres.gp).values(), key=lambda o: o["metadata"]["name"])
        for cfg in configs:
            for wh in cfg.get("webhooks") or []:
                if not self.webhook_matches(wh, res, sub, op, obj, old, ns):
                    continue
                whname = wh.get("name")
                gvk = {"group": res.group, "version": res.version, "kind": res.kind}
                gvr = {"group": res.group, "version": res.version, "resource": res.plural}
                req = {"uid": str(uuid.uuid4()), "kind": gvk, "resource": gvr}
                if sub:
                    req["subResource"] = sub
                req["requestKind"] = gvk
                req["requestResource"] = gvr
                if sub:
                    req["requestSubResource"] = sub
                if name:
                    req["name"] = name
                if ns:
                    req["namespace"] = ns
                req.update({"operation": op, "userInfo": self.user_info(ctx), "object": obj, "oldObject": old,
                            "dryRun": bool(dry_run), "options": options})
                review = {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req}
                try:
                    r = self.call_webhook(wh, review)
                except Exception as e:  # noqa: BLE001 - any failure to call is a webhook call error
                    if wh.get("failurePolicy", "Fail") == "Ignore":
                        continue
                    msg = 'failed calling webhook "%s": failed to call webhook: %s' % (whname, e)
                    raise ApiError(500, "InternalError", "Internal error occurred: " + msg,
                                   {"causes": [{"message": msg}]})
                for w in r.get("warnings") or []:
                    warnings.append(w)
                if not r.get("allowed"):
                    st = dict(r.get("status") or {})
                    code = st.get("code") or 0
                    if code < 400:
                        code = 400
                    deny = 'admission webhook "%s" denied the request' % whname
                    if st.get("message"):
                        msg = deny + ": " + st["message"]
                    elif st.get("reason"):
                        msg = deny + ": " + st["reason"]
                    else:
                        msg = deny + " without explanation"
                    raise ApiError(code, st.get("reason") or "", msg, st.get("details"))
                if kind == "mutatingwebhookconfigurations" and r.get("patch"):
                    if r.get("patchType") != "JSONPatch":
                        raise ApiError(500, "InternalError", 'Internal error occurred: admission webhook "%s" returned '
                                       'an unsupported patchType %r' % (whname, r.get("patchType")))
                    ops = json.loads(base64.b64decode(r["patch"]))
                    try:
                        obj = json_patch(obj, ops)
                    except ApiError as e:
                        raise ApiError(500, "InternalError", 'Internal error occurred: admission webhook "%s" '
                                       'returned a patch that does not apply: %s' % (whname, e.message))
        return obj

    def admit_and_validate(self, ctx, res, sub, op, obj, old, ns, name, dry_run, options, warnings):
        if res.is_cr:
            unknown = []
            prune(((res.crd.get("schema") or {}).get("openAPIV3Schema")) or {}, obj, "", unknown, top=True)
            fv = ctx.get("fieldValidation") or "Warn"
            if unknown and fv == "Strict":
                raise bad_request('%s in version "%s" cannot be handled as a %s: strict decoding error: %s'
                                  % (res.kind, res.version, res.kind,
                                     ", ".join('unknown field "%s"' % u for u in unknown)))
            if fv != "Ignore":
                warnings.extend('unknown field "%s"' % u for u in unknown)
        obj = self.run_webhooks("mutatingwebhookconfigurations", ctx, res, sub, op, obj, old, ns, name,
                                dry_run, options, warnings)
        if res.is_cr:
            schema = ((res.crd.get("schema") or {}).get("openAPIV3Schema")) or {}
            obj = apply_defaults(schema, obj)
        self.validate(res, obj, name)
        obj = self.run_webhooks("validatingwebhookconfigurations", ctx, res, sub, op, obj, old, ns, name,
                                dry_run, options, warnings)
        return obj

    # -- verbs
    @staticmethod
    def manager_of(ctx, params):
        fm = params.get("fieldManager")
        if fm:
            return fm
        return (ctx.get("ua") or "unknown").split("/")[0] or "unknown"

    @staticmethod
    def dry_run_of(params):
        dr = params.get("dryRun")
        if dr is None:
            return False
        if dr != "All":
            raise invalid(("DryRun.meta.k8s.io", "meta.k8s.io", "DryRun"), "", [
                {"reason": "FieldValueNotSupported", "message": 'Unsupported value: "%s": supported values: "All"' % dr,
                 "field": "dryRun"}])
        return True

    def check_kind(self, res, obj):
        if not isinstance(obj, dict):
            raise bad_request("the object provided is unrecognized (must be of type %s)" % res.kind)
        if obj.get("kind") and obj.get("kind") != res.kind:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (obj.get("apiVersion"), res.gv) if obj.get("apiVersion") != res.gv else
                              "%s in version \"%s\" cannot be handled as a %s: the object kind %s does not match"
                              % (obj.get("kind"), res.version, res.kind, res.kind))
        if obj.get("apiVersion") and obj.get("apiVersion") != res.gv:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (obj.get("apiVersion"), res.gv))
        obj["kind"] = res.kind
        obj["apiVersion"] = res.gv
        md = obj.get("metadata")
        if md is None:
            obj["metadata"] = md = {}
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        # keep kind/apiVersion first for built-ins
        rest = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
        obj.clear()
        obj.update({"kind": res.kind, "apiVersion": res.gv})
        obj.update(rest)
        return obj

    def do_create(self, ctx, res, ns, obj, params, op_name="Update", applied=None):
        dry = self.dry_run_of(params)
        obj = self.check_kind(res, obj)
        md = obj["metadata"]
        if res.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns
            nsres = self.state.resources[("", "v1", "namespaces")]
            with self.state.lock:
                if self.state.get(nsres, None, ns) is None:
                    raise not_found(nsres, ns)
        else:
            md.pop("namespace", None)
        for k in ("uid", "resourceVersion", "creationTimestamp", "generation", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        md.pop("managedFields", None)
        if res.is_cr and res.status:
            obj.pop("status", None)
        if res.gp == ("", "secrets"):
            obj.setdefault("type", "Opaque")
        if res.gp == ("", "pods"):
            default_pod(obj)
            admit_pod_builtin(obj)
            obj["status"] = {}  # the strategy's PrepareForCreate sets it after mutating admission
        manager = self.manager_of(ctx, params)
        self.set_managed(res, None, obj, manager, op_name, None, applied=applied)
        options = {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        if dry:
            options["dryRun"] = ["All"]
        if params.get("fieldManager"):
            options["fieldManager"] = params["fieldManager"]
        warnings = []
        obj = self.admit_and_validate(ctx, res, None, "CREATE", obj, None, ns if res.namespaced else None,
                                      md.get("name"), dry, options, warnings)
        obj = self.check_kind(res, obj)
        if res.gp == ("", "pods"):
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        with self.state.lock:
            if obj["metadata"].get("name") and self.state.get(res, ns if res.namespaced else None, obj["metadata"]["name"]):
                raise already_exists(res, obj["metadata"]["name"])
            managed = obj["metadata"].pop("managedFields", None)
            self.finalize_new(res, obj, manager, op_name)
            if managed is not None:
                obj["metadata"]["managedFields"] = managed
                self.order_metadata(obj)
            if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.check_crd(obj)
            if dry:
                return 201, obj, warnings
            self.state.commit(res, "ADDED", obj, None)
            if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.register_crd(obj)
        return 201, obj, warnings

    def check_crd(self, crd):
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        expect = "%s.%s" % (names.get("plural"), spec.get("group"))
        if crd["metadata"].get("name") != expect:
            raise invalid(("CustomResourceDefinition.apiextensions.k8s.io", "apiextensions.k8s.io", "CustomResourceDefinition"),
                          crd["metadata"].get("name"), [
                              {"reason": "FieldValueInvalid",
                               "message": 'Invalid value: "%s": must be spec.names.plural+"."+spec.group' % crd["metadata"].get("name"),
                               "field": "metadata.name"}])

    def build_update(self, ctx, res, old, new, sub, manager, op, applied=None):
        """The object a write to the main resource or /status turns old into."""
        if res.gp == ("", "pods") and sub != "status":
            new = copy.deepcopy(new)
            default_pod(new)
            check_pod_update(old, new)
        if sub == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = copy.deepcopy(new["status"])
            else:
                result.pop("status", None)
        else:
            result = copy.deepcopy(new)
            if res.status:
                if "status" in old:
                    result["status"] = copy.deepcopy(old["status"])
                else:
                    result.pop("status", None)
            if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
                result["status"] = copy.deepcopy(old.get("status"))
        result = self.check_kind(res, result)
        md, omd = result["metadata"], old["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation"):
            if k in omd:
                md[k] = omd[k]
            else:
                md.pop(k, None)
        md["resourceVersion"] = omd["resourceVersion"]
        if res.gp == ("", "namespaces"):
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
        md["managedFields"] = copy.deepcopy(omd.get("managedFields") or [])
        self.set_managed(res, old, result, manager, op, sub, applied=applied)
        if res.generation and sub != "status":
            if self.strip_for_compare(old, res, True) != self.strip_for_compare(result, res, True):
                md["generation"] = omd.get("generation", 0) + 1
        self.order_metadata(result)
        return result

    def finish_update(self, ctx, res, ns, name, sub, old, result, params, dry, warnings):
        options = {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
        if dry:
            options["dryRun"] = ["All"]
        if params.get("fieldManager"):
            options["fieldManager"] = params["fieldManager"]
        result = self.admit_and_validate(ctx, res, sub, "UPDATE", result, old, ns if res.namespaced else None,
                                         name, dry, options, warnings)
        result = self.check_kind(res, result)
        with self.state.lock:
            cur = self.state.get(res, ns, name)
            if cur is None:
                raise not_found(res, name)
            if cur["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]:
                return None  # raced: caller retries or reports a conflict
            if self.strip_for_compare(cur, res) == self.strip_for_compare(result, res):
                return cur
            if dry:
                return result
            if result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
                self.state.commit(res, "DELETED", result, cur)
                self.after_delete(res, result)
                return result
            self.state.commit(res, "MODIFIED", result, cur)
            if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.unregister_crd(cur)
                self.register_crd(result)
            return result

    def do_update(self, ctx, res, ns, name, sub, new, params):
        dry = self.dry_run_of(params)
        new = self.check_kind(res, new)
        md = new["metadata"]
        if md.get("name") and md["name"] != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (md["name"], name))
        if res.namespaced and md.get("namespace") and md["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        want_rv = md.get("resourceVersion")
        manager = self.manager_of(ctx, params)
        for _ in range(20):
            with self.state.lock:
                old = self.state.get(res, ns, name)
            if old is None:
                raise not_found(res, name)
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if not want_rv and res.is_cr:
                raise invalid(res, name, [{"reason": "FieldValueInvalid",
                                           "message": "Invalid value: 0x0: must be specified for an update",
                                           "field": "metadata.resourceVersion"}])
            warnings = []
            result = self.build_update(ctx, res, old, new, sub, manager, "Update")
            out = self.finish_update(ctx, res, ns, name, sub, old, result, params, dry, warnings)
            if out is not None:
                return 200, out, warnings
            if want_rv:
                raise conflict(res, name)
        raise conflict(res, name)

    def do_patch(self, ctx, res, ns, name, sub, raw, ctype, params):
        dry = self.dry_run_of(params)
        ct = (ctype or "").split(";")[0].strip().lower()
        accepted = ["application/json-patch+json", "application/merge-patch+json"]
        if not res.is_cr:
            accepted.append("application/strategic-merge-patch+json")
        accepted.append("application/apply-patch+yaml")
        if ct not in accepted:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media types include: "
                           + ", ".join(accepted))
        is_apply = ct == "application/apply-patch+yaml"
        force = params.get("force") in ("true", "1")
        if params.get("force") is not None and not is_apply:
            raise invalid(("PatchOptions.meta.k8s.io", "meta.k8s.io", "PatchOptions"), "", [
                {"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch",
                 "field": "force"}])
        if is_apply and not params.get("fieldManager"):
            raise invalid(("PatchOptions.meta.k8s.io", "meta.k8s.io", "PatchOptions"), "", [
                {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                 "field": "fieldManager"}])
        if is_apply:
            check_apply_escapes(raw)
        try:
            patch = json.loads(raw.decode("utf-8") if raw else "null")
        except (ValueError, UnicodeDecodeError) as e:
            if is_apply:
                patch = parse_simple_yaml(raw.decode("utf-8", "replace"))
            else:
                raise bad_request("error decoding patch: %s" % e)
        manager = self.manager_of(ctx, params)
        for _ in range(20):
            with self.state.lock:
                old = self.state.get(res, ns, name)
            if old is None:
                if is_apply and sub is None:
                    applied = self.check_kind(res, copy.deepcopy(patch))
                    if applied["metadata"].get("name") and applied["metadata"]["name"] != name:
                        raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                          % (applied["metadata"]["name"], name))
                    applied["metadata"]["name"] = name
                    return self.do_create(ctx, res, ns, applied, params, op_name="Apply", applied=copy.deepcopy(applied))
                raise not_found(res, name)
            warnings = []
            if is_apply:
                applied = self.check_kind(res, copy.deepcopy(patch))
                if applied["metadata"].get("name") and applied["metadata"]["name"] != name:
                    raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                      % (applied["metadata"]["name"], name))
                conflicts = [] if force else self.apply_conflicts(res, old, applied, manager, sub)
                if conflicts:
                    by = {}
                    for m, f in conflicts:
                        by.setdefault(m, []).append(f)
                    if len(conflicts) == 1:
                        m, fs = next(iter(by.items()))
                        msg = "Apply failed with 1 conflict: conflict with %s: %s" % (m, fs[0])
                    else:
                        parts = ["conflicts with %s:\n%s" % (m, "\n".join("- " + f for f in fs)) for m, fs in by.items()]
                        msg = "Apply failed with %d conflicts: %s" % (len(conflicts), "\n".join(parts))
                    raise ApiError(409, "Conflict", msg, {"causes": [
                        {"reason": "FieldManagerConflict", "message": "conflict with %s" % m, "field": f}
                        for m, f in conflicts]})
                merged = deep_merge(old, {k: v for k, v in applied.items() if k != "metadata"})
                amd = {k: v for k, v in applied["metadata"].items() if k in ("labels", "annotations", "ownerReferences", "finalizers")}
                merged["metadata"] = deep_merge(old["metadata"], amd)
                # fields this manager applied before and no longer applies, and nobody else owns: removed
                prev = set()
                others = set()
                for e in old["metadata"].get("managedFields") or []:
                    ps = fields_to_paths(e.get("fieldsV1"))
                    if e.get("manager") == manager and e.get("operation") == "Apply" and (e.get("subresource") or None) == sub:
                        prev |= ps
                    else:
                        others |= ps
                now = field_paths(applied, res, sub)
                for p in sorted(prev - now - others, key=len, reverse=True):
                    delete_at(merged, p)
                    for i in range(len(p) - 1, 1, -1):  # parents left empty go too (labels: {})
                        if value_at(merged, p[:i]) == {}:
                            delete_at(merged, p[:i])
                if force:
                    pass
                result = self.build_update(ctx, res, old, merged, sub, manager, "Apply", applied=applied)
            else:
                try:
                    if ct == "application/json-patch+json":
                        patched = json_patch(old, patch)
                    elif ct == "application/merge-patch+json":
                        if not isinstance(patch, dict):
                            raise bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
                        patched = merge_patch(old, patch)
                    else:
                        if not isinstance(patch, dict):
                            raise bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
                        patched = strategic_merge(old, patch)
                except ApiError:
                    raise
                if not isinstance(patched, dict):
                    raise bad_request("the patched object is not an object")
                prv = (patched.get("metadata") or {}).get("resourceVersion")
                if prv and prv != old["metadata"]["resourceVersion"]:
                    raise conflict(res, name)
                result = self.build_update(ctx, res, old, patched, sub, manager, "Update")
            out = self.finish_update(ctx, res, ns, name, sub, old, result, params, dry, warnings)
            if out is not None:
                return 200, out, warnings
        raise conflict(res, name)

    def after_delete(self, res, obj):
        """Side effects of a removal (caller holds the lock)."""
        if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
            spec = obj.get("spec", {})
            gp = (spec.get("group"), spec.get("names", {}).get("plural"))
            crres = next((r for r in self.state.resources.values() if r.is_cr and r.gp == gp), None)
            if crres is not None:
                for o in list(self.state.store(gp).values()):
                    self.state.commit(crres, "DELETED", copy.deepcopy(o), o)
            self.unregister_crd(obj)
        if res.gp == ("", "namespaces"):
            n = obj["metadata"]["name"]
            for r in list(self.state.resources.values()):
                if not r.namespaced:
                    continue
                for (ons, _), o in list(self.state.store(r.gp).items()):
                    if ons == n and self.state.store(r.gp).get((ons, o["metadata"]["name"])) is o:
                        self.state.commit(r, "DELETED", copy.deepcopy(o), o)
        threading.Thread(target=self.gc, daemon=True).start()

    def gc(self):
        """Background garbage collection of dependents whose owners are all gone."""
        time.sleep(0.05)
        for _ in range(100):
            changed = False
            with self.state.lock:
                uids = self.state.all_uids()
                for r in list(self.state.resources.values()):
                    seen = set()
                    for key, o in list(self.state.store(r.gp).items()):
                        if key in seen:
                            continue
                        seen.add(key)
                        refs = o["metadata"].get("ownerReferences") or []
                        if refs and not any(ref.get("uid") in uids for ref in refs):
                            d = copy.deepcopy(o)
                            self.state.commit(r, "DELETED", d, o)
                            self.after_delete_nogc(r, d)
                            changed = True
            if not changed:
                return

    def after_delete_nogc(self, res, obj):
        if res.gp in (("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")):
            self.after_delete(res, obj)

    def do_delete(self, ctx, res, ns, name, params, body):
        opts = {}
        if body:
            try:
                opts = json.loads(body)
            except ValueError as e:
                raise bad_request("error decoding DeleteOptions: %s" % e)
        if isinstance(opts, dict) and opts.get("dryRun"):
            params = dict(params)
            params["dryRun"] = opts["dryRun"][0] if isinstance(opts["dryRun"], list) and opts["dryRun"] else "All"
        dry = self.dry_run_of(params)
        pre = (opts or {}).get("preconditions") or {}
        with self.state.lock:
            old = self.state.get(res, ns, name)
            if old is None:
                raise not_found(res, name)
            omd = old["metadata"]
            if pre.get("uid") and pre["uid"] != omd.get("uid"):
                raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                               % (pre["uid"], omd.get("uid")))
            if pre.get("resourceVersion") and pre["resourceVersion"] != omd.get("resourceVersion"):
                raise conflict(res, name, "Precondition failed: ResourceVersion in precondition: %s, "
                                          "ResourceVersion in object meta: %s" % (pre["resourceVersion"], omd.get("resourceVersion")))
            if dry:
                return 200, self.deleted_response(res, old)
            if omd.get("finalizers"):
                if omd.get("deletionTimestamp"):
                    return 200, old
                upd = copy.deepcopy(old)
                upd["metadata"]["deletionTimestamp"] = now_rfc3339()
                upd["metadata"]["deletionGracePeriodSeconds"] = 0
                self.order_metadata(upd)
                self.state.commit(res, "MODIFIED", upd, old)
                return 200, upd
            d = copy.deepcopy(old)
            self.state.commit(res, "DELETED", d, old)
            if (opts or {}).get("propagationPolicy") == "Orphan":
                self.orphan(d)
            self.after_delete(res, d)
            return 200, self.deleted_response(res, d)

    def orphan(self, owner):
        uid = owner["metadata"].get("uid")
        for r in list(self.state.resources.values()):
            for o in list(self.state.store(r.gp).values()):
                refs = o["metadata"].get("ownerReferences") or []
                if any(x.get("uid") == uid for x in refs):
                    n = copy.deepcopy(o)
                    n["metadata"]["ownerReferences"] = [x for x in refs if x.get("uid") != uid]
                    if not n["metadata"]["ownerReferences"]:
                        del n["metadata"]["ownerReferences"]
                    self.state.commit(r, "MODIFIED", n, o)

    def deleted_response(self, res, obj):
        if res.gp in (("", "pods"), ("", "namespaces")):
            return obj
        d = {"name": obj["metadata"]["name"]}
        if res.group:
            d["group"] = res.group
        d["kind"] = res.plural
        d["uid"] = obj["metadata"].get("uid")
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d}

    # -- reading
    def list_items(self, res, ns, lsel, fsel):
        with self.state.lock:
            items = [o for (ons, _), o in self.state.store(res.gp).items()
                     if (ns is None or ons == ns) and lsel.matches(o["metadata"].get("labels")) and fsel.matches(o)]
            rv = self.state.rv
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, rv

    @staticmethod
    def obj_key(o):
        md = o["metadata"]
        return (md.get("namespace") + "/" if md.get("namespace") else "") + md["name"]

    def do_list(self, res, ns, params):
        lsel = LabelSelector(params.get("labelSelector"))
        fsel = FieldSelector(params.get("fieldSelector"), res)
        if params.get("resourceVersionMatch") == "Exact" and params.get("resourceVersion"):
            try:
                want = int(params["resourceVersion"])
            except ValueError:
                raise bad_request("invalid resourceVersion")
            if want < self.state.oldest:
                raise ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")
        items, rv = self.list_items(res, ns, lsel, fsel)
        snap_key = None
        start = None
        if params.get("continue"):
            try:
                tok = json.loads(base64.urlsafe_b64decode(params["continue"] + "=" * (-len(params["continue"]) % 4)))
                start, trv = tok["start"], int(tok["rv"])
            except (ValueError, KeyError, TypeError) as e:
                raise bad_request("continue key is not valid: %s" % e)
            if trv != -1 and trv < self.state.oldest:
                fresh = base64.urlsafe_b64encode(json.dumps(
                    {"v": "meta.k8s.io/v1", "rv": -1, "start": start}, separators=(",", ":")).encode()).decode().rstrip("=")
                raise ApiError(410, "Expired",
                               "The provided continue parameter is too old to display a consistent list result. You can "
                               "start a new list without the continue parameter, or use the continue token in this "
                               "response to retrieve the remainder of the results. Continuing with the provided token "
                               "results in an inconsistent list - objects that were created, modified, or deleted "
                               "between the time the first chunk was returned and now may show up in the list.",
                               metadata={"continue": fresh})
            if trv != -1:
                rv = trv
                with self.state.lock:
                    snap = self.snapshots.get((res.gp, ns, trv))
                if snap is not None:
                    items = [o for o in snap if lsel.matches(o["metadata"].get("labels")) and fsel.matches(o)]
            s = start.rstrip("\x00")
            items = [o for o in items if self.obj_key(o) > s]
        meta = {"resourceVersion": str(rv)}
        limit = int(params.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            with self.state.lock:
                key = (res.gp, ns, rv)
                if key not in self.snapshots:
                    self.snapshots[key] = sorted(
                        (o for (ons, _), o in self.state.store(res.gp).items() if ns is None or ons == ns),
                        key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])) \
                        if rv == self.state.rv else None
                    if self.snapshots[key] is None:
                        del self.snapshots[key]
                    while len(self.snapshots) > 64:
                        self.snapshots.pop(next(iter(self.snapshots)))
            rest = len(items) - limit
            items = items[:limit]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"v": "meta.k8s.io/v1", "rv": rv, "start": self.obj_key(items[-1]) + "\x00"},
                separators=(",", ":")).encode()).decode().rstrip("=")
            if lsel.empty() and fsel.empty():
                meta["remainingItemCount"] = rest
        if res.is_cr:
            out_items = items
        else:
            out_items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return {"kind": res.kind + "List", "apiVersion": res.gv, "metadata": meta, "items": out_items}, items

    # -- tables
    def columns(self, res):
        name_col = {"name": "Name", "type": "string", "format": "name",
                    "description": "Name must be unique within a namespace. Is required when creating resources, "
                                   "although some resources may allow a client to request the generation of an "
                                   "appropriate name automatically. Name is primarily intended for creation "
                                   "idempotence and configuration definition. Cannot be updated. More info: "
                                   "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
                    "priority": 0}
        age_col = {"name": "Age", "type": "string", "format": "",
                   "description": "CreationTimestamp is a timestamp representing the server time when this object was "
                                  "created.", "priority": 0}
        if res.is_cr:
            cols = res.crd.get("additionalPrinterColumns")
            if not cols:
                return [name_col, dict(age_col, type="date")], [None, ".metadata.creationTimestamp"]
            defs = [name_col]
            paths = [None]
            for c in cols:
                defs.append({"name": c.get("name"), "type": c.get("type", "string"), "format": c.get("format", ""),
                             "description": c.get("description", ""), "priority": c.get("priority", 0)})
                paths.append(c.get("jsonPath"))
            return defs, paths
        if res.gp == ("", "namespaces"):
            st = {"name": "Status", "type": "string", "format": "", "description": "The status of the namespace",
                  "priority": 0}
            return [name_col, st, age_col], [None, ".status.phase", ".metadata.creationTimestamp"]

        def col(n, desc):
            return {"name": n, "type": "string", "format": "", "description": desc, "priority": 0}
        age = ".metadata.creationTimestamp"
        if res.gp == ("", "pods"):  # k/k pkg/printers/internalversion/printers.go
            def ready(o):
                cs = (o.get("status") or {}).get("containerStatuses") or []
                return "%d/%d" % (sum(1 for c in cs if c.get("ready")), len((o.get("spec") or {}).get("containers") or []))

            def phase(o):
                st = o.get("status") or {}
                return st.get("reason") or st.get("phase") or ""

            def restarts(o):
                return str(sum(c.get("restartCount", 0) for c in (o.get("status") or {}).get("containerStatuses") or []))
            return ([name_col, col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
                     col("Status", "The aggregate status of the containers in this pod."),
                     col("Restarts", "The number of times the containers in this pod have been restarted and when the "
                                     "last container in this pod has restarted."), age_col],
                    [None, ready, phase, restarts, age])
        if res.gp == ("", "configmaps"):
            return ([name_col, col("Data", "Data contains the configuration data."), age_col],
                    [None, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), age])
        if res.gp == ("", "secrets"):
            return ([name_col, col("Type", "The type of the secret"), col("Data", "The number of data entries"), age_col],
                    [None, lambda o: o.get("type", "Opaque"), lambda o: len(o.get("data") or {}), age])
        return [name_col, age_col], [None, age]

    def table(self, res, objs, meta, include):
        defs, paths = self.columns(res)
        rows = []
        for o in objs:
            cells = []
            for d, p in zip(defs, paths):
                if p is None:
                    cells.append(o["metadata"]["name"])
                    continue
                if callable(p):
                    cells.append(p(o))
                    continue
                vals = jsonpath(o, p)
                v = vals[0] if vals else None
                if p == ".metadata.creationTimestamp" or d["type"] == "date":
                    v = human_age(v) if v is not None else None
                elif v is not None and d["type"] == "string" and not isinstance(v, str):
                    v = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                cells.append(v)
            row = {"cells": cells}
            if include == "Object":
                row["object"] = o
            elif include != "None":
                row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                 "metadata": o["metadata"]}
            rows.append(row)
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs,
                "rows": rows}
