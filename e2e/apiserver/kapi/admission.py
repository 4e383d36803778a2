"""Calls to admission webhooks (admission.k8s.io/v1 AdmissionReview over HTTPS)."""

import base64
import http.client
import json
import socket
import ssl
import urllib.parse
import uuid

from . import selectors


class WebhookDenied(Exception):
    def __init__(self, status):
        super().__init__(status.get('message'))
        self.status = status


class WebhookFailed(Exception):
    pass


def rule_matches(rule, op, group, version, resource, subresource, namespaced):
    ops = rule.get('operations') or []
    if '*' not in ops and op not in ops:
        return False
    if '*' not in (rule.get('apiGroups') or []) and group not in (rule.get('apiGroups') or []):
        return False
    if '*' not in (rule.get('apiVersions') or []) and version not in (rule.get('apiVersions') or []):
        return False
    want = resource + ('/' + subresource if subresource else '')
    ok = False
    for r in rule.get('resources') or []:
        if r == '*/*' or r == want:
            ok = True
        elif r == '*' and not subresource:
            ok = True
        elif r.startswith('*/') and subresource and r[2:] == subresource:
            ok = True
        elif r.endswith('/*') and r[:-2] == resource and subresource:
            ok = True
    if not ok:
        return False
    scope = rule.get('scope') or '*'
    if scope == 'Namespaced' and not namespaced:
        return False
    if scope == 'Cluster' and namespaced:
        return False
    return True


def webhook_matches(hook, attrs, namespace_labels):
    if not any(rule_matches(r, attrs['operation'], attrs['group'], attrs['version'], attrs['resource'],
                            attrs['subresource'], attrs['namespaced'])
               for r in hook.get('rules') or []):
        return False
    nsel = hook.get('namespaceSelector')
    if nsel is not None and nsel != {}:
        if attrs['namespaced'] or (attrs['group'] == '' and attrs['resource'] == 'namespaces'):
            labels = namespace_labels
            if attrs['resource'] == 'namespaces' and attrs['group'] == '':
                o = attrs.get('object') or attrs.get('old_object') or {}
                labels = (o.get('metadata') or {}).get('labels') or {}
            if not selectors.labels_match(selectors.label_selector_from_object(nsel), labels):
                return False
    osel = hook.get('objectSelector')
    if osel is not None and osel != {}:
        reqs = selectors.label_selector_from_object(osel)
        new = ((attrs.get('object') or {}).get('metadata') or {}).get('labels') or {}
        old = ((attrs.get('old_object') or {}).get('metadata') or {}).get('labels') or {}
        hit = False
        if attrs.get('object') is not None and selectors.labels_match(reqs, new):
            hit = True
        if attrs.get('old_object') is not None and selectors.labels_match(reqs, old):
            hit = True
        if not hit:
            return False
    return True


