"""kapi's fault knobs (POST /_fault and the key-style /_maskmesh/fault)."""

import http.client
import socket
import time
import unittest

from . import support

CM = '/api/v1/namespaces/default/configmaps'


class FaultTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = support.Server('--token-readonly', 'ro')
        cls.c = cls.srv.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        assert cls.srv.stop() == 0

    def tearDown(self):
        self.assertEqual(self.c.post('/_fault', {'action': 'reset'}).status, 200)

    def test_429_with_retry_after_then_recovers(self):
        self.assertEqual(self.c.post('/_fault', {'action': 'fail', 'code': 429, 'count': 2}).status, 200)
        for _ in range(2):
            r = self.c.get(CM)
            self.assertEqual(r.status, 429)
            self.assertEqual(r.header('Retry-After'), '1')
            self.assertEqual(r.json(), support.sample('status-429.json'))
        self.assertEqual(self.c.get(CM).status, 200)

    def test_plain_text_429_and_500_and_path_match(self):
        self.c.post('/_fault', {'action': 'fail', 'code': 429, 'count': 1, 'plain': True, 'retryAfter': 3})
        r = self.c.get(CM)
        self.assertEqual((r.status, r.header('Content-Type'), r.body, r.header('Retry-After')),
                         (429, 'text/plain; charset=utf-8', b'Too many requests, please try again later.\n', '3'))
        self.c.post('/_fault', {'action': 'fail', 'code': 500, 'count': 1, 'match': '/apis/coordination.k8s.io'})
        self.assertEqual(self.c.get(CM).status, 200, 'a path that does not match is served')
        r = self.c.get('/apis/coordination.k8s.io/v1/namespaces/default/leases')
        self.assertEqual(r.status, 500)
        self.assertEqual((r.json()['reason'], r.json()['code']), ('InternalError', 500))
        self.assertIsNone(r.header('Retry-After'))
        self.assertEqual(self.c.get('/apis/coordination.k8s.io/v1/namespaces/default/leases').status, 200)

    def test_delay(self):
        self.c.post('/_fault', {'action': 'delay', 'seconds': 0.4, 'count': 1})
        t0 = time.monotonic()
        self.assertEqual(self.c.get(CM).status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        t0 = time.monotonic()
        self.c.get(CM)
        self.assertLess(time.monotonic() - t0, 0.3, 'the delay applied to one request only')

    def test_drop_watches(self):
        w = self.c.watch(CM + '?watch=1&timeoutSeconds=30', timeout=10)
        self.assertEqual(w.status, 200)
        self.c.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'before-drop'}})
        self.assertEqual(w.next_event()['type'], 'ADDED')
        t0 = time.monotonic()
        self.assertEqual(self.c.post('/_fault', {'action': 'drop-watches'}).status, 200)
        self.assertLess(self._ended(w, t0), 5, 'the watch was not cut by the fault')
        w.close()
        w2 = self.c.watch(CM + '?watch=1&timeoutSeconds=1')
        self.assertEqual(w2.next_event()['object']['metadata']['name'], 'before-drop')
        w2.close()
        self.c.delete(CM + '/before-drop')

    def test_restart_keeps_state(self):
        made = self.c.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'survivor'}}).json()
        w = self.c.watch(CM + '?watch=1&timeoutSeconds=30&resourceVersion=' + made['metadata']['resourceVersion'])
        self.assertEqual(self.c.post('/_fault', {'action': 'restart', 'seconds': 1.0}).status, 200)
        self.assertLess(self._ended(w, time.monotonic()), 5, 'the watch survived the restart')
        w.close()
        time.sleep(0.3)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(('127.0.0.1', self.srv.port), timeout=2).close()
        ok = support.eventually(lambda: self._reachable(), timeout=5)
        self.assertTrue(ok, 'the server did not come back on the same port')
        self.c.close()
        r = self.c.get(CM + '/survivor')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()['metadata']['uid'], made['metadata']['uid'])
        nxt = self.c.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'after'}}).json()
        self.assertGreater(int(nxt['metadata']['resourceVersion']), int(made['metadata']['resourceVersion']))
        self.c.delete(CM + '/survivor')
        self.c.delete(CM + '/after')

    @staticmethod
    def _ended(w, t0):
        """Read until the stream stops (cut, or the 10 s socket timeout); seconds since t0."""
        try:
            while w.next_event() is not None:
                pass
        except (http.client.IncompleteRead, ConnectionError, OSError):
            pass
        return time.monotonic() - t0

    def _reachable(self):
        try:
            socket.create_connection(('127.0.0.1', self.srv.port), timeout=1).close()
            return True
        except OSError:
            return False

    def test_key_style_fault_api_and_auth(self):
        r = self.c.post('/_maskmesh/fault', {'fail': {'code': 503, 'count': 1, 'retryAfter': 2}})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()['fail']['code'], 503)
        r = self.c.get(CM)
        self.assertEqual((r.status, r.header('Retry-After'), r.json()['reason']), (503, '2', 'ServiceUnavailable'))
        ro = self.srv.client(token='ro')
        self.addCleanup(ro.close)
        self.assertEqual(ro.post('/_fault', {'action': 'compact'}).status, 403)
        self.assertEqual(ro.post('/_maskmesh/fault', {'compact': True}).status, 403)
        self.assertEqual(self.c.post('/_fault', {'action': 'explode'}).status, 400)


class TokensFileTest(unittest.TestCase):
    """--tokens FILE: per-token verbs and resources; 401 for unknown tokens."""

    def test_tokens_file(self):
        import os
        import tempfile
        fd, path = tempfile.mkstemp(prefix='kapi-tokens-')
        with os.fdopen(fd, 'w') as f:
            f.write('# token user verbs resources\n'
                    'ctl system:serviceaccount:maskmesh:maskmesh-controller get,list,watch,update maskingpolicies/status,configmaps\n')
        self.addCleanup(os.unlink, path)
        srv = support.Server('--tokens', path)
        self.addCleanup(srv.stop)
        admin = srv.client()
        self.addCleanup(admin.close)
        admin.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'maskmesh-policies'}})
        ctl = srv.client(token='ctl')
        self.addCleanup(ctl.close)
        cm = ctl.get(CM + '/maskmesh-policies')
        self.assertEqual(cm.status, 200)
        self.assertEqual(ctl.put(CM + '/maskmesh-policies', cm.json()).status, 200)
        r = ctl.delete(CM + '/maskmesh-policies')
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json()['message'], 'configmaps "maskmesh-policies" is forbidden: User '
                         '"system:serviceaccount:maskmesh:maskmesh-controller" cannot delete resource "configmaps" '
                         'in API group "" in the namespace "default"')
        r = ctl.get('/api/v1/namespaces/default/secrets')
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json()['message'], 'secrets is forbidden: User "system:serviceaccount:maskmesh:maskmesh-controller" '
                         'cannot list resource "secrets" in API group "" in the namespace "default"')
        r = ctl.get('/api/v1/namespaces')
        self.assertIn('at the cluster scope', r.json()['message'])


if __name__ == '__main__':
    unittest.main()
