"""Built-in resource types and their strategies (defaults, status on create, conversions)."""

import copy

from .registry import ResourceType

POD_FIELDS = ('spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName',
              'status.phase', 'status.podIP', 'status.nominatedNodeName')
EVENT_FIELDS = ('involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name',
                'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion',
                'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type')


def builtin_types():
    ev_storage = ('', 'events')
    return [
        ResourceType('', 'v1', 'namespaces', 'Namespace', 'namespace', False, ['ns'],
                     verbs=['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'], status=True,
                     return_deleted=True, field_labels=('status.phase',)),
        ResourceType('', 'v1', 'pods', 'Pod', 'pod', True, ['po'], ['all'], status=True,
                     return_deleted=True, field_labels=POD_FIELDS),
        ResourceType('', 'v1', 'configmaps', 'ConfigMap', 'configmap', True, ['cm']),
        ResourceType('', 'v1', 'secrets', 'Secret', 'secret', True, field_labels=('type',)),
        ResourceType('', 'v1', 'events', 'Event', 'event', True, ['ev'], storage=ev_storage,
                     create_on_update=True, field_labels=EVENT_FIELDS),
        ResourceType('events.k8s.io', 'v1', 'events', 'Event', 'event', True, ['ev'], storage=ev_storage,
                     create_on_update=True, field_labels=EVENT_FIELDS),
        ResourceType('networking.k8s.io', 'v1', 'networkpolicies', 'NetworkPolicy', 'networkpolicy', True,
                     ['netpol'], generation=True),
        ResourceType('coordination.k8s.io', 'v1', 'leases', 'Lease', 'lease', True),
        ResourceType('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition',
                     'customresourcedefinition', False, ['crd', 'crds'], ['api-extensions'], status=True,
                     generation=True, unconditional_update=False),
        ResourceType('admissionregistration.k8s.io', 'v1', 'mutatingwebhookconfigurations',
                     'MutatingWebhookConfiguration', 'mutatingwebhookconfiguration', False,
                     categories=['api-extensions'], generation=True),
        ResourceType('admissionregistration.k8s.io', 'v1', 'validatingwebhookconfigurations',
                     'ValidatingWebhookConfiguration', 'validatingwebhookconfiguration', False,
                     categories=['api-extensions'], generation=True),
    ]


META_ORDER = ('name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation',
              'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels',
              'annotations', 'ownerReferences', 'finalizers', 'managedFields')


def order_meta(md):
    out = {k: md[k] for k in META_ORDER if k in md}
    for k, v in md.items():
        if k not in out:
            out[k] = v
    return out


# ------------------------------------------------------------------ defaulting at decode

def _default_container(c):
    if not isinstance(c, dict):
        return
    for p in c.get('ports') or []:
        if isinstance(p, dict):
            p.setdefault('protocol', 'TCP')
    c.setdefault('terminationMessagePath', '/dev/termination-log')
    c.setdefault('terminationMessagePolicy', 'File')
    if 'imagePullPolicy' not in c:
        img = str(c.get('image', ''))
        tag = img.rsplit('/', 1)[-1]
        latest = '@' not in img and (':' not in tag or tag.endswith(':latest'))
        c['imagePullPolicy'] = 'Always' if latest else 'IfNotPresent'
    if 'resources' not in c:
        c['resources'] = {}
    for probe in ('livenessProbe', 'readinessProbe', 'startupProbe'):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault('timeoutSeconds', 1)
            pr.setdefault('periodSeconds', 10)
            pr.setdefault('successThreshold', 1)
            pr.setdefault('failureThreshold', 3)
            if isinstance(pr.get('httpGet'), dict):
                pr['httpGet'].setdefault('scheme', 'HTTP')


def default_pod(obj):
    spec = obj.setdefault('spec', {})
    for c in spec.get('containers') or []:
        _default_container(c)
    for c in spec.get('initContainers') or []:
        _default_container(c)
    for v in spec.get('volumes') or []:
        if isinstance(v, dict):
            for src in ('configMap', 'secret'):
                if isinstance(v.get(src), dict):
                    v[src].setdefault('defaultMode', 420)
    spec.setdefault('restartPolicy', 'Always')
    spec.setdefault('terminationGracePeriodSeconds', 30)
    spec.setdefault('dnsPolicy', 'ClusterFirst')
    if 'serviceAccountName' not in spec:
        spec['serviceAccountName'] = spec.get('serviceAccount', 'default')
    spec.setdefault('serviceAccount', spec['serviceAccountName'])
    spec.setdefault('securityContext', {})
    spec.setdefault('schedulerName', 'default-scheduler')
    spec.setdefault('enableServiceLinks', True)
    spec.setdefault('priority', 0)
    spec.setdefault('preemptionPolicy', 'PreemptLowerPriority')
    obj.setdefault('status', {})


