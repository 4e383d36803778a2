#!/usr/bin/env python3
"""Kubernetes wire samples: one scenario of API requests (what lib/k8s, the controller and the
webhook's tests rely on), recorded from the real kube-apiserver and replayed against any server
to compare its answers with the recording.

  wire.py --kubeconfig KC --record DIR     run the scenario, write DIR/<sample>.json + RELEASE
  wire.py --kubeconfig KC --compare DIR    run it, compare every answer with DIR's recording

The kubeconfig must hold a bearer token of a user who may do everything. The scenario makes
user system:serviceaccount:default:mm-reader (get/list/watch only) itself on a real server
(a ServiceAccount, RBAC and a TokenRequest); give a server that cannot issue tokens (the API
stand-in) --reader-token with a token of that user instead. hack/record-k8s-wire.sh records
from the pinned release; e2e/apiserver/tests/test_recorded.py compares the stand-in.

A sample file: {"request": {method, path, contentType, body}, "response": {code, contentType,
body}} (body parsed when JSON); watches have "events" instead of a response body. What
compare() ignores is only what differs between two runs of one server: uids, times,
resourceVersions, continue tokens, generated name suffixes, managedFields times, Audit-Id."""
import argparse, base64, copy, http.client, json, os, re, ssl, sys, tempfile, threading, time, urllib.parse

NS = "default"
READER = "system:serviceaccount:default:mm-reader"
CRD_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "crds",
                        "maskmesh.io_maskingpolicies.yaml")


# ---- a minimal client ---------------------------------------------------------------------

def read_kubeconfig(path):
    with open(path) as f:
        text = f.read()
    server = re.search(r"server: (\S+)", text).group(1)
    ca = re.search(r"certificate-authority-data: (\S+)", text)
    token = re.search(r"token: (\S+)", text)
    if not token:
        raise SystemExit("wire.py: %s has no bearer token" % path)
    return server, base64.b64decode(ca.group(1)).decode() if ca else None, token.group(1)


