"""metadata.managedFields (FieldsV1) and server-side apply.

A field set is a Python set of paths; a path is a tuple of FieldsV1 elements
('f:spec', 'k:{"name":"x"}', 'f:image') and a path ending in '.' stands for the node itself
(the FieldsV1 "." member). List semantics (associative / set / atomic) and atomic maps come
from a `TypeInfo` (built-in tables or the CRD schema).
"""

import copy
import json

from . import schema as schemamod

# Fields the apiserver strips before tracking (apiserver fieldmanager stripMeta).
STRIPPED_META = {'name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
                 'selfLink', 'managedFields', 'deletionTimestamp', 'deletionGracePeriodSeconds'}


class TypeInfo:
    """List/map semantics for one resource type."""

    # built-in associative lists: field name -> keys (regardless of position)
    BUILTIN_MAP_LISTS = {
        'containers': ['name'], 'initContainers': ['name'], 'ephemeralContainers': ['name'],
        'volumes': ['name'], 'env': ['name'], 'volumeMounts': ['mountPath'],
        'volumeDevices': ['devicePath'], 'imagePullSecrets': ['name'],
        'conditions': ['type'], 'hostAliases': ['ip'], 'containerStatuses': ['name'],
        'initContainerStatuses': ['name'], 'podIPs': ['ip'], 'hostIPs': ['ip'],
        'resourceClaims': ['name'], 'webhooks': ['name'],
    }
    BUILTIN_ATOMIC_MAPS = {'podSelector', 'namespaceSelector', 'selector', 'objectSelector',
                           'labelSelector', 'regarding', 'involvedObject', 'related'}
    BUILTIN_ATOMIC_LISTS = {'ingress', 'egress', 'policyTypes', 'tolerations', 'rules', 'args', 'command'}

    def __init__(self, openapi_schema=None, builtin=True, status_reset=False):
        self.schema = openapi_schema
        self.builtin = builtin
        self.status_reset = status_reset

    def list_kind(self, path):
        """path: tuple of field names ('[]' for list items). -> ('map', keys)|('set',)|('atomic',)"""
        name = path[-1] if path else ''
        if path == ('metadata', 'ownerReferences'):
            return ('map', ['uid'])
        if path == ('metadata', 'finalizers'):
            return ('set', None)
        if self.schema is not None and path and path[0] != 'metadata':
            r = schemamod.list_semantics(self.schema, list(path))
            return r or ('atomic', None)
        if not self.builtin:
            return ('atomic', None)
        if name == 'ports' and any(c in path for c in ('containers', 'initContainers', 'ephemeralContainers')):
            return ('map', ['containerPort', 'protocol'])
        if name in self.BUILTIN_MAP_LISTS:
            return ('map', self.BUILTIN_MAP_LISTS[name])
        return ('atomic', None)

    def list_item_atomic(self, path):
        # ownerReferences items are atomic (+structType=atomic on OwnerReference)
        return path == ('metadata', 'ownerReferences')

    def map_atomic(self, path):
        if not path or path[0] == 'metadata':
            return False
        if self.schema is not None:
            return schemamod.map_is_atomic(self.schema, list(path))
        return self.builtin and path[-1] in self.BUILTIN_ATOMIC_MAPS


def _key_elem(item, keys):
    return 'k:' + json.dumps({k: item.get(k) for k in keys if k in item}, separators=(',', ':'),
                             sort_keys=False)


def _value_elem(v):
    return 'v:' + json.dumps(v, separators=(',', ':'), sort_keys=True)


