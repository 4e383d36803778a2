"""The API logic: routing, auth, CRUD, patch, apply, watch, discovery, admission, GC, faults."""

import base64
import copy
import datetime
import json
import random
import re
import threading
import time
import urllib.parse
import uuid

from . import admission, builtins, fieldmanager, openapi, patch as patchmod, registry, schema as schemamod
from . import protobuf, selectors, yamlmini
from .store import Expired, Store

SERVER_VERSION = {'major': '1', 'minor': '34', 'emulationMajor': '1', 'emulationMinor': '34',
                  'minCompatibilityMajor': '1', 'minCompatibilityMinor': '33',
                  'gitVersion': 'v1.34.0-maskmesh-e2e', 'gitCommit': '0000000000000000000000000000000000000000',
                  'gitTreeState': 'clean', 'buildDate': '2026-01-01T00:00:00Z', 'goVersion': 'python3',
                  'compiler': 'gc', 'platform': 'linux/amd64'}
MAX_BODY = 3 * 1024 * 1024
NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789'
DNS1123_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
DNS1123_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
PATCH_TYPES = {'application/json-patch+json': 'json', 'application/merge-patch+json': 'merge',
               'application/strategic-merge-patch+json': 'strategic', 'application/apply-patch+yaml': 'apply'}
OPTIMISTIC = 'the object has been modified; please apply your changes to the latest version and try again'


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def status(code, reason, message, details=None, meta=None):
    st = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': meta or {}, 'status': 'Failure', 'message': message}
    if reason:
        st['reason'] = reason
    if details:
        st['details'] = details
    st['code'] = code
    return st


class APIError(Exception):
    def __init__(self, code, body, headers=None, plain=None):
        super().__init__(body.get('message') if isinstance(body, dict) else plain)
        self.code = code
        self.body = body
        self.headers = headers or {}
        self.plain = plain


def _details(rt, name):
    d = {}
    if name:
        d['name'] = name
    if rt.group:
        d['group'] = rt.group
    d['kind'] = rt.resource
    return d


def err_not_found(rt, name):
    return APIError(404, status(404, 'NotFound', '%s "%s" not found' % (rt.qualified, name), _details(rt, name)))


def err_ns_not_found(ns):
    return APIError(404, status(404, 'NotFound', 'namespaces "%s" not found' % ns, {'name': ns, 'kind': 'namespaces'}))


def err_conflict(rt, name, msg=OPTIMISTIC):
    return APIError(409, status(409, 'Conflict', 'Operation cannot be fulfilled on %s "%s": %s' % (rt.qualified, name, msg),
                                _details(rt, name)))


def err_exists(rt, name):
    return APIError(409, status(409, 'AlreadyExists', '%s "%s" already exists' % (rt.qualified, name), _details(rt, name)))


def err_bad_request(msg):
    return APIError(400, status(400, 'BadRequest', msg))


def err_invalid(group_kind, group, name, errs):
    msgs = [str(e) for e in errs]
    agg = msgs[0] if len(msgs) == 1 else '[' + ', '.join(msgs) + ']'
    d = {}
    if name is not None:
        d['name'] = name
    if group:
        d['group'] = group
    d['kind'] = group_kind.split('.')[0] if group else group_kind
    d['causes'] = [e.cause() for e in errs]
    return APIError(422, status(422, 'Invalid', '%s "%s" is invalid: %s' % (group_kind, name or '', agg), d))


def err_invalid_rt(rt, name, errs):
    return err_invalid(rt.group_kind, rt.group, name, errs)


def err_method(msg='the server does not allow this method on the requested resource'):
    return APIError(405, status(405, 'MethodNotAllowed', msg, {}))


def err_internal(msg):
    return APIError(500, status(500, 'InternalError', 'Internal error occurred: %s' % msg,
                                {'causes': [{'message': msg}]}))


NOT_FOUND_PAGE = APIError(404, None, plain='404 page not found\n')


def parse_bool(v):
    return v is not None and v.lower() in ('1', 'true', 't', 'yes', 'y')


class Request:
    """What a handler needs of one HTTP request."""

    def __init__(self, method, path, query, headers, body, user):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.user = user
        self.warnings = []

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[0] if v else default


class User:
    def __init__(self, name, groups, verbs=None, resources=None, uid=None):
        self.name = name
        self.groups = groups
        self.verbs = verbs        # None: everything
        self.resources = resources
        self.uid = uid or str(uuid.uuid5(uuid.NAMESPACE_URL, 'user:' + name))

    def allowed(self, verb, resource):
        if self.verbs is not None and verb not in self.verbs and '*' not in self.verbs:
            return False
        if self.resources is not None and resource not in self.resources and '*' not in self.resources:
            return False
        return True

    def info(self):
        return {'username': self.name, 'uid': self.uid, 'groups': self.groups}


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.fail = []            # list of dicts {code, remaining, retryAfter, plain, match}
        self.delay = 0.0
        self.delay_count = None
        self.down_until = 0.0

    def take(self, path):
        with self.lock:
            for f in self.fail:
                if f['remaining'] > 0 and (not f.get('match') or f['match'] in path):
                    f['remaining'] -= 1
                    return dict(f)
            self.fail = [f for f in self.fail if f['remaining'] > 0]
        return None

    def take_delay(self):
        with self.lock:
            if self.delay <= 0:
                return 0
            if self.delay_count is not None:
                if self.delay_count <= 0:
                    self.delay = 0
                    return 0
                self.delay_count -= 1
            return self.delay


