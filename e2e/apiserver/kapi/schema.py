"""CRD openAPIV3Schema: defaulting, pruning and validation with apiextensions' error texts.

Keywords checked: type (+nullable, x-kubernetes-int-or-string), enum, required, properties,
additionalProperties, items, minimum/maximum (+exclusive), minLength/maxLength, pattern,
minItems/maxItems, minProperties/maxProperties, uniqueItems, format (date-time, int32/int64
ranges), x-kubernetes-list-type set/map uniqueness. x-kubernetes-validations (CEL) is not
evaluated (see README).
"""

import copy
import json
import re


def _go_quote(s):
    return json.dumps(s, ensure_ascii=False)


def _go_value(v):
    """How apimachinery field.Error prints a bad value."""
    if v is None:
        return 'null'
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ('%d' % v) if v == int(v) and abs(v) < 1e21 else repr(v)
    if isinstance(v, str):
        return _go_quote(v)
    return json.dumps(v, separators=(',', ':'), sort_keys=True)


class FieldError:
    """One apimachinery field.Error."""

    TYPES = {
        'FieldValueRequired': 'Required value',
        'FieldValueInvalid': 'Invalid value',
        'FieldValueNotSupported': 'Unsupported value',
        'FieldValueDuplicate': 'Duplicate value',
        'FieldValueTooLong': 'Too long',
        'FieldValueTooMany': 'Too many',
        'FieldValueForbidden': 'Forbidden',
        'FieldValueTypeInvalid': 'Invalid value',
    }

    def __init__(self, reason, field, value=None, detail='', show_value=True):
        self.reason = reason
        self.field = field
        self.value = value
        self.detail = detail
        self.show_value = show_value

    def body(self):
        t = self.TYPES[self.reason]
        if self.reason in ('FieldValueRequired', 'FieldValueForbidden', 'FieldValueTooLong') or not self.show_value:
            s = t
        else:
            s = '%s: %s' % (t, _go_value(self.value))
        if self.detail:
            s += ': ' + self.detail
        return s

    def __str__(self):
        return '%s: %s' % (self.field, self.body())

    def cause(self):
        return {'reason': self.reason, 'message': self.body(), 'field': self.field}


def required(field, detail=''):
    return FieldError('FieldValueRequired', field, detail=detail)


def invalid(field, value, detail):
    return FieldError('FieldValueInvalid', field, value, detail)


def not_supported(field, value, allowed):
    detail = 'supported values: ' + ', '.join(_go_value(a) for a in allowed)
    return FieldError('FieldValueNotSupported', field, value, detail)


def forbidden(field, detail):
    return FieldError('FieldValueForbidden', field, detail=detail)


def _json_type(v):
    if v is None:
        return 'null'
    if isinstance(v, bool):
        return 'boolean'
    if isinstance(v, int):
        return 'integer'
    if isinstance(v, float):
        return 'integer' if v == int(v) else 'number'
    if isinstance(v, str):
        return 'string'
    if isinstance(v, list):
        return 'array'
    return 'object'


def _child(path, key):
    if re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', key):
        return '%s.%s' % (path, key) if path else key
    return '%s[%s]' % (path, key)


def _fmt_num(n):
    if isinstance(n, float) and n == int(n):
        return str(int(n))
    return str(n)


_DATE_TIME = re.compile(r'^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$')


def validate(schema, value, path=''):
    errs = []
    _validate(schema or {}, value, path, errs)
    return errs


