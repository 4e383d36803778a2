#!/usr/bin/env python3
"""maskmesh-stream against a real Apache Kafka broker (KRaft, from Maven Central's jars, on
127.0.0.1: tests/kafka/broker.sh), checked with an independent client (confluent-kafka from
PyPI) that reads the output with isolation.level=read_committed: masking, keys, partitions
and headers kept, exactly once across a SIGKILL and a restart, a rebalance when a second
masker joins, the dead-letter and stop paths, a policy reload under load, SIGTERM."""
import hashlib
import hmac
import base64
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))
import kafkatest  # noqa: E402

BROKER = None
CARD = "4111111111111111"
KEY = b"stream-test-key"


def setUpModule():
    global BROKER
    BROKER = kafkatest.Broker(deadline_s=1500)


def tearDownModule():
    if BROKER:
        BROKER.stop()
        # nothing of the broker stays behind (its log segments filled /tmp once)
        if os.path.exists(BROKER.dir):
            raise AssertionError("the broker's directory outlived it: " + BROKER.dir)


def token(value):
    """The tokenize action as README documents it: tok_ + base32 of HMAC-SHA256's first 20."""
    d = hmac.new(KEY, value.encode(), hashlib.sha256).digest()[:20]
    return "tok_" + base64.b32encode(d).decode().lower().rstrip("=")


def order(i):
    return json.dumps({"id": i, "card": CARD, "email": "user%d@example.com" % i,
                       "amount": i % 997}).encode()