def admit_pod_builtin(obj):
    """What kube-apiserver's built-in admission plugins do to a new pod before the webhooks run:
    ServiceAccount (the kube-api-access-XXXXX projected volume and its mounts) and
    DefaultTolerationSeconds (not-ready/unreachable NoExecute for 300 s)."""
    import random
    spec = obj.setdefault('spec', {})
    if spec.get('automountServiceAccountToken') is not False:
        vols = spec.setdefault('volumes', [])
        if not any(str((v or {}).get('name', '')).startswith('kube-api-access-') for v in vols):
            name = 'kube-api-access-' + ''.join(random.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))
            vols.insert(0, {'name': name, 'projected': {'sources': [
                {'serviceAccountToken': {'expirationSeconds': 3607, 'path': 'token'}},
                {'configMap': {'name': 'kube-root-ca.crt', 'items': [{'key': 'ca.crt', 'path': 'ca.crt'}]}},
                {'downwardAPI': {'items': [{'path': 'namespace', 'fieldRef': {'apiVersion': 'v1', 'fieldPath': 'metadata.namespace'}}]}}],
                'defaultMode': 420}})
            for c in (spec.get('initContainers') or []) + (spec.get('containers') or []):
                if isinstance(c, dict):
                    mounts = c.setdefault('volumeMounts', [])
                    if not any((m or {}).get('mountPath') == '/var/run/secrets/kubernetes.io/serviceaccount' for m in mounts):
                        mounts.append({'name': name, 'readOnly': True,
                                       'mountPath': '/var/run/secrets/kubernetes.io/serviceaccount'})
    tols = spec.setdefault('tolerations', [])
    for key in ('node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'):
        if not any((t or {}).get('key') == key and (t or {}).get('effect') in (None, '', 'NoExecute') for t in tols):
            tols.append({'key': key, 'operator': 'Exists', 'effect': 'NoExecute', 'tolerationSeconds': 300})


def pod_status_on_create(obj):
    qos = 'BestEffort'
    cs = (obj.get('spec') or {}).get('containers') or []
    res = [c.get('resources') or {} for c in cs if isinstance(c, dict)]
    if any(r.get('requests') or r.get('limits') for r in res):
        qos = 'Burstable'
        if all((r.get('limits') or {}).get('cpu') and (r.get('limits') or {}).get('memory') and
               all((r.get('requests') or {}).get(k, (r.get('limits') or {}).get(k)) == (r.get('limits') or {}).get(k)
                   for k in ('cpu', 'memory')) for r in res):
            qos = 'Guaranteed'
    obj['status'] = {'phase': 'Pending', 'qosClass': qos}


def default_namespace(obj, label=True):
    """spec.finalizers is a decode-time default; the kubernetes.io/metadata.name label is set by
    the namespace strategy (after field tracking, so no manager owns it)."""
    md = obj.setdefault('metadata', {})
    if label and md.get('name'):
        md.setdefault('labels', {})['kubernetes.io/metadata.name'] = md['name']
    obj.setdefault('spec', {}).setdefault('finalizers', ['kubernetes'])


def default_secret(obj):
    import base64
    sd = obj.pop('stringData', None)
    if isinstance(sd, dict):
        data = obj.setdefault('data', {}) or {}
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj['data'] = data
    obj.setdefault('type', 'Opaque')


def default_webhooks(obj, mutating):
    for w in obj.get('webhooks') or []:
        if not isinstance(w, dict):
            continue
        w.setdefault('failurePolicy', 'Fail')
        w.setdefault('matchPolicy', 'Equivalent')
        w.setdefault('namespaceSelector', {})
        w.setdefault('objectSelector', {})
        w.setdefault('timeoutSeconds', 10)
        if mutating:
            w.setdefault('reinvocationPolicy', 'Never')
        for r in w.get('rules') or []:
            if isinstance(r, dict):
                r.setdefault('scope', '*')
        svc = (w.get('clientConfig') or {}).get('service')
        if isinstance(svc, dict):
            svc.setdefault('port', 443)


