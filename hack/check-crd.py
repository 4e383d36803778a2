#!/usr/bin/env python3
"""Static checks of the MaskingPolicy CRD (python3 stdlib only).

Reads the CRD as JSON (one object, or several concatenated, as
`kubectl annotate --local -o json -f FILE maskmesh.io/x-` prints them) on stdin or from a
file, and checks what the API server would refuse at CRD registration and what the project
promises about the API:

  * the names, scope, status subresource and printer columns;
  * a structural schema: every node has a type (except int-or-string and preserve-unknown
    nodes), properties only on objects, items only on arrays, no additionalProperties next
    to properties, metadata restricted to type object, list-map keys required scalars;
  * bounds: every array has maxItems, every free string has maxLength (or an enum or a
    format), every map has maxProperties, so CEL cost estimation stays finite;
  * descriptions on every named field, so `kubectl explain mp.spec...` is useful;
  * CEL rules: balanced brackets and quotes, `self.<field>` naming a typed field of that
    node (CEL cannot see an untyped one), and the rules the design asks for being there;
  * the caps that keep CEL within the API server's cost budget equal lib/policy's limits;
  * enums and defaults agreeing, every field docs/policy.md documents being present.

With --objects CRD.json OBJECTS.json it instead validates MaskingPolicy objects against the
CRD's schema as the API server would before CEL (types, required, enums, bounds, patterns,
unknown fields, list-map keys); the CEL rules are left to the API server.

Prints one line per failed check and `N passed, N failed` last; exits 1 on any failure.
Usage: hack/check-crd.py [FILE.json]
       hack/check-crd.py --objects CRD.json OBJECTS.json
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pylib"))
from mmcheck import check, load, summary  # noqa: E402


def detector_registry():
    """The built-in detector names, in order, from lib/mask/detectors.def (the one list)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "mask", "detectors.def")
    with open(path) as f:
        return re.findall(r'^DETECTOR\(\w+, \w+, "(\w+)"', f.read(), re.M)


