/* lib/admission: the injection as one pure function. Reads a pod (or pod template), decides
 * whether to inject and why, and builds the JSON Patch that adds the maskmesh-proxy sidecar,
 * its volumes, the traffic wiring (named-port or iptables) and the maskmesh.io/status marker.
 * Ops that touch existing containers come before any insertion, so their indices hold. */
#include "admission/admission.h"
#include "admission/admission_int.h"

#include <stdio.h>
#include <string.h>

static const char *const reason_names[MM_ADM_REASON_COUNT] = {
    [MM_ADM_INJECTED] = "injected",
    [MM_ADM_REINJECTED] = "reinjected",
    [MM_ADM_ALREADY_INJECTED] = "already-injected",
    [MM_ADM_OPTED_OUT] = "opted-out",
    [MM_ADM_NOT_OPTED_IN] = "not-opted-in",
    [MM_ADM_HOST_NETWORK] = "host-network",
    [MM_ADM_INVALID] = "invalid",
};

const char *mm_adm_reason_name(mm_adm_reason r)
{
    return (unsigned)r < MM_ADM_REASON_COUNT ? reason_names[r] : "ignored";
}

void mm_adm_result_clear(mm_adm_result *r)
{
    if (!r)
        return;
    json_object_put(r->patch);
    mm_free(r->patch_json);
    for (size_t i = 0; i < r->n_warnings; i++)
        mm_free(r->warnings[i]);
    mm_free(r->warnings);
    mm_free(r->message);
    mm_free(r->explain);
    memset(r, 0, sizeof(*r));
}

/* ---- reading the pod ------------------------------------------------------------------ */

static const char *meta_str(const json_object *pod, const char *map, const char *key)
{
    return jget_str(jget_type(jget_type(pod, "metadata", json_type_object), map, json_type_object),
                    key);
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

bool mm_adm_quantity_valid(const char *s)
{
    static const char *const suffixes[] = {"", "m", "k", "M", "G", "T", "P", "E",
                                           "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    size_t digits = 0;
    const char *p = s;

    if (!s || strlen(s) > 63)
        return false;
    if (*p == '+')
        p++;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++, digits++;
    }
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1;
        if (*q == '+' || *q == '-')
            q++;
        if (*q >= '0' && *q <= '9') {
            while (*q >= '0' && *q <= '9')
                q++;
            return *q == '\0';
        }
    }
    for (size_t i = 0; i < MM_ARRAY_LEN(suffixes); i++)
        if (strcmp(p, suffixes[i]) == 0)
            return true;
    return false;
}

static bool port_is_tcp(const json_object *p)
{
    const char *proto = jget_str(p, "protocol");
    return !proto || strcmp(proto, "TCP") == 0;
}

/* Finds a containerPort by number (name NULL) or by name. */
static bool find_port(json_object *containers, long number, const char *name, app_port *out)
{
    size_t nc = json_object_array_length(containers);
    for (size_t i = 0; i < nc; i++) {
        json_object *ports = jget_type(json_object_array_get_idx(containers, i), "ports",
                                       json_type_array);
        size_t np = ports ? json_object_array_length(ports) : 0;
        for (size_t k = 0; k < np; k++) {
            json_object *p = json_object_array_get_idx(ports, k);
            json_object *num = jget_type(p, "containerPort", json_type_int);
            const char *pname = jget_str(p, "name");
            if (!num || !port_is_tcp(p))
                continue;
            if (name ? (pname && strcmp(pname, name) == 0) : json_object_get_int64(num) == number) {
                out->number = json_object_get_int64(num);
                out->name = pname;
                out->container = (long)i;
                out->port_index = (long)k;
                return true;
            }
        }
    }
    return false;
}

static bool first_port(json_object *containers, app_port *out)
{
    size_t nc = json_object_array_length(containers);
    for (size_t i = 0; i < nc; i++) {
        json_object *ports = jget_type(json_object_array_get_idx(containers, i), "ports",
                                       json_type_array);
        size_t np = ports ? json_object_array_length(ports) : 0;
        for (size_t k = 0; k < np; k++) {
            json_object *p = json_object_array_get_idx(ports, k);
            json_object *num = jget_type(p, "containerPort", json_type_int);
            if (num && port_is_tcp(p)) {
                out->number = json_object_get_int64(num);
                out->name = jget_str(p, "name");
                out->container = (long)i;
                out->port_index = (long)k;
                return true;
            }
        }
    }
    return false;
}

static bool has_name(json_object *arr, const char *name)
{
    size_t n = arr ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = jget_str(json_object_array_get_idx(arr, i), "name");
        if (v && strcmp(v, name) == 0)
            return true;
    }
    return false;
}

/* A volume name not used yet: base, base-2, base-3... (into out, 64 bytes). */
static void unique_volume(json_object *volumes, const char *base, char out[64])
{
    snprintf(out, 64, "%s", base);
    for (int i = 2; has_name(volumes, out) && i < 1000; i++)
        snprintf(out, 64, "%s-%d", base, i);
}

