"""/openapi/v2 (protobuf, minimal) and /openapi/v3 (JSON, per group-version) documents."""

import copy
import hashlib
import json


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(num, data):
    return _varint((num << 3) | 2) + _varint(len(data)) + data


def openapi_v2_proto(version):
    """A gnostic openapi_v2.Document with swagger, info and empty paths/definitions.

    kubectl downloads it for client-side validation and finds no schemas, so it relies on
    the server (fieldValidation) instead."""
    info = _field_bytes(1, b'Kubernetes') + _field_bytes(2, version.encode())
    return (_field_bytes(1, b'2.0') + _field_bytes(2, info) + _field_bytes(8, b'') + _field_bytes(9, b''))


OBJECT_META = {
    'description': 'ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.',
    'type': 'object',
    'properties': {
        'name': {'type': 'string', 'description': 'Name must be unique within a namespace.'},
        'generateName': {'type': 'string', 'description': 'GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided.'},
        'namespace': {'type': 'string', 'description': 'Namespace defines the space within which each name must be unique.'},
        'uid': {'type': 'string', 'description': 'UID is the unique in time and space value for this object.'},
        'resourceVersion': {'type': 'string', 'description': 'An opaque value that represents the internal version of this object.'},
        'generation': {'type': 'integer', 'format': 'int64', 'description': 'A sequence number representing a specific generation of the desired state.'},
        'creationTimestamp': {'type': 'string', 'format': 'date-time', 'description': 'CreationTimestamp is a timestamp representing the server time when this object was created.'},
        'deletionTimestamp': {'type': 'string', 'format': 'date-time', 'description': 'DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.'},
        'labels': {'type': 'object', 'additionalProperties': {'type': 'string'}, 'description': 'Map of string keys and values that can be used to organize and categorize objects.'},
        'annotations': {'type': 'object', 'additionalProperties': {'type': 'string'}, 'description': 'Annotations is an unstructured key value map stored with a resource.'},
        'ownerReferences': {'type': 'array', 'items': {'type': 'object'}, 'description': 'List of objects depended by this object.',
                            'x-kubernetes-patch-merge-key': 'uid', 'x-kubernetes-patch-strategy': 'merge'},
        'finalizers': {'type': 'array', 'items': {'type': 'string'}, 'description': 'Must be empty before the object is deleted from the registry.'},
        'managedFields': {'type': 'array', 'items': {'type': 'object'}, 'description': 'ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.'},
    },
}
META_REF = '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'
LIST_META_REF = '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta'

BUILTIN_PREFIX = {
    '': 'io.k8s.api.core', 'events.k8s.io': 'io.k8s.api.events',
    'networking.k8s.io': 'io.k8s.api.networking', 'coordination.k8s.io': 'io.k8s.api.coordination',
    'apiextensions.k8s.io': 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions',
    'admissionregistration.k8s.io': 'io.k8s.api.admissionregistration',
}


def schema_name(rt, kind=None):
    kind = kind or rt.kind
    if rt.is_cr:
        rev = '.'.join(reversed(rt.group.split('.')))
        return '%s.%s.%s' % (rev, rt.version, kind)
    return '%s.%s.%s' % (BUILTIN_PREFIX.get(rt.group, 'io.k8s.api'), rt.version, kind)


def _query(name, desc):
    return {'name': name, 'in': 'query', 'description': desc, 'schema': {'type': 'string', 'uniqueItems': True}}


COMMON_WRITE = [
    _query('dryRun', 'When present, indicates that modifications should not be persisted.'),
    _query('fieldManager', 'fieldManager is a name associated with the actor or entity that is making these changes.'),
    _query('fieldValidation', 'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.'),
]


def _op(rt, action, desc, params=(), body_types=None, ref=None):
    op = {'description': desc, 'operationId': '%s%s' % (action, rt.kind),
          'parameters': list(params),
          'responses': {'200': {'description': 'OK', 'content': {'application/json': {'schema': {'$ref': ref}}}}} if ref else
          {'200': {'description': 'OK'}},
          'x-kubernetes-action': action,
          'x-kubernetes-group-version-kind': {'group': rt.group, 'version': rt.version, 'kind': rt.kind}}
    if body_types:
        op['requestBody'] = {'content': {t: {'schema': {'$ref': ref or '#/components/schemas/%s' % schema_name(rt)}}
                                         for t in body_types}, 'required': True}
    return op


