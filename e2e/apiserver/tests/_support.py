"""Shared helpers for the stand-in's tests: start/stop a server, a small HTTPS JSON client."""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.environ.get("STANDIN_RUN") or os.path.join(os.path.dirname(HERE), "run")
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SAMPLES = "/work/shared/k8s-samples"
READONLY = "readonly-token-for-tests"


def sample(name):
    with open(os.path.join(SAMPLES, name)) as f:
        if name.endswith(".ndjson"):
            return [json.loads(line) for line in f if line.strip()]
        return json.load(f)


def crd_path():
    """The project's MaskingPolicy CRD (crds/*.yaml), else the fixture copy."""
    d = os.path.join(REPO, "crds")
    if os.path.isdir(d):
        for n in sorted(os.listdir(d)):
            if n.endswith(".yaml") and "maskingpolic" in n:
                return os.path.join(d, n)
    return os.path.join(HERE, "fixtures", "maskingpolicies-crd.json")


# A JSON CRD (the stand-in accepts JSON bodies only; kubectl converts YAML itself).
with open(os.path.join(HERE, "fixtures", "maskingpolicies-crd.json")) as _f:
    CRD = json.load(_f)


class Server:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="standin-test-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.errlog = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, RUN, "--listen", "127.0.0.1:0", "--kubeconfig", self.kubeconfig,
             "--readonly-token", READONLY] + list(extra),
            stdout=subprocess.PIPE, stderr=self.errlog, text=True)
        line = [None]

        def read():
            line[0] = self.proc.stdout.readline()
        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(20)
        m = re.match(r"^ready https://127\.0\.0\.1:(\d+)\n$", line[0] or "")
        if not m:
            self.proc.kill()
            self.errlog.close()
            with open(os.path.join(self.dir, "stderr"), errors="replace") as f:
                raise RuntimeError("stand-in did not start: %r %s" % (line[0], f.read()[-2000:]))
        self.port = int(m.group(1))
        self.url = "https://127.0.0.1:%d" % self.port
        with open(self.kubeconfig) as f:
            kc = f.read()
        self.token = re.search(r"token: (\S+)", kc).group(1)
        ca = base64.b64decode(re.search(r"certificate-authority-data: (\S+)", kc).group(1))
        self.ca_file = os.path.join(self.dir, "ca.crt")
        with open(self.ca_file, "wb") as f:
            f.write(ca)
        self.ctx = ssl.create_default_context(cafile=self.ca_file)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self.errlog.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def conn(self, timeout=10):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)

    def req(self, method, path, body=None, token=None, ctype="application/json", headers=None, raw=False,
            timeout=10):
        """Returns (status, headers(list), body: parsed JSON or text)."""
        c = self.conn(timeout)
        h = {"Accept": "application/json"}
        if token is not False:
            h["Authorization"] = "Bearer " + (token or self.token)
        if body is not None:
            h["Content-Type"] = ctype
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = r.getheaders()
        status = r.status
        c.close()
        if raw:
            return status, hdrs, data
        ct = dict((k.lower(), v) for k, v in hdrs).get("content-type", "")
        if ct.startswith("application/json"):
            return status, hdrs, json.loads(data)
        return status, hdrs, data.decode()

    def fault(self, **kw):
        st, _, body = self.req("POST", "/_maskmesh/fault", kw)
        assert st == 200, (st, body)
        return body


class Watch:
    """A raw watch stream: reads chunked NDJSON lines with a deadline."""

    def __init__(self, server, path, timeout=10, headers=None):
        self.c = server.conn(timeout)
        h = {"Authorization": "Bearer " + server.token, "Accept": "application/json"}
        h.update(headers or {})
        self.c.request("GET", path, headers=h)
        self.r = self.c.getresponse()
        self.status = self.r.status
        self.headers = dict((k.lower(), v) for k, v in self.r.getheaders())
        self.buf = b""
        self.abrupt = False

    def next(self, timeout=5):
        """The next event, or None at end of stream. Raises TimeoutError."""
        self.c.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            try:
                chunk = self.r.read1(65536)
            except TimeoutError:
                raise
            except http.client.IncompleteRead:
                self.abrupt = True
                return None
            except OSError as e:
                raise TimeoutError(str(e))
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        try:
            self.c.close()
        except OSError:
            pass


class ServerTest(unittest.TestCase):
    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.s = Server(*cls.server_args)

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def status_like(self, body, sample_body, code):
        """body is a Status with the sample's shape (same keys, reason, code)."""
        self.assertEqual(body["kind"], "Status")
        self.assertEqual(body["apiVersion"], "v1")
        self.assertEqual(body["status"], "Failure")
        self.assertEqual(body["code"], code)
        self.assertEqual(body.get("reason"), sample_body.get("reason"))
        self.assertEqual(sorted(body), sorted(sample_body))
        if "details" in sample_body:
            self.assertEqual(sorted(body["details"]), sorted(sample_body["details"]))

    def ensure_crd(self):
        st, _, _ = self.s.req("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/maskingpolicies.maskmesh.io")
        if st == 404:
            st, _, body = self.s.req("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
            self.assertEqual(st, 201, body)

    def ensure_ns(self, name, labels=None):
        st, _, _ = self.s.req("GET", "/api/v1/namespaces/" + name)
        if st == 404:
            md = {"name": name}
            if labels:
                md["labels"] = labels
            st, _, body = self.s.req("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": md})
            self.assertEqual(st, 201, body)


def mp(name, ns="shop", port=8080, labels=None):
    md = {"name": name, "namespace": ns}
    if labels:
        md["labels"] = labels
    return {"apiVersion": "maskmesh.io/v1alpha1", "kind": "MaskingPolicy", "metadata": md,
            "spec": {"port": port, "selector": {"matchLabels": {"app": "payments"}},
                     "rules": [{"name": "card-number", "fields": ["$.card.number"],
                                "action": {"type": "mask", "char": "*", "keepLast": 4}}]}}


def wait_until(pred, timeout=5.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
