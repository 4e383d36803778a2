/* lib/admission: the parts the injection adds to a pod, built from its plan: the
 * maskmesh-proxy sidecar (args, ports, probes, mounts, resources, security context), the
 * iptables init container and the volumes. Pure constructors: inject.c decides and places them. */
#include "admission/admission.h"
#include "admission/admission_int.h"

#include <stdio.h>
#include <string.h>

static json_object *http_probe(jb *j, const char *path, int period, int failures)
{
    json_object *p = jb_obj(j), *get = jb_obj(j);
    jb_set(j, get, "path", jb_str(j, path));
    jb_set(j, get, "port", jb_int(j, MM_ADM_ADMIN_PORT));
    jb_set(j, p, "httpGet", get);
    jb_set(j, p, "periodSeconds", jb_int(j, period));
    jb_set(j, p, "timeoutSeconds", jb_int(j, 1));
    jb_set(j, p, "failureThreshold", jb_int(j, failures));
    return p;
}

static json_object *port_obj(jb *j, const char *name, long number)
{
    json_object *p = jb_obj(j);
    jb_set(j, p, "name", jb_str(j, name));
    jb_set(j, p, "containerPort", jb_int(j, number));
    jb_set(j, p, "protocol", jb_str(j, "TCP"));
    return p;
}

static json_object *mount_obj(jb *j, const char *name, const char *path)
{
    json_object *m = jb_obj(j);
    jb_set(j, m, "name", jb_str(j, name));
    jb_set(j, m, "mountPath", jb_str(j, path));
    jb_set(j, m, "readOnly", jb_bool(j, true));
    return m;
}

