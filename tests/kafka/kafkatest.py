"""Helpers for the stream tests and bench: a real broker (tests/kafka/broker.sh), topics,
an independent client (confluent-kafka, its own bundled librdkafka) to produce input and
read output with isolation.level=read_committed, and maskmesh-stream processes whose JSON
logs and /metrics are read back."""
import json
import os
import re
import signal
import shutil
import subprocess
import tempfile
import time
import urllib.request

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: F401
from confluent_kafka.admin import AdminClient, NewTopic

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BROKER_SH = os.path.join(TOP, "tests", "kafka", "broker.sh")
BIN = os.environ.get("MM_BIN", os.path.join(TOP, "bin"))


class Broker:
    """One broker for a test module; stopped by stop() or, failing that, its watchdog."""

    def __init__(self, deadline_s=1800):
        self.dir = tempfile.mkdtemp(prefix="mm-kafka-")
        out = subprocess.run([BROKER_SH, "start", self.dir, str(deadline_s)], check=True,
                             capture_output=True, text=True, timeout=300)
        self.bootstrap = out.stdout.strip().splitlines()[-1]
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})
        # the secured listeners (broker.sh): TLS with client certificates, and SASL over TLS
        self.bootstrap_ssl = self._read("bootstrap.ssl").strip()
        self.bootstrap_sasl_ssl = self._read("bootstrap.sasl_ssl").strip()
        self.tls = os.path.join(self.dir, "tls")
        # mechanism -> (user, password)
        self.users = {l.split()[0]: tuple(l.split()[1:3]) for l in self._read("users").splitlines()}

    def _read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    def stop(self):
        """Stops the broker and removes its directory: a bench run's log segments are GBs,
        and a hundred runs left in /tmp once filled the disk under e2e-cluster's kubelet
        (DiskPressure, nothing scheduled)."""
        subprocess.run([BROKER_SH, "stop", self.dir], check=False, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    def topics(self, partitions, *names):
        fs = self.admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        for f in fs.values():
            f.result(30)

    def produce(self, topic, records, transactional_id=None):
        """records: (key, value, headers, partition) tuples; partition None lets the
        client choose by key."""
        # idempotent: a retried batch cannot land out of order, so input order is known
        conf = {"bootstrap.servers": self.bootstrap, "linger.ms": 5, "enable.idempotence": True}
        if transactional_id:
            conf["transactional.id"] = transactional_id
        p = Producer(conf)
        if transactional_id:
            p.init_transactions(30)
            p.begin_transaction()
        for key, value, headers, partition in records:
            kw = {"key": key, "value": value, "headers": headers}
            if partition is not None:
                kw["partition"] = partition
            while True:
                try:
                    p.produce(topic, **kw)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        if transactional_id:
            p.commit_transaction(30)
        assert p.flush(300) == 0, "input records not delivered"

    def consume(self, topics, want, timeout_s=60, idle_s=None):
        """Reads `topics` from the start as read_committed until `want` records came (then
        idle_s more seconds, to see any extra), or timeout_s passed."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "check-%d" % time.monotonic_ns(),
                      "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        c.subscribe(list(topics))
        got = []
        end = time.monotonic() + timeout_s
        extra_end = None
        try:
            while time.monotonic() < end:
                if extra_end is None and len(got) >= want:
                    extra_end = time.monotonic() + (idle_s if idle_s is not None else 2)
                if extra_end is not None and time.monotonic() >= extra_end:
                    break
                for m in c.consume(1000, 0.5):
                    if m.error():
                        continue
                    got.append(m)
        finally:
            c.close()
        return got

    def committed(self, group, topic, partitions):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            offs = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
            return {tp.partition: tp.offset for tp in offs}
        finally:
            c.close()

    def group_state(self, group):
        f = self.admin.describe_consumer_groups([group])[group]
        d = f.result(20)
        return str(d.state).split(".")[-1], len(d.members)


def policy_yaml(bootstrap, inputs, output, extra_streams="", rules=None, headers=None,
                name="orders"):
    rules = rules or """    - name: card
      fields: ["$.card"]
      action: {type: mask, keepLast: 4}
    - name: contact
      detectors: [email]
      action: {type: tokenize, key: k1}
"""
    headers = headers if headers is not None else """  headers:
    - {name: authorization, action: {type: redact}}
    - {name: x-session, action: {type: remove}}
"""
    return f"""apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {{name: {name}, namespace: shop}}
spec:
  selector: {{matchLabels: {{maskmesh.io/stream: {name}}}}}
  rules:
{rules}{headers}  streams:
    bootstrapServers: "{bootstrap}"
    inputTopics: [{", ".join(inputs)}]
    outputTopic: {output}
{extra_streams}"""


def write_atomic(path, text):
    """Replaces a file the way kubelet swaps a ConfigMap's ..data: a new inode, renamed in."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class Masker:
    """A maskmesh-stream process; its JSON log lines land in `log`."""

    def __init__(self, workdir, policy_path, keys_dir=None, txn_id=None, extra=()):
        self.log = os.path.join(workdir, "masker-%d.log" % time.monotonic_ns())
        args = [os.path.join(BIN, "maskmesh-stream"), "--policy", policy_path,
                "--admin", "127.0.0.1:0", *extra]
        if keys_dir:
            args += ["--keys", keys_dir]
        if txn_id:
            args += ["--transactional-id", txn_id]
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        self.port = None
        end = time.monotonic() + 30
        while time.monotonic() < end and self.port is None:
            for line in self.lines():
                if line.get("msg") == "admin listening":
                    self.port = int(line["port"])
            if self.port is None and self.proc.poll() is not None:
                raise AssertionError("maskmesh-stream exited: " + self.text())
            time.sleep(0.1)
        if self.port is None:
            raise AssertionError("maskmesh-stream did not start: " + self.text())

    def text(self):
        with open(self.log) as f:
            return f.read()

    def lines(self):
        out = []
        for raw in self.text().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"raw": raw})
        return out

    def wait_log(self, msg, timeout_s=60):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if any(l.get("msg") == msg for l in self.lines()):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("no %r in the masker's log:\n%s" % (msg, self.text()[-4000:]))

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=5) as r:
            return r.read().decode()

    def metric(self, name, **labels):
        """Sum of a family's samples whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def wait_metric(self, name, at_least, timeout_s=60, **labels):
        end = time.monotonic() + timeout_s
        v = 0
        while time.monotonic() < end:
            v = self.metric(name, **labels)
            if v >= at_least:
                return v
            time.sleep(0.1)
        raise AssertionError("%s%s stayed at %s (< %s); log:\n%s" % (name, labels, v, at_least,
                                                                   self.text()[-3000:]))

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.logf.close()

    def term(self, timeout_s=30):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout_s)
        self.logf.close()
        return rc

    def close(self):
        """Stops a running masker with SIGTERM (it leaves the group at once, not after a
        session timeout); returns its exit code then, None if it had already ended."""
        rc = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(10)
        if not self.logf.closed:
            self.logf.close()
        return rc
