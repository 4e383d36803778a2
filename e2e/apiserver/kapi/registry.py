"""Served resource types: built-ins and CRD-defined ones; Table conversion."""

import datetime
import re

from . import fieldmanager

ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']
NS_VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']


class ResourceType:
    def __init__(self, group, version, resource, kind, singular, namespaced, short_names=(),
                 categories=(), verbs=ALL_VERBS, status=False, crd=None, generation=False,
                 storage=None, create_on_update=False, unconditional_update=True,
                 return_deleted=False, columns=None, schema=None, field_labels=()):
        self.group = group
        self.version = version
        self.resource = resource
        self.kind = kind
        self.singular = singular
        self.namespaced = namespaced
        self.short_names = list(short_names)
        self.categories = list(categories)
        self.verbs = list(verbs)
        self.status = status
        self.crd = crd                      # the CRD object for custom resources
        self.generation = generation
        self.storage = storage or (group, resource)   # shared storage (events)
        self.create_on_update = create_on_update
        self.unconditional_update = unconditional_update
        self.return_deleted = return_deleted
        self.columns = columns
        self.schema = schema                # openAPIV3Schema for custom resources
        self.field_labels = set(field_labels) | {'metadata.name', 'metadata.namespace'}
        self.typeinfo = fieldmanager.TypeInfo(schema, builtin=crd is None, status_reset=status)

    @property
    def is_cr(self):
        return self.crd is not None

    @property
    def api_version(self):
        return '%s/%s' % (self.group, self.version) if self.group else self.version

    @property
    def qualified(self):
        """resource.group as in error messages (just resource for the core group)."""
        return '%s.%s' % (self.resource, self.group) if self.group else self.resource

    @property
    def group_kind(self):
        return '%s.%s' % (self.kind, self.group) if self.group else self.kind

    def discovery(self):
        d = {'name': self.resource, 'singularName': self.singular, 'namespaced': self.namespaced,
             'kind': self.kind, 'verbs': self.verbs}
        if self.short_names:
            d['shortNames'] = self.short_names
        if self.categories:
            d['categories'] = self.categories
        return d


# ------------------------------------------------------------------------- time helpers

