"""Admission webhooks: the stand-in calls a tiny TLS webhook this test starts (openssl-made certs)."""
import base64
import http.server
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from e2e.apiserver.tests._support import Server, ServerTest, sample

SVC = "maskmesh-webhook.maskmesh.svc"


def make_certs(d):
    def run(*cmd):
        subprocess.run(cmd, check=True, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=webhook-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("openssl", "req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=" + SVC)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" % SVC)
    run("openssl", "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "tls.crt", "-days", "2", "-extfile", "ext.cnf")
    # a second, unrelated CA: a caBundle that must not verify the webhook
    run("openssl", "req", "-x509", *ec, "-keyout", "other.key", "-out", "other.crt", "-days", "2", "-subj", "/CN=other")


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        review = json.loads(self.rfile.read(n))
        self.server.seen.append((self.path, review))
        req = review["request"]
        resp = {"uid": req["uid"], "allowed": True}
        if self.path.startswith("/mutate"):
            patch = [{"op": "add", "path": "/metadata/annotations", "value": {"maskmesh.io/status": "injected"}}]
            resp.update({"patch": base64.b64encode(json.dumps(patch).encode()).decode(), "patchType": "JSONPatch",
                         "warnings": ['maskmesh: pod has no container port named "metrics"; metrics scraping disabled']})
        elif self.path.startswith("/deny"):
            resp = json.loads(json.dumps(sample("admissionreview-deny-response.json")["response"]))
            resp["uid"] = req["uid"]
        elif self.path.startswith("/slow"):
            time.sleep(2.5)
        out = json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "response": resp}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class HookServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the slow-webhook test hangs up on purpose


class WebhookTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="standin-webhook-")
        make_certs(cls.dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(cls.dir, "tls.crt"), os.path.join(cls.dir, "tls.key"))
        cls.hook = HookServer(("127.0.0.1", 0), Hook)
        cls.hook.socket = ctx.wrap_socket(cls.hook.socket, server_side=True)
        cls.hook.seen = []
        threading.Thread(target=cls.hook.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        cls.hook_port = cls.hook.server_address[1]
        with open(os.path.join(cls.dir, "ca.crt"), "rb") as f:
            cls.ca = base64.b64encode(f.read()).decode()
        with open(os.path.join(cls.dir, "other.crt"), "rb") as f:
            cls.other_ca = base64.b64encode(f.read()).decode()
        cls.s = Server("--service-host", "%s=127.0.0.1:%d" % (SVC, cls.hook_port))
        t = cls("run")
        t.ensure_ns("shop", {"maskmesh.io/inject": "true"})
        t.ensure_ns("plain")

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()
        cls.hook.shutdown()
        cls.hook.server_close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.hook.seen.clear()
        for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            st, _, lst = self.s.req("GET", "/apis/admissionregistration.k8s.io/v1/" + kind)
            for o in lst["items"]:
                self.s.req("DELETE", "/apis/admissionregistration.k8s.io/v1/%s/%s" % (kind, o["metadata"]["name"]))

    def config(self, kind, name, path, ca=None, failure="Fail", timeout=None, url=False, ops=("CREATE",),
               side_effects="None", object_selector=None):
        wh = {"name": name, "admissionReviewVersions": ["v1"], "sideEffects": side_effects, "failurePolicy": failure,
              "rules": [{"operations": list(ops), "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                         "scope": "Namespaced"}],
              "namespaceSelector": {"matchLabels": {"maskmesh.io/inject": "true"}}}
        cc = {"caBundle": ca or self.ca}
        if url:
            cc["url"] = "https://127.0.0.1:%d%s" % (self.hook_port, path)
        else:
            cc["service"] = {"name": "maskmesh-webhook", "namespace": "maskmesh", "path": path, "port": 443}
        wh["clientConfig"] = cc
        if timeout:
            wh["timeoutSeconds"] = timeout
        if object_selector:
            wh["objectSelector"] = object_selector
        if kind == "validatingwebhookconfigurations":
            wh.pop("reinvocationPolicy", None)
        body = {"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration" if kind.startswith("mutating") else "ValidatingWebhookConfiguration",
                "metadata": {"name": name}, "webhooks": [wh]}
        st, _, out = self.s.req("POST", "/apis/admissionregistration.k8s.io/v1/" + kind, body)
        self.assertEqual(st, 201, out)

    def pod(self, ns="shop", labels=None):
        md = {"generateName": "payments-7c9d8b5f4d-", "labels": labels or {"app": "payments"}}
        return "/api/v1/namespaces/%s/pods" % ns, {"apiVersion": "v1", "kind": "Pod", "metadata": md,
                                                   "spec": {"containers": [{"name": "payments", "image": "x:1"}]}}

    def test_mutating_review_fields_patch_and_warnings(self):
        self.config("mutatingwebhookconfigurations", "inject.maskmesh.io", "/mutate-pods")
        path, pod = self.pod()
        st, hdrs, body = self.s.req("POST", path, pod)
        self.assertEqual(st, 201, body)
        self.assertEqual(body["metadata"]["annotations"], {"maskmesh.io/status": "injected"})
        warn = [v for k, v in hdrs if k.lower() == "warning"]
        self.assertEqual(warn, ['299 - "maskmesh: pod has no container port named \\"metrics\\"; metrics scraping disabled"'])
        self.assertEqual(len(self.hook.seen), 1)
        hpath, review = self.hook.seen[0]
        self.assertEqual(hpath, "/mutate-pods?timeout=10s")
        want = sample("admissionreview-pod-create.json")
        self.assertEqual((review["kind"], review["apiVersion"]), (want["kind"], want["apiVersion"]))
        req, wreq = review["request"], want["request"]
        self.assertEqual(sorted(req), sorted(wreq))  # generateName: no "name", like the sample
        for k in ("kind", "resource", "requestKind", "requestResource", "operation", "oldObject", "dryRun", "options"):
            self.assertEqual(req[k], wreq[k], k)
        self.assertEqual(req["namespace"], "shop")
        self.assertEqual(req["object"]["metadata"]["generateName"], "payments-7c9d8b5f4d-")
        self.assertNotIn("name", req["object"]["metadata"])
        self.assertEqual(sorted(req["userInfo"]), ["groups", "uid", "username"])
        self.assertRegex(req["uid"], r"^[0-9a-f-]{36}$")
        st, _, body2 = self.s.req("POST", path, pod)
        self.assertNotEqual(self.hook.seen[1][1]["request"]["uid"], req["uid"])  # fresh uid per call

    def test_selectors_skip_non_matching(self):
        self.config("mutatingwebhookconfigurations", "inject.maskmesh.io", "/mutate-pods",
                    object_selector={"matchExpressions": [{"key": "maskmesh.io/inject", "operator": "NotIn", "values": ["false"]}]})
        path, pod = self.pod(ns="plain")
        st, _, body = self.s.req("POST", path, pod)
        self.assertEqual(st, 201)
        path, pod = self.pod(labels={"app": "x", "maskmesh.io/inject": "false"})
        st, _, body = self.s.req("POST", path, pod)
        self.assertEqual(st, 201)
        self.assertEqual(self.hook.seen, [])
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        st, _, _ = self.s.req("POST", "/api/v1/namespaces/shop/configmaps", cm)
        self.assertEqual(self.hook.seen, [])

    def test_validating_deny_403(self):
        self.config("validatingwebhookconfigurations", "inject.maskmesh.io", "/deny", url=True)
        path, pod = self.pod()
        before = len(self.s.req("GET", path)[2]["items"])
        st, _, body = self.s.req("POST", path, pod)
        self.assertEqual(st, 403)
        self.assertEqual(body["message"], 'admission webhook "inject.maskmesh.io" denied the request: '
                                          'no MaskingPolicy in namespace "shop" selects a pod with labels app=payments')
        self.assertEqual((body["reason"], body["code"], body["status"]), ("Forbidden", 403, "Failure"))
        st, _, lst = self.s.req("GET", path)
        self.assertEqual(len(lst["items"]), before)

    def test_update_review_has_old_object(self):
        st, _, created = self.s.req("POST", *self.pod())
        self.config("validatingwebhookconfigurations", "v.maskmesh.io", "/ok", ops=("UPDATE",))
        name = created["metadata"]["name"]
        st, _, body = self.s.req("PATCH", "/api/v1/namespaces/shop/pods/%s?fieldManager=kubectl-label" % name,
                                 {"metadata": {"labels": {"x": "y"}}}, ctype="application/merge-patch+json")
        self.assertEqual(st, 200, body)
        req = self.hook.seen[0][1]["request"]
        self.assertEqual(req["operation"], "UPDATE")
        self.assertEqual(req["name"], name)
        self.assertEqual(req["oldObject"]["metadata"].get("labels"), {"app": "payments"})
        self.assertEqual(req["object"]["metadata"]["labels"], {"app": "payments", "x": "y"})
        self.assertEqual(req["options"], {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-label"})

    def test_bad_ca_and_failure_policy(self):
        self.config("mutatingwebhookconfigurations", "strict.maskmesh.io", "/mutate-pods", ca=self.other_ca)
        st, _, body = self.s.req("POST", *self.pod())
        self.assertEqual(st, 500)
        self.assertIn('failed calling webhook "strict.maskmesh.io"', body["message"])
        self.assertEqual(self.hook.seen, [])
        self.setUp()
        self.config("mutatingwebhookconfigurations", "lenient.maskmesh.io", "/mutate-pods", ca=self.other_ca, failure="Ignore")
        st, _, body = self.s.req("POST", *self.pod())
        self.assertEqual(st, 201)
        self.assertNotIn("annotations", body["metadata"])

    def test_timeout(self):
        self.config("validatingwebhookconfigurations", "slow.maskmesh.io", "/slow", timeout=1)
        t = time.monotonic()
        st, _, body = self.s.req("POST", *self.pod())
        self.assertEqual(st, 500)
        self.assertLess(time.monotonic() - t, 2.4)
        self.assertIn("slow.maskmesh.io", body["message"])

    def test_dry_run(self):
        self.config("mutatingwebhookconfigurations", "inject.maskmesh.io", "/mutate-pods")
        path, pod = self.pod()
        st, _, body = self.s.req("POST", path + "?dryRun=All", pod)
        self.assertEqual(st, 201)
        self.assertTrue(self.hook.seen[0][1]["request"]["dryRun"])
        self.assertEqual(self.hook.seen[0][1]["request"]["options"]["dryRun"], ["All"])
        st, _, lst = self.s.req("GET", path)
        self.assertNotIn(body["metadata"]["name"], [i["metadata"]["name"] for i in lst["items"]])

    def test_configuration_validation(self):
        # admissionregistration/v1 allows only sideEffects None/NoneOnDryRun (Some/Unknown were v1beta1)
        cfg = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": "bad.maskmesh.io"},
               "webhooks": [{"name": "bad.maskmesh.io", "sideEffects": "Some", "admissionReviewVersions": ["v1"],
                             "clientConfig": {"url": "https://127.0.0.1:1/x"}}]}
        st, _, body = self.s.req("POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", cfg)
        self.assertEqual(st, 422)
        self.assertEqual(body["details"]["causes"][0]["field"], "webhooks[0].sideEffects")
        del cfg["webhooks"][0]["sideEffects"]
        del cfg["webhooks"][0]["admissionReviewVersions"]
        st, _, body = self.s.req("POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", cfg)
        self.assertEqual(st, 422)
        self.assertEqual(sorted(c["field"] for c in body["details"]["causes"]),
                         ["webhooks[0].admissionReviewVersions", "webhooks[0].sideEffects"])


if __name__ == "__main__":
    unittest.main()
