#!/usr/bin/env python3
"""status.stream's lag and Ready, end to end: maskmesh-controller against the API stand-in
(driven with the real kubectl) renders the stream Deployment of a policy whose spec.streams
names a real Kafka broker (tests/kafka/broker.sh); a real maskmesh-stream loads the rendered
ConfigMap and masks; Pod objects in the stand-in carry that masker's address and admin port,
as a kubelet would report them, and the controller reads their /metrics into status.stream:
lag 0 and Ready once everything is masked; a record that cannot be masked stops its partition,
and the status says how many records wait behind it and that the stream is not Ready; a pod
that is not ready, or does not answer, is left out; with no masker answering, the lag fields
go."""
import importlib.machinery
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import kafkatest  # noqa: E402

tc = importlib.machinery.SourceFileLoader("test_controller", os.path.join(HERE, "test_controller")).load_module()

POLICY = """apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {maskmesh.io/stream: orders}}
  rules:
    - name: card
      fields: ["$.card"]
      action: {type: mask, keepLast: 4}
  streams:
    bootstrapServers: "%(bootstrap)s"
    inputTopics: [status-in]
    outputTopic: status-out
    consumerGroup: status-g
    replicas: 2
"""
GOOD = json.dumps({"card": "4111111111111111"}).encode()


def pod(name, labels, port, ready, ip="127.0.0.1"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "spec": {"containers": [{"name": "maskmesh-stream", "image": "x",
                                     "ports": [{"name": "admin", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class StreamStatusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = kafkatest.Broker(deadline_s=900)
        cls.env = tc.Env()
        cls.masker = None
        try:
            cls.proc, cls.port = cls.env.controller("--stream-image", "maskmesh-stream:test",
                                                    "--stream-status", "1")
            tc.wait(lambda: tc.http(cls.port, "/readyz")[0] == 200, 15, "/readyz")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.masker:
            cls.masker.close()
        cls.env.close()
        cls.broker.stop()

    def stream_status(self):
        return (self.env.get("mp", "orders").get("status") or {}).get("stream") or {}

    def wait_status(self, what, **want):
        return tc.wait(lambda: (lambda s: s if all(s.get(k) == v for k, v in want.items()) else None)(
            self.stream_status()), 60, "%s: status.stream with %s (now %s)" % (what, want, self.stream_status()))

    def put_pod(self, obj):
        status = obj.pop("status")
        self.env.kubectl_in(json.dumps(obj), "apply", "-f", "-")
        self.env.kubectl("patch", "pod", obj["metadata"]["name"], "-n", "shop", "--subresource=status",
                         "--type=merge", "-p", json.dumps({"status": status}))

    def test_lag_and_ready_from_the_maskers_metrics(self):
        env, b = self.env, self.broker
        b.topics(2, "status-in", "status-out")
        env.kubectl_in(POLICY % {"bootstrap": b.bootstrap}, "apply", "-f", "-")
        dep = tc.wait(lambda: env.get("deploy", "maskmesh-stream-orders"), 15, "the Deployment")
        cm = tc.wait(lambda: env.get("cm", "maskmesh-stream-orders"), 15, "the ConfigMap")
        # no ready replica: not Ready, no lag fields
        st = self.wait_status("no replicas", readyReplicas=0, ready=False)
        self.assertNotIn("lag", st)

        # the masker a pod of the Deployment would run, on the ConfigMap's policy
        path = os.path.join(env.dir, "policies.yaml")
        with open(path, "w") as f:
            f.write(cm["data"]["policies.yaml"])
        type(self).masker = m = kafkatest.Masker(env.dir, path)
        labels = dep["spec"]["selector"]["matchLabels"]
        self.assertEqual(dep["spec"]["template"]["metadata"]["labels"].items() >= labels.items(), True)
        self.put_pod(pod("maskmesh-stream-orders-a", labels, m.port, True))
        # not ready: never asked (else it would count twice); ready but nothing listens: skipped (logged), the rest counts
        self.put_pod(pod("maskmesh-stream-orders-b", labels, m.port, False))
        self.put_pod(pod("maskmesh-stream-orders-c", labels, free_port(), True))
        env.kubectl("patch", "deploy", "maskmesh-stream-orders", "-n", "shop", "--subresource=status",
                    "--type=merge", "-p", '{"status":{"replicas":2,"readyReplicas":2}}')

        b.produce("status-in", [(b"k%d" % i, GOOD, None, i % 2) for i in range(20)])
        self.assertEqual(len(b.consume(["status-out"], 20, idle_s=1)), 20)
        self.wait_status("all masked", ready=True, readyReplicas=2, lag=0, partitions=2,
                         stoppedPartitions=0, reportingReplicas=1, maxPartitionLag=0)

        # partition 0 stops at a record that cannot be masked; 3 more wait behind it
        b.produce("status-in", [(b"bad", b'{"card": [', None, 0)] +
                  [(b"after%d" % i, GOOD, None, 0) for i in range(3)] +
                  [(b"p1-%d" % i, GOOD, None, 1) for i in range(5)])
        m.wait_metric("maskmesh_stream_stopped_partitions", 1)
        st = self.wait_status("a stopped partition", ready=False, lag=4, maxPartitionLag=4,
                              stoppedPartitions=1, partitions=2)
        self.assertEqual(m.metric("maskmesh_stream_lag_records", partition="0"), 4)
        self.assertIn("maskmesh-stream-orders-c", env.log(self.port))  # the silent pod, logged

        # the masker gone: nobody answers, the lag is no longer known
        self.assertEqual(m.close(), 0)
        st = self.wait_status("no masker answers", readyReplicas=2, ready=True)
        tc.wait(lambda: "lag" not in self.stream_status(), 30, "the lag fields removed")
        self.assertNotIn("reportingReplicas", self.stream_status())


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


if __name__ == "__main__":
    unittest.main(verbosity=2)