class API:
    def __init__(self, opts):
        self.opts = opts
        self.store = Store(history_limit=opts.get('history', 20000))
        self.lock = self.store.lock
        self.types = {}            # (group, version, resource) -> ResourceType
        for rt in builtins.builtin_types():
            self.types[(rt.group, rt.version, rt.resource)] = rt
        self.faults = Faults()
        self.tokens = {}           # token -> User
        self.caller = admission.Caller(opts.get('service_hosts', {}))
        self.bookmark_interval = opts.get('bookmark_interval', 5.0)
        self.max_body = opts.get('max_body', MAX_BODY)
        self.gc_event = threading.Event()
        self.stopping = threading.Event()
        self.server_address = opts.get('address', '127.0.0.1:0')
        self.pf_flowschema = str(uuid.uuid4())
        self.pf_level = str(uuid.uuid4())
        now = now_rfc3339()
        for ns in ('default', 'kube-system', 'kube-public', 'kube-node-lease'):
            obj = {'kind': 'Namespace', 'apiVersion': 'v1', 'metadata': {'name': ns}}
            builtins.default_namespace(obj)
            obj['metadata'].update({'uid': str(uuid.uuid4()), 'creationTimestamp': now})
            obj['status'] = {'phase': 'Active'}
            self.store.put(('', 'namespaces'), '', ns, obj)
        self.gc_thread = threading.Thread(target=self._gc_loop, name='gc', daemon=True)
        self.gc_thread.start()

    # ================================================================ type lookup
    def rt_for(self, group, version, resource):
        return self.types.get((group, version, resource))

    def rt_for_kind(self, api_version, kind):
        group, _, version = api_version.rpartition('/')
        for rt in self.types.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def group_versions(self):
        gv = {}
        for rt in self.types.values():
            gv.setdefault(rt.group, [])
            if rt.version not in gv[rt.group]:
                gv[rt.group].append(rt.version)
        return gv

    # ================================================================ encoding
    def present(self, rt, obj):
        """Storage object -> what this API version serves."""
        if obj is None:
            return None
        obj = copy.deepcopy(obj)
        if builtins.is_events_v1(rt):
            obj = builtins.event_to_v1(obj)
        obj['kind'] = rt.kind
        obj['apiVersion'] = rt.api_version
        if rt.is_cr:
            return obj
        out = {'kind': rt.kind, 'apiVersion': rt.api_version}
        if 'metadata' in obj:
            out['metadata'] = builtins.order_meta(obj['metadata'])
        for k, v in obj.items():
            if k not in out:
                out[k] = v
        return out

    def to_storage(self, rt, obj):
        if builtins.is_events_v1(rt):
            return builtins.event_from_v1(obj)
        return obj

    @staticmethod
    def encode(obj, sort=False):
        return (json.dumps(obj, separators=(',', ':'), sort_keys=sort, ensure_ascii=False) + '\n').encode()

    # ================================================================ auth
    def authenticate(self, headers):
        auth = headers.get('Authorization') or ''
        if not auth.startswith('Bearer '):
            return None
        return self.tokens.get(auth[7:].strip())

    def authorize(self, user, verb, rt, ns, name, sub=None):
        res = rt.resource + ('/' + sub if sub else '')
        if user.allowed(verb, res) or (sub and user.allowed(verb, rt.resource) and user.resources is None):
            return
        what = '%s "%s"' % (rt.qualified, name) if name else rt.qualified
        where = 'in the namespace "%s"' % ns if ns else 'at the cluster scope'
        msg = '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s' % (
            what, user.name, verb, res, rt.group, where)
        d = {}
        if name:
            d['name'] = name
        if rt.group:
            d['group'] = rt.group
        d['kind'] = rt.resource
        raise APIError(403, status(403, 'Forbidden', msg, d))

    # ================================================================ routing
    def route(self, req):
        """Returns (code, body, content_type, headers) or a streaming marker."""
        parts = [urllib.parse.unquote(p) for p in req.path.strip('/').split('/')] if req.path.strip('/') else []
        m = req.method
        if parts == ['version']:
            return 200, SERVER_VERSION
        if parts in (['healthz'], ['livez'], ['readyz']):
            return 200, 'ok', 'text/plain; charset=utf-8'
        if parts == ['api']:
            host = self.server_address
            return 200, {'kind': 'APIVersions', 'versions': ['v1'],
                         'serverAddressByClientCIDRs': [{'clientCIDR': '0.0.0.0/0', 'serverAddress': host}]}
        if parts == ['apis']:
            groups = []
            for g, vs in sorted(self.group_versions().items()):
                if g == '':
                    continue
                gvs = [{'groupVersion': '%s/%s' % (g, v), 'version': v} for v in vs]
                groups.append({'name': g, 'versions': gvs, 'preferredVersion': gvs[0]})
            return 200, {'kind': 'APIGroupList', 'apiVersion': 'v1', 'groups': groups}
        if parts[:1] == ['openapi']:
            return self.route_openapi(parts)
        if parts == ['_fault']:
            return self.route_fault(req)
        if parts == ['_maskmesh', 'fault']:
            return self.route_fault_keys(req)
        if parts[:2] == ['api', 'v1']:
            group, version, rest = '', 'v1', parts[2:]
        elif parts[:1] == ['apis'] and len(parts) >= 2:
            group = parts[1]
            if len(parts) == 2:
                vs = self.group_versions().get(group)
                if not vs:
                    raise NOT_FOUND_PAGE
                gvs = [{'groupVersion': '%s/%s' % (group, v), 'version': v} for v in vs]
                return 200, {'kind': 'APIGroup', 'apiVersion': 'v1', 'name': group, 'versions': gvs,
                             'preferredVersion': gvs[0]}
            version, rest = parts[2], parts[3:]
        else:
            raise NOT_FOUND_PAGE
        if version not in self.group_versions().get(group, []):
            raise NOT_FOUND_PAGE
        if not rest:
            if m != 'GET':
                raise err_method()
            res = []
            for rt in sorted((t for t in self.types.values() if t.group == group and t.version == version),
                             key=lambda t: t.resource):
                res.append(rt.discovery())
                if rt.status:
                    res.append({'name': rt.resource + '/status', 'singularName': '', 'namespaced': rt.namespaced,
                                'kind': rt.kind, 'verbs': ['get', 'patch', 'update']})
            return 200, {'kind': 'APIResourceList', 'apiVersion': 'v1',
                         'groupVersion': '%s/%s' % (group, version) if group else version, 'resources': res}
        ns = None
        if rest[0] == 'namespaces' and len(rest) >= 3 and not (group == '' and len(rest) == 3 and rest[2] in ('status', 'finalize')):
            ns = rest[1]
            rest = rest[2:]
            rt = self.rt_for(group, version, rest[0])
            if rt is None or not rt.namespaced:
                raise NOT_FOUND_PAGE
        else:
            rt = self.rt_for(group, version, rest[0])
            if rt is None:
                raise NOT_FOUND_PAGE
            if rt.namespaced and len(rest) > 1:
                raise NOT_FOUND_PAGE
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            raise NOT_FOUND_PAGE
        if sub is not None and not (sub == 'status' and rt.status):
            raise NOT_FOUND_PAGE
        if name is None:
            if m == 'GET':
                if parse_bool(req.q('watch')):
                    self.authorize(req.user, 'watch', rt, ns, None)
                    return ('watch', rt, ns)
                self.authorize(req.user, 'list', rt, ns, None)
                return self.list(req, rt, ns)
            if m == 'POST':
                self.authorize(req.user, 'create', rt, ns, None)
                return self.create(req, rt, ns)
            if m == 'DELETE':
                self.authorize(req.user, 'deletecollection', rt, ns, None)
                return self.delete_collection(req, rt, ns)
            raise err_method()
        if m == 'GET':
            self.authorize(req.user, 'get', rt, ns, name, sub)
            return self.get(req, rt, ns, name)
        if m == 'PUT':
            self.authorize(req.user, 'update', rt, ns, name, sub)
            return self.update(req, rt, ns, name, sub)
        if m == 'PATCH':
            self.authorize(req.user, 'patch', rt, ns, name, sub)
            return self.patch(req, rt, ns, name, sub)
        if m == 'DELETE' and sub is None:
            self.authorize(req.user, 'delete', rt, ns, name)
            return self.delete(req, rt, ns, name)
        raise err_method()

    # ================================================================ openapi / faults
    def route_openapi(self, parts):
        if parts == ['openapi', 'v2']:
            return 200, openapi.openapi_v2_proto(SERVER_VERSION['gitVersion']), 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf'
        if parts == ['openapi', 'v3']:
            paths = {}
            for g, vs in self.group_versions().items():
                for v in vs:
                    key = 'api/%s' % v if g == '' else 'apis/%s/%s' % (g, v)
                    doc = self.gv_doc(g, v)
                    paths[key] = {'serverRelativeURL': '/openapi/v3/%s?hash=%s' % (key, openapi.doc_hash(doc))}
            return 200, {'paths': dict(sorted(paths.items()))}
        if parts[:2] == ['openapi', 'v3'] and len(parts) >= 4:
            if parts[2] == 'api' and len(parts) == 4:
                g, v = '', parts[3]
            elif parts[2] == 'apis' and len(parts) == 5:
                g, v = parts[3], parts[4]
            else:
                raise NOT_FOUND_PAGE
            if v not in self.group_versions().get(g, []):
                raise NOT_FOUND_PAGE
            return 200, self.gv_doc(g, v)
        raise NOT_FOUND_PAGE

    def route_fault_keys(self, req):
        """The key-style fault API (the contract standin.py offers): {"dropWatches": true},
        {"compact": true}, {"fail": {...}|null}, {"delay": s}, {"restart": true}."""
        if req.user.verbs is not None:
            raise APIError(403, status(403, 'Forbidden', 'forbidden: User "%s" cannot post path "/_maskmesh/fault"'
                                       % req.user.name, {}))
        if req.method == 'POST':
            try:
                f = json.loads(req.body or b'{}')
            except ValueError as e:
                raise err_bad_request('invalid fault JSON: %s' % e)
            if not isinstance(f, dict):
                raise err_bad_request('a fault is a JSON object')
            unknown = set(f) - {'dropWatches', 'compact', 'fail', 'delay', 'restart'}
            if unknown:
                raise err_bad_request('unknown fault keys: %s' % ', '.join(sorted(unknown)))
            if f.get('dropWatches'):
                self.store.drop_watches()
            if f.get('compact'):
                self.store.compact()
            if 'fail' in f:
                with self.faults.lock:
                    self.faults.fail = []
                    if f['fail']:
                        fl = f['fail']
                        code = int(fl.get('code', 500))
                        if code < 400 or code > 599:
                            raise err_bad_request('code must be 4xx or 5xx')
                        self.faults.fail.append({'code': code, 'remaining': int(fl.get('count', 1)),
                                                 'retryAfter': fl.get('retryAfter'), 'plain': bool(fl.get('plain')),
                                                 'match': fl.get('path', '')})
            if 'delay' in f:
                with self.faults.lock:
                    self.faults.delay = float(f['delay'] or 0)
                    self.faults.delay_count = None
            if f.get('restart'):
                threading.Thread(target=self.opts['restart'], args=(1.0,), daemon=True).start()
        elif req.method != 'GET':
            raise err_method()
        with self.faults.lock:
            fl = [x for x in self.faults.fail if x['remaining'] > 0]
            return 200, {'fail': ({'code': fl[0]['code'], 'count': fl[0]['remaining'], 'retryAfter': fl[0]['retryAfter'],
                                   'path': fl[0]['match']} if fl else None),
                         'delay': self.faults.delay, 'resourceVersion': str(self.store.rv),
                         'compactedResourceVersion': str(self.store.compacted_rv)}

    def gv_doc(self, g, v):
        rts = sorted((t for t in self.types.values() if t.group == g and t.version == v), key=lambda t: t.resource)
        return openapi.group_version_doc(rts, SERVER_VERSION['gitVersion'])

    def route_fault(self, req):
        if req.user.verbs is not None:
            raise APIError(403, status(403, 'Forbidden', 'forbidden: User "%s" cannot post path "/_fault"'
                                       % req.user.name, {}))
        if req.method == 'GET':
            with self.faults.lock:
                return 200, {'fail': [dict(f) for f in self.faults.fail], 'delay': self.faults.delay,
                             'delayCount': self.faults.delay_count, 'resourceVersion': str(self.store.rv),
                             'compactedResourceVersion': str(self.store.compacted_rv)}
        if req.method != 'POST':
            raise err_method()
        try:
            f = json.loads(req.body or b'{}')
        except ValueError as e:
            raise err_bad_request('invalid fault JSON: %s' % e)
        if not isinstance(f, dict):
            raise err_bad_request('a fault is a JSON object')
        action = f.get('action')
        if action == 'drop-watches':
            self.store.drop_watches()
        elif action == 'compact':
            self.store.compact()
        elif action == 'fail':
            code = int(f.get('code', 500))
            if code < 400 or code > 599:
                raise err_bad_request('code must be 4xx or 5xx')
            with self.faults.lock:
                self.faults.fail.append({'code': code, 'remaining': int(f.get('count', 1)),
                                         'retryAfter': f.get('retryAfter', 1 if code in (429, 503) else None),
                                         'plain': bool(f.get('plain')), 'match': f.get('match', '')})
        elif action == 'delay':
            with self.faults.lock:
                self.faults.delay = float(f.get('seconds', 0))
                self.faults.delay_count = int(f['count']) if 'count' in f else None
        elif action == 'restart':
            secs = float(f.get('seconds', 1.0))
            threading.Thread(target=self.opts['restart'], args=(secs,), daemon=True).start()
        elif action == 'reset':
            with self.faults.lock:
                self.faults.fail = []
                self.faults.delay = 0
                self.faults.delay_count = None
        else:
            raise err_bad_request('unknown fault action %r (drop-watches, compact, fail, delay, restart, reset)' % action)
        return 200, {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success',
                     'message': 'fault %s applied' % action, 'code': 200}

    # ================================================================ body decoding
    def decode_body(self, req, rt=None):
        ctype = (req.headers.get('Content-Type') or 'application/json').split(';')[0].strip().lower()
        body = req.body or b''
        try:
            if ctype in ('application/yaml', 'application/apply-patch+yaml'):
                obj = yamlmini.loads_json_or_yaml(body)
            elif ctype == 'application/vnd.kubernetes.protobuf':
                try:
                    obj = protobuf.decode(body)
                except protobuf.ProtoError as e:
                    raise APIError(415, status(415, 'UnsupportedMediaType', str(e)))
            elif ctype in ('application/json', '*/*', '') or ctype.endswith('+json'):
                obj = json.loads(body.decode('utf-8'), object_pairs_hook=_no_dup_pairs)
            else:
                raise APIError(415, status(415, 'UnsupportedMediaType',
                                           'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml'))
        except (ValueError, yamlmini.YAMLError) as e:
            if isinstance(e, DuplicateField):
                raise err_bad_request('%s: strict decoding error: duplicate field "%s"' % (
                    self._decode_prefix(rt), e.args[0]) if rt else str(e))
            raise err_bad_request('the request body could not be decoded: %s' % e if rt is None else
                                  "%s: couldn't get version/kind; json parse error: %s" % (self._decode_prefix(rt), e))
        return obj

    @staticmethod
    def _decode_prefix(rt):
        return '%s in version "%s" cannot be handled as a %s' % (rt.kind, rt.version, rt.kind)

    def check_kind(self, rt, obj):
        if not isinstance(obj, dict):
            raise err_bad_request('%s: json: cannot unmarshal into Go value of type struct' % self._decode_prefix(rt))
        kind = obj.get('kind')
        apiv = obj.get('apiVersion')
        if rt.is_cr and (not kind or not apiv):
            raise err_bad_request("Object 'Kind' is missing in '%s'" % json.dumps(obj, separators=(',', ':'))[:200])
        if kind and kind != rt.kind:
            raise err_bad_request('%s: the kind "%s" in the body does not match the expected kind "%s"' % (
                self._decode_prefix(rt), kind, rt.kind))
        if apiv and apiv != rt.api_version:
            raise err_bad_request('the API version in the data (%s) does not match the expected API version (%s)'
                                  % (apiv, rt.api_version))
        md = obj.get('metadata')
        if md is not None and not isinstance(md, dict):
            raise err_bad_request('%s: metadata must be an object' % self._decode_prefix(rt))

    def field_manager(self, req, required=False):
        fm = req.q('fieldManager')
        if fm is not None and (len(fm) > 128 or not all(0x20 <= ord(c) < 0x7f for c in fm)):
            raise err_invalid('PatchOptions.meta.k8s.io' if required else 'CreateOptions.meta.k8s.io', None, '',
                              [schemamod.invalid('fieldManager', fm, 'must be less than 128 characters and printable')])
        if fm:
            return fm
        ua = req.headers.get('User-Agent') or ''
        return ua.split('/')[0] if ua else ''

    def dry_run(self, req, kind_name):
        vals = req.query.get('dryRun') or []
        for v in vals:
            if v != 'All':
                raise err_invalid(kind_name, 'meta.k8s.io', '', [schemamod.not_supported('dryRun', vals, ['All'])])
        return bool(vals)

    def field_validation(self, req):
        fv = req.q('fieldValidation') or 'Warn'
        if fv not in ('Ignore', 'Warn', 'Strict'):
            raise err_bad_request('invalid fieldValidation directive: %s' % fv)
        return fv

    # ================================================================ common preparation
    def prepare_cr(self, req, rt, obj, fv):
        """Prune unknown fields, apply defaults. Strict → 400, Warn → warnings."""
        unknown = []
        if rt.schema is not None:
            unknown = schemamod.prune(rt.schema, obj)
            md = obj.get('metadata') or {}
            allowed = set(openapi.OBJECT_META['properties']) | {'selfLink', 'deletionGracePeriodSeconds'}
            for k in list(md):
                if k not in allowed:
                    unknown.append('metadata.' + k)
                    del md[k]
            schemamod.apply_defaults(rt.schema, obj)
        if unknown:
            if fv == 'Strict':
                raise err_bad_request('%s: strict decoding error: %s' % (
                    self._decode_prefix(rt), ', '.join('unknown field "%s"' % u for u in unknown)))
            if fv == 'Warn':
                req.warnings.extend('unknown field "%s"' % u for u in unknown)

    def validate_meta(self, rt, obj, creating):
        errs = []
        md = obj.get('metadata') or {}
        name = md.get('name')
        if not name and not (creating and md.get('generateName')):
            errs.append(schemamod.required('metadata.name', 'name or generateName is required'))
        elif name:
            rx = DNS1123_LABEL if rt.resource == 'namespaces' else DNS1123_SUBDOMAIN
            if rt.resource in ('events',) or rt.is_cr and name:
                rx = DNS1123_SUBDOMAIN
            if not rx.match(name) or len(name) > (63 if rx is DNS1123_LABEL else 253):
                kind = 'RFC 1123 label' if rx is DNS1123_LABEL else 'RFC 1123 subdomain'
                errs.append(schemamod.invalid('metadata.name', name,
                                              "a lowercase %s must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character" % kind
                                              if rx is DNS1123_SUBDOMAIN else
                                              "a lowercase %s must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character" % kind))
        for k, v in (md.get('labels') or {}).items():
            if not selectors.valid_label_key(k):
                errs.append(schemamod.invalid('metadata.labels', k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
            if not selectors.valid_label_value(v):
                errs.append(schemamod.invalid('metadata.labels', v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
        for k, v in (md.get('annotations') or {}).items():
            if not isinstance(v, str):
                errs.append(schemamod.invalid('metadata.annotations', v, 'must be a string'))
        for i, ref in enumerate(md.get('ownerReferences') or []):
            for f in ('apiVersion', 'kind', 'name', 'uid'):
                if not (ref or {}).get(f):
                    errs.append(schemamod.invalid('metadata.ownerReferences.%s' % f, '', '%s must not be empty' % f))
        return errs

    def validate_object(self, rt, obj, creating, old=None):
        errs = self.validate_meta(rt, obj, creating)
        if rt.is_cr and rt.schema is not None:
            body = {k: v for k, v in obj.items() if k != 'metadata'}
            errs += schemamod.validate(rt.schema, body)
        key = (rt.group, rt.resource)
        if key == ('apiextensions.k8s.io', 'customresourcedefinitions'):
            errs += self.validate_crd(obj, old)
        elif key == ('', 'pods'):
            cs = (obj.get('spec') or {}).get('containers')
            if not cs:
                errs.append(schemamod.required('spec.containers'))
            else:
                for i, c in enumerate(cs):
                    if not (c or {}).get('name'):
                        errs.append(schemamod.required('spec.containers[%d].name' % i))
                    if not (c or {}).get('image'):
                        errs.append(schemamod.required('spec.containers[%d].image' % i))
            if old is not None:
                oc = [(c.get('name'), c.get('image')) for c in (old.get('spec') or {}).get('containers') or []]
                nc = [(c.get('name'), c.get('image')) for c in (obj.get('spec') or {}).get('containers') or []]
                if [n for n, _ in oc] != [n for n, _ in nc]:
                    errs.append(schemamod.forbidden('spec', 'pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)'))
        elif key == ('', 'configmaps') and old is not None and old.get('immutable'):
            if obj.get('data') != old.get('data') or obj.get('binaryData') != old.get('binaryData'):
                errs.append(schemamod.forbidden('data', 'field is immutable when `immutable` is set'))
        elif key == ('', 'secrets'):
            for k, v in (obj.get('data') or {}).items():
                try:
                    base64.b64decode(v, validate=True)
                except (ValueError, TypeError):
                    errs.append(schemamod.invalid('data[%s]' % k, '<secret contents redacted>', 'illegal base64 data'))
        elif key[0] == 'admissionregistration.k8s.io':
            for i, w in enumerate(obj.get('webhooks') or []):
                p = 'webhooks[%d]' % i
                if not (w or {}).get('name'):
                    errs.append(schemamod.required(p + '.name'))
                if not (w or {}).get('sideEffects'):
                    errs.append(schemamod.required(p + '.sideEffects'))
                elif w['sideEffects'] not in ('None', 'NoneOnDryRun'):
                    errs.append(schemamod.not_supported(p + '.sideEffects', w['sideEffects'], ['None', 'NoneOnDryRun']))
                if not (w or {}).get('admissionReviewVersions'):
                    errs.append(schemamod.required(p + '.admissionReviewVersions'))
                cc = (w or {}).get('clientConfig') or {}
                if bool(cc.get('url')) == bool(cc.get('service')):
                    errs.append(schemamod.required(p + '.clientConfig', 'exactly one of url or service is required'))
                if cc.get('caBundle'):
                    try:
                        base64.b64decode(cc['caBundle'], validate=True)
                    except (ValueError, TypeError):
                        errs.append(schemamod.invalid(p + '.clientConfig.caBundle', '', 'illegal base64 data'))
                fp = (w or {}).get('failurePolicy')
                if fp not in (None, 'Fail', 'Ignore'):
                    errs.append(schemamod.not_supported(p + '.failurePolicy', fp, ['Fail', 'Ignore']))
        return errs

    # ================================================================ CRDs
    def validate_crd(self, obj, old):
        errs = []
        spec = obj.get('spec') or {}
        names = spec.get('names') or {}
        group = spec.get('group')
        plural = names.get('plural')
        name = (obj.get('metadata') or {}).get('name')
        if not group:
            errs.append(schemamod.required('spec.group'))
        elif '.' not in group:
            errs.append(schemamod.invalid('spec.group', group, 'should be a domain with at least one dot'))
        if not plural:
            errs.append(schemamod.required('spec.names.plural'))
        if not names.get('kind'):
            errs.append(schemamod.required('spec.names.kind'))
        if plural and group and name != '%s.%s' % (plural, group):
            errs.append(schemamod.invalid('metadata.name', name, 'must be spec.names.plural+"."+spec.group'))
        if spec.get('scope') not in ('Namespaced', 'Cluster'):
            errs.append(schemamod.not_supported('spec.scope', spec.get('scope'), ['Cluster', 'Namespaced']))
        versions = spec.get('versions') or []
        if not versions:
            errs.append(schemamod.required('spec.versions', 'must have exactly one version marked as storage version'))
        elif sum(1 for v in versions if (v or {}).get('storage')) != 1:
            errs.append(schemamod.invalid('spec.versions', versions and '', 'must have exactly one version marked as storage version'))
        for i, v in enumerate(versions):
            sch = ((v or {}).get('schema') or {}).get('openAPIV3Schema')
            if sch is None:
                errs.append(schemamod.required('spec.versions[%d].schema.openAPIV3Schema' % i, 'schemas are required'))
        if old is not None:
            if (old.get('spec') or {}).get('group') != group:
                errs.append(schemamod.invalid('spec.group', group, 'field is immutable'))
        if not errs and group:
            for v in versions:
                existing = self.types.get((group, v.get('name'), plural))
                if existing is not None and not existing.is_cr:
                    errs.append(schemamod.invalid('spec.group', group, 'is a built-in group'))
        return errs

    def crd_defaults_and_status(self, obj, now):
        spec = obj.setdefault('spec', {})
        names = spec.setdefault('names', {})
        if names.get('kind'):
            names.setdefault('singular', names['kind'].lower())
            names.setdefault('listKind', names['kind'] + 'List')
        spec.setdefault('conversion', {'strategy': 'None'})
        for v in spec.get('versions') or []:
            if isinstance(v, dict):
                sch = (v.get('schema') or {}).get('openAPIV3Schema')
                if isinstance(sch, dict):
                    sch.setdefault('type', 'object')

    def crd_status(self, obj, old_status, now):
        spec = obj.get('spec') or {}
        storage = [v.get('name') for v in spec.get('versions') or [] if v.get('storage')]
        stored = list((old_status or {}).get('storedVersions') or [])
        for s in storage:
            if s not in stored:
                stored.append(s)
        prev = {c.get('type'): c for c in (old_status or {}).get('conditions') or []}

        def cond(t, reason, msg):
            return {'type': t, 'status': 'True', 'lastTransitionTime': (prev.get(t) or {}).get('lastTransitionTime', now),
                    'reason': reason, 'message': msg}
        return {'conditions': [cond('NamesAccepted', 'NoConflicts', 'no conflicts found'),
                               cond('Established', 'InitialNamesAccepted', 'the initial names have been accepted')],
                'acceptedNames': copy.deepcopy(spec.get('names') or {}),
                'storedVersions': stored}

    def register_crd(self, crd):
        spec = crd.get('spec') or {}
        group = spec.get('group')
        names = spec.get('names') or {}
        self.unregister_crd(crd, drop_objects=False)
        for v in spec.get('versions') or []:
            if not v.get('served', True):
                continue
            subs = v.get('subresources') or {}
            sch = (v.get('schema') or {}).get('openAPIV3Schema')
            rt = registry.ResourceType(
                group, v['name'], names['plural'], names['kind'], names.get('singular', names['kind'].lower()),
                spec.get('scope') == 'Namespaced', names.get('shortNames') or [], names.get('categories') or [],
                status='status' in subs, crd=crd, generation=True, unconditional_update=False,
                columns=v.get('additionalPrinterColumns'), schema=sch)
            rt.storage = (group, names['plural'])
            self.types[(group, v['name'], names['plural'])] = rt

    def unregister_crd(self, crd, drop_objects=True):
        spec = crd.get('spec') or {}
        group = spec.get('group')
        plural = (spec.get('names') or {}).get('plural')
        for key in [k for k, t in self.types.items() if t.is_cr and k[0] == group and k[2] == plural]:
            del self.types[key]
        if drop_objects and group and plural:
            self.store.drop_storage((group, plural))

    # ================================================================ GET / LIST
    def get(self, req, rt, ns, name):
        if ns is not None:
            self.require_namespace_exists(ns, must=False)
        obj = self.store.get(rt.storage, ns, name)
        if obj is None:
            raise err_not_found(rt, name)
        return self.respond_object(req, rt, obj, 200)

    def require_namespace_exists(self, ns, must=True):
        if must and self.store.get(('', 'namespaces'), '', ns) is None:
            raise err_ns_not_found(ns)

    def parse_selectors(self, req, rt):
        try:
            lsel = selectors.parse_label_selector(req.q('labelSelector'))
        except selectors.SelectorError as e:
            raise err_bad_request(str(e))
        try:
            fsel = selectors.parse_field_selector(req.q('fieldSelector'))
        except selectors.SelectorError as e:
            raise err_bad_request(str(e))
        for k, _, _ in fsel:
            if k not in rt.field_labels:
                raise err_bad_request('field label not supported: %s' % k)
        return lsel, fsel

    def matches(self, rt, obj, lsel, fsel):
        if obj is None:
            return False
        if lsel and not selectors.labels_match(lsel, (obj.get('metadata') or {}).get('labels')):
            return False
        if fsel:
            view = self.present(rt, obj) if builtins.is_events_v1(rt) else obj
            view = dict(view)
            md = view.get('metadata') or {}
            if not rt.namespaced:
                md = dict(md, namespace='')
            view['metadata'] = md
            if not selectors.fields_match(fsel, view if not builtins.is_events_v1(rt) else obj):
                return False
        return True

    def list(self, req, rt, ns):
        lsel, fsel = self.parse_selectors(req, rt)
        rv_param = req.q('resourceVersion')
        match = req.q('resourceVersionMatch')
        limit = req.q('limit')
        cont = req.q('continue')
        try:
            limit = int(limit) if limit else 0
        except ValueError:
            raise err_bad_request('invalid limit %r' % limit)
        if match and match not in ('Exact', 'NotOlderThan'):
            raise err_invalid('ListOptions.meta.k8s.io', 'meta.k8s.io', '',
                              [schemamod.not_supported('resourceVersionMatch', match, ['Exact', 'NotOlderThan'])])
        if match and not rv_param:
            raise err_invalid('ListOptions.meta.k8s.io', 'meta.k8s.io', '',
                              [schemamod.forbidden('resourceVersionMatch', 'resourceVersionMatch is forbidden unless resourceVersion is provided')])
        if cont and rv_param:
            raise err_invalid('ListOptions.meta.k8s.io', 'meta.k8s.io', '',
                              [schemamod.forbidden('resourceVersion', 'specifying resource version is not allowed when using continue')])
        at_rv = None
        start = None
        if cont:
            try:
                tok = json.loads(base64.urlsafe_b64decode(cont + '=' * (-len(cont) % 4)))
                at_rv = int(tok['rv'])
                start = tok['start']
            except (ValueError, KeyError, TypeError):
                raise err_bad_request('continue key is not valid: illegal base64 data')
            if at_rv == -1:
                at_rv = None
        elif rv_param and rv_param != '0' and match == 'Exact':
            try:
                at_rv = int(rv_param)
            except ValueError:
                raise err_bad_request('invalid resource version: %s' % rv_param)
        elif rv_param and rv_param != '0':
            try:
                int(rv_param)
            except ValueError:
                raise err_bad_request('invalid resource version: %s' % rv_param)
        try:
            items, list_rv = self.store.list(rt.storage, ns, at_rv)
        except Expired:
            if cont:
                newtok = self._continue_token(-1, start)
                raise APIError(410, status(410, 'Expired',
                                           'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
                                           meta={'continue': newtok}))
            raise APIError(410, status(410, 'Expired', 'The resourceVersion for the provided list is too old.'))
        keyf = (lambda k: k[1]) if ns is not None or not rt.namespaced else (lambda k: '%s/%s' % k)
        if start is not None:
            items = [(k, o) for k, o in items if keyf(k) >= start]
        items = [(k, o) for k, o in items if self.matches(rt, o, lsel, fsel)]
        meta = {'resourceVersion': str(list_rv)}
        if limit and len(items) > limit:
            rest = items[limit:]
            items = items[:limit]
            meta['continue'] = self._continue_token(list_rv if cont is None or at_rv is not None else -1,
                                                    keyf(rest[0][0]))
            if not lsel and not fsel:
                meta['remainingItemCount'] = len(rest)
        objs = [o for _, o in items]
        return self.respond_list(req, rt, objs, meta)

    @staticmethod
    def _continue_token(rv, start):
        raw = json.dumps({'v': 'meta.k8s.io/v1', 'rv': rv, 'start': start}, separators=(',', ':'))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip('=')

    # ================================================================ output negotiation
    def accept(self, req):
        """-> ('json', None) | ('table', version) | ('partial', version)"""
        acc = req.headers.get('Accept') or 'application/json'
        ok_plain = False
        for part in acc.split(','):
            fields = [f.strip() for f in part.split(';')]
            mt = fields[0].lower()
            params = dict(f.split('=', 1) for f in fields[1:] if '=' in f)
            if mt in ('application/json', '*/*', 'application/*'):
                as_ = params.get('as')
                if as_ == 'Table' and params.get('g') == 'meta.k8s.io' and params.get('v') in ('v1', 'v1beta1'):
                    return ('table', params['v'])
                if as_ in ('PartialObjectMetadata', 'PartialObjectMetadataList') and params.get('g') == 'meta.k8s.io':
                    return ('partial', params.get('v', 'v1'))
                if as_ is None:
                    ok_plain = True
                    break
        if not ok_plain:
            raise APIError(406, status(406, 'NotAcceptable',
                                       'only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io'))
        return ('json', None)

    def table(self, req, rt, objs, meta, version, headers=True):
        cols, cells = registry.table_columns(rt)
        inc = req.q('includeObject') or 'Metadata'
        t = {'kind': 'Table', 'apiVersion': 'meta.k8s.io/%s' % version, 'metadata': meta}
        if headers:
            t['columnDefinitions'] = cols
        t['rows'] = [registry.table_row(rt, self.present(rt, o), cells, inc) for o in objs]
        return t

    def respond_object(self, req, rt, obj, code, extra_headers=None):
        kind, ver = self.accept(req)
        if kind == 'table':
            md = {'resourceVersion': (obj.get('metadata') or {}).get('resourceVersion', '')}
            return code, self.table(req, rt, [obj], md, ver), 'application/json', extra_headers
        if kind == 'partial':
            return code, {'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/%s' % ver,
                          'metadata': obj.get('metadata', {})}, 'application/json', extra_headers
        return code, self.present(rt, obj), 'application/json', extra_headers, rt.is_cr

    def respond_list(self, req, rt, objs, meta):
        kind, ver = self.accept(req)
        if kind == 'table':
            return 200, self.table(req, rt, objs, meta, ver)
        if kind == 'partial':
            return 200, {'kind': 'PartialObjectMetadataList', 'apiVersion': 'meta.k8s.io/%s' % ver, 'metadata': meta,
                         'items': [{'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/%s' % ver,
                                    'metadata': o.get('metadata', {})} for o in objs]}
        items = []
        for o in objs:
            p = self.present(rt, o)
            if not rt.is_cr:
                p.pop('kind', None)
                p.pop('apiVersion', None)
            items.append(p)
        lst = {'kind': rt.kind + 'List' if not rt.is_cr else (rt.crd['spec']['names'].get('listKind') or rt.kind + 'List'),
               'apiVersion': rt.api_version, 'metadata': meta, 'items': items}
        if rt.is_cr:
            lst = {'apiVersion': lst['apiVersion'], 'items': items, 'kind': lst['kind'], 'metadata': meta}
        return 200, lst, 'application/json', None, rt.is_cr

    # ================================================================ admission
    def namespace_labels(self, ns):
        if not ns:
            return {}
        o = self.store.get(('', 'namespaces'), '', ns)
        return ((o or {}).get('metadata') or {}).get('labels') or {}

    def admit(self, req, rt, op, ns, name, obj, old, sub, dry, options, mutating):
        """Run matching webhooks; returns the (possibly patched) object."""
        if rt.group == 'admissionregistration.k8s.io':
            return obj
        cfg_rt = ('admissionregistration.k8s.io', 'mutatingwebhookconfigurations' if mutating else 'validatingwebhookconfigurations')
        configs, _ = self.store.list(cfg_rt)
        hooks = []
        for _, cfg in configs:
            for w in cfg.get('webhooks') or []:
                hooks.append(w)
        if not hooks:
            return obj
        nslabels = self.namespace_labels(ns)
        for hook in hooks:
            attrs = {'operation': op, 'group': rt.group, 'version': rt.version, 'resource': rt.resource,
                     'subresource': sub or '', 'namespaced': rt.namespaced,
                     'object': obj, 'old_object': old}
            if not admission.webhook_matches(hook, attrs, nslabels):
                continue
            hname = hook.get('name', '')
            if dry and hook.get('sideEffects') not in ('None', 'NoneOnDryRun'):
                raise APIError(400, status(400, 'BadRequest', 'admission webhook "%s" does not support dry run' % hname))
            review = self.review(req, rt, op, ns, name, obj, old, sub, dry, options)
            timeout = int(hook.get('timeoutSeconds') or 10)
            try:
                resp = self.caller.call(hook, review, timeout)
                for w in resp.get('warnings') or []:
                    req.warnings.append(w)
                if not resp.get('allowed'):
                    st = admission.deny_status(hname, resp.get('status'))
                    raise APIError(st['code'], st)
                if mutating and resp.get('patch') and op in ('CREATE', 'UPDATE'):
                    ops = admission.decode_patch(resp)
                    try:
                        obj = patchmod.json_patch(obj, ops)
                    except patchmod.PatchError as e:
                        raise admission.WebhookFailed('JSON patch failed: %s' % e)
            except admission.WebhookFailed as e:
                if (hook.get('failurePolicy') or 'Fail') == 'Ignore':
                    continue
                raise err_internal('failed calling webhook "%s": %s' % (hname, e))
        return obj

    def review(self, req, rt, op, ns, name, obj, old, sub, dry, options):
        r = {'uid': admission.new_uid(),
             'kind': {'group': rt.group, 'version': rt.version, 'kind': rt.kind},
             'resource': {'group': rt.group, 'version': rt.version, 'resource': rt.resource}}
        if sub:
            r['subResource'] = sub
        r['requestKind'] = dict(r['kind'])
        r['requestResource'] = dict(r['resource'])
        if sub:
            r['requestSubResource'] = sub
        if name:
            r['name'] = name
        if ns:
            r['namespace'] = ns
        r['operation'] = op
        r['userInfo'] = req.user.info()
        r['object'] = self.present(rt, obj) if obj is not None else None
        r['oldObject'] = self.present(rt, old) if old is not None else None
        r['dryRun'] = bool(dry)
        r['options'] = options
        return {'kind': 'AdmissionReview', 'apiVersion': 'admission.k8s.io/v1', 'request': r}

    @staticmethod
    def options(kind, req, fm_explicit, extra=None):
        o = {'kind': kind, 'apiVersion': 'meta.k8s.io/v1'}
        if req.query.get('dryRun'):
            o['dryRun'] = list(req.query['dryRun'])
        if fm_explicit:
            o['fieldManager'] = fm_explicit
        if extra:
            o.update(extra)
        return o

    # ================================================================ CREATE
    def create(self, req, rt, ns, obj=None, apply_manager=None, code=201):
        dry = self.dry_run(req, 'CreateOptions.meta.k8s.io')
        fv = self.field_validation(req)
        if obj is None:
            obj = self.decode_body(req, rt)
            self.check_kind(rt, obj)
            obj = self.to_storage(rt, obj)
        manager = self.field_manager(req)
        md = obj.setdefault('metadata', {})
        if md.get('resourceVersion'):
            raise err_bad_request('resourceVersion should not be set on objects to be created')
        if rt.namespaced:
            if md.get('namespace') and md['namespace'] != ns:
                raise err_bad_request('the namespace of the provided object does not match the namespace sent on the request')
            md['namespace'] = ns
        else:
            md.pop('namespace', None)
        for k in ('uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'selfLink'):
            md.pop(k, None)
        now = now_rfc3339()
        if rt.is_cr:
            self.prepare_cr(req, rt, obj, fv)
            if rt.status:
                obj.pop('status', None)
        else:
            builtins.apply_defaults(rt, obj)
            if rt.resource == 'customresourcedefinitions':
                self.crd_defaults_and_status(obj, now)
        if apply_manager is None:
            # managedFields sent by the client are replaced (like the apiserver does on create)
            md.pop('managedFields', None)
            fieldmanager.record_update(None, obj, manager, rt.api_version, now, rt.typeinfo)
        if rt.namespaced:
            self.require_namespace_exists(ns)
        name = md.get('name')
        if (rt.group, rt.resource) == ('', 'pods'):
            builtins.admit_pod_builtin(obj)
        obj = self.admit(req, rt, 'CREATE', ns, name, obj, None, None, dry,
                         self.options('CreateOptions', req, req.q('fieldManager')), True)
        md = obj.setdefault('metadata', {})
        if not md.get('name') and md.get('generateName'):
            md['name'] = md['generateName'] + ''.join(random.choice(NAME_CHARS) for _ in range(5))
        name = md.get('name')
        if (rt.group, rt.resource) == ('', 'pods'):
            builtins.pod_status_on_create(obj)
        if (rt.group, rt.resource) == ('', 'namespaces'):
            obj['status'] = {'phase': 'Active'}
            builtins.default_namespace(obj)
        if rt.resource == 'customresourcedefinitions' and rt.group == 'apiextensions.k8s.io':
            obj['status'] = self.crd_status(obj, None, now)
        md['uid'] = str(uuid.uuid4())
        md['creationTimestamp'] = now
        if rt.generation or rt.is_cr:
            md['generation'] = 1
        errs = self.validate_object(rt, obj, True)
        if errs:
            raise err_invalid_rt(rt, name, errs)
        self.admit(req, rt, 'CREATE', ns, name, obj, None, None, dry,
                   self.options('CreateOptions', req, req.q('fieldManager')), False)
        with self.lock:
            if self.store.get(rt.storage, ns, name) is not None:
                raise err_exists(rt, name)
            if rt.namespaced:
                self.require_namespace_exists(ns)
            if dry:
                return self.respond_object(req, rt, obj, code)
            stored = self.store.put(rt.storage, ns, name, obj)
            if rt.resource == 'customresourcedefinitions' and rt.group == 'apiextensions.k8s.io':
                self.register_crd(stored)
        if md.get('ownerReferences'):
            self.gc_event.set()
        return self.respond_object(req, rt, stored, code)

    # ================================================================ UPDATE (PUT and the tail of PATCH)
    def update(self, req, rt, ns, name, sub):
        obj = self.decode_body(req, rt)
        self.check_kind(rt, obj)
        obj = self.to_storage(rt, obj)
        md = obj.setdefault('metadata', {})
        if md.get('name') and md['name'] != name:
            raise err_bad_request('the name of the object (%s) does not match the name on the URL (%s)' % (md['name'], name))
        if rt.namespaced and md.get('namespace') and md['namespace'] != ns:
            raise err_bad_request('the namespace of the provided object does not match the namespace sent on the request')
        md['name'] = name
        old = self.store.get(rt.storage, ns, name)
        if old is None:
            if rt.create_on_update and sub is None:
                return self.create(req, rt, ns, obj=obj)
            raise err_not_found(rt, name)
        rv = md.get('resourceVersion')
        if not rv and not rt.unconditional_update:
            # apiserver prints the uint64 zero with %#v: "Invalid value: 0x0"
            e = schemamod.FieldError('FieldValueInvalid', 'metadata.resourceVersion', None,
                                     'must be specified for an update', show_value=False)
            e.body = lambda: 'Invalid value: 0x0: must be specified for an update'
            raise err_invalid_rt(rt, name, [e])
        return self.finish_update(req, rt, ns, name, sub, old, obj, rv, 'UpdateOptions', managed=None)

    def finish_update(self, req, rt, ns, name, sub, old, obj, precondition_rv, options_kind, managed, apply_info=None):
        dry = self.dry_run(req, '%s.meta.k8s.io' % options_kind)
        fv = self.field_validation(req)
        if precondition_rv and precondition_rv != old['metadata'].get('resourceVersion'):
            raise err_conflict(rt, name)
        now = now_rfc3339()
        md = obj.setdefault('metadata', {})
        omd = old.get('metadata') or {}
        # system fields come from the stored object
        for k in ('uid', 'creationTimestamp', 'generation', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'resourceVersion'):
            if k in omd:
                md[k] = omd[k]
            else:
                md.pop(k, None)
        md['name'] = name
        if rt.namespaced:
            md['namespace'] = ns
        if rt.is_cr:
            self.prepare_cr(req, rt, obj, fv)
        else:
            builtins.apply_defaults(rt, obj)
            if rt.resource == 'customresourcedefinitions' and rt.group == 'apiextensions.k8s.io':
                self.crd_defaults_and_status(obj, now)
        if sub == 'status':
            st = obj.get('status')
            mf = md.get('managedFields')
            obj = copy.deepcopy(old)
            if st is not None:
                obj['status'] = st
            else:
                obj.pop('status', None)
            if mf is not None:
                obj['metadata']['managedFields'] = mf
            md = obj['metadata']
        elif rt.status:
            if 'status' in old:
                obj['status'] = copy.deepcopy(old['status'])
            else:
                obj.pop('status', None)
        manager = self.field_manager(req, required=apply_info is not None)
        if apply_info is None:
            if md.get('managedFields') == omd.get('managedFields') or 'managedFields' not in md:
                md['managedFields'] = copy.deepcopy(omd.get('managedFields'))
                if md['managedFields'] is None:
                    md.pop('managedFields')
                fieldmanager.record_update(old, obj, manager or 'unknown', rt.api_version, now, rt.typeinfo, sub)
        if rt.resource == 'namespaces' and not rt.group:
            builtins.default_namespace(obj)
        # generation: bumped when anything outside metadata (and status) changes via the main resource
        if (rt.generation or rt.is_cr) and sub is None:
            def body(o):
                return {k: v for k, v in o.items() if k not in ('metadata', 'status', 'kind', 'apiVersion')}
            if body(obj) != body(old):
                md['generation'] = int(omd.get('generation') or 1) + 1
        if rt.resource == 'customresourcedefinitions' and rt.group == 'apiextensions.k8s.io' and sub is None:
            obj['status'] = self.crd_status(obj, old.get('status'), now)
        opts = self.options(options_kind if options_kind != 'PatchOptions' else 'UpdateOptions', req, req.q('fieldManager'))
        obj = self.admit(req, rt, 'UPDATE', ns, name, obj, old, sub, dry, opts, True)
        errs = self.validate_object(rt, obj, False, old)
        if errs:
            raise err_invalid_rt(rt, name, errs)
        self.admit(req, rt, 'UPDATE', ns, name, obj, old, sub, dry, opts, False)
        with self.lock:
            cur = self.store.get(rt.storage, ns, name)
            if cur is None:
                raise err_not_found(rt, name)
            if cur['metadata'].get('resourceVersion') != old['metadata'].get('resourceVersion'):
                raise err_conflict(rt, name)
            if _same_ignoring_times(obj, old):
                return self.respond_object(req, rt, old, 200)
            if dry:
                return self.respond_object(req, rt, obj, 200)
            if md.get('deletionTimestamp') and not md.get('finalizers'):
                gone = self.store.delete(rt.storage, ns, name)
                self.after_delete(rt, gone)
                return self.respond_object(req, rt, obj, 200)
            stored = self.store.put(rt.storage, ns, name, obj)
            if rt.resource == 'customresourcedefinitions' and rt.group == 'apiextensions.k8s.io':
                self.register_crd(stored)
        if md.get('ownerReferences') != omd.get('ownerReferences'):
            self.gc_event.set()
        return self.respond_object(req, rt, stored, 200)

    # ================================================================ PATCH
    def patch(self, req, rt, ns, name, sub):
        ctype = (req.headers.get('Content-Type') or '').split(';')[0].strip().lower()
        ptype = PATCH_TYPES.get(ctype)
        accepted = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml']
        if not rt.is_cr:
            accepted.insert(2, 'application/strategic-merge-patch+json')
        if ptype is None or (ptype == 'strategic' and rt.is_cr):
            raise APIError(415, status(415, 'UnsupportedMediaType',
                                       'the body of the request was in an unknown format - accepted media types include: '
                                       + ', '.join(accepted)))
        force = req.q('force')
        if ptype != 'apply' and force is not None:
            raise err_invalid('PatchOptions.meta.k8s.io', 'meta.k8s.io', '',
                              [schemamod.forbidden('force', 'may not be specified for non-apply patch')])
        if ptype == 'apply' and not req.q('fieldManager'):
            raise err_invalid('PatchOptions.meta.k8s.io', 'meta.k8s.io', '',
                              [schemamod.required('fieldManager', 'is required for apply patch')])
        self.dry_run(req, 'PatchOptions.meta.k8s.io')
        try:
            if ptype == 'apply':
                p = yamlmini.loads_json_or_yaml(req.body or b'')
            else:
                p = json.loads((req.body or b'null').decode('utf-8'))
        except (ValueError, yamlmini.YAMLError) as e:
            raise err_bad_request('error decoding patch: %s' % e)
        old = self.store.get(rt.storage, ns, name)
        if ptype == 'apply':
            return self.apply(req, rt, ns, name, sub, old, p, parse_bool(force))
        if old is None:
            raise err_not_found(rt, name)
        view = self.present(rt, old)
        try:
            if ptype == 'json':
                new = patchmod.json_patch(view, p)
            elif ptype == 'merge':
                if not isinstance(p, dict):
                    raise patchmod.PatchError('a merge patch must be a JSON object')
                new = patchmod.merge_patch(view, p)
            else:
                if not isinstance(p, dict):
                    raise patchmod.PatchError('a strategic merge patch must be a JSON object')
                new = patchmod.strategic_merge(view, p)
        except patchmod.PatchError as e:
            if ptype == 'json':
                raise APIError(422, status(422, 'Invalid', 'the server rejected our request due to an error in our request',
                                           {'causes': [{'reason': 'UnexpectedServerResponse', 'message': str(e)}]}))
            raise err_bad_request(str(e))
        if not isinstance(new, dict):
            raise err_bad_request('the patch produced an object that is not a JSON object')
        self.check_kind(rt, new)
        new = self.to_storage(rt, new)
        nmd = new.setdefault('metadata', {})
        if nmd.get('name') != name:
            raise err_bad_request('the name of the object (%s) does not match the name on the URL (%s)' % (nmd.get('name'), name))
        rv = nmd.get('resourceVersion')
        precondition = rv if rv != old['metadata'].get('resourceVersion') else None
        if precondition is None and rv:
            precondition = rv
        return self.finish_update(req, rt, ns, name, sub, old, new, precondition, 'PatchOptions', managed=None)

    def apply(self, req, rt, ns, name, sub, old, cfg, force):
        if not isinstance(cfg, dict):
            raise err_bad_request('error decoding YAML: the applied configuration must be an object')
        self.check_kind(rt, cfg)
        if not cfg.get('kind') or not cfg.get('apiVersion'):
            raise err_bad_request('invalid object type: /, Kind=')
        md = cfg.setdefault('metadata', {})
        if md.get('name') and md['name'] != name:
            raise err_bad_request('the name of the object (%s) does not match the name on the URL (%s)' % (md['name'], name))
        if rt.namespaced and md.get('namespace') and md['namespace'] != ns:
            raise err_bad_request('the namespace of the provided object does not match the namespace sent on the request')
        md['name'] = name
        cfg = self.to_storage(rt, cfg)
        manager = req.q('fieldManager')
        now = now_rfc3339()
        fv = self.field_validation(req)
        if rt.is_cr and rt.schema is not None:
            unknown = schemamod.prune(rt.schema, cfg)
            if unknown and fv == 'Strict':
                raise err_bad_request('%s: strict decoding error: %s' % (
                    self._decode_prefix(rt), ', '.join('unknown field "%s"' % u for u in unknown)))
            req.warnings.extend('unknown field "%s"' % u for u in unknown if fv == 'Warn')
        rv = md.get('resourceVersion')
        if old is None:
            if sub is not None:
                raise err_not_found(rt, name)
            new = fieldmanager.apply(None, cfg, manager, rt.api_version, force, now, rt.typeinfo)
            new['metadata'].pop('resourceVersion', None)
            if rt.is_cr and rt.status:
                new.pop('status', None)
                new['metadata']['managedFields'] = [e for e in new['metadata'].get('managedFields') or []]
            return self.create(req, rt, ns, obj=new, apply_manager=manager, code=201)
        base = copy.deepcopy(old)
        try:
            new = fieldmanager.apply(base, cfg, manager, rt.api_version, force, now, rt.typeinfo, sub)
        except fieldmanager.ApplyConflict as c:
            raise APIError(409, status(409, 'Conflict', fieldmanager.conflict_message(c.conflicts),
                                       {'causes': fieldmanager.conflict_causes(c.conflicts)}))
        new['metadata']['resourceVersion'] = old['metadata'].get('resourceVersion')
        return self.finish_update(req, rt, ns, name, sub, old, new, rv, 'PatchOptions', managed=True, apply_info=True)

    # ================================================================ DELETE
    def delete(self, req, rt, ns, name, opts_body=None, _internal=False):
        opts = {}
        if not _internal and req.body:
            try:
                opts = json.loads(req.body)
            except ValueError as e:
                raise err_bad_request('invalid DeleteOptions: %s' % e)
            if not isinstance(opts, dict):
                raise err_bad_request('invalid DeleteOptions')
        dry = self.dry_run(req, 'DeleteOptions.meta.k8s.io') if not _internal else False
        if opts.get('dryRun'):
            dry = True
        prop = req.q('propagationPolicy') or opts.get('propagationPolicy') or 'Background'
        if opts.get('orphanDependents') is True:
            prop = 'Orphan'
        if prop not in ('Background', 'Foreground', 'Orphan'):
            raise err_invalid('DeleteOptions.meta.k8s.io', 'meta.k8s.io', '',
                              [schemamod.not_supported('propagationPolicy', prop, ['Foreground', 'Background', 'Orphan', 'nil'])])
        old = self.store.get(rt.storage, ns, name)
        if old is None:
            raise err_not_found(rt, name)
        pre = opts.get('preconditions') or {}
        if pre.get('uid') and pre['uid'] != old['metadata'].get('uid'):
            raise err_conflict(rt, name, 'Precondition failed: UID in precondition: %s, UID in object meta: %s'
                               % (pre['uid'], old['metadata'].get('uid')))
        if pre.get('resourceVersion') and pre['resourceVersion'] != old['metadata'].get('resourceVersion'):
            raise err_conflict(rt, name, 'Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s'
                               % (pre['resourceVersion'], old['metadata'].get('resourceVersion')))
        if not _internal:
            dopts = {'kind': 'DeleteOptions', 'apiVersion': 'meta.k8s.io/v1'}
            if dry:
                dopts['dryRun'] = ['All']
            if prop:
                dopts['propagationPolicy'] = prop
            self.admit(req, rt, 'DELETE', ns, name, None, old, None, dry, dopts, True)
            self.admit(req, rt, 'DELETE', ns, name, None, old, None, dry, dopts, False)
        if dry:
            return self.delete_response(req, rt, old)
        finalizers = old['metadata'].get('finalizers') or []
        if finalizers:
            if not old['metadata'].get('deletionTimestamp'):
                old['metadata']['deletionTimestamp'] = now_rfc3339()
                old['metadata']['deletionGracePeriodSeconds'] = 0
                with self.lock:
                    old = self.store.put(rt.storage, ns, name, old)
            return self.respond_object(req, rt, old, 200)
        if prop == 'Orphan':
            self.orphan_dependents(old['metadata'].get('uid'))
        elif prop == 'Foreground':
            self.delete_dependents(old['metadata'].get('uid'))
        if rt.resource == 'namespaces' and not rt.group:
            return self.delete_namespace(req, rt, old)
        with self.lock:
            gone = self.store.delete(rt.storage, ns, name)
        if gone is None:
            raise err_not_found(rt, name)
        self.after_delete(rt, gone)
        return self.delete_response(req, rt, gone)

    def delete_response(self, req, rt, obj):
        if rt.return_deleted:
            return self.respond_object(req, rt, obj, 200)
        d = {'name': obj['metadata'].get('name')}
        if rt.group:
            d['group'] = rt.group
        d['kind'] = rt.resource
        d['uid'] = obj['metadata'].get('uid')
        return 200, {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success', 'details': d}

    def delete_namespace(self, req, rt, ns_obj):
        name = ns_obj['metadata']['name']
        ns_obj['metadata']['deletionTimestamp'] = now_rfc3339()
        ns_obj['status'] = {'phase': 'Terminating'}
        with self.lock:
            term = self.store.put(('', 'namespaces'), '', name, ns_obj)
        for storage, ons, oname, _ in self.store.all_objects():
            if ons == name:
                gone = self.store.delete(storage, ons, oname)
                if gone is not None:
                    self.gc_event.set()
        self.store.delete(('', 'namespaces'), '', name)
        return self.respond_object(req, rt, term, 200)

    def after_delete(self, rt, gone):
        if rt.resource == 'customresourcedefinitions' and rt.group == 'apiextensions.k8s.io':
            self.unregister_crd(gone)
        self.gc_event.set()

    def delete_collection(self, req, rt, ns):
        lsel, fsel = self.parse_selectors(req, rt)
        items, _ = self.store.list(rt.storage, ns)
        deleted = []
        for (ons, oname), o in items:
            if self.matches(rt, o, lsel, fsel):
                try:
                    self.delete(req, rt, ons or None, oname, _internal=True)
                    deleted.append(o)
                except APIError as e:
                    if e.code != 404:
                        raise
        return self.respond_list(req, rt, deleted, {'resourceVersion': str(self.store.rv)})

    # ================================================================ garbage collection
    def _owner_resolvable(self, ref):
        return self.rt_for_kind(ref.get('apiVersion', ''), ref.get('kind', '')) is not None

    def orphan_dependents(self, uid):
        for storage, ns, name, o in self.store.all_objects():
            refs = (o.get('metadata') or {}).get('ownerReferences') or []
            if any(r.get('uid') == uid for r in refs):
                with self.lock:
                    cur = self.store.get(storage, ns, name)
                    if cur is None:
                        continue
                    cur['metadata']['ownerReferences'] = [r for r in refs if r.get('uid') != uid]
                    if not cur['metadata']['ownerReferences']:
                        del cur['metadata']['ownerReferences']
                    self.store.put(storage, ns, name, cur)

    def delete_dependents(self, uid):
        for storage, ns, name, o in self.store.all_objects():
            refs = (o.get('metadata') or {}).get('ownerReferences') or []
            if any(r.get('uid') == uid for r in refs):
                others = [r for r in refs if r.get('uid') != uid and self.store.exists_uid(r.get('uid'))]
                if not others:
                    self.delete_dependents(o['metadata'].get('uid'))
                    self.store.delete(storage, ns, name)

    def gc_sweep(self):
        removed = 0
        for storage, ns, name, o in self.store.all_objects():
            md = o.get('metadata') or {}
            refs = md.get('ownerReferences') or []
            if not refs or md.get('finalizers'):
                continue
            if all(self._owner_resolvable(r) and not self.store.exists_uid(r.get('uid')) for r in refs):
                with self.lock:
                    cur = self.store.get(storage, ns, name)
                    if cur is not None and cur['metadata'].get('uid') == md.get('uid'):
                        gone = self.store.delete(storage, ns, name)
                        if storage == ('apiextensions.k8s.io', 'customresourcedefinitions') and gone:
                            self.unregister_crd(gone)
                        removed += 1
        return removed

    def _gc_loop(self):
        while not self.stopping.is_set():
            self.gc_event.wait(1.0)
            if self.stopping.is_set():
                return
            if not self.gc_event.is_set():
                continue
            self.gc_event.clear()
            time.sleep(0.05)
            try:
                while self.gc_sweep():
                    pass
            except Exception:   # never let GC kill the server; it retries on the next trigger
                import traceback
                traceback.print_exc()

    # ================================================================ WATCH
    def watch_setup(self, req, rt, ns):
        """Validate and compute the initial events; returns a WatchState."""
        lsel, fsel = self.parse_selectors(req, rt)
        rv = req.q('resourceVersion') or ''
        match = req.q('resourceVersionMatch') or ''
        sie = req.q('sendInitialEvents')
        bookmarks = parse_bool(req.q('allowWatchBookmarks'))
        errs = []
        if sie is not None and match != 'NotOlderThan':
            errs.append(schemamod.forbidden('resourceVersionMatch', 'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan'))
        elif sie is None and match:
            errs.append(schemamod.forbidden('resourceVersionMatch', 'resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided'))
        if errs:
            raise err_invalid('ListOptions.meta.k8s.io', 'meta.k8s.io', '', errs)
        timeout = req.q('timeoutSeconds')
        try:
            timeout = float(timeout) if timeout else 1800 * (1 + random.random())
        except ValueError:
            raise err_bad_request('invalid timeoutSeconds')
        if rv not in ('', '0'):
            try:
                int(rv)
            except ValueError:
                raise err_bad_request('invalid resource version: %s' % rv)
        kind, ver = self.accept(req)
        return {'rt': rt, 'ns': ns, 'lsel': lsel, 'fsel': fsel, 'rv': rv, 'sie': sie, 'bookmarks': bookmarks,
                'timeout': timeout, 'table': ver if kind == 'table' else None}

    def watch_initial(self, w):
        """-> (initial events, start rv) or raises Expired."""
        rt, ns = w['rt'], w['ns']
        with self.lock:
            initial = []
            send_initial = parse_bool(w['sie']) if w['sie'] is not None else w['rv'] in ('', '0')
            if w['rv'] in ('', '0') or w['sie'] is not None:
                items, cur_rv = self.store.list(rt.storage, ns)
                if w['rv'] not in ('', '0') and int(w['rv']) > cur_rv:
                    cur_rv = int(w['rv'])
                if send_initial:
                    for _, o in items:
                        if self.matches(rt, o, w['lsel'], w['fsel']):
                            initial.append(('ADDED', o))
                start = cur_rv
                if w['sie'] is not None and parse_bool(w['sie']) and w['bookmarks']:
                    initial.append(('BOOKMARK-END', cur_rv))
            else:
                start = int(w['rv'])
                self.store.events_after(start, rt.storage)   # raises Expired
            return initial, start

    def bookmark(self, rt, rv, initial_end=False):
        md = {'resourceVersion': str(rv)}
        if initial_end:
            md = {'annotations': {'k8s.io/initial-events-end': 'true'}, 'resourceVersion': str(rv)}
        if rt.is_cr:
            return {'apiVersion': rt.api_version, 'kind': rt.kind, 'metadata': md}
        return {'kind': rt.kind, 'apiVersion': rt.api_version, 'metadata': md}

    def watch_event_filter(self, w, ev):
        """Translate a stored event into what this watcher sees (selector transitions)."""
        rt, ns = w['rt'], w['ns']
        if ns is not None and ev.ns != ns:
            return None
        now_m = ev.type != 'DELETED' and self.matches(rt, ev.obj, w['lsel'], w['fsel'])
        was_m = ev.prev is not None and self.matches(rt, ev.prev, w['lsel'], w['fsel'])
        if ev.type == 'DELETED':
            return ('DELETED', ev.obj) if was_m else None
        if now_m and was_m:
            return ('MODIFIED', ev.obj)
        if now_m:
            return ('ADDED', ev.obj)
        if was_m:
            gone = copy.deepcopy(ev.obj)
            return ('DELETED', gone)
        return None


class DuplicateField(ValueError):
    pass


def _no_dup_pairs(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateField(k)
        out[k] = v
    return out


def _strip_times(o):
    o = copy.deepcopy(o)
    for e in (o.get('metadata') or {}).get('managedFields') or []:
        e.pop('time', None)
    return o


def _same_ignoring_times(a, b):
    return _strip_times(a) == _strip_times(b)
