"""maskmesh e2e: an in-memory stand-in for the Kubernetes API server (Python 3 stdlib only).

Wire shapes follow /work/shared/k8s-samples (README rules 1-18). See README.md next to this
file for the command line, what is served and the fault knobs.
"""
import argparse
import base64
import copy
import datetime
import http.client
import http.server
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import clientcert

MAX_BODY = 3 * 1024 * 1024
CACHE_CONTROL = "no-cache, private"
TABLE_CT = "application/json;as=Table;v=v1;g=meta.k8s.io"
HISTORY_MAX = 20000
READONLY_USER = "maskmesh-e2e-readonly"
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
MERGE_KEYS = {  # strategic-merge-patch: list field name -> merge key (practical subset)
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "env": "name", "volumeMounts": "mountPath", "ports": "containerPort",
    "conditions": "type", "ownerReferences": "uid", "imagePullSecrets": "name",
    "webhooks": "name", "hostAliases": "ip", "volumeDevices": "devicePath",
}


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s):
    try:
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def human_age(ts):
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    s = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    if s < 0:
        s = 0
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = m // 60
    if h < 48:
        return "%dh" % h
    return "%dd" % (h // 24)


class ApiError(Exception):
    """An error answered as a metav1.Status body (or plain text when text is set)."""

    def __init__(self, code, reason, message, details=None, headers=None, metadata=None, text=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or []
        self.metadata = metadata or {}
        self.text = text

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": self.metadata, "status": "Failure"}
        if self.message is not None:
            st["message"] = self.message
        if self.reason:
            st["reason"] = self.reason
        if self.details:
            st["details"] = self.details
        st["code"] = self.code
        return st


def page_not_found():
    return ApiError(404, None, None, text="404 page not found\n")


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


class Res:
    """One served resource (group/version/plural)."""

    def __init__(self, group, version, plural, kind, namespaced, singular=None, short=(), categories=(),
                 status=False, generation=False, crd=None, verbs=None):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.singular = singular or kind.lower()
        self.short = list(short)
        self.categories = list(categories)
        self.status = status
        self.generation = generation
        self.crd = crd  # for custom resources: the version entry of the CRD (schema, columns)
        self.verbs = verbs or ALL_VERBS

    @property
    def gv(self):
        return self.group + "/" + self.version if self.group else self.version

    @property
    def qualified(self):
        return self.plural + "." + self.group if self.group else self.plural

    @property
    def is_cr(self):
        return self.crd is not None

    @property
    def gp(self):
        return (self.group, self.plural)

    def group_kind(self):
        return self.kind + "." + self.group if self.group else self.kind


def not_found(res, name):
    d = {"name": name}
    if res.group:
        d["group"] = res.group
    d["kind"] = res.plural
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified, name), d)


def conflict(res, name, msg=None):
    d = {"name": name}
    if res.group:
        d["group"] = res.group
    d["kind"] = res.plural
    m = msg or ("the object has been modified; please apply your changes to the latest version and try again")
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (res.qualified, name, m), d)


def already_exists(res, name):
    d = {"name": name}
    if res.group:
        d["group"] = res.group
    d["kind"] = res.plural
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified, name), d)


def invalid(res_or_gk, name, causes):
    if isinstance(res_or_gk, Res):
        gk, group, kind = res_or_gk.group_kind(), res_or_gk.group, res_or_gk.kind
    else:
        gk, group, kind = res_or_gk
    errs = ["%s: %s" % (c["field"], c["message"]) if c.get("field") else c["message"] for c in causes]
    agg = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
    d = {"name": name} if name else {}
    if group:
        d["group"] = group
    d["kind"] = kind
    d["causes"] = causes
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (gk, name or "", agg), d)


def fmt_value(v):
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return json.dumps(v, separators=(",", ":"))


# ----------------------------------------------------------------------------------------- patches

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge(target, patch, field=None):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        p = {k: v for k, v in patch.items() if k != "$patch"}
        return copy.deepcopy(p)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if k.startswith("$setElementOrder/") or k.startswith("$deleteFromPrimitiveList/"):
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and k in MERGE_KEYS and isinstance(out.get(k), list):
            key = MERGE_KEYS[k]
            cur = copy.deepcopy(out[k])
            for item in v:
                if not isinstance(item, dict) or key not in item:
                    cur.append(copy.deepcopy(item))
                    continue
                idx = next((i for i, e in enumerate(cur) if isinstance(e, dict) and e.get(key) == item[key]), None)
                if item.get("$patch") == "delete":
                    if idx is not None:
                        cur.pop(idx)
                elif idx is None:
                    cur.append({a: b for a, b in copy.deepcopy(item).items() if not a.startswith("$")})
                else:
                    cur[idx] = strategic_merge(cur[idx], item, k)
            out[k] = cur
        elif isinstance(v, dict):
            out[k] = strategic_merge(out.get(k), v, k)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request("the JSON patch path %r does not start with /" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, toks):
    cur = doc
    for t in toks:
        if isinstance(cur, dict):
            if t not in cur:
                raise KeyError(t)
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[int(t)]
        else:
            raise KeyError(t)
    return cur


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            kind = op["op"]
            toks = _ptr(op["path"])
            if kind in ("add", "replace", "test"):
                val = copy.deepcopy(op["value"])
            if kind in ("move", "copy"):
                ftoks = _ptr(op["from"])
                val = copy.deepcopy(_walk(doc, ftoks))
                if kind == "move":
                    fp = _walk(doc, ftoks[:-1])
                    if isinstance(fp, list):
                        fp.pop(int(ftoks[-1]))
                    else:
                        del fp[ftoks[-1]]
                kind = "add"
            if kind == "test":
                if _walk(doc, toks) != val:
                    raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
                continue
            if not toks:
                if kind in ("add", "replace"):
                    doc = val
                    continue
                raise bad_request("cannot remove the root")
            parent = _walk(doc, toks[:-1])
            last = toks[-1]
            if isinstance(parent, list):
                if kind == "add":
                    idx = len(parent) if last == "-" else int(last)
                    if idx < 0 or idx > len(parent):
                        raise IndexError(idx)
                    parent.insert(idx, val)
                elif kind == "replace":
                    parent[int(last)] = val
                elif kind == "remove":
                    parent.pop(int(last))
                else:
                    raise bad_request("unexpected op %r" % kind)
            elif isinstance(parent, dict):
                if kind == "add":
                    parent[last] = val
                elif kind == "replace":
                    if last not in parent:
                        raise KeyError(last)
                    parent[last] = val
                elif kind == "remove":
                    if last not in parent:
                        raise KeyError(last)
                    del parent[last]
                else:
                    raise bad_request("unexpected op %r" % kind)
            else:
                raise KeyError(last)
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                           {"causes": [{"message": "jsonpatch %s operation does not apply: doc is missing path: \"%s\""
                                        % (op.get("op") if isinstance(op, dict) else "?",
                                           op.get("path") if isinstance(op, dict) else "?")}]}) from e
    return doc


def _default_container(c):
    for pt in c.get("ports") or []:
        if isinstance(pt, dict):
            pt.setdefault("protocol", "TCP")
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    img = c.get("image") or ""
    tagged = ":" in img.rsplit("/", 1)[-1] or "@" in img
    c.setdefault("imagePullPolicy", "IfNotPresent" if tagged and not img.endswith(":latest") else "Always")