def parse_time(s):
    if not isinstance(s, str):
        return None
    try:
        s2 = s.replace('Z', '+00:00')
        if '.' in s2:
            head, _, tail = s2.partition('.')
            frac = re.match(r'\d+', tail).group(0)
            s2 = head + '.' + frac[:6].ljust(6, '0') + tail[len(frac):]
        return datetime.datetime.fromisoformat(s2)
    except (ValueError, AttributeError):
        return None


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration"""
    s = int(seconds)
    if s < -1:
        return '<invalid>'
    if s < 0:
        return '0s'
    if s < 120:
        return '%ds' % s
    minutes = s // 60
    if minutes < 10:
        sec = s % 60
        return '%dm' % minutes if sec == 0 else '%dm%ds' % (minutes, sec)
    if minutes < 180:
        return '%dm' % minutes
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return '%dh' % hours if m == 0 else '%dh%dm' % (hours, m)
    if hours < 48:
        return '%dh' % hours
    if hours < 24 * 8:
        h = hours % 24
        return '%dd' % (hours // 24) if h == 0 else '%dd%dh' % (hours // 24, h)
    if hours < 24 * 365 * 2:
        return '%dd' % (hours // 24)
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return '%dy' % (hours // 24 // 365) if dy == 0 else '%dy%dd' % (hours // 24 // 365, dy)
    return '%dy' % (hours // 24 // 365)


def age(ts):
    t = parse_time(ts)
    if t is None:
        return '<unknown>'
    now = datetime.datetime.now(datetime.timezone.utc)
    return human_duration((now - t).total_seconds())


# ------------------------------------------------------------------------- JSONPath

class JSONPathError(ValueError):
    pass


def _jp_tokens(expr):
    expr = expr.strip()
    if expr.startswith('{') and expr.endswith('}'):
        expr = expr[1:-1]
    if expr.startswith('$'):
        expr = expr[1:]
    toks = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == '.':
            if expr[i:i + 2] == '..':
                toks.append(('recurse', None))
                i += 2
                continue
            i += 1
            m = re.match(r'[A-Za-z0-9_\-/*]+', expr[i:])
            if m:
                toks.append(('field', m.group(0)))
                i += m.end()
        elif c == '[':
            j = expr.find(']', i)
            if expr[i + 1:i + 3] == '?(':
                depth = 0
                j = i
                while j < len(expr):
                    if expr[j] == '(':
                        depth += 1
                    elif expr[j] == ')':
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                cond = expr[i + 3:j]
                toks.append(('filter', cond))
                i = j + 2
                continue
            if j < 0:
                raise JSONPathError('unterminated [ in %r' % expr)
            inner = expr[i + 1:j].strip()
            if inner == '*':
                toks.append(('wild', None))
            elif inner[:1] in '\'"':
                toks.append(('field', inner[1:-1]))
            elif re.match(r'^-?\d+$', inner):
                toks.append(('index', int(inner)))
            else:
                raise JSONPathError('unsupported subscript [%s]' % inner)
            i = j + 1
        else:
            m = re.match(r'[A-Za-z0-9_\-/]+', expr[i:])
            if not m:
                raise JSONPathError('unexpected %r in %r' % (c, expr))
            toks.append(('field', m.group(0)))
            i += m.end()
    return toks


_FILTER_RE = re.compile(r'^\s*@((?:\.[A-Za-z0-9_\-/]+)+)\s*(==|!=)\s*(?:"([^"]*)"|\'([^\']*)\'|(-?[0-9.]+|true|false))\s*$')


def _filter_ok(item, cond):
    m = _FILTER_RE.match(cond)
    if not m:
        m2 = re.match(r'^\s*@((?:\.[A-Za-z0-9_\-/]+)+)\s*$', cond)
        if m2:
            return _path_get(item, m2.group(1)) is not None
        raise JSONPathError('unsupported filter %r' % cond)
    actual = _path_get(item, m.group(1))
    if m.group(3) is not None or m.group(4) is not None:
        want = m.group(3) if m.group(3) is not None else m.group(4)
    else:
        lit = m.group(5)
        want = {'true': True, 'false': False}.get(lit, None)
        if want is None:
            want = float(lit) if '.' in lit else int(lit)
    eq = actual == want
    return eq if m.group(2) == '==' else not eq


def _path_get(obj, dotted):
    cur = obj
    for p in dotted.strip('.').split('.'):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def jsonpath(obj, expr):
    """Evaluate a (subset) JSONPath; returns the list of results."""
    cur = [obj]
    for kind, arg in _jp_tokens(expr):
        nxt = []
        for v in cur:
            if kind == 'field':
                if arg == '*':
                    if isinstance(v, dict):
                        nxt.extend(v.values())
                elif isinstance(v, dict) and arg in v:
                    nxt.append(v[arg])
            elif kind == 'index':
                if isinstance(v, list) and -len(v) <= arg < len(v):
                    nxt.append(v[arg])
            elif kind == 'wild':
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, dict):
                    nxt.extend(v.values())
            elif kind == 'filter':
                items = v if isinstance(v, list) else (list(v.values()) if isinstance(v, dict) else [])
                nxt.extend(i for i in items if isinstance(i, dict) and _filter_ok(i, arg))
            elif kind == 'recurse':
                stack = [v]
                while stack:
                    x = stack.pop()
                    nxt.append(x)
                    if isinstance(x, dict):
                        stack.extend(reversed(list(x.values())))
                    elif isinstance(x, list):
                        stack.extend(reversed(x))
        cur = nxt
    return cur


# ------------------------------------------------------------------------- Tables

def _col(name, typ='string', fmt='', desc='', priority=0):
    return {'name': name, 'type': typ, 'format': fmt, 'description': desc, 'priority': priority}


NAME_COL = _col('Name', fmt='name', desc='Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names')
AGE_COL = _col('Age', desc='CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata')


def _md(o):
    return o.get('metadata') or {}


def _pod_cells(o):
    st = o.get('status') or {}
    cs = st.get('containerStatuses') or []
    total = len((o.get('spec') or {}).get('containers') or [])
    ready = sum(1 for c in cs if c.get('ready'))
    restarts = sum(int(c.get('restartCount') or 0) for c in cs)
    reason = st.get('reason') or st.get('phase') or 'Unknown'
    if _md(o).get('deletionTimestamp'):
        reason = 'Terminating'
    return [_md(o).get('name'), '%d/%d' % (ready, total), reason, restarts, age(_md(o).get('creationTimestamp'))]


def _selector_str(sel):
    if not sel:
        return '<none>'
    parts = ['%s=%s' % kv for kv in sorted((sel.get('matchLabels') or {}).items())]
    for e in sel.get('matchExpressions') or []:
        op = e.get('operator')
        if op == 'In':
            parts.append('%s in (%s)' % (e.get('key'), ','.join(e.get('values') or [])))
        elif op == 'NotIn':
            parts.append('%s notin (%s)' % (e.get('key'), ','.join(e.get('values') or [])))
        elif op == 'Exists':
            parts.append(e.get('key'))
        else:
            parts.append('!' + str(e.get('key')))
    return ','.join(parts) or '<none>'


def _event_obj(o):
    io = o.get('involvedObject') or o.get('regarding') or {}
    return '%s/%s' % (str(io.get('kind', '')).lower(), io.get('name', ''))


BUILTIN_COLUMNS = {
    ('', 'pods'): ([NAME_COL, _col('Ready', desc='The aggregate readiness state of this pod for accepting traffic.'),
                    _col('Status', desc='The aggregate status of the containers in this pod.'),
                    _col('Restarts', 'string', desc='The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
                    AGE_COL], _pod_cells),
    ('', 'configmaps'): ([NAME_COL, _col('Data', 'string', desc='Number of user provided data items in this ConfigMap.'), AGE_COL],
                         lambda o: [_md(o).get('name'), len(o.get('data') or {}) + len(o.get('binaryData') or {}), age(_md(o).get('creationTimestamp'))]),
    ('', 'secrets'): ([NAME_COL, _col('Type', desc='The type of this secret.'), _col('Data', 'string', desc='Number of data items in this secret.'), AGE_COL],
                      lambda o: [_md(o).get('name'), o.get('type', 'Opaque'), len(o.get('data') or {}), age(_md(o).get('creationTimestamp'))]),
    ('', 'namespaces'): ([NAME_COL, _col('Status', desc='The status of the namespace'), AGE_COL],
                         lambda o: [_md(o).get('name'), (o.get('status') or {}).get('phase', ''), age(_md(o).get('creationTimestamp'))]),
    ('', 'events'): ([_col('Last Seen'), _col('Type'), _col('Reason'), _col('Object'), _col('Message')],
                     lambda o: [age(o.get('lastTimestamp') or o.get('eventTime') or _md(o).get('creationTimestamp')),
                                o.get('type', ''), o.get('reason', ''), _event_obj(o), o.get('message', '')]),
    ('networking.k8s.io', 'networkpolicies'): ([NAME_COL, _col('Pod-Selector', desc='Pod selector'), AGE_COL],
                                               lambda o: [_md(o).get('name'), _selector_str((o.get('spec') or {}).get('podSelector')), age(_md(o).get('creationTimestamp'))]),
    ('coordination.k8s.io', 'leases'): ([NAME_COL, _col('Holder', desc='HolderIdentity'), AGE_COL],
                                        lambda o: [_md(o).get('name'), (o.get('spec') or {}).get('holderIdentity', ''), age(_md(o).get('creationTimestamp'))]),
    ('apiextensions.k8s.io', 'customresourcedefinitions'): ([NAME_COL, _col('Created At', 'date')],
                                                            lambda o: [_md(o).get('name'), _md(o).get('creationTimestamp')]),
    ('admissionregistration.k8s.io', 'mutatingwebhookconfigurations'): ([NAME_COL, _col('Webhooks', 'integer'), AGE_COL],
                                                                        lambda o: [_md(o).get('name'), len(o.get('webhooks') or []), age(_md(o).get('creationTimestamp'))]),
    ('admissionregistration.k8s.io', 'validatingwebhookconfigurations'): ([NAME_COL, _col('Webhooks', 'integer'), AGE_COL],
                                                                          lambda o: [_md(o).get('name'), len(o.get('webhooks') or []), age(_md(o).get('creationTimestamp'))]),
}


def _cell_for(col_type, values):
    if not values:
        return None
    v = values[0]
    if col_type == 'date':
        if not isinstance(v, str) or parse_time(v) is None:
            return None
        return age(v)
    if col_type == 'integer':
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if col_type == 'number':
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if col_type == 'boolean':
        return v if isinstance(v, bool) else None
    if isinstance(v, (dict, list)):
        import json
        return json.dumps(v, separators=(',', ':'))
    if isinstance(v, bool):
        return 'true' if v else 'false'
    return str(v)


def table_columns(rt):
    """(columnDefinitions, cell function) for a type."""
    if rt.is_cr:
        cols = [NAME_COL]
        specs = rt.columns or []
        if not specs:
            return [NAME_COL, AGE_COL], lambda o: [_md(o).get('name'), age(_md(o).get('creationTimestamp'))]
        for c in specs:
            cols.append(_col(c.get('name', ''), c.get('type', 'string'), c.get('format', ''),
                             c.get('description', ''), c.get('priority', 0)))

        def cells(o):
            out = [_md(o).get('name')]
            for c in specs:
                try:
                    vals = jsonpath(o, c.get('jsonPath', ''))
                except JSONPathError:
                    vals = []
                out.append(_cell_for(c.get('type', 'string'), vals))
            return out
        return cols, cells
    if rt.storage in BUILTIN_COLUMNS:
        return BUILTIN_COLUMNS[rt.storage]
    return [NAME_COL, AGE_COL], lambda o: [_md(o).get('name'), age(_md(o).get('creationTimestamp'))]


def table_row(rt, obj, cells_fn, include_object):
    row = {'cells': cells_fn(obj)}
    if include_object == 'Object':
        row['object'] = obj
    elif include_object != 'None':
        md = {k: v for k, v in _md(obj).items()}
        row['object'] = {'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/v1', 'metadata': md}
    return row