class Caller:
    def __init__(self, service_hosts):
        self.service_hosts = service_hosts   # "name.ns.svc" -> (host, port)

    def _endpoint(self, cc):
        if cc.get('url'):
            u = urllib.parse.urlsplit(cc['url'])
            host = u.hostname
            port = u.port or 443
            path = u.path or '/'
            if u.query:
                path += '?' + u.query
            return host, port, host, path, cc['url']
        svc = cc.get('service') or {}
        name = '%s.%s.svc' % (svc.get('name'), svc.get('namespace'))
        port = svc.get('port') or 443
        path = svc.get('path') or '/'
        url = 'https://%s:%d%s' % (name, port, path)
        target = self.service_hosts.get('%s:%d' % (name, port)) or self.service_hosts.get(name)
        if target is None:
            raise WebhookFailed('failed to call webhook: Post "%s": service "%s" has no endpoint '
                                '(start the apiserver with --service-host %s=HOST:PORT)'
                                % (url + '?timeout=%ds', name, name))
        return target[0], target[1], name, path, url

    def call(self, hook, review, timeout):
        cc = hook.get('clientConfig') or {}
        try:
            host, port, server_name, path, url = self._endpoint(cc)
        except WebhookFailed as e:
            raise WebhookFailed(str(e) % timeout)
        full_url = url + ('&' if '?' in url else '?') + 'timeout=%ds' % timeout
        path = path + ('&' if '?' in path else '?') + 'timeout=%ds' % timeout
        ctx = ssl.create_default_context()
        if cc.get('caBundle'):
            try:
                pem = base64.b64decode(cc['caBundle']).decode('ascii', 'replace')
                ctx = ssl.create_default_context(cadata=pem)
            except (ValueError, ssl.SSLError) as e:
                raise WebhookFailed('failed to call webhook: invalid caBundle: %s' % e)
        body = json.dumps(review).encode()
        # connect to the resolved endpoint, verify the certificate against the service DNS name
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
            conn.sock = ctx.wrap_socket(raw, server_hostname=server_name)
            conn.request('POST', path, body=body, headers={
                'Content-Type': 'application/json', 'Accept': 'application/json, */*',
                'User-Agent': 'kube-apiserver-admission', 'Host': '%s:%d' % (server_name, port)})
            resp = conn.getresponse()
            data = resp.read(16 << 20)
            status = resp.status
        except socket.timeout:
            raise WebhookFailed('failed to call webhook: Post "%s": context deadline exceeded' % full_url)
        except ssl.SSLCertVerificationError as e:
            raise WebhookFailed('failed to call webhook: Post "%s": tls: failed to verify certificate: %s'
                                % (full_url, e.verify_message or e))
        except (OSError, http.client.HTTPException) as e:
            msg = str(e)
            if isinstance(e, ConnectionRefusedError):
                msg = 'dial tcp %s:%d: connect: connection refused' % (host, port)
            raise WebhookFailed('failed to call webhook: Post "%s": %s' % (full_url, msg))
        finally:
            conn.close()
        if status != 200:
            raise WebhookFailed('failed to call webhook: the server responded with status %d: %s'
                                % (status, data[:512].decode('utf-8', 'replace')))
        try:
            out = json.loads(data)
        except ValueError as e:
            raise WebhookFailed('received invalid webhook response: %s' % e)
        if not isinstance(out, dict) or out.get('apiVersion') != 'admission.k8s.io/v1' or out.get('kind') != 'AdmissionReview':
            raise WebhookFailed('expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got %s, Kind=%s'
                                % (out.get('apiVersion') if isinstance(out, dict) else '',
                                   out.get('kind') if isinstance(out, dict) else ''))
        r = out.get('response')
        if not isinstance(r, dict):
            raise WebhookFailed('webhook response was absent')
        if r.get('uid') != review['request']['uid']:
            raise WebhookFailed('expected response.uid="%s", got "%s"' % (review['request']['uid'], r.get('uid')))
        if bool(r.get('patch')) != bool(r.get('patchType')):
            raise WebhookFailed('webhook returned response.patch but not response.patchType' if r.get('patch')
                                else 'webhook returned response.patchType but not response.patch')
        return r


def new_uid():
    return str(uuid.uuid4())


def deny_status(name, result):
    """apiserver webhook/errors ToStatusErr"""
    st = dict(result or {})
    st.pop('metadata', None)
    code = st.get('code') or 0
    if code < 400:
        code = 400
    denied = 'admission webhook "%s" denied the request' % name
    if st.get('message'):
        msg = '%s: %s' % (denied, st['message'])
    elif st.get('reason'):
        msg = '%s: %s' % (denied, st['reason'])
    else:
        msg = '%s without explanation' % denied
    out = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'message': msg}
    if st.get('reason'):
        out['reason'] = st['reason']
    if st.get('details'):
        out['details'] = st['details']
    out['code'] = code
    return out


def decode_patch(r):
    if r.get('patchType') != 'JSONPatch':
        raise WebhookFailed('unsupported patch type "%s"' % r.get('patchType'))
    try:
        return json.loads(base64.b64decode(r['patch']))
    except (ValueError, TypeError) as e:
        raise WebhookFailed('failed to decode patch: %s' % e)
