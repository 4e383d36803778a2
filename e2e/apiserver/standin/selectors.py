"""Label and field selectors, and the JSONPath subset of additionalPrinterColumns."""
import json
import re

from .wire import bad_request


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
