"""Shared helpers for the stand-in's tests: start/stop a server (`Server`), one-shot requests
(`Server.req`), a keep-alive client (`Server.client()`), raw watches, samples and the CRD."""
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
SAMPLES = os.path.join(REPO, "tests", "k8s-samples")
READONLY = "readonly-token-for-tests"

sys.path.insert(0, os.path.dirname(HERE))
from standin import yamlmini  # noqa: E402


def sample(name):
    with open(os.path.join(SAMPLES, name)) as f:
        if name.endswith(".ndjson"):
            return [json.loads(line) for line in f if line.strip()]
        if name.endswith(".yaml"):
            return yamlmini.load(f.read())
        return json.load(f)


RECORDED = os.path.join(REPO, "tests", "k8s", "recorded", "v1.37.2")


def recorded(name):
    """A sample recorded from kube-apiserver v1.37.2 (tests/k8s/recorded): the response body,
    or the events of a watch."""
    with open(os.path.join(RECORDED, name + ".json")) as f:
        s = json.load(f)
    return s["events"] if "events" in s else s["response"]["body"]


def crd_path():
    """The project's MaskingPolicy CRD (crds/*.yaml), else the fixture copy."""
    d = os.path.join(REPO, "crds")
    if os.path.isdir(d):
        for n in sorted(os.listdir(d)):
            if n.endswith(".yaml") and "maskingpolic" in n:
                return os.path.join(d, n)
    return os.path.join(HERE, "fixtures", "maskingpolicies-crd.json")


def load_crd():
    """The CRD of crd_path() as an object."""
    with open(crd_path()) as f:
        return yamlmini.load(f.read())


def find_kubectl(name):
    """/usr/bin/NAME or /usr/lib/google-cloud-sdk/bin/NAME, whichever is executable, else None."""
    for d in ("/usr/bin", "/usr/lib/google-cloud-sdk/bin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


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
        """SIGTERM; returns the exit status (0 after a clean stop) or "killed"."""
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                rc = "killed"
        self.proc.stdout.close()
        self.errlog.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def client(self, token=None):
        """A keep-alive client with the admin token (or `token`)."""
        return Client(self, token if token is not None else self.token)

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


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Client:
    """Requests on one kept-alive connection (reopened once if the server closed it)."""

    def __init__(self, server, token):
        self.server = server
        self.token = token
        self.conn = None

    def request(self, method, path, body=None, ctype=None, headers=None, accept="application/json"):
        h = {"Accept": accept, "User-Agent": "apiserver-tests/1.0 (linux/amd64)"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
            h["Content-Type"] = ctype or "application/json"
        h.update(headers or {})
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self.server.conn(30)
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                return Response(r.status, r.getheaders(), r.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body, ctype, **kw):
        return self.request("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body, **kw)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


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
