"""Constants, time helpers, the ApiError exception and the Status bodies it becomes, and Res (one
served resource type).
"""
import datetime
import json


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
        self.empty_details = False  # send "details": {} (kube-apiserver does for some 422s)

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": self.metadata, "status": "Failure"}
        if self.message is not None:
            st["message"] = self.message
        if self.reason:
            st["reason"] = self.reason
        if self.details is not None and (self.details or self.empty_details):
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


def precondition_conflict(res, name, msg):
    """A delete precondition that fails: kube-apiserver's rest.BeforeDelete names the kind, not
    the resource (GroupResource{Group, Resource: Kind}), in the message and in details.kind
    (recorded: configmap-delete-precondition-409)."""
    d = {"name": name}
    if res.group:
        d["group"] = res.group
    d["kind"] = res.kind
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (res.group_kind(), name, msg), d)


def patch_unprocessable():
    """A JSON patch the server cannot apply (unknown op, failed test): 422 with an empty
    details object (recorded: configmap-patch-json-bad-op)."""
    e = ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {})
    e.empty_details = True
    return e


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
