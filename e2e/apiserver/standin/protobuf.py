"""Decode the Kubernetes protobuf envelope for the kinds kubectl's typed clients send.

kubectl >= 1.30's imperative generators (`create namespace`, `create configmap`, `create secret`)
POST `application/vnd.kubernetes.protobuf`: the magic `k8s\\0` then a runtime.Unknown
{typeMeta(1){apiVersion(1), kind(2)}, raw(2), contentEncoding(3), contentType(4)} whose raw is the
object message (field numbers from k8s.io/api/core/v1/generated.proto and apimachinery's
meta/v1/generated.proto). Only Namespace, ConfigMap and Secret are decoded.
"""

import base64
import datetime

MAGIC = b'k8s\x00'


class ProtoError(ValueError):
    pass


def _varint(b, i):
    n = 0
    shift = 0
    while True:
        if i >= len(b):
            raise ProtoError('truncated varint')
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        if not c & 0x80:
            return n, i
        shift += 7
        if shift > 63:
            raise ProtoError('varint too long')


def fields(b):
    """[(number, value)] where value is int (varint) or bytes (length-delimited)."""
    out = []
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise ProtoError('truncated field %d' % num)
            v = b[i:i + n]
            i += n
        elif wt == 1:
            v = int.from_bytes(b[i:i + 8], 'little')
            i += 8
        elif wt == 5:
            v = int.from_bytes(b[i:i + 4], 'little')
            i += 4
        else:
            raise ProtoError('unsupported wire type %d' % wt)
        out.append((num, v))
    return out


def _s(v):
    return v.decode('utf-8') if isinstance(v, bytes) else v


def _map(entries, bytes_values=False):
    out = {}
    for e in entries:
        k = v = None
        for n, x in fields(e):
            if n == 1:
                k = _s(x)
            elif n == 2:
                v = x
        if k is not None:
            out[k] = base64.b64encode(v or b'').decode() if bytes_values else _s(v or b'')
    return out


def _time(b):
    secs = 0
    for n, x in fields(b):
        if n == 1:
            secs = x
    return datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _owner_ref(b):
    names = {1: 'kind', 3: 'name', 4: 'uid', 5: 'apiVersion', 6: 'controller', 7: 'blockOwnerDeletion'}
    out = {}
    for n, x in fields(b):
        if n in names:
            out[names[n]] = bool(x) if n in (6, 7) else _s(x)
    return out


def object_meta(b):
    md = {}
    labels, annotations, refs, fins = [], [], [], []
    strs = {1: 'name', 2: 'generateName', 3: 'namespace', 5: 'uid', 6: 'resourceVersion'}
    for n, x in fields(b):
        # gogo-protobuf writes Go zero values (empty strings, 0) too: zero means unset, as in JSON
        if n in strs:
            if x:
                md[strs[n]] = _s(x)
        elif n == 7:
            if x:
                md['generation'] = x
        elif n == 8:
            if x:
                md['creationTimestamp'] = _time(x)
        elif n == 11:
            labels.append(x)
        elif n == 12:
            annotations.append(x)
        elif n == 13:
            refs.append(_owner_ref(x))
        elif n == 14:
            fins.append(_s(x))
    if labels:
        md['labels'] = _map(labels)
    if annotations:
        md['annotations'] = _map(annotations)
    if refs:
        md['ownerReferences'] = refs
    if fins:
        md['finalizers'] = fins
    return md


def _namespace(raw):
    obj = {}
    for n, x in fields(raw):
        if n == 1:
            obj['metadata'] = object_meta(x)
        elif n == 2:
            fin = [_s(v) for k, v in fields(x) if k == 1]
            obj['spec'] = {'finalizers': fin} if fin else {}
    return obj


def _configmap(raw):
    obj = {}
    data, binary = [], []
    for n, x in fields(raw):
        if n == 1:
            obj['metadata'] = object_meta(x)
        elif n == 2:
            data.append(x)
        elif n == 3:
            binary.append(x)
        elif n == 4:
            if x:
                obj['immutable'] = True
    if data:
        obj['data'] = _map(data)
    if binary:
        obj['binaryData'] = _map(binary, bytes_values=True)
    return obj


def _secret(raw):
    obj = {}
    data, sdata = [], []
    for n, x in fields(raw):
        if n == 1:
            obj['metadata'] = object_meta(x)
        elif n == 2:
            data.append(x)
        elif n == 3:
            if x:
                obj['type'] = _s(x)
        elif n == 4:
            sdata.append(x)
        elif n == 5:
            if x:
                obj['immutable'] = True
    if data:
        obj['data'] = _map(data, bytes_values=True)
    if sdata:
        obj['stringData'] = _map(sdata)
    return obj


DECODERS = {('v1', 'Namespace'): _namespace, ('v1', 'ConfigMap'): _configmap, ('v1', 'Secret'): _secret}


def decode(body):
    """-> a JSON-shaped object; ProtoError when it is not one of the decodable kinds."""
    if not body.startswith(MAGIC):
        raise ProtoError('missing the k8s protobuf magic prefix')
    api_version = kind = ''
    raw = b''
    for n, x in fields(body[len(MAGIC):]):
        if n == 1:
            for m, y in fields(x):
                if m == 1:
                    api_version = _s(y)
                elif m == 2:
                    kind = _s(y)
        elif n == 2:
            raw = x
        elif n == 3 and x:
            raise ProtoError('content encoding %r not supported' % _s(x))
    dec = DECODERS.get((api_version, kind))
    if dec is None:
        raise ProtoError('protobuf bodies of %s, Kind=%s are not decoded by this stand-in (send JSON)'
                         % (api_version, kind))
    obj = {'apiVersion': api_version, 'kind': kind}
    obj.update(dec(raw))
    return obj
