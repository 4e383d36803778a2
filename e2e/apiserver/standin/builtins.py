"""Built-in kinds: pod defaulting, the built-in pod admission (ServiceAccount,
DefaultTolerationSeconds, Priority), the pod update rule, events.k8s.io/v1 <-> core/v1 Event
conversion.
"""
import copy
import random

from .wire import NAME_CHARS, invalid


def _default_container(c):
    for pt in c.get("ports") or []:
        if isinstance(pt, dict):
            pt.setdefault("protocol", "TCP")
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    img = c.get("image") or ""
    tagged = ":" in img.rsplit("/", 1)[-1] or "@" in img
    c.setdefault("imagePullPolicy", "IfNotPresent" if tagged and not img.endswith(":latest") else "Always")


def default_pod(obj):
    """The defaulting the apiserver applies to a pod when it decodes one (subset)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _default_container(c)
    for v in spec.get("volumes") or []:
        for src in ("configMap", "secret", "projected", "downwardAPI"):
            if isinstance(v, dict) and isinstance(v.get(src), dict):
                v[src].setdefault("defaultMode", 420)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)


def default_networkpolicy(obj):
    """networking/v1 decode defaults: every rule's port protocol TCP (recorded sample
    networkpolicy-create), policyTypes Ingress (+ Egress when there are egress rules)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for key in ("ingress", "egress"):
        for rule in spec.get(key) or []:
            for pt in (rule.get("ports") or []) if isinstance(rule, dict) else []:
                if isinstance(pt, dict):
                    pt.setdefault("protocol", "TCP")
    if "policyTypes" not in spec:
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])


SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def admit_pod_builtin(obj):
    """kube-apiserver's built-in mutating admission on a new pod, which runs before the webhooks
    (so they see and patch its result, as admissionreview-pod-create.json shows):
    ServiceAccount (plugin/pkg/admission/serviceaccount: serviceAccountName "default", a
    kube-api-access-XXXXX projected volume appended to the volumes and mounted read-only in
    every container at SA_MOUNT_PATH unless one mounts something there or automount is off),
    DefaultTolerationSeconds (not-ready/unreachable NoExecute for 300 s) and Priority
    (priority 0, preemptionPolicy PreemptLowerPriority)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    spec["serviceAccount"] = spec["serviceAccountName"]
    vols = spec.get("volumes") if isinstance(spec.get("volumes"), list) else []
    if spec.get("automountServiceAccountToken") is not False:
        vname = next((v.get("name") for v in vols if isinstance(v, dict)
                      and str(v.get("name", "")).startswith("kube-api-access-")), None)
        have_volume = vname is not None
        vname = vname or "kube-api-access-" + "".join(random.choice(NAME_CHARS) for _ in range(5))
        needs = False
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or []:
                if not isinstance(c, dict):
                    continue
                mounts = c.get("volumeMounts") if isinstance(c.get("volumeMounts"), list) else []
                if not any(isinstance(m, dict) and m.get("mountPath") == SA_MOUNT_PATH for m in mounts):
                    c["volumeMounts"] = mounts + [{"name": vname, "readOnly": True, "mountPath": SA_MOUNT_PATH}]
                    needs = True
        if needs and not have_volume:
            spec["volumes"] = vols + [{"name": vname, "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                              "fieldPath": "metadata.namespace"}}]}}],
                "defaultMode": 420}}]
    tols = spec.get("tolerations") if isinstance(spec.get("tolerations"), list) else []
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(isinstance(t, dict) and t.get("effect") in (None, "", "NoExecute")
                   and t.get("key") in (key, None, "") for t in tols):
            tols.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    spec["tolerations"] = tols
    spec.setdefault("priority", 0)
    # the Priority plugin sets the policy with the priority, so it has no owner in
    # managedFields (recorded sample pod-create)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")


def check_pod_update(old, new):
    """Pod spec is immutable except container images, activeDeadlineSeconds, tolerations additions."""
    def strip(spec):
        spec = copy.deepcopy(spec or {})
        for key in ("containers", "initContainers"):
            for c in spec.get(key) or []:
                if isinstance(c, dict):
                    c.pop("image", None)
        for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
            spec.pop(key, None)
        return spec
    if strip(old.get("spec")) != strip(new.get("spec")):
        name = old["metadata"]["name"]
        msg = ("Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
               "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
               "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
               "previously negative)")
        raise invalid(("Pod", "", "Pod"), name, [{"reason": "FieldValueForbidden", "message": msg, "field": "spec"}])


EV_V1_TO_CORE = [("regarding", "involvedObject"), ("note", "message"), ("deprecatedSource", "source"),
                 ("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp"),
                 ("deprecatedCount", "count"), ("reportingController", "reportingComponent")]


def event_to_core(ev):
    """events.k8s.io/v1 Event -> core/v1 Event (field order of the core Go type)."""
    m = dict(EV_V1_TO_CORE)
    src = {m.get(k, k): v for k, v in ev.items()}
    out = {"kind": "Event", "apiVersion": "v1", "metadata": src.get("metadata") or {}}
    for k, always in (("involvedObject", {}), ("reason", None), ("message", None), ("source", {}),
                      ("firstTimestamp", "null"), ("lastTimestamp", "null"), ("count", None), ("type", None),
                      ("eventTime", "null"), ("series", None), ("action", None), ("related", None),
                      ("reportingComponent", ""), ("reportingInstance", "")):
        if src.get(k) is not None:
            out[k] = src[k]
        elif always is not None:
            out[k] = None if always == "null" else copy.deepcopy(always)
    return out


def event_to_v1(core):
    """core/v1 Event -> events.k8s.io/v1 Event (field order of the events/v1 Go type)."""
    m = {c: v for v, c in EV_V1_TO_CORE}
    src = {m.get(k, k): v for k, v in core.items()}
    out = {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": src.get("metadata") or {}}
    for k, always in (("eventTime", "null"), ("series", None), ("reportingController", None),
                      ("reportingInstance", None), ("action", None), ("reason", None), ("regarding", {}),
                      ("related", None), ("note", None), ("type", None), ("deprecatedSource", {}),
                      ("deprecatedFirstTimestamp", "null"), ("deprecatedLastTimestamp", "null"), ("deprecatedCount", None)):
        v = src.get(k)
        if v is not None and v != "":
            out[k] = v
        elif always is not None:
            out[k] = None if always == "null" else copy.deepcopy(always)
    return out
