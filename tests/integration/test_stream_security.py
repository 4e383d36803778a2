#!/usr/bin/env python3
"""maskmesh-stream over the secured listeners of a real Kafka broker (tests/kafka/broker.sh:
certificates made by openssl for the run, TLS with client certificates on one listener, SASL
over TLS with SCRAM-SHA-512 and PLAIN on another). The credentials come from a directory laid
out as kubelet mounts a Secret (each key a symlink into ..data), as spec.streams'
securityProtocol, saslMechanism and credentialsSecret say. It masks through mTLS and through
SASL_SSL/PLAIN; a wrong password, a CA that did not sign the broker, a missing client
certificate, PLAINTEXT against a TLS listener and a missing password file each stop it at
start with an error naming the setting, and no password ever reaches its log. SCRAM-SHA-512:
masks with a librdkafka of 2.6.1 or later; with an older one (Debian bookworm's 2.0.2) Kafka
4.x refuses its logins (confluentinc/librdkafka#4895), and the test checks that the error says
so while an independent client (confluent-kafka, librdkafka 2.6.1) logs in with the same
credentials."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))
import kafkatest  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

BROKER = None
CARD = "4111111111111111"


def setUpModule():
    global BROKER
    BROKER = kafkatest.Broker(deadline_s=900)


def tearDownModule():
    if BROKER:
        BROKER.stop()


def secret_dir(parent, name, files):
    """A directory as kubelet projects a Secret: <key> -> ..data/<key>, ..data -> a
    timestamped folder holding the files."""
    d = os.path.join(parent, name)
    real = os.path.join(d, "..2026_12_06_00_00_00.000000001")
    os.makedirs(real)
    for key, content in files.items():
        with open(os.path.join(real, key), "w") as f:
            f.write(content)
        os.symlink(os.path.join("..data", key), os.path.join(d, key))
    os.symlink(os.path.basename(real), os.path.join(d, "..data"))
    return d


def read(path):
    with open(path) as f:
        return f.read()


class SecurityCase(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="mm-stream-sec-")
        self.keys = os.path.join(self.work, "keys")
        os.mkdir(self.keys)
        with open(os.path.join(self.keys, "k1"), "wb") as f:
            f.write(b"stream-test-key")
        self.maskers = []
        self.n = self.id().split(".")[-1].replace("_", "-")
        self.ca = read(os.path.join(BROKER.tls, "ca.crt"))

    def tearDown(self):
        for m in self.maskers:
            m.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def start(self, bootstrap, protocol, creds, mechanism=None):
        extra = "    consumerGroup: %s-g\n    securityProtocol: %s\n" % (self.n, protocol)
        if mechanism:
            extra += "    saslMechanism: %s\n" % mechanism
        if creds:
            extra += "    credentialsSecret: kafka-creds\n"
        path = os.path.join(self.work, "policy.yaml")
        kafkatest.write_atomic(path, kafkatest.policy_yaml(bootstrap, [self.n + "-in"],
                                                           self.n + "-out", extra))
        m = kafkatest.Masker(self.work, path, keys_dir=self.keys,
                             extra=("--credentials", creds) if creds else ())
        self.maskers.append(m)
        return m

    def masks(self, m):
        """Records produced in the clear (PLAINTEXT listener) come out masked, read back
        read_committed: the masker consumed and produced through its secured listener."""
        BROKER.produce(self.n + "-in", [(b"k%d" % i, json.dumps({"id": i, "card": CARD}).encode(),
                                         None, None) for i in range(5)])
        out = BROKER.consume([self.n + "-out"], 5, timeout_s=90, idle_s=1)
        self.assertEqual(len(out), 5, m.text()[-3000:])
        for r in out:
            self.assertEqual(json.loads(r.value())["card"], "************1111")

    def fails(self, m, *want, secret=None):
        """The masker stops by itself at start (exit 1) with an error carrying each of want."""
        try:
            rc = m.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.fail("the masker did not stop on bad credentials:\n" + m.text()[-3000:])
        self.assertEqual(rc, 1)
        errs = [l["error"] for l in m.lines() if l.get("msg") == "cannot start"]
        self.assertEqual(len(errs), 1, m.text()[-3000:])
        sys.stderr.write("\n  maskmesh-stream: %s\n" % errs[0])
        for w in want:
            self.assertIn(w, errs[0])
        if secret:
            self.assertNotIn(secret, m.text())
        return errs[0]

    def topics(self):
        BROKER.topics(2, self.n + "-in", self.n + "-out")

    # -- what works -------------------------------------------------------------------------

    def test_mtls(self):
        self.topics()
        creds = secret_dir(self.work, "creds", {
            "ca.crt": self.ca, "tls.crt": read(os.path.join(BROKER.tls, "tls.crt")),
            "tls.key": read(os.path.join(BROKER.tls, "tls.key"))})
        self.masks(self.start(BROKER.bootstrap_ssl, "SSL", creds))

    def test_sasl_ssl_plain(self):
        self.topics()
        user, pw = BROKER.users["PLAIN"]
        creds = secret_dir(self.work, "creds", {"ca.crt": self.ca, "username": user + "\n",
                                                 "password": pw + "\n"})
        m = self.start(BROKER.bootstrap_sasl_ssl, "SASL_SSL", creds, "PLAIN")
        self.masks(m)
        self.assertNotIn(pw, m.text())

    def test_sasl_ssl_scram_sha_512(self):
        self.topics()
        user, pw = BROKER.users["SCRAM-SHA-512"]
        creds = secret_dir(self.work, "creds", {"ca.crt": self.ca, "username": user,
                                                 "password": pw})
        m = self.start(BROKER.bootstrap_sasl_ssl, "SASL_SSL", creds, "SCRAM-SHA-512")
        end = time.monotonic() + 90
        while m.proc.poll() is None and time.monotonic() < end and \
                not any(l.get("msg") == "masking" for l in m.lines()):
            time.sleep(0.2)
        versions = {l["librdkafka"] for l in m.lines() if "librdkafka" in l and
                    re.match(r"^\d+\.\d+\.\d+$", l["librdkafka"])}
        if m.proc.poll() is None:
            self.masks(m)
            return
        # an older librdkafka: the broker refuses its SCRAM (not the credentials)
        self.assertTrue(versions and all(tuple(map(int, v.split("."))) < (2, 6, 1) for v in versions),
                        "SCRAM refused with librdkafka %s:\n%s" % (versions, m.text()[-3000:]))
        self.fails(m, "spec.streams.saslMechanism SCRAM-SHA-512", "confluentinc/librdkafka#4895",
                   creds, secret=pw)
        a = AdminClient({"bootstrap.servers": BROKER.bootstrap_sasl_ssl, "security.protocol": "SASL_SSL",
                         "ssl.ca.location": os.path.join(BROKER.tls, "ca.crt"),
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": pw})
        self.assertIn(self.n + "-in", a.list_topics(timeout=30).topics)

    # -- what must fail, saying which setting -----------------------------------------------

    def test_wrong_password(self):
        self.topics()
        user, pw = BROKER.users["PLAIN"]
        creds = secret_dir(self.work, "creds", {"ca.crt": self.ca, "username": user,
                                                 "password": "not-" + pw})
        m = self.start(BROKER.bootstrap_sasl_ssl, "SASL_SSL", creds, "PLAIN")
        self.fails(m, "spec.streams.saslMechanism PLAIN", "refused the login",
                   "credentialsSecret", creds, secret=pw)

    def test_ca_that_did_not_sign_the_broker(self):
        self.topics()
        other = os.path.join(self.work, "other")
        os.mkdir(other)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        os.path.join(other, "ca.key"), "-out", os.path.join(other, "ca.crt"),
                        "-days", "1", "-subj", "/CN=another CA"], check=True, capture_output=True)
        user, pw = BROKER.users["PLAIN"]
        creds = secret_dir(self.work, "creds", {"ca.crt": read(os.path.join(other, "ca.crt")),
                                                 "username": user, "password": pw})
        m = self.start(BROKER.bootstrap_sasl_ssl, "SASL_SSL", creds, "PLAIN")
        err = self.fails(m, "spec.streams.securityProtocol SASL_SSL", "ca.crt", secret=pw)
        self.assertRegex(err, "certificate verify failed|unable to get local issuer")

    def test_mtls_without_a_client_certificate(self):
        self.topics()
        creds = secret_dir(self.work, "creds", {"ca.crt": self.ca})
        m = self.start(BROKER.bootstrap_ssl, "SSL", creds)
        self.fails(m, "spec.streams.securityProtocol SSL", "tls.crt")

    def test_plaintext_against_a_tls_listener(self):
        self.topics()
        m = self.start(BROKER.bootstrap_ssl, "PLAINTEXT", None)
        self.fails(m, "spec.streams.securityProtocol PLAINTEXT", "TLS")

    def test_missing_password_file(self):
        self.topics()
        creds = secret_dir(self.work, "creds", {"ca.crt": self.ca, "username": "u"})
        m = self.start(BROKER.bootstrap_sasl_ssl, "SASL_SSL", creds, "PLAIN")
        self.fails(m, "spec.streams.saslMechanism needs password in the credentialsSecret",
                   os.path.join(creds, "password"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