static json_object *arg(jb *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_object *arg(jb *j, const char *fmt, ...)
{
    char s[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof(s), fmt, ap);
    va_end(ap);
    return jb_str(j, s);
}

static json_object *security_context(jb *j, long uid, bool net_admin)
{
    json_object *sc = jb_obj(j), *caps = jb_obj(j), *drop = jb_arr(j), *seccomp = jb_obj(j);
    jb_push(j, drop, jb_str(j, "ALL"));
    jb_set(j, caps, "drop", drop);
    if (net_admin) {
        json_object *add = jb_arr(j);
        jb_push(j, add, jb_str(j, "NET_ADMIN"));
        jb_push(j, add, jb_str(j, "NET_RAW"));
        jb_set(j, caps, "add", add);
    }
    jb_set(j, sc, "capabilities", caps);
    jb_set(j, sc, "allowPrivilegeEscalation", jb_bool(j, false));
    jb_set(j, sc, "privileged", jb_bool(j, false));
    jb_set(j, sc, "readOnlyRootFilesystem", jb_bool(j, true));
    jb_set(j, sc, "runAsNonRoot", jb_bool(j, !net_admin));
    jb_set(j, sc, "runAsUser", jb_int(j, uid));
    jb_set(j, sc, "runAsGroup", jb_int(j, uid));
    jb_set(j, seccomp, "type", jb_str(j, "RuntimeDefault"));
    jb_set(j, sc, "seccompProfile", seccomp);
    return sc;
}

json_object *adm_sidecar_container(jb *j, const adm_plan *pl)
{
    const mm_adm_config *cfg = pl->cfg;
    json_object *c = jb_obj(j), *args = jb_arr(j), *ports = jb_arr(j), *mounts = jb_arr(j);
    json_object *res = jb_obj(j), *req = jb_obj(j), *lim = jb_obj(j);

    jb_set(j, c, "name", jb_str(j, MM_ADM_SIDECAR_NAME));
    jb_set(j, c, "image", jb_str(j, cfg->image));
    if (cfg->pull_policy)
        jb_set(j, c, "imagePullPolicy", jb_str(j, cfg->pull_policy));
    jb_push(j, args, arg(j, "--listen=0.0.0.0:%d", MM_ADM_PROXY_PORT));
    jb_push(j, args, arg(j, "--admin=0.0.0.0:%d", MM_ADM_ADMIN_PORT));
    jb_push(j, args, arg(j, "--upstream=127.0.0.1:%ld", pl->port.number));
    if (pl->upstream_h2c)
        jb_push(j, args, jb_str(j, "--upstream-protocol=h2c"));
    jb_push(j, args, jb_str(j, "--policies=/etc/maskmesh/policies/policies.yaml"));
    jb_push(j, args, jb_str(j, "--labels=/etc/maskmesh/podinfo/labels"));
    jb_push(j, args, jb_str(j, "--keys=/etc/maskmesh/keys"));
    jb_set(j, c, "args", args);
    jb_push(j, ports, port_obj(j, pl->proxy_port_name, MM_ADM_PROXY_PORT));
    jb_push(j, ports, port_obj(j, "maskmesh-admin", MM_ADM_ADMIN_PORT));
    /* connections to the app port reach the sidecar through the pod's REDIRECT, after the
     * node's NetworkPolicy has seen them: declared here, named, the policy can allow them */
    if (pl->mode == MM_ADM_MODE_IPTABLES)
        jb_push(j, ports, port_obj(j, MM_ADM_REDIRECT_PORT_NAME, pl->port.number));
    jb_set(j, c, "ports", ports);
    if (pl->native) {
        jb_set(j, c, "restartPolicy", jb_str(j, "Always"));
        /* the kubelet starts the next container only once this probe passed: /startz, not
         * /readyz, which also needs the app that is not started yet */
        jb_set(j, c, "startupProbe", http_probe(j, "/startz", 1, 120));
    } else if (cfg->hold_app) {
        /* the image has no shell: the proxy binary itself polls its /readyz */
        json_object *life = jb_obj(j), *ps = jb_obj(j), *ex = jb_obj(j), *cmd = jb_arr(j);
        jb_push(j, cmd, jb_str(j, "maskmesh-proxy"));
        jb_push(j, cmd, jb_str(j, "--wait-ready"));
        jb_set(j, ex, "command", cmd);
        jb_set(j, ps, "exec", ex);
        jb_set(j, life, "postStart", ps);
        jb_set(j, c, "lifecycle", life);
    }
    jb_set(j, c, "readinessProbe", http_probe(j, "/readyz", 2, 3));
    jb_set(j, c, "livenessProbe", http_probe(j, "/healthz", 10, 3));
    if (pl->cpu_request)
        jb_set(j, req, "cpu", jb_str(j, pl->cpu_request));
    if (pl->memory_request)
        jb_set(j, req, "memory", jb_str(j, pl->memory_request));
    if (pl->cpu_limit)
        jb_set(j, lim, "cpu", jb_str(j, pl->cpu_limit));
    if (pl->memory_limit)
        jb_set(j, lim, "memory", jb_str(j, pl->memory_limit));
    jb_set(j, res, "requests", req);
    jb_set(j, res, "limits", lim);
    jb_set(j, c, "resources", res);
    jb_set(j, c, "securityContext", security_context(j, cfg->run_as_user, false));
    jb_push(j, mounts, mount_obj(j, pl->vol_policies, "/etc/maskmesh/policies"));
    jb_push(j, mounts, mount_obj(j, pl->vol_podinfo, "/etc/maskmesh/podinfo"));
    jb_push(j, mounts, mount_obj(j, pl->vol_keys, "/etc/maskmesh/keys"));
    jb_set(j, c, "volumeMounts", mounts);
    jb_set(j, c, "terminationMessagePolicy", jb_str(j, "FallbackToLogsOnError"));
    return c;
}

json_object *adm_init_container(jb *j, const adm_plan *pl)
{
    const mm_adm_config *cfg = pl->cfg;
    json_object *c = jb_obj(j), *cmd = jb_arr(j), *res = jb_obj(j), *req = jb_obj(j);
    static const char *const words[] = {"iptables", "-w", "-t", "nat", "-A", "PREROUTING",
                                        "-p", "tcp", "--dport"};

    jb_set(j, c, "name", jb_str(j, MM_ADM_INIT_NAME));
    jb_set(j, c, "image", jb_str(j, cfg->init_image ? cfg->init_image : cfg->image));
    if (cfg->pull_policy)
        jb_set(j, c, "imagePullPolicy", jb_str(j, cfg->pull_policy));
    for (size_t i = 0; i < MM_ARRAY_LEN(words); i++)
        jb_push(j, cmd, jb_str(j, words[i]));
    jb_push(j, cmd, arg(j, "%ld", pl->port.number));
    jb_push(j, cmd, jb_str(j, "-j"));
    jb_push(j, cmd, jb_str(j, "REDIRECT"));
    jb_push(j, cmd, jb_str(j, "--to-ports"));
    jb_push(j, cmd, arg(j, "%d", MM_ADM_PROXY_PORT));
    jb_set(j, c, "command", cmd);
    jb_set(j, req, "cpu", jb_str(j, "10m"));
    jb_set(j, req, "memory", jb_str(j, "16Mi"));
    jb_set(j, res, "requests", req);
    jb_set(j, c, "resources", res);
    jb_set(j, c, "securityContext", security_context(j, 0, true));
    return c;
}

/* kind: "configMap", "downwardAPI" or "secret" (a constant: it becomes a key) */
json_object *adm_volume(jb *j, const char *name, const char *kind, const char *source)
{
    json_object *v = jb_obj(j), *src = jb_obj(j);
    jb_set(j, v, "name", jb_str(j, name));
    if (strcmp(kind, "downwardAPI") == 0) {
        json_object *items = jb_arr(j), *it = jb_obj(j), *ref = jb_obj(j);
        jb_set(j, ref, "fieldPath", jb_str(j, "metadata.labels"));
        jb_set(j, it, "path", jb_str(j, "labels"));
        jb_set(j, it, "fieldRef", ref);
        jb_push(j, items, it);
        jb_set(j, src, "items", items);
    } else {
        jb_set(j, src, strcmp(kind, "secret") == 0 ? "secretName" : "name", jb_str(j, source));
        jb_set(j, src, "optional", jb_bool(j, true));
    }
    jb_set(j, v, kind, src);
    return v;
}
