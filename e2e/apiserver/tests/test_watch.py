"""Watch streams: envelope, bookmarks, resume, expiry, selectors, timeouts, dropped watches."""
import time
import unittest

from e2e.apiserver.tests._support import ServerTest, Watch, mp, recorded, sample

MPS = "/apis/maskmesh.io/v1alpha1/maskingpolicies"
MP = "/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies"


class WatchTest(ServerTest):
    server_args = ("--bookmark-interval", "0.3")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        t = cls("run")
        t.ensure_crd()
        t.ensure_ns("shop")

    def list_rv(self, path=MPS):
        st, _, body = self.s.req("GET", path)
        self.assertEqual(st, 200)
        return body["metadata"]["resourceVersion"]

    def next_non_bookmark(self, w, timeout=5):
        end = time.monotonic() + timeout
        while True:
            ev = w.next(max(0.1, end - time.monotonic()))
            if ev is None or ev["type"] != "BOOKMARK":
                return ev

    def test_envelope_sequence_like_sample(self):
        rv = self.list_rv()
        w = Watch(self.s, MPS + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv)
        try:
            self.assertEqual(w.status, 200)
            self.assertEqual(w.headers["content-type"], "application/json")
            self.assertEqual(w.headers["transfer-encoding"], "chunked")
            st, _, obj = self.s.req("POST", MP, mp("seq"))
            self.assertEqual(st, 201)
            obj["status"] = {"observedGeneration": 1}
            st, _, obj = self.s.req("PUT", MP + "/seq/status", obj)
            st, _, obj = self.s.req("PATCH", MP + "/seq", {"spec": {"port": 9090}}, ctype="application/merge-patch+json")
            st, _, _ = self.s.req("DELETE", MP + "/seq")
            events = []
            bookmarks = []
            while len(events) < 4:
                ev = w.next(5)
                self.assertIsNotNone(ev)
                (bookmarks if ev["type"] == "BOOKMARK" else events).append(ev)
            want = [e for e in sample("watch-maskingpolicies.ndjson") if e["type"] != "BOOKMARK"]
            self.assertEqual([e["type"] for e in events], ["ADDED", "MODIFIED", "MODIFIED", "DELETED"])
            self.assertEqual([e["type"] for e in events], [e["type"] for e in want[:2]] + ["MODIFIED", "DELETED"])
            for ev in events:
                self.assertEqual(sorted(ev), ["object", "type"])
                self.assertEqual(ev["object"]["kind"], "MaskingPolicy")
                self.assertEqual(ev["object"]["apiVersion"], "maskmesh.io/v1alpha1")
            self.assertEqual([e["object"]["metadata"]["generation"] for e in events], [1, 1, 2, 2])
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
            self.assertEqual(rvs, sorted(rvs))
            self.assertEqual(len(set(rvs)), 4)
            self.assertEqual(events[3]["object"]["spec"]["port"], 9090)
            ev = w.next(3)
            while ev["type"] != "BOOKMARK":
                ev = w.next(3)
            bm_sample = recorded("watch-bookmark")[0]
            self.assertEqual(sorted(ev["object"]), sorted(bm_sample["object"]))
            self.assertEqual(list(ev["object"]["metadata"]), ["resourceVersion"])
            self.assertGreaterEqual(int(ev["object"]["metadata"]["resourceVersion"]), rvs[-1])
        finally:
            w.close()

    def test_no_bookmarks_unless_asked_and_timeout_ends_stream(self):
        rv = self.list_rv()
        w = Watch(self.s, MPS + "?watch=1&timeoutSeconds=1&resourceVersion=" + rv)
        try:
            t = time.monotonic()
            self.assertIsNone(w.next(5))
            self.assertLess(time.monotonic() - t, 4)
        finally:
            w.close()

    def test_resume_from_history(self):
        rv = self.list_rv()
        self.s.req("POST", MP, mp("r1"))
        self.s.req("POST", MP, mp("r2"))
        w = Watch(self.s, MPS + "?watch=1&resourceVersion=" + rv)
        try:
            names = [w.next(5)["object"]["metadata"]["name"] for _ in range(2)]
            self.assertEqual(names, ["r1", "r2"])
        finally:
            w.close()
        self.s.req("DELETE", MP + "/r1")
        self.s.req("DELETE", MP + "/r2")

    def test_initial_events_without_rv_and_send_initial_events(self):
        self.s.req("POST", MP, mp("init"))
        w = Watch(self.s, MPS + "?watch=1&fieldSelector=metadata.name%3Dinit")
        try:
            ev = w.next(5)
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "init"))
        finally:
            w.close()
        w = Watch(self.s, MPS + "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
                  "&fieldSelector=metadata.name%3Dinit")
        try:
            ev = w.next(5)
            self.assertEqual(ev["type"], "ADDED")
            bm = w.next(5)
            want = sample("watch-list-maskingpolicies.ndjson")[-1]
            self.assertEqual(bm["type"], "BOOKMARK")
            self.assertEqual(bm["object"]["metadata"]["annotations"], want["object"]["metadata"]["annotations"])
            self.assertEqual(sorted(bm["object"]["metadata"]), sorted(want["object"]["metadata"]))
        finally:
            w.close()
        self.s.req("DELETE", MP + "/init")

    def test_label_selector_transitions(self):
        rv = self.list_rv()
        w = Watch(self.s, MPS + "?watch=1&labelSelector=team%3Da&resourceVersion=" + rv)
        try:
            self.s.req("POST", MP, mp("lbl"))
            self.s.req("PATCH", MP + "/lbl", {"metadata": {"labels": {"team": "a"}}}, ctype="application/merge-patch+json")
            self.s.req("PATCH", MP + "/lbl", {"spec": {"port": 1234}}, ctype="application/merge-patch+json")
            self.s.req("PATCH", MP + "/lbl", {"metadata": {"labels": {"team": "b"}}}, ctype="application/merge-patch+json")
            types = [w.next(5)["type"] for _ in range(3)]
            self.assertEqual(types, ["ADDED", "MODIFIED", "DELETED"])
        finally:
            w.close()
        self.s.req("DELETE", MP + "/lbl")

    def test_expired_rv_gives_200_and_error_event(self):
        rv = self.list_rv()
        self.s.req("POST", MP, mp("exp"))
        self.s.fault(compact=True)
        w = Watch(self.s, MPS + "?watch=1&resourceVersion=" + rv)
        try:
            self.assertEqual(w.status, 200)
            ev = w.next(5)
            want = recorded("watch-expired")[0]
            self.assertEqual(ev["type"], "ERROR")
            self.assertEqual(sorted(ev["object"]), sorted(want["object"]))
            self.assertEqual(ev["object"]["code"], 410)
            self.assertEqual(ev["object"]["reason"], "Expired")
            self.assertEqual(ev["object"], want["object"])
            self.assertIsNone(w.next(5))
        finally:
            w.close()
        fresh = self.list_rv()
        w = Watch(self.s, MPS + "?watch=1&resourceVersion=" + fresh)
        try:
            self.s.req("DELETE", MP + "/exp")
            self.assertEqual(self.next_non_bookmark(w)["type"], "DELETED")
        finally:
            w.close()

    def test_drop_watches(self):
        rv = self.list_rv()
        w = Watch(self.s, MPS + "?watch=1&resourceVersion=" + rv)
        try:
            self.s.fault(dropWatches=True)
            end = time.monotonic() + 5
            ev = w.next(5)
            self.assertIsNone(ev)
            self.assertTrue(w.abrupt)  # connection cut, no terminating chunk
            self.assertLess(time.monotonic(), end)
        finally:
            w.close()

    def test_table_watch(self):
        rv = self.list_rv()
        w = Watch(self.s, MPS + "?watch=1&resourceVersion=" + rv,
                  headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
        try:
            self.s.req("POST", MP, mp("tbl"))
            ev = w.next(5)
            self.assertEqual(ev["type"], "ADDED")
            self.assertEqual(ev["object"]["kind"], "Table")
            self.assertEqual([c["name"] for c in ev["object"]["columnDefinitions"]], ["Name", "Ready", "Mode", "Rules", "Age"])
            self.assertEqual(ev["object"]["rows"][0]["cells"][:3], ["tbl", None, "enforce"])
        finally:
            w.close()
        self.s.req("DELETE", MP + "/tbl")


if __name__ == "__main__":
    unittest.main()