def policy_limits():
    """The #define MM_POLICY_MAX_* numbers of lib/policy/policy.h."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "policy", "policy.h")
    with open(path, encoding="utf-8") as f:
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r"^#define (MM_POLICY_MAX_[A-Z_]+)\s+(\d+)\b", f.read(), re.M)}


def cel_balanced(rule):
    stack, quote, i = [], None, 0
    pairs = {")": "(", "]": "[", "}": "{"}
    while i < len(rule):
        c = rule[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "([{":
            stack.append(c)
        elif c in ")]}":
            if not stack or stack.pop() != pairs[c]:
                return False
        i += 1
    return not stack and quote is None


def strip_cel_strings(rule):
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", rule)


STRUCT_KEYS = {"type", "properties", "items", "additionalProperties"}


def walk(node, path, parent_is_properties_child, errors):
    """Checks one schema node and recurses. `errors` collects (ok, message) tuples."""
    t = node.get("type")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    errors.append((t is not None or int_or_string or preserve,
                   f"{path}: no type (structural schemas need one)"))
    if int_or_string:
        errors.append((t is None, f"{path}: int-or-string must not set type"))
        for junctor in ("anyOf", "allOf", "oneOf"):
            for sub in node.get(junctor, []):
                errors.append((set(sub) <= {"type"} and sub.get("type") in ("integer", "string"),
                               f"{path}.{junctor}: only [{{type: integer}}, {{type: string}}] is allowed"))
    for junctor in ("anyOf", "allOf", "oneOf", "not"):
        if junctor in node and not int_or_string:
            errors.append((False, f"{path}: {junctor} used; keep the schema free of junctors"))
    if "properties" in node:
        errors.append((t == "object", f"{path}: properties on a non-object"))
        errors.append(("additionalProperties" not in node,
                       f"{path}: additionalProperties next to properties"))
    if "additionalProperties" in node:
        ap = node["additionalProperties"]
        errors.append((isinstance(ap, dict), f"{path}: additionalProperties must be a schema"))
        errors.append(("maxProperties" in node, f"{path}: a map needs maxProperties"))
        if isinstance(ap, dict):
            walk(ap, path + "{}", False, errors)
    if "items" in node:
        errors.append((t == "array", f"{path}: items on a non-array"))
    if t == "array":
        errors.append(("items" in node, f"{path}: array without items"))
        errors.append(("maxItems" in node, f"{path}: array without maxItems"))
        lt = node.get("x-kubernetes-list-type")
        errors.append((lt in ("atomic", "set", "map"), f"{path}: x-kubernetes-list-type missing"))
        items = node.get("items", {})
        if lt == "map":
            keys = node.get("x-kubernetes-list-map-keys", [])
            errors.append((bool(keys), f"{path}: list-type map without list-map-keys"))
            for k in keys:
                ks = items.get("properties", {}).get(k, {})
                errors.append((ks.get("type") in ("string", "integer", "boolean"),
                               f"{path}: map key {k} must be a scalar field"))
                errors.append((k in items.get("required", []) or "default" in ks,
                               f"{path}: map key {k} must be required"))
        if lt == "set":
            errors.append((items.get("type") in ("string", "integer", "boolean"),
                           f"{path}: list-type set needs scalar items"))
        walk(items, path + "[]", False, errors)
    if t == "string" and "enum" not in node and "format" not in node and path not in ("apiVersion", "kind"):
        errors.append(("maxLength" in node, f"{path}: string without maxLength"))
    if int_or_string:
        errors.append(("maxLength" in node and "maximum" in node,
                       f"{path}: int-or-string needs maxLength and maximum"))
    if "enum" in node:
        want = {"string": str, "integer": int, "boolean": bool}.get(t)
        errors.append((want is not None and all(isinstance(v, want) for v in node["enum"]),
                       f"{path}: enum values must be of type {t}"))
    if "default" in node:
        errors.append(("enum" not in node or node["default"] in node["enum"],
                       f"{path}: default {node['default']!r} is not in the enum"))
    if parent_is_properties_child:
        errors.append((bool(node.get("description")), f"{path}: no description"))
    props = node.get("properties", {})
    for r in node.get("required", []):
        errors.append((r in props, f"{path}: required field {r} is not a property"))
    for v in node.get("x-kubernetes-validations", []):
        rule = v.get("rule", "")
        errors.append((bool(rule) and bool(v.get("message")), f"{path}: a validation needs rule and message"))
        errors.append((cel_balanced(rule), f"{path}: unbalanced CEL rule: {rule}"))
        bare = strip_cel_strings(rule)
        for ref in re.findall(r"\bself\.([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()", bare):
            errors.append((ref in props, f"{path}: CEL rule names self.{ref}, which is not a field"))
            # the API server's CEL types leave out a field without a type (preserve-unknown
            # only): has(self.tweak) on one fails to compile ("undefined field 'tweak'")
            sub = props.get(ref, {})
            errors.append(("type" in sub or sub.get("x-kubernetes-int-or-string") is True,
                           f"{path}: CEL rule names self.{ref}, a field without a type CEL cannot see"))
    for name, sub in props.items():
        if path.endswith("metadata"):
            continue
        if name == "metadata" and path == "":
            errors.append((sub == {"type": "object"} or set(sub) <= {"type", "description"},
                           "metadata: only type object is allowed at the root"))
            continue
        walk(sub, f"{path}.{name}" if path else name, True, errors)


def get(node, dotted):
    for part in dotted.split("."):
        if part == "[]":
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


def rules_text(node):
    return " ".join(v.get("rule", "") for v in (node or {}).get("x-kubernetes-validations", []))


def validate(schema, v, path, errs):
    """OpenAPI v3 validation of value v as a CRD's structural schema defines it."""
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            errs.append(f"{path}: expected an integer or a string")
            return
    t = schema.get("type")
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}
    if t and (not isinstance(v, kinds[t]) or (t in ("integer", "number") and isinstance(v, bool))):
        errs.append(f"{path}: expected {t}, got {type(v).__name__}")
        return
    if "enum" in schema and v not in schema["enum"]:
        errs.append(f"{path}: {v!r} is not one of {schema['enum']}")
    if isinstance(v, str):
        if len(v) > schema.get("maxLength", len(v)):
            errs.append(f"{path}: longer than {schema['maxLength']}")
        if len(v) < schema.get("minLength", 0):
            errs.append(f"{path}: shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], v):
            errs.append(f"{path}: {v!r} does not match {schema['pattern']}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in schema and v < schema["minimum"]:
            errs.append(f"{path}: less than {schema['minimum']}")
        if "maximum" in schema and v > schema["maximum"]:
            errs.append(f"{path}: more than {schema['maximum']}")
    if isinstance(v, list):
        if len(v) > schema.get("maxItems", len(v)) or len(v) < schema.get("minItems", 0):
            errs.append(f"{path}: {len(v)} items, outside {schema.get('minItems', 0)}..{schema.get('maxItems')}")
        lt = schema.get("x-kubernetes-list-type")
        if lt == "set" and len({json.dumps(x, sort_keys=True) for x in v}) != len(v):
            errs.append(f"{path}: duplicate entries in a set")
        if lt == "map":
            keys = [tuple(x.get(k) for k in schema.get("x-kubernetes-list-map-keys", [])) for x in v if isinstance(x, dict)]
            if len(set(keys)) != len(keys):
                errs.append(f"{path}: duplicate keys {schema.get('x-kubernetes-list-map-keys')}")
        for i, x in enumerate(v):
            validate(schema.get("items", {}), x, f"{path}[{i}]", errs)
    if isinstance(v, dict):
        props = schema.get("properties", {})
        for r in schema.get("required", []):
            if r not in v:
                errs.append(f"{path}.{r}: required")
        if len(v) > schema.get("maxProperties", len(v)):
            errs.append(f"{path}: more than {schema['maxProperties']} entries")
        for k, x in v.items():
            if k in props:
                if path == "" and k == "metadata":
                    continue
                validate(props[k], x, f"{path}.{k}" if path else k, errs)
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(schema["additionalProperties"], x, f"{path}.{k}", errs)
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                errs.append(f"{path}.{k}: unknown field")


def check_objects(crd_file, obj_file):
    crds = [o for o in load(open(crd_file).read(), flatten_lists=True) if o.get("kind") == "CustomResourceDefinition"]
    schema = crds[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    objs = load(open(obj_file).read(), flatten_lists=True)
    check(bool(objs), f"{obj_file}: holds objects")
    for o in objs:
        name = o.get("metadata", {}).get("name", "?")
        check(o.get("apiVersion") == "maskmesh.io/v1alpha1" and o.get("kind") == "MaskingPolicy",
              f"{name}: is a maskmesh.io/v1alpha1 MaskingPolicy")
        check(bool(o.get("metadata", {}).get("name")), f"{name}: has metadata.name")
        # kubectl annotate adds an empty annotations map; the object as written has none
        errs = []
        validate(schema, o, "", errs)
        check(not errs, f"{name}: valid against the CRD schema: " + "; ".join(errs))
    return summary()


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--objects":
        return check_objects(sys.argv[2], sys.argv[3])
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    objs = [o for o in load(text, flatten_lists=True) if o.get("kind") == "CustomResourceDefinition"]
    if not check(len(objs) == 1, f"expected one CustomResourceDefinition, found {len(objs)}"):
        return summary()
    crd = objs[0]
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    check(crd.get("apiVersion") == "apiextensions.k8s.io/v1", "apiVersion apiextensions.k8s.io/v1")
    check(crd["metadata"].get("name") == "maskingpolicies.maskmesh.io", "name maskingpolicies.maskmesh.io")
    check(spec.get("group") == "maskmesh.io", "group maskmesh.io")
    check(spec.get("scope") == "Namespaced", "scope Namespaced")
    check(names.get("kind") == "MaskingPolicy" and names.get("plural") == "maskingpolicies"
          and names.get("singular") == "maskingpolicy" and names.get("listKind") == "MaskingPolicyList",
          "names kind/plural/singular/listKind")
    check(names.get("shortNames") == ["mp"], "shortNames [mp]")
    check("maskmesh" in names.get("categories", []), "category maskmesh")
    versions = spec.get("versions", [])
    check([v.get("name") for v in versions] == ["v1alpha1"], "one version, v1alpha1")
    v = versions[0] if versions else {}
    check(v.get("served") is True and v.get("storage") is True, "v1alpha1 served and storage")
    check(v.get("subresources", {}).get("status") == {}, "status subresource")
    cols = {c.get("name"): c for c in v.get("additionalPrinterColumns", [])}
    check(cols.get("Ready", {}).get("jsonPath") == '.status.conditions[?(@.type=="Ready")].status',
          "printer column Ready from the Ready condition")
    check(cols.get("Mode", {}).get("jsonPath") == ".spec.mode", "printer column Mode")
    check(cols.get("Rules", {}).get("jsonPath") == ".status.ruleCount"
          and cols.get("Rules", {}).get("type") == "integer", "printer column Rules from status.ruleCount")
    check(cols.get("Age", {}).get("type") == "date", "printer column Age")
    for c in cols.values():
        check(c.get("jsonPath", "").startswith("."), f"printer column {c.get('name')}: jsonPath starts with '.'")
        check(c.get("type") in ("integer", "number", "string", "boolean", "date"),
              f"printer column {c.get('name')}: type")

    root = v.get("schema", {}).get("openAPIV3Schema", {})
    check(root.get("type") == "object", "root schema is an object")
    errors = []
    walk(root, "", False, errors)
    for ok, msg in errors:
        check(ok, msg)

    # every field docs/policy.md documents
    for f in ["spec.selector.matchLabels", "spec.selector.matchExpressions", "spec.port", "spec.mode",
              "spec.onError", "spec.direction", "spec.rules.[].name", "spec.rules.[].fields",
              "spec.rules.[].detectors", "spec.rules.[].patterns.[].name", "spec.rules.[].patterns.[].regex",
              "spec.rules.[].contentTypes", "spec.rules.[].action.type", "spec.rules.[].action.replacement",
              "spec.rules.[].action.keepFirst", "spec.rules.[].action.keepLast", "spec.rules.[].action.char",
              "spec.rules.[].action.preserveFormat", "spec.rules.[].action.key", "spec.rules.[].action.value",
              "spec.headers.[].name", "spec.headers.[].action.type", "spec.exemptions.[].principals",
              "spec.exemptions.[].rules", "spec.network.allowFrom.[].podSelector",
              "spec.network.allowFrom.[].namespaceSelector", "spec.network.allowFrom.[].ipBlock.cidr",
              "spec.network.allowFrom.[].ipBlock.except", "status.observedGeneration",
              "status.conditions.[].type", "status.conditions.[].status", "status.conditions.[].reason",
              "spec.defaultDeny.body.fields", "spec.defaultDeny.body.action.type",
              "spec.defaultDeny.headers.names", "spec.defaultDeny.headers.action.type",
              "status.conditions.[].message", "status.conditions.[].lastTransitionTime",
              "status.conditions.[].observedGeneration", "status.configMap", "status.networkPolicy",
              "status.ruleCount", "spec.grpc.descriptorSet.configMapKeyRef.name",
              "spec.grpc.descriptorSet.configMapKeyRef.key", "spec.grpc.scanBytes"]:
        check(get(root, f) is not None, f"field {f} is in the schema")

    def enum(path):
        return (get(root, path) or {}).get("enum")

    check(enum("spec.mode") == ["enforce", "audit"] and get(root, "spec.mode").get("default") == "enforce",
          "mode enum enforce|audit, default enforce")
    check(enum("spec.onError") == ["block", "redact-all", "passthrough"]
          and get(root, "spec.onError").get("default") == "block", "onError enum, default block")
    check(enum("spec.unlistedTypes") == ["block", "detect", "pass"]
          and get(root, "spec.unlistedTypes").get("default") == "detect",
          "unlistedTypes enum, default detect (the model's default)")
    ws = get(root, "spec.websocket.maxMessageBytes") or {}
    check(enum("spec.websocket.binary") == ["refuse", "pass"]
          and get(root, "spec.websocket.binary").get("default") == "refuse"
          and ws.get("minimum") == 1 and ws.get("maximum") == 64 << 20
          and ws.get("default") == 1 << 20,
          "websocket.binary refuse|pass, default refuse; maxMessageBytes 1..64 MiB, default 1 MiB "
          "(lib/policy's MM_POLICY_WS_MSG_*)")
    check(enum("spec.direction") == ["response", "request", "both"]
          and get(root, "spec.direction").get("default") == "response", "direction enum, default response")
    actions = ["redact", "mask", "hash", "tokenize", "remove", "replace"]
    check(enum("spec.rules.[].action.type") == actions + ["encrypt"], "rule action type enum")
    check(enum("spec.reveal.[].rules.[].action.type") == actions + ["encrypt"],
          "reveal grant action type enum")
    check(enum("spec.headers.[].action.type") == actions, "header action type enum")
    # lib/policy's build_action takes encrypt wherever the action is not a header's
    check(enum("spec.defaultDeny.body.action.type") == actions + ["encrypt"],
          "spec.defaultDeny.body.action.type enum")
    check(enum("spec.defaultDeny.headers.action.type") == actions,
          "spec.defaultDeny.headers.action.type enum")
    # ... and with the same fields and checks as a rule's action
    ra, da = get(root, "spec.rules.[].action") or {}, get(root, "spec.defaultDeny.body.action") or {}
    check(ra.get("x-kubernetes-validations") == da.get("x-kubernetes-validations"),
          "spec.defaultDeny.body.action has the CEL rules of spec.rules[].action")
    check(ra.get("properties") == da.get("properties"),
          "spec.defaultDeny.body.action has the fields of spec.rules[].action")
    check(enum("spec.rules.[].detectors.[]") == detector_registry(),
          "detector enum is the registry (lib/mask/detectors.def)")
    port = get(root, "spec.port") or {}
    check(port.get("x-kubernetes-int-or-string") is True and port.get("minimum") == 1
          and port.get("maximum") == 65535, "port is int-or-string, 1-65535")
    rules = get(root, "spec.rules") or {}
    check(rules.get("x-kubernetes-list-type") == "map" and rules.get("x-kubernetes-list-map-keys") == ["name"],
          "rules is a list-map keyed by name")
    for a in ("spec.rules.[].action", "spec.headers.[].action", "spec.defaultDeny.body.action",
              "spec.defaultDeny.headers.action"):
        act = get(root, a) or {}
        r = rules_text(act)
        check("'tokenize'" in r and "has(self.key)" in r, f"{a}: CEL tokenize requires key")
        check("'replace'" in r and "has(self.value)" in r, f"{a}: CEL replace requires value")
        check("self.keepFirst" in r and "self.keepLast" in r and "<= 64" in r,
              f"{a}: CEL bounds keepFirst + keepLast")
        ch = (act.get("properties") or {}).get("char", {})
        check(ch.get("maxLength") == 1 and ch.get("minLength") == 1, f"{a}.char is one character")
        for k in ("keepFirst", "keepLast"):
            p = (act.get("properties") or {}).get(k, {})
            check(p.get("minimum") == 0 and p.get("maximum") == 64, f"{a}.{k} is 0..64")
    r = rules_text(get(root, "spec.rules.[]"))
    check("self.fields" in r and "self.detectors" in r and "self.patterns" in r,
          "CEL: a rule needs fields, detectors or patterns")
    r = rules_text(get(root, "spec"))
    check("self.exemptions" in r and "self.rules.exists" in r, "CEL: exemption rules name existing rules")
    check("'defaultDeny'" in r and "has(self.defaultDeny)" in r,
          "CEL: exemptions may name defaultDeny, and rules may be empty only with it")
    check("self.body" in rules_text(get(root, "spec.defaultDeny")), "CEL: defaultDeny needs body or headers")
    # the CRD's caps that keep CEL under the API server's cost budget are lib/policy's too
    limits = policy_limits()
    for dotted, macro in (("spec.headers", "MM_POLICY_MAX_HEADERS"),
                          ("spec.exemptions.[].rules", "MM_POLICY_MAX_EXEMPTION_RULES"),
                          ("spec.reveal", "MM_POLICY_MAX_GRANTS"),
                          ("spec.reveal.[].rules", "MM_POLICY_MAX_GRANT_RULES"),
                          ("spec.rules", "MM_POLICY_MAX_RULES")):
        check((get(root, dotted) or {}).get("maxItems") == limits.get(macro),
              f"{dotted} maxItems is lib/policy's {macro} ({limits.get(macro)})")
    g = get(root, "spec.grpc") or {}
    check(g.get("required") == ["descriptorSet"] and (get(root, "spec.grpc.descriptorSet.configMapKeyRef")
          or {}).get("required") == ["name", "key"],
          "spec.grpc needs descriptorSet.configMapKeyRef name and key (as lib/policy/grpc.c)")
    st = get(root, "status.conditions") or {}
    check(st.get("x-kubernetes-list-type") == "map" and st.get("x-kubernetes-list-map-keys") == ["type"],
          "status.conditions is a list-map keyed by type")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
