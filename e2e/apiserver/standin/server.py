"""The HTTPS front: TLS (client certificates through clientcert), routing, discovery, OpenAPI, watch
streams, fault knobs, restart, the kubeconfig writer.
"""
import base64
import copy
import http.server
import json
import os
import queue
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

from . import clientcert, protobuf, wire
from .builtins import event_to_core, event_to_v1
from .core import StandIn
from .patch import json_patch, merge_patch, strategic_merge
from .selectors import FieldSelector, LabelSelector
from .store import Watcher
from .wire import (ApiError, CACHE_CONTROL, READONLY_USER, TABLE_CT, bad_request, not_found,
                   page_not_found)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "maskmesh-standin"
    sys_version = ""

    def log_message(self, fmt, *args):
        if self.server.standin.args.verbose:
            sys.stderr.write("apiserver: %s %s\n" % (self.address_string(), fmt % args))

    @property
    def si(self):
        return self.server.standin

    # -- response helpers
    def common_headers(self):
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", CACHE_CONTROL)

    def send_json(self, code, obj, headers=(), ctype="application/json", sort=False):
        data = (json.dumps(obj, separators=(",", ":"), sort_keys=sort) + "\n").encode()
        self.send_response(code)
        self.common_headers()
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_text(self, code, text, headers=()):
        data = text.encode()
        self.send_response(code)
        self.common_headers()
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_error_obj(self, e):
        if e.text is not None:
            self.send_text(e.code, e.text, e.headers)
        else:
            self.send_json(e.code, e.status(), e.headers)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = b""
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline(8)
                if len(data) > wire.MAX_BODY:
                    self.close_connection = True
                    raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is %d" % wire.MAX_BODY)
            return data
        n = int(self.headers.get("Content-Length") or 0)
        if n > wire.MAX_BODY:
            self.close_connection = True
            left = n if n <= 16 * wire.MAX_BODY else 0  # drain a moderate body so the client sees the answer
            while left > 0:
                got = self.rfile.read(min(left, 65536))
                if not got:
                    break
                left -= len(got)
            raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is %d" % wire.MAX_BODY)
        return self.rfile.read(n) if n > 0 else b""

    def dispatch(self, method):
        try:
            u = urllib.parse.urlsplit(self.path)
            path = u.path
            params = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
            if path in ("/healthz", "/readyz", "/livez"):
                self.read_body()
                self.send_text(200, "ok")
                return
            auth = self.headers.get("Authorization") or ""
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            ident = getattr(self.connection, "mm_identity", None)
            groups = ()
            if ident:  # the x509 authenticator comes before the token authenticators
                user, groups = ident
            elif token and token == self.si.admin_token:
                user = "admin"
            elif token and self.si.readonly_token and token == self.si.readonly_token:
                user = READONLY_USER
            elif token and token in self.si.tokens:
                user = self.si.tokens[token][0]
            else:
                self.read_body()
                raise ApiError(401, "Unauthorized", "Unauthorized")
            ctx = {"user": user, "groups": tuple(groups), "ua": self.headers.get("User-Agent") or "",
                   "fieldValidation": params.get("fieldValidation")}
            if path == "/_maskmesh/fault":
                body = self.read_body()
                self.fault(method, ctx, body)
                return
            body = self.read_body()  # before a fault answers: what is left unread would be the next request
            self.si.apply_faults(path)
            self.route(method, path, params, body, ctx)
        except ApiError as e:
            try:
                self.send_error_obj(e)
            except OSError:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - report as a 500 Status, keep serving
            import traceback
            traceback.print_exc()
            try:
                self.send_error_obj(ApiError(500, "InternalError", "Internal error occurred: %s" % e))
            except OSError:
                self.close_connection = True

    def fault(self, method, ctx, body):
        if self.si.limits(ctx["user"], ctx["groups"]) is not None:
            raise ApiError(403, "Forbidden", 'User "%s" cannot change faults' % ctx["user"])
        if method == "GET":
            with self.si.fault_lock:
                self.send_json(200, dict(self.si.faults))
            return
        if method != "POST":
            raise ApiError(405, "MethodNotAllowed", "use POST")
        try:
            req = json.loads(body or b"{}")
        except ValueError as e:
            raise bad_request("fault body is not JSON: %s" % e)
        if not isinstance(req, dict):
            raise bad_request("fault body must be a JSON object")
        restart = False
        with self.si.fault_lock:
            if "delay" in req:
                # a number: every API request; {"seconds": N, "path": "/prefix"}: only those
                # whose path starts with the prefix (a stalled list beside a live Lease)
                d = req["delay"]
                if isinstance(d, dict):
                    path = d.get("path")
                    if path is not None and not (isinstance(path, str) and path.startswith("/")):
                        raise bad_request("delay.path must be a path starting with /")
                    self.si.faults["delay"], self.si.faults["delayPath"] = float(d.get("seconds") or 0), path
                else:
                    self.si.faults["delay"], self.si.faults["delayPath"] = float(d or 0), None
            if "fail" in req:
                f = req["fail"]
                if f and int(f.get("count", 1)) > 0:
                    if int(f.get("code", 500)) not in (429, 500, 503):
                        raise bad_request("fail.code must be 429, 500 or 503")
                    self.si.faults["fail"] = {"code": int(f.get("code", 500)), "count": int(f.get("count", 1)),
                                              "retryAfter": f.get("retryAfter"), "path": f.get("path")}
                else:
                    self.si.faults["fail"] = None
            if req.get("compact"):
                self.si.state.compact()
            if req.get("dropWatches"):
                with self.si.state.lock:
                    for w in list(self.si.state.watchers):
                        w.dropped = True
                        w.q.put(None)
            restart = bool(req.get("restart"))
            out = dict(self.si.faults)
        self.send_json(200, out)
        if restart:
            self.close_connection = True
            threading.Thread(target=self.si.restart, daemon=True).start()

    # -- routing
    def route(self, method, path, params, body, ctx):
        st = self.si.state
        parts = [p for p in path.split("/") if p]
        if method == "GET" and path == "/version":
            # the fields of kube-apiserver v1.37.2's answer (recorded sample version), the
            # release whose wire the stand-in is held to
            self.send_json(200, {"major": "1", "minor": "37", "emulationMajor": "1", "emulationMinor": "37",
                                 "minCompatibilityMajor": "1", "minCompatibilityMinor": "36",
                                 "gitVersion": "v1.37.2-maskmesh-standin", "gitCommit": "0" * 40,
                                 "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.26",
                                 "compiler": "gc", "platform": "linux/amd64"})
            return
        if method == "GET" and path == "/api":
            self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:%d" % self.si.port}]})
            return
        if method == "GET" and path == "/apis":
            with st.lock:
                groups = [self.group_obj(g) for g in st.group_order if g]
            self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            return
        if method == "GET" and path == "/openapi/v2":
            # A protobuf openapi_v2.Document holding only swagger: "2.0" (field 1). Clients find no
            # schemas in it, so kubectl skips client-side validation instead of failing on a 404.
            data = b"\x0a\x032.0"
            self.send_response(200)
            self.common_headers()
            self.send_header("Content-Type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if method == "GET" and parts[:2] == ["openapi", "v3"]:
            self.openapi_v3(parts[2:])
            return
        if not parts or parts[0] not in ("api", "apis"):
            raise page_not_found()
        if parts[0] == "api":
            if len(parts) < 2 or parts[1] != "v1":
                raise page_not_found()
            group, version, rest = "", "v1", parts[2:]
        else:
            if len(parts) == 2 and method == "GET":
                with st.lock:
                    if parts[1] not in st.group_order:
                        raise page_not_found()
                    self.send_json(200, dict(self.group_obj(parts[1]), kind="APIGroup", apiVersion="v1"))
                return
            if len(parts) < 3:
                raise page_not_found()
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            if method != "GET":
                raise page_not_found()
            with st.lock:
                rl = self.resource_list(group, version)
            if rl is None:
                raise page_not_found()
            self.send_json(200, rl)
            return
        watch = params.get("watch") in ("1", "true")
        if rest[0] == "watch":
            watch = True
            rest = rest[1:]
        ns = None
        with st.lock:
            if len(rest) >= 3 and rest[0] == "namespaces":
                r2 = st.resources.get((group, version, rest[2]))
                if r2 is not None and r2.namespaced:
                    ns = rest[1]
                    rest = rest[2:]
            res = st.resources.get((group, version, rest[0]))
        if res is None or len(rest) > 3:
            raise page_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and (sub != "status" or not res.status):
            raise page_not_found()
        if ns is not None and not res.namespaced:
            raise page_not_found()
        if res.namespaced and name is not None and ns is None:
            raise page_not_found()
        verb = {"GET": "list", "HEAD": "list", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "deletecollection"}[method]
        if name is not None:
            verb = {"list": "get", "create": None, "deletecollection": "delete"}.get(verb, verb)
            if watch and method == "GET":
                verb = "watch"
                params["fieldSelector"] = ",".join(x for x in [params.get("fieldSelector"), "metadata.name=" + name] if x)
        elif watch and method == "GET":
            verb = "watch"
        if verb is None or (verb == "create" and res.namespaced and ns is None):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        limited = self.si.limits(ctx["user"], ctx["groups"])
        if limited is not None and not ((("*" in limited[0]) or verb in limited[0])
                                        and ("*" in limited[1] or res.plural in limited[1])):
            what = '%s "%s"' % (res.qualified, name) if name else res.qualified
            scope = 'in the namespace "%s"' % ns if ns else "at the cluster scope"
            d = {"name": name} if name else {}
            if res.group:
                d["group"] = res.group
            d["kind"] = res.plural
            raise ApiError(403, "Forbidden", '%s is forbidden: User "%s" cannot %s resource "%s%s" in API group "%s" %s'
                           % (what, ctx["user"], verb, res.plural, "/" + sub if sub else "", res.group, scope), d)
        sort = res.is_cr
        accept = self.headers.get("Accept") or ""
        as_table = "as=Table" in accept
        if res.gp == ("events.k8s.io", "events"):
            self.route_events_v1(verb, res, ns, name, params, body, ctx, as_table)
            return
        if verb == "get":
            with st.lock:
                obj = st.get(res, ns, name)
            if obj is None:
                raise not_found(res, name)
            if as_table:
                self.send_json(200, self.si.table(res, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]},
                                                  params.get("includeObject", "Metadata")), ctype=TABLE_CT, sort=sort)
            else:
                self.send_json(200, obj, sort=sort)
            return
        if verb == "list":
            lst, items = self.si.do_list(res, ns, params)
            if as_table:
                self.send_json(200, self.si.table(res, items, lst["metadata"], params.get("includeObject", "Metadata")),
                               ctype=TABLE_CT, sort=sort)
            else:
                self.send_json(200, lst, sort=sort)
            return
        if verb == "watch":
            self.watch(res, ns, params, as_table)
            return
        warnings = []
        if verb in ("create", "update") or (verb == "patch"):
            pass
        if verb == "create":
            obj = self.parse_obj(body)
            code, out, warnings = self.si.do_create(ctx, res, ns, obj, params)
        elif verb == "update":
            obj = self.parse_obj(body)
            code, out, warnings = self.si.do_update(ctx, res, ns, name, sub, obj, params)
        elif verb == "patch":
            code, out, warnings = self.si.do_patch(ctx, res, ns, name, sub, body,
                                                   self.headers.get("Content-Type"), params)
        elif verb == "delete":
            code, out = self.si.do_delete(ctx, res, ns, name, params, body)
        else:
            code, out = self.delete_collection(ctx, res, ns, params, body)
        hdrs = [("Warning", '299 - "%s"' % w.replace('"', '\\"')) for w in warnings]
        self.send_json(code, out, hdrs, sort=sort and out.get("kind") != "Status")

    def route_events_v1(self, verb, res, ns, name, params, body, ctx, as_table):
        """events.k8s.io/v1 is a second view of the core/v1 events (one storage, converted)."""
        st = self.si.state
        core = st.resources[("", "v1", "events")]
        warnings = []
        if verb == "get":
            with st.lock:
                obj = st.get(core, ns, name)
            if obj is None:
                raise not_found(res, name)
            obj = event_to_v1(obj)
            if as_table:
                self.send_json(200, self.si.table(res, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]},
                                                  params.get("includeObject", "Metadata")), ctype=TABLE_CT)
            else:
                self.send_json(200, obj)
            return
        if verb == "list":
            lst, items = self.si.do_list(core, ns, params)
            items = [event_to_v1(o) for o in items]
            if as_table:
                self.send_json(200, self.si.table(res, items, lst["metadata"], params.get("includeObject", "Metadata")),
                               ctype=TABLE_CT)
            else:
                self.send_json(200, {"kind": "EventList", "apiVersion": res.gv, "metadata": lst["metadata"],
                                     "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                                               for o in items]})
            return
        if verb == "watch":
            self.watch(core, ns, params, as_table, conv=event_to_v1, shown=res)
            return
        if verb == "create":
            written = self.si.check_kind(res, self.parse_obj(body))
            code, out, warnings = self.si.do_create(ctx, core, ns, event_to_core(copy.deepcopy(written)), params)
            if code == 201 and not self.si.dry_run_of(params):
                # managedFields name the fields as written, in events.k8s.io/v1 (recorded
                # sample event-create-events-v1); updates through this view still name core's
                out = self.si.reown(res, core, ns, out, ctx, params, event_to_v1, written)
        elif verb == "update":
            code, out, warnings = self.si.do_update(ctx, core, ns, name, None,
                                                    event_to_core(self.si.check_kind(res, self.parse_obj(body))), params)
        elif verb == "patch":
            ct = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ct == "application/apply-patch+yaml":
                applied = self.parse_obj(body)
                code, out, warnings = self.si.do_patch(ctx, core, ns, name, None,
                                                       json.dumps(event_to_core(self.si.check_kind(res, applied))).encode(),
                                                       ct, params)
            else:
                with st.lock:
                    cur = st.get(core, ns, name)
                if cur is None:
                    raise not_found(res, name)
                view = event_to_v1(cur)
                try:
                    patch = json.loads(body or b"null")
                except ValueError as e:
                    raise bad_request("error decoding patch: %s" % e)
                if ct == "application/json-patch+json":
                    patched = json_patch(view, patch)
                elif ct == "application/merge-patch+json" and isinstance(patch, dict):
                    patched = merge_patch(view, patch)
                elif ct == "application/strategic-merge-patch+json" and isinstance(patch, dict):
                    patched = strategic_merge(view, patch)
                else:
                    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                   "accepted media types include: application/json-patch+json, application/merge-patch+json, "
                                   "application/apply-patch+yaml, application/strategic-merge-patch+json")
                patched.setdefault("metadata", {})["resourceVersion"] = cur["metadata"]["resourceVersion"]
                code, out, warnings = self.si.do_update(ctx, core, ns, name, None, event_to_core(patched), params)
        elif verb == "delete":
            code, out = self.si.do_delete(ctx, core, ns, name, params, body)
        else:
            code, out = self.delete_collection(ctx, core, ns, params, body)
            out = dict(out, kind="EventList", apiVersion=res.gv)
        if out.get("kind") == "Event":
            out = event_to_v1(out)
        hdrs = [("Warning", '299 - "%s"' % w.replace('"', '\\"')) for w in warnings]
        self.send_json(code, out, hdrs)

    def delete_collection(self, ctx, res, ns, params, body):
        lst, items = self.si.do_list(res, ns, {k: v for k, v in params.items() if k in ("labelSelector", "fieldSelector")})
        deleted = []
        for o in items:
            try:
                _, d = self.si.do_delete(ctx, res, o["metadata"].get("namespace"), o["metadata"]["name"], params, body)
                deleted.append(o if d.get("kind") == "Status" else d)
            except ApiError as e:
                if e.code != 404:
                    raise
        with self.si.state.lock:
            rv = str(self.si.state.rv)
        items_out = deleted if res.is_cr else [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in deleted]
        return 200, {"kind": res.kind + "List", "apiVersion": res.gv, "metadata": {"resourceVersion": rv}, "items": items_out}

    @staticmethod
    def parse_obj(body):
        if body.startswith(b"k8s\x00"):  # application/vnd.kubernetes.protobuf (kubectl create ns/cm/secret)
            try:
                return protobuf.decode(body)
            except protobuf.ProtoError as e:
                raise ApiError(415, "UnsupportedMediaType", str(e))
        try:
            obj = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request("the object provided is unrecognized: %s" % e)
        if not isinstance(obj, dict):
            raise bad_request("the object provided is not a JSON object")
        return obj

    def openapi_gv_doc(self, group, version):
        """A minimal OpenAPI v3 document per group-version: enough for kubectl to see that the server
        validates fields itself (PATCH operations carrying x-kubernetes-group-version-kind and a
        fieldValidation query parameter); no schemas."""
        paths = {}
        prefix = "/apis/%s/%s" % (group, version) if group else "/api/v1"
        qp = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        for (g, v, _), r in sorted(self.si.state.resources.items()):
            if g != group or v != version:
                continue
            base = prefix + ("/namespaces/{namespace}/" if r.namespaced else "/") + r.plural + "/{name}"
            gvk = {"group": r.group, "kind": r.kind, "version": r.version}
            op = {"operationId": "patch" + r.kind, "parameters": qp, "x-kubernetes-action": "patch",
                  "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}}
            paths[base] = {"patch": op}
            if r.status:
                paths[base + "/status"] = {"patch": dict(op, operationId="patch" + r.kind + "Status")}
        schemas = {}
        for (g, v, _), r in sorted(self.si.state.resources.items()):
            if g == group and v == version and r.is_cr:
                name = ".".join(reversed(g.split("."))) + "." + v + "." + r.kind
                sch = copy.deepcopy(((r.crd.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object"})
                sch["x-kubernetes-group-version-kind"] = [{"group": g, "kind": r.kind, "version": v}]
                schemas[name] = sch
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.2"}, "paths": paths,
                "components": {"schemas": schemas}}

    def openapi_v3(self, rest):
        st = self.si.state
        with st.lock:
            gvs = sorted({(g, v) for (g, v, _) in st.resources})
            if not rest:
                out = {}
                for g, v in gvs:
                    key = "apis/%s/%s" % (g, v) if g else "api/v1"
                    doc = json.dumps(self.openapi_gv_doc(g, v), sort_keys=True).encode()
                    h = "%016X" % (int.from_bytes(__import__("hashlib").sha256(doc).digest()[:8], "big"))
                    out[key] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (key, h)}
                self.send_json(200, {"paths": out})
                return
            if rest == ["api", "v1"]:
                g, v = "", "v1"
            elif len(rest) == 3 and rest[0] == "apis":
                g, v = rest[1], rest[2]
            else:
                raise page_not_found()
            if (g, v) not in gvs:
                raise page_not_found()
            doc = self.openapi_gv_doc(g, v)
        self.send_json(200, doc)

    def group_obj(self, g):
        vs = sorted({r.version for r in self.si.state.resources.values() if r.group == g})
        gvs = [{"groupVersion": g + "/" + v, "version": v} for v in vs]
        return {"name": g, "versions": gvs, "preferredVersion": gvs[0]}

    def resource_list(self, group, version):
        rs = [r for (g, v, _), r in self.si.state.resources.items() if g == group and v == version]
        if not rs:
            return None
        out = []
        for r in sorted(rs, key=lambda r: r.plural):
            e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                 "verbs": list(r.verbs)}
            if r.short:
                e["shortNames"] = list(r.short)
            if r.categories:
                e["categories"] = list(r.categories)
            e["storageVersionHash"] = base64.b64encode(("%s/%s/%s" % (r.group, r.version, r.plural)).encode()[:8]).decode()
            out.append(e)
            if r.status:
                out.append({"name": r.plural + "/status", "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": (group + "/" + version) if group else version,
                "resources": out}

    # -- watch
    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, res, ns, params, as_table, conv=None, shown=None):
        """conv: converts stored objects for the client; shown: the Res the client asked for."""
        shown = shown or res
        st = self.si.state
        lsel = LabelSelector(params.get("labelSelector"))
        fsel = FieldSelector(params.get("fieldSelector"), res)
        bookmarks = params.get("allowWatchBookmarks") in ("1", "true")
        try:
            timeout = float(params.get("timeoutSeconds") or 1800)
        except ValueError:
            raise bad_request("invalid timeoutSeconds")
        rv = params.get("resourceVersion") or ""
        send_initial = params.get("sendInitialEvents") == "true"
        if send_initial and params.get("resourceVersionMatch") != "NotOlderThan":
            raise ApiError(422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
                           'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan',
                           {"group": "meta.k8s.io", "kind": "ListOptions", "causes": [
                               {"reason": "FieldValueForbidden",
                                "message": "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                                "field": "resourceVersionMatch"}]})
        w = Watcher(res.gp, ns, lsel, fsel)
        initial = []
        expired = None
        with st.lock:
            if rv in ("", "0") or send_initial:
                for o in sorted(st.store(res.gp).values(), key=lambda o: self.si.obj_key(o)):
                    if w.matches(o):
                        initial.append(("ADDED", o))
                if send_initial and bookmarks:
                    initial.append(("BOOKMARK-END", str(st.rv)))
            else:
                try:
                    want = int(rv)
                except ValueError:
                    raise bad_request("invalid resourceVersion %r" % rv)
                if want < st.oldest:
                    # v1.37.2's watch cache passes a resourceVersion it no longer holds on to
                    # etcd, which answers this (recorded sample watch-expired)
                    expired = "The resourceVersion for the provided watch is too old."
                else:
                    for (erv, gp, et, obj, old) in st.history:
                        if erv > want and gp == res.gp:
                            w.offer(et, obj, old)
            if expired is None:
                st.watchers.add(w)
        self.send_response(200)
        self.common_headers()
        self.send_header("Content-Type", TABLE_CT if as_table else "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sort = res.is_cr

        def emit(etype, obj):
            if conv is not None and etype in ("ADDED", "MODIFIED", "DELETED"):
                obj = conv(obj)
            if as_table and etype in ("ADDED", "MODIFIED", "DELETED"):
                obj = self.si.table(res, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]},
                                    params.get("includeObject", "Metadata"))
            self.write_chunk((json.dumps({"type": etype, "object": obj}, separators=(",", ":"), sort_keys=sort) + "\n").encode())

        try:
            if expired is not None:
                emit("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": expired, "reason": "Expired", "code": 410})
                self.write_chunk(b"")
                return
            for et, o in initial:
                if et == "BOOKMARK-END":
                    emit("BOOKMARK", {"kind": shown.kind, "apiVersion": shown.gv, "metadata": {
                        "resourceVersion": o, "annotations": {"k8s.io/initial-events-end": "true"}}})
                else:
                    emit(et, o)
            deadline = time.monotonic() + timeout
            interval = self.si.args.bookmark_interval
            next_bm = time.monotonic() + interval
            while not self.si.stopping.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                try:
                    item = w.q.get(timeout=max(0.01, min(0.5, deadline - now, next_bm - now)))
                except queue.Empty:
                    item = "tick"
                if item is None or w.dropped:
                    self.close_connection = True
                    return
                if item == "tick":
                    if bookmarks and time.monotonic() >= next_bm:
                        with st.lock:
                            brv = str(st.rv) if w.q.empty() else None
                        if brv:
                            emit("BOOKMARK", {"kind": shown.kind, "apiVersion": shown.gv, "metadata": {"resourceVersion": brv}})
                        next_bm = time.monotonic() + interval
                    continue
                emit(*item)
            self.write_chunk(b"")
        except (OSError, ssl.SSLError):
            self.close_connection = True
        finally:
            with st.lock:
                st.watchers.discard(w)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def finish_request(self, request, client_address):
        si = self.standin
        # headers and body leave in separate writes: without NODELAY, Nagle and the peer's
        # delayed ACK add ~40 ms to every response
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(30)
        try:
            tls, ident = clientcert.wrap(si.ssl_ctx, request)
        except (OSError, ssl.SSLError):
            return
        tls.mm_identity = ident
        tls.settimeout(None)
        with si.conns_lock:
            si.conns.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with si.conns_lock:
                si.conns.discard(tls)
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass


def _standin_apply_faults(self, path):
    with self.fault_lock:
        delay = self.faults["delay"]
        if self.faults.get("delayPath") and not path.startswith(self.faults["delayPath"]):
            delay = 0
        fail = self.faults["fail"]
        hit = None
        if fail and fail["count"] > 0 and (not fail.get("path") or path.startswith(fail["path"])):
            fail["count"] -= 1
            hit = dict(fail)
            if fail["count"] <= 0:
                self.faults["fail"] = None
    if delay:
        time.sleep(delay)
    if hit:
        hdrs = []
        details = None
        if hit.get("retryAfter") is not None:
            hdrs.append(("Retry-After", str(int(hit["retryAfter"]))))
            details = {"retryAfterSeconds": int(hit["retryAfter"])}
        if hit["code"] == 429:
            raise ApiError(429, "TooManyRequests", "storage is (re)initializing", details, hdrs)
        if hit["code"] == 503:
            raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request", details, hdrs)
        d = {"causes": [{"message": "injected fault"}]}
        if details:
            d.update(details)
        raise ApiError(500, "InternalError", "Internal error occurred: injected fault", d, hdrs)


def _standin_restart(self):
    time.sleep(0.1)
    self.restart_requested.set()
    httpd = self.httpd
    if httpd is not None:
        httpd.shutdown()


def _standin_close_conns(self):
    with self.conns_lock:
        conns = list(self.conns)
    with self.state.lock:
        for w in list(self.state.watchers):
            w.dropped = True
            w.q.put(None)
    for c in conns:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _standin_write_kubeconfig(self, path):
    ca = base64.b64encode(self.ca_pem).decode()
    server = "https://127.0.0.1:%d" % self.port
    lines = ["apiVersion: v1", "kind: Config", "clusters:", "- name: maskmesh-e2e", "  cluster:",
             "    server: %s" % server, "    certificate-authority-data: %s" % ca, "users:", "- name: admin",
             "  user:", "    token: %s" % self.admin_token]
    if self.readonly_token:
        lines += ["- name: %s" % READONLY_USER, "  user:", "    token: %s" % self.readonly_token]
    # --client-cert NAME: user/context NAME with the certificate and key inline (-data), and
    # NAME-files with them in files next to the kubeconfig, named relative to it
    base = os.path.basename(path)
    for name, _, cert, key in self.client_certs:
        lines += ["- name: %s" % name, "  user:",
                  "    client-certificate-data: %s" % base64.b64encode(cert).decode(),
                  "    client-key-data: %s" % base64.b64encode(key).decode()]
        cf, kf = "%s.%s.crt" % (base, name), "%s.%s.key" % (base, name)
        for fn, data in ((cf, cert), (kf, key)):
            with open(os.path.join(os.path.dirname(os.path.abspath(path)), fn), "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
        lines += ["- name: %s-files" % name, "  user:", "    client-certificate: %s" % cf,
                  "    client-key: %s" % kf]
    lines += ["contexts:", "- name: admin", "  context:", "    cluster: maskmesh-e2e", "    user: admin",
              "    namespace: default"]
    if self.readonly_token:
        lines += ["- name: %s" % READONLY_USER, "  context:", "    cluster: maskmesh-e2e",
                  "    user: %s" % READONLY_USER, "    namespace: default"]
    for name, _, _, _ in self.client_certs:
        for ctxname in (name, name + "-files"):
            lines += ["- name: %s" % ctxname, "  context:", "    cluster: maskmesh-e2e", "    user: %s" % ctxname,
                      "    namespace: default"]
    lines += ["current-context: admin", "preferences: {}", ""]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _standin_serve(self, host, port):
    first = True
    while not self.stopping.is_set():
        try:
            httpd = Server((host, port), Handler)
        except OSError:
            if first:
                raise
            time.sleep(0.2)
            continue
        httpd.standin = self
        self.httpd = httpd
        if first:
            self.port = httpd.server_address[1]
            port = self.port
            if self.args.kubeconfig:
                self.write_kubeconfig(self.args.kubeconfig)
            sys.stdout.write("ready https://127.0.0.1:%d\n" % self.port)
            sys.stdout.flush()
            first = False
        httpd.serve_forever(poll_interval=0.1)
        httpd.server_close()
        self.close_conns()
        if self.restart_requested.is_set() and not self.stopping.is_set():
            self.restart_requested.clear()
            time.sleep(1.0)


def _standin_stop(self):
    self.stopping.set()
    httpd = self.httpd
    if httpd is not None:
        httpd.shutdown()


StandIn.apply_faults = _standin_apply_faults
StandIn.restart = _standin_restart
StandIn.close_conns = _standin_close_conns
StandIn.write_kubeconfig = _standin_write_kubeconfig
StandIn.serve = _standin_serve
StandIn.stop = _standin_stop
