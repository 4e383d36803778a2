#!/usr/bin/env python3
"""maskmesh-controller --stream-image against the API stand-in, with the real kubectl: a policy
with spec.streams gets its ConfigMap and maskmesh-stream Deployment (replicas, image, mounts,
owner), status.stream follows the Deployment's ready replicas, a rule change updates the
ConfigMap but not the pod template (the maskers reload it), a topic change rolls the template,
dropping spec.streams deletes both, an idle resync writes nothing, and the ConfigMap is what
maskmesh-stream itself loads."""
import importlib.machinery
import json
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
tc = importlib.machinery.SourceFileLoader("test_controller", os.path.join(HERE, "test_controller")).load_module()

POLICY = """apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {maskmesh.io/stream: orders}}
  rules:
    - name: card
      fields: ["$.card"]
      action: {type: %(action)s}
  streams:
    bootstrapServers: "kafka.shop:9092"
    inputTopics: [%(topic)s]
    outputTopic: orders-masked
    replicas: 3
    credentialsSecret: kafka-creds
    securityProtocol: SASL_SSL
    saslMechanism: SCRAM-SHA-512
"""
IMAGE = "registry.example/maskmesh-stream:test"


def template_hash(dep):
    return dep["spec"]["template"]["metadata"]["annotations"]["maskmesh.io/streams-hash"]


class ControllerStreamTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = tc.Env()
        cls.proc, cls.port = cls.env.controller("--stream-image", IMAGE)
        tc.wait(lambda: tc.http(cls.port, "/readyz")[0] == 200, 15, "/readyz")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def apply(self, action="redact", topic="orders"):
        self.env.kubectl_in(POLICY % {"action": action, "topic": topic}, "apply", "-f", "-")

    def test_stream_objects_status_and_changes(self):
        env = self.env
        self.apply()
        tc.ready(env, "orders")
        dep = tc.wait(lambda: env.get("deploy", "maskmesh-stream-orders"), 15, "the Deployment")
        cm = tc.wait(lambda: env.get("cm", "maskmesh-stream-orders"), 15, "the ConfigMap")
        pol = env.get("mp", "orders")
        self.assertEqual(dep["spec"]["replicas"], 3)
        c = dep["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["image"], IMAGE)
        self.assertIn("--credentials", c["args"])
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(vols["kafka"]["secret"]["secretName"], "kafka-creds")
        self.assertEqual(vols["policy"]["configMap"]["name"], "maskmesh-stream-orders")
        self.assertEqual(dep["metadata"]["ownerReferences"][0]["uid"], pol["metadata"]["uid"])
        # status.stream: no kubelet here, so 0 ready until the Deployment's status says more
        st = tc.wait(lambda: env.get("mp", "orders")["status"].get("stream"), 15, "status.stream")
        self.assertEqual(st, {"deployment": "maskmesh-stream-orders", "replicas": 3,
                              "readyReplicas": 0, "ready": False})
        env.kubectl("patch", "deploy", "maskmesh-stream-orders", "-n", "shop", "--subresource=status",
                    "--type=merge", "-p", '{"status":{"replicas":3,"readyReplicas":2}}')
        tc.wait(lambda: env.get("mp", "orders")["status"]["stream"]["readyReplicas"] == 2, 15,
                "readyReplicas 2 in status.stream")
        self.assertTrue(env.get("mp", "orders")["status"]["stream"]["ready"])

        # maskmesh-stream loads what the ConfigMap holds
        path = os.path.join(env.dir, "policies.yaml")
        with open(path, "w") as f:
            f.write(cm["data"]["policies.yaml"])
        r = subprocess.run([os.path.join(tc.BIN, "maskctl"), "check", "--policy", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # a rule change: new ConfigMap, same pod template (no roll)
        h0 = template_hash(dep)
        self.apply(action="remove")
        tc.wait(lambda: '"remove"' in env.get("cm", "maskmesh-stream-orders")["data"]["policies.yaml"], 15,
                "the rule change in the ConfigMap")
        self.assertEqual(template_hash(env.get("deploy", "maskmesh-stream-orders")), h0)
        # a topic change rolls the pods
        self.apply(action="remove", topic="orders-v2")
        tc.wait(lambda: template_hash(env.get("deploy", "maskmesh-stream-orders")) != h0, 15,
                "a new template hash")

        # idle: a resync (every 2 s) writes nothing
        time.sleep(2.5)
        w0 = tc.metric(self.port, "maskmesh_controller_writes_total")
        time.sleep(4.5)
        self.assertEqual(tc.metric(self.port, "maskmesh_controller_writes_total"), w0)

        # drift: a deleted Deployment comes back
        env.kubectl("delete", "deploy", "maskmesh-stream-orders", "-n", "shop")
        tc.wait(lambda: env.get("deploy", "maskmesh-stream-orders"), 15, "the Deployment again")

        # spec.streams removed: both objects go
        p = env.get("mp", "orders")
        p["spec"].pop("streams", None)
        env.kubectl_in(json.dumps(p), "replace", "-f", "-")
        tc.wait(lambda: env.get("deploy", "maskmesh-stream-orders") is None, 15, "the Deployment deleted")
        tc.wait(lambda: env.get("cm", "maskmesh-stream-orders") is None, 15, "the ConfigMap deleted")


if __name__ == "__main__":
    unittest.main(verbosity=2)
