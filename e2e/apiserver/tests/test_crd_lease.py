"""CRD lifecycle (its resources served, then gone with it) and Lease MicroTime round trips."""

import unittest

from . import _support as support

MP = '/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies'
CM = '/api/v1/namespaces/shop/configmaps'
PODS = '/api/v1/namespaces/shop/pods'


class WireTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = support.Server('--bookmark-interval', '0.5')
        cls.c = cls.srv.client()
        r = cls.c.post('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', support.load_crd())
        assert r.status == 201, r.body
        r = cls.c.post('/api/v1/namespaces', {'apiVersion': 'v1', 'kind': 'Namespace',
                                              'metadata': {'name': 'shop', 'labels': {'team': 'payments'}}})
        assert r.status == 201, r.body

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        rc = cls.srv.stop()
        assert rc == 0, 'SIGTERM did not stop the server cleanly: %r' % rc

    def setUp(self):
        # each test starts from no policies
        r = self.c.get(MP)
        for it in r.json()['items']:
            self.c.delete(MP + '/' + it['metadata']['name'])

    # ------------------------------------------------------------------ headers / errors
    # ------------------------------------------------------------------ create / get / list
    # ------------------------------------------------------------------ update / conflict / generation
    # ------------------------------------------------------------------ patch
    # ------------------------------------------------------------------ server-side apply
    # ------------------------------------------------------------------ delete
    # ------------------------------------------------------------------ watch
    # ------------------------------------------------------------------ tables / discovery / openapi
    def test_crd_lifecycle_serves_and_unserves(self):
        crd = {'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
               'metadata': {'name': 'widgets.example.com'},
               'spec': {'group': 'example.com', 'scope': 'Cluster',
                        'names': {'plural': 'widgets', 'kind': 'Widget'},
                        'versions': [{'name': 'v1', 'served': True, 'storage': True,
                                      'schema': {'openAPIV3Schema': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True}}}]}}
        path = '/apis/example.com/v1/widgets'
        self.assertEqual(self.c.get(path).body, b'404 page not found\n')
        r = self.c.post('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd)
        self.assertEqual(r.status, 201)
        st = r.json()['status']
        self.assertEqual({c['type']: c['status'] for c in st['conditions']}, {'NamesAccepted': 'True', 'Established': 'True'})
        self.assertEqual(st['acceptedNames']['singular'], 'widget')
        self.assertEqual(st['storedVersions'], ['v1'])
        r = self.c.post(path, {'apiVersion': 'example.com/v1', 'kind': 'Widget', 'metadata': {'name': 'w1'}, 'anything': {'goes': 1}})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json()['anything'], {'goes': 1}, 'preserve-unknown-fields keeps undeclared fields')
        self.assertNotIn('namespace', r.json()['metadata'])
        bad = dict(crd, metadata={'name': 'wrong.example.com'})
        r = self.c.post('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', bad)
        self.assertEqual(r.status, 422)
        self.assertIn('metadata.name: Invalid value: "wrong.example.com": must be spec.names.plural+"."+spec.group', r.json()['message'])
        self.assertEqual(self.c.delete('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com').status, 200)
        self.assertEqual(self.c.get(path).status, 404)
        self.assertEqual(self.c.get(path).body, b'404 page not found\n')
        self.assertNotIn('example.com', {g['name'] for g in self.c.get('/apis').json()['groups']})

    def test_lease_roundtrip_keeps_microtime(self):
        lease = support.sample('lease.json')
        self.c.post('/api/v1/namespaces', {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'maskmesh'}})
        body = {'apiVersion': lease['apiVersion'], 'kind': lease['kind'],
                'metadata': {'name': lease['metadata']['name']}, 'spec': lease['spec']}
        r = self.c.post('/apis/coordination.k8s.io/v1/namespaces/maskmesh/leases', body)
        self.assertEqual(r.status, 201)
        got = r.json()
        self.assertEqual(got['spec'], lease['spec'])
        got['spec']['renewTime'] = '2026-07-20T10:22:00.000001Z'
        r = self.c.put('/apis/coordination.k8s.io/v1/namespaces/maskmesh/leases/' + lease['metadata']['name'], got)
        self.assertEqual(r.json()['spec']['renewTime'], '2026-07-20T10:22:00.000001Z')


if __name__ == '__main__':
    unittest.main()
