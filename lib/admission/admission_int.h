/* lib/admission internal (shared by its files): a sticky-error json-c builder. Every constructor and insertion
 * is checked; the first failure sets `oom` and later calls free what they were handed, so a
 * long construction is written straight and checked once at the end. */
#ifndef MM_ADMISSION_INT_H
#define MM_ADMISSION_INT_H

#include <json-c/json.h>
#include <stdbool.h>

#include "admission/admission.h"
#include "common/common.h"

typedef struct {
    bool oom;
} jb;

static inline json_object *jb_chk(jb *c, json_object *o)
{
    if (!o)
        c->oom = true;
    return o;
}
static inline json_object *jb_obj(jb *c) { return jb_chk(c, json_object_new_object()); }
static inline json_object *jb_arr(jb *c) { return jb_chk(c, json_object_new_array()); }
static inline json_object *jb_str(jb *c, const char *s) { return jb_chk(c, json_object_new_string(s)); }
static inline json_object *jb_int(jb *c, long v) { return jb_chk(c, json_object_new_int64(v)); }
static inline json_object *jb_bool(jb *c, bool v) { return jb_chk(c, json_object_new_boolean(v)); }

/* Adds v (owned) to obj under k; frees v when obj is NULL or the insertion fails. k must be a
 * string constant: json-c keeps the pointer instead of a copy (a copy per key was a third of
 * the webhook's allocations). */
static inline void jb_set(jb *c, json_object *obj, const char *k, json_object *v)
{
    if (!obj || !v || json_object_object_add_ex(obj, k, v, JSON_C_OBJECT_KEY_IS_CONSTANT) != 0) {
        c->oom = true;
        json_object_put(v);
    }
}
static inline void jb_push(jb *c, json_object *arr, json_object *v)
{
    if (!arr || !v || json_object_array_add(arr, v) != 0) {
        c->oom = true;
        json_object_put(v);
    }
}

/* Borrowed lookups that tolerate NULL and wrong types. */
static inline json_object *jget(const json_object *o, const char *k)
{
    json_object *v = NULL;
    if (!o || !json_object_is_type((json_object *)o, json_type_object) ||
        !json_object_object_get_ex((json_object *)o, k, &v))
        return NULL;
    return v;
}
static inline json_object *jget_type(const json_object *o, const char *k, json_type t)
{
    json_object *v = jget(o, k);
    return v && json_object_is_type(v, t) ? v : NULL;
}
static inline const char *jget_str(const json_object *o, const char *k)
{
    json_object *v = jget_type(o, k, json_type_string);
    return v ? json_object_get_string(v) : NULL;
}

/* 1 for the bytes a JSON string holds as they are (not a control character, '"' or '\\'),
 * 0 for the others (jsonr.c). */
extern const unsigned char adm_json_plain[256];

#define ADM_JSON_DEPTH_MAX 64 /* nesting read; a pod needs about 12 */

/* Parses one JSON text (RFC 8259, strict: no comments, trailing commas or bare words) into a
 * json-c tree (caller puts it). `skip`, NULL or NULL-terminated: paths like
 * "request/object/metadata/managedFields" whose members are checked but not built. Errors
 * name the byte: `not JSON at byte 12: expected ',' or '}'` (jsonr.c). */
mm_err adm_json_parse(const char *s, size_t len, const char *const *skip, json_object **out,
                      mm_errbuf *eb);
/* The same, with the object keys of the tree in one block *keys (caller frees it with mm_free,
 * after putting the tree): json-c keeps pointers into it instead of a copy per member (a third
 * of a review's allocations). Subtrees taken from the tree must not outlive *keys. */
mm_err adm_json_parse_keys(const char *s, size_t len, const char *const *skip, json_object **out,
                           char **keys, mm_errbuf *eb);

/* Appends v as compact JSON, exactly as json_object_to_json_string_ext(v,
 * JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) writes it (jsonw.c). */
mm_err adm_json_put(mm_buf *out, const json_object *v);
/* Writes the base64 (RFC 4648, padded) of in[0..n) and a NUL to out, which holds
 * 4 * ((n + 2) / 3) + 1 bytes; returns the length without the NUL (jsonw.c). */
size_t adm_base64(char *out, const unsigned char *in, size_t n);

/* ---- the injection's plan (inject.c decides it, sidecar.c builds from it) ------------------- */

/* The port the sidecar fronts: where it is declared (container and port index, -1 when
 * nowhere), its number and name. */
typedef struct {
    long number;
    const char *name; /* borrowed from the pod; NULL when unnamed */
    long container;   /* index in spec.containers, -1 if undeclared */
    long port_index;
    bool guessed;     /* nothing declared: 8080 assumed */
} app_port;

/* What the injection adds, decided from the pod and the config. */
typedef struct {
    const mm_adm_config *cfg;
    mm_adm_mode mode;
    bool native;
    const char *cpu_request, *memory_request, *memory_limit, *cpu_limit;
    app_port port;
    const char *proxy_port_name;
    bool upstream_h2c; /* the app speaks h2c: the annotation, else the port's name says so */
    char vol_policies[64], vol_podinfo[64], vol_keys[64];
} adm_plan;

/* What a Service's appProtocol says the app speaks (services.c). */
typedef enum { ADM_PROTO_UNSET = 0, ADM_PROTO_H1, ADM_PROTO_H2C } adm_proto;

/* kubernetes.io/h2c, grpc, grpc-web, http2: h2c; http, kubernetes.io/ws: h1 (any case);
 * anything else (none, https, tcp, ...) does not say how to speak clear-text HTTP: unset. */
adm_proto adm_app_protocol(const char *app_protocol);
/* Of `services` (a JSON array of Service objects; NULL: none), those whose non-empty
 * spec.selector matches the pod's labels; of their TCP ports, those whose targetPort (a
 * number, the container port's name, or absent: `port`) is the app port and whose
 * appProtocol says something: *proto is what they say, *conflict when they disagree, and
 * `who` lists them for messages. Errors: MM_ENOMEM only. */
mm_err adm_services_protocol(const json_object *services, const json_object *pod,
                             const app_port *port, adm_proto *proto, bool *conflict,
                             mm_buf *who);

/* The sidecar container, the iptables init container and a volume of kind configMap, secret
 * (source: its name) or downwardAPI (the pod's labels), for the plan (sidecar.c). */
json_object *adm_sidecar_container(jb *j, const adm_plan *pl);
json_object *adm_init_container(jb *j, const adm_plan *pl);
json_object *adm_volume(jb *j, const char *name, const char *kind, const char *source);

#endif