class Api:
    def __init__(self, server, ca_pem, token):
        u = urllib.parse.urlsplit(server)
        self.host, self.port, self.token = u.hostname, u.port or 443, token
        self.ctx = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl._create_unverified_context()

    def conn(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def req(self, method, path, body=None, ct=None, token=None):
        """One request on a fresh connection: (code, content type, parsed body, headers)."""
        c = self.conn()
        hdr = {"Accept": "application/json", "Authorization": "Bearer " + (token or self.token)}
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
            hdr["Content-Type"] = ct or "application/json"
        try:
            c.request(method, path, body=data, headers=hdr)
            r = c.getresponse()
            raw = r.read()
            rct = (r.getheader("Content-Type") or "").split(";")[0]
            return r.status, rct, parse(raw, rct), dict(r.getheaders())
        finally:
            c.close()


def parse(raw, ct):
    if ct == "application/json":
        return json.loads(raw)
    return raw.decode("utf-8", "replace")


class Watch:
    """A watch on its own connection, read in a thread until stop() or the stream ends."""

    def __init__(self, api, path):
        self.events, self.done = [], threading.Event()
        self.c = api.conn(timeout=60)
        self.c.request("GET", path, headers={"Accept": "application/json",
                                             "Authorization": "Bearer " + api.token})
        self.r = self.c.getresponse()
        self.code = self.r.status
        self.ct = (self.r.getheader("Content-Type") or "").split(";")[0]
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        try:
            while True:
                line = self.r.readline()
                if not line:
                    break
                if line.strip():
                    self.events.append(json.loads(line))
        except (OSError, ValueError, AttributeError, http.client.HTTPException):  # stop() closed it
            pass
        self.done.set()

    def wait(self, cond, timeout=20):
        end = time.time() + timeout
        while time.time() < end and not cond(self.events):
            if self.done.is_set():
                break
            time.sleep(0.05)
        return cond(self.events)

    def stop(self):
        try:
            self.c.sock and self.c.sock.shutdown(2)
        except OSError:
            pass
        self.c.close()
        self.t.join(5)
        return list(self.events)


# ---- the scenario -------------------------------------------------------------------------

class Run:
    """Runs the scenario; each sample is handed to `sink(name, sample)`."""

    def __init__(self, api, sink, reader_token=None):
        self.api, self.sink, self.reader_token = api, sink, reader_token

    def call(self, name, method, path, body=None, ct=None, token=None, want=None):
        code, rct, out, _ = self.api.req(method, path, body, ct, token)
        if name:  # copies: the scenario goes on to change what it sent and got
            self.sink(name, copy.deepcopy(
                {"request": {"method": method, "path": path, "contentType": ct if body is not None else None,
                             "body": body if not isinstance(body, bytes) else body.decode()},
                 "response": {"code": code, "contentType": rct, "body": out}}))
        if want is not None and code != want:
            raise RuntimeError("%s %s: %d, not %d: %s" % (method, path, code, want, out))
        return out

    def watch(self, name, path, action, until, timeout=20):
        w = Watch(self.api, path)
        if action:
            action()
        w.wait(until, timeout)
        events = w.stop()
        self.sink(name, {"request": {"method": "GET", "path": path, "contentType": None, "body": None},
                         "response": {"code": w.code, "contentType": w.ct}, "events": events})
        return events

    def reader(self):
        """user mm-reader: get/list/watch configmaps; a token from the server (TokenRequest)."""
        if self.reader_token:
            return self.reader_token
        a = self.api
        a.req("POST", "/api/v1/namespaces/default/serviceaccounts",
              {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "mm-reader"}})
        a.req("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
              {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "mm-reader"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]})
        a.req("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
              {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "mm-reader"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mm-reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "mm-reader", "namespace": "default"}]})
        code, _, tr, _ = a.req("POST", "/api/v1/namespaces/default/serviceaccounts/mm-reader/token",
                               {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                "spec": {"expirationSeconds": 3600}})
        if code != 201:
            raise RuntimeError("TokenRequest for mm-reader: %d %s" % (code, tr))
        time.sleep(1)  # RBAC's authorizer cache sees the binding
        return tr["status"]["token"]

    def all(self, compacted=None):
        """The whole scenario. compacted(): waits until the server has compacted what was
        written so far (None: skip the samples that need it)."""
        cms = "/api/v1/namespaces/%s/configmaps" % NS
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "rec-cm", "labels": {"rec": "wire"}}, "data": {"k": "v1"}}
        reader = self.reader()

        # discovery and errors outside any object
        self.call("version", "GET", "/version")
        self.call("status-401", "GET", cms, token="not-a-token-of-this-server")
        self.call("status-403", "POST", cms, cm, token=reader)
        self.call("unserved-path-404", "GET", "/apis/nothing.example/v1/things")
        self.call("namespace-get", "GET", "/api/v1/namespaces/default")
        self.call("namespace-missing-create", "POST", "/api/v1/namespaces/nope/configmaps", cm)

        # a ConfigMap through every verb
        first = self.call("configmap-create", "POST", cms, cm, want=201)
        self.call("configmap-create-409", "POST", cms, cm)
        self.call("configmap-get", "GET", cms + "/rec-cm")
        self.call("configmap-get-404", "GET", cms + "/rec-missing")
        stale = copy.deepcopy(first)
        self.call("configmap-patch-merge", "PATCH", cms + "/rec-cm", {"data": {"k": "v2", "m": "x"}},
                  "application/merge-patch+json", want=200)
        stale["data"]["k"] = "stale"
        self.call("configmap-update-409", "PUT", cms + "/rec-cm", stale)
        self.call("configmap-patch-json", "PATCH", cms + "/rec-cm",
                  [{"op": "replace", "path": "/data/k", "value": "v3"}, {"op": "remove", "path": "/data/m"}],
                  "application/json-patch+json", want=200)
        self.call("configmap-patch-json-bad-op", "PATCH", cms + "/rec-cm",
                  [{"op": "frobnicate", "path": "/data/k"}], "application/json-patch+json")
        self.call("configmap-patch-strategic", "PATCH", cms + "/rec-cm", {"data": {"s": "smp"}},
                  "application/strategic-merge-patch+json", want=200)
        applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rec-cm"}, "data": {"a": "applied"}}
        self.call("configmap-apply", "PATCH", cms + "/rec-cm?fieldManager=rec-a&force=true", applied,
                  "application/apply-patch+yaml", want=200)
        self.call("configmap-apply-409", "PATCH", cms + "/rec-cm?fieldManager=rec-b",
                  dict(applied, data={"a": "other"}), "application/apply-patch+yaml")
        self.call("configmap-apply-no-fieldmanager-422", "PATCH", cms + "/rec-cm", applied,
                  "application/apply-patch+yaml")
        self.call("configmap-apply-slash-escape-400", "PATCH", cms + "/rec-cm?fieldManager=rec-a&force=true",
                  '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"rec-cm"},'
                  '"data":{"a":"app.kubernetes.io\\/name"}}', "application/apply-patch+yaml")
        self.call("configmap-apply-create", "PATCH", cms + "/rec-cm2?fieldManager=rec-a",
                  dict(applied, metadata={"name": "rec-cm2", "labels": {"rec": "wire"}}),
                  "application/apply-patch+yaml", want=201)
        self.call("configmap-force-on-merge-422", "PATCH", cms + "/rec-cm?force=true", {"data": {}},
                  "application/merge-patch+json")
        page1 = self.call("configmap-list-page1", "GET", cms + "?labelSelector=rec%3Dwire&limit=1")
        self.call("configmap-delete-precondition-409", "DELETE", cms + "/rec-cm2",
                  {"kind": "DeleteOptions", "apiVersion": "v1",
                   "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})
        self.call("configmap-delete", "DELETE", cms + "/rec-cm2", want=200)

        # watches: events of a change, a bookmark, initial events, a too-old resourceVersion
        rv = self.call(None, "GET", cms + "?labelSelector=rec%3Dwire")["metadata"]["resourceVersion"]

        def changes():
            self.call(None, "POST", cms, dict(cm, metadata={"name": "rec-w", "labels": {"rec": "wire"}}), want=201)
            self.call(None, "PATCH", cms + "/rec-w", {"data": {"k": "w2"}}, "application/merge-patch+json", want=200)
            self.call(None, "DELETE", cms + "/rec-w", want=200)
        self.watch("watch-configmaps", cms + "?watch=1&labelSelector=rec%3Dwire&resourceVersion=" + rv,
                   changes, lambda ev: len(ev) >= 3)
        # a bookmark comes once the server's resourceVersion has moved (a write outside the
        # selector), about 2 s before timeoutSeconds
        self.watch("watch-bookmark", cms + "?watch=1&labelSelector=rec%3Dnothing&allowWatchBookmarks=true"
                   "&timeoutSeconds=8&resourceVersion=" + rv,
                   lambda: self.call(None, "PATCH", cms + "/rec-cm", {"data": {"b": "1"}},
                                     "application/merge-patch+json", want=200),
                   lambda ev: any(e["type"] == "BOOKMARK" for e in ev), timeout=12)
        # (sendInitialEvents=true itself is not recorded: with Debian's etcd 3.4.23 the server
        # answers an ERROR event, InternalError "the required storage feature
        # RequestWatchProgress is disabled"; a newer etcd is needed for it)
        self.call("watch-initial-events-without-match-422", "GET",
                  cms + "?watch=1&sendInitialEvents=true&allowWatchBookmarks=true")

        # the project's CRD and a MaskingPolicy
        crd = self.call(None, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/maskingpolicies.maskmesh.io")
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            raise RuntimeError("the maskingpolicies CRD is not on the server: %s" % crd)
        mps = "/apis/maskmesh.io/v1alpha1/namespaces/%s/maskingpolicies" % NS
        mp = {"apiVersion": "maskmesh.io/v1alpha1", "kind": "MaskingPolicy",
              "metadata": {"name": "rec-mp"},
              "spec": {"selector": {"matchLabels": {"app": "rec"}},
                       "rules": [{"name": "card", "detectors": ["credit_card"],
                                  "action": {"type": "mask", "keepLast": 4}}]}}
        self.call("maskingpolicy-create", "POST", mps, mp, want=201)
        self.call("maskingpolicy-status-patch", "PATCH", mps + "/rec-mp/status",
                  {"status": {"observedGeneration": 1, "ruleCount": 1,
                              "conditions": [{"type": "Ready", "status": "True", "reason": "Rendered",
                                              "message": "rendered", "observedGeneration": 1,
                                              "lastTransitionTime": "2026-12-06T00:00:00Z"}]}},
                  "application/merge-patch+json", want=200)
        self.call("maskingpolicy-get", "GET", mps + "/rec-mp")
        self.call("maskingpolicy-list", "GET", mps)
        self.call("maskingpolicy-strategic-415", "PATCH", mps + "/rec-mp", {"spec": {}},
                  "application/strategic-merge-patch+json")
        self.call("maskingpolicy-unknown-field-strict-400", "POST", mps + "?fieldValidation=Strict",
                  dict(mp, metadata={"name": "rec-mp2"}, spec=dict(mp["spec"], bogus=1)))
        self.call("maskingpolicy-invalid-enum-422", "POST", mps,
                  dict(mp, metadata={"name": "rec-mp4"}, spec=dict(mp["spec"], mode="sometimes")))
        self.call("maskingpolicy-invalid-422", "POST", mps,
                  dict(mp, metadata={"name": "rec-mp3"}, spec={"selector": {}, "rules": []}))
        self.call("maskingpolicy-delete", "DELETE", mps + "/rec-mp", want=200)

        # the other kinds the controller writes
        self.call("networkpolicy-create", "POST", "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies" % NS,
                  {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "rec-np"},
                   "spec": {"podSelector": {"matchLabels": {"app": "rec"}}, "policyTypes": ["Ingress"],
                            "ingress": [{"ports": [{"port": 15480}],
                                         "from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}]}]}},
                  want=201)
        leases = "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % NS
        lease = self.call("lease-create", "POST", leases,
                          {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": {"name": "rec-lease"},
                           "spec": {"holderIdentity": "rec_a", "leaseDurationSeconds": 15,
                                    "acquireTime": "2026-12-06T00:00:00.123456Z",
                                    "renewTime": "2026-12-06T00:00:01.123456Z", "leaseTransitions": 0}},
                          want=201)
        lease["spec"]["renewTime"] = "2026-12-06T00:00:02.000001Z"
        self.call("lease-update", "PUT", leases + "/rec-lease", lease, want=200)
        self.call("event-create-events-v1", "POST", "/apis/events.k8s.io/v1/namespaces/%s/events" % NS,
                  {"apiVersion": "events.k8s.io/v1", "kind": "Event",
                   "metadata": {"name": "rec-ev"}, "eventTime": "2026-12-06T00:00:00.000000Z",
                   "reportingController": "maskmesh.io/controller", "reportingInstance": "rec",
                   "action": "Render", "reason": "Rendered", "type": "Normal", "note": "rendered",
                   "regarding": {"apiVersion": "maskmesh.io/v1alpha1", "kind": "MaskingPolicy",
                                 "namespace": NS, "name": "rec-mp"}}, want=201)
        self.call("event-get-core-v1", "GET", "/api/v1/namespaces/%s/events/rec-ev" % NS)
        self.call("pod-create", "POST", "/api/v1/namespaces/%s/pods" % NS,
                  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rec-pod"},
                   "spec": {"containers": [{"name": "app", "image": "busybox", "ports": [{"containerPort": 8080}]}]}},
                  want=201)
        self.call("pod-status-patch", "PATCH", "/api/v1/namespaces/%s/pods/rec-pod/status" % NS,
                  {"status": {"message": "from-status"}}, "application/merge-patch+json", want=200)

        # what needs compaction: a continue token and an exact resourceVersion that are gone
        if compacted:
            # (the watch cache serves recent continue tokens and resourceVersions from its own
            # snapshots and history: these are the first page's, half a minute old, and RV 1)
            self.call(None, "POST", cms, dict(cm, metadata={"name": "rec-cm3", "labels": {"rec": "wire"}}), want=201)
            compacted()
            self.call("list-continue-410", "GET", cms + "?labelSelector=rec%3Dwire&limit=1&continue="
                      + urllib.parse.quote(page1["metadata"]["continue"]))
            self.call("list-exact-rv-410", "GET", cms + "?resourceVersion=%s&resourceVersionMatch=Exact"
                      % page1["metadata"]["resourceVersion"])
            self.watch("watch-expired", cms + "?watch=1&resourceVersion=1", None, lambda ev: len(ev) >= 1)

        for path in (cms + "/rec-cm", cms + "/rec-cm3", "/api/v1/namespaces/%s/pods/rec-pod?gracePeriodSeconds=0" % NS,
                     leases + "/rec-lease", "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/rec-np" % NS,
                     "/apis/events.k8s.io/v1/namespaces/%s/events/rec-ev" % NS):
            self.call(None, "DELETE", path)


NEEDS_COMPACTION = ("list-continue-410", "list-exact-rv-410", "watch-expired")

# ---- comparison ---------------------------------------------------------------------------

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VOLATILE = {"uid", "resourceVersion", "continue", "creationTimestamp", "time", "token",
            "expirationTimestamp"}
# values that differ between two runs of one server, beyond the keys above
GENERATED = [(re.compile(r"kube-api-access-[a-z0-9]{5}"), "kube-api-access-XXXXX"),
             (re.compile(r"resource version: \d+ \(\d+\)"), "resource version: N (N)"),
             (re.compile(r"^\d+$"), "N")]


def normalize(x, key=None):
    if isinstance(x, dict):
        return {k: normalize(v, k) for k, v in x.items()}
    if isinstance(x, list):
        return [normalize(v, key) for v in x]
    if isinstance(x, str):
        if key in VOLATILE:
            return "<%s>" % key
        if TIME.match(x) and key not in ("acquireTime", "renewTime", "eventTime", "lastTransitionTime"):
            return "<time>"
        x = UID.sub("<uid>", x)
        for rx, rep in GENERATED[:2]:
            x = rx.sub(rep, x)
        return x
    return x


def differences(want, got, path="", out=None):
    """Where got differs from want: a list of 'path: wanted X, got Y' lines (keys, values,
    list lengths; key order is not compared: the wire does not promise it)."""
    out = [] if out is None else out
    if isinstance(want, dict) and isinstance(got, dict):
        for k in want:
            if k not in got:
                out.append("%s.%s: missing (wanted %s)" % (path, k, short(want[k])))
            else:
                differences(want[k], got[k], "%s.%s" % (path, k), out)
        for k in got:
            if k not in want:
                out.append("%s.%s: not in the recording (got %s)" % (path, k, short(got[k])))
    elif isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            out.append("%s: %d items, wanted %d" % (path, len(got), len(want)))
        for i, (a, b) in enumerate(zip(want, got)):
            differences(a, b, "%s[%d]" % (path, i), out)
    elif want != got:
        out.append("%s: wanted %s, got %s" % (path, short(want), short(got)))
    return out


def short(v):
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= 200 else s[:197] + "..."


def sample_view(sample):
    """What is compared of a sample: the request, the response's code, content type, body
    or events (normalized)."""
    req = dict(sample["request"], body=normalize(sample["request"]["body"]),
               path=re.sub(r"(resourceVersion|continue)=[^&]+", r"\1=<\1>", sample["request"]["path"]))
    v = {"request": req, "code": sample["response"]["code"],
         "contentType": sample["response"]["contentType"]}
    if sample["request"]["path"] == "/version":  # the fields, not which release
        v["body"] = sorted(sample["response"]["body"])
    elif "events" in sample:
        v["events"] = normalize(sample["events"])
    else:
        v["body"] = normalize(sample["response"].get("body"))
    return v


def compare_sample(want, got):
    return differences(sample_view(want), sample_view(got))


def load(dirname):
    out = {}
    for f in sorted(os.listdir(dirname)):
        if f.endswith(".json"):
            with open(os.path.join(dirname, f)) as fh:
                out[f[:-5]] = json.load(fh)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--reader-token")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--record", metavar="DIR")
    g.add_argument("--compare", metavar="DIR")
    ap.add_argument("--compaction-wait", type=float, default=0,
                    help="record the samples that need compaction, waiting up to this many seconds")
    ap.add_argument("--only", help="record only these samples (comma-separated)")
    a = ap.parse_args()
    api = Api(*read_kubeconfig(a.kubeconfig))
    got = {}
    compacted = None
    if a.compaction_wait:
        compacted = lambda: time.sleep(a.compaction_wait)
    Run(api, lambda n, s: got.__setitem__(n, s), a.reader_token).all(compacted)
    if a.record:
        os.makedirs(a.record, exist_ok=True)
        keep = set(a.only.split(",")) if a.only else set(got)
        for n, s in got.items():
            if n not in keep:
                continue
            with open(os.path.join(a.record, n + ".json"), "w") as f:
                json.dump(s, f, indent=1, sort_keys=False)
                f.write("\n")
        version = api.req("GET", "/version")[2]
        with open(os.path.join(a.record, "RELEASE"), "w") as f:
            f.write("kube-apiserver %s (%s, built %s)\n" % (version["gitVersion"], version["gitCommit"],
                                                            version["buildDate"]))
        print("recorded %d samples from kube-apiserver %s into %s" % (len(keep & set(got)), version["gitVersion"],
                                                                      a.record))
        return 0
    want = load(a.compare)
    passed = failed = 0
    for n in sorted(want):
        if n not in got:
            if n in NEEDS_COMPACTION:
                continue
            print("FAIL %s: not produced by this run" % n)
            failed += 1
            continue
        d = compare_sample(want[n], got[n])
        if d:
            print("FAIL %s:\n  %s" % (n, "\n  ".join(d)))
            failed += 1
        else:
            print("ok   %s" % n)
            passed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
