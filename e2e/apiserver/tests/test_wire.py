"""Wire behaviour checked against ../shared/k8s-samples (shapes, Status bodies, watch, apply)."""

import base64
import copy
import json
import time
import unittest

from . import support

MP = '/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies'
CM = '/api/v1/namespaces/shop/configmaps'
PODS = '/api/v1/namespaces/shop/pods'


def policy(name='payments-api', port=8080, **spec_extra):
    spec = {'selector': {'matchLabels': {'app': 'payments'}}, 'port': port,
            'rules': [{'name': 'card-number', 'fields': ['$.card.number'],
                       'action': {'type': 'mask', 'keepLast': 4, 'char': '*'}}]}
    spec.update(spec_extra)
    return {'apiVersion': 'maskmesh.io/v1alpha1', 'kind': 'MaskingPolicy',
            'metadata': {'name': name, 'namespace': 'shop'}, 'spec': spec}


def status_keys_like(test, got, want):
    """Same keys (order-insensitive) and same values except message texts where noted."""
    test.assertEqual(sorted(got), sorted(want), got)
    for k in ('kind', 'apiVersion', 'status', 'reason', 'code'):
        test.assertEqual(got.get(k), want.get(k), k)


class WireTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = support.Server('--token-readonly', 'readonly-token', '--bookmark-interval', '0.5')
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
    def test_common_headers_and_trailing_newline(self):
        r = self.c.get('/api/v1/namespaces/shop')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header('Content-Type'), 'application/json')
        self.assertEqual(r.header('Cache-Control'), 'no-cache, private')
        self.assertRegex(r.header('Audit-Id'), r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
        self.assertTrue(r.body.endswith(b'\n'))
        ns = r.json()
        self.assertEqual(list(ns)[:3], ['kind', 'apiVersion', 'metadata'])
        self.assertEqual(ns['metadata']['labels'], {'team': 'payments', 'kubernetes.io/metadata.name': 'shop'})
        self.assertEqual(ns['status'], {'phase': 'Active'})

    def test_404_status_for_absent_object(self):
        r = self.c.get(MP + '/payments-api')
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json(), support.sample('status-404.json'))

    def test_404_plain_text_for_unserved_path(self):
        for path in ('/apis/nosuch.io/v1/things', '/apis/maskmesh.io/v9/maskingpolicies', '/api/v1/nosuch',
                     '/api/v1/pods/x'):
            r = self.c.get(path)
            self.assertEqual(r.status, 404, path)
            self.assertEqual(r.body, b'404 page not found\n')
            self.assertEqual(r.header('Content-Type'), 'text/plain; charset=utf-8')

    def test_401_without_or_with_bad_token(self):
        for tok in ('', 'wrong'):
            c = self.srv.client(token=tok)
            r = c.get(MP)
            c.close()
            self.assertEqual(r.status, 401)
            self.assertEqual(r.json(), support.sample('status-401.json'))

    def test_403_for_readonly_token(self):
        ro = self.srv.client(token='readonly-token')
        self.addCleanup(ro.close)
        self.assertEqual(ro.get(CM).status, 200)
        self.c.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'maskmesh-policies'}})
        cm = ro.get(CM + '/maskmesh-policies').json()
        r = ro.put(CM + '/maskmesh-policies', cm)
        self.assertEqual(r.status, 403)
        want = support.sample('status-403-forbidden.json')
        got = r.json()
        status_keys_like(self, got, want)
        self.assertEqual(got['details'], want['details'])
        self.assertEqual(got['message'], want['message'].replace('system:serviceaccount:maskmesh:maskmesh-controller',
                                                                 'maskmesh-e2e-readonly'))
        self.c.delete(CM + '/maskmesh-policies')

    def test_413_body_too_large(self):
        big = b'{"x":"' + b'a' * (3 * 1024 * 1024 + 10) + b'"}'
        c = self.srv.client()
        r = c.post(CM, big)
        c.close()
        self.assertEqual(r.status, 413)
        self.assertEqual(r.json()['reason'], 'RequestEntityTooLarge')

    # ------------------------------------------------------------------ create / get / list
    def test_create_get_shape_of_custom_resource(self):
        r = self.c.post(MP + '?fieldManager=kubectl-client-side-apply', policy())
        self.assertEqual(r.status, 201)
        want = support.sample('maskingpolicy.json')
        got = r.json()
        self.assertEqual(list(got), sorted(got), 'CR keys are sorted')
        self.assertEqual(list(got['metadata']), sorted(got['metadata']))
        for k in ('creationTimestamp', 'generation', 'managedFields', 'name', 'namespace', 'resourceVersion', 'uid'):
            self.assertIn(k, got['metadata'])
        self.assertEqual(got['metadata']['generation'], 1)
        self.assertRegex(got['metadata']['creationTimestamp'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        mf = got['metadata']['managedFields'][0]
        self.assertEqual(sorted(mf), sorted(want['metadata']['managedFields'][0]))
        self.assertEqual((mf['manager'], mf['operation'], mf['fieldsType']), ('kubectl-client-side-apply', 'Update', 'FieldsV1'))
        self.assertEqual(mf['fieldsV1']['f:spec']['f:port'], {})
        self.assertIn('.', mf['fieldsV1']['f:spec'])
        # defaults from the schema
        self.assertEqual(got['spec']['mode'], 'enforce')
        g = self.c.get(MP + '/payments-api').json()
        self.assertEqual(g, got)

    def test_generate_name_and_409_already_exists(self):
        cm = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'generateName': 'gen-'}, 'data': {'a': 'b'}}
        r = self.c.post(CM, cm)
        self.assertEqual(r.status, 201)
        name = r.json()['metadata']['name']
        self.assertRegex(name, r'^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$')
        dup = copy.deepcopy(cm)
        dup['metadata'] = {'name': name}
        r = self.c.post(CM, dup)
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json()['reason'], 'AlreadyExists')
        self.assertEqual(r.json()['message'], 'configmaps "%s" already exists' % name)
        self.assertEqual(r.json()['details'], {'name': name, 'kind': 'configmaps'})
        self.c.delete(CM + '/' + name)

    def test_create_in_missing_namespace(self):
        r = self.c.post('/api/v1/namespaces/nope/configmaps', {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'x'}})
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()['message'], 'namespaces "nope" not found')

    def test_list_shapes_builtin_vs_custom(self):
        for i in range(3):
            self.c.post(PODS, {'apiVersion': 'v1', 'kind': 'Pod',
                               'metadata': {'name': 'payments-%d' % i, 'labels': {'app': 'payments', 'i': str(i)}},
                               'spec': {'containers': [{'name': 'payments', 'image': 'registry.example.com/shop/payments:1.8.2',
                                                        'ports': [{'name': 'http', 'containerPort': 8080}]}]}})
        self.c.post(MP, policy())
        want = support.sample('list-pods.json')
        r = self.c.get(PODS + '?limit=2')
        page = r.json()
        self.assertEqual(list(page), list(want))
        self.assertEqual(page['kind'], 'PodList')
        self.assertEqual(sorted(page['metadata']), sorted(want['metadata']))
        self.assertEqual(page['metadata']['remainingItemCount'], 1)
        self.assertEqual(len(page['items']), 2)
        for it in page['items']:
            self.assertNotIn('kind', it)
            self.assertNotIn('apiVersion', it)
            self.assertEqual(list(it), ['metadata', 'spec', 'status'])
        c0 = page['items'][0]['spec']['containers'][0]
        self.assertEqual(c0['ports'][0]['protocol'], 'TCP')
        self.assertEqual(c0['terminationMessagePath'], '/dev/termination-log')
        self.assertEqual(page['items'][0]['status']['phase'], 'Pending')
        tok = page['metadata']['continue']
        raw = json.loads(base64.urlsafe_b64decode(tok + '=' * (-len(tok) % 4)))
        self.assertEqual(raw['v'], 'meta.k8s.io/v1')
        # a write between pages does not show in page 2 (consistent snapshot)
        self.c.post(PODS, {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'payments-9'},
                           'spec': {'containers': [{'name': 'c', 'image': 'i:1'}]}})
        p2 = self.c.get(PODS + '?limit=2&continue=' + tok).json()
        want2 = support.sample('list-pods-page2.json')
        self.assertEqual(sorted(p2['metadata']), sorted(want2['metadata']))
        self.assertEqual(p2['metadata']['resourceVersion'], page['metadata']['resourceVersion'])
        self.assertEqual([i['metadata']['name'] for i in p2['items']], ['payments-2'])
        # selectors: no remainingItemCount
        sel = self.c.get(PODS + '?limit=1&labelSelector=app%3Dpayments').json()
        self.assertIn('continue', sel['metadata'])
        self.assertNotIn('remainingItemCount', sel['metadata'])
        # CR lists keep kind/apiVersion on items
        lst = self.c.get(MP).json()
        self.assertEqual(lst['kind'], 'MaskingPolicyList')
        self.assertEqual(lst['items'][0]['kind'], 'MaskingPolicy')
        self.assertEqual(lst['items'][0]['apiVersion'], 'maskmesh.io/v1alpha1')
        for n in ('payments-0', 'payments-1', 'payments-2', 'payments-9'):
            self.assertEqual(self.c.delete(PODS + '/' + n).status, 200)

    def test_label_and_field_selectors(self):
        labels = [{'app': 'a', 'tier': 'x'}, {'app': 'b'}, {'app': 'c', 'tier': 'y'}, {}]
        for i, l in enumerate(labels):
            self.c.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'sel-%d' % i, 'labels': l}})
        cases = {
            'app=a': ['sel-0'], 'app==b': ['sel-1'], 'app!=a': ['sel-1', 'sel-2', 'sel-3'],
            'app in (a,c)': ['sel-0', 'sel-2'], 'app notin (a,c)': ['sel-1', 'sel-3'],
            'tier': ['sel-0', 'sel-2'], '!tier': ['sel-1', 'sel-3'], 'app,tier=y': ['sel-2'],
        }
        import urllib.parse
        for sel, want in cases.items():
            r = self.c.get(CM + '?labelSelector=' + urllib.parse.quote(sel))
            self.assertEqual(r.status, 200, sel)
            got = [i['metadata']['name'] for i in r.json()['items'] if i['metadata']['name'].startswith('sel-')]
            self.assertEqual(got, want, sel)
        r = self.c.get(CM + '?fieldSelector=metadata.name%3Dsel-1')
        self.assertEqual([i['metadata']['name'] for i in r.json()['items']], ['sel-1'])
        r = self.c.get('/api/v1/configmaps?fieldSelector=metadata.namespace%3Dshop,metadata.name!%3Dsel-1')
        self.assertEqual(sorted(i['metadata']['name'] for i in r.json()['items'] if i['metadata']['name'].startswith('sel-')),
                         ['sel-0', 'sel-2', 'sel-3'])
        r = self.c.get(CM + '?fieldSelector=data.x%3Dy')
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()['message'], 'field label not supported: data.x')
        for i in range(4):
            self.c.delete(CM + '/sel-%d' % i)

    # ------------------------------------------------------------------ update / conflict / generation
    def test_put_conflict_and_generation_rules(self):
        created = self.c.post(MP, policy()).json()
        stale = copy.deepcopy(created)
        created['spec']['port'] = 8081
        r = self.c.put(MP + '/payments-api', created)
        self.assertEqual(r.status, 200)
        cur = r.json()
        self.assertEqual(cur['metadata']['generation'], 2)
        self.assertNotEqual(cur['metadata']['resourceVersion'], stale['metadata']['resourceVersion'])
        stale['spec']['port'] = 8082
        r = self.c.put(MP + '/payments-api', stale)
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json(), support.sample('status-409-conflict.json'))
        # status writes never bump generation, main writes ignore status
        st = copy.deepcopy(cur)
        st['status'] = {'observedGeneration': 2, 'conditions': [
            {'type': 'Ready', 'status': 'True', 'reason': 'Rendered', 'message': 'ok',
             'lastTransitionTime': '2026-07-20T08:55:13Z', 'observedGeneration': 2}]}
        st['spec']['port'] = 1     # ignored through /status
        r = self.c.put(MP + '/payments-api/status?fieldManager=maskmesh-controller', st)
        self.assertEqual(r.status, 200, r.body)
        after = r.json()
        self.assertEqual(after['metadata']['generation'], 2)
        self.assertEqual(after['spec']['port'], 8081)
        self.assertEqual(after['status']['observedGeneration'], 2)
        mf = [m for m in after['metadata']['managedFields'] if m['manager'] == 'maskmesh-controller'][0]
        self.assertEqual(mf['subresource'], 'status')
        self.assertEqual(list(mf['fieldsV1']), ['f:status'])
        main = copy.deepcopy(after)
        main['status'] = {'observedGeneration': 99}
        main['metadata']['labels'] = {'x': 'y'}
        r = self.c.put(MP + '/payments-api', main)
        self.assertEqual(r.json()['status']['observedGeneration'], 2)
        self.assertEqual(r.json()['metadata']['generation'], 2, 'metadata-only change keeps generation')
        # no-op update keeps the resourceVersion
        same = r.json()
        r2 = self.c.put(MP + '/payments-api', same)
        self.assertEqual(r2.json()['metadata']['resourceVersion'], same['metadata']['resourceVersion'])
        # CRs need a resourceVersion on PUT
        nov = copy.deepcopy(same)
        del nov['metadata']['resourceVersion']
        r = self.c.put(MP + '/payments-api', nov)
        self.assertEqual(r.status, 422)
        self.assertIn('metadata.resourceVersion: Invalid value: 0x0: must be specified for an update', r.json()['message'])

    def test_422_invalid_against_crd_schema(self):
        bad = policy(port=70000)
        del bad['spec']['selector']
        bad['spec']['rules'][0]['action']['type'] = 'shred'
        r = self.c.post(MP, bad)
        self.assertEqual(r.status, 422)
        got = r.json()
        want = support.sample('status-422-invalid.json')
        status_keys_like(self, got, want)
        self.assertEqual(sorted(got['details']), sorted(want['details']))
        self.assertEqual({k: got['details'][k] for k in ('name', 'group', 'kind')},
                         {k: want['details'][k] for k in ('name', 'group', 'kind')})
        causes = {c['field']: c for c in got['details']['causes']}
        self.assertEqual(set(causes), {'spec.rules[0].action.type', 'spec.port', 'spec.selector'})
        self.assertEqual(causes['spec.port'], want['details']['causes'][1])
        self.assertEqual(causes['spec.selector'], want['details']['causes'][2])
        self.assertEqual(causes['spec.rules[0].action.type']['reason'], 'FieldValueNotSupported')
        self.assertTrue(causes['spec.rules[0].action.type']['message'].startswith('Unsupported value: "shred": supported values: "redact", "mask"'))
        self.assertTrue(got['message'].startswith('MaskingPolicy.maskmesh.io "payments-api" is invalid: ['))
        for c in got['details']['causes']:
            self.assertIn('%s: %s' % (c['field'], c['message']), got['message'])
        # one error: no brackets
        one = policy(port=0)
        r = self.c.post(MP, one)
        self.assertEqual(r.json()['message'], 'MaskingPolicy.maskmesh.io "payments-api" is invalid: spec.port: Invalid value: 0: spec.port in body should be greater than or equal to 1')
        # type errors, maxLength, pattern
        r = self.c.post(MP, policy(port=True))
        self.assertIn('spec.port in body must be of type integer,string: "boolean"', r.json()['message'])
        r = self.c.post(MP, policy(port='a-very-long-port-name'))
        self.assertIn('spec.port: Too long: may not be more than 15 bytes', r.json()['message'])
        p = policy()
        p['spec']['rules'][0]['name'] = 'Bad_'
        r = self.c.post(MP, p)
        self.assertIn("spec.rules[0].name in body should match '^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$'", r.json()['message'])

    def test_unknown_fields_strict_warn(self):
        p = policy()
        p['spec']['bogus'] = 1
        r = self.c.post(MP + '?fieldValidation=Strict', p)
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()['message'], 'MaskingPolicy in version "v1alpha1" cannot be handled as a MaskingPolicy: strict decoding error: unknown field "spec.bogus"')
        r = self.c.post(MP, p)
        self.assertEqual(r.status, 201)
        self.assertEqual(r.header_all('Warning'), ['299 - "unknown field \\"spec.bogus\\""'])
        self.assertNotIn('bogus', r.json()['spec'])

    # ------------------------------------------------------------------ patch
    def test_patch_types(self):
        self.c.post(MP, policy())
        r = self.c.patch(MP + '/payments-api', {'spec': {'mode': 'audit'}}, 'application/merge-patch+json')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()['spec']['mode'], 'audit')
        r = self.c.patch(MP + '/payments-api', [{'op': 'replace', 'path': '/spec/port', 'value': 9090},
                                                {'op': 'add', 'path': '/metadata/labels', 'value': {'a': 'b'}}],
                         'application/json-patch+json')
        self.assertEqual(r.status, 200)
        self.assertEqual((r.json()['spec']['port'], r.json()['metadata']['labels']), (9090, {'a': 'b'}))
        r = self.c.patch(MP + '/payments-api', [{'op': 'test', 'path': '/spec/port', 'value': 1}], 'application/json-patch+json')
        self.assertEqual(r.status, 422)
        r = self.c.patch(MP + '/payments-api', {'spec': {'mode': 'audit'}}, 'application/strategic-merge-patch+json')
        self.assertEqual(r.status, 415)
        self.assertEqual(r.json(), support.sample('status-415-smp-on-cr.json'))
        r = self.c.patch(MP + '/payments-api', {}, 'text/plain')
        self.assertEqual(r.status, 415)
        r = self.c.patch(MP + '/payments-api', {'spec': {'mode': 'audit'}}, 'application/merge-patch+json; charset=utf-8')
        self.assertEqual(r.status, 200)
        r = self.c.patch(MP + '/payments-api?force=true', {'spec': {}}, 'application/merge-patch+json')
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json()['message'], 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch')
        r = self.c.patch(MP + '/nope', {'spec': {}}, 'application/merge-patch+json')
        self.assertEqual(r.status, 404)
        # patch with a stale resourceVersion is a precondition
        r = self.c.patch(MP + '/payments-api', {'metadata': {'resourceVersion': '1'}, 'spec': {'mode': 'enforce'}},
                         'application/merge-patch+json')
        self.assertEqual(r.status, 409)

    def test_strategic_merge_on_builtin(self):
        pod = {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'smp'},
               'spec': {'containers': [{'name': 'a', 'image': 'a:1'}, {'name': 'b', 'image': 'b:1'}]}}
        self.assertEqual(self.c.post(PODS, pod).status, 201)
        r = self.c.patch(PODS + '/smp', {'spec': {'containers': [{'name': 'b', 'image': 'b:2'}]},
                                        'metadata': {'labels': {'x': 'y'}}},
                         'application/strategic-merge-patch+json')
        self.assertEqual(r.status, 200, r.body)
        cs = r.json()['spec']['containers']
        self.assertEqual([(c['name'], c['image']) for c in cs], [('a', 'a:1'), ('b', 'b:2')])
        r = self.c.patch(PODS + '/smp', {'spec': {'containers': [{'name': 'a', '$patch': 'delete'}]}},
                         'application/strategic-merge-patch+json')
        self.assertEqual(r.status, 422, 'removing a container is not a permitted pod update')
        self.c.delete(PODS + '/smp')

    # ------------------------------------------------------------------ server-side apply
    def test_server_side_apply(self):
        # the owner must exist, or the garbage collector removes the ConfigMap: create it and
        # put its uid where the sample has the invented one
        owner = self.c.post(MP, policy()).json()
        uid = owner['metadata']['uid']
        sample_uid = support.sample('ssa-configmap-response.json')['metadata']['ownerReferences'][0]['uid']
        with open(support.SAMPLES + '/ssa-configmap-request.yaml', 'rb') as f:
            yaml_body = f.read().replace(sample_uid.encode(), uid.encode())
        req = support.yamlmini.load(yaml_body)
        path = CM + '/maskmesh-policies'
        r = self.c.patch(path, yaml_body, 'application/apply-patch+yaml')
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json()['message'], 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
        r = self.c.patch(path + '?fieldManager=maskmesh-controller&force=true', yaml_body, 'application/apply-patch+yaml')
        self.assertEqual(r.status, 201, r.body)
        got = r.json()
        want = json.loads(json.dumps(support.sample('ssa-configmap-response.json')).replace(sample_uid, uid))
        self.assertEqual(list(got), list(want))
        self.assertEqual(got['data'], want['data'])
        self.assertEqual(got['metadata']['ownerReferences'], want['metadata']['ownerReferences'])
        self.assertEqual(got['metadata']['managedFields'][0]['fieldsV1'], want['metadata']['managedFields'][0]['fieldsV1'])
        self.assertEqual(got['metadata']['managedFields'][0]['operation'], 'Apply')
        # re-apply (JSON body, same content type): 200, unchanged resourceVersion
        r = self.c.patch(path + '?fieldManager=maskmesh-controller&force=true', json.dumps(req), 'application/apply-patch+yaml')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()['metadata']['resourceVersion'], got['metadata']['resourceVersion'])
        # another manager changing an owned field: 409 with causes, unless force
        other = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'maskmesh-policies', 'namespace': 'shop'},
                 'data': {'policies.yaml': 'other'}}
        r = self.c.patch(path + '?fieldManager=intruder', other, 'application/apply-patch+yaml')
        self.assertEqual(r.status, 409)
        st = r.json()
        self.assertEqual(st['reason'], 'Conflict')
        self.assertEqual(st['message'], 'Apply failed with 1 conflict: conflict with "maskmesh-controller": .data.policies.yaml')
        self.assertEqual(st['details'], {'causes': [{'reason': 'FieldManagerConflict',
                                                     'message': 'conflict with "maskmesh-controller"',
                                                     'field': '.data.policies.yaml'}]})
        r = self.c.patch(path + '?fieldManager=intruder&force=true', other, 'application/apply-patch+yaml')
        self.assertEqual(r.status, 200)
        mfs = {m['manager']: m for m in r.json()['metadata']['managedFields']}
        self.assertEqual(mfs['intruder']['fieldsV1'], {'f:data': {'f:policies.yaml': {}}})
        self.assertNotIn('f:data', mfs['maskmesh-controller']['fieldsV1'])
        # the first manager drops its label: the label goes (nobody else owns it)
        req2 = copy.deepcopy(req)
        del req2['metadata']['labels']
        r = self.c.patch(path + '?fieldManager=maskmesh-controller&force=true', req2, 'application/apply-patch+yaml')
        self.assertNotIn('labels', r.json()['metadata'])
        self.assertEqual(r.json()['data']['policies.yaml'], req['data']['policies.yaml'])
        self.c.delete(path)

    def test_dry_run(self):
        r = self.c.post(MP + '?dryRun=All', policy())
        self.assertEqual(r.status, 201)
        self.assertNotIn('resourceVersion', r.json()['metadata'])
        self.assertEqual(self.c.get(MP + '/payments-api').status, 404)
        r = self.c.post(MP + '?dryRun=Some', policy())
        self.assertEqual(r.status, 422)
        self.c.post(MP, policy())
        r = self.c.delete(MP + '/payments-api?dryRun=All')
        self.assertEqual(r.status, 200)
        self.assertEqual(self.c.get(MP + '/payments-api').status, 200)

    # ------------------------------------------------------------------ delete
    def test_delete_preconditions_and_status(self):
        mp = self.c.post(MP, policy()).json()
        r = self.c.delete(MP + '/payments-api', {'kind': 'DeleteOptions', 'apiVersion': 'v1',
                                                 'preconditions': {'uid': 'nope'}})
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json()['message'], 'Operation cannot be fulfilled on maskingpolicies.maskmesh.io "payments-api": '
                         'Precondition failed: UID in precondition: nope, UID in object meta: %s' % mp['metadata']['uid'])
        r = self.c.delete(MP + '/payments-api', {'preconditions': {'resourceVersion': mp['metadata']['resourceVersion']}})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success',
                                    'details': {'name': 'payments-api', 'group': 'maskmesh.io', 'kind': 'maskingpolicies',
                                                'uid': mp['metadata']['uid']}})
        self.assertEqual(self.c.delete(MP + '/payments-api').json(), support.sample('status-404.json'))

    def test_finalizers_hold_deletion(self):
        p = policy()
        p['metadata']['finalizers'] = ['maskmesh.io/cleanup']
        self.c.post(MP, p)
        r = self.c.delete(MP + '/payments-api')
        self.assertEqual(r.status, 200)
        self.assertIn('deletionTimestamp', r.json()['metadata'])
        self.assertEqual(self.c.get(MP + '/payments-api').status, 200)
        r = self.c.patch(MP + '/payments-api', [{'op': 'remove', 'path': '/metadata/finalizers'}], 'application/json-patch+json')
        self.assertEqual(r.status, 200)
        self.assertEqual(self.c.get(MP + '/payments-api').status, 404)

    def test_owner_reference_garbage_collection(self):
        owner = self.c.post(MP, policy()).json()
        ref = {'apiVersion': 'maskmesh.io/v1alpha1', 'kind': 'MaskingPolicy', 'name': 'payments-api',
               'uid': owner['metadata']['uid'], 'controller': True, 'blockOwnerDeletion': True}
        other_owner = self.c.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'keeper'}}).json()
        ref2 = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'name': 'keeper', 'uid': other_owner['metadata']['uid']}
        self.c.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'dep-one', 'ownerReferences': [ref]}})
        self.c.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'dep-two', 'ownerReferences': [ref, ref2]}})
        np = support.sample('networkpolicy.json')
        np = {'apiVersion': np['apiVersion'], 'kind': np['kind'],
              'metadata': {'name': 'maskmesh-payments-api', 'ownerReferences': [ref], 'labels': np['metadata']['labels']},
              'spec': np['spec']}
        r = self.c.post('/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies?fieldManager=maskmesh-controller', np)
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json()['metadata']['generation'], 1)
        self.assertEqual(r.json()['metadata']['managedFields'][0]['fieldsV1']['f:spec'],
                         {'f:ingress': {}, 'f:podSelector': {}, 'f:policyTypes': {}})
        self.c.delete(MP + '/payments-api')
        gone = support.eventually(lambda: self.c.get(CM + '/dep-one').status == 404 and
                                  self.c.get('/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/maskmesh-payments-api').status == 404)
        self.assertTrue(gone, 'dependents of the deleted owner were not collected')
        time.sleep(0.3)
        self.assertEqual(self.c.get(CM + '/dep-two').status, 200, 'a dependent with a live owner stays')
        self.c.delete(CM + '/keeper')
        self.assertTrue(support.eventually(lambda: self.c.get(CM + '/dep-two').status == 404))

    # ------------------------------------------------------------------ watch
    def test_watch_envelopes_bookmarks_and_resume(self):
        rv0 = self.c.get(MP).json()['metadata']['resourceVersion']
        w = self.c.watch('/apis/maskmesh.io/v1alpha1/maskingpolicies?watch=1&allowWatchBookmarks=true&resourceVersion=' + rv0)
        self.assertEqual(w.status, 200)
        self.assertEqual(w.header('Content-Type'), 'application/json')
        self.assertEqual(w.header('Transfer-Encoding'), 'chunked')
        created = self.c.post(MP, policy()).json()
        st = copy.deepcopy(created)
        st['status'] = {'observedGeneration': 1}
        self.c.put(MP + '/payments-api/status', st)
        self.c.patch(MP + '/payments-api', {'spec': {'port': 9000}}, 'application/merge-patch+json')
        self.c.delete(MP + '/payments-api')
        want = support.sample('watch-maskingpolicies.ndjson')
        seen = []
        bookmark = None
        while len(seen) < 4:
            ev = w.next_event()
            self.assertIsNotNone(ev)
            self.assertEqual(sorted(ev), ['object', 'type'])
            if ev['type'] == 'BOOKMARK':
                bookmark = ev
                continue
            self.assertEqual(ev['object']['kind'], 'MaskingPolicy')
            self.assertEqual(ev['object']['apiVersion'], 'maskmesh.io/v1alpha1')
            seen.append(ev)
        self.assertEqual([e['type'] for e in seen], ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED'])
        self.assertEqual([e['object']['metadata']['generation'] for e in seen], [1, 1, 2, 2])
        for line in w.raw_lines:
            self.assertTrue(line.endswith(b'}\n'))
            self.assertNotIn(b'\n', line[:-1])
        rvs = [int(e['object']['metadata']['resourceVersion']) for e in seen]
        self.assertEqual(rvs, sorted(rvs))
        while bookmark is None:
            ev = w.next_event()
            if ev['type'] == 'BOOKMARK':
                bookmark = ev
        self.assertEqual(bookmark['object'].keys(), {'apiVersion', 'kind', 'metadata'})
        self.assertEqual(list(bookmark['object']['metadata']), ['resourceVersion'])
        self.assertEqual(sorted(bookmark), sorted(want[2]))
        w.close()
        # resume from the ADDED event's resourceVersion: the rest replays
        w2 = self.c.watch('/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies?watch=true&timeoutSeconds=1&resourceVersion=%d' % rvs[0])
        types = []
        while True:
            ev = w2.next_event()
            if ev is None:
                break
            types.append(ev['type'])
        self.assertEqual(types, ['MODIFIED', 'MODIFIED', 'DELETED'])
        w2.close()

    def test_watch_list_initial_events_end_bookmark(self):
        self.c.post(MP, policy())
        want = support.sample('watch-list-maskingpolicies.ndjson')
        r = self.c.get('/apis/maskmesh.io/v1alpha1/maskingpolicies?watch=1&sendInitialEvents=true')
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json()['message'], 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan')
        w = self.c.watch('/apis/maskmesh.io/v1alpha1/maskingpolicies?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2')
        e1 = w.next_event()
        e2 = w.next_event()
        self.assertEqual([e1['type'], e2['type']], [want[0]['type'], want[1]['type']])
        self.assertEqual(e1['object']['metadata']['name'], 'payments-api')
        self.assertEqual(e2['object']['metadata']['annotations'], {'k8s.io/initial-events-end': 'true'})
        self.assertEqual(sorted(e2['object']), sorted(want[1]['object']))
        self.assertEqual(sorted(e2['object']['metadata']), sorted(want[1]['object']['metadata']))
        w.close()

    def test_watch_expired_after_compaction(self):
        rv = self.c.get(MP).json()['metadata']['resourceVersion']
        self.c.post(MP, policy())
        self.assertEqual(self.c.post('/_fault', {'action': 'compact'}).status, 200)
        w = self.c.watch('/apis/maskmesh.io/v1alpha1/maskingpolicies?watch=1&resourceVersion=' + rv)
        self.assertEqual(w.status, 200)
        ev = w.next_event()
        want = support.sample('watch-expired.ndjson')[0]
        self.assertEqual(ev['type'], 'ERROR')
        self.assertEqual(sorted(ev['object']), sorted(want['object']))
        self.assertEqual({k: ev['object'][k] for k in ('kind', 'apiVersion', 'status', 'reason', 'code')},
                         {k: want['object'][k] for k in ('kind', 'apiVersion', 'status', 'reason', 'code')})
        self.assertRegex(ev['object']['message'], r'^too old resource version: %s \(\d+\)$' % rv)
        self.assertIsNone(w.next_event(), 'the stream ends after the ERROR event')
        w.close()
        # lists: Exact at a compacted RV and an expired continue token
        r = self.c.get(MP + '?resourceVersion=%s&resourceVersionMatch=Exact' % rv)
        self.assertEqual(r.status, 410)
        self.assertEqual(r.json(), support.sample('status-410-gone-list-rv.json'))
        tok = base64.urlsafe_b64encode(json.dumps({'v': 'meta.k8s.io/v1', 'rv': int(rv), 'start': 'a\x00'}).encode()).decode().rstrip('=')
        r = self.c.get(MP + '?limit=1&continue=' + tok)
        self.assertEqual(r.status, 410)
        want = support.sample('status-410-gone-list.json')
        self.assertEqual(sorted(r.json()), sorted(want))
        self.assertEqual(r.json()['message'], want['message'])
        newtok = r.json()['metadata']['continue']
        self.assertEqual(json.loads(base64.urlsafe_b64decode(newtok + '=' * (-len(newtok) % 4)))['rv'], -1)
        self.assertEqual(self.c.get(MP + '?limit=1&continue=' + newtok).status, 200)

    def test_watch_label_selector_transitions(self):
        w = self.c.watch(CM + '?watch=1&labelSelector=sel%3Dyes&timeoutSeconds=3')
        self.c.post(CM, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'wsel', 'labels': {'sel': 'no'}}})
        self.c.patch(CM + '/wsel', {'metadata': {'labels': {'sel': 'yes'}}}, 'application/merge-patch+json')
        self.c.patch(CM + '/wsel', {'data': {'a': 'b'}}, 'application/merge-patch+json')
        self.c.patch(CM + '/wsel', {'metadata': {'labels': {'sel': 'no'}}}, 'application/merge-patch+json')
        evs = [w.next_event() for _ in range(3)]
        self.assertEqual([e['type'] for e in evs], ['ADDED', 'MODIFIED', 'DELETED'])
        self.assertEqual(evs[0]['object']['kind'], 'ConfigMap', 'watch objects carry kind')
        w.close()
        self.c.delete(CM + '/wsel')

    # ------------------------------------------------------------------ tables / discovery / openapi
    def test_table_output(self):
        self.c.post(MP, policy())
        st = self.c.get(MP + '/payments-api').json()
        st['status'] = {'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'Rendered', 'message': 'm',
                                        'lastTransitionTime': '2026-07-20T08:55:13Z'}]}
        self.c.put(MP + '/payments-api/status', st)
        r = self.c.get(MP, accept='application/json;as=Table;v=v1;g=meta.k8s.io,application/json')
        t = r.json()
        self.assertEqual((t['kind'], t['apiVersion']), ('Table', 'meta.k8s.io/v1'))
        names = [c['name'] for c in t['columnDefinitions']]
        self.assertEqual(names[:2], ['Name', 'Ready'])
        row = t['rows'][0]
        self.assertEqual(row['cells'][0], 'payments-api')
        self.assertEqual(row['cells'][1], 'True')
        self.assertEqual(row['object']['kind'], 'PartialObjectMetadata')
        age = row['cells'][names.index('Age')]
        self.assertRegex(age, r'^\d+s$')
        r = self.c.get('/api/v1/namespaces', accept='application/json;as=Table;v=v1;g=meta.k8s.io')
        t = r.json()
        self.assertEqual([c['name'] for c in t['columnDefinitions']], ['Name', 'Status', 'Age'])
        self.assertIn(['shop', 'Active'], [r_['cells'][:2] for r_ in t['rows']])

    def test_discovery(self):
        r = self.c.get('/apis/maskmesh.io/v1alpha1').json()
        self.assertEqual(r['kind'], 'APIResourceList')
        mp = [x for x in r['resources'] if x['name'] == 'maskingpolicies'][0]
        self.assertEqual(mp['shortNames'], ['mp'])
        self.assertEqual(mp['categories'], ['maskmesh'])
        self.assertTrue(mp['namespaced'])
        self.assertEqual(sorted(mp['verbs']), sorted(['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']))
        self.assertIn('maskingpolicies/status', [x['name'] for x in r['resources']])
        groups = {g['name'] for g in self.c.get('/apis').json()['groups']}
        self.assertTrue({'maskmesh.io', 'events.k8s.io', 'networking.k8s.io', 'coordination.k8s.io',
                         'apiextensions.k8s.io', 'admissionregistration.k8s.io'} <= groups)
        v1 = {x['name'] for x in self.c.get('/api/v1').json()['resources']}
        self.assertTrue({'namespaces', 'pods', 'configmaps', 'secrets', 'events', 'pods/status'} <= v1)
        idx = self.c.get('/openapi/v3').json()
        self.assertIn('apis/maskmesh.io/v1alpha1', idx['paths'])
        doc = self.c.get(idx['paths']['apis/maskmesh.io/v1alpha1']['serverRelativeURL']).json()
        self.assertIn('io.maskmesh.v1alpha1.MaskingPolicy', doc['components']['schemas'])
        self.assertEqual(self.c.get('/version').json()['major'], '1')

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

    def test_events_both_apis_share_storage(self):
        ev = support.sample('event.json')
        body = {k: v for k, v in ev.items() if k not in ('metadata',)}
        body['metadata'] = {'name': ev['metadata']['name'], 'namespace': 'shop'}
        r = self.c.post('/apis/events.k8s.io/v1/namespaces/shop/events', body)
        self.assertEqual(r.status, 201, r.body)
        got = r.json()
        self.assertEqual([k for k in got if k != 'metadata'], [k for k in ev if k != 'metadata'])
        for k in ev:
            if k != 'metadata':
                self.assertEqual(got[k], ev[k], k)
        core = self.c.get('/api/v1/namespaces/shop/events/' + ev['metadata']['name']).json()
        self.assertEqual(core['involvedObject'], ev['regarding'])
        self.assertEqual(core['message'], ev['note'])
        self.assertEqual(core['reportingComponent'], 'maskmesh-controller')

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
