/* lib/admission: the parts the injection adds to a pod, written from its plan as JSON text:
 * the maskmesh-proxy sidecar (args, ports, probes, mounts, resources, security context), the
 * iptables init container and the volumes. Members come in the order the json-c builder
 * this replaced added them (the status hash is taken over this text: it must not change).
 * Pure writers: inject.c decides and places them. */
#include "admission/admission.h"
#include "admission/admission_int.h"

#include <stdio.h>

#define STR_(x) #x
#define MM_STR(x) STR_(x) /* a number macro as a string literal */

static void http_probe(jw *w, const char *path, int period, int failures)
{
    jw_lit(w, "{\"httpGet\":{\"path\":");
    jw_str(w, path);
    jw_lit(w, ",\"port\":" MM_STR(MM_ADM_ADMIN_PORT) "},\"periodSeconds\":");
    jw_int(w, period);
    jw_lit(w, ",\"timeoutSeconds\":1,\"failureThreshold\":");
    jw_int(w, failures);
    jw_lit(w, "}");
}

static void port_obj(jw *w, const char *name, long number)
{
    jw_lit(w, "{\"name\":");
    jw_str(w, name);
    jw_lit(w, ",\"containerPort\":");
    jw_int(w, number);
    jw_lit(w, ",\"protocol\":\"TCP\"}");
}

static void mount_obj(jw *w, const char *name, const char *path)
{
    jw_lit(w, "{\"name\":");
    jw_str(w, name);
    jw_lit(w, ",\"mountPath\":");
    jw_str(w, path);
    jw_lit(w, ",\"readOnly\":true}");
}

static void security_context(jw *w, long uid, bool net_admin)
{
    jw_lit(w, net_admin ? "{\"capabilities\":{\"drop\":[\"ALL\"],\"add\":[\"NET_ADMIN\",\"NET_RAW\"]},"
                        : "{\"capabilities\":{\"drop\":[\"ALL\"]},");
    jw_lit(w, "\"allowPrivilegeEscalation\":false,\"privileged\":false,"
              "\"readOnlyRootFilesystem\":true,\"runAsNonRoot\":");
    jw_bool(w, !net_admin);
    jw_lit(w, ",\"runAsUser\":");
    jw_int(w, uid);
    jw_lit(w, ",\"runAsGroup\":");
    jw_int(w, uid);
    jw_lit(w, ",\"seccompProfile\":{\"type\":\"RuntimeDefault\"}}");
}

/* "key":"value" after a comma when value is set; *first says whether one came before */
static void opt_member(jw *w, const char *key, const char *value, bool *first)
{
    if (!value)
        return;
    jw_lit(w, *first ? "\"" : ",\"");
    jw_lit(w, key);
    jw_lit(w, "\":");
    jw_str(w, value);
    *first = false;
}