def _validate(s, v, path, errs):
    if v is None:
        if s.get('nullable'):
            return
        if 'type' in s or s.get('x-kubernetes-int-or-string'):
            t = s.get('type') or 'integer'
            if s.get('x-kubernetes-int-or-string'):
                errs.append(FieldError('FieldValueTypeInvalid', path, 'null',
                                       '%s in body must be of type integer,string: "null"' % path))
            else:
                errs.append(FieldError('FieldValueTypeInvalid', path, 'null',
                                       '%s in body must be of type %s: "null"' % (path, t)))
            return
        return
    jt = _json_type(v)
    if s.get('x-kubernetes-int-or-string'):
        if jt not in ('integer', 'string'):
            errs.append(FieldError('FieldValueTypeInvalid', path, jt,
                                   '%s in body must be of type integer,string: "%s"' % (path, jt)))
            return
    elif 'type' in s:
        want = s['type']
        ok = jt == want or (want == 'number' and jt == 'integer')
        if not ok:
            errs.append(FieldError('FieldValueTypeInvalid', path, jt,
                                   '%s in body must be of type %s: "%s"' % (path, want, jt)))
            return
    if 'enum' in s and v not in s['enum']:
        errs.append(not_supported(path, v, s['enum']))
    if jt in ('integer', 'number'):
        if 'maximum' in s:
            mx = s['maximum']
            if s.get('exclusiveMaximum') and not v < mx:
                errs.append(invalid(path, v, '%s in body should be less than %s' % (path, _fmt_num(mx))))
            elif v > mx:
                errs.append(invalid(path, v, '%s in body should be less than or equal to %s' % (path, _fmt_num(mx))))
        if 'minimum' in s:
            mn = s['minimum']
            if s.get('exclusiveMinimum') and not v > mn:
                errs.append(invalid(path, v, '%s in body should be greater than %s' % (path, _fmt_num(mn))))
            elif v < mn:
                errs.append(invalid(path, v, '%s in body should be greater than or equal to %s' % (path, _fmt_num(mn))))
        if 'multipleOf' in s and s['multipleOf'] and (v / s['multipleOf']) != int(v / s['multipleOf']):
            errs.append(invalid(path, v, '%s in body should be a multiple of %s' % (path, _fmt_num(s['multipleOf']))))
        fmt = s.get('format')
        if fmt == 'int32' and not (-2 ** 31 <= v < 2 ** 31):
            errs.append(invalid(path, v, '%s in body must be of type int32: "%s"' % (path, _fmt_num(v))))
    if jt == 'string':
        n = len(v)
        if 'maxLength' in s and n > s['maxLength']:
            m = s['maxLength']
            errs.append(FieldError('FieldValueTooLong', path, v,
                                   'may not be more than %d %s' % (m, 'byte' if m == 1 else 'bytes')))
        if 'minLength' in s and n < s['minLength']:
            errs.append(invalid(path, v, '%s in body should be at least %d chars long' % (path, s['minLength'])))
        if 'pattern' in s:
            try:
                if not re.search(s['pattern'], v):
                    errs.append(invalid(path, v, "%s in body should match '%s'" % (path, s['pattern'])))
            except re.error:
                pass
        if s.get('format') == 'date-time' and not _DATE_TIME.match(v):
            errs.append(invalid(path, v, '%s in body must be of type date-time: %s' % (path, _go_quote(v))))
    if jt == 'array':
        if 'maxItems' in s and len(v) > s['maxItems']:
            errs.append(FieldError('FieldValueTooMany', path, len(v),
                                   'must have at most %d items' % s['maxItems']))
        if 'minItems' in s and len(v) < s['minItems']:
            errs.append(invalid(path, len(v), '%s in body should have at least %d items' % (path, s['minItems'])))
        lt = s.get('x-kubernetes-list-type')
        if s.get('uniqueItems') or lt == 'set':
            seen = []
            for i, item in enumerate(v):
                if item in seen:
                    errs.append(FieldError('FieldValueDuplicate', '%s[%d]' % (path, i), item))
                seen.append(item)
        if lt == 'map':
            keys = s.get('x-kubernetes-list-map-keys') or []
            seen = []
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    k = {kk: item.get(kk) for kk in keys}
                    if k in seen:
                        errs.append(FieldError('FieldValueDuplicate', '%s[%d]' % (path, i), k))
                    seen.append(k)
        if 'items' in s and isinstance(s['items'], dict):
            for i, item in enumerate(v):
                _validate(s['items'], item, '%s[%d]' % (path, i), errs)
    if jt == 'object':
        for r in s.get('required') or []:
            if r not in v:
                errs.append(required(_child(path, r)))
        if 'maxProperties' in s and len(v) > s['maxProperties']:
            errs.append(FieldError('FieldValueTooMany', path, len(v),
                                   'must have at most %d items' % s['maxProperties']))
        if 'minProperties' in s and len(v) < s['minProperties']:
            errs.append(invalid(path, len(v), '%s in body should have at least %d properties' % (path, s['minProperties'])))
        props = s.get('properties') or {}
        addl = s.get('additionalProperties')
        for k, item in v.items():
            if k in props:
                if path == '' and k == 'metadata':
                    continue
                _validate(props[k], item, _child(path, k), errs)
            elif isinstance(addl, dict):
                _validate(addl, item, _child(path, k), errs)


