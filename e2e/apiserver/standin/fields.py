"""managedFields (FieldsV1): the field paths of an object, conversions, and the lookups server-side
apply needs.
"""
import copy
import json


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