def default_networkpolicy(obj):
    spec = obj.setdefault('spec', {})
    if 'policyTypes' not in spec:
        spec['policyTypes'] = ['Ingress'] + (['Egress'] if spec.get('egress') else [])
    for rule in (spec.get('ingress') or []) + (spec.get('egress') or []):
        for p in (rule or {}).get('ports') or []:
            if isinstance(p, dict):
                p.setdefault('protocol', 'TCP')


def default_event(obj):
    obj.setdefault('involvedObject', {})
    obj.setdefault('source', {})
    obj.setdefault('firstTimestamp', None)
    obj.setdefault('lastTimestamp', None)
    obj.setdefault('eventTime', None)
    obj.setdefault('reportingComponent', '')
    obj.setdefault('reportingInstance', '')


def apply_defaults(rt, obj):
    key = (rt.group, rt.resource)
    if key == ('', 'pods'):
        default_pod(obj)
    elif key == ('', 'namespaces'):
        default_namespace(obj, label=False)
    elif key == ('', 'secrets'):
        default_secret(obj)
    elif key == ('networking.k8s.io', 'networkpolicies'):
        default_networkpolicy(obj)
    elif key == ('admissionregistration.k8s.io', 'mutatingwebhookconfigurations'):
        default_webhooks(obj, True)
    elif key == ('admissionregistration.k8s.io', 'validatingwebhookconfigurations'):
        default_webhooks(obj, False)
    elif key == ('', 'events'):
        default_event(obj)


# ------------------------------------------------------------------ events.k8s.io <-> core

def event_to_v1(core):
    """core/v1 Event (storage) -> events.k8s.io/v1 Event."""
    out = {'kind': 'Event', 'apiVersion': 'events.k8s.io/v1', 'metadata': core.get('metadata', {})}
    out['eventTime'] = core.get('eventTime')
    if core.get('series'):
        out['series'] = copy.deepcopy(core['series'])
    for src, dst in (('reportingComponent', 'reportingController'), ('reportingInstance', 'reportingInstance'),
                     ('action', 'action'), ('reason', 'reason'), ('involvedObject', 'regarding'),
                     ('related', 'related'), ('message', 'note'), ('type', 'type')):
        v = core.get(src)
        if v not in (None, ''):
            out[dst] = copy.deepcopy(v)
    out['deprecatedSource'] = copy.deepcopy(core.get('source') or {})
    out['deprecatedFirstTimestamp'] = core.get('firstTimestamp')
    out['deprecatedLastTimestamp'] = core.get('lastTimestamp')
    if core.get('count'):
        out['deprecatedCount'] = core['count']
    return out


def event_from_v1(ev):
    core = {'kind': 'Event', 'apiVersion': 'v1', 'metadata': ev.get('metadata', {})}
    core['involvedObject'] = copy.deepcopy(ev.get('regarding') or {})
    for src, dst in (('reason', 'reason'), ('note', 'message')):
        if ev.get(src) not in (None, ''):
            core[dst] = ev[src]
    core['source'] = copy.deepcopy(ev.get('deprecatedSource') or {})
    core['firstTimestamp'] = ev.get('deprecatedFirstTimestamp')
    core['lastTimestamp'] = ev.get('deprecatedLastTimestamp')
    if ev.get('deprecatedCount'):
        core['count'] = ev['deprecatedCount']
    if ev.get('type'):
        core['type'] = ev['type']
    core['eventTime'] = ev.get('eventTime')
    if ev.get('series'):
        core['series'] = copy.deepcopy(ev['series'])
    if ev.get('action'):
        core['action'] = ev['action']
    if ev.get('related'):
        core['related'] = copy.deepcopy(ev['related'])
    core['reportingComponent'] = ev.get('reportingController', '')
    core['reportingInstance'] = ev.get('reportingInstance', '')
    return core


def is_events_v1(rt):
    return rt.group == 'events.k8s.io'


__all__ = ['builtin_types', 'apply_defaults', 'pod_status_on_create', 'event_to_v1', 'event_from_v1',
           'order_meta', 'is_events_v1', 'admit_pod_builtin']