class StreamCase(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="mm-stream-")
        self.keys = os.path.join(self.work, "keys")
        os.mkdir(self.keys)
        with open(os.path.join(self.keys, "k1"), "wb") as f:
            f.write(KEY)
        self.maskers = []
        self.n = self.id().split(".")[-1].replace("_", "-")

    def tearDown(self):
        # a masker still running must stop cleanly on SIGTERM (under ASan: without a leak)
        bad = [(m, rc) for m in self.maskers for rc in [m.close()] if rc not in (None, 0)]
        for m, rc in bad:
            sys.stderr.write("---- masker %s exited %s on SIGTERM\n%s\n" % (m.log, rc, m.text()[-3000:]))
        if bad:
            shutil.rmtree(self.work, ignore_errors=True)
            self.fail("a masker did not stop cleanly on SIGTERM")
        if self._outcome_failed():
            for m in self.maskers:
                sys.stderr.write("---- masker log %s\n%s\n" % (m.log, m.text()[-3000:]))
        shutil.rmtree(self.work, ignore_errors=True)

    def _outcome_failed(self):
        res = getattr(self, "_outcome", None)
        errs = getattr(getattr(res, "result", None), "errors", []) + \
            getattr(getattr(res, "result", None), "failures", [])
        return any(t is self for t, _ in errs)

    def policy(self, inputs, output, extra="", **kw):
        if "consumerGroup" not in extra:  # one group per test
            extra += "    consumerGroup: %s-g\n" % self.n
        path = os.path.join(self.work, "policy.yaml")
        kafkatest.write_atomic(path, kafkatest.policy_yaml(BROKER.bootstrap, inputs, output,
                                                           extra, **kw))
        return path

    def masker(self, path, **kw):
        m = kafkatest.Masker(self.work, path, keys_dir=self.keys, **kw)
        self.maskers.append(m)
        return m

    def assert_no_clear(self, msgs):
        for m in msgs:
            v = (m.value() or b"").decode()
            self.assertNotIn(CARD, v)
            self.assertNotIn("@example.com", v)

    def ids_once(self, msgs, n):
        ids = [json.loads(m.value())["id"] for m in msgs]
        dup = len(ids) - len(set(ids))
        missing = set(range(n)) - set(ids)
        self.assertEqual(dup, 0, "duplicates in the output")
        self.assertEqual(sorted(missing)[:10], [], "records missing from the output")
        self.assertEqual(len(ids), n)
        return ids

    # ---------------------------------------------------------------------------------------

    def test_masks_and_keeps_keys_partitions_headers(self):
        i_t, o_t = self.n + "-in", self.n + "-out"
        BROKER.topics(3, i_t, o_t)
        recs = []
        for i in range(30):
            recs.append((b"key-%d" % i, order(i),
                         [("authorization", b"Bearer sekret"), ("x-session", b"s1"),
                          ("trace-id", b"t-%d" % i)], i % 3))
        # NDJSON by its content type, text by its content type, a tombstone (null value)
        recs.append((b"nd", b'{"card":"%s"}\n{"email":"a@example.com"}\n' % CARD.encode(),
                     [("content-type", b"application/x-ndjson")], 0))
        recs.append((b"tx", b"call ada@example.com now", [("Content-Type", b"text/plain")], 1))
        recs.append((b"gone", None, [], 2))
        BROKER.produce(i_t, recs)
        self.masker(self.policy([i_t], o_t))
        out = BROKER.consume([o_t], len(recs))
        self.assertEqual(len(out), len(recs))
        self.assert_no_clear(out)
        by_key = {m.key(): m for m in out}
        for i in range(30):
            m = by_key[b"key-%d" % i]
            self.assertEqual(m.partition(), i % 3, "partition not kept")
            v = json.loads(m.value())
            self.assertEqual(v["card"], "*" * 12 + CARD[-4:])
            self.assertEqual(v["email"], token("user%d@example.com" % i))
            self.assertEqual(v["amount"], i % 997)
            self.assertEqual(m.headers(), [("authorization", b"[REDACTED]"),
                                           ("trace-id", b"t-%d" % i)])
        nd = by_key[b"nd"].value().decode().split("\n")
        self.assertEqual(json.loads(nd[0])["card"], "*" * 12 + CARD[-4:])
        self.assertEqual(json.loads(nd[1])["email"], token("a@example.com"))
        self.assertEqual(by_key[b"tx"].value(), ("call %s now" % token("ada@example.com")).encode())
        self.assertIsNone(by_key[b"gone"].value())
        # the masker's own count and findings by rule
        m = self.maskers[0]
        self.assertEqual(m.wait_metric("maskmesh_stream_records_total", len(recs), result="masked"),
                         len(recs))
        self.assertGreaterEqual(m.metric("maskmesh_stream_findings_total", rule="card"), 31)
        self.assertGreaterEqual(m.metric("maskmesh_stream_findings_total", rule="contact"), 32)

    def test_keys_masked_and_aborted_input_skipped(self):
        i_t, o_t = self.n + "-in", self.n + "-out"
        BROKER.topics(1, i_t, o_t)
        # an upstream transaction that aborts: read_committed input never sees its records
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": BROKER.bootstrap, "transactional.id": self.n + "-up"})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(i_t, key=b"aborted", value=order(99))
        p.flush(30)
        p.abort_transaction(30)
        BROKER.produce(i_t, [(b"user7@example.com", order(7), None, 0), (b"plain-key", order(8), None, 0)])
        self.masker(self.policy([i_t], o_t, "    keys: mask\n"))
        out = BROKER.consume([o_t], 2, idle_s=3)
        self.assertEqual([m.key() for m in out], [token("user7@example.com").encode(), b"plain-key"])
        self.assertEqual([json.loads(m.value())["id"] for m in out], [7, 8])

    def test_exactly_once_across_sigkill_and_restart(self):
        n = 40000
        i_t, o_t = self.n + "-in", self.n + "-out"
        BROKER.topics(4, i_t, o_t)
        BROKER.produce(i_t, [(b"k%d" % (i % 64), order(i), None, None) for i in range(n)])
        path = self.policy([i_t], o_t)
        # small transactions, so the kill lands with some committed and one open
        a = self.masker(path, txn_id="eos-1", extra=("--commit-records", "500"))
        a.wait_metric("maskmesh_stream_transactions_total", 3, result="committed")
        a.kill()
        self.assertLess(len(BROKER.consume([o_t], n, timeout_s=5, idle_s=0)), n,
                        "the kill came after everything was masked: it proved nothing")
        self.masker(path, txn_id="eos-1", extra=("--commit-records", "500"))
        out = BROKER.consume([o_t], n, timeout_s=120, idle_s=3)
        self.ids_once(out, n)
        self.assert_no_clear(out)
        # each output partition holds its input partition's records, in the same order
        def seqs(msgs):
            by = {}
            for m in msgs:
                by.setdefault(m.partition(), []).append(json.loads(m.value())["id"])
            return by
        inp = BROKER.consume([i_t], n, timeout_s=60, idle_s=0)
        self.assertEqual(seqs(out), seqs(inp))

    def test_rebalance_when_a_second_masker_joins(self):
        n = 30000
        i_t, o_t = self.n + "-in", self.n + "-out"
        BROKER.topics(4, i_t, o_t)
        path = self.policy([i_t], o_t)
        a = self.masker(path, txn_id="rb-a", extra=("--commit-records", "500"))
        a.wait_metric("maskmesh_stream_assigned_partitions", 4)
        done = threading.Event()

        def feed():
            for lo in range(0, n, 1000):
                BROKER.produce(i_t, [(b"k%d" % i, order(i), None, None) for i in range(lo, lo + 1000)])
                time.sleep(0.1)
            done.set()

        t = threading.Thread(target=feed)
        t.start()
        a.wait_metric("maskmesh_stream_records_total", 2000, result="masked")
        b = self.masker(path, txn_id="rb-b", extra=("--commit-records", "500"))
        b.wait_metric("maskmesh_stream_assigned_partitions", 1)
        t.join(120)
        self.assertTrue(done.is_set())
        out = BROKER.consume([o_t], n, timeout_s=120, idle_s=3)
        self.ids_once(out, n)
        # both took part, and the partitions are split between them
        self.assertGreater(b.metric("maskmesh_stream_records_total", result="masked"), 0)
        self.assertEqual(a.metric("maskmesh_stream_assigned_partitions") +
                         b.metric("maskmesh_stream_assigned_partitions"), 4)
        self.assertIn("partitions revoked, committing the transaction", a.text())

    def test_dead_letter_path(self):
        i_t, o_t, d_t = self.n + "-in", self.n + "-out", self.n + "-dlq"
        BROKER.topics(2, i_t, o_t, d_t)
        bad_json = b'{"card": "%s", "email": ' % CARD.encode()
        recs = [(b"a", order(0), None, 0), (b"b", bad_json, None, 0), (b"c", order(2), None, 0),
                (b"d", b"\x89PNG %s" % CARD.encode(), [("content-type", b"image/png")], 1),
                (b"e", order(4), None, 1)]
        BROKER.produce(i_t, recs)
        m = self.masker(self.policy([i_t], o_t, "    deadLetterTopic: %s\n    onError: dead-letter\n" % d_t))
        out = BROKER.consume([o_t], 3)
        dlq = BROKER.consume([d_t], 2)
        self.assertEqual(sorted(x.key() for x in out), [b"a", b"c", b"e"])
        self.assert_no_clear(out)
        self.assertEqual(len(dlq), 2)
        for x in dlq:
            self.assertNotIn(CARD.encode(), x.value())
            self.assertIsNone(x.key())
            self.assertIn(("maskmesh-error", b"unmaskable"), x.headers())
        errs = sorted((json.loads(x.value())["partition"], json.loads(x.value())["offset"],
                       json.loads(x.value())["error"]) for x in dlq)
        self.assertEqual(errs[0][:2], (0, 1))
        self.assertIn("offset", errs[0][2])
        self.assertEqual(errs[1][:2], (1, 0))
        self.assertIn("image/png", errs[1][2])
        self.assertEqual(m.wait_metric("maskmesh_stream_records_total", 2, result="dead_letter"), 2)
        self.assertNotIn(CARD, m.text())

    def test_stop_path_holds_the_partition(self):
        i_t, o_t = self.n + "-in", self.n + "-out"
        BROKER.topics(2, i_t, o_t)
        recs = [(b"a", order(0), None, 0), (b"b", b'{"card": [', None, 0), (b"c", order(2), None, 0),
                (b"d", order(3), None, 1), (b"e", order(4), None, 1)]
        BROKER.produce(i_t, recs)
        path = self.policy([i_t], o_t, "    consumerGroup: %s-g\n" % self.n)
        m = self.masker(path)
        out = BROKER.consume([o_t], 3, idle_s=3)
        self.assertEqual(sorted(x.key() for x in out), [b"a", b"d", b"e"])
        self.assertEqual(m.wait_metric("maskmesh_stream_stopped_partitions", 1), 1)
        self.assertEqual(m.term(), 0)
        # the committed offset of the stopped partition is the record that failed, so the
        # next masker stops there again instead of skipping it
        self.assertEqual(BROKER.committed(self.n + "-g", i_t, 2), {0: 1, 1: 2})
        m2 = self.masker(path)
        m2.wait_metric("maskmesh_stream_stopped_partitions", 1)
        self.assertEqual(len(BROKER.consume([o_t], 3, idle_s=2)), 3)

    def test_reload_under_load(self):
        n = 30000
        i_t, o_t = self.n + "-in", self.n + "-out"
        BROKER.topics(2, i_t, o_t)
        path = self.policy([i_t], o_t)
        m = self.masker(path, extra=("--commit-records", "1000"))
        m.wait_metric("maskmesh_stream_assigned_partitions", 2)
        done = threading.Event()

        def feed():
            for lo in range(0, n, 1000):
                BROKER.produce(i_t, [(b"k%d" % i, order(i), None, None) for i in range(lo, lo + 1000)])
                time.sleep(0.05)
            done.set()

        t = threading.Thread(target=feed)
        t.start()
        m.wait_metric("maskmesh_stream_records_total", 5000, result="masked")
        rules = """    - name: card
      fields: ["$.card"]
      action: {type: redact, replacement: "[CARD]"}
    - name: contact
      detectors: [email]
      action: {type: tokenize, key: k1}
"""
        kafkatest.write_atomic(path, kafkatest.policy_yaml(BROKER.bootstrap, [i_t], o_t, rules=rules))
        m.wait_log("policy reloaded", 30)
        t.join(120)
        self.assertTrue(done.is_set())
        out = BROKER.consume([o_t], n, timeout_s=120, idle_s=3)
        self.ids_once(out, n)
        self.assert_no_clear(out)
        cards = [json.loads(x.value())["card"] for x in out]
        self.assertIn("[CARD]", cards)
        self.assertIn("*" * 12 + CARD[-4:], cards)
        self.assertEqual(set(cards), {"[CARD]", "*" * 12 + CARD[-4:]})
        # within a partition the change happens once: old masking, then new
        for p in (0, 1):
            seq = [json.loads(x.value())["card"] == "[CARD]" for x in out if x.partition() == p]
            self.assertEqual(seq, sorted(seq))
        self.assertIsNone(m.proc.poll(), "the masker restarted or died on the reload")

    def test_sigterm_commits_and_leaves_the_group(self):
        i_t, o_t = self.n + "-in", self.n + "-out"
        BROKER.topics(2, i_t, o_t)
        BROKER.produce(i_t, [(b"k%d" % i, order(i), None, None) for i in range(500)])
        group = self.n + "-g"
        # a long commit interval: only the SIGTERM path commits these
        m = self.masker(self.policy([i_t], o_t, "    consumerGroup: %s\n" % group),
                        extra=("--commit-ms", "600000", "--commit-records", "1000000"))
        m.wait_metric("maskmesh_stream_records_total", 500, result="masked")
        self.assertEqual(BROKER.consume([o_t], 500, timeout_s=3, idle_s=0), [])
        self.assertEqual(m.term(), 0)
        self.assertEqual(len(BROKER.consume([o_t], 500, idle_s=1)), 500)
        offs = BROKER.committed(group, i_t, 2)
        self.assertEqual(sum(offs.values()), 500)
        state, members = BROKER.group_state(group)
        self.assertEqual(members, 0)
        self.assertEqual(state, "EMPTY")


if __name__ == "__main__":
    unittest.main(verbosity=2)