def field_paths(obj, ti, mode, subresource=None):
    """All member paths of `obj`. mode 'apply': leaves and list items; 'update': also every
    container node ('.' members) except metadata and, for built-ins, the top-level spec/status."""
    out = set()
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        if k in ('apiVersion', 'kind'):
            continue
        if subresource == 'status' and k != 'status':
            continue
        if subresource is None and k == 'status' and ti.status_reset:
            continue
        if k == 'metadata':
            if not isinstance(v, dict):
                continue
            for mk, mv in v.items():
                if mk in STRIPPED_META:
                    continue
                _walk(('f:metadata', 'f:' + mk), ('metadata', mk), mv, ti, mode, out)
            continue
        top_dot = not (ti.builtin and ti.schema is None and k in ('spec', 'status'))
        _walk(('f:' + k,), (k,), v, ti, mode, out, dot=top_dot)
    return out


def _walk(fpath, tpath, v, ti, mode, out, dot=True):
    if isinstance(v, dict) and v and not ti.map_atomic(tpath):
        if mode == 'update' and dot:
            out.add(fpath + ('.',))
        for k, item in v.items():
            _walk(fpath + ('f:' + k,), tpath + (k,), item, ti, mode, out)
        return
    if isinstance(v, list) and v:
        kind = ti.list_kind(tpath)
        if kind[0] == 'map' and all(isinstance(i, dict) for i in v):
            if mode == 'update' and dot:
                out.add(fpath + ('.',))
            for item in v:
                ip = fpath + (_key_elem(item, kind[1]),)
                if ti.list_item_atomic(tpath) or not item:
                    out.add(ip)
                    continue
                out.add(ip + ('.',))
                for k, iv in item.items():
                    _walk(ip + ('f:' + k,), tpath + ('[]', k), iv, ti, mode, out)
            return
        if kind[0] == 'set':
            if mode == 'update' and dot:
                out.add(fpath + ('.',))
            for item in v:
                out.add(fpath + (_value_elem(item),))
            return
    out.add(fpath)


def to_fieldsv1(paths):
    tree = {}
    for p in sorted(paths):
        node = tree
        for el in p:
            node = node.setdefault(el, {})
    return _sorted_tree(tree)


def _sorted_tree(t):
    # "." first, then the other members in byte order (as apiserver serialises them)
    keys = sorted(t, key=lambda k: ('' if k == '.' else '1' + k))
    return {k: _sorted_tree(t[k]) for k in keys}


def from_fieldsv1(tree, prefix=()):
    out = set()
    if not isinstance(tree, dict):
        return out
    for k, v in tree.items():
        p = prefix + (k,)
        if k == '.':
            out.add(p)
        elif not v:
            out.add(p)
        else:
            out |= from_fieldsv1(v, p)
    return out


_MISSING = object()


def value_at(obj, path):
    """The value `path` designates in obj, or _MISSING. A '.' member designates its node."""
    cur = obj
    for el in path:
        if el == '.':
            return cur
        if el.startswith('f:'):
            if not isinstance(cur, dict) or el[2:] not in cur:
                return _MISSING
            cur = cur[el[2:]]
        elif el.startswith('k:'):
            want = json.loads(el[2:])
            if not isinstance(cur, list):
                return _MISSING
            for item in cur:
                if isinstance(item, dict) and all(item.get(k) == w for k, w in want.items()):
                    cur = item
                    break
            else:
                return _MISSING
        elif el.startswith('v:'):
            want = json.loads(el[2:])
            if not isinstance(cur, list) or want not in cur:
                return _MISSING
            cur = want
        else:
            return _MISSING
    return cur


def _presence(obj, path):
    v = value_at(obj, path)
    if path and path[-1] == '.':
        return v is not _MISSING
    return v


def delete_path(obj, path):
    """Remove what `path` designates; then drop containers left empty along the way."""
    if not path:
        return
    if path[-1] == '.':
        path = path[:-1]
    parents = []
    cur = obj
    for el in path[:-1]:
        parents.append((cur, el))
        nxt = value_at(cur, (el,))
        if nxt is _MISSING:
            return
        cur = nxt
    last = path[-1]
    _remove_elem(cur, last)
    # clean empty containers (not the object root)
    for parent, el in reversed(parents):
        child = value_at(parent, (el,))
        if child in ({}, []) and not (len(parents) and parent is obj and el in ('f:metadata',)):
            _remove_elem(parent, el)
        else:
            break