/* ---- the parts injected --------------------------------------------------------------- */

/* ---- probes that name the taken-over port --------------------------------------------- */

static void rewrite_named_probes(adm_builder *b, json_object *container, size_t ci, const char *name,
                                 long number)
{
    static const char *const probes[] = {"livenessProbe", "readinessProbe", "startupProbe"};
    static const char *const hooks[] = {"postStart", "preStop"};
    static const char *const handlers[] = {"httpGet", "tcpSocket"};
    char cis[24];
    const char *cname = jget_str(container, "name");

    adm_idx(cis, ci);
    for (size_t i = 0; i < MM_ARRAY_LEN(probes) + MM_ARRAY_LEN(hooks); i++) {
        bool hook = i >= MM_ARRAY_LEN(probes);
        const char *key = hook ? hooks[i - MM_ARRAY_LEN(probes)] : probes[i];
        json_object *holder = hook ? jget_type(jget_type(container, "lifecycle", json_type_object),
                                               key, json_type_object)
                                   : jget_type(container, key, json_type_object);
        for (size_t h = 0; holder && h < MM_ARRAY_LEN(handlers); h++) {
            const char *port = jget_str(jget_type(holder, handlers[h], json_type_object), "port");
            if (!port || strcmp(port, name) != 0)
                continue;
            if (hook)
                adm_op(b, "replace", adm_val_int(b, number), "spec", "containers", cis, "lifecycle",
                     key, handlers[h], "port", NULL);
            else
                adm_op(b, "replace", adm_val_int(b, number), "spec", "containers", cis, key,
                     handlers[h], "port", NULL);
            adm_explain(b, "  probe: %s %s.%s of container \"%s\" named port \"%s\": now %ld, so it "
                         "keeps reaching the app\n",
                      hook ? "lifecycle hook" : "probe", key, handlers[h], cname ? cname : "?",
                      name, number);
        }
    }
}

/* ---- removing an older injection (re-injection) --------------------------------------- */

/* Builds, into b->ops, the ops that remove what a previous injection added, as recorded in
 * its status (names fall back to the defaults when the status is older or unreadable). */
static void uninject_ops(adm_builder *b, const json_object *pod, const json_object *status)
{
    json_object *spec = jget_type(pod, "spec", json_type_object);
    static const char *const lists[] = {"initContainers", "containers"};
    json_object *vols_rec = jget_type(status, "volumes", json_type_array);
    const char *app = jget_str(status, "appContainer"), *pname = jget_str(status, "portName");
    json_object *appport = jget_type(status, "appPort", json_type_int);
    json_object *volumes = jget_type(spec, "volumes", json_type_array);
    char is[24];

    /* restore the port name the sidecar took over, first (indices unchanged yet) */
    if (app && pname && appport) {
        json_object *cs = jget_type(spec, "containers", json_type_array);
        size_t nc = cs ? json_object_array_length(cs) : 0;
        for (size_t i = 0; i < nc; i++) {
            json_object *c = json_object_array_get_idx(cs, i);
            json_object *ports = jget_type(c, "ports", json_type_array);
            const char *cn = jget_str(c, "name");
            if (!cn || strcmp(cn, app) != 0 || !ports)
                continue;
            for (size_t k = 0; k < json_object_array_length(ports); k++) {
                json_object *p = json_object_array_get_idx(ports, k);
                json_object *num = jget_type(p, "containerPort", json_type_int);
                if (num && json_object_get_int64(num) == json_object_get_int64(appport) &&
                    !jget(p, "name")) {
                    char ks[24];
                    adm_idx(is, i);
                    adm_idx(ks, k);
                    adm_op(b, "add", adm_val_str(b, pname), "spec", "containers", is, "ports", ks,
                         "name", NULL);
                    break;
                }
            }
        }
    }
    for (size_t l = 0; l < MM_ARRAY_LEN(lists); l++) {
        json_object *cs = jget_type(spec, lists[l], json_type_array);
        for (size_t i = cs ? json_object_array_length(cs) : 0; i-- > 0;) {
            const char *cn = jget_str(json_object_array_get_idx(cs, i), "name");
            if (cn && (strcmp(cn, MM_ADM_SIDECAR_NAME) == 0 || strcmp(cn, MM_ADM_INIT_NAME) == 0)) {
                adm_idx(is, i);
                adm_op(b, "remove", NULL, "spec", lists[l], is, NULL);
            }
        }
    }
    for (size_t i = volumes ? json_object_array_length(volumes) : 0; i-- > 0;) {
        const char *vn = jget_str(json_object_array_get_idx(volumes, i), "name");
        bool ours = false;
        if (!vn)
            continue;
        if (vols_rec) {
            for (size_t k = 0; k < json_object_array_length(vols_rec); k++) {
                json_object *r = json_object_array_get_idx(vols_rec, k);
                if (json_object_is_type(r, json_type_string) &&
                    strcmp(json_object_get_string(r), vn) == 0)
                    ours = true;
            }
        } else {
            ours = strcmp(vn, "maskmesh-policies") == 0 || strcmp(vn, "maskmesh-podinfo") == 0 ||
                   strcmp(vn, "maskmesh-keys") == 0;
        }
        if (ours) {
            adm_idx(is, i);
            adm_op(b, "remove", NULL, "spec", "volumes", is, NULL);
        }
    }
}