void adm_sidecar_json(jw *w, const adm_plan *pl)
{
    const mm_adm_config *cfg = pl->cfg;
    bool first;

    jw_lit(w, "{\"name\":\"" MM_ADM_SIDECAR_NAME "\",\"image\":");
    jw_str(w, cfg->image);
    if (cfg->pull_policy) {
        jw_lit(w, ",\"imagePullPolicy\":");
        jw_str(w, cfg->pull_policy);
    }
    jw_lit(w, ",\"args\":[\"--listen=0.0.0.0:" MM_STR(MM_ADM_PROXY_PORT) "\",\"--admin=0.0.0.0:" MM_STR(
                  MM_ADM_ADMIN_PORT) "\",\"--upstream=127.0.0.1:");
    jw_int(w, pl->port.number);
    jw_lit(w, "\"");
    if (pl->upstream_h2c)
        jw_lit(w, ",\"--upstream-protocol=h2c\"");
    jw_lit(w, ",\"--policies=/etc/maskmesh/policies/policies.yaml\","
              "\"--labels=/etc/maskmesh/podinfo/labels\",\"--keys=/etc/maskmesh/keys\"],\"ports\":[");
    port_obj(w, pl->proxy_port_name, MM_ADM_PROXY_PORT);
    jw_lit(w, ",");
    port_obj(w, "maskmesh-admin", MM_ADM_ADMIN_PORT);
    /* connections to the app port reach the sidecar through the pod's REDIRECT, after the
     * node's NetworkPolicy has seen them: declared here, named, the policy can allow them */
    if (pl->mode == MM_ADM_MODE_IPTABLES) {
        jw_lit(w, ",");
        port_obj(w, MM_ADM_REDIRECT_PORT_NAME, pl->port.number);
    }
    jw_lit(w, "]");
    if (pl->native) {
        /* the kubelet starts the next container only once this probe passed: /startz, not
         * /readyz, which also needs the app that is not started yet */
        jw_lit(w, ",\"restartPolicy\":\"Always\",\"startupProbe\":");
        http_probe(w, "/startz", 1, 120);
    } else if (cfg->hold_app) {
        /* the image has no shell: the proxy binary itself polls its /readyz */
        jw_lit(w, ",\"lifecycle\":{\"postStart\":{\"exec\":{\"command\":[\"maskmesh-proxy\","
                  "\"--wait-ready\"]}}}");
    }
    jw_lit(w, ",\"readinessProbe\":");
    http_probe(w, "/readyz", 2, 3);
    jw_lit(w, ",\"livenessProbe\":");
    http_probe(w, "/healthz", 10, 3);
    jw_lit(w, ",\"resources\":{\"requests\":{");
    first = true;
    opt_member(w, "cpu", pl->cpu_request, &first);
    opt_member(w, "memory", pl->memory_request, &first);
    jw_lit(w, "},\"limits\":{");
    first = true;
    opt_member(w, "cpu", pl->cpu_limit, &first);
    opt_member(w, "memory", pl->memory_limit, &first);
    jw_lit(w, "}},\"securityContext\":");
    security_context(w, cfg->run_as_user, false);
    jw_lit(w, ",\"volumeMounts\":[");
    mount_obj(w, pl->vol_policies, "/etc/maskmesh/policies");
    jw_lit(w, ",");
    mount_obj(w, pl->vol_podinfo, "/etc/maskmesh/podinfo");
    jw_lit(w, ",");
    mount_obj(w, pl->vol_keys, "/etc/maskmesh/keys");
    jw_lit(w, "],\"terminationMessagePolicy\":\"FallbackToLogsOnError\"}");
}

void adm_init_json(jw *w, const adm_plan *pl)
{
    const mm_adm_config *cfg = pl->cfg;

    jw_lit(w, "{\"name\":\"" MM_ADM_INIT_NAME "\",\"image\":");
    jw_str(w, cfg->init_image ? cfg->init_image : cfg->image);
    if (cfg->pull_policy) {
        jw_lit(w, ",\"imagePullPolicy\":");
        jw_str(w, cfg->pull_policy);
    }
    jw_lit(w, ",\"command\":[\"iptables\",\"-w\",\"-t\",\"nat\",\"-A\",\"PREROUTING\",\"-p\","
              "\"tcp\",\"--dport\",\"");
    jw_int(w, pl->port.number);
    jw_lit(w, "\",\"-j\",\"REDIRECT\",\"--to-ports\",\"" MM_STR(MM_ADM_PROXY_PORT) "\"],"
              "\"resources\":{\"requests\":{\"cpu\":\"10m\",\"memory\":\"16Mi\"}},"
              "\"securityContext\":");
    security_context(w, 0, true);
    jw_lit(w, "}");
}

void adm_volume_json(jw *w, const adm_plan *pl, int i)
{
    jw_lit(w, "{\"name\":");
    switch (i) {
    case 0:
        jw_str(w, pl->vol_policies);
        jw_lit(w, ",\"configMap\":{\"name\":\"maskmesh-policies\",\"optional\":true}}");
        break;
    case 1:
        jw_str(w, pl->vol_podinfo);
        jw_lit(w, ",\"downwardAPI\":{\"items\":[{\"path\":\"labels\",\"fieldRef\":"
                  "{\"fieldPath\":\"metadata.labels\"}}]}}");
        break;
    default:
        jw_str(w, pl->vol_keys);
        jw_lit(w, ",\"secret\":{\"secretName\":\"maskmesh-keys\",\"optional\":true}}");
        break;
    }
}
