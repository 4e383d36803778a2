#!/usr/bin/env python3
"""maskmesh-webhook reading Services for their appProtocol (issue 15, docs/http2.md): the
webhook lists the Services of the pod's namespace through lib/k8s, as its service account,
and a Service port that sends to the app port with appProtocol kubernetes.io/h2c (or grpc,
http2) makes the sidecar speak h2c to the app; the annotation still wins, the port name
decides when no Service does. Failures (API unreachable, slow, forbidden) never block
admission: the pod is injected by the port name, with a warning and a log line.

Against the API stand-in (e2e/apiserver), or with MM_K8S_LIVE_KUBECONFIG (hack/test-k8s-live.sh)
against the real kube-apiserver: there the webhook's identity is a service account bound to
the chart's rule (list services), and the slow and failing API tests, which need the
stand-in's fault knob, are skipped. The AdmissionReviews are POSTed to the webhook directly,
as the API server sends them (the stand-in's own webhook calls are test_webhook_cluster's)."""
import base64, http.client, json, os, re, shutil, socket, ssl, subprocess, sys, tempfile, time
import unittest, urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MM_BIN", os.path.join(TOP, "bin"))
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl") or "/usr/bin/kubectl"
LIVE = os.environ.get("MM_K8S_LIVE_KUBECONFIG")
STANDIN_ONLY = unittest.skipIf(LIVE, "needs a fault only the API stand-in injects")
REVIEW = os.path.join(TOP, "tests", "k8s-samples", "admissionreview-pod-create.json")
CHART_RBAC = os.path.join(TOP, "charts", "maskmesh", "templates", "rbac.yaml")
H2C = "--upstream-protocol=h2c"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Env:
    """The API (stand-in or live), the namespace, and the webhook's credentials."""

    def __init__(self, ns):
        self.ns = ns  # one per test class: a deleted namespace stays Terminating a while
        self.dir = tempfile.mkdtemp(prefix="mm-whsvc-")
        self.kc = os.path.join(self.dir, "kubeconfig")
        self.procs, self.files = [], []
        if LIVE:
            shutil.copy(LIVE, self.kc)
        else:
            tokens = os.path.join(self.dir, "tokens")
            with open(tokens, "w") as f:
                # the chart's rule for the webhook, and a user without it
                f.write("webhook-token system:serviceaccount:%s:webhook list services\n" % ns)
                f.write("nosvc-token system:serviceaccount:%s:nosvc get,list configmaps\n" % ns)
            err = open(os.path.join(self.dir, "api.err"), "w")
            self.files.append(err)
            api = subprocess.Popen([os.path.join(TOP, "e2e/apiserver/run"), "--listen", "127.0.0.1:0",
                                    "--kubeconfig", self.kc, "--tokens", tokens],
                                   stdout=subprocess.PIPE, stderr=err, text=True)
            self.procs.append(api)
            line = api.stdout.readline()
            if not line.startswith("ready "):
                raise RuntimeError("the API stand-in did not start: %r" % line)
        with open(self.kc) as f:
            self.kc_text = f.read()
        self.kubectl_in(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                        "apply", "-f", "-")
        if LIVE:
            self.token, self.nosvc_token = self.live_tokens()
        else:
            self.token, self.nosvc_token = "webhook-token", "nosvc-token"

    def live_tokens(self):
        """Service accounts: `webhook` bound to the chart's rule, `nosvc` to nothing."""
        rules = chart_rules()
        docs = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": n, "namespace": self.ns}}
                for n in ("webhook", "nosvc")]
        docs += [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                  "metadata": {"name": "maskmesh-test-" + self.ns}, "rules": rules},
                 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                  "metadata": {"name": "maskmesh-test-" + self.ns},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "maskmesh-test-" + self.ns},
                  "subjects": [{"kind": "ServiceAccount", "name": "webhook", "namespace": self.ns}]}]
        self.kubectl_in(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}), "apply", "-f", "-")
        return [self.kubectl("create", "token", n, "-n", self.ns, "--duration=1h").strip()
                for n in ("webhook", "nosvc")]

    def kubeconfig(self, name, token=None, server=None):
        """A kubeconfig for the webhook: the admin's with another token and/or server."""
        text = self.kc_text
        if token:
            text = re.sub(r"token: \S+", "token: " + token, text)
        if server:
            text = re.sub(r"server: \S+", "server: " + server, text)
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def kubectl(self, *args):
        return self.kubectl_in(None, *args)

    def kubectl_in(self, text, *args):
        r = subprocess.run([KUBECTL, "--kubeconfig", self.kc] + list(args), input=text,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("kubectl %s: %s" % (" ".join(args), r.stderr.strip()))
        return r.stdout

    def service(self, name, selector, ports):
        self.kubectl_in(json.dumps({"apiVersion": "v1", "kind": "Service",
                                    "metadata": {"name": name, "namespace": self.ns},
                                    "spec": {"selector": selector, "ports": ports}}), "apply", "-f", "-")

    def fault(self, body):
        server = re.search(r"server: (\S+)", self.kc_text).group(1)
        admin = re.search(r"token: (\S+)", self.kc_text).group(1)
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        req = urllib.request.Request(server + "/_maskmesh/fault", data=json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + admin,
                                              "Content-Type": "application/json"})
        urllib.request.urlopen(req, context=ctx, timeout=10).read()

    def close(self):
        for p in self.procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.files:
            f.close()
        if LIVE:
            subprocess.run([KUBECTL, "--kubeconfig", self.kc, "delete", "namespace", self.ns, "--wait=false"],
                           capture_output=True, timeout=30)
            subprocess.run([KUBECTL, "--kubeconfig", self.kc, "delete", "clusterrole,clusterrolebinding",
                            "maskmesh-test-" + self.ns], capture_output=True, timeout=30)
        shutil.rmtree(self.dir, True)