def _remove_elem(container, el):
    if el.startswith('f:') and isinstance(container, dict):
        container.pop(el[2:], None)
    elif el.startswith('k:') and isinstance(container, list):
        want = json.loads(el[2:])
        for i, item in enumerate(container):
            if isinstance(item, dict) and all(item.get(k) == w for k, w in want.items()):
                container.pop(i)
                return
    elif el.startswith('v:') and isinstance(container, list):
        want = json.loads(el[2:])
        if want in container:
            container.remove(want)


def structural_merge(live, cfg, ti, tpath=()):
    """Merge an applied configuration into a live object (SSA semantics)."""
    if isinstance(cfg, dict) and isinstance(live, dict) and not ti.map_atomic(tpath):
        out = copy.deepcopy(live)
        for k, v in cfg.items():
            out[k] = structural_merge(live.get(k), v, ti, tpath + (k,)) if k in live else copy.deepcopy(v)
        return out
    if isinstance(cfg, list) and isinstance(live, list):
        kind = ti.list_kind(tpath)
        if kind[0] == 'map' and all(isinstance(i, dict) for i in cfg + live):
            keys = kind[1]
            out = copy.deepcopy(live)
            for item in cfg:
                ident = {k: item.get(k) for k in keys}
                for i, o in enumerate(out):
                    if {k: o.get(k) for k in keys} == ident:
                        out[i] = item if ti.list_item_atomic(tpath) else structural_merge(o, item, ti, tpath + ('[]',))
                        break
                else:
                    out.append(copy.deepcopy(item))
            return out
        if kind[0] == 'set':
            out = list(live)
            for x in cfg:
                if x not in out:
                    out.append(copy.deepcopy(x))
            return out
    return copy.deepcopy(cfg)


def path_string(path):
    """fieldpath.Path.String(): .spec.rules[name="card"].action"""
    s = ''
    for el in path:
        if el == '.':
            continue
        if el.startswith('f:'):
            s += '.' + el[2:]
        elif el.startswith('k:'):
            kv = json.loads(el[2:])
            s += '[' + ','.join('%s=%s' % (k, json.dumps(v)) for k, v in kv.items()) + ']'
        elif el.startswith('v:'):
            s += '[=' + el[2:] + ']'
    return s


class ApplyConflict(Exception):
    def __init__(self, conflicts):
        super().__init__('apply conflict')
        self.conflicts = conflicts  # list of (entry, path)


def _entry_key(e):
    return (e.get('manager'), e.get('operation'), e.get('subresource', ''), e.get('apiVersion'))


def print_manager(e):
    s = json.dumps(e.get('manager', ''))
    if e.get('subresource'):
        s += ' with subresource %s' % json.dumps(e['subresource'])
    if e.get('operation') == 'Update':
        s += ' using %s' % e.get('apiVersion')
    return s


def conflict_message(conflicts):
    if len(conflicts) == 1:
        e, p = conflicts[0]
        return 'Apply failed with 1 conflict: conflict with %s: %s' % (print_manager(e), path_string(p))
    by = {}
    for e, p in conflicts:
        by.setdefault(print_manager(e), []).append(path_string(p))
    msgs = []
    for m in sorted(by):
        msgs.append('conflicts with %s:' % m)
        msgs.extend('- %s' % p for p in by[m])
    return 'Apply failed with %d conflicts: %s' % (len(conflicts), '\n'.join(msgs))


def conflict_causes(conflicts):
    return [{'reason': 'FieldManagerConflict', 'message': 'conflict with %s' % print_manager(e),
             'field': path_string(p)} for e, p in conflicts]


def _entries(obj):
    out = []
    for e in (obj.get('metadata') or {}).get('managedFields') or []:
        if isinstance(e, dict):
            out.append(dict(e, _set=from_fieldsv1(e.get('fieldsV1') or {})))
    return out


