"""The real kubectl against the stand-in: the CRD with `explain`, a MaskingPolicy lifecycle (client-side and
server-side apply, conflicts, patches, status, delete), built-ins with strategic merge, and `kubectl create`
sending protobuf bodies."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from . import _support as support

KUBECTL = support.find_kubectl('kubectl')
KUBECTL_127 = support.find_kubectl('kubectl.1.27')

POLICY = """apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata:
  name: payments-api
  namespace: shop
spec:
  selector:
    matchLabels: {app: payments}
  port: %(port)s
  rules:
    - name: card-number
      fields: ["$.card.number"]
      action: {type: mask, keepLast: 4, char: "*"}
"""
NAMESPACE = """apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: payments}
"""
CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  a: "1"
"""


@unittest.skipUnless(KUBECTL, 'kubectl not installed')
class KubectlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = support.Server()
        cls.tmp = tempfile.mkdtemp(prefix='standin-kubectl-')
        cls.env = dict(os.environ, KUBECONFIG=cls.srv.kubeconfig, HOME=cls.tmp,
                       KUBECACHEDIR=os.path.join(cls.tmp, 'cache'))
        cls.c = cls.srv.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert cls.srv.stop() == 0

    def kubectl(self, *args, stdin=None, ok=True, binary=None, timeout=30):
        p = subprocess.run([binary or KUBECTL] + list(args), input=stdin, capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        if ok:
            self.assertEqual(p.returncode, 0, 'kubectl %s: %s%s' % (' '.join(args), p.stdout, p.stderr))
        return p

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def ensure_crd_and_ns(self, binary=None):
        if self.c.get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/maskingpolicies.maskmesh.io').status == 404:
            out = self.kubectl('create', '-f', support.crd_path(), binary=binary).stdout
            self.assertEqual(out.strip(), 'customresourcedefinition.apiextensions.k8s.io/maskingpolicies.maskmesh.io created')
        if self.c.get('/api/v1/namespaces/shop').status == 404:
            self.kubectl('create', '-f', self.write('ns.yaml', NAMESPACE), binary=binary)

    def test_1_crd_api_resources_explain(self):
        self.ensure_crd_and_ns()
        out = self.kubectl('wait', '--for=condition=Established', 'crd/maskingpolicies.maskmesh.io', '--timeout=10s').stdout
        self.assertIn('condition met', out)
        out = self.kubectl('api-resources').stdout
        rows = [l.split() for l in out.splitlines()]
        self.assertEqual(rows[0], ['NAME', 'SHORTNAMES', 'APIVERSION', 'NAMESPACED', 'KIND'])
        self.assertIn(['maskingpolicies', 'mp', 'maskmesh.io/v1alpha1', 'true', 'MaskingPolicy'], rows)
        self.assertIn(['networkpolicies', 'netpol', 'networking.k8s.io/v1', 'true', 'NetworkPolicy'], rows)
        self.assertIn(['leases', 'coordination.k8s.io/v1', 'true', 'Lease'], rows)
        out = self.kubectl('api-resources', '--categories=maskmesh', '-o', 'name').stdout
        self.assertEqual(out.split(), ['maskingpolicies.maskmesh.io'])
        out = self.kubectl('explain', 'maskingpolicy.spec.rules').stdout
        self.assertIn('KIND:       MaskingPolicy', out)
        self.assertIn('FIELD: rules <[]Object>', out)
        self.assertIn('name', out)

    def test_2_policy_lifecycle(self):
        self.ensure_crd_and_ns()
        f = self.write('mp.yaml', POLICY % {'port': 8080})
        out = self.kubectl('create', '-f', f).stdout
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io/payments-api created')
        p = self.kubectl('create', '-f', f, ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('Error from server (AlreadyExists): error when creating', p.stderr)
        self.assertIn('maskingpolicies.maskmesh.io "payments-api" already exists', p.stderr)
        # table output with the CRD's printer columns
        out = self.kubectl('get', 'mp', '-n', 'shop').stdout.splitlines()
        head = out[0].split()
        self.assertEqual(head[:2], ['NAME', 'READY'])
        self.assertIn('MODE', head)
        self.assertEqual(head[-1], 'AGE')
        self.assertTrue(out[1].startswith('payments-api'))
        self.assertIn('enforce', out[1].split())
        obj = json.loads(self.kubectl('get', 'maskingpolicies.maskmesh.io', 'payments-api', '-n', 'shop', '-o', 'json').stdout)
        self.assertEqual((obj['spec']['port'], obj['spec']['mode'], obj['metadata']['generation']), (8080, 'enforce', 1))
        # client-side apply: configured, generation 2, last-applied annotation
        out = self.kubectl('apply', '-f', self.write('mp.yaml', POLICY % {'port': 8081})).stdout
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io/payments-api configured')
        obj = json.loads(self.kubectl('get', 'mp', 'payments-api', '-n', 'shop', '-o', 'json', '--show-managed-fields').stdout)
        self.assertEqual((obj['spec']['port'], obj['metadata']['generation']), (8081, 2))
        self.assertIn('kubectl.kubernetes.io/last-applied-configuration', obj['metadata']['annotations'])
        managers = {(m['manager'], m['operation']) for m in obj['metadata']['managedFields']}
        self.assertIn(('kubectl-client-side-apply', 'Update'), managers)
        out = self.kubectl('apply', '-f', self.write('mp.yaml', POLICY % {'port': 8081})).stdout
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io/payments-api unchanged')
        # server-side apply: changing a field kubectl-client-side-apply owns conflicts
        # (kubectl migrates the client-side owner only after a successful server-side apply)
        p = self.kubectl('apply', '--server-side', '-f', self.write('mp.yaml', POLICY % {'port': 8082}), ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using '
                      'maskmesh.io/v1alpha1: .spec.port', p.stderr)
        out = self.kubectl('apply', '--server-side', '-f', self.write('mp.yaml', POLICY % {'port': 8081})).stdout
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io/payments-api serverside-applied')
        out = self.kubectl('apply', '--server-side', '-f', self.write('mp.yaml', POLICY % {'port': 8082})).stdout
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io/payments-api serverside-applied')
        obj = json.loads(self.kubectl('get', 'mp', 'payments-api', '-n', 'shop', '-o', 'json', '--show-managed-fields').stdout)
        self.assertEqual(obj['spec']['port'], 8082)
        self.assertIn(('kubectl', 'Apply'), {(m['manager'], m['operation']) for m in obj['metadata']['managedFields']})
        # patch merge / json, label
        out = self.kubectl('patch', 'mp', 'payments-api', '-n', 'shop', '--type', 'merge', '-p', '{"spec":{"mode":"audit"}}').stdout
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io/payments-api patched')
        self.kubectl('patch', 'mp', 'payments-api', '-n', 'shop', '--type', 'json',
                     '-p', '[{"op":"replace","path":"/spec/port","value":9090}]')
        p = self.kubectl('patch', 'mp', 'payments-api', '-n', 'shop', '-p', '{"spec":{"mode":"enforce"}}', ok=False)
        self.assertNotEqual(p.returncode, 0, 'strategic merge patch on a custom resource is refused')
        self.assertIn('application/strategic-merge-patch+json is not supported', p.stderr)
        out = self.kubectl('label', 'mp', 'payments-api', '-n', 'shop', 'tier=gold').stdout
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io/payments-api labeled')
        out = self.kubectl('get', 'mp', '-n', 'shop', '-l', 'tier=gold', '-o', 'name').stdout
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io/payments-api')
        self.assertEqual(self.kubectl('get', 'mp', '-n', 'shop', '-l', 'tier!=gold', '-o', 'name').stdout.strip(), '')
        obj = json.loads(self.kubectl('get', 'mp', 'payments-api', '-n', 'shop', '-o', 'json').stdout)
        self.assertEqual((obj['spec']['mode'], obj['spec']['port'], obj['metadata']['labels']), ('audit', 9090, {'tier': 'gold'}))
        # schema violation is a 422 kubectl shows
        p = self.kubectl('apply', '-f', self.write('bad.yaml', POLICY % {'port': 70000}), ok=False)
        self.assertIn('spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535', p.stderr)
        # wait for a condition set through /status
        waiter = subprocess.Popen([KUBECTL, 'wait', '--for=condition=Ready', 'mp/payments-api', '-n', 'shop', '--timeout=15s'],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        time.sleep(1.0)
        self.assertIsNone(waiter.poll(), 'kubectl wait returned before the condition was set')
        cur = self.c.get('/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies/payments-api').json()
        cur['status'] = {'observedGeneration': cur['metadata']['generation'], 'conditions': [
            {'type': 'Ready', 'status': 'True', 'reason': 'Rendered', 'message': 'rendered',
             'lastTransitionTime': '2026-07-20T08:55:13Z', 'observedGeneration': cur['metadata']['generation']}]}
        r = self.c.put('/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies/payments-api/status', cur)
        self.assertEqual(r.status, 200)
        out, err = waiter.communicate(timeout=20)
        self.assertEqual(waiter.returncode, 0, err)
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io/payments-api condition met')
        row = self.kubectl('get', 'mp', 'payments-api', '-n', 'shop', '--no-headers').stdout.split()
        self.assertEqual(row[:2], ['payments-api', 'True'])
        # delete
        out = self.kubectl('delete', '-f', f).stdout
        self.assertEqual(out.strip(), 'maskingpolicy.maskmesh.io "payments-api" deleted')
        p = self.kubectl('get', 'mp', 'payments-api', '-n', 'shop', ok=False)
        self.assertEqual(p.stderr.strip(), 'Error from server (NotFound): maskingpolicies.maskmesh.io "payments-api" not found')

    def test_4_builtins_strategic_patch_and_output(self):
        self.ensure_crd_and_ns()
        self.kubectl('create', '-f', self.write('cm.yaml', CONFIGMAP))
        out = self.kubectl('patch', 'configmap', 'settings', '-n', 'shop', '-p', '{"data":{"b":"2"}}').stdout
        self.assertEqual(out.strip(), 'configmap/settings patched')
        cm = json.loads(self.kubectl('get', 'cm', 'settings', '-n', 'shop', '-o', 'json').stdout)
        self.assertEqual(cm['data'], {'a': '1', 'b': '2'})
        out = self.kubectl('get', 'cm', '-n', 'shop').stdout.splitlines()
        self.assertEqual(out[0].split(), ['NAME', 'DATA', 'AGE'])
        self.assertEqual(out[1].split()[:2], ['settings', '2'])
        # client-side apply on a built-in uses a strategic merge patch
        self.kubectl('apply', '-f', self.write('cm.yaml', CONFIGMAP))
        self.kubectl('apply', '-f', self.write('cm.yaml', CONFIGMAP.replace('a: "1"', 'a: "3"')))
        cm = json.loads(self.kubectl('get', 'cm', 'settings', '-n', 'shop', '-o', 'json').stdout)
        self.assertEqual(cm['data']['a'], '3')
        out = self.kubectl('get', 'ns', 'shop', '--show-labels').stdout.splitlines()
        self.assertEqual(out[1].split()[:2], ['shop', 'Active'])
        self.assertIn('kubernetes.io/metadata.name=shop', out[1])
        self.kubectl('delete', 'cm', 'settings', '-n', 'shop')

    def test_6_imperative_create_sends_protobuf(self):
        # kubectl's generators POST application/vnd.kubernetes.protobuf bodies
        out = self.kubectl('create', 'namespace', 'imperative').stdout
        self.assertEqual(out.strip(), 'namespace/imperative created')
        ns = json.loads(self.kubectl('get', 'ns', 'imperative', '-o', 'json', '--show-managed-fields').stdout)
        self.assertEqual(ns['metadata']['labels'], {'kubernetes.io/metadata.name': 'imperative'})
        self.assertNotIn('generateName', ns['metadata'])
        self.assertEqual(ns['metadata']['managedFields'][0]['manager'], 'kubectl-create')
        self.assertNotIn('f:metadata', ns['metadata']['managedFields'][0]['fieldsV1'],
                         'the name label is set by the server, not owned by kubectl-create')
        out = self.kubectl('create', 'secret', 'generic', 'maskmesh-keys', '-n', 'imperative',
                           '--from-literal=payments=s3cr3t', '--from-literal=other=x').stdout
        self.assertEqual(out.strip(), 'secret/maskmesh-keys created')
        sec = json.loads(self.kubectl('get', 'secret', 'maskmesh-keys', '-n', 'imperative', '-o', 'json').stdout)
        self.assertEqual(sec['type'], 'Opaque')
        self.assertEqual({k: base64.b64decode(v).decode() for k, v in sec['data'].items()}, {'payments': 's3cr3t', 'other': 'x'})
        self.kubectl('create', 'configmap', 'maskmesh-policies', '-n', 'imperative', '--from-literal=policies.yaml=[]')
        cm = json.loads(self.kubectl('get', 'cm', 'maskmesh-policies', '-n', 'imperative', '-o', 'json').stdout)
        self.assertEqual(cm['data'], {'policies.yaml': '[]'})
        out = self.kubectl('delete', 'ns', 'imperative').stdout
        self.assertEqual(out.strip(), 'namespace "imperative" deleted')
        self.assertEqual(self.c.get('/api/v1/namespaces/imperative/configmaps/maskmesh-policies').status, 404)


if __name__ == '__main__':
    unittest.main()
