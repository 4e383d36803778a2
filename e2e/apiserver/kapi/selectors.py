"""Label selectors (query-string syntax and metav1.LabelSelector) and field selectors."""

import re


class SelectorError(ValueError):
    pass


def _tokens(s):
    out = []
    i = 0
    while i < len(s):
        if s[i].isspace():
            i += 1
            continue
        for t in ('!=', '==', '=', '!', '(', ')', ',', '>', '<'):
            if s.startswith(t, i):
                out.append(t)
                i += len(t)
                break
        else:
            m = re.compile(r'[^\s!=(),<>]+').match(s, i)
            if not m:
                raise SelectorError('unable to parse requirement: unexpected character %r' % s[i])
            out.append(m.group(0))
            i = m.end()
    return out


def _split_top(s):
    parts, depth, cur = [], 0, []
    for c in s:
        if c == '(':
            depth += 1
        elif c == ')':
            depth -= 1
        if c == ',' and depth == 0:
            parts.append(''.join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append(''.join(cur))
    return [p.strip() for p in parts]


_VALID_VALUE = re.compile(r'^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$')
_VALID_NAME = re.compile(r'^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$')
_VALID_PREFIX = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')


def valid_label_key(k):
    if '/' in k:
        prefix, _, name = k.partition('/')
        if not prefix or len(prefix) > 253 or not _VALID_PREFIX.match(prefix):
            return False
    else:
        name = k
    return bool(name) and len(name) <= 63 and bool(_VALID_NAME.match(name))


def valid_label_value(v):
    return isinstance(v, str) and len(v) <= 63 and bool(_VALID_VALUE.match(v))


def parse_label_selector(s):
    """Parse the query-string form into a list of (key, op, values)."""
    reqs = []
    if s is None or s.strip() == '':
        return reqs
    for part in _split_top(s):
        if part == '':
            raise SelectorError('unable to parse requirement: found \'\', expected: identifier')
        t = _tokens(part)
        if t[0] == '!':
            if len(t) != 2:
                raise SelectorError('unable to parse requirement: %r' % part)
            reqs.append((t[1], 'DoesNotExist', []))
            key = t[1]
        elif len(t) == 1:
            reqs.append((t[0], 'Exists', []))
            key = t[0]
        else:
            key, op = t[0], t[1]
            if op in ('=', '==', '!='):
                if len(t) > 3:
                    raise SelectorError('unable to parse requirement: %r' % part)
                val = t[2] if len(t) == 3 else ''
                if not valid_label_value(val):
                    raise SelectorError('unable to parse requirement: values[0][%s]: Invalid value: "%s"' % (key, val))
                reqs.append((key, 'NotEquals' if op == '!=' else 'Equals', [val]))
            elif op in ('in', 'notin'):
                if len(t) < 4 or t[2] != '(' or t[-1] != ')':
                    raise SelectorError('unable to parse requirement: found \'%s\', expected: \'(\'' % (t[2] if len(t) > 2 else ''))
                vals = [x for x in t[3:-1] if x != ',']
                reqs.append((key, 'In' if op == 'in' else 'NotIn', vals))
            elif op in ('>', '<'):
                if len(t) != 3 or not re.match(r'^-?[0-9]+$', t[2]):
                    raise SelectorError('unable to parse requirement: for \'Gt\', \'Lt\' operators, the value must be an integer')
                reqs.append((key, 'Gt' if op == '>' else 'Lt', [t[2]]))
            else:
                raise SelectorError('unable to parse requirement: found \'%s\', expected: in, notin, =, ==, !=, gt, lt' % op)
        if not valid_label_key(key):
            raise SelectorError('unable to parse requirement: key: Invalid value: "%s": name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\'' % key)
    return reqs


def label_selector_from_object(sel):
    """metav1.LabelSelector -> requirements. None selects nothing; {} selects everything."""
    if sel is None:
        return None
    reqs = []
    for k, v in sorted((sel.get('matchLabels') or {}).items()):
        reqs.append((k, 'Equals', [v]))
    for e in sel.get('matchExpressions') or []:
        op = e.get('operator')
        reqs.append((e.get('key'), op, list(e.get('values') or [])))
    return reqs


def labels_match(reqs, labels):
    if reqs is None:
        return False
    labels = labels or {}
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if op == 'Equals' and not (has and v == vals[0]):
            return False
        if op == 'NotEquals' and has and v == vals[0]:
            return False
        if op == 'In' and not (has and v in vals):
            return False
        if op == 'NotIn' and has and v in vals:
            return False
        if op == 'Exists' and not has:
            return False
        if op == 'DoesNotExist' and has:
            return False
        if op in ('Gt', 'Lt'):
            try:
                iv = int(v)
            except (TypeError, ValueError):
                return False
            if op == 'Gt' and not iv > int(vals[0]):
                return False
            if op == 'Lt' and not iv < int(vals[0]):
                return False
    return True


def parse_field_selector(s):
    reqs = []
    if s is None or s.strip() == '':
        return reqs
    for part in s.split(','):
        part = part.strip()
        for op in ('!=', '==', '='):
            if op in part:
                k, _, v = part.partition(op)
                reqs.append((k.strip(), '!=' if op == '!=' else '=', v.strip()))
                break
        else:
            raise SelectorError('invalid selector: \'%s\'; can\'t understand \'%s\'' % (s, part))
    return reqs


def get_field(obj, dotted):
    cur = obj
    for p in dotted.split('.'):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def fields_match(reqs, obj):
    for k, op, v in reqs:
        actual = get_field(obj, k)
        actual = '' if actual is None else str(actual)
        if (actual == v) != (op == '='):
            return False
    return True
