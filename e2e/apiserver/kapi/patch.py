"""RFC 6902 JSON patch, RFC 7386 merge patch and Kubernetes strategic merge patch."""

import copy
import json


class PatchError(ValueError):
    pass


# ---------------------------------------------------------------- JSON patch (RFC 6902)

def _unescape(tok):
    return tok.replace('~1', '/').replace('~0', '~')


def _split_pointer(path):
    if path == '':
        return []
    if not path.startswith('/'):
        raise PatchError('invalid JSON pointer %r' % path)
    return [_unescape(t) for t in path[1:].split('/')]


def _index(tok, n, allow_end):
    if tok == '-' and allow_end:
        return n
    if not tok.isdigit() or (len(tok) > 1 and tok[0] == '0'):
        raise PatchError('invalid array index %r' % tok)
    i = int(tok)
    if i > n or (i == n and not allow_end):
        raise PatchError('array index %d out of bounds' % i)
    return i


def _get(doc, toks):
    cur = doc
    for t in toks:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError('missing value at /%s' % '/'.join(toks))
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(t, len(cur), False)]
        else:
            raise PatchError('cannot traverse into a scalar at /%s' % '/'.join(toks))
    return cur


def _add(doc, toks, value):
    if not toks:
        return value
    parent = _get(doc, toks[:-1])
    last = toks[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), True), value)
    else:
        raise PatchError('cannot add to a scalar')
    return doc


def _remove(doc, toks):
    if not toks:
        raise PatchError('cannot remove the whole document')
    parent = _get(doc, toks[:-1])
    last = toks[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError('unable to remove nonexistent key: %s: missing value' % last)
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(last, len(parent), False))
    raise PatchError('cannot remove from a scalar')


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise PatchError('a JSON patch must be an array of operations')
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or 'op' not in op:
            raise PatchError('each JSON patch operation must be an object with "op"')
        kind = op['op']
        if 'path' not in op:
            raise PatchError('operation %s is missing "path"' % kind)
        toks = _split_pointer(op['path'])
        if kind == 'add':
            if 'value' not in op:
                raise PatchError('add operation does not apply: missing value')
            doc = _add(doc, toks, copy.deepcopy(op['value']))
        elif kind == 'remove':
            _remove(doc, toks)
        elif kind == 'replace':
            if 'value' not in op:
                raise PatchError('replace operation does not apply: missing value')
            if not toks:
                doc = copy.deepcopy(op['value'])
                continue
            parent = _get(doc, toks[:-1])
            if isinstance(parent, dict):
                if toks[-1] not in parent:
                    raise PatchError('replace operation does not apply: doc is missing key: %s' % op['path'])
                parent[toks[-1]] = copy.deepcopy(op['value'])
            elif isinstance(parent, list):
                parent[_index(toks[-1], len(parent), False)] = copy.deepcopy(op['value'])
            else:
                raise PatchError('replace operation does not apply: not a container')
        elif kind == 'move':
            frm = _split_pointer(op.get('from', ''))
            v = _remove(doc, frm)
            doc = _add(doc, toks, v)
        elif kind == 'copy':
            frm = _split_pointer(op.get('from', ''))
            doc = _add(doc, toks, copy.deepcopy(_get(doc, frm)))
        elif kind == 'test':
            if _get(doc, toks) != op.get('value'):
                raise PatchError('testing value %s failed: test failed' % op['path'])
        else:
            raise PatchError('Unexpected kind: %s' % kind)
    return doc


# ---------------------------------------------------------------- merge patch (RFC 7386)

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---------------------------------------------------------------- strategic merge patch

# Merge keys of the built-in types we serve (field name -> merge key). Lists not named here
# are replaced as a whole (atomic), as the Go struct tags of those types say.
SMP_MERGE_KEYS = {
    'containers': 'name',
    'initContainers': 'name',
    'ephemeralContainers': 'name',
    'volumes': 'name',
    'env': 'name',
    'volumeMounts': 'mountPath',
    'volumeDevices': 'devicePath',
    'ports': 'containerPort',
    'imagePullSecrets': 'name',
    'ownerReferences': 'uid',
    'conditions': 'type',
    'hostAliases': 'ip',
    'containerStatuses': 'name',
    'initContainerStatuses': 'name',
    'resourceClaims': 'name',
    'topologySpreadConstraints': 'topologyKey',
    'readinessGates': None,
}
# Primitive lists with patchStrategy "merge" (treated as sets).
SMP_MERGE_PRIMITIVES = {'finalizers'}


def _key_of(field):
    return SMP_MERGE_KEYS.get(field)


def strategic_merge(original, patch, field=None):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(original, dict):
        original = {}
    directive = patch.get('$patch')
    if directive == 'replace':
        p = {k: v for k, v in patch.items() if k != '$patch'}
        return _strip_directives(p)
    if directive == 'delete':
        return None
    out = copy.deepcopy(original)
    retain = patch.get('$retainKeys')
    for k, v in patch.items():
        if k in ('$patch', '$retainKeys'):
            continue
        if k.startswith('$setElementOrder/'):
            continue
        if k.startswith('$deleteFromPrimitiveList/'):
            name = k.split('/', 1)[1]
            if isinstance(out.get(name), list) and isinstance(v, list):
                out[name] = [x for x in out[name] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
            continue
        cur = out.get(k)
        if isinstance(v, dict):
            r = strategic_merge(cur, v, k)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
        elif isinstance(v, list):
            out[k] = _merge_list(cur, v, k)
        else:
            out[k] = copy.deepcopy(v)
    for k, v in patch.items():
        if k.startswith('$setElementOrder/'):
            name = k.split('/', 1)[1]
            if isinstance(out.get(name), list) and isinstance(v, list):
                out[name] = _reorder(out[name], v, _key_of(name))
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _strip_directives(v):
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items() if not k.startswith('$')}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v


def _merge_list(cur, patch, field):
    key = _key_of(field)
    if not isinstance(cur, list):
        cur = []
    # a list-level {"$patch": "replace"} item replaces the whole list
    if any(isinstance(x, dict) and x.get('$patch') == 'replace' and len(x) == 1 for x in patch):
        return [_strip_directives(x) for x in patch if not (isinstance(x, dict) and x.get('$patch') == 'replace')]
    if field in SMP_MERGE_PRIMITIVES:
        out = list(cur)
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    if key is None or not all(isinstance(x, dict) for x in patch):
        return [_strip_directives(x) for x in patch]
    out = copy.deepcopy(cur)
    for item in patch:
        kv = item.get(key)
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == kv), None)
        if item.get('$patch') == 'delete':
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_strip_directives(item))
        else:
            out[idx] = strategic_merge(out[idx], item, None)
    return out


def _reorder(items, order, key):
    def ident(x):
        return x.get(key) if (key and isinstance(x, dict)) else json.dumps(x, sort_keys=True)
    wanted = [ident(o) if not (key and isinstance(o, dict)) else o.get(key) for o in order]
    pos = {w: i for i, w in enumerate(wanted)}
    listed = sorted([x for x in items if ident(x) in pos], key=lambda x: pos[ident(x)])
    rest = [x for x in items if ident(x) not in pos]
    return listed + rest
