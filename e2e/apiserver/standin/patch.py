"""Request body transforms: RFC 7386 merge patch, strategic merge patch (built-ins), RFC 6902 JSON
patch, YAML apply bodies.
"""
import copy

from . import yamlmini
from .wire import ApiError, MERGE_KEYS, bad_request


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


def check_apply_escapes(raw):
    """kube-apiserver reads every apply body as YAML (sigs.k8s.io/yaml, YAML 1.1), JSON ones
    too, and YAML 1.1 has no \\/ escape: a JSON body with one is refused (json-c writes it
    unless told not to; found on kube-apiserver v1.37.2, the recording apply-slash-escape)."""
    text = raw.decode("utf-8", "replace") if raw else ""
    i = 0
    while True:
        i = text.find("\\", i)
        if i < 0 or i + 1 >= len(text):
            return
        if text[i + 1] == "/":
            raise bad_request("error decoding patch: error converting YAML to JSON: yaml: "
                              "found unknown escape character")
        i += 2


def parse_simple_yaml(text):
    """YAML apply bodies (application/apply-patch+yaml), read with yamlmini's YAML subset."""
    try:
        return yamlmini.load(text)
    except Exception as e:  # noqa: BLE001 - any parse failure is the client's
        raise bad_request("error decoding YAML: %s" % e)
