"""CRD structural schemas: defaulting, pruning of unknown fields, validation with apiextensions' error
texts.
"""
import copy
import re

from .wire import fmt_value


def _type_name(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def apply_defaults(schema, value):
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for k, sub in props.items():
            if k not in value and isinstance(sub, dict) and "default" in sub:
                value[k] = copy.deepcopy(sub["default"])
            if k in value:
                value[k] = apply_defaults(sub, value[k])
        ap = schema.get("additionalProperties")
        if isinstance(ap, dict):
            for k in list(value):
                if k not in props:
                    value[k] = apply_defaults(ap, value[k])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [apply_defaults(schema["items"], v) for v in value]
    return value


def prune(schema, value, path, unknown, top=False):
    """Drop fields a structural schema does not declare (like the apiextensions pruning); their
    paths go to unknown."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        ap = schema.get("additionalProperties")
        for k in list(value):
            if top and k in ("apiVersion", "kind", "metadata"):
                continue
            sub = (props or {}).get(k)
            if sub is None and isinstance(ap, dict):
                sub = ap
            if sub is None and ap is not True and (props is not None or schema.get("type") == "object"):
                unknown.append((path + "." + k) if path else k)
                del value[k]
                continue
            prune(sub, value[k], (path + "." + k) if path else k, unknown)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            prune(schema["items"], v, "%s[%d]" % (path, i), unknown)


def validate_schema(schema, value, path, errs, top=False):
    if not isinstance(schema, dict):
        return
    t = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    if value is None:
        if schema.get("nullable"):
            return
        if t:
            errs.append({"reason": "FieldValueInvalid", "message": 'Invalid value: "null": %s in body must be of type %s: "null"' % (path, t), "field": path})
        return
    vt = _type_name(value)
    if int_or_string:
        if vt not in ("integer", "string"):
            errs.append({"reason": "FieldValueInvalid",
                         "message": 'Invalid value: "%s": %s in body must be of type integer,string: "%s"' % (vt, path, vt),
                         "field": path})
            return
    elif t and not (vt == t or (t == "number" and vt == "integer")):
        errs.append({"reason": "FieldValueInvalid",
                     "message": 'Invalid value: "%s": %s in body must be of type %s: "%s"' % (vt, path, t, vt),
                     "field": path})
        return
    if "enum" in schema and value not in schema["enum"]:
        sup = ", ".join(fmt_value(e) for e in schema["enum"])
        errs.append({"reason": "FieldValueNotSupported",
                     "message": "Unsupported value: %s: supported values: %s" % (fmt_value(value), sup), "field": path})
    if vt in ("integer", "number"):
        if "maximum" in schema and (value > schema["maximum"] or (schema.get("exclusiveMaximum") and value == schema["maximum"])):
            errs.append({"reason": "FieldValueInvalid",
                         "message": "Invalid value: %s: %s in body should be less than %s%s" % (
                             fmt_value(value), path, "" if schema.get("exclusiveMaximum") else "or equal to ", fmt_value(schema["maximum"])),
                         "field": path})
        if "minimum" in schema and (value < schema["minimum"] or (schema.get("exclusiveMinimum") and value == schema["minimum"])):
            errs.append({"reason": "FieldValueInvalid",
                         "message": "Invalid value: %s: %s in body should be greater than %s%s" % (
                             fmt_value(value), path, "" if schema.get("exclusiveMinimum") else "or equal to ", fmt_value(schema["minimum"])),
                         "field": path})
    if vt == "string":
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append({"reason": "FieldValueTooLong",
                         "message": "Too long: may not be more than %d bytes" % schema["maxLength"], "field": path})
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.append({"reason": "FieldValueInvalid",
                         "message": "Invalid value: %s: %s in body should be at least %d chars long" % (fmt_value(value), path, schema["minLength"]),
                         "field": path})
        if "pattern" in schema:
            try:
                ok = re.search(schema["pattern"], value) is not None
            except re.error:
                ok = True
            if not ok:
                errs.append({"reason": "FieldValueInvalid",
                             "message": "Invalid value: %s: %s in body should match '%s'" % (fmt_value(value), path, schema["pattern"]),
                             "field": path})
    if vt == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append({"reason": "FieldValueTooMany",
                         "message": "Too many: %d: must have at most %d items" % (len(value), schema["maxItems"]), "field": path})
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append({"reason": "FieldValueInvalid",
                         "message": "Invalid value: %d: %s in body should have at least %d items" % (len(value), path, schema["minItems"]),
                         "field": path})
        if isinstance(schema.get("items"), dict):
            for i, v in enumerate(value):
                validate_schema(schema["items"], v, "%s[%d]" % (path, i), errs)
    if vt == "object":
        for r in schema.get("required") or []:
            if r not in value:
                errs.append({"reason": "FieldValueRequired", "message": "Required value",
                             "field": (path + "." + r) if path else r})
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errs.append({"reason": "FieldValueTooMany",
                         "message": "Too many: %d: must have at most %d items" % (len(value), schema["maxProperties"]), "field": path})
        props = schema.get("properties") or {}
        ap = schema.get("additionalProperties")
        for k, v in value.items():
            if top and k in ("metadata", "apiVersion", "kind"):
                continue
            sub = props.get(k)
            if sub is None and isinstance(ap, dict):
                sub = ap
            if sub is not None:
                validate_schema(sub, v, (path + "." + k) if path else k, errs)
