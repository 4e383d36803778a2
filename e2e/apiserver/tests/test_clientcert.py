"""x509 client-certificate authentication (--client-cert, --client-ca-file), with curl-free Python
clients and the real kubectl through the contexts the stand-in writes."""
import glob
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

from e2e.apiserver.tests._support import Server

KUBECTLS = ["/usr/bin/kubectl"] + sorted(glob.glob("/usr/lib/google-cloud-sdk/bin/kubectl.1.*"))


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), check=True, cwd=cwd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".crt", "-days", "1", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=d)


def make_cert(d, ca, name, subj):
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj, cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "1", "-extfile", name + ".ext", cwd=d)
    return os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")


class ClientCertTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = tempfile.mkdtemp(prefix="standin-certs-")
        make_ca(cls.d, "extra-ca")       # trusted through --client-ca-file
        make_ca(cls.d, "other-ca")       # trusted by nobody
        cls.carol = make_cert(cls.d, "extra-ca", "carol", "/O=system:masters/CN=carol")
        cls.mallory = make_cert(cls.d, "other-ca", "mallory", "/O=system:masters/CN=mallory")
        cls.nocn = make_cert(cls.d, "extra-ca", "nocn", "/O=system:masters")
        with open(os.path.join(cls.d, "tokens"), "w") as f:
            f.write("unused-token-0123 bob get,list configmaps\n")
        cls.s = Server("--client-cert", "alice:system:masters", "--client-cert", "bob:dev,qa",
                       "--client-ca-file", os.path.join(cls.d, "extra-ca.crt"),
                       "--tokens", os.path.join(cls.d, "tokens"))
        cls.home = tempfile.mkdtemp(prefix="standin-certs-home-")

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()
        shutil.rmtree(cls.d, ignore_errors=True)
        shutil.rmtree(cls.home, ignore_errors=True)

    def get(self, path, cert=None, token=None):
        ctx = ssl.create_default_context(cafile=self.s.ca_file)
        if cert:
            ctx.load_cert_chain(*cert)
        c = http.client.HTTPSConnection("127.0.0.1", self.s.port, context=ctx, timeout=10)
        h = {"Accept": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + token
        c.request("GET", path, headers=h)
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        return r.status, body

    def kubectl(self, binary, *args, check=True):
        env = dict(os.environ, HOME=self.home, KUBECACHEDIR=os.path.join(self.home, "cache"))
        p = subprocess.run([binary, "--kubeconfig", self.s.kubeconfig] + list(args), capture_output=True,
                           text=True, env=env, timeout=30)
        if check and p.returncode != 0:
            raise AssertionError("%s %s: %s%s" % (binary, " ".join(args), p.stdout, p.stderr))
        return p

    def test_kubeconfig_has_both_forms(self):
        with open(self.s.kubeconfig) as f:
            kc = f.read()
        self.assertIn("client-certificate-data: ", kc)
        self.assertIn("client-key-data: ", kc)
        self.assertIn("client-certificate: kubeconfig.alice.crt\n", kc)
        self.assertIn("client-key: kubeconfig.alice.key\n", kc)
        self.assertTrue(os.path.exists(self.s.kubeconfig + ".bob.key"))
        self.assertEqual(os.stat(self.s.kubeconfig + ".bob.key").st_mode & 0o077, 0)
        self.assertIn("current-context: admin\n", kc)  # unchanged

    def test_certificate_user_and_groups(self):
        alice = (self.s.kubeconfig + ".alice.crt", self.s.kubeconfig + ".alice.key")
        st, body = self.get("/api/v1/namespaces", cert=alice)
        self.assertEqual(st, 200, body)
        # bob (O=dev, O=qa) authenticates but is not authorized for namespaces: 403 naming him,
        # and gets what --tokens grants the user bob
        bob = (self.s.kubeconfig + ".bob.crt", self.s.kubeconfig + ".bob.key")
        st, body = self.get("/api/v1/namespaces", cert=bob)
        self.assertEqual(st, 403, body)
        self.assertIn('User "bob" cannot list resource "namespaces"', body["message"])
        st, body = self.get("/api/v1/namespaces/default/configmaps", cert=bob)
        self.assertEqual(st, 200, body)
        # a CA from --client-ca-file
        st, body = self.get("/api/v1/namespaces", cert=self.carol)
        self.assertEqual(st, 200, body)

    def test_wrong_certificate_is_401(self):
        # signed by a CA the server does not trust: the handshake succeeds, the request is 401
        st, body = self.get("/api/v1/namespaces", cert=self.mallory)
        self.assertEqual(st, 401, body)
        self.assertEqual((body["reason"], body["code"]), ("Unauthorized", 401))
        # no CN: not a user
        st, body = self.get("/api/v1/namespaces", cert=self.nocn)
        self.assertEqual(st, 401, body)
        # neither certificate nor token
        st, _ = self.get("/api/v1/namespaces")
        self.assertEqual(st, 401)
        # a bad certificate does not stop a valid token from authenticating (union of authenticators)
        st, body = self.get("/api/v1/namespaces", cert=self.mallory, token=self.s.token)
        self.assertEqual(st, 200, body)

    def raw_get(self, ctx, session=None):
        """GET /api on a fresh TLS connection from `ctx` (offering `session` for resumption);
        returns (status code, whether the session was resumed, the session for the next time)."""
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
                tls.sendall(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
                            b"Connection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return int(data.split(b" ", 2)[1]), tls.session_reused, tls.session

    def test_no_session_resumption(self):
        # a resumed TLS session would skip certificate verification, so the server offers none:
        # a refused certificate stays refused and a good one is verified again
        for cert, code in ((self.mallory, 401), (self.carol, 200)):
            ctx = ssl.create_default_context(cafile=self.s.ca_file)
            ctx.load_cert_chain(*cert)
            st, reused, session = self.raw_get(ctx)
            self.assertEqual((st, reused), (code, False))
            st, reused, _ = self.raw_get(ctx, session)
            self.assertEqual((st, reused), (code, False))

    def test_kubectl_with_certificate_contexts(self):
        for kubectl in KUBECTLS:
            if not os.access(kubectl, os.X_OK):
                continue
            with self.subTest(kubectl=kubectl):
                name = "cc-" + os.path.basename(kubectl).replace(".", "-")
                for ctx in ("alice", "alice-files"):
                    out = self.kubectl(kubectl, "--context", ctx, "get", "ns", "kube-system", "-o", "name").stdout
                    self.assertEqual(out.strip(), "namespace/kube-system")
                self.kubectl(kubectl, "--context", "alice", "create", "configmap", name, "--from-literal=a=1")
                out = self.kubectl(kubectl, "--context", "alice-files", "get", "configmap", name,
                                   "-o", "jsonpath={.data.a}").stdout
                self.assertEqual(out, "1")
                self.kubectl(kubectl, "--context", "alice-files", "delete", "configmap", name)
                p = self.kubectl(kubectl, "--context", "bob-files", "get", "ns", check=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn('User "bob" cannot list resource "namespaces"', p.stderr)

    def test_kubectl_with_a_wrong_certificate(self):
        kc = os.path.join(self.d, "kc-mallory")
        with open(self.s.kubeconfig) as f:
            text = f.read()
        text = text.replace("client-certificate: kubeconfig.alice.crt", "client-certificate: " + self.mallory[0])
        text = text.replace("client-key: kubeconfig.alice.key", "client-key: " + self.mallory[1])
        with open(kc, "w") as f:
            f.write(text)
        env = dict(os.environ, HOME=self.home, KUBECACHEDIR=os.path.join(self.home, "cache2"))
        p = subprocess.run([KUBECTLS[0], "--kubeconfig", kc, "--context", "alice-files", "get", "ns"],
                           capture_output=True, text=True, env=env, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("the server has asked for the client to provide credentials", p.stderr)  # 401


if __name__ == "__main__":
    unittest.main()