def chart_rules():
    """The webhook's rules as the chart writes them (the `maskmesh.webhookRules` block)."""
    with open(CHART_RBAC) as f:
        text = f.read()
    block = re.search(r'define "maskmesh.webhookRules" -}}\n(.*?)\{\{- end', text, re.S).group(1)
    rules = []
    for m in re.finditer(r'- apiGroups: (\[.*?\])\n\s+resources: (\[.*?\])\n\s+verbs: (\[.*?\])', block):
        rules.append({"apiGroups": json.loads(m.group(1)), "resources": json.loads(m.group(2)),
                      "verbs": json.loads(m.group(3))})
    assert rules, "no rules in the chart's maskmesh.webhookRules"
    return rules


class Webhook:
    def __init__(self, env, kubeconfig, *extra):
        d = env.dir
        if not os.path.exists(os.path.join(d, "tls.pem")):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", os.path.join(d, "tls.key"), "-out", os.path.join(d, "tls.pem"),
                            "-days", "1", "-subj", "/CN=webhook", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True)
        self.port = free_port()
        self.log = open(os.path.join(d, "webhook-%d.log" % self.port), "w+")
        self.ns = env.ns
        self.proc = subprocess.Popen([os.path.join(BIN, "maskmesh-webhook"), "--listen", "127.0.0.1:%d" % self.port,
                                      "--cert", os.path.join(d, "tls.pem"), "--key", os.path.join(d, "tls.key"),
                                      "--kubeconfig", kubeconfig] + list(extra),
                                     stdout=self.log, stderr=self.log)
        self.ctx = ssl.create_default_context(cafile=os.path.join(d, "tls.pem"))
        end = time.time() + 10
        while time.time() < end:
            try:
                self.get("/healthz")
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError("the webhook exited: " + self.logs())
                time.sleep(0.05)
        raise AssertionError("the webhook did not come up: " + self.logs())

    def get(self, path):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
        c.request("GET", path)
        body = c.getresponse().read().decode()
        c.close()
        return body

    def logs(self):
        self.log.seek(0)
        return self.log.read()

    def admit(self, labels=None, port_name="http", annotations=None):
        """POSTs the sample CREATE review for a pod in NS; returns (response, seconds)."""
        with open(REVIEW) as f:
            rv = json.load(f)
        pod = rv["request"]["object"]
        rv["request"]["namespace"] = pod["metadata"]["namespace"] = self.ns
        if labels is not None:
            pod["metadata"]["labels"] = labels
        pod["spec"]["containers"][0]["ports"][0]["name"] = port_name
        if annotations:
            pod["metadata"].setdefault("annotations", {}).update(annotations)
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        t0 = time.time()
        c.request("POST", "/mutate-pods", body=json.dumps(rv), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        took = time.time() - t0
        c.close()
        assert r.status == 200, (r.status, body)
        return json.loads(body)["response"], took

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def sidecar_args(resp):
    assert resp["allowed"] and resp.get("patchType") == "JSONPatch", resp
    for op in json.loads(base64.b64decode(resp["patch"])):
        if op["path"] == "/spec/containers/0":
            return op["value"]["args"]
    raise AssertionError("no sidecar in the patch")


def metric(wh, name):
    for line in wh.get("/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


class AppProtocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env("mm-appproto")
        cls.wh = Webhook(cls.env, cls.env.kubeconfig("kc-webhook", token=cls.env.token),
                         "--services-timeout", "1000")
        # app=grpc-app: one Service, appProtocol kubernetes.io/h2c on the app's port 8080
        cls.env.service("grpc-app", {"app": "grpc-app"},
                        [{"name": "api", "port": 80, "targetPort": 8080, "appProtocol": "kubernetes.io/h2c"}])
        # app=named: targetPort by the container port's name, appProtocol grpc
        cls.env.service("named", {"app": "named"},
                        [{"name": "api", "port": 80, "targetPort": "web", "appProtocol": "grpc"}])
        # app=plain: appProtocol http on a port the pod names grpc
        cls.env.service("plain", {"app": "plain"},
                        [{"name": "api", "port": 80, "targetPort": 8080, "appProtocol": "http"}])
        # app=other-port: h2c, but to another port
        cls.env.service("other-port", {"app": "other-port"},
                        [{"name": "api", "port": 80, "targetPort": 9090, "appProtocol": "kubernetes.io/h2c"}])

    @classmethod
    def tearDownClass(cls):
        cls.wh.close()
        cls.env.close()

    def labels(self, app):
        return {"app": app, "maskmesh.io/inject": "true"}

    def test_h2c_from_app_protocol(self):
        resp, _ = self.wh.admit(self.labels("grpc-app"))
        self.assertIn(H2C, sidecar_args(resp))
        self.assertFalse(resp.get("warnings"))

    def test_target_port_by_name(self):
        resp, _ = self.wh.admit(self.labels("named"), port_name="web")
        self.assertIn(H2C, sidecar_args(resp))

    def test_app_protocol_beats_port_name(self):
        resp, _ = self.wh.admit(self.labels("plain"), port_name="grpc-api")
        self.assertNotIn(H2C, sidecar_args(resp))

    def test_annotation_beats_app_protocol(self):
        resp, _ = self.wh.admit(self.labels("grpc-app"), annotations={"maskmesh.io/upstream-protocol": "h1"})
        self.assertNotIn(H2C, sidecar_args(resp))

    def test_port_name_when_no_service_says(self):
        resp, _ = self.wh.admit(self.labels("other-port"))
        self.assertNotIn(H2C, sidecar_args(resp))
        resp, _ = self.wh.admit(self.labels("nobody"), port_name="grpc")
        self.assertIn(H2C, sidecar_args(resp))

    def test_service_created_after_the_pod(self):
        """The ordering limit (docs/http2.md): a Service made after the pod is not seen by that
        pod's injection; the next pod (a rollout) gets it."""
        resp, _ = self.wh.admit(self.labels("late"))
        self.assertNotIn(H2C, sidecar_args(resp))
        self.env.service("late", {"app": "late"},
                         [{"name": "api", "port": 80, "targetPort": 8080, "appProtocol": "kubernetes.io/h2c"}])
        resp, _ = self.wh.admit(self.labels("late"))
        self.assertIn(H2C, sidecar_args(resp))

    def test_lookups_counted(self):
        before = metric(self.wh, 'maskmesh_webhook_service_lookups_total{result="ok"}')
        self.wh.admit(self.labels("grpc-app"))
        self.wh.admit(self.labels("grpc-app"), annotations={"maskmesh.io/upstream-protocol": "h2c"})
        self.wh.admit({"app": "grpc-app"})  # not opted in: no lookup
        self.assertEqual(metric(self.wh, 'maskmesh_webhook_service_lookups_total{result="ok"}'), before + 1)


class Failures(unittest.TestCase):
    """The API cannot answer: injected by the port name, a warning for the user, a log line."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env("mm-appproto-fail")
        cls.env.service("grpc-app", {"app": "grpc-app"},
                        [{"name": "api", "port": 80, "targetPort": 8080, "appProtocol": "kubernetes.io/h2c"}])
        cls.hooks = []

    @classmethod
    def tearDownClass(cls):
        for w in cls.hooks:
            w.close()
        cls.env.close()

    def webhook(self, kubeconfig):
        w = Webhook(self.env, kubeconfig, "--services-timeout", "500")
        self.hooks.append(w)
        return w

    def assert_fallback(self, wh, took, resp, why):
        args = sidecar_args(resp)
        self.assertIn(H2C, args)  # the port is named grpc
        self.assertLess(took, 3.0)
        self.assertTrue(any("could not be read" in w and "follows the port name" in w
                            for w in resp.get("warnings", [])), resp.get("warnings"))
        self.assertRegex(wh.logs(), "services not read.*" + why)
        self.assertGreaterEqual(metric(wh, 'maskmesh_webhook_service_lookups_total{result="error"}'), 1)

    def test_api_unreachable(self):
        wh = self.webhook(self.env.kubeconfig("kc-closed", token=self.env.token,
                                              server="https://127.0.0.1:%d" % free_port()))
        resp, took = wh.admit({"app": "grpc-app", "maskmesh.io/inject": "true"}, port_name="grpc")
        self.assert_fallback(wh, took, resp, "")

    def test_forbidden(self):
        wh = self.webhook(self.env.kubeconfig("kc-nosvc", token=self.env.nosvc_token))
        resp, took = wh.admit({"app": "grpc-app", "maskmesh.io/inject": "true"}, port_name="grpc")
        self.assert_fallback(wh, took, resp, "forbidden|Forbidden|403")

    @STANDIN_ONLY
    def test_api_slow(self):
        wh = self.webhook(self.env.kubeconfig("kc-slow", token=self.env.token))
        self.env.fault({"delay": {"seconds": 5, "path": "/api/v1/namespaces/%s/services" % self.env.ns}})
        try:
            resp, took = wh.admit({"app": "grpc-app", "maskmesh.io/inject": "true"}, port_name="grpc")
        finally:
            self.env.fault({"delay": 0})
        self.assert_fallback(wh, took, resp, "")
        self.assertLess(took, 1.5)  # the 500 ms --services-timeout, not the API's 5 s


class Chart(unittest.TestCase):
    def test_chart_grants_list_services(self):
        rules = chart_rules()
        self.assertIn({"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}, rules)


if __name__ == "__main__":
    unittest.main(verbosity=2)