def default_pod(obj):
    """The defaulting the apiserver applies to a pod when it decodes one (subset)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _default_container(c)
    for v in spec.get("volumes") or []:
        for src in ("configMap", "secret", "projected", "downwardAPI"):
            if isinstance(v, dict) and isinstance(v.get(src), dict):
                v[src].setdefault("defaultMode", 420)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)


def check_pod_update(old, new):
    """Pod spec is immutable except container images, activeDeadlineSeconds, tolerations additions."""
    def strip(spec):
        spec = copy.deepcopy(spec or {})
        for key in ("containers", "initContainers"):
            for c in spec.get(key) or []:
                if isinstance(c, dict):
                    c.pop("image", None)
        for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
            spec.pop(key, None)
        return spec
    if strip(old.get("spec")) != strip(new.get("spec")):
        name = old["metadata"]["name"]
        msg = ("Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
               "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
               "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
               "previously negative)")
        raise invalid(("Pod", "", "Pod"), name, [{"reason": "FieldValueForbidden", "message": msg, "field": "spec"}])


EV_V1_TO_CORE = [("regarding", "involvedObject"), ("note", "message"), ("deprecatedSource", "source"),
                 ("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp"),
                 ("deprecatedCount", "count"), ("reportingController", "reportingComponent")]


def event_to_core(ev):
    """events.k8s.io/v1 Event -> core/v1 Event (field order of the core Go type)."""
    m = dict(EV_V1_TO_CORE)
    src = {m.get(k, k): v for k, v in ev.items()}
    out = {"kind": "Event", "apiVersion": "v1", "metadata": src.get("metadata") or {}}
    for k, always in (("involvedObject", {}), ("reason", None), ("message", None), ("source", {}),
                      ("firstTimestamp", "null"), ("lastTimestamp", "null"), ("count", None), ("type", None),
                      ("eventTime", "null"), ("series", None), ("action", None), ("related", None),
                      ("reportingComponent", ""), ("reportingInstance", "")):
        if src.get(k) is not None:
            out[k] = src[k]
        elif always is not None:
            out[k] = None if always == "null" else copy.deepcopy(always)
    return out


def event_to_v1(core):
    """core/v1 Event -> events.k8s.io/v1 Event (field order of the events/v1 Go type)."""
    m = {c: v for v, c in EV_V1_TO_CORE}
    src = {m.get(k, k): v for k, v in core.items()}
    out = {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": src.get("metadata") or {}}
    for k, always in (("eventTime", "null"), ("series", None), ("reportingController", None),
                      ("reportingInstance", None), ("action", None), ("reason", None), ("regarding", {}),
                      ("related", None), ("note", None), ("type", None), ("deprecatedSource", {}),
                      ("deprecatedFirstTimestamp", "null"), ("deprecatedLastTimestamp", "null"), ("deprecatedCount", None)):
        v = src.get(k)
        if v is not None and v != "":
            out[k] = v
        elif always is not None:
            out[k] = None if always == "null" else copy.deepcopy(always)
    return out


# ------------------------------------------------------------------------------------ selectors

class LabelSelector:
    _term = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")

    def __init__(self, text):
        self.reqs = []
        text = (text or "").strip()
        if not text:
            return
        parts, depth, cur = [], 0, ""
        for ch in text:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        for p in parts:
            m = self._term.match(p)
            if not m:
                raise bad_request("unable to parse requirement: found '%s', expected: identifier" % p.strip())
            neg, key, op, val, setop, setvals = m.groups()
            if neg and (op or setop):
                raise bad_request("unable to parse requirement: %s" % p.strip())
            if neg:
                self.reqs.append((key, "!", None))
            elif op:
                self.reqs.append((key, "!=" if op == "!=" else "=", val))
            elif setop:
                vals = [v.strip() for v in setvals.split(",") if v.strip()]
                self.reqs.append((key, setop, vals))
            else:
                self.reqs.append((key, "exists", None))

    def empty(self):
        return not self.reqs

    def matches(self, labels):
        labels = labels or {}
        for key, op, val in self.reqs:
            has = key in labels
            if op == "=" and labels.get(key) != val:
                return False
            if op == "!=" and has and labels[key] == val:
                return False
            if op == "in" and (not has or labels[key] not in val):
                return False
            if op == "notin" and has and labels[key] in val:
                return False
            if op == "exists" and not has:
                return False
            if op == "!" and has:
                return False
        return True


def selector_from_labelselector(sel):
    """metav1.LabelSelector (matchLabels/matchExpressions) -> predicate over labels."""
    if sel is None:
        return lambda labels: True
    ml = sel.get("matchLabels") or {}
    me = sel.get("matchExpressions") or []

    def pred(labels):
        labels = labels or {}
        for k, v in ml.items():
            if labels.get(k) != v:
                return False
        for e in me:
            k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
            if op == "In" and labels.get(k) not in vals:
                return False
            if op == "NotIn" and k in labels and labels[k] in vals:
                return False
            if op == "Exists" and k not in labels:
                return False
            if op == "DoesNotExist" and k in labels:
                return False
        return True
    return pred


FIELD_LABELS = {  # field selectors the apiserver supports beyond metadata.name/namespace
    ("", "events"): {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                     "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                     "reason", "reportingComponent", "source", "type"},
    ("", "pods"): {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                   "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
    ("", "secrets"): {"type"},
    ("", "namespaces"): {"status.phase"},
}


class FieldSelector:
    def __init__(self, text, res=None):
        self.reqs = []
        extra = FIELD_LABELS.get(res.gp, set()) if res is not None else set()
        for p in [x for x in (text or "").split(",") if x.strip()]:
            m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", p)
            if not m:
                raise bad_request("invalid selector: '%s'; can't understand '%s'" % (text, p))
            f, op, v = m.groups()
            if f not in ("metadata.name", "metadata.namespace") and f not in extra:
                raise bad_request('field label not supported: %s' % f)
            self.reqs.append((f, op != "!=", v))

    def empty(self):
        return not self.reqs

    def matches(self, obj):
        for f, eq, v in self.reqs:
            cur = obj
            for part in f.split("."):
                cur = cur.get(part) if isinstance(cur, dict) else None
            if f == "source" and isinstance(cur, dict):
                cur = cur.get("component")
            if isinstance(cur, bool):
                cur = "true" if cur else "false"
            actual = "" if cur is None else str(cur)
            if (actual == v) != eq:
                return False
        return True


# ------------------------------------------------------------------------------------ jsonpath

def jsonpath(obj, expr):
    """Small JSONPath evaluator for additionalPrinterColumns: .a.b, [n], [*], [?(@.k=="v")]."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    if expr.startswith("$"):
        expr = expr[1:]
    toks = re.findall(r"\.([A-Za-z0-9_\-]+)|\[\?\(@((?:\.[A-Za-z0-9_\-]+)+)\s*(==|!=)\s*(\"[^\"]*\"|'[^']*'|[^)\s]+)\)\]|\[(\*|-?\d+)\]|\.\*", expr)
    cur = [obj]
    for name, fpath, fop, fval, idx in toks:
        nxt = []
        if name:
            for c in cur:
                if isinstance(c, dict) and name in c:
                    nxt.append(c[name])
        elif fpath:
            if fval[:1] in "\"'":
                want = fval[1:-1]
            else:
                try:
                    want = json.loads(fval)
                except ValueError:
                    want = fval
            keys = fpath.split(".")[1:]
            for c in cur:
                for e in (c if isinstance(c, list) else []):
                    v = e
                    for k in keys:
                        v = v.get(k) if isinstance(v, dict) else None
                    if (v == want) == (fop == "=="):
                        nxt.append(e)
        elif idx:
            for c in cur:
                if isinstance(c, list):
                    if idx == "*":
                        nxt.extend(c)
                    else:
                        i = int(idx)
                        if -len(c) <= i < len(c):
                            nxt.append(c[i])
        else:
            for c in cur:
                if isinstance(c, dict):
                    nxt.extend(c.values())
                elif isinstance(c, list):
                    nxt.extend(c)
        cur = nxt
    return cur


# ------------------------------------------------------------------------------- schema (CRDs)

