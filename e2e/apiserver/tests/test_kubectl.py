"""The real kubectl through the kubeconfig the stand-in writes."""
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from e2e.apiserver.tests._support import ServerTest, crd_path

KUBECTL = "/usr/bin/kubectl"
KUBECTL_127 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27"
MP_YAML = """apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata:
  name: {name}
  namespace: shop
spec:
  port: 8080
  selector:
    matchLabels:
      app: payments
  rules:
  - name: card-number
    fields: ["$.card.number"]
    action:
      type: {action}
"""


@unittest.skipUnless(os.access(KUBECTL, os.X_OK), "kubectl not installed")
class KubectlTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.home = tempfile.mkdtemp(prefix="standin-kubectl-")
        t = cls("run")
        t.ensure_ns("shop")
        out = t.kubectl("create", "-f", crd_path())
        assert "created" in out, out

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.home, ignore_errors=True)

    def env(self):
        e = dict(os.environ)
        e.update({"KUBECONFIG": self.s.kubeconfig, "HOME": self.home, "KUBECACHEDIR": os.path.join(self.home, "cache")})
        return e

    def kubectl(self, *args, stdin=None, binary=KUBECTL, check=True, timeout=30):
        p = subprocess.run([binary] + list(args), input=stdin, capture_output=True, text=True, env=self.env(),
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p.stdout if check else p

    def apply_yaml(self, name, action="mask", *flags):
        return self.kubectl("apply", "-f", "-", *flags, stdin=MP_YAML.format(name=name, action=action))

    def get_json(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def test_api_resources(self):
        out = self.kubectl("api-resources")
        line = next(ln for ln in out.splitlines() if ln.startswith("maskingpolicies "))
        self.assertEqual(line.split(), ["maskingpolicies", "mp", "maskmesh.io/v1alpha1", "true", "MaskingPolicy"])
        for res in ("pods", "configmaps", "secrets", "leases", "networkpolicies", "customresourcedefinitions",
                    "mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            self.assertIn(res, out)
        out = self.kubectl("api-resources", "--api-group", "events.k8s.io")
        self.assertIn("events", out)

    def test_apply_client_side_then_server_side(self):
        self.assertIn("maskingpolicy.maskmesh.io/csa created", self.apply_yaml("csa"))
        obj = self.get_json("mp", "csa", "-n", "shop")
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration", obj["metadata"]["annotations"])
        self.assertEqual(obj["spec"]["rules"][0]["action"]["type"], "mask")
        self.assertIn("unchanged", self.apply_yaml("csa"))
        self.assertIn("configured", self.apply_yaml("csa", "redact"))
        st, _, raw = self.s.req("GET", "/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies/csa")
        self.assertEqual(raw["metadata"]["generation"], 2)
        self.assertEqual([(m["manager"], m["operation"]) for m in raw["metadata"]["managedFields"]],
                         [("kubectl-client-side-apply", "Update")])
        out = self.apply_yaml("ssa", "mask", "--server-side")
        self.assertIn("maskingpolicy.maskmesh.io/ssa serverside-applied", out)
        st, _, raw = self.s.req("GET", "/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies/ssa")
        self.assertEqual([(m["manager"], m["operation"]) for m in raw["metadata"]["managedFields"]], [("kubectl", "Apply")])
        self.assertNotIn("annotations", raw["metadata"])
        self.kubectl("patch", "mp", "ssa", "-n", "shop", "--type", "merge", "-p", '{"spec":{"port":9000}}')
        p = self.kubectl("apply", "--server-side", "-f", "-", stdin=MP_YAML.format(name="ssa", action="mask"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("conflict", p.stderr.lower())
        self.assertIn(".spec.port", p.stderr)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=MP_YAML.format(name="ssa", action="mask"))
        self.assertEqual(self.get_json("mp", "ssa", "-n", "shop")["spec"]["port"], 8080)

    def test_get_table_and_category(self):
        self.apply_yaml("tbl")
        self.s.req("PATCH", "/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies/tbl/status",
                   {"status": {"ruleCount": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Rendered",
                                                               "message": "ok", "lastTransitionTime": "2026-07-20T08:55:13Z"}]}},
                   ctype="application/merge-patch+json")
        out = self.kubectl("get", "mp", "tbl", "-n", "shop")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "READY", "MODE", "RULES", "AGE"])
        self.assertEqual(lines[1].split()[:4], ["tbl", "True", "enforce", "1"])
        wide = self.kubectl("get", "mp", "tbl", "-n", "shop", "-o", "wide").splitlines()
        self.assertEqual(wide[0].split(), ["NAME", "READY", "REASON", "MODE", "RULES", "NETWORKPOLICY", "AGE"])
        self.assertIn("Rendered", wide[1])
        out = self.kubectl("get", "maskmesh", "-n", "shop")
        self.assertIn("tbl", [ln.split()[0] for ln in out.splitlines()[1:]])
        lst = self.get_json("maskingpolicies.maskmesh.io", "-n", "shop")
        self.assertIn("tbl", [i["metadata"]["name"] for i in lst["items"]])

    def test_patch_label_delete(self):
        self.apply_yaml("pld")
        self.assertIn("patched", self.kubectl("patch", "mp", "pld", "-n", "shop", "--type", "merge", "-p", '{"spec":{"mode":"audit"}}'))
        self.assertIn("patched", self.kubectl("patch", "mp", "pld", "-n", "shop", "--type", "json",
                                              "-p", '[{"op":"replace","path":"/spec/port","value":9443}]'))
        self.assertIn("labeled", self.kubectl("label", "mp", "pld", "-n", "shop", "team=payments"))
        obj = self.get_json("mp", "pld", "-n", "shop")
        self.assertEqual((obj["spec"]["mode"], obj["spec"]["port"], obj["metadata"]["labels"]),
                         ("audit", 9443, {"team": "payments"}))
        self.assertEqual(self.kubectl("get", "mp", "-n", "shop", "-l", "team=payments", "-o", "name").split(),
                         ["maskingpolicy.maskmesh.io/pld"])
        p = self.kubectl("patch", "mp", "pld", "-n", "shop", "--type", "merge", "-p", '{"spec":{"mode":"loud"}}', check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('Unsupported value: "loud"', p.stderr)
        self.assertIn('deleted', self.kubectl("delete", "mp", "pld", "-n", "shop"))
        p = self.kubectl("get", "mp", "pld", "-n", "shop", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('maskingpolicies.maskmesh.io "pld" not found', p.stderr)

    def test_builtin_apply_strategic_merge(self):
        cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  a: \"1\"\n"
        self.assertIn("created", self.kubectl("apply", "-f", "-", stdin=cm))
        self.assertIn("configured", self.kubectl("apply", "-f", "-", stdin=cm.replace('"1"', '"2"')))
        self.assertEqual(self.get_json("cm", "settings", "-n", "shop")["data"], {"a": "2"})
        out = self.kubectl("get", "cm", "-n", "shop")
        self.assertEqual(out.splitlines()[0].split(), ["NAME", "DATA", "AGE"])
        # kubectl's imperative create commands send protobuf bodies
        self.assertIn("namespace/imperative created", self.kubectl("create", "namespace", "imperative"))
        self.assertIn("configmap/imp created", self.kubectl("create", "configmap", "imp", "-n", "imperative",
                                                            "--from-literal=policies.yaml=[]"))
        self.assertIn("secret/maskmesh-keys created", self.kubectl("create", "secret", "generic", "maskmesh-keys",
                                                                   "-n", "imperative", "--from-literal=k1=c2VjcmV0"))
        self.assertEqual(self.get_json("cm", "imp", "-n", "imperative")["data"], {"policies.yaml": "[]"})
        out = self.kubectl("get", "secret", "-n", "imperative").splitlines()
        self.assertEqual(out[0].split(), ["NAME", "TYPE", "DATA", "AGE"])
        self.assertEqual(out[1].split()[:3], ["maskmesh-keys", "Opaque", "1"])

    def test_get_watch(self):
        self.apply_yaml("watched")
        proc = subprocess.Popen([KUBECTL, "get", "mp", "watched", "-n", "shop", "-w", "--request-timeout=20s"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env())
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
        try:
            self.assertTrue(lines.get(timeout=15).startswith("NAME"))
            self.assertTrue(lines.get(timeout=15).startswith("watched "))
            self.kubectl("patch", "mp", "watched", "-n", "shop", "--type", "merge", "-p", '{"spec":{"mode":"audit"}}')
            row = lines.get(timeout=15)
            self.assertEqual(row.split()[0], "watched")
            self.assertIn("audit", row)
        finally:
            proc.kill()
            proc.wait(10)
            proc.stdout.close()
            proc.stderr.close()

    def test_wait_for_condition(self):
        self.apply_yaml("waited")
        proc = subprocess.Popen([KUBECTL, "wait", "--for=condition=Ready", "mp/waited", "-n", "shop", "--timeout=20s"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env())
        try:
            time.sleep(1.0)
            self.assertIsNone(proc.poll(), "kubectl wait returned before the condition was set")
            st, _, body = self.s.req("PATCH", "/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies/waited/status",
                                     {"status": {"observedGeneration": 1, "conditions": [
                                         {"type": "Ready", "status": "True", "reason": "Rendered", "message": "ok",
                                          "observedGeneration": 1, "lastTransitionTime": "2026-07-20T08:55:13Z"}]}},
                                     ctype="application/merge-patch+json")
            self.assertEqual(st, 200, body)
            out, err = proc.communicate(timeout=25)
            self.assertEqual(proc.returncode, 0, err)
            self.assertIn("maskingpolicy.maskmesh.io/waited condition met", out)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)

    @unittest.skipUnless(os.access(KUBECTL_127, os.X_OK), "kubectl 1.27 not installed")
    def test_kubectl_127_smoke(self):
        out = self.kubectl("apply", "-f", "-", stdin=MP_YAML.format(name="old-client", action="mask"), binary=KUBECTL_127)
        self.assertIn("maskingpolicy.maskmesh.io/old-client created", out)
        out = self.kubectl("get", "mp", "-n", "shop", binary=KUBECTL_127)
        self.assertIn("old-client", out)
        self.assertEqual(out.splitlines()[0].split(), ["NAME", "READY", "MODE", "RULES", "AGE"])
        self.assertIn("deleted", self.kubectl("delete", "mp", "old-client", "-n", "shop", binary=KUBECTL_127))


if __name__ == "__main__":
    unittest.main()