def apply_defaults(schema, value):
    """Set `default` values of absent properties, in place (apiextensions structural defaulting)."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get('properties') or {}
        for k, ps in props.items():
            if k not in value and isinstance(ps, dict) and 'default' in ps:
                value[k] = copy.deepcopy(ps['default'])
        for k, item in value.items():
            if k in props:
                apply_defaults(props[k], item)
            elif isinstance(schema.get('additionalProperties'), dict):
                apply_defaults(schema['additionalProperties'], item)
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        for item in value:
            apply_defaults(schema['items'], item)
    return value


def prune(schema, value, path='', unknown=None, root=True):
    """Drop fields the structural schema does not declare; record their paths in `unknown`."""
    if unknown is None:
        unknown = []
    if not isinstance(schema, dict) or schema.get('x-kubernetes-preserve-unknown-fields'):
        if isinstance(value, dict) and isinstance(schema, dict) and schema.get('properties'):
            for k, item in value.items():
                if k in schema['properties']:
                    prune(schema['properties'][k], item, _child(path, k), unknown, False)
        return unknown
    if isinstance(value, dict):
        props = schema.get('properties')
        addl = schema.get('additionalProperties')
        if props is None and addl is None:
            if schema.get('type') == 'object' and not root:
                for k in list(value):
                    unknown.append(_child(path, k))
                    del value[k]
            return unknown
        for k in list(value):
            if root and k in ('apiVersion', 'kind', 'metadata'):
                continue
            if props and k in props:
                prune(props[k], value[k], _child(path, k), unknown, False)
            elif isinstance(addl, dict):
                prune(addl, value[k], _child(path, k), unknown, False)
            elif addl is True:
                continue
            else:
                unknown.append(_child(path, k))
                del value[k]
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        for i, item in enumerate(value):
            prune(schema['items'], item, '%s[%d]' % (path, i), unknown, False)
    return unknown


def list_semantics(schema, path):
    """Walk `schema` along `path` (a list of field names) and return the list type info
    of the list found there: ('map', keys) | ('set', None) | ('atomic', None) | None."""
    s = schema
    for p in path:
        if not isinstance(s, dict):
            return None
        if p == '[]':
            s = s.get('items')
            continue
        props = s.get('properties') or {}
        if p in props:
            s = props[p]
        elif isinstance(s.get('additionalProperties'), dict):
            s = s['additionalProperties']
        else:
            return None
    if not isinstance(s, dict):
        return None
    lt = s.get('x-kubernetes-list-type')
    if lt == 'map':
        return ('map', s.get('x-kubernetes-list-map-keys') or [])
    if lt == 'set':
        return ('set', None)
    return ('atomic', None)


def map_is_atomic(schema, path):
    s = schema
    for p in path:
        if not isinstance(s, dict):
            return False
        if p == '[]':
            s = s.get('items')
            continue
        props = s.get('properties') or {}
        if p in props:
            s = props[p]
        elif isinstance(s.get('additionalProperties'), dict):
            s = s['additionalProperties']
        else:
            return False
    return isinstance(s, dict) and s.get('x-kubernetes-map-type') == 'atomic'