/* ---- the decision and the patch ------------------------------------------------------- */

static mm_err set_message(mm_adm_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static mm_err set_message(mm_adm_result *r, const char *fmt, ...)
{
    mm_buf m;
    va_list ap;
    mm_err rc;
    mm_buf_init(&m, 0);
    va_start(ap, fmt);
    rc = mm_buf_vprintf(&m, fmt, ap);
    va_end(ap);
    if (rc != MM_OK) {
        mm_buf_free(&m);
        return rc;
    }
    mm_free(r->message);
    r->message = mm_buf_steal(&m, NULL);
    return r->message ? MM_OK : MM_ENOMEM;
}

/* Port names as Istio users write them for HTTP/2 apps (grpc, grpc-web, http2-api, h2c-x):
 * the sidecar then speaks h2c to the app unless the annotation says otherwise. */
static bool port_name_h2c(const char *name)
{
    static const char *const pre[] = {"grpc", "http2", "h2c"};

    for (size_t i = 0; name && i < MM_ARRAY_LEN(pre); i++) {
        size_t n = strlen(pre[i]);
        if (strncmp(name, pre[i], n) == 0 && (name[n] == '\0' || name[n] == '-'))
            return true;
    }
    return false;
}

/* What the app speaks when the annotation has not said it: the appProtocol of the Services
 * that send to the app port (read through opts->services), else the port's name, else
 * HTTP/1.1. Istio's order too: appProtocol before the port name. */
static mm_err decide_upstream(adm_builder *b, const json_object *pod, const mm_adm_opts *opts,
                              adm_plan *pl)
{
    json_object *services;
    adm_proto sp = ADM_PROTO_UNSET;
    bool conflict = false;
    mm_buf why, who;
    mm_err rc = MM_OK;

    pl->upstream_h2c = port_name_h2c(pl->port.name);
    if (!opts->services)
        return MM_OK;
    mm_buf_init(&why, 0);
    mm_buf_init(&who, 0);
    if (!(services = opts->services(opts->services_ud, &why))) {
        adm_warn(b, "the Services of the pod's namespace could not be read (%s): the upstream "
                  "protocol follows the port name (%s); set %s to decide it",
               why.len ? mm_buf_cstr(&why) : "no reason given",
               pl->upstream_h2c ? "h2c" : "h1", MM_ADM_ANN_UPSTREAM);
        goto out;
    }
    if ((rc = adm_services_protocol(services, pod, &pl->port, &sp, &conflict, &who)) != MM_OK)
        goto out;
    if (conflict) {
        adm_warn(b, "the Services sending to port %ld disagree on its protocol (%s): the upstream "
                  "protocol follows the port name (%s); set %s to decide it",
               pl->port.number, mm_buf_cstr(&who), pl->upstream_h2c ? "h2c" : "h1",
               MM_ADM_ANN_UPSTREAM);
    } else if (sp != ADM_PROTO_UNSET) {
        pl->upstream_h2c = sp == ADM_PROTO_H2C;
        adm_explain(b, "  upstream protocol: %s (%s)\n", pl->upstream_h2c ? "h2c" : "h1",
                  mm_buf_cstr(&who));
    }
out:
    json_object_put(services);
    mm_buf_free(&why);
    mm_buf_free(&who);
    return rc;
}

/* Decides with the pod's annotations; fills pl or says why not (MM_ADM_INVALID). */
static mm_err make_plan(adm_builder *b, const json_object *pod, const mm_adm_config *cfg,
                        const mm_adm_opts *opts, adm_plan *pl, bool *ok)
{
    json_object *spec = jget_type(pod, "spec", json_type_object);
    json_object *containers = jget_type(spec, "containers", json_type_array);
    json_object *volumes = jget_type(spec, "volumes", json_type_array);
    const char *mode = meta_str(pod, "annotations", MM_ADM_ANN_MODE);
    const char *native = meta_str(pod, "annotations", MM_ADM_ANN_NATIVE);
    const char *cpu = meta_str(pod, "annotations", MM_ADM_ANN_CPU);
    const char *mem = meta_str(pod, "annotations", MM_ADM_ANN_MEMORY);
    const char *port = meta_str(pod, "annotations", MM_ADM_ANN_PORT);
    const char *proto = meta_str(pod, "annotations", MM_ADM_ANN_UPSTREAM);
    static const char *const lists[] = {"containers", "initContainers"};
    mm_err rc;

    *ok = false;
    memset(pl, 0, sizeof(*pl));
    pl->cfg = cfg;
    pl->mode = cfg->mode;
    pl->native = cfg->native;
    pl->cpu_request = cfg->cpu_request;
    pl->memory_request = cfg->memory_request;
    pl->cpu_limit = cfg->cpu_limit;
    pl->memory_limit = cfg->memory_limit;
    if (mode) {
        if (strcmp(mode, "named-port") == 0)
            pl->mode = MM_ADM_MODE_NAMED_PORT;
        else if (strcmp(mode, "iptables") == 0)
            pl->mode = MM_ADM_MODE_IPTABLES;
        else
            return set_message(b->res, "annotation %s: \"%s\" is not a mode (expected named-port "
                                       "or iptables)", MM_ADM_ANN_MODE, mode);
    }
    if (native) {
        if (strcmp(native, "true") != 0 && strcmp(native, "false") != 0)
            return set_message(b->res, "annotation %s: expected \"true\" or \"false\"",
                               MM_ADM_ANN_NATIVE);
        pl->native = native[0] == 't';
    }
    if (cpu) {
        if (!mm_adm_quantity_valid(cpu))
            return set_message(b->res, "annotation %s: \"%s\" is not a resource quantity (e.g. "
                                       "100m)", MM_ADM_ANN_CPU, cpu);
        pl->cpu_request = cpu;
    }
    if (mem) {
        if (!mm_adm_quantity_valid(mem))
            return set_message(b->res, "annotation %s: \"%s\" is not a resource quantity (e.g. "
                                       "64Mi)", MM_ADM_ANN_MEMORY, mem);
        pl->memory_request = pl->memory_limit = mem;
    }
    pl->port.container = pl->port.port_index = -1;
    if (port) {
        long n;
        if (all_digits(port)) {
            if (!mm_parse_long(port, 1, 65535, &n))
                return set_message(b->res, "annotation %s: %s is not a port number (1-65535)",
                                   MM_ADM_ANN_PORT, port);
            if (!find_port(containers, n, NULL, &pl->port)) {
                pl->port.number = n;
                pl->port.container = pl->port.port_index = -1;
            }
        } else if (!find_port(containers, 0, port, &pl->port)) {
            return set_message(b->res, "annotation %s: no container declares a TCP port named "
                                       "\"%s\"", MM_ADM_ANN_PORT, port);
        }
    } else if (!first_port(containers, &pl->port)) {
        pl->port.number = 8080;
        pl->port.guessed = true;
    }
    if (pl->port.number == MM_ADM_PROXY_PORT || pl->port.number == MM_ADM_ADMIN_PORT)
        return set_message(b->res, "the app port %ld is one the sidecar needs (%d, %d); set %s",
                           pl->port.number, MM_ADM_PROXY_PORT, MM_ADM_ADMIN_PORT, MM_ADM_ANN_PORT);
    for (size_t l = 0; l < MM_ARRAY_LEN(lists); l++) {
        json_object *cs = jget_type(spec, lists[l], json_type_array);
        for (size_t i = 0; cs && i < json_object_array_length(cs); i++) {
            json_object *ports = jget_type(json_object_array_get_idx(cs, i), "ports",
                                           json_type_array);
            for (size_t k = 0; ports && k < json_object_array_length(ports); k++) {
                json_object *num = jget_type(json_object_array_get_idx(ports, k),
                                             "containerPort", json_type_int);
                long v = num ? (long)json_object_get_int64(num) : 0;
                if (v == MM_ADM_PROXY_PORT || v == MM_ADM_ADMIN_PORT)
                    return set_message(b->res, "%s[%zu] already declares port %ld, which the "
                                               "sidecar needs", lists[l], i, v);
            }
        }
    }
    if (proto) {
        if (strcmp(proto, "h1") != 0 && strcmp(proto, "h2c") != 0)
            return set_message(b->res, "annotation %s: \"%s\" is not a protocol (expected h1 "
                                       "or h2c)", MM_ADM_ANN_UPSTREAM, proto);
        pl->upstream_h2c = strcmp(proto, "h2c") == 0;
    } else if ((rc = decide_upstream(b, pod, opts, pl)) != MM_OK) {
        return rc;
    }
    pl->proxy_port_name = "maskmesh";
    if (pl->mode == MM_ADM_MODE_NAMED_PORT && pl->port.name)
        pl->proxy_port_name = pl->port.name;
    unique_volume(volumes, "maskmesh-policies", pl->vol_policies);
    unique_volume(volumes, "maskmesh-podinfo", pl->vol_podinfo);
    unique_volume(volumes, "maskmesh-keys", pl->vol_keys);
    *ok = true;
    return MM_OK;
}

/* Builds the patch of pl on pod into b->ops; *hash gets the template hash. */
static mm_err build_patch(adm_builder *b, const json_object *pod, const adm_plan *pl, char hash[72])
{
    json_object *meta = jget_type(pod, "metadata", json_type_object);
    json_object *annotations = jget_type(meta, "annotations", json_type_object);
    json_object *spec = jget_type(pod, "spec", json_type_object);
    json_object *containers = jget_type(spec, "containers", json_type_array);
    json_object *inits = jget_type(spec, "initContainers", json_type_array);
    const char *restart = jget_str(spec, "restartPolicy");
    const char *app_name = NULL;
    char cis[24], pis[24];
    /* text: the hash's input {"sidecar":..,"init":..,"volumes":[..],"native":..}, then the
     * status annotation; the sidecar, init container and volumes are spliced from it */
    mm_buf text;
    jw t = {&text, MM_OK}, v;
    size_t side_at, side_len, init_at = 0, init_len = 0, vol_at[ADM_VOLUMES], vol_len[ADM_VOLUMES];
    mm_err rc = MM_OK;
    bool jobish = restart && strcmp(restart, "Always") != 0;

    mm_buf_init(&text, 0);

    if (pl->port.container >= 0)
        app_name = jget_str(json_object_array_get_idx(containers, (size_t)pl->port.container),
                            "name");

    /* the hash covers everything injected, so any change of config or pod gives a new one */
    jw_lit(&t, "{\"sidecar\":");
    side_at = text.len;
    adm_sidecar_json(&t, pl);
    side_len = text.len - side_at;
    if (pl->mode == MM_ADM_MODE_IPTABLES) {
        jw_lit(&t, ",\"init\":");
        init_at = text.len;
        adm_init_json(&t, pl);
        init_len = text.len - init_at;
    }
    jw_lit(&t, ",\"volumes\":[");
    for (int i = 0; i < ADM_VOLUMES; i++) {
        if (i)
            jw_lit(&t, ",");
        vol_at[i] = text.len;
        adm_volume_json(&t, pl, i);
        vol_len[i] = text.len - vol_at[i];
    }
    jw_lit(&t, "],\"native\":");
    jw_bool(&t, pl->native);
    jw_lit(&t, "}");
    if ((rc = t.rc) != MM_OK || (rc = adm_hash(&text, hash)) != MM_OK)
        goto out;
#define SPLICE(w, at, len) jw_raw((w), text.data + (at), (len))

    adm_explain(b, "  sidecar: %s, image %s, %s\n", MM_ADM_SIDECAR_NAME, pl->cfg->image,
              pl->native ? "native sidecar (init container, restartPolicy: Always, startup "
                           "probe on :15481/readyz gates the app)"
                         : pl->cfg->hold_app ? "first container, postStart `maskmesh-proxy "
                                               "--wait-ready` holds the app until it is ready"
                                             : "first container (the app may start before it)");
    adm_explain(b, "  upstream: 127.0.0.1:%ld%s\n", pl->port.number,
              pl->port.guessed ? " (assumed: no port declared)" : "");
    adm_explain(b, "  resources: requests cpu=%s memory=%s, limits cpu=%s memory=%s\n",
              pl->cpu_request ? pl->cpu_request : "-", pl->memory_request ? pl->memory_request : "-",
              pl->cpu_limit ? pl->cpu_limit : "-", pl->memory_limit ? pl->memory_limit : "-");
    if (pl->port.guessed)
        adm_warn(b, "no container declares a TCP port and %s is not set: the sidecar forwards "
                  "to 127.0.0.1:8080", MM_ADM_ANN_PORT);

    /* 1. ops on existing containers, at their original indices */
    if (pl->mode == MM_ADM_MODE_NAMED_PORT) {
        if (pl->port.name && pl->port.container >= 0) {
            json_object *c = json_object_array_get_idx(containers, (size_t)pl->port.container);
            adm_idx(cis, (size_t)pl->port.container);
            adm_idx(pis, (size_t)pl->port.port_index);
            adm_op(b, "remove", NULL, "spec", "containers", cis, "ports", pis, "name", NULL);
            adm_explain(b, "  traffic: named-port: the sidecar's port %d takes over the name \"%s\" "
                         "from port %ld of container \"%s\"\n",
                      MM_ADM_PROXY_PORT, pl->port.name, pl->port.number, app_name ? app_name : "?");
            rewrite_named_probes(b, c, (size_t)pl->port.container, pl->port.name, pl->port.number);
        } else {
            adm_explain(b, "  traffic: named-port: the app port %ld has no name to take over\n",
                      pl->port.number);
            adm_warn(b, "port %ld has no name for the sidecar to take over: Services must target "
                      "port %d (name \"maskmesh\") for traffic to be masked; name the port or "
                      "use %s: iptables", pl->port.number, MM_ADM_PROXY_PORT, MM_ADM_ANN_MODE);
        }
    } else {
        adm_explain(b, "  traffic: iptables: init container %s redirects port %ld to %d (NET_ADMIN)\n",
                  MM_ADM_INIT_NAME, pl->port.number, MM_ADM_PROXY_PORT);
        adm_warn(b, "iptables mode adds the init container %s with NET_ADMIN and NET_RAW; "
                  "Pod Security baseline and restricted namespaces reject it",
                  MM_ADM_INIT_NAME);
    }

    /* 2. insertions: init containers, then the sidecar */
    if (pl->native) {
        if (!inits) {
            v = adm_val(b);
            jw_lit(&v, "[");
            if (init_len) {
                SPLICE(&v, init_at, init_len);
                jw_lit(&v, ",");
            }
            SPLICE(&v, side_at, side_len);
            jw_lit(&v, "]");
            b->oom |= v.rc != MM_OK;
            adm_op(b, "add", &b->val, "spec", "initContainers", NULL);
        } else {
            v = adm_val(b);
            SPLICE(&v, side_at, side_len);
            b->oom |= v.rc != MM_OK;
            adm_op(b, "add", &b->val, "spec", "initContainers", "0", NULL);
            if (init_len) {
                v = adm_val(b);
                SPLICE(&v, init_at, init_len);
                b->oom |= v.rc != MM_OK;
                adm_op(b, "add", &b->val, "spec", "initContainers", "0", NULL);
            }
        }
    } else {
        if (init_len) {
            v = adm_val(b);
            jw_lit(&v, inits ? "" : "[");
            SPLICE(&v, init_at, init_len);
            jw_lit(&v, inits ? "" : "]");
            b->oom |= v.rc != MM_OK;
            if (!inits)
                adm_op(b, "add", &b->val, "spec", "initContainers", NULL);
            else
                adm_op(b, "add", &b->val, "spec", "initContainers", "0", NULL);
        }
        v = adm_val(b);
        SPLICE(&v, side_at, side_len);
        b->oom |= v.rc != MM_OK;
        adm_op(b, "add", &b->val, "spec", "containers", "0", NULL);
        if (jobish)
            adm_warn(b, "restartPolicy is %s and the sidecar is not native: the proxy does not "
                      "exit by itself, so the Job must POST http://127.0.0.1:%d/quitquitquit "
                      "when done (or set %s: \"true\" on Kubernetes >= 1.29)",
                   restart, MM_ADM_ADMIN_PORT, MM_ADM_ANN_NATIVE);
    }

    /* 3. volumes */
    if (!jget_type(spec, "volumes", json_type_array)) {
        v = adm_val(b);
        jw_lit(&v, "[");
        SPLICE(&v, vol_at[0], vol_at[ADM_VOLUMES - 1] + vol_len[ADM_VOLUMES - 1] - vol_at[0]);
        jw_lit(&v, "]");
        b->oom |= v.rc != MM_OK;
        adm_op(b, "add", &b->val, "spec", "volumes", NULL);
    } else {
        for (int i = 0; i < ADM_VOLUMES; i++) {
            v = adm_val(b);
            SPLICE(&v, vol_at[i], vol_len[i]);
            b->oom |= v.rc != MM_OK;
            adm_op(b, "add", &b->val, "spec", "volumes", "-", NULL);
        }
    }
#undef SPLICE
    adm_explain(b, "  volumes: %s (ConfigMap maskmesh-policies, optional), %s (downward API "
                 "labels), %s (Secret maskmesh-keys, optional)\n",
              pl->vol_policies, pl->vol_podinfo, pl->vol_keys);
    if (strcmp(pl->vol_policies, "maskmesh-policies") != 0 ||
        strcmp(pl->vol_podinfo, "maskmesh-podinfo") != 0 || strcmp(pl->vol_keys, "maskmesh-keys") != 0)
        adm_warn(b, "the pod already has volumes named like maskmesh's; the sidecar's are named "
                  "%s, %s, %s", pl->vol_policies, pl->vol_podinfo, pl->vol_keys);

    /* 4. the status marker (and kubectl's default container, as the sidecar comes first) */
    mm_buf_reset(&text);
    jw_lit(&t, "{\"version\":\"" MM_ADM_VERSION "\",\"hash\":");
    jw_str(&t, hash);
    jw_lit(&t, pl->mode == MM_ADM_MODE_IPTABLES ? ",\"mode\":\"iptables\",\"native\":"
                                                : ",\"mode\":\"named-port\",\"native\":");
    jw_bool(&t, pl->native);
    jw_lit(&t, ",\"volumes\":[");
    jw_str(&t, pl->vol_policies);
    jw_lit(&t, ",");
    jw_str(&t, pl->vol_podinfo);
    jw_lit(&t, ",");
    jw_str(&t, pl->vol_keys);
    jw_lit(&t, "]");
    if (app_name) {
        jw_lit(&t, ",\"appContainer\":");
        jw_str(&t, app_name);
    }
    jw_lit(&t, ",\"appPort\":");
    jw_int(&t, pl->port.number);
    if (pl->mode == MM_ADM_MODE_NAMED_PORT && pl->port.name && pl->port.container >= 0) {
        jw_lit(&t, ",\"portName\":");
        jw_str(&t, pl->port.name);
    }
    jw_lit(&t, "}");
    if ((rc = t.rc) != MM_OK)
        goto out;
    {
        const char *st = mm_buf_cstr(&text), *first = jget_str(json_object_array_get_idx(containers, 0), "name");
        bool want_default = !pl->native && first &&
                            !(annotations && jget(annotations, "kubectl.kubernetes.io/default-container"));
        if (!meta || !annotations) {
            v = adm_val(b);
            jw_lit(&v, meta ? "{\"" MM_ADM_ANN_STATUS "\":" : "{\"annotations\":{\"" MM_ADM_ANN_STATUS "\":");
            jw_str(&v, st);
            if (want_default) {
                jw_lit(&v, ",\"kubectl.kubernetes.io/default-container\":");
                jw_str(&v, first);
            }
            jw_lit(&v, meta ? "}" : "}}");
            b->oom |= v.rc != MM_OK;
            if (!meta)
                adm_op(b, "add", &b->val, "metadata", NULL);
            else
                adm_op(b, "add", &b->val, "metadata", "annotations", NULL);
        } else {
            adm_op(b, "add", adm_val_str(b, st), "metadata", "annotations", MM_ADM_ANN_STATUS, NULL);
            if (want_default)
                adm_op(b, "add", adm_val_str(b, first), "metadata", "annotations",
                     "kubectl.kubernetes.io/default-container", NULL);
        }
        adm_explain(b, "  status: %s=%s\n", MM_ADM_ANN_STATUS, st);
    }
    if (b->oom)
        rc = MM_ENOMEM;
out:
    mm_buf_free(&text);
    return rc;
}

static bool any_container_named(const json_object *spec, const char *name)
{
    return has_name(jget_type(spec, "containers", json_type_array), name) ||
           has_name(jget_type(spec, "initContainers", json_type_array), name);
}

mm_err mm_adm_inject(const json_object *pod_c, const mm_adm_config *cfg, const mm_adm_opts *opts,
                     mm_adm_result *out, mm_errbuf *eb)
{
    json_object *pod = (json_object *)pod_c; /* read only: json-c getters are not const */
    adm_builder b = {0};
    mm_adm_opts none = {0};
    json_object *spec, *containers, *status_json = NULL, *cleaned = NULL, *un_ops = NULL;
    mm_buf un_text; /* re-injection: the ops that take the older injection out */
    json_object *host_net;
    const char *label, *ann, *status;
    adm_plan pl;
    char hash[72] = "";
    bool ok;
    mm_err rc = MM_OK;

    memset(out, 0, sizeof(*out));
    if (!opts)
        opts = &none;
    if (!pod || !json_object_is_type(pod, json_type_object))
        return mm_errf(eb, MM_EINVAL, "the pod is not a JSON object");
    b.res = out;
    b.no_explain = opts->no_explain;
    mm_buf_init(&b.explain, 0);
    mm_buf_init(&b.ops, 0);
    mm_buf_init(&b.path, 0);
    mm_buf_init(&b.val, 0);
    mm_buf_init(&un_text, 0);
    out->allowed = true;
    spec = jget_type(pod, "spec", json_type_object);
    containers = jget_type(spec, "containers", json_type_array);
    label = meta_str(pod, "labels", MM_ADM_LABEL_INJECT);
    ann = meta_str(pod, "annotations", MM_ADM_LABEL_INJECT);
    status = meta_str(pod, "annotations", MM_ADM_ANN_STATUS);

    if (!containers || json_object_array_length(containers) == 0) {
        out->reason = MM_ADM_INVALID;
        out->allowed = false;
        rc = set_message(out, "the pod has no spec.containers");
        goto out;
    }
    if ((label && strcmp(label, "false") == 0) || (ann && strcmp(ann, "false") == 0)) {
        out->reason = MM_ADM_OPTED_OUT;
        rc = set_message(out, "not injected: the pod says %s: \"false\"", MM_ADM_LABEL_INJECT);
        goto out;
    }
    if (!(label && strcmp(label, "true") == 0) && !(ann && strcmp(ann, "true") == 0) &&
        !opts->namespace_opted_in) {
        out->reason = MM_ADM_NOT_OPTED_IN;
        rc = set_message(out, "not injected: neither the pod nor its namespace has %s: \"true\"",
                         MM_ADM_LABEL_INJECT);
        goto out;
    }
    if (status && !opts->reinject) {
        out->reason = MM_ADM_ALREADY_INJECTED;
        rc = set_message(out, "not injected again: the pod carries %s", MM_ADM_ANN_STATUS);
        goto out;
    }
    if (!status && any_container_named(spec, MM_ADM_SIDECAR_NAME)) {
        out->reason = MM_ADM_ALREADY_INJECTED;
        adm_warn(&b, "the pod already has a container named %s but no %s annotation; left as is",
               MM_ADM_SIDECAR_NAME, MM_ADM_ANN_STATUS);
        rc = set_message(out, "not injected: a container named %s is already there",
                         MM_ADM_SIDECAR_NAME);
        goto out;
    }
    host_net = jget_type(spec, "hostNetwork", json_type_boolean);
    if (host_net && json_object_get_boolean(host_net)) {
        out->reason = MM_ADM_HOST_NETWORK;
        adm_warn(&b, "hostNetwork pods are not injected: the sidecar's ports would be the node's");
        rc = set_message(out, "not injected: the pod uses hostNetwork");
        goto out;
    }

    if (status) {
        /* re-injection: take the older injection out first, then inject the current one */
        json_object *prev_hash;
        mm_errbuf peb;
        status_json = json_tokener_parse(status);
        uninject_ops(&b, pod, status_json);
        un_text = b.ops; /* moved: b.ops starts again for the new injection */
        mm_buf_init(&b.ops, 0);
        if (b.oom || (rc = adm_patch_tree(&un_text, &un_ops)) != MM_OK) {
            rc = MM_ENOMEM;
            goto out;
        }
        if (json_object_deep_copy(pod, &cleaned, NULL) != 0) {
            rc = MM_ENOMEM;
            goto out;
        }
        if ((rc = mm_adm_patch_apply(&cleaned, un_ops, &peb)) != MM_OK) {
            if (rc == MM_ENOMEM)
                goto out;
            rc = MM_OK;
            out->reason = MM_ADM_INVALID;
            out->allowed = false;
            rc = set_message(out, "cannot take the older injection out: %s", peb.msg);
            goto out;
        }
        if ((rc = make_plan(&b, cleaned, cfg, opts, &pl, &ok)) != MM_OK)
            goto out;
        if (!ok) {
            out->reason = MM_ADM_INVALID;
            out->allowed = false;
            goto out;
        }
        if ((rc = build_patch(&b, cleaned, &pl, hash)) != MM_OK)
            goto out;
        prev_hash = jget_type(status_json, "hash", json_type_string);
        if (prev_hash && strcmp(json_object_get_string(prev_hash), hash) == 0) {
            out->reason = MM_ADM_ALREADY_INJECTED;
            mm_buf_reset(&b.explain);
            for (size_t i = 0; i < out->n_warnings; i++)
                mm_free(out->warnings[i]);
            out->n_warnings = 0;
            adm_explain(&b, "  status: up to date (%s)\n", hash);
            rc = set_message(out, "not injected again: the injection is up to date (%s)", hash);
            goto out;
        }
        /* uninject ops first, then the new injection */
        if (un_text.len && b.ops.len && (rc = mm_buf_putc(&un_text, ',')) != MM_OK)
            goto out;
        if ((rc = mm_buf_append(&un_text, b.ops.data, b.ops.len)) != MM_OK)
            goto out;
        mm_buf_free(&b.ops);
        b.ops = un_text;
        mm_buf_init(&un_text, 0);
        out->reason = MM_ADM_REINJECTED;
        rc = set_message(out, "re-injected %s (%s, replacing the injection of version %s)",
                         MM_ADM_SIDECAR_NAME, hash,
                         jget_str(status_json, "version") ? jget_str(status_json, "version")
                                                          : "unknown");
    } else {
        if ((rc = make_plan(&b, pod, cfg, opts, &pl, &ok)) != MM_OK)
            goto out;
        if (!ok) {
            out->reason = MM_ADM_INVALID;
            out->allowed = false;
            goto out;
        }
        if ((rc = build_patch(&b, pod, &pl, hash)) != MM_OK)
            goto out;
        out->reason = MM_ADM_INJECTED;
        rc = set_message(out, "injected %s (%s, upstream 127.0.0.1:%ld, %s)", MM_ADM_SIDECAR_NAME,
                         pl.mode == MM_ADM_MODE_IPTABLES ? "iptables" : "named-port",
                         pl.port.number, pl.native ? "native sidecar" : "classic sidecar");
    }
    if (rc == MM_OK && !b.oom && (out->reason == MM_ADM_INJECTED || out->reason == MM_ADM_REINJECTED)) {
        /* "[" ops "]", written in place: the ops buffer becomes the patch */
        if ((rc = mm_buf_putc(&b.ops, ']')) != MM_OK)
            goto out;
        memmove(b.ops.data + 1, b.ops.data, b.ops.len);
        b.ops.data[0] = '[';
        b.ops.len++;
        if (!opts->patch_text_only && (rc = adm_patch_tree(&b.ops, &out->patch)) != MM_OK)
            goto out;
        out->patch_len = b.ops.len;
        if (!(out->patch_json = mm_buf_steal(&b.ops, NULL)))
            rc = MM_ENOMEM;
    }
out:
    if (rc == MM_OK && b.oom)
        rc = MM_ENOMEM;
    if (rc == MM_OK && !opts->no_explain) {
        mm_buf head;
        mm_buf_init(&head, 0);
        if (mm_buf_printf(&head, "%s: %s\n", mm_adm_reason_name(out->reason),
                          out->message ? out->message : "") != MM_OK ||
            mm_buf_append(&head, b.explain.data ? b.explain.data : "", b.explain.len) != MM_OK ||
            !(out->explain = mm_buf_steal(&head, NULL))) {
            mm_buf_free(&head);
            rc = MM_ENOMEM;
        }
    }
    if (rc != MM_OK) {
        mm_adm_result_clear(out);
        if (rc == MM_ENOMEM)
            mm_errf(eb, rc, "out of memory while injecting");
    }
    mm_buf_free(&b.ops);
    mm_buf_free(&b.path);
    mm_buf_free(&b.val);
    mm_buf_free(&un_text);
    json_object_put(un_ops);
    json_object_put(cleaned);
    json_object_put(status_json);
    mm_buf_free(&b.explain);
    return rc;
}