def _type_name(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def apply_defaults(schema, value):
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for k, sub in props.items():
            if k not in value and isinstance(sub, dict) and "default" in sub:
                value[k] = copy.deepcopy(sub["default"])
            if k in value:
                value[k] = apply_defaults(sub, value[k])
        ap = schema.get("additionalProperties")
        if isinstance(ap, dict):
            for k in list(value):
                if k not in props:
                    value[k] = apply_defaults(ap, value[k])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [apply_defaults(schema["items"], v) for v in value]
    return value


def prune(schema, value, path, unknown, top=False):
    """Drop fields a structural schema does not declare (like the apiextensions pruning); their
    paths go to unknown."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        ap = schema.get("additionalProperties")
        for k in list(value):
            if top and k in ("apiVersion", "kind", "metadata"):
                continue
            sub = (props or {}).get(k)
            if sub is None and isinstance(ap, dict):
                sub = ap
            if sub is None and ap is not True and (props is not None or schema.get("type") == "object"):
                unknown.append((path + "." + k) if path else k)
                del value[k]
                continue
            prune(sub, value[k], (path + "." + k) if path else k, unknown)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            prune(schema["items"], v, "%s[%d]" % (path, i), unknown)


def validate_schema(schema, value, path, errs, top=False):
    if not isinstance(schema, dict):
        return
    t = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    if value is None:
        if schema.get("nullable"):
            return
        if t:
            errs.append({"reason": "FieldValueInvalid", "message": 'Invalid value: "null": %s in body must be of type %s: "null"' % (path, t), "field": path})
        return
    vt = _type_name(value)
    if int_or_string:
        if vt not in ("integer", "string"):
            errs.append({"reason": "FieldValueInvalid",
                         "message": 'Invalid value: "%s": %s in body must be of type integer,string: "%s"' % (vt, path, vt),
                         "field": path})
            return
    elif t and not (vt == t or (t == "number" and vt == "integer")):
        errs.append({"reason": "FieldValueInvalid",
                     "message": 'Invalid value: "%s": %s in body must be of type %s: "%s"' % (vt, path, t, vt),
                     "field": path})
        return
    if "enum" in schema and value not in schema["enum"]:
        sup = ", ".join(fmt_value(e) for e in schema["enum"])
        errs.append({"reason": "FieldValueNotSupported",
                     "message": "Unsupported value: %s: supported values: %s" % (fmt_value(value), sup), "field": path})
    if vt in ("integer", "number"):
        if "maximum" in schema and (value > schema["maximum"] or (schema.get("exclusiveMaximum") and value == schema["maximum"])):
            errs.append({"reason": "FieldValueInvalid",
                         "message": "Invalid value: %s: %s in body should be less than %s%s" % (
                             fmt_value(value), path, "" if schema.get("exclusiveMaximum") else "or equal to ", fmt_value(schema["maximum"])),
                         "field": path})
        if "minimum" in schema and (value < schema["minimum"] or (schema.get("exclusiveMinimum") and value == schema["minimum"])):
            errs.append({"reason": "FieldValueInvalid",
                         "message": "Invalid value: %s: %s in body should be greater than %s%s" % (
                             fmt_value(value), path, "" if schema.get("exclusiveMinimum") else "or equal to ", fmt_value(schema["minimum"])),
                         "field": path})
    if vt == "string":
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append({"reason": "FieldValueTooLong",
                         "message": "Too long: may not be more than %d bytes" % schema["maxLength"], "field": path})
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.append({"reason": "FieldValueInvalid",
                         "message": "Invalid value: %s: %s in body should be at least %d chars long" % (fmt_value(value), path, schema["minLength"]),
                         "field": path})
        if "pattern" in schema:
            try:
                ok = re.search(schema["pattern"], value) is not None
            except re.error:
                ok = True
            if not ok:
                errs.append({"reason": "FieldValueInvalid",
                             "message": "Invalid value: %s: %s in body should match '%s'" % (fmt_value(value), path, schema["pattern"]),
                             "field": path})
    if vt == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append({"reason": "FieldValueTooMany",
                         "message": "Too many: %d: must have at most %d items" % (len(value), schema["maxItems"]), "field": path})
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append({"reason": "FieldValueInvalid",
                         "message": "Invalid value: %d: %s in body should have at least %d items" % (len(value), path, schema["minItems"]),
                         "field": path})
        if isinstance(schema.get("items"), dict):
            for i, v in enumerate(value):
                validate_schema(schema["items"], v, "%s[%d]" % (path, i), errs)
    if vt == "object":
        for r in schema.get("required") or []:
            if r not in value:
                errs.append({"reason": "FieldValueRequired", "message": "Required value",
                             "field": (path + "." + r) if path else r})
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errs.append({"reason": "FieldValueTooMany",
                         "message": "Too many: %d: must have at most %d items" % (len(value), schema["maxProperties"]), "field": path})
        props = schema.get("properties") or {}
        ap = schema.get("additionalProperties")
        for k, v in value.items():
            if top and k in ("metadata", "apiVersion", "kind"):
                continue
            sub = props.get(k)
            if sub is None and isinstance(ap, dict):
                sub = ap
            if sub is not None:
                validate_schema(sub, v, (path + "." + k) if path else k, errs)


# --------------------------------------------------------------------------- managed fields

TRACKED_META = ("labels", "annotations", "ownerReferences", "finalizers", "generateName")


ATOMIC = {("networking.k8s.io", "networkpolicies"): {("f:spec", "f:podSelector")}}
LIST_KEYS = {  # associative lists in fieldsV1: field -> (key fields, items atomic)
    "ownerReferences": (("uid",), True), "conditions": (("type",), False), "containers": (("name",), False),
    "initContainers": (("name",), False), "volumes": (("name",), False), "env": (("name",), False),
    "volumeMounts": (("mountPath",), False), "ports": (("containerPort", "protocol"), False),
}


def _find_keyed(lst, seg):
    try:
        want = json.loads(seg[2:])
    except ValueError:
        return None
    for i, x in enumerate(lst):
        if isinstance(x, dict) and all(x.get(k) == v for k, v in want.items()):
            return i
    return None


def field_paths(obj, res, sub):
    """Leaf field paths (tuples of 'f:x') an object sets; lists and atomic structs are leaves."""
    out = set()
    atomic = ATOMIC.get(res.gp, ())

    def walk(v, prefix):
        if isinstance(v, dict) and v and prefix not in atomic:
            for k, x in v.items():
                walk(x, prefix + ("f:" + k,))
        elif isinstance(v, list) and v and prefix and prefix[-1][2:] in LIST_KEYS and \
                (res.is_cr is False or prefix[-1] in ("f:conditions", "f:ownerReferences")) and \
                all(isinstance(x, dict) and all(k in x for k in LIST_KEYS[prefix[-1][2:]][0]) for x in v):
            keys, item_atomic = LIST_KEYS[prefix[-1][2:]]
            for x in v:
                k = "k:" + json.dumps({kk: x[kk] for kk in sorted(keys)}, separators=(",", ":"))
                if item_atomic:
                    out.add(prefix + (k,))
                else:
                    walk(x, prefix + (k,))
        else:
            out.add(prefix)
    for k, v in (obj or {}).items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "metadata":
            for mk in TRACKED_META:
                if mk in v:
                    walk(v[mk], ("f:metadata", "f:" + mk))
            continue
        if sub == "status" and k != "status":
            continue
        if sub != "status" and res.status and k == "status":
            continue
        walk(v, ("f:" + k,))
    return out


def value_at(obj, path):
    cur = obj
    for p in path:
        if p.startswith("k:") and isinstance(cur, list):
            i = _find_keyed(cur, p)
            if i is None:
                return None
            cur = cur[i]
            continue
        if not isinstance(cur, dict) or p[2:] not in cur:
            return None
        cur = cur[p[2:]]
    return cur


def delete_at(obj, path):
    cur = obj
    for p in path[:-1]:
        if p.startswith("k:") and isinstance(cur, list):
            i = _find_keyed(cur, p)
            if i is None:
                return
            cur = cur[i]
            continue
        if not isinstance(cur, dict) or p[2:] not in cur:
            return
        cur = cur[p[2:]]
    last = path[-1]
    if last.startswith("k:") and isinstance(cur, list):
        i = _find_keyed(cur, last)
        if i is not None:
            cur.pop(i)
    elif isinstance(cur, dict):
        cur.pop(last[2:], None)


def paths_to_fields(paths, dots, top_dots=True):
    root = {}
    for p in sorted(paths):
        cur = root
        for i, e in enumerate(p):
            cur = cur.setdefault(e, {})
            if dots and i < len(p) - 1 and not (i == 0 and (e == "f:metadata" or not top_dots)):
                cur.setdefault(".", {})
    return root


def fields_to_paths(fields, prefix=()):
    out = set()
    for k, v in (fields or {}).items():
        if k == ".":
            continue
        if isinstance(v, dict) and any(x != "." for x in v):
            out |= fields_to_paths(v, prefix + (k,))
        else:
            out.add(prefix + (k,))
    return out


def deep_merge(base, over):
    if not isinstance(base, dict) or not isinstance(over, dict):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out.get(k), v) if k in out else copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------- the state

class Watcher:
    def __init__(self, gp, ns, lsel, fsel):
        self.gp = gp
        self.ns = ns
        self.lsel = lsel
        self.fsel = fsel
        self.q = queue.Queue()
        self.dropped = False

    def matches(self, obj):
        if obj is None:
            return False
        md = obj.get("metadata", {})
        if self.ns is not None and md.get("namespace") != self.ns:
            return False
        return self.lsel.matches(md.get("labels")) and self.fsel.matches(obj)

    def offer(self, etype, obj, old):
        new_m = self.matches(obj)
        old_m = self.matches(old)
        if etype == "ADDED":
            if new_m:
                self.q.put(("ADDED", obj))
        elif etype == "DELETED":
            if new_m:
                self.q.put(("DELETED", obj))
        else:
            if new_m and old_m:
                self.q.put(("MODIFIED", obj))
            elif new_m:
                self.q.put(("ADDED", obj))
            elif old_m:
                self.q.put(("DELETED", obj))


class State:
    def __init__(self):
        self.lock = threading.RLock()
        self.rv = 1000
        self.objects = {}  # (group, plural) -> {(ns, name): obj}
        self.history = []  # (rv, gp, etype, obj, old)
        self.oldest = 0  # watches may resume from any rv >= oldest
        self.watchers = set()
        self.resources = {}  # (group, version, plural) -> Res
        self.group_order = []

    def store(self, gp):
        return self.objects.setdefault(gp, {})

    def get(self, res, ns, name):
        return self.store(res.gp).get((ns or "", name))

    def commit(self, res, etype, obj, old):
        """Record a change; obj must not be mutated afterwards. Caller holds the lock."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if etype == "DELETED":
            self.store(res.gp).pop(key, None)
        else:
            self.store(res.gp)[key] = obj
        self.history.append((self.rv, res.gp, etype, obj, old))
        if len(self.history) > HISTORY_MAX:
            drop = len(self.history) - HISTORY_MAX
            self.oldest = self.history[drop - 1][0]
            del self.history[:drop]
        for w in list(self.watchers):
            if w.gp == res.gp:
                w.offer(etype, obj, old)
        return obj

    def compact(self):
        with self.lock:
            self.rv += 1  # like an etcd compaction: every revision handed out before it is gone
            self.history = []
            self.oldest = self.rv

    def all_uids(self):
        return {o["metadata"].get("uid") for s in self.objects.values() for o in s.values()}


# ---------------------------------------------------------------------------------- the server

class StandIn:
    def __init__(self, args):
        self.args = args
        self.state = State()
        self.admin_token = args.token or uuid.uuid4().hex
        self.readonly_token = args.readonly_token
        self.service_hosts = {}
        self.tokens = {}  # token -> (user, verbs, resources) from --tokens
        if getattr(args, "tokens", None):
            with open(args.tokens) as f:
                for line in f:
                    fs = line.split()
                    if len(fs) < 3 or fs[0].startswith("#"):
                        continue
                    res = set(fs[3].split(",")) if len(fs) > 3 else {"*"}
                    self.tokens[fs[0]] = (fs[1], set(fs[2].split(",")), res)
        for s in args.service_host or []:
            k, _, v = s.partition("=")
            self.service_hosts[k.strip()] = v.strip()
        self.faults = {"fail": None, "delay": 0.0}
        self.snapshots = {}  # (gp, ns, rv) -> objects at rv, for continue tokens (consistent pages)
        self.fault_lock = threading.Lock()
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.stopping = threading.Event()
        self.restart_requested = threading.Event()
        self.httpd = None
        self.port = None
        self.tmp = tempfile.mkdtemp(prefix="maskmesh-apiserver-")
        self.make_certs()
        self.install_builtins()

    # -- certificates
    def make_certs(self):
        d = self.tmp
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        def run(cmd):
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=d)
        run(["openssl", "req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
            "-subj", "/CN=maskmesh-e2e-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        run(["openssl", "req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
        run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "7", "-extfile", "ext.cnf"])
        self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
        self.ssl_ctx.set_alpn_protocols(["http/1.1"])
        # x509 client certificates (kube-apiserver --client-ca-file): the stand-in's own CA,
        # which signs the --client-cert certificates, and any --client-ca-file bundles
        clientcert.request_client_certs(self.ssl_ctx, [os.path.join(d, "ca.crt")] +
                                        list(getattr(self.args, "client_ca_file", None) or []))
        with open(os.path.join(d, "ca.crt"), "rb") as f:
            self.ca_pem = f.read()
        self.client_certs = []  # (name, groups, cert PEM, key PEM)
        for spec in getattr(self.args, "client_cert", None) or []:
            name, groups = clientcert.parse_spec(spec)
            cert, key = clientcert.issue(d, "ca.crt", "ca.key", "client-%d" % len(self.client_certs),
                                         name, groups)
            self.client_certs.append((name, groups, cert, key))

    # -- resources
    def add_res(self, res):
        key = (res.group, res.version, res.plural)
        self.state.resources[key] = res
        if res.group not in self.state.group_order:
            self.state.group_order.append(res.group)

    def install_builtins(self):
        A = self.add_res
        A(Res("", "v1", "namespaces", "Namespace", False, short=["ns"], status=True))
        A(Res("", "v1", "pods", "Pod", True, short=["po"], categories=["all"], status=True, generation=True))
        A(Res("", "v1", "configmaps", "ConfigMap", True, short=["cm"]))
        A(Res("", "v1", "secrets", "Secret", True))
        A(Res("", "v1", "events", "Event", True, short=["ev"]))
        A(Res("", "v1", "services", "Service", True, short=["svc"], categories=["all"], status=True))
        A(Res("", "v1", "serviceaccounts", "ServiceAccount", True, short=["sa"]))
        A(Res("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
              False, categories=["api-extensions"], generation=True))
        A(Res("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
              False, categories=["api-extensions"], generation=True))
        A(Res("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
              short=["crd", "crds"], categories=["api-extensions"], status=True, generation=True))
        A(Res("coordination.k8s.io", "v1", "leases", "Lease", True))
        A(Res("events.k8s.io", "v1", "events", "Event", True, short=["ev"]))
        A(Res("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short=["netpol"], generation=True))
        nsres = self.state.resources[("", "v1", "namespaces")]
        with self.state.lock:
            for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
                obj = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": n}}
                self.finalize_new(nsres, obj, "kube-apiserver", "Update")
                self.state.commit(nsres, "ADDED", obj, None)

    def lookup(self, group, version, plural):
        return self.state.resources.get((group, version, plural))

    def crd_versions(self, crd):
        return [v for v in crd.get("spec", {}).get("versions", []) if v.get("served", True)]

    def register_crd(self, crd):
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        group = spec.get("group")
        for v in self.crd_versions(crd):
            subs = v.get("subresources") or {}
            res = Res(group, v["name"], names.get("plural"), names.get("kind"), spec.get("scope") == "Namespaced",
                      singular=names.get("singular") or names.get("kind", "").lower(), short=names.get("shortNames") or [],
                      categories=names.get("categories") or [], status="status" in subs, generation=True, crd=v)
            self.add_res(res)

    def unregister_crd(self, crd):
        spec = crd.get("spec", {})
        for k in [k for k, r in self.state.resources.items()
                  if r.is_cr and r.group == spec.get("group") and r.plural == spec.get("names", {}).get("plural")]:
            del self.state.resources[k]
        if not any(r.group == spec.get("group") for r in self.state.resources.values()):
            if spec.get("group") in self.state.group_order:
                self.state.group_order.remove(spec.get("group"))

    # -- object lifecycle helpers
    def finalize_new(self, res, obj, manager, op, sub=None):
        md = obj["metadata"]
        if not md.get("name") and md.get("generateName"):
            for _ in range(100):
                cand = md["generateName"] + "".join(random.choice(NAME_CHARS) for _ in range(5))
                if self.state.get(res, md.get("namespace"), cand) is None:
                    md["name"] = cand
                    break
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        if res.generation:
            md["generation"] = 1
        if res.gp == ("", "namespaces"):
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.crd_status(obj)
        self.set_managed(res, None, obj, manager, op, sub)
        self.order_metadata(obj)

    def crd_status(self, obj):
        names = copy.deepcopy(obj.get("spec", {}).get("names", {}))
        names.setdefault("singular", names.get("kind", "").lower())
        names.setdefault("listKind", names.get("kind", "") + "List")
        ts = now_rfc3339()
        obj["status"] = {
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": ts, "reason": "NoConflicts",
                 "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": ts, "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted"}],
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")],
        }

    def order_metadata(self, obj):
        order = ["name", "generateName", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                 "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
                 "finalizers", "managedFields"]
        md = obj["metadata"]
        obj["metadata"] = {k: md[k] for k in order if k in md}
        obj["metadata"].update({k: v for k, v in md.items() if k not in obj["metadata"]})

    def set_managed(self, res, old, new, manager, op, sub, applied=None, force=False):
        """Update metadata.managedFields of new (old: previous object or None)."""
        entries = copy.deepcopy((old or {}).get("metadata", {}).get("managedFields") or [])
        sets = [(e, fields_to_paths(e.get("fieldsV1"))) for e in entries]
        new_paths = field_paths(new, res, sub)
        if op == "Apply":
            mine = field_paths(applied, res, sub)
            changed = mine
        else:
            old_paths = field_paths(old, res, sub) if old else set()
            changed = {p for p in new_paths if old is None or value_at(old, p) != value_at(new, p) or p not in old_paths}
            mine = None
        out = []
        found = False
        for e, ps in sets:
            same = e.get("manager") == manager and e.get("operation") == op and e.get("subresource") == sub
            ps = ps & new_paths
            if same:
                found = True
                ps = mine if mine is not None else (ps | changed)
            else:
                ps = ps - changed
            if ps:
                e["fieldsV1"] = paths_to_fields(ps, e.get("operation") != "Apply", res.is_cr)
                if same:
                    e["time"] = now_rfc3339()
                out.append(e)
        if not found:
            ps = mine if mine is not None else changed
            if ps:
                e = {"manager": manager, "operation": op, "apiVersion": res.gv, "time": now_rfc3339(),
                     "fieldsType": "FieldsV1", "fieldsV1": paths_to_fields(ps, op != "Apply", res.is_cr)}
                if sub:
                    e["subresource"] = sub
                out.append(e)
        if out:
            new["metadata"]["managedFields"] = out
        else:
            new["metadata"].pop("managedFields", None)

    def apply_conflicts(self, res, cur, applied, manager, sub):
        mine = field_paths(applied, res, sub)
        conflicts = []
        for e in (cur.get("metadata", {}).get("managedFields") or []):
            if e.get("manager") == manager and e.get("operation") == "Apply":
                continue
            if (e.get("subresource") or None) != sub:
                continue
            who = json.dumps(e.get("manager"))
            if e.get("subresource"):
                who += " with subresource %s" % json.dumps(e["subresource"])
            if e.get("operation") == "Update":
                who += " using %s" % e.get("apiVersion")
                if e.get("time"):
                    who += " at %s" % e["time"]
            for p in sorted(fields_to_paths(e.get("fieldsV1")) & mine):
                if value_at(cur, p) != value_at(applied, p):
                    conflicts.append((who, "." + ".".join(x[2:] for x in p)))
        return conflicts

    def strip_for_compare(self, obj, res, generation=False):
        o = copy.deepcopy(obj)
        md = o.get("metadata", {})
        md.pop("resourceVersion", None)
        for e in md.get("managedFields") or []:
            e.pop("time", None)
        if generation:
            o.pop("metadata", None)
            if res.status:
                o.pop("status", None)
        return o

    # -- validation and admission
    def validate(self, res, obj, name):
        causes = []
        if res.group == "admissionregistration.k8s.io":
            for i, wh in enumerate(obj.get("webhooks") or []):
                f = "webhooks[%d]" % i
                se = wh.get("sideEffects")
                if se is None:
                    causes.append({"reason": "FieldValueRequired", "message": "Required value: must specify one of None, "
                                   "NoneOnDryRun", "field": f + ".sideEffects"})
                elif se not in ("None", "NoneOnDryRun"):
                    causes.append({"reason": "FieldValueNotSupported", "message": 'Unsupported value: %s: supported '
                                   'values: "None", "NoneOnDryRun"' % fmt_value(se), "field": f + ".sideEffects"})
                if not wh.get("admissionReviewVersions"):
                    causes.append({"reason": "FieldValueRequired", "message": "Required value: must specify one of v1, "
                                   "v1beta1", "field": f + ".admissionReviewVersions"})
                cc = wh.get("clientConfig") or {}
                if bool(cc.get("url")) == bool(cc.get("service")):
                    causes.append({"reason": "FieldValueRequired", "message": "Required value: exactly one of url or "
                                   "service is required", "field": f + ".clientConfig"})
        md = obj.get("metadata", {})
        if not md.get("name") and not md.get("generateName"):
            causes.append({"reason": "FieldValueRequired", "message": "Required value: name or generateName is required",
                           "field": "metadata.name"})
        n = md.get("name")
        if n and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", n) and res.gp != ("", "events"):
            causes.append({"reason": "FieldValueInvalid",
                           "message": "Invalid value: %s: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                                      "characters, '-' or '.', and must start and end with an alphanumeric character" % fmt_value(n),
                           "field": "metadata.name"})
        if res.is_cr:
            schema = ((res.crd.get("schema") or {}).get("openAPIV3Schema")) or {}
            validate_schema(schema, obj, "", causes, top=True)
        if causes:
            raise invalid(res, name or md.get("name") or "", causes)

    def limits(self, user, groups=()):
        """None for the admin (or a certificate in group system:masters, RBAC's superuser
        group); else (verbs, resources) the user may use."""
        if user == "admin" or "system:masters" in groups:
            return None
        if user == READONLY_USER:
            return ({"get", "list", "watch"}, {"*"})
        for u, verbs, res in self.tokens.values():
            if u == user:
                return (verbs, res)
        return (set(), set())

    def user_info(self, ctx):
        if ctx.get("groups"):
            return {"username": ctx["user"], "groups": list(ctx["groups"]) + ["system:authenticated"]}
        if ctx["user"] != "admin":
            return {"username": ctx["user"], "uid": ctx["user"] + "-uid", "groups": ["system:authenticated"]}
        return {"username": "admin", "uid": "admin-uid", "groups": ["system:masters", "system:authenticated"]}

    def namespace_labels(self, ns):
        nsres = self.state.resources[("", "v1", "namespaces")]
        with self.state.lock:
            o = self.state.get(nsres, None, ns)
        if o is None:
            return {"kubernetes.io/metadata.name": ns}
        return o["metadata"].get("labels") or {}

    @staticmethod
    def _rule_match(rule, res, sub, op):
        ops = rule.get("operations") or []
        if "*" not in ops and op not in ops:
            return False
        if "*" not in (rule.get("apiGroups") or []) and res.group not in (rule.get("apiGroups") or []):
            return False
        if "*" not in (rule.get("apiVersions") or []) and res.version not in (rule.get("apiVersions") or []):
            return False
        want = res.plural + ("/" + sub if sub else "")
        ok = False
        for r in rule.get("resources") or []:
            rp, _, rs = r.partition("/")
            if r == "*" and not sub:
                ok = True
            elif r == "*/*":
                ok = True
            elif rp == "*" and rs == (sub or ""):
                ok = True
            elif rp == res.plural and (rs == (sub or "") or rs == "*"):
                ok = True
            elif r == want:
                ok = True
        if not ok:
            return False
        scope = rule.get("scope") or "*"
        if scope == "Namespaced" and not res.namespaced:
            return False
        if scope == "Cluster" and res.namespaced:
            return False
        return True

    def webhook_matches(self, wh, res, sub, op, obj, old, ns):
        if not any(self._rule_match(r, res, sub, op) for r in wh.get("rules") or []):
            return False
        if res.namespaced or res.gp == ("", "namespaces"):
            nsname = ns if res.namespaced else obj["metadata"].get("name")
            labels = self.namespace_labels(nsname) if res.namespaced else (obj["metadata"].get("labels") or {})
            if not selector_from_labelselector(wh.get("namespaceSelector"))(labels):
                return False
        osel = selector_from_labelselector(wh.get("objectSelector"))
        if not (osel(obj["metadata"].get("labels")) or (old is not None and osel(old["metadata"].get("labels")))):
            return False
        return True

    def call_webhook(self, wh, review):
        cc = wh.get("clientConfig") or {}
        timeout = wh.get("timeoutSeconds") or 10
        if cc.get("url"):
            u = urllib.parse.urlsplit(cc["url"])
            host, port, path = u.hostname, u.port or 443, (u.path or "/") + ("?" + u.query if u.query else "")
            connect_host, connect_port, sni = host, port, host
        else:
            svc = cc.get("service") or {}
            dns = "%s.%s.svc" % (svc.get("name"), svc.get("namespace"))
            port = svc.get("port") or 443
            path = svc.get("path") or "/"
            target = self.service_hosts.get(dns) or self.service_hosts.get("%s:%d" % (dns, port))
            if not target:
                raise OSError('dial tcp: lookup %s: no such host (no --service-host for it)' % dns)
            connect_host, _, p = target.rpartition(":")
            connect_port, sni = int(p), dns
        ctx = ssl.create_default_context()
        if cc.get("caBundle"):
            ctx = ssl.create_default_context(cadata=base64.b64decode(cc["caBundle"]).decode())
        path += ("&" if "?" in path else "?") + "timeout=%ds" % timeout
        body = json.dumps(review).encode()
        sock = socket.create_connection((connect_host, connect_port), timeout=timeout)
        try:
            tls = ctx.wrap_socket(sock, server_hostname=sni)
            conn = http.client.HTTPConnection(sni, connect_port, timeout=timeout)
            conn.sock = tls
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json",
                                                           "Accept": "application/json",
                                                           "User-Agent": "kube-apiserver-admission"})
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        finally:
            sock.close()
        if resp.status != 200:
            raise OSError("the server responded with the status code %d but did not return more information" % resp.status)
        out = json.loads(data)
        r = out.get("response") or {}
        if out.get("kind") != "AdmissionReview" or out.get("apiVersion") != "admission.k8s.io/v1":
            raise OSError("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got %s, Kind=%s"
                          % (out.get("apiVersion"), out.get("kind")))
        if r.get("uid") != review["request"]["uid"]:
            raise OSError("expected response.uid=%r, got %r" % (review["request"]["uid"], r.get("uid")))
        return r

    def run_webhooks(self, kind, ctx, res, sub, op, obj, old, ns, name, dry_run, options, warnings):
        if res.group == "admissionregistration.k8s.io":
            return obj
        wres = self.state.resources[("admissionregistration.k8s.io", "v1", kind)]
        with self.state.lock:
            configs = sorted(self.state.store(wres.gp).values(), key=lambda o: o["metadata"]["name"])
        for cfg in configs:
            for wh in cfg.get("webhooks") or []:
                if not self.webhook_matches(wh, res, sub, op, obj, old, ns):
                    continue
                whname = wh.get("name")
                gvk = {"group": res.group, "version": res.version, "kind": res.kind}
                gvr = {"group": res.group, "version": res.version, "resource": res.plural}
                req = {"uid": str(uuid.uuid4()), "kind": gvk, "resource": gvr}
                if sub:
                    req["subResource"] = sub
                req["requestKind"] = gvk
                req["requestResource"] = gvr
                if sub:
                    req["requestSubResource"] = sub
                if name:
                    req["name"] = name
                if ns:
                    req["namespace"] = ns
                req.update({"operation": op, "userInfo": self.user_info(ctx), "object": obj, "oldObject": old,
                            "dryRun": bool(dry_run), "options": options})
                review = {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req}
                try:
                    r = self.call_webhook(wh, review)
                except Exception as e:  # noqa: BLE001 - any failure to call is a webhook call error
                    if wh.get("failurePolicy", "Fail") == "Ignore":
                        continue
                    msg = 'failed calling webhook "%s": failed to call webhook: %s' % (whname, e)
                    raise ApiError(500, "InternalError", "Internal error occurred: " + msg,
                                   {"causes": [{"message": msg}]})
                for w in r.get("warnings") or []:
                    warnings.append(w)
                if not r.get("allowed"):
                    st = dict(r.get("status") or {})
                    code = st.get("code") or 0
                    if code < 400:
                        code = 400
                    deny = 'admission webhook "%s" denied the request' % whname
                    if st.get("message"):
                        msg = deny + ": " + st["message"]
                    elif st.get("reason"):
                        msg = deny + ": " + st["reason"]
                    else:
                        msg = deny + " without explanation"
                    raise ApiError(code, st.get("reason") or "", msg, st.get("details"))
                if kind == "mutatingwebhookconfigurations" and r.get("patch"):
                    if r.get("patchType") != "JSONPatch":
                        raise ApiError(500, "InternalError", 'Internal error occurred: admission webhook "%s" returned '
                                       'an unsupported patchType %r' % (whname, r.get("patchType")))
                    ops = json.loads(base64.b64decode(r["patch"]))
                    try:
                        obj = json_patch(obj, ops)
                    except ApiError as e:
                        raise ApiError(500, "InternalError", 'Internal error occurred: admission webhook "%s" '
                                       'returned a patch that does not apply: %s' % (whname, e.message))
        return obj

    def admit_and_validate(self, ctx, res, sub, op, obj, old, ns, name, dry_run, options, warnings):
        if res.is_cr:
            unknown = []
            prune(((res.crd.get("schema") or {}).get("openAPIV3Schema")) or {}, obj, "", unknown, top=True)
            fv = ctx.get("fieldValidation") or "Warn"
            if unknown and fv == "Strict":
                raise bad_request('%s in version "%s" cannot be handled as a %s: strict decoding error: %s'
                                  % (res.kind, res.version, res.kind,
                                     ", ".join('unknown field "%s"' % u for u in unknown)))
            if fv != "Ignore":
                warnings.extend('unknown field "%s"' % u for u in unknown)
        obj = self.run_webhooks("mutatingwebhookconfigurations", ctx, res, sub, op, obj, old, ns, name,
                                dry_run, options, warnings)
        if res.is_cr:
            schema = ((res.crd.get("schema") or {}).get("openAPIV3Schema")) or {}
            obj = apply_defaults(schema, obj)
        self.validate(res, obj, name)
        obj = self.run_webhooks("validatingwebhookconfigurations", ctx, res, sub, op, obj, old, ns, name,
                                dry_run, options, warnings)
        return obj

    # -- verbs
    @staticmethod
    def manager_of(ctx, params):
        fm = params.get("fieldManager")
        if fm:
            return fm
        return (ctx.get("ua") or "unknown").split("/")[0] or "unknown"

    @staticmethod
    def dry_run_of(params):
        dr = params.get("dryRun")
        if dr is None:
            return False
        if dr != "All":
            raise invalid(("DryRun.meta.k8s.io", "meta.k8s.io", "DryRun"), "", [
                {"reason": "FieldValueNotSupported", "message": 'Unsupported value: "%s": supported values: "All"' % dr,
                 "field": "dryRun"}])
        return True

    def check_kind(self, res, obj):
        if not isinstance(obj, dict):
            raise bad_request("the object provided is unrecognized (must be of type %s)" % res.kind)
        if obj.get("kind") and obj.get("kind") != res.kind:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (obj.get("apiVersion"), res.gv) if obj.get("apiVersion") != res.gv else
                              "%s in version \"%s\" cannot be handled as a %s: the object kind %s does not match"
                              % (obj.get("kind"), res.version, res.kind, res.kind))
        if obj.get("apiVersion") and obj.get("apiVersion") != res.gv:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (obj.get("apiVersion"), res.gv))
        obj["kind"] = res.kind
        obj["apiVersion"] = res.gv
        md = obj.get("metadata")
        if md is None:
            obj["metadata"] = md = {}
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        # keep kind/apiVersion first for built-ins
        rest = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
        obj.clear()
        obj.update({"kind": res.kind, "apiVersion": res.gv})
        obj.update(rest)
        return obj

    def do_create(self, ctx, res, ns, obj, params, op_name="Update", applied=None):
        dry = self.dry_run_of(params)
        obj = self.check_kind(res, obj)
        md = obj["metadata"]
        if res.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns
            nsres = self.state.resources[("", "v1", "namespaces")]
            with self.state.lock:
                if self.state.get(nsres, None, ns) is None:
                    raise not_found(nsres, ns)
        else:
            md.pop("namespace", None)
        for k in ("uid", "resourceVersion", "creationTimestamp", "generation", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        md.pop("managedFields", None)
        if res.is_cr and res.status:
            obj.pop("status", None)
        if res.gp == ("", "secrets"):
            obj.setdefault("type", "Opaque")
        if res.gp == ("", "pods"):
            default_pod(obj)
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        manager = self.manager_of(ctx, params)
        self.set_managed(res, None, obj, manager, op_name, None, applied=applied)
        options = {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        if dry:
            options["dryRun"] = ["All"]
        if params.get("fieldManager"):
            options["fieldManager"] = params["fieldManager"]
        warnings = []
        obj = self.admit_and_validate(ctx, res, None, "CREATE", obj, None, ns if res.namespaced else None,
                                      md.get("name"), dry, options, warnings)
        obj = self.check_kind(res, obj)
        with self.state.lock:
            if obj["metadata"].get("name") and self.state.get(res, ns if res.namespaced else None, obj["metadata"]["name"]):
                raise already_exists(res, obj["metadata"]["name"])
            managed = obj["metadata"].pop("managedFields", None)
            self.finalize_new(res, obj, manager, op_name)
            if managed is not None:
                obj["metadata"]["managedFields"] = managed
                self.order_metadata(obj)
            if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.check_crd(obj)
            if dry:
                return 201, obj, warnings
            self.state.commit(res, "ADDED", obj, None)
            if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.register_crd(obj)
        return 201, obj, warnings

    def check_crd(self, crd):
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        expect = "%s.%s" % (names.get("plural"), spec.get("group"))
        if crd["metadata"].get("name") != expect:
            raise invalid(("CustomResourceDefinition.apiextensions.k8s.io", "apiextensions.k8s.io", "CustomResourceDefinition"),
                          crd["metadata"].get("name"), [
                              {"reason": "FieldValueInvalid",
                               "message": 'Invalid value: "%s": must be spec.names.plural+"."+spec.group' % crd["metadata"].get("name"),
                               "field": "metadata.name"}])

    def build_update(self, ctx, res, old, new, sub, manager, op, applied=None):
        """The object a write to the main resource or /status turns old into."""
        if res.gp == ("", "pods") and sub != "status":
            new = copy.deepcopy(new)
            default_pod(new)
            check_pod_update(old, new)
        if sub == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = copy.deepcopy(new["status"])
            else:
                result.pop("status", None)
        else:
            result = copy.deepcopy(new)
            if res.status:
                if "status" in old:
                    result["status"] = copy.deepcopy(old["status"])
                else:
                    result.pop("status", None)
            if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
                result["status"] = copy.deepcopy(old.get("status"))
        result = self.check_kind(res, result)
        md, omd = result["metadata"], old["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation"):
            if k in omd:
                md[k] = omd[k]
            else:
                md.pop(k, None)
        md["resourceVersion"] = omd["resourceVersion"]
        if res.gp == ("", "namespaces"):
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
        md["managedFields"] = copy.deepcopy(omd.get("managedFields") or [])
        self.set_managed(res, old, result, manager, op, sub, applied=applied)
        if res.generation and sub != "status":
            if self.strip_for_compare(old, res, True) != self.strip_for_compare(result, res, True):
                md["generation"] = omd.get("generation", 0) + 1
        self.order_metadata(result)
        return result

    def finish_update(self, ctx, res, ns, name, sub, old, result, params, dry, warnings):
        options = {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
        if dry:
            options["dryRun"] = ["All"]
        if params.get("fieldManager"):
            options["fieldManager"] = params["fieldManager"]
        result = self.admit_and_validate(ctx, res, sub, "UPDATE", result, old, ns if res.namespaced else None,
                                         name, dry, options, warnings)
        result = self.check_kind(res, result)
        with self.state.lock:
            cur = self.state.get(res, ns, name)
            if cur is None:
                raise not_found(res, name)
            if cur["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]:
                return None  # raced: caller retries or reports a conflict
            if self.strip_for_compare(cur, res) == self.strip_for_compare(result, res):
                return cur
            if dry:
                return result
            if result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
                self.state.commit(res, "DELETED", result, cur)
                self.after_delete(res, result)
                return result
            self.state.commit(res, "MODIFIED", result, cur)
            if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.unregister_crd(cur)
                self.register_crd(result)
            return result

    def do_update(self, ctx, res, ns, name, sub, new, params):
        dry = self.dry_run_of(params)
        new = self.check_kind(res, new)
        md = new["metadata"]
        if md.get("name") and md["name"] != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (md["name"], name))
        if res.namespaced and md.get("namespace") and md["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        want_rv = md.get("resourceVersion")
        manager = self.manager_of(ctx, params)
        for _ in range(20):
            with self.state.lock:
                old = self.state.get(res, ns, name)
            if old is None:
                raise not_found(res, name)
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if not want_rv and res.is_cr:
                raise invalid(res, name, [{"reason": "FieldValueInvalid",
                                           "message": "Invalid value: 0x0: must be specified for an update",
                                           "field": "metadata.resourceVersion"}])
            warnings = []
            result = self.build_update(ctx, res, old, new, sub, manager, "Update")
            out = self.finish_update(ctx, res, ns, name, sub, old, result, params, dry, warnings)
            if out is not None:
                return 200, out, warnings
            if want_rv:
                raise conflict(res, name)
        raise conflict(res, name)

    def do_patch(self, ctx, res, ns, name, sub, raw, ctype, params):
        dry = self.dry_run_of(params)
        ct = (ctype or "").split(";")[0].strip().lower()
        accepted = ["application/json-patch+json", "application/merge-patch+json"]
        if not res.is_cr:
            accepted.append("application/strategic-merge-patch+json")
        accepted.append("application/apply-patch+yaml")
        if ct not in accepted:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media types include: "
                           + ", ".join(accepted))
        is_apply = ct == "application/apply-patch+yaml"
        force = params.get("force") in ("true", "1")
        if params.get("force") is not None and not is_apply:
            raise invalid(("PatchOptions.meta.k8s.io", "meta.k8s.io", "PatchOptions"), "", [
                {"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch",
                 "field": "force"}])
        if is_apply and not params.get("fieldManager"):
            raise invalid(("PatchOptions.meta.k8s.io", "meta.k8s.io", "PatchOptions"), "", [
                {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                 "field": "fieldManager"}])
        try:
            patch = json.loads(raw.decode("utf-8") if raw else "null")
        except (ValueError, UnicodeDecodeError) as e:
            if is_apply:
                patch = parse_simple_yaml(raw.decode("utf-8", "replace"))
            else:
                raise bad_request("error decoding patch: %s" % e)
        manager = self.manager_of(ctx, params)
        for _ in range(20):
            with self.state.lock:
                old = self.state.get(res, ns, name)
            if old is None:
                if is_apply and sub is None:
                    applied = self.check_kind(res, copy.deepcopy(patch))
                    if applied["metadata"].get("name") and applied["metadata"]["name"] != name:
                        raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                          % (applied["metadata"]["name"], name))
                    applied["metadata"]["name"] = name
                    return self.do_create(ctx, res, ns, applied, params, op_name="Apply", applied=copy.deepcopy(applied))
                raise not_found(res, name)
            warnings = []
            if is_apply:
                applied = self.check_kind(res, copy.deepcopy(patch))
                if applied["metadata"].get("name") and applied["metadata"]["name"] != name:
                    raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                      % (applied["metadata"]["name"], name))
                conflicts = [] if force else self.apply_conflicts(res, old, applied, manager, sub)
                if conflicts:
                    by = {}
                    for m, f in conflicts:
                        by.setdefault(m, []).append(f)
                    if len(conflicts) == 1:
                        m, fs = next(iter(by.items()))
                        msg = "Apply failed with 1 conflict: conflict with %s: %s" % (m, fs[0])
                    else:
                        parts = ["conflicts with %s:\n%s" % (m, "\n".join("- " + f for f in fs)) for m, fs in by.items()]
                        msg = "Apply failed with %d conflicts: %s" % (len(conflicts), "\n".join(parts))
                    raise ApiError(409, "Conflict", msg, {"causes": [
                        {"reason": "FieldManagerConflict", "message": "conflict with %s" % m, "field": f}
                        for m, f in conflicts]})
                merged = deep_merge(old, {k: v for k, v in applied.items() if k != "metadata"})
                amd = {k: v for k, v in applied["metadata"].items() if k in ("labels", "annotations", "ownerReferences", "finalizers")}
                merged["metadata"] = deep_merge(old["metadata"], amd)
                # fields this manager applied before and no longer applies, and nobody else owns: removed
                prev = set()
                others = set()
                for e in old["metadata"].get("managedFields") or []:
                    ps = fields_to_paths(e.get("fieldsV1"))
                    if e.get("manager") == manager and e.get("operation") == "Apply" and (e.get("subresource") or None) == sub:
                        prev |= ps
                    else:
                        others |= ps
                now = field_paths(applied, res, sub)
                for p in sorted(prev - now - others, key=len, reverse=True):
                    delete_at(merged, p)
                    for i in range(len(p) - 1, 1, -1):  # parents left empty go too (labels: {})
                        if value_at(merged, p[:i]) == {}:
                            delete_at(merged, p[:i])
                if force:
                    pass
                result = self.build_update(ctx, res, old, merged, sub, manager, "Apply", applied=applied)
            else:
                try:
                    if ct == "application/json-patch+json":
                        patched = json_patch(old, patch)
                    elif ct == "application/merge-patch+json":
                        if not isinstance(patch, dict):
                            raise bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
                        patched = merge_patch(old, patch)
                    else:
                        if not isinstance(patch, dict):
                            raise bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
                        patched = strategic_merge(old, patch)
                except ApiError:
                    raise
                if not isinstance(patched, dict):
                    raise bad_request("the patched object is not an object")
                prv = (patched.get("metadata") or {}).get("resourceVersion")
                if prv and prv != old["metadata"]["resourceVersion"]:
                    raise conflict(res, name)
                result = self.build_update(ctx, res, old, patched, sub, manager, "Update")
            out = self.finish_update(ctx, res, ns, name, sub, old, result, params, dry, warnings)
            if out is not None:
                return 200, out, warnings
        raise conflict(res, name)

    def after_delete(self, res, obj):
        """Side effects of a removal (caller holds the lock)."""
        if res.gp == ("apiextensions.k8s.io", "customresourcedefinitions"):
            spec = obj.get("spec", {})
            gp = (spec.get("group"), spec.get("names", {}).get("plural"))
            crres = next((r for r in self.state.resources.values() if r.is_cr and r.gp == gp), None)
            if crres is not None:
                for o in list(self.state.store(gp).values()):
                    self.state.commit(crres, "DELETED", copy.deepcopy(o), o)
            self.unregister_crd(obj)
        if res.gp == ("", "namespaces"):
            n = obj["metadata"]["name"]
            for r in list(self.state.resources.values()):
                if not r.namespaced:
                    continue
                for (ons, _), o in list(self.state.store(r.gp).items()):
                    if ons == n and self.state.store(r.gp).get((ons, o["metadata"]["name"])) is o:
                        self.state.commit(r, "DELETED", copy.deepcopy(o), o)
        threading.Thread(target=self.gc, daemon=True).start()

    def gc(self):
        """Background garbage collection of dependents whose owners are all gone."""
        time.sleep(0.05)
        for _ in range(100):
            changed = False
            with self.state.lock:
                uids = self.state.all_uids()
                for r in list(self.state.resources.values()):
                    seen = set()
                    for key, o in list(self.state.store(r.gp).items()):
                        if key in seen:
                            continue
                        seen.add(key)
                        refs = o["metadata"].get("ownerReferences") or []
                        if refs and not any(ref.get("uid") in uids for ref in refs):
                            d = copy.deepcopy(o)
                            self.state.commit(r, "DELETED", d, o)
                            self.after_delete_nogc(r, d)
                            changed = True
            if not changed:
                return

    def after_delete_nogc(self, res, obj):
        if res.gp in (("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")):
            self.after_delete(res, obj)

    def do_delete(self, ctx, res, ns, name, params, body):
        opts = {}
        if body:
            try:
                opts = json.loads(body)
            except ValueError as e:
                raise bad_request("error decoding DeleteOptions: %s" % e)
        if isinstance(opts, dict) and opts.get("dryRun"):
            params = dict(params)
            params["dryRun"] = opts["dryRun"][0] if isinstance(opts["dryRun"], list) and opts["dryRun"] else "All"
        dry = self.dry_run_of(params)
        pre = (opts or {}).get("preconditions") or {}
        with self.state.lock:
            old = self.state.get(res, ns, name)
            if old is None:
                raise not_found(res, name)
            omd = old["metadata"]
            if pre.get("uid") and pre["uid"] != omd.get("uid"):
                raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                               % (pre["uid"], omd.get("uid")))
            if pre.get("resourceVersion") and pre["resourceVersion"] != omd.get("resourceVersion"):
                raise conflict(res, name, "Precondition failed: ResourceVersion in precondition: %s, "
                                          "ResourceVersion in object meta: %s" % (pre["resourceVersion"], omd.get("resourceVersion")))
            if dry:
                return 200, self.deleted_response(res, old)
            if omd.get("finalizers"):
                if omd.get("deletionTimestamp"):
                    return 200, old
                upd = copy.deepcopy(old)
                upd["metadata"]["deletionTimestamp"] = now_rfc3339()
                upd["metadata"]["deletionGracePeriodSeconds"] = 0
                self.order_metadata(upd)
                self.state.commit(res, "MODIFIED", upd, old)
                return 200, upd
            d = copy.deepcopy(old)
            self.state.commit(res, "DELETED", d, old)
            if (opts or {}).get("propagationPolicy") == "Orphan":
                self.orphan(d)
            self.after_delete(res, d)
            return 200, self.deleted_response(res, d)

    def orphan(self, owner):
        uid = owner["metadata"].get("uid")
        for r in list(self.state.resources.values()):
            for o in list(self.state.store(r.gp).values()):
                refs = o["metadata"].get("ownerReferences") or []
                if any(x.get("uid") == uid for x in refs):
                    n = copy.deepcopy(o)
                    n["metadata"]["ownerReferences"] = [x for x in refs if x.get("uid") != uid]
                    if not n["metadata"]["ownerReferences"]:
                        del n["metadata"]["ownerReferences"]
                    self.state.commit(r, "MODIFIED", n, o)

    def deleted_response(self, res, obj):
        if res.gp in (("", "pods"), ("", "namespaces")):
            return obj
        d = {"name": obj["metadata"]["name"]}
        if res.group:
            d["group"] = res.group
        d["kind"] = res.plural
        d["uid"] = obj["metadata"].get("uid")
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d}

    # -- reading
    def list_items(self, res, ns, lsel, fsel):
        with self.state.lock:
            items = [o for (ons, _), o in self.state.store(res.gp).items()
                     if (ns is None or ons == ns) and lsel.matches(o["metadata"].get("labels")) and fsel.matches(o)]
            rv = self.state.rv
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, rv

    @staticmethod
    def obj_key(o):
        md = o["metadata"]
        return (md.get("namespace") + "/" if md.get("namespace") else "") + md["name"]

    def do_list(self, res, ns, params):
        lsel = LabelSelector(params.get("labelSelector"))
        fsel = FieldSelector(params.get("fieldSelector"), res)
        if params.get("resourceVersionMatch") == "Exact" and params.get("resourceVersion"):
            try:
                want = int(params["resourceVersion"])
            except ValueError:
                raise bad_request("invalid resourceVersion")
            if want < self.state.oldest:
                raise ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")
        items, rv = self.list_items(res, ns, lsel, fsel)
        snap_key = None
        start = None
        if params.get("continue"):
            try:
                tok = json.loads(base64.urlsafe_b64decode(params["continue"] + "=" * (-len(params["continue"]) % 4)))
                start, trv = tok["start"], int(tok["rv"])
            except (ValueError, KeyError, TypeError) as e:
                raise bad_request("continue key is not valid: %s" % e)
            if trv != -1 and trv < self.state.oldest:
                fresh = base64.urlsafe_b64encode(json.dumps(
                    {"v": "meta.k8s.io/v1", "rv": -1, "start": start}, separators=(",", ":")).encode()).decode().rstrip("=")
                raise ApiError(410, "Expired",
                               "The provided continue parameter is too old to display a consistent list result. You can "
                               "start a new list without the continue parameter, or use the continue token in this "
                               "response to retrieve the remainder of the results. Continuing with the provided token "
                               "results in an inconsistent list - objects that were created, modified, or deleted "
                               "between the time the first chunk was returned and now may show up in the list.",
                               metadata={"continue": fresh})
            if trv != -1:
                rv = trv
                with self.state.lock:
                    snap = self.snapshots.get((res.gp, ns, trv))
                if snap is not None:
                    items = [o for o in snap if lsel.matches(o["metadata"].get("labels")) and fsel.matches(o)]
            s = start.rstrip("\x00")
            items = [o for o in items if self.obj_key(o) > s]
        meta = {"resourceVersion": str(rv)}
        limit = int(params.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            with self.state.lock:
                key = (res.gp, ns, rv)
                if key not in self.snapshots:
                    self.snapshots[key] = sorted(
                        (o for (ons, _), o in self.state.store(res.gp).items() if ns is None or ons == ns),
                        key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])) \
                        if rv == self.state.rv else None
                    if self.snapshots[key] is None:
                        del self.snapshots[key]
                    while len(self.snapshots) > 64:
                        self.snapshots.pop(next(iter(self.snapshots)))
            rest = len(items) - limit
            items = items[:limit]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"v": "meta.k8s.io/v1", "rv": rv, "start": self.obj_key(items[-1]) + "\x00"},
                separators=(",", ":")).encode()).decode().rstrip("=")
            if lsel.empty() and fsel.empty():
                meta["remainingItemCount"] = rest
        if res.is_cr:
            out_items = items
        else:
            out_items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return {"kind": res.kind + "List", "apiVersion": res.gv, "metadata": meta, "items": out_items}, items

    # -- tables
    def columns(self, res):
        name_col = {"name": "Name", "type": "string", "format": "name",
                    "description": "Name must be unique within a namespace. Is required when creating resources, "
                                   "although some resources may allow a client to request the generation of an "
                                   "appropriate name automatically. Name is primarily intended for creation "
                                   "idempotence and configuration definition. Cannot be updated. More info: "
                                   "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
                    "priority": 0}
        age_col = {"name": "Age", "type": "string", "format": "",
                   "description": "CreationTimestamp is a timestamp representing the server time when this object was "
                                  "created.", "priority": 0}
        if res.is_cr:
            cols = res.crd.get("additionalPrinterColumns")
            if not cols:
                return [name_col, dict(age_col, type="date")], [None, ".metadata.creationTimestamp"]
            defs = [name_col]
            paths = [None]
            for c in cols:
                defs.append({"name": c.get("name"), "type": c.get("type", "string"), "format": c.get("format", ""),
                             "description": c.get("description", ""), "priority": c.get("priority", 0)})
                paths.append(c.get("jsonPath"))
            return defs, paths
        if res.gp == ("", "namespaces"):
            st = {"name": "Status", "type": "string", "format": "", "description": "The status of the namespace",
                  "priority": 0}
            return [name_col, st, age_col], [None, ".status.phase", ".metadata.creationTimestamp"]

        def col(n, desc):
            return {"name": n, "type": "string", "format": "", "description": desc, "priority": 0}
        age = ".metadata.creationTimestamp"
        if res.gp == ("", "pods"):  # k/k pkg/printers/internalversion/printers.go
            def ready(o):
                cs = (o.get("status") or {}).get("containerStatuses") or []
                return "%d/%d" % (sum(1 for c in cs if c.get("ready")), len((o.get("spec") or {}).get("containers") or []))

            def phase(o):
                st = o.get("status") or {}
                return st.get("reason") or st.get("phase") or ""

            def restarts(o):
                return str(sum(c.get("restartCount", 0) for c in (o.get("status") or {}).get("containerStatuses") or []))
            return ([name_col, col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
                     col("Status", "The aggregate status of the containers in this pod."),
                     col("Restarts", "The number of times the containers in this pod have been restarted and when the "
                                     "last container in this pod has restarted."), age_col],
                    [None, ready, phase, restarts, age])
        if res.gp == ("", "configmaps"):
            return ([name_col, col("Data", "Data contains the configuration data."), age_col],
                    [None, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), age])
        if res.gp == ("", "secrets"):
            return ([name_col, col("Type", "The type of the secret"), col("Data", "The number of data entries"), age_col],
                    [None, lambda o: o.get("type", "Opaque"), lambda o: len(o.get("data") or {}), age])
        return [name_col, age_col], [None, age]

    def table(self, res, objs, meta, include):
        defs, paths = self.columns(res)
        rows = []
        for o in objs:
            cells = []
            for d, p in zip(defs, paths):
                if p is None:
                    cells.append(o["metadata"]["name"])
                    continue
                if callable(p):
                    cells.append(p(o))
                    continue
                vals = jsonpath(o, p)
                v = vals[0] if vals else None
                if p == ".metadata.creationTimestamp" or d["type"] == "date":
                    v = human_age(v) if v is not None else None
                elif v is not None and d["type"] == "string" and not isinstance(v, str):
                    v = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                cells.append(v)
            row = {"cells": cells}
            if include == "Object":
                row["object"] = o
            elif include != "None":
                row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                 "metadata": o["metadata"]}
            rows.append(row)
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs,
                "rows": rows}