def _crd_schema(rt):
    s = copy.deepcopy(rt.schema or {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True})
    props = s.setdefault('properties', {})
    props['metadata'] = {'allOf': [{'$ref': META_REF}], 'description': "Standard object's metadata."}
    props.setdefault('apiVersion', {'type': 'string', 'description': 'APIVersion defines the versioned schema of this representation of an object.'})
    props.setdefault('kind', {'type': 'string', 'description': 'Kind is a string value representing the REST resource this object represents.'})
    s['x-kubernetes-group-version-kind'] = [{'group': rt.group, 'version': rt.version, 'kind': rt.kind}]
    return s


def _builtin_schema(rt):
    return {
        'description': '%s (served by the maskmesh e2e API server; fields are not described here).' % rt.kind,
        'type': 'object',
        'properties': {
            'apiVersion': {'type': 'string', 'description': 'APIVersion defines the versioned schema of this representation of an object.'},
            'kind': {'type': 'string', 'description': 'Kind is a string value representing the REST resource this object represents.'},
            'metadata': {'allOf': [{'$ref': META_REF}], 'description': "Standard object's metadata."},
        },
        'x-kubernetes-group-version-kind': [{'group': rt.group, 'version': rt.version, 'kind': rt.kind}],
    }


def group_version_doc(rts, version):
    schemas = {
        'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta': OBJECT_META,
        'io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta': {
            'type': 'object', 'description': 'ListMeta describes metadata that synthetic resources must have.',
            'properties': {'resourceVersion': {'type': 'string'}, 'continue': {'type': 'string'},
                           'remainingItemCount': {'type': 'integer', 'format': 'int64'}}},
    }
    paths = {}
    for rt in rts:
        name = schema_name(rt)
        schemas[name] = _crd_schema(rt) if rt.is_cr else _builtin_schema(rt)
        lname = schema_name(rt, rt.kind + 'List')
        schemas[lname] = {
            'type': 'object', 'required': ['items'],
            'description': '%sList is a list of %s' % (rt.kind, rt.kind),
            'properties': {'apiVersion': {'type': 'string'}, 'kind': {'type': 'string'},
                           'items': {'type': 'array', 'items': {'$ref': '#/components/schemas/' + name}},
                           'metadata': {'allOf': [{'$ref': LIST_META_REF}]}},
            'x-kubernetes-group-version-kind': [{'group': rt.group, 'version': rt.version, 'kind': rt.kind + 'List'}],
        }
        base = '/api/%s' % rt.version if not rt.group else '/apis/%s/%s' % (rt.group, rt.version)
        coll = base + ('/namespaces/{namespace}/' if rt.namespaced else '/') + rt.resource
        ref = '#/components/schemas/' + name
        patch_types = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml']
        paths[coll] = {
            'get': _op(rt, 'list', 'list or watch objects of kind %s' % rt.kind, ref='#/components/schemas/' + lname),
            'post': _op(rt, 'post', 'create a %s' % rt.kind, COMMON_WRITE, ['*/*'], ref),
        }
        paths[coll + '/{name}'] = {
            'get': _op(rt, 'get', 'read the specified %s' % rt.kind, ref=ref),
            'put': _op(rt, 'put', 'replace the specified %s' % rt.kind, COMMON_WRITE, ['*/*'], ref),
            'patch': _op(rt, 'patch', 'partially update the specified %s' % rt.kind,
                         COMMON_WRITE + [_query('force', 'Force is going to "force" Apply requests.')],
                         patch_types, ref),
            'delete': _op(rt, 'delete', 'delete a %s' % rt.kind, [_query('dryRun', 'dry run')]),
        }
        if rt.status:
            paths[coll + '/{name}/status'] = {
                'get': _op(rt, 'get', 'read status of the specified %s' % rt.kind, ref=ref),
                'put': _op(rt, 'put', 'replace status of the specified %s' % rt.kind, COMMON_WRITE, ['*/*'], ref),
                'patch': _op(rt, 'patch', 'partially update status of the specified %s' % rt.kind,
                             COMMON_WRITE, patch_types, ref),
            }
    return {'openapi': '3.0.0', 'info': {'title': 'Kubernetes', 'version': version},
            'paths': paths, 'components': {'schemas': schemas}}


def doc_hash(doc):
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()