def _store_entries(obj, entries, now):
    res = []
    for e in entries:
        s = e.pop('_set')
        if not s:
            continue
        e['fieldsType'] = 'FieldsV1'
        e['fieldsV1'] = to_fieldsv1(s)
        res.append(e)
    md = obj.setdefault('metadata', {})
    if res:
        md['managedFields'] = [_ordered_entry(e) for e in res]
    else:
        md.pop('managedFields', None)


def _ordered_entry(e):
    out = {}
    for k in ('manager', 'operation', 'apiVersion', 'time', 'fieldsType', 'fieldsV1', 'subresource'):
        if k in e and e[k] not in (None, ''):
            out[k] = e[k]
    return out


def record_update(old, new, manager, api_version, now, ti, subresource=None):
    """Track a non-apply write (create when old is None). Mutates and returns new."""
    entries = _entries(old) if old is not None else []
    old_paths = field_paths(old, ti, 'update', subresource) if old is not None else set()
    new_paths = field_paths(new, ti, 'update', subresource)
    changed = set()
    for p in new_paths:
        if p not in old_paths or _presence(old, p) != _presence(new, p):
            changed.add(p)
    removed = old_paths - new_paths
    mine = None
    for e in entries:
        e['_set'] -= removed
        if _entry_key(e) == (manager, 'Update', subresource or '', api_version):
            mine = e
        else:
            e['_set'] -= changed
    if changed:
        if mine is None:
            mine = {'manager': manager, 'operation': 'Update', 'apiVersion': api_version,
                    'subresource': subresource or '', '_set': set()}
            entries.append(mine)
        mine['_set'] |= changed
        mine['time'] = now
    for e in entries:
        if not e.get('time'):
            e['time'] = now
    _store_entries(new, entries, now)
    return new


def apply(live, config, manager, api_version, force, now, ti, subresource=None):
    """Server-side apply of `config` onto `live` (None: create). Returns the new object."""
    entries = _entries(live) if live is not None else []
    cfg_paths = field_paths(config, ti, 'apply', subresource)
    base = copy.deepcopy(live) if live is not None else {}
    conflicts = []
    mine = None
    for e in entries:
        if _entry_key(e) == (manager, 'Apply', subresource or '', api_version) or (
                e.get('manager') == manager and e.get('operation') == 'Apply' and (e.get('subresource') or '') == (subresource or '')):
            mine = e
            continue
        for p in sorted(e['_set'] & cfg_paths):
            lv = value_at(base, p)
            cv = value_at(config, p)
            if p[-1] == '.':
                continue
            if lv is not _MISSING and lv != cv:
                conflicts.append((e, p))
    if conflicts and not force:
        raise ApplyConflict([(dict((k, v) for k, v in e.items() if k != '_set'), p) for e, p in conflicts])
    prev = mine['_set'] if mine else set()
    others_owned = set()
    for e in entries:
        if e is not mine:
            if force:
                e['_set'] -= {p for ee, p in conflicts if ee is e}
            others_owned |= e['_set']
    removed = prev - cfg_paths
    for p in sorted(removed, key=len, reverse=True):
        if p in others_owned or any(o[:len(p)] == p for o in others_owned):
            continue
        delete_path(base, p)
    merged = structural_merge(base, config, ti)
    if mine is None:
        mine = {'manager': manager, 'operation': 'Apply', 'apiVersion': api_version,
                'subresource': subresource or ''}
        entries.append(mine)
    mine['_set'] = set(cfg_paths)
    mine['apiVersion'] = api_version
    mine['time'] = now
    # other managers' '.' members whose node disappeared go too
    for e in entries:
        if e is not mine:
            e['_set'] = {p for p in e['_set'] if value_at(merged, p) is not _MISSING}
    md = merged.setdefault('metadata', {})
    md.pop('managedFields', None)
    _store_entries(merged, entries, now)
    return merged
