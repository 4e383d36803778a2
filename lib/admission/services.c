/* lib/admission: what the app speaks, as the Services that select the pod say it with
 * Kubernetes `appProtocol` (KEP-3726's kubernetes.io/h2c, and the values Istio reads: grpc,
 * grpc-web, http2, http). The injection asks this only when the pod's annotation has not
 * decided; the port name decides when no Service does. */
#include "admission/admission.h"
#include "admission/admission_int.h"

#include <strings.h>
#include <string.h>

adm_proto adm_app_protocol(const char *ap)
{
    /* Istio's protocol.Parse is case-insensitive; so are we. grpc-web is HTTP/2 there too. */
    static const char *const h2c[] = {"kubernetes.io/h2c", "grpc", "grpc-web", "http2"};
    static const char *const h1[] = {"http", "kubernetes.io/ws"};

    for (size_t i = 0; ap && i < MM_ARRAY_LEN(h2c); i++)
        if (strcasecmp(ap, h2c[i]) == 0)
            return ADM_PROTO_H2C;
    for (size_t i = 0; ap && i < MM_ARRAY_LEN(h1); i++)
        if (strcasecmp(ap, h1[i]) == 0)
            return ADM_PROTO_H1;
    return ADM_PROTO_UNSET; /* none, or not clear-text HTTP (https, tcp, tls, mysql, ...) */
}

/* A Service selects the pod when its selector is a non-empty map whose every pair is among
 * the pod's labels (a Service without a selector has hand-made Endpoints: it selects none). */
static bool selects(const json_object *svc, const json_object *labels)
{
    json_object *sel = jget_type(jget_type(svc, "spec", json_type_object), "selector",
                                 json_type_object);
    if (!sel || json_object_object_length(sel) == 0)
        return false;
    json_object_object_foreach(sel, k, v)
    {
        const char *want = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        const char *have = jget_str(labels, k);
        if (!want || !have || strcmp(want, have) != 0)
            return false;
    }
    return true;
}

/* Whether a Service port sends to the app port: targetPort a number equal to it, a name equal
 * to the container port's name, or absent (then it is `port`, as the API server defaults). */
static bool targets(const json_object *sp, const app_port *port)
{
    json_object *tp = jget(sp, "targetPort");
    json_object *p = jget_type(sp, "port", json_type_int);
    const char *proto = jget_str(sp, "protocol");

    if (proto && strcmp(proto, "TCP") != 0)
        return false;
    if (!tp)
        return p && json_object_get_int64(p) == port->number;
    if (json_object_is_type(tp, json_type_int))
        return json_object_get_int64(tp) == port->number;
    if (json_object_is_type(tp, json_type_string))
        return port->name && strcmp(json_object_get_string(tp), port->name) == 0;
    return false;
}

mm_err adm_services_protocol(const json_object *services, const json_object *pod,
                             const app_port *port, adm_proto *proto, bool *conflict, mm_buf *who)
{
    json_object *labels = jget_type(jget_type(pod, "metadata", json_type_object), "labels",
                                    json_type_object);
    size_t n = services && json_object_is_type((json_object *)services, json_type_array)
                   ? json_object_array_length(services)
                   : 0;
    mm_err rc;

    *proto = ADM_PROTO_UNSET;
    *conflict = false;
    for (size_t i = 0; labels && i < n; i++) {
        json_object *svc = json_object_array_get_idx(services, i);
        json_object *ports = jget_type(jget_type(svc, "spec", json_type_object), "ports",
                                       json_type_array);
        if (!selects(svc, labels))
            continue;
        for (size_t k = 0; ports && k < json_object_array_length(ports); k++) {
            json_object *sp = json_object_array_get_idx(ports, k);
            const char *ap = jget_str(sp, "appProtocol");
            adm_proto p = adm_app_protocol(ap);
            json_object *num = jget_type(sp, "port", json_type_int);
            if (p == ADM_PROTO_UNSET || !targets(sp, port))
                continue;
            if (*proto != ADM_PROTO_UNSET && p != *proto)
                *conflict = true;
            *proto = p;
            /* every Service port that decides is named, so a conflict names both sides */
            if ((who->len && (rc = mm_buf_puts(who, ", ")) != MM_OK) ||
                (rc = mm_buf_printf(who, "Service \"%s\" port %ld appProtocol \"%s\"",
                                    jget_str(jget_type(svc, "metadata", json_type_object), "name")
                                        ? jget_str(jget_type(svc, "metadata", json_type_object), "name")
                                        : "?",
                                    num ? (long)json_object_get_int64(num) : 0L, ap)) != MM_OK)
                return rc;
        }
    }
    return MM_OK;
}
