"""REST behaviour of the stand-in against the wire samples in tests/k8s-samples."""
import base64
import json
import os
import ssl
import subprocess
import time
import unittest

from e2e.apiserver.tests._support import CRD, READONLY, SAMPLES, ServerTest, mp, recorded, sample, wait_until

MP = "/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies"


class DiscoveryTest(ServerTest):
    def test_headers_on_every_response(self):
        for path in ("/version", "/api", "/api/v1/namespaces/nope-ns", "/nothing-here"):
            st, hdrs, _ = self.s.req("GET", path)
            h = dict((k.lower(), v) for k, v in hdrs)
            self.assertEqual(h["cache-control"], "no-cache, private", path)
            self.assertRegex(h["audit-id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
        st, hdrs, body = self.s.req("GET", "/api/v1/namespaces/nope-ns")
        self.assertEqual(dict((k.lower(), v) for k, v in hdrs)["content-type"], "application/json")

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        c = self.s.conn()
        try:
            ports = set()
            for path, tok, want in (("/api", self.s.token, 200), ("/api/v1/namespaces/nope", self.s.token, 404),
                                    ("/nothing", self.s.token, 404), ("/api", "bad", 401), ("/version", self.s.token, 200)):
                c.request("GET", path, headers={"Authorization": "Bearer " + tok})
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, want, path)
                self.assertEqual(r.version, 11)
                ports.add(c.sock.getsockname()[1])
            self.assertEqual(len(ports), 1)
        finally:
            c.close()

    def test_discovery_documents(self):
        st, _, v = self.s.req("GET", "/version")
        self.assertEqual(st, 200)
        self.assertIn("gitVersion", v)
        st, _, api = self.s.req("GET", "/api")
        self.assertEqual(api["kind"], "APIVersions")
        self.assertEqual(api["versions"], ["v1"])
        st, _, rl = self.s.req("GET", "/api/v1")
        self.assertEqual(rl["kind"], "APIResourceList")
        pods = next(r for r in rl["resources"] if r["name"] == "pods")
        self.assertEqual(pods["kind"], "Pod")
        self.assertTrue(pods["namespaced"])
        self.assertIn("po", pods["shortNames"])
        self.assertIn("watch", pods["verbs"])
        self.assertIn("pods/status", [r["name"] for r in rl["resources"]])
        st, _, groups = self.s.req("GET", "/apis")
        names = [g["name"] for g in groups["groups"]]
        for g in ("admissionregistration.k8s.io", "apiextensions.k8s.io", "coordination.k8s.io",
                  "events.k8s.io", "networking.k8s.io"):
            self.assertIn(g, names)
        st, _, _ = self.s.req("GET", "/apis/absent.example.com/v1")
        self.assertEqual(st, 404)

    def test_crd_serves_custom_resource_with_shortname_category_status(self):
        self.ensure_crd()
        st, _, rl = self.s.req("GET", "/apis/maskmesh.io/v1alpha1")
        self.assertEqual(st, 200)
        mpres = next(r for r in rl["resources"] if r["name"] == "maskingpolicies")
        self.assertEqual(mpres["shortNames"], ["mp"])
        self.assertEqual(mpres["categories"], ["maskmesh"])
        self.assertEqual(mpres["kind"], "MaskingPolicy")
        self.assertIn("maskingpolicies/status", [r["name"] for r in rl["resources"]])
        st, _, groups = self.s.req("GET", "/apis")
        self.assertIn("maskmesh.io", [g["name"] for g in groups["groups"]])
        st, _, crd = self.s.req("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/maskingpolicies.maskmesh.io")
        conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        self.assertEqual(conds.get("Established"), "True")

    def test_unserved_path_is_plain_text_404(self):
        st, hdrs, body = self.s.req("GET", "/apis/nothere.example.com/v1/namespaces/shop/things")
        self.assertEqual(st, 404)
        self.assertEqual(body, "404 page not found\n")
        self.assertTrue(dict((k.lower(), v) for k, v in hdrs)["content-type"].startswith("text/plain"))


class AuthTest(ServerTest):
    def test_401_without_or_with_bad_token(self):
        for tok in (False, "wrong"):
            st, _, body = self.s.req("GET", "/api/v1/namespaces", token=tok)
            self.assertEqual(st, 401)
            self.assertEqual(body, recorded("status-401"))

    def test_readonly_token_reads_but_cannot_write(self):
        st, _, body = self.s.req("GET", "/api/v1/namespaces", token=READONLY)
        self.assertEqual(st, 200)
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "maskmesh-policies"}, "data": {}}
        st, _, body = self.s.req("POST", "/api/v1/namespaces/default/configmaps", cm)
        self.assertEqual(st, 201)
        st, _, body = self.s.req("PUT", "/api/v1/namespaces/default/configmaps/maskmesh-policies", body, token=READONLY)
        self.assertEqual(st, 403)
        self.status_like(body, sample("status-403-forbidden.json"), 403)
        self.assertEqual(body["message"], 'configmaps "maskmesh-policies" is forbidden: User "maskmesh-e2e-readonly" cannot update '
                                          'resource "configmaps" in API group "" in the namespace "default"')
        self.assertEqual(body["details"], {"name": "maskmesh-policies", "kind": "configmaps"})
        st, _, _ = self.s.req("POST", "/_maskmesh/fault", {"delay": 0}, token=READONLY)
        self.assertEqual(st, 403)

    def test_body_over_3mib_is_413(self):
        big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "a" * (3 * 1024 * 1024)}}
        st, _, body = self.s.req("POST", "/api/v1/namespaces/default/configmaps", big)
        self.assertEqual(st, 413)
        self.assertEqual(body["code"], 413)
        st, _, _ = self.s.req("GET", "/api/v1/namespaces/default/configmaps/big")
        self.assertEqual(st, 404)


class CrudTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        t = cls("run")
        t.ensure_crd()
        t.ensure_ns("shop")

    def create(self, name, **kw):
        st, _, body = self.s.req("POST", MP, mp(name, **kw))
        self.assertEqual(st, 201, body)
        return body

    def test_create_get_shape_and_metadata(self):
        obj = self.create("shape")
        md = obj["metadata"]
        self.assertEqual(obj["kind"], "MaskingPolicy")
        self.assertEqual(obj["apiVersion"], "maskmesh.io/v1alpha1")
        self.assertRegex(md["uid"], r"^[0-9a-f-]{36}$")
        self.assertRegex(md["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertIsInstance(md["resourceVersion"], str)
        self.assertEqual(md["generation"], 1)
        self.assertEqual(obj["spec"]["mode"], "enforce")  # schema default applied
        mf = md["managedFields"][0]
        self.assertEqual(mf["operation"], "Update")
        self.assertEqual(mf["fieldsType"], "FieldsV1")
        self.assertIn("f:spec", mf["fieldsV1"])
        st, _, got = self.s.req("GET", MP + "/shape")
        self.assertEqual(st, 200)
        self.assertEqual(got, obj)
        st, _, body = self.s.req("POST", MP, mp("shape"))
        self.assertEqual(st, 409)
        self.assertEqual(body["reason"], "AlreadyExists")
        self.assertEqual(body["message"], 'maskingpolicies.maskmesh.io "shape" already exists')

    def test_generate_name(self):
        o = mp("x")
        del o["metadata"]["name"]
        o["metadata"]["generateName"] = "gen-"
        st, _, body = self.s.req("POST", MP, o)
        self.assertEqual(st, 201)
        self.assertRegex(body["metadata"]["name"], r"^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$")

    def test_404_shape(self):
        st, _, body = self.s.req("GET", MP + "/payments-api")
        self.assertEqual(st, 404)
        self.assertEqual(body, sample("status-404.json"))
        st, _, body = self.s.req("GET", "/api/v1/namespaces/shop/configmaps/absent")
        self.assertEqual(body["details"], {"name": "absent", "kind": "configmaps"})
        self.assertEqual(body["message"], 'configmaps "absent" not found')

    def test_create_in_missing_namespace_is_404(self):
        st, _, body = self.s.req("POST", "/apis/maskmesh.io/v1alpha1/namespaces/nowhere/maskingpolicies", mp("a", ns="nowhere"))
        self.assertEqual(st, 404)
        self.assertEqual(body["message"], 'namespaces "nowhere" not found')

    def test_update_conflict_409_exact(self):
        obj = self.create("payments-api")
        stale = json.loads(json.dumps(obj))
        obj["spec"]["port"] = 8081
        st, _, upd = self.s.req("PUT", MP + "/payments-api", obj)
        self.assertEqual(st, 200)
        self.assertNotEqual(upd["metadata"]["resourceVersion"], stale["metadata"]["resourceVersion"])
        self.assertEqual(upd["metadata"]["generation"], 2)
        stale["spec"]["port"] = 8082
        st, _, body = self.s.req("PUT", MP + "/payments-api", stale)
        self.assertEqual(st, 409)
        self.assertEqual(body, sample("status-409-conflict.json"))
        st, _, body = self.s.req("PUT", MP + "/payments-api/status", stale)
        self.assertEqual(st, 409)
        self.assertEqual(body, sample("status-409-conflict.json"))

    def test_status_subresource_and_generation_rules(self):
        obj = self.create("gen")
        obj["status"] = {"observedGeneration": 1}
        st, _, a = self.s.req("PUT", MP + "/gen", obj)  # status ignored on the main resource
        self.assertEqual(st, 200)
        self.assertNotIn("status", a)
        self.assertEqual(a["metadata"]["generation"], 1)
        a["status"] = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Rendered",
                                                                "message": "ok", "observedGeneration": 1,
                                                                "lastTransitionTime": "2026-07-20T08:55:13Z"}]}
        a["spec"]["port"] = 9999  # ignored on /status
        st, _, b = self.s.req("PUT", MP + "/gen/status", a, headers={"User-Agent": "maskmesh-controller/0.1"})
        self.assertEqual(st, 200)
        self.assertEqual(b["status"]["observedGeneration"], 1)
        self.assertEqual(b["spec"]["port"], 8080)
        self.assertEqual(b["metadata"]["generation"], 1)
        smf = [m for m in b["metadata"]["managedFields"] if m.get("subresource") == "status"]
        self.assertEqual(smf[0]["manager"], "maskmesh-controller")
        self.assertIn("f:status", smf[0]["fieldsV1"])
        st, _, c = self.s.req("PATCH", MP + "/gen", {"metadata": {"labels": {"x": "y"}}}, ctype="application/merge-patch+json")
        self.assertEqual(c["metadata"]["generation"], 1)  # metadata-only change
        self.assertEqual(c["status"], b["status"])
        st, _, d = self.s.req("PATCH", MP + "/gen", {"spec": {"port": 8443}}, ctype="application/merge-patch+json")
        self.assertEqual(d["metadata"]["generation"], 2)
        st, _, e = self.s.req("PATCH", MP + "/gen/status", {"status": {"observedGeneration": 2}},
                              ctype="application/merge-patch+json")
        self.assertEqual(e["metadata"]["generation"], 2)
        self.assertEqual(e["status"]["observedGeneration"], 2)

    def test_patch_types(self):
        self.create("patchme")
        st, _, a = self.s.req("PATCH", MP + "/patchme", [{"op": "replace", "path": "/spec/port", "value": 7070},
                                                         {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}],
                              ctype="application/json-patch+json")
        self.assertEqual(st, 200, a)
        self.assertEqual(a["spec"]["port"], 7070)
        self.assertEqual(a["metadata"]["labels"], {"a": "b"})
        st, _, b = self.s.req("PATCH", MP + "/patchme", {"metadata": {"labels": {"a": None, "c": "d"}}},
                              ctype="application/merge-patch+json; charset=utf-8")
        self.assertEqual(b["metadata"]["labels"], {"c": "d"})
        st, _, body = self.s.req("PATCH", MP + "/patchme", {"spec": {}}, ctype="application/strategic-merge-patch+json")
        self.assertEqual(st, 415)
        self.assertEqual(body, sample("status-415-smp-on-cr.json"))
        st, _, body = self.s.req("PATCH", MP + "/absent", {"spec": {}}, ctype="application/merge-patch+json")
        self.assertEqual(st, 404)
        st, _, body = self.s.req("PATCH", MP + "/patchme", [{"op": "remove", "path": "/spec/nothing"}],
                                 ctype="application/json-patch+json")
        self.assertEqual(st, 422)

    def test_strategic_merge_on_builtin(self):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
               "spec": {"containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}]}}
        st, _, body = self.s.req("POST", "/api/v1/namespaces/shop/pods", pod)
        self.assertEqual(st, 201)
        self.assertEqual(body["status"]["phase"], "Pending")
        st, _, body = self.s.req("PATCH", "/api/v1/namespaces/shop/pods/p1",
                                 {"spec": {"containers": [{"name": "side", "image": "s:2"}]}},
                                 ctype="application/strategic-merge-patch+json")
        self.assertEqual(st, 200, body)
        self.assertEqual([(c["name"], c["image"]) for c in body["spec"]["containers"]], [("app", "a:1"), ("side", "s:2")])

    def test_schema_validation_422(self):
        bad = mp("payments-api-bad", port=70000)
        bad["spec"]["rules"][0]["action"]["type"] = "hash"
        del bad["spec"]["selector"]
        st, _, body = self.s.req("POST", MP, bad)
        self.assertEqual(st, 422)
        want = sample("status-422-invalid.json")
        self.status_like(body, want, 422)
        self.assertEqual(body["details"]["kind"], "MaskingPolicy")
        self.assertEqual(body["details"]["group"], "maskmesh.io")
        got = sorted((c["field"], c["reason"], c["message"]) for c in body["details"]["causes"])
        exp = sorted((c["field"], c["reason"], c["message"]) for c in want["details"]["causes"])
        self.assertEqual(got, exp)
        self.assertTrue(body["message"].startswith('MaskingPolicy.maskmesh.io "payments-api-bad" is invalid: ['))
        for c in want["details"]["causes"]:
            self.assertIn("%s: %s" % (c["field"], c["message"]), body["message"])
        too_many = mp("many")
        too_many["spec"]["rules"] = [dict(too_many["spec"]["rules"][0], name="r%d" % i) for i in range(5)]
        too_many["spec"]["rules"][0]["name"] = "Bad Name"
        too_many["spec"]["rules"][1]["action"]["char"] = "**"
        st, _, body = self.s.req("POST", MP, too_many)
        self.assertEqual(st, 422)
        fields = {c["field"]: c for c in body["details"]["causes"]}
        self.assertEqual(fields["spec.rules"]["reason"], "FieldValueTooMany")
        self.assertIn("should match", fields["spec.rules[0].name"]["message"])
        self.assertEqual(fields["spec.rules[1].action.char"]["reason"], "FieldValueTooLong")
        st, _, _ = self.s.req("GET", MP + "/many")
        self.assertEqual(st, 404)

    def test_dry_run(self):
        st, _, body = self.s.req("POST", MP + "?dryRun=All", mp("dry"))
        self.assertEqual(st, 201)
        self.assertEqual(body["metadata"]["name"], "dry")
        st, _, _ = self.s.req("GET", MP + "/dry")
        self.assertEqual(st, 404)
        st, _, body = self.s.req("POST", MP + "?dryRun=Some", mp("dry"))
        self.assertEqual(st, 422)
        self.create("drydel")
        st, _, _ = self.s.req("DELETE", MP + "/drydel?dryRun=All")
        self.assertEqual(st, 200)
        st, _, _ = self.s.req("GET", MP + "/drydel")
        self.assertEqual(st, 200)

    def test_delete_and_preconditions(self):
        obj = self.create("del")
        st, _, body = self.s.req("DELETE", MP + "/del", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                         "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})
        self.assertEqual(st, 409)
        # kube-apiserver's rest.BeforeDelete: the kind in the message (recorded sample
        # configmap-delete-precondition-409)
        self.assertEqual(body["message"], 'Operation cannot be fulfilled on MaskingPolicy.maskmesh.io "del": the UID '
                         'in the precondition (00000000-0000-0000-0000-000000000000) does not match the UID in '
                         'record (%s). The object might have been deleted and then recreated' % obj["metadata"]["uid"])
        self.assertEqual(body["details"], {"name": "del", "group": "maskmesh.io", "kind": "MaskingPolicy"})
        st, _, body = self.s.req("DELETE", MP + "/del", {"preconditions": {"resourceVersion": obj["metadata"]["resourceVersion"]}})
        self.assertEqual(st, 200)
        self.assertEqual((body["kind"], body["status"], body["details"]["name"], body["details"]["uid"]),
                         ("Status", "Success", "del", obj["metadata"]["uid"]))
        st, _, body = self.s.req("DELETE", MP + "/del")
        self.assertEqual(st, 404)
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        self.s.req("POST", "/api/v1/namespaces/shop/configmaps", cm)
        st, _, body = self.s.req("DELETE", "/api/v1/namespaces/shop/configmaps/c")
        self.assertEqual((st, body["kind"], body["status"]), (200, "Status", "Success"))

    def test_finalizers_hold_deletion(self):
        o = mp("fin")
        o["metadata"]["finalizers"] = ["maskmesh.io/cleanup"]
        st, _, _ = self.s.req("POST", MP, o)
        st, _, body = self.s.req("DELETE", MP + "/fin")
        self.assertEqual(st, 200)
        self.assertIn("deletionTimestamp", body["metadata"])
        st, _, _ = self.s.req("PATCH", MP + "/fin", {"metadata": {"finalizers": None}}, ctype="application/merge-patch+json")
        self.assertEqual(st, 200)
        st, _, _ = self.s.req("GET", MP + "/fin")
        self.assertEqual(st, 404)

    def test_server_side_apply(self):
        path = "/api/v1/namespaces/shop/configmaps/maskmesh-policies"
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "maskmesh-policies", "namespace": "shop"},
              "data": {"policies.yaml": "[]\n"}}
        st, _, body = self.s.req("PATCH", path, cm, ctype="application/apply-patch+yaml")
        self.assertEqual(st, 422)
        self.assertEqual(body["message"], 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
        st, _, body = self.s.req("PATCH", path + "?fieldManager=x&force=true", {"data": {}}, ctype="application/merge-patch+json")
        self.assertEqual(st, 422)
        self.assertIn("force: Forbidden: may not be specified for non-apply patch", body["message"])
        st, _, body = self.s.req("PATCH", path + "?fieldManager=maskmesh-controller&force=true", cm,
                                 ctype="application/apply-patch+yaml")
        self.assertEqual(st, 201, body)
        want = sample("ssa-configmap-response.json")
        self.assertEqual(list(body)[:2], ["kind", "apiVersion"])
        mf = body["metadata"]["managedFields"]
        self.assertEqual([(m["manager"], m["operation"]) for m in mf], [("maskmesh-controller", "Apply")])
        self.assertEqual(mf[0]["fieldsV1"], {"f:data": {"f:policies.yaml": {}}})
        self.assertEqual(sorted(mf[0]), sorted(want["metadata"]["managedFields"][0]))
        st, _, body = self.s.req("PATCH", path + "?fieldManager=someone-else", {"data": {"policies.yaml": "- x\n"}},
                                 ctype="application/merge-patch+json")
        self.assertEqual(st, 200)
        cm["data"]["policies.yaml"] = "- y\n"
        st, _, body = self.s.req("PATCH", path + "?fieldManager=maskmesh-controller", cm, ctype="application/apply-patch+yaml")
        self.assertEqual(st, 409)
        self.assertEqual(body["reason"], "Conflict")
        self.assertEqual(body["details"]["causes"][0]["field"], ".data.policies.yaml")
        self.assertIn('conflict with "someone-else"', body["message"])
        st, _, body = self.s.req("PATCH", path + "?fieldManager=maskmesh-controller&force=true", cm,
                                 ctype="application/apply-patch+yaml")
        self.assertEqual(st, 200)
        self.assertEqual(body["data"]["policies.yaml"], "- y\n")
        self.assertEqual([m["manager"] for m in body["metadata"]["managedFields"]], ["maskmesh-controller"])

    def test_manager_from_user_agent(self):
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ua"}}
        st, _, body = self.s.req("POST", "/api/v1/namespaces/shop/configmaps", cm,
                                 headers={"User-Agent": "kube-controller-manager/v1.34.0 (linux/amd64)"})
        self.assertEqual(body["metadata"].get("managedFields", [{}])[0].get("manager", "kube-controller-manager"),
                         "kube-controller-manager")


class ListTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        t = cls("run")
        t.ensure_ns("shop")
        for i, (n, app) in enumerate([("a1", "payments"), ("a2", "payments"), ("a3", "web"), ("a4", "web"), ("a5", None)]):
            md = {"name": n}
            if app:
                md["labels"] = {"app": app, "tier": "t%d" % (i % 2)}
            st, _, _ = cls.s.req("POST", "/api/v1/namespaces/shop/pods",
                                 {"apiVersion": "v1", "kind": "Pod", "metadata": md,
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}})
            assert st == 201

    def names(self, q):
        st, _, body = self.s.req("GET", "/api/v1/namespaces/shop/pods" + q)
        self.assertEqual(st, 200, body)
        return [i["metadata"]["name"] for i in body["items"]]

    def test_list_shape_and_paging(self):
        want = sample("list-pods.json")
        st, _, p1 = self.s.req("GET", "/api/v1/namespaces/shop/pods?limit=2")
        self.assertEqual(p1["kind"], "PodList")
        self.assertEqual(p1["apiVersion"], "v1")
        self.assertEqual(sorted(p1["metadata"]), sorted(want["metadata"]))
        self.assertEqual(p1["metadata"]["remainingItemCount"], 3)
        for item in p1["items"]:
            self.assertNotIn("kind", item)
            self.assertNotIn("apiVersion", item)
        tok = p1["metadata"]["continue"]
        dec = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
        self.assertEqual(dec["v"], "meta.k8s.io/v1")
        seen = [i["metadata"]["name"] for i in p1["items"]]
        while tok:
            st, _, p = self.s.req("GET", "/api/v1/namespaces/shop/pods?limit=2&continue=" + tok)
            self.assertEqual(p["metadata"]["resourceVersion"], p1["metadata"]["resourceVersion"])
            seen += [i["metadata"]["name"] for i in p["items"]]
            tok = p["metadata"].get("continue")
        self.assertNotIn("remainingItemCount", p["metadata"])
        self.assertEqual(seen, ["a1", "a2", "a3", "a4", "a5"])
        st, _, p = self.s.req("GET", "/api/v1/namespaces/shop/pods?limit=1&labelSelector=app")
        self.assertNotIn("remainingItemCount", p["metadata"])
        self.assertIn("continue", p["metadata"])

    def test_label_selectors(self):
        self.assertEqual(self.names("?labelSelector=app%3Dpayments"), ["a1", "a2"])
        self.assertEqual(self.names("?labelSelector=app%3D%3Dweb"), ["a3", "a4"])
        self.assertEqual(self.names("?labelSelector=app!%3Dweb"), ["a1", "a2", "a5"])
        self.assertEqual(self.names("?labelSelector=app+in+(web,payments),tier+notin+(t0)"), ["a2", "a4"])
        self.assertEqual(self.names("?labelSelector=!app"), ["a5"])
        self.assertEqual(self.names("?labelSelector=tier"), ["a1", "a2", "a3", "a4"])
        self.assertEqual(self.names("?fieldSelector=metadata.name%3Da3"), ["a3"])
        self.assertEqual(self.names("?fieldSelector=metadata.name!%3Da3,metadata.namespace%3Dshop"), ["a1", "a2", "a4", "a5"])
        st, _, body = self.s.req("GET", "/api/v1/namespaces/shop/pods?fieldSelector=spec.bogus%3Dx")
        self.assertEqual(st, 400)

    def test_cross_namespace_list_and_cr_items_have_kind(self):
        st, _, body = self.s.req("GET", "/api/v1/pods")
        self.assertEqual(len(body["items"]), 5)
        st, _, _ = self.s.req("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
        self.assertEqual(st, 201)
        st, _, _ = self.s.req("POST", MP, mp("x"))
        self.assertEqual(st, 201)
        st, _, body = self.s.req("GET", MP)
        self.assertEqual(body["kind"], "MaskingPolicyList")
        self.assertEqual(body["items"][0]["kind"], "MaskingPolicy")
        self.assertEqual(body["items"][0]["apiVersion"], "maskmesh.io/v1alpha1")

    def test_table(self):
        st, hdrs, t = self.s.req("GET", "/api/v1/namespaces/shop/pods",
                                 headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
        self.assertEqual(t["kind"], "Table")
        self.assertEqual(t["apiVersion"], "meta.k8s.io/v1")
        self.assertEqual([c["name"] for c in t["columnDefinitions"]], ["Name", "Ready", "Status", "Restarts", "Age"])
        self.assertEqual(t["rows"][0]["cells"][1:4], ["0/1", "Pending", "0"])
        self.assertEqual([r["cells"][0] for r in t["rows"]], ["a1", "a2", "a3", "a4", "a5"])
        self.assertEqual(t["rows"][0]["object"]["kind"], "PartialObjectMetadata")

    def test_expired_continue_and_exact_rv(self):
        st, _, p1 = self.s.req("GET", "/api/v1/namespaces/shop/pods?limit=2")
        self.s.fault(compact=True)
        st, _, body = self.s.req("GET", "/api/v1/namespaces/shop/pods?limit=2&continue=" + p1["metadata"]["continue"])
        self.assertEqual(st, 410)
        want = recorded("list-continue-410")
        self.assertEqual(body["message"], want["message"])
        self.assertEqual(sorted(body), sorted(want))
        self.assertIn("continue", body["metadata"])
        st, _, again = self.s.req("GET", "/api/v1/namespaces/shop/pods?limit=2&continue=" + body["metadata"]["continue"])
        self.assertEqual(st, 200)
        self.assertEqual([i["metadata"]["name"] for i in again["items"]], ["a3", "a4"])
        st, _, body = self.s.req("GET", "/api/v1/namespaces/shop/pods?resourceVersion=5&resourceVersionMatch=Exact")
        self.assertEqual(st, 410)
        self.assertEqual(body, recorded("list-exact-rv-410"))


class GarbageCollectionTest(ServerTest):
    def test_dependents_deleted_when_all_owners_gone(self):
        self.ensure_ns("shop")
        cm = lambda n, refs: {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "ownerReferences": refs}}
        st, _, o1 = self.s.req("POST", "/api/v1/namespaces/shop/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner1"}})
        st, _, o2 = self.s.req("POST", "/api/v1/namespaces/shop/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner2"}})
        ref = lambda o: {"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}
        self.s.req("POST", "/api/v1/namespaces/shop/configmaps", cm("only1", [ref(o1)]))
        self.s.req("POST", "/api/v1/namespaces/shop/configmaps", cm("both", [ref(o1), ref(o2)]))
        st, _, child = self.s.req("POST", "/api/v1/namespaces/shop/configmaps", cm("grandchild", []))
        st, _, only1 = self.s.req("GET", "/api/v1/namespaces/shop/configmaps/only1")
        self.s.req("PATCH", "/api/v1/namespaces/shop/configmaps/grandchild", {"metadata": {"ownerReferences": [ref(only1)]}},
                   ctype="application/merge-patch+json")
        st, _, _ = self.s.req("DELETE", "/api/v1/namespaces/shop/configmaps/owner1")
        self.assertEqual(st, 200)
        gone = lambda n: self.s.req("GET", "/api/v1/namespaces/shop/configmaps/" + n)[0] == 404
        self.assertTrue(wait_until(lambda: gone("only1") and gone("grandchild"), 5))
        time.sleep(0.2)
        self.assertFalse(gone("both"))
        self.s.req("DELETE", "/api/v1/namespaces/shop/configmaps/owner2")
        self.assertTrue(wait_until(lambda: gone("both"), 5))


class FaultTest(ServerTest):
    def test_fail_429_and_500(self):
        self.s.fault(fail={"code": 429, "count": 2, "retryAfter": 1})
        for _ in range(2):
            st, hdrs, body = self.s.req("GET", "/api/v1/namespaces")
            self.assertEqual(st, 429)
            self.assertEqual(body, sample("status-429.json"))
            self.assertEqual(dict(hdrs)["Retry-After"], "1")
        st, _, _ = self.s.req("GET", "/api/v1/namespaces")
        self.assertEqual(st, 200)
        self.s.fault(fail={"code": 500, "count": 1})
        st, hdrs, body = self.s.req("GET", "/api/v1/namespaces")
        self.assertEqual((st, body["reason"], body["code"]), (500, "InternalError", 500))
        self.assertNotIn("Retry-After", dict(hdrs))

    def test_fail_on_a_body_keeps_the_connection(self):
        # the failed request's body is read before the fault answers, so the next request
        # on the same keep-alive connection is read as a request, not as the leftover body
        self.s.fault(fail={"code": 500, "count": 1})
        c = self.s.conn()
        h = {"Authorization": "Bearer " + self.s.token, "Accept": "application/json",
             "Content-Type": "application/merge-patch+json"}
        c.request("PATCH", "/api/v1/namespaces/default", body=json.dumps({"metadata": {"labels": {"a": "b" * 200}}}),
                  headers=h)
        r = c.getresponse()
        self.assertEqual(r.status, 500)
        r.read()
        c.request("GET", "/api/v1/namespaces/default", headers=h)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.read())["metadata"]["name"], "default")
        c.close()

    def test_delay(self):
        self.s.fault(delay=0.5)
        t = time.monotonic()
        st, _, _ = self.s.req("GET", "/api/v1/namespaces")
        self.assertGreaterEqual(time.monotonic() - t, 0.45)
        self.s.fault(delay=0)
        self.assertEqual(st, 200)

    def test_delay_on_a_path(self):
        # only requests under the prefix wait: a stalled list beside a live Lease renewal
        self.s.fault(delay={"seconds": 0.8, "path": "/api/v1/namespaces/default/configmaps"})
        try:
            t = time.monotonic()
            st, _, _ = self.s.req("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases")
            self.assertEqual(st, 200)
            self.assertLess(time.monotonic() - t, 0.5)
            t = time.monotonic()
            st, _, _ = self.s.req("GET", "/api/v1/namespaces/default/configmaps?limit=1")
            self.assertEqual(st, 200)
            self.assertGreaterEqual(time.monotonic() - t, 0.75)
            st, _, body = self.s.req("POST", "/_maskmesh/fault", {"delay": {"seconds": 1, "path": "api"}})
            self.assertEqual(st, 400)
        finally:
            self.s.fault(delay=0)
        t = time.monotonic()
        st, _, _ = self.s.req("GET", "/api/v1/namespaces/default/configmaps?limit=1")
        self.assertLess(time.monotonic() - t, 0.5)

    def test_restart_keeps_state(self):
        self.ensure_ns("keep")
        self.s.fault(restart=True)
        time.sleep(0.4)
        refused = False
        try:
            self.s.req("GET", "/api/v1/namespaces/keep", timeout=2)
        except OSError:
            refused = True
        self.assertTrue(refused)
        ok = wait_until(lambda: self._get_ok("/api/v1/namespaces/keep"), 5)
        self.assertTrue(ok)

    def _get_ok(self, path):
        try:
            return self.s.req("GET", path, timeout=2)[0] == 200
        except OSError:
            return False


