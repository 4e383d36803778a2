"""Admission through the stand-in replayed from the samples: a pod CREATE gets the built-in admission
(ServiceAccount volume, default tolerations) before the webhook, the AdmissionReview has the shape of
admissionreview-pod-create.json and the sample response patch applies; webhook call failures read like
kube-apiserver's (Go net/http and crypto/tls texts). A tiny HTTPS webhook started here records what it gets."""

import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, HTTPServer

from . import _support as support

SVC = 'maskmesh-webhook.maskmesh.svc'
UUID_RE = r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'


def openssl(d, *args):
    subprocess.run(['openssl'] + list(args), cwd=d, check=True, capture_output=True)


def make_ca_and_cert(d, prefix, san):
    openssl(d, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
            '-keyout', prefix + 'ca.key', '-out', prefix + 'ca.crt', '-days', '1', '-subj', '/CN=' + prefix + 'ca',
            '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign')
    openssl(d, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
            '-keyout', prefix + 'tls.key', '-out', prefix + 'tls.csr', '-subj', '/CN=' + san)
    with open(os.path.join(d, prefix + 'ext.cnf'), 'w') as f:
        f.write('subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' % san)
    openssl(d, 'x509', '-req', '-in', prefix + 'tls.csr', '-CA', prefix + 'ca.crt', '-CAkey', prefix + 'ca.key',
            '-CAcreateserial', '-out', prefix + 'tls.crt', '-days', '1', '-extfile', prefix + 'ext.cnf')
    with open(os.path.join(d, prefix + 'ca.crt'), 'rb') as f:
        return f.read()


class Webhook:
    """HTTPS server answering AdmissionReviews by path; keeps every request."""

    def __init__(self, d):
        self.requests = []
        self.lock = threading.Lock()
        self.behaviour = {}
        hook = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                review = json.loads(body)
                path = self.path.split('?')[0]
                with hook.lock:
                    hook.requests.append({'path': self.path, 'headers': dict(self.headers), 'review': review})
                fn = hook.behaviour.get(path)
                out = fn(review) if fn else {'allowed': True}
                if out is None:
                    return
                out['uid'] = review['request']['uid']
                data = json.dumps({'kind': 'AdmissionReview', 'apiVersion': 'admission.k8s.io/v1', 'response': out}).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Quiet(HTTPServer):
            def handle_error(self, request, client_address):
                pass   # the apiserver hangs up on a slow webhook: expected here

        self.httpd = Quiet(('127.0.0.1', 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, 'hooktls.crt'), os.path.join(d, 'hooktls.key'))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def take(self):
        with self.lock:
            r, self.requests = self.requests, []
            return r

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def webhook_config(kind, name, hooks):
    return {'apiVersion': 'admissionregistration.k8s.io/v1', 'kind': kind, 'metadata': {'name': name}, 'webhooks': hooks}


class AdmissionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='standin-webhook-')
        cls.ca = make_ca_and_cert(cls.dir, 'hook', SVC)
        cls.other_ca = make_ca_and_cert(cls.dir, 'other', SVC)
        cls.hook = Webhook(cls.dir)
        cls.srv = support.Server('--service-host', '%s=127.0.0.1:%d' % (SVC, cls.hook.port),
                                 '--service-host', 'down.maskmesh.svc=127.0.0.1:1')
        cls.c = cls.srv.client()
        for ns, labels in (('shop', {'maskmesh.io/inject': 'true'}), ('maskmesh', {})):
            r = cls.c.post('/api/v1/namespaces', {'apiVersion': 'v1', 'kind': 'Namespace',
                                                  'metadata': {'name': ns, 'labels': labels}})
            assert r.status == 201, r.body
        mwc = support.sample('mutatingwebhookconfiguration.json')
        mwc['webhooks'][0]['clientConfig']['caBundle'] = base64.b64encode(cls.ca).decode()
        cls.mwc = mwc
        r = cls.c.post('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', mwc)
        assert r.status == 201, r.body
        patch = support.sample('admissionreview-pod-create-response.patch.json')
        resp = support.sample('admissionreview-pod-create-response.json')['response']
        cls.hook.behaviour['/mutate-pods'] = lambda rv: {
            'allowed': True, 'patchType': 'JSONPatch',
            'patch': base64.b64encode(json.dumps(patch).encode()).decode(), 'warnings': resp['warnings']}

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.hook.stop()
        assert cls.srv.stop() == 0
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.hook.take()

    def pod(self, labels, ns='shop', name=None):
        md = {'labels': labels}
        if name:
            md['name'] = name
        else:
            md['generateName'] = 'payments-7c9d8b5f4d-'
        return {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': md,
                'spec': {'containers': [{'name': 'payments', 'image': 'registry.example.com/shop/payments:1.8.2',
                                         'ports': [{'name': 'http', 'containerPort': 8080}]}]}}

    def add_config(self, kind, name, hooks):
        plural = kind.lower() + 's'
        r = self.c.post('/apis/admissionregistration.k8s.io/v1/' + plural, webhook_config(kind, name, hooks))
        self.assertEqual(r.status, 201, r.body)
        self.addCleanup(self.c.delete, '/apis/admissionregistration.k8s.io/v1/%s/%s' % (plural, name))

    def hook_spec(self, name, path, resources, ops=('CREATE',), failure='Fail', timeout=10, svc=SVC, ca=None):
        svc_name, svc_ns = svc.split('.')[:2]
        return {'name': name, 'clientConfig': {'service': {'namespace': svc_ns, 'name': svc_name, 'path': path, 'port': 443},
                                               'caBundle': base64.b64encode(ca or self.ca).decode()},
                'rules': [{'operations': list(ops), 'apiGroups': [''], 'apiVersions': ['v1'], 'resources': resources}],
                'failurePolicy': failure, 'sideEffects': 'None', 'timeoutSeconds': timeout,
                'admissionReviewVersions': ['v1']}

    def test_mutating_pod_create_review_and_patch(self):
        r = self.c.post('/api/v1/namespaces/shop/pods', self.pod({'app': 'payments', 'maskmesh.io/inject': 'true'}))
        self.assertEqual(r.status, 201, r.body)
        reqs = self.hook.take()
        self.assertEqual(len(reqs), 1)
        got = reqs[0]
        self.assertEqual(got['path'], '/mutate-pods?timeout=10s')
        self.assertEqual(got['headers']['Content-Type'], 'application/json')
        want = support.sample('admissionreview-pod-create.json')
        rv = got['review']
        self.assertEqual(list(rv), list(want))
        self.assertEqual(list(rv['request']), list(want['request']))
        req = rv['request']
        self.assertRegex(req['uid'], UUID_RE)
        for k in ('kind', 'resource', 'requestKind', 'requestResource', 'namespace', 'operation', 'oldObject', 'dryRun', 'options'):
            self.assertEqual(req[k], want['request'][k], k)
        self.assertEqual(sorted(req['userInfo']), ['groups', 'uid', 'username'])
        self.assertEqual(req['userInfo']['username'], 'admin')  # the stand-in's admin token user
        obj = req['object']
        self.assertEqual((obj['kind'], obj['apiVersion']), ('Pod', 'v1'))
        self.assertEqual(obj['metadata']['generateName'], 'payments-7c9d8b5f4d-')
        for absent in ('name', 'uid', 'resourceVersion', 'creationTimestamp'):
            self.assertNotIn(absent, obj['metadata'])
        self.assertEqual(obj['metadata']['managedFields'][0]['manager'], 'apiserver-tests')
        self.assertEqual(obj['spec']['containers'][0]['imagePullPolicy'], 'IfNotPresent')
        self.assertEqual(obj['status'], {})
        # built-in admission ran before the webhook: ServiceAccount volume, default tolerations
        wspec = want['request']['object']['spec']
        vol = obj['spec']['volumes'][0]
        self.assertRegex(vol['name'], r'^kube-api-access-[a-z0-9]{5}$')
        self.assertEqual(vol['projected'], wspec['volumes'][0]['projected'])
        self.assertEqual(obj['spec']['containers'][0]['volumeMounts'],
                         [dict(wspec['containers'][0]['volumeMounts'][0], name=vol['name'])])
        self.assertEqual(obj['spec']['tolerations'], wspec['tolerations'])
        for k in ('restartPolicy', 'terminationGracePeriodSeconds', 'dnsPolicy', 'serviceAccountName', 'serviceAccount',
                  'securityContext', 'schedulerName', 'priority', 'enableServiceLinks', 'preemptionPolicy'):
            self.assertEqual(obj['spec'][k], wspec[k], k)
        # the patch from the sample response was applied, its warning passed on
        pod = r.json()
        self.assertEqual([c['name'] for c in pod['spec']['containers']], ['payments', 'maskmesh-proxy'])
        self.assertEqual(pod['spec']['volumes'][-1], {'name': 'maskmesh-policies', 'configMap': {'name': 'maskmesh-policies'}})
        self.assertIn('maskmesh.io/status', pod['metadata']['annotations'])
        self.assertEqual(pod['status']['phase'], 'Pending')
        self.assertEqual(r.header_all('Warning'),
                         ['299 - "maskmesh: pod has no container port named \\"metrics\\"; metrics scraping disabled"'])
        # a second call gets a fresh uid
        self.c.post('/api/v1/namespaces/shop/pods', self.pod({'maskmesh.io/inject': 'true'}))
        second = self.hook.take()[0]['review']['request']['uid']
        self.assertNotEqual(second, req['uid'])

    def test_failure_policy_timeout_and_ca(self):
        self.hook.behaviour['/slow'] = lambda rv: (time.sleep(2.5), {'allowed': True})[1]
        cm = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'f'}}
        cases = [
            ('down-fail', dict(svc='down.maskmesh.svc'), 'Fail', 500, 'connect: connection refused'),
            ('down-ignore', dict(svc='down.maskmesh.svc'), 'Ignore', 201, None),
            ('slow-fail', dict(timeout=1), 'Fail', 500, 'context deadline exceeded'),
            ('bad-ca', dict(ca=self.other_ca), 'Fail', 500, 'tls: failed to verify certificate: x509: certificate signed by unknown authority'),
            ('no-endpoint', dict(svc='ghost.maskmesh.svc'), 'Fail', 500, 'dial tcp: lookup ghost.maskmesh.svc: no such host'),
        ]
        for name, kw, policy_, code, text in cases:
            with self.subTest(name):
                path = '/slow' if name.startswith('slow') else '/ok'
                self.add_config('ValidatingWebhookConfiguration', name,
                                [self.hook_spec(name + '.maskmesh.io', path, ['configmaps'], failure=policy_, **kw)])
                t0 = time.monotonic()
                r = self.c.post('/api/v1/namespaces/shop/configmaps', cm)
                self.assertEqual(r.status, code, r.body)
                if code == 500:
                    st = r.json()
                    self.assertEqual(st['reason'], 'InternalError')
                    self.assertTrue(st['message'].startswith('Internal error occurred: failed calling webhook "%s.maskmesh.io": ' % name), st['message'])
                    self.assertIn(text, st['message'])
                else:
                    self.c.delete('/api/v1/namespaces/shop/configmaps/f')
                if name == 'slow-fail':
                    self.assertLess(time.monotonic() - t0, 2.4, 'timeoutSeconds was not honoured')
                self.c.delete('/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/' + name)

if __name__ == '__main__':
    unittest.main()
