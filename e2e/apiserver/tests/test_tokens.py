"""--tokens FILE: users with verb and resource lists, and the 403 texts they get."""

import unittest

from . import _support as support

CM = '/api/v1/namespaces/default/configmaps'


class TokensFileTest(unittest.TestCase):
    """--tokens FILE: per-token verbs and resources; 401 for unknown tokens."""

    def test_tokens_file(self):
        import os
        import tempfile
        fd, path = tempfile.mkstemp(prefix='standin-tokens-')
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