if __name__ == "__main__":
    unittest.main()


class FidelityTest(ServerTest):
    """Behaviour added so the stand-in matches the apiserver more closely."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        t = cls("run")
        t.ensure_crd()
        t.ensure_ns("shop")

    def test_deployment_status_replica_counts(self):
        # what kube-apiserver v1.37.2 answered test_controller_stream's first status patch
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "counts"},
               "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}},
                        "template": {"metadata": {"labels": {"a": "b"}},
                                     "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
        st, _, _ = self.s.req("POST", "/apis/apps/v1/namespaces/shop/deployments", dep)
        self.assertEqual(st, 201)
        path = "/apis/apps/v1/namespaces/shop/deployments/counts/status"
        st, _, body = self.s.req("PATCH", path, {"status": {"readyReplicas": 2}},
                                 ctype="application/merge-patch+json")
        self.assertEqual(st, 422)
        self.assertEqual(body["message"], 'Deployment.apps "counts" is invalid: status.readyReplicas: Invalid value: 2: '
                                          'cannot be greater than status.replicas')
        st, _, body = self.s.req("PATCH", path, {"status": {"replicas": 3, "readyReplicas": 2}},
                                 ctype="application/merge-patch+json")
        self.assertEqual((st, body["status"]["readyReplicas"]), (200, 2))

    def test_events_v1_and_core_share_storage(self):
        ev = sample("event.json")
        body = {k: v for k, v in ev.items() if k != "metadata"}
        body["metadata"] = {"name": ev["metadata"]["name"]}
        st, _, got = self.s.req("POST", "/apis/events.k8s.io/v1/namespaces/shop/events", body)
        self.assertEqual(st, 201, got)
        self.assertEqual([k for k in got if k != "metadata"], [k for k in ev if k != "metadata"])
        for k in ev:
            if k != "metadata":
                self.assertEqual(got[k], ev[k], k)
        st, _, core = self.s.req("GET", "/api/v1/namespaces/shop/events/" + ev["metadata"]["name"])
        self.assertEqual(st, 200)
        self.assertEqual((core["apiVersion"], core["involvedObject"], core["message"], core["reportingComponent"]),
                         ("v1", ev["regarding"], ev["note"], ev["reportingController"]))
        st, _, patched = self.s.req("PATCH", "/apis/events.k8s.io/v1/namespaces/shop/events/" + ev["metadata"]["name"],
                                    {"note": "again", "deprecatedCount": 2}, ctype="application/strategic-merge-patch+json")
        self.assertEqual((st, patched["note"], patched["deprecatedCount"]), (200, "again", 2))
        st, _, core = self.s.req("GET", "/api/v1/namespaces/shop/events/" + ev["metadata"]["name"])
        self.assertEqual((core["message"], core["count"]), ("again", 2))
        st, _, lst = self.s.req("GET", "/apis/events.k8s.io/v1/namespaces/shop/events")
        self.assertEqual(lst["kind"], "EventList")
        self.assertEqual(lst["items"][0]["note"], "again")

    def test_resource_specific_field_selectors(self):
        self.s.req("POST", "/api/v1/namespaces/shop/events", {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
                                                             "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "shop"},
                                                             "reason": "Started", "type": "Normal"})
        st, _, body = self.s.req("GET", "/api/v1/namespaces/shop/events?fieldSelector=involvedObject.name%3Dp1,type%3DNormal")
        self.assertEqual([i["metadata"]["name"] for i in body["items"]], ["e1"])
        st, _, body = self.s.req("GET", "/api/v1/namespaces/shop/events?fieldSelector=involvedObject.name%3Dp2")
        self.assertEqual(body["items"], [])
        st, _, body = self.s.req("GET", "/api/v1/namespaces/shop/pods?fieldSelector=status.phase%3DRunning")
        self.assertEqual((st, body["items"]), (200, []))
        st, _, body = self.s.req("GET", "/api/v1/namespaces/shop/configmaps?fieldSelector=status.phase%3DRunning")
        self.assertEqual((st, body["message"]), (400, "field label not supported: status.phase"))

    def test_unknown_fields_pruned_strict_rejected(self):
        p = mp("prune")
        p["spec"]["bogus"] = 1
        st, _, body = self.s.req("POST", MP + "?fieldValidation=Strict", p)
        self.assertEqual(st, 400)
        self.assertEqual(body["message"], 'MaskingPolicy in version "v1alpha1" cannot be handled as a MaskingPolicy: '
                                          'strict decoding error: unknown field "spec.bogus"')
        st, hdrs, body = self.s.req("POST", MP, p)
        self.assertEqual(st, 201)
        self.assertEqual([v for k, v in hdrs if k.lower() == "warning"], ['299 - "unknown field \\"spec.bogus\\""'])
        self.assertNotIn("bogus", body["spec"])
        p["metadata"]["name"] = "prune2"
        st, hdrs, body = self.s.req("POST", MP + "?fieldValidation=Ignore", p)
        self.assertEqual(st, 201)
        self.assertEqual([v for k, v in hdrs if k.lower() == "warning"], [])

    def test_pod_defaults_and_update_rule(self):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "defaults"},
               "spec": {"containers": [{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
                                       {"name": "b", "image": "b"}]}}
        st, _, body = self.s.req("POST", "/api/v1/namespaces/shop/pods", pod)
        self.assertEqual(st, 201)
        c0, c1 = body["spec"]["containers"]
        self.assertEqual((c0["ports"][0]["protocol"], c0["terminationMessagePath"], c0["imagePullPolicy"]),
                         ("TCP", "/dev/termination-log", "IfNotPresent"))
        self.assertEqual(c1["imagePullPolicy"], "Always")
        self.assertEqual((body["spec"]["restartPolicy"], body["spec"]["dnsPolicy"]), ("Always", "ClusterFirst"))
        st, _, body = self.s.req("PATCH", "/api/v1/namespaces/shop/pods/defaults",
                                 {"spec": {"containers": [{"name": "a", "image": "a:2"}]}},
                                 ctype="application/strategic-merge-patch+json")
        self.assertEqual(st, 200)
        st, _, body = self.s.req("PATCH", "/api/v1/namespaces/shop/pods/defaults",
                                 {"spec": {"containers": [{"name": "b", "$patch": "delete"}]}},
                                 ctype="application/strategic-merge-patch+json")
        self.assertEqual(st, 422)
        self.assertTrue(body["message"].startswith('Pod "defaults" is invalid: spec: Forbidden: pod updates may not change'))

    def test_continue_pages_are_a_snapshot(self):
        self.ensure_ns("snap")
        for n in ("s1", "s2", "s3"):
            self.s.req("POST", "/api/v1/namespaces/snap/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}})
        st, _, p1 = self.s.req("GET", "/api/v1/namespaces/snap/configmaps?limit=2")
        self.s.req("POST", "/api/v1/namespaces/snap/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s4"}})
        self.s.req("DELETE", "/api/v1/namespaces/snap/configmaps/s3")
        st, _, p2 = self.s.req("GET", "/api/v1/namespaces/snap/configmaps?limit=2&continue=" + p1["metadata"]["continue"])
        self.assertEqual([i["metadata"]["name"] for i in p2["items"]], ["s3"])
        self.assertEqual(p2["metadata"]["resourceVersion"], p1["metadata"]["resourceVersion"])

    def test_apply_yaml_body(self):
        with open(os.path.join(SAMPLES, "ssa-configmap-request.yaml"), "rb") as f:
            yaml_body = f.read()
        st, _, body = self.s.req("PATCH", "/api/v1/namespaces/shop/configmaps/maskmesh-policies?fieldManager=maskmesh-controller",
                                 yaml_body, ctype="application/apply-patch+yaml")
        self.assertEqual(st, 201, body)
        want = sample("ssa-configmap-response.json")
        self.assertEqual(body["data"], want["data"])
        self.assertEqual(body["metadata"]["managedFields"][0]["fieldsV1"], want["metadata"]["managedFields"][0]["fieldsV1"])


class LifecycleTest(unittest.TestCase):
    def test_kubeconfig_ready_line_and_sigterm(self):
        import signal
        import socket
        from e2e.apiserver.tests._support import Server, Watch
        s = Server()
        try:
            with open(s.kubeconfig) as f:
                kc = f.read()
            self.assertIn("current-context: admin\n", kc)
            self.assertIn("server: https://127.0.0.1:%d\n" % s.port, kc)
            self.assertRegex(kc, r"certificate-authority-data: [A-Za-z0-9+/=]+\n")
            self.assertEqual(oct(os.stat(s.kubeconfig).st_mode & 0o777), "0o600")
            der = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                                 input=ssl.get_server_certificate(("127.0.0.1", s.port)), capture_output=True,
                                 text=True, timeout=10).stdout
            self.assertIn("IP Address:127.0.0.1", der)
            self.assertIn("DNS:localhost", der)
            w = Watch(s, "/api/v1/namespaces?watch=1")
            self.assertEqual(w.next(5)["type"], "ADDED")
            s.proc.send_signal(signal.SIGTERM)
            self.assertEqual(s.proc.wait(10), 0)
            w.close()
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
        finally:
            s.stop()