def parse_simple_yaml(text):
    """YAML apply bodies: parsed with kapi/yamlmini.py (the other stand-in's reader) when it is there."""
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from kapi import yamlmini
    except ImportError:
        raise bad_request("error decoding YAML: no YAML reader available; send the apply patch as JSON")
    try:
        return yamlmini.load(text)
    except Exception as e:  # noqa: BLE001 - any parse failure is the client's
        raise bad_request("error decoding YAML: %s" % e)


# ------------------------------------------------------------------------------------ HTTP layer

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
                if len(data) > MAX_BODY:
                    self.close_connection = True
                    raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is %d" % MAX_BODY)
            return data
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self.close_connection = True
            left = n if n <= 16 * MAX_BODY else 0  # drain a moderate body so the client sees the answer
            while left > 0:
                got = self.rfile.read(min(left, 65536))
                if not got:
                    break
                left -= len(got)
            raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is %d" % MAX_BODY)
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
            if path == "/_fault" and method == "POST":
                # alias used by tests written for kapi/: {"action": "compact" | "dropWatches" | "restart"}
                body = self.read_body()
                try:
                    act = json.loads(body or b"{}").get("action")
                except (ValueError, AttributeError):
                    act = None
                if act not in ("compact", "dropWatches", "restart"):
                    raise bad_request("unknown fault action %r" % act)
                self.fault(method, ctx, json.dumps({act: True}).encode())
                return
            self.si.apply_faults(path)
            body = self.read_body()
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
                self.si.faults["delay"] = float(req["delay"] or 0)
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
            self.send_json(200, {"major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33",
                                 "gitVersion": "v1.33.0-maskmesh-standin", "gitCommit": "0" * 40,
                                 "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
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
            code, out, warnings = self.si.do_create(ctx, core, ns, event_to_core(self.si.check_kind(res, self.parse_obj(body))), params)
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
                sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
                from kapi import protobuf
            except ImportError:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                               "accepted media types include: application/json, application/yaml")
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
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": paths,
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
                    expired = "too old resource version: %d (%d)" % (want, st.oldest + 1)
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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="e2e/apiserver/run", description="In-memory Kubernetes API server stand-in for maskmesh tests")
    ap.add_argument("--listen", default="127.0.0.1:0", help="ADDR:PORT to serve on (port 0: any free port)")
    ap.add_argument("--kubeconfig", help="write a kubeconfig (admin context, bearer token, server CA) to FILE")
    ap.add_argument("--token", help="the admin bearer token (default: random)")
    ap.add_argument("--readonly-token", "--token-readonly", dest="readonly_token",
                    help="a second bearer token that may only get/list/watch")
    ap.add_argument("--tokens", help='file: one "TOKEN USER VERBS [RESOURCES]" per line (VERBS, RESOURCES: '
                                     'comma lists or *); more users with limited rights')
    ap.add_argument("--ca-out", help="also write the CA certificate (PEM) to this file")
    ap.add_argument("--client-ca-file", action="append", metavar="FILE",
                    help="also accept client certificates signed by the CAs in FILE (PEM; repeatable); "
                         "the stand-in's own CA is always accepted")
    ap.add_argument("--client-cert", action="append", metavar="USER[:GROUP,...]",
                    help="issue a client certificate (CN=USER, O=each GROUP) and add kubeconfig contexts "
                         "USER (client-certificate-data) and USER-files (client-certificate files); repeatable")
    ap.add_argument("--history", type=int, default=HISTORY_MAX, help="watch events kept for resuming (default 20000)")
    ap.add_argument("--max-body", type=int, default=MAX_BODY, help="request body limit in bytes (default 3 MiB)")
    ap.add_argument("--service-host", action="append", metavar="NAME.NS.svc=HOST:PORT",
                    help="where webhook clientConfig.service NAME.NS.svc is reached (repeatable)")
    ap.add_argument("--bookmark-interval", type=float, default=5.0,
                    help="seconds between BOOKMARK events on watches with allowWatchBookmarks=true (default 5)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        port = int(port)
    except ValueError:
        ap.error("--listen must be ADDR:PORT")
    globals()["HISTORY_MAX"] = max(10, args.history)
    globals()["MAX_BODY"] = max(1024, args.max_body)
    si = StandIn(args)
    if args.ca_out:
        with open(args.ca_out, "wb") as f:
            f.write(si.ca_pem)

    def on_term(signum, frame):
        threading.Thread(target=si.stop, daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        si.serve(host or "127.0.0.1", port)
    finally:
        shutil.rmtree(si.tmp, ignore_errors=True)
    return 0
