"""managedFields (FieldsV1): the field paths of an object, conversions, and the lookups server-side
apply needs.
"""
import copy
import json


TRACKED_META = ("labels", "annotations", "ownerReferences", "finalizers", "generateName")


# structs whose fields are owned as one (+structType=atomic: ObjectReference in events,
# recorded sample event-create-events-v1; a NetworkPolicy's podSelector)
ATOMIC = {("networking.k8s.io", "networkpolicies"): {("f:spec", "f:podSelector")},
          ("events.k8s.io", "events"): {("f:regarding",), ("f:related",)},
          ("", "events"): {("f:involvedObject",), ("f:related",)}}
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


def _schema_of(res):
    """A custom resource's openAPIV3Schema (None for built-ins)."""
    if not res.is_cr:
        return None
    return ((res.crd or {}).get("schema") or {}).get("openAPIV3Schema")


def _set_item(x):
    return "v:" + json.dumps(x, separators=(",", ":"))


def field_paths(obj, res, sub):
    """Leaf field paths (tuples of 'f:x') an object sets; lists and atomic structs are leaves.
    A custom resource follows its schema as structured-merge-diff does (recorded samples
    maskingpolicy-*): x-kubernetes-list-type map -> items keyed k:{...}, set -> v:<value>
    leaves, atomic or unset -> one leaf; x-kubernetes-map-type atomic -> one leaf."""
    out = set()
    atomic = ATOMIC.get(res.gp, ())
    top = _schema_of(res)

    def walk(v, prefix, sch=None):
        if sch is not None:
            return walk_schema(v, prefix, sch)
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

    def walk_schema(v, prefix, sch):
        if isinstance(v, dict) and v and sch.get("x-kubernetes-map-type") != "atomic" and \
                (sch.get("properties") or isinstance(sch.get("additionalProperties"), dict)):
            props = sch.get("properties") or {}
            for k, x in v.items():
                sub_sch = props.get(k) or (sch.get("additionalProperties") if isinstance(
                    sch.get("additionalProperties"), dict) else None) or {}
                walk_schema(x, prefix + ("f:" + k,), sub_sch)
        elif isinstance(v, list) and v and sch.get("x-kubernetes-list-type") == "set":
            for x in v:
                out.add(prefix + (_set_item(x),))
        elif isinstance(v, list) and v and sch.get("x-kubernetes-list-type") == "map" and \
                all(isinstance(x, dict) for x in v):
            keys = sch.get("x-kubernetes-list-map-keys") or []
            for x in v:
                k = "k:" + json.dumps({kk: x.get(kk) for kk in sorted(keys)}, separators=(",", ":"))
                walk_schema(x, prefix + (k,), sch.get("items") or {})
        else:
            out.add(prefix)

    props = (top or {}).get("properties") or {}
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
        walk(v, ("f:" + k,), props.get(k) if top is not None else None)
    return out


def value_at(obj, path):
    cur = obj
    for p in path:
        if p.startswith("v:") and isinstance(cur, list):
            return json.loads(p[2:]) if any(_set_item(x) == p for x in cur) else None
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
    if last.startswith("v:") and isinstance(cur, list):
        cur[:] = [x for x in cur if _set_item(x) != last]
    elif last.startswith("k:") and isinstance(cur, list):
        i = _find_keyed(cur, last)
        if i is not None:
            cur.pop(i)
    elif isinstance(cur, dict):
        cur.pop(last[2:], None)


# built-in fields whose own entry "." an Update does not record (recorded samples: a pod's
# f:containers has none, its f:ports has one; a top-level struct such as f:spec has none,
# a ConfigMap's f:data map has one)
TOP_DOTS_BUILTIN = ("f:data", "f:binaryData", "f:stringData")
NO_DOT_BUILTIN = ("f:containers",)


def paths_to_fields(paths, dots, is_cr=True):
    root = {}
    for p in sorted(paths):
        cur = root
        for i, e in enumerate(p):
            cur = cur.setdefault(e, {})
            if not dots or i == len(p) - 1 or (i == 0 and e == "f:metadata"):
                continue
            if not is_cr and ((i == 0 and e not in TOP_DOTS_BUILTIN) or e in NO_DOT_BUILTIN):
                continue
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
