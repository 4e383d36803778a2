"""Start e2e/apiserver/run on 127.0.0.1:0 and talk to it with the standard library only."""

import base64
import http.client
import json
import os
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
APISERVER = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(APISERVER))
SAMPLES = os.path.join(os.path.dirname(REPO), 'shared', 'k8s-samples')
# the stand-in's launcher; STANDIN_RUN points the tests at another build of the same contract
RUN = os.environ.get('STANDIN_RUN') or os.path.join(APISERVER, 'run')
CRD_FILE = os.path.join(REPO, 'crds', 'maskmesh.io_maskingpolicies.yaml')
FIXTURE_CRD = os.path.join(HERE, 'fixtures', 'maskingpolicies-crd.yaml')

sys.path.insert(0, APISERVER)
from standin import yamlmini  # noqa: E402


def crd_path():
    """The project's CRD when present, else the fixture kept here."""
    return CRD_FILE if os.path.exists(CRD_FILE) else FIXTURE_CRD


def load_crd():
    with open(crd_path()) as f:
        return yamlmini.load(f.read())


def sample(name):
    with open(os.path.join(SAMPLES, name)) as f:
        if name.endswith('.ndjson'):
            return [json.loads(l) for l in f if l.strip()]
        if name.endswith('.yaml'):
            return yamlmini.load(f.read())
        return json.load(f)


def have_samples():
    return os.path.isdir(SAMPLES)


class Server:
    """One apiserver process; stop() sends SIGTERM and checks it exits cleanly."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix='apiserver-test-')
        self.kubeconfig = os.path.join(self.dir, 'kubeconfig')
        with open(os.path.join(self.dir, 'stderr'), 'wb') as errf:
            self.proc = subprocess.Popen([RUN, '--listen', '127.0.0.1:0', '--kubeconfig', self.kubeconfig] + list(extra),
                                         stdout=subprocess.PIPE, stderr=errf)
        deadline = time.monotonic() + 20
        line = b''
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        m = re.match(rb'^ready (https://127\.0\.0\.1:(\d+))\n$', line)
        if not m:
            self.proc.kill()
            raise RuntimeError('apiserver did not get ready: %r %s' % (line, self.stderr()))
        self.url = m.group(1).decode()
        self.port = int(m.group(2))
        with open(self.kubeconfig) as f:
            kc = yamlmini.load(f.read())
        self.token = kc['users'][0]['user']['token']
        self.ca_pem = base64.b64decode(kc['clusters'][0]['cluster']['certificate-authority-data'])
        self.ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        self.kc = kc

    def stderr(self):
        try:
            with open(os.path.join(self.dir, 'stderr'), 'rb') as f:
                return f.read().decode(errors='replace')
        except OSError:
            return ''

    def client(self, token=None):
        return Client(self, token if token is not None else self.token)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = 'killed'
        else:
            rc = self.proc.returncode
        self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Client:
    def __init__(self, server, token):
        self.server = server
        self.token = token
        self.conn = None

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection('127.0.0.1', self.server.port, context=self.server.ctx, timeout=30)
        return self.conn

    def request(self, method, path, body=None, ctype=None, headers=None, accept='application/json'):
        h = {'Accept': accept, 'User-Agent': 'apiserver-tests/1.0 (linux/amd64)'}
        if self.token:
            h['Authorization'] = 'Bearer ' + self.token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
            h['Content-Type'] = ctype or 'application/json'
        h.update(headers or {})
        for attempt in (1, 2):
            c = self._conn()
            try:
                c.request(method, path, body=data, headers=h)
                r = c.getresponse()
                return Response(r.status, r.getheaders(), r.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise

    def get(self, path, **kw):
        return self.request('GET', path, **kw)

    def post(self, path, body, **kw):
        return self.request('POST', path, body, **kw)

    def put(self, path, body, **kw):
        return self.request('PUT', path, body, **kw)

    def patch(self, path, body, ctype, **kw):
        return self.request('PATCH', path, body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.request('DELETE', path, body, **kw)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def watch(self, path, timeout=10, accept='application/json'):
        return Watch(self.server, self.token, path, timeout, accept)


class Watch:
    """A streaming watch: next_event() returns the next decoded line (or None at the end)."""

    def __init__(self, server, token, path, timeout, accept):
        self.conn = http.client.HTTPSConnection('127.0.0.1', server.port, context=server.ctx, timeout=timeout)
        self.conn.request('GET', path, headers={'Authorization': 'Bearer ' + token, 'Accept': accept})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.raw_lines = []

    def header(self, name):
        return self.resp.getheader(name)

    def next_event(self):
        line = self.resp.readline()
        if not line:
            return None
        self.raw_lines.append(line)
        return json.loads(line)

    def close(self):
        self.conn.close()


def eventually(fn, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(interval)


def find_kubectl(name):
    for p in (os.path.join('/usr/bin', name), os.path.join('/usr/lib/google-cloud-sdk/bin', name)):
        if os.access(p, os.X_OK):
            return p
    return None


def skip_unless(cond, why):
    return unittest.skipUnless(cond, why)
