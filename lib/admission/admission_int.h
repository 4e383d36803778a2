/* lib/admission internal (shared by its files): json-c lookups, the JSON text writer the
 * injection writes its patch with, the reader, and the injection's plan. */
#ifndef MM_ADMISSION_INT_H
#define MM_ADMISSION_INT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <string.h>

#include "admission/admission.h"
#include "common/common.h"

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
/* The same, but `keep` (NULL-terminated, not NULL) lists what is built: a member on a path is
 * built, all of it when the path ends there, else only the parts the longer paths name; the
 * other members are checked and left out. An array's elements are always built (indices hold),
 * each with what the paths through `*` name. Errors and what is accepted: as adm_json_parse. */
mm_err adm_json_parse_only(const char *s, size_t len, const char *const *keep, json_object **out,
                           char **keys, mm_errbuf *eb);
/* What mm_adm_review_parse_pod builds of a review: the keep paths (review.c). */
extern const char *const adm_mutate_keep[];

/* A sticky-error JSON text writer: the first failure is kept in rc and later calls do
 * nothing, so a long piece of JSON is written straight and checked once at the end. The
 * patch is written this way as text, never built as json-c objects (building, writing and
 * freeing those was most of a review's cost). Output is compact, as adm_json_put writes. */
typedef struct {
    mm_buf *b;
    mm_err rc;
} jw;

/* Appends s as it is (JSON syntax and constant strings that need no escaping). */
static inline void jw_raw(jw *w, const char *s, size_t n)
{
    if (w->rc == MM_OK)
        w->rc = mm_buf_append(w->b, s, n);
}
static inline void jw_lit(jw *w, const char *s) { jw_raw(w, s, strlen(s)); }
void jw_str(jw *w, const char *s);  /* a JSON string literal, escaped (adm_json_str) */
void jw_int(jw *w, long v);         /* as json-c writes an int64 */
/* v in decimal, as printf's %ld writes it, and a NUL; returns the length (snprintf was a
 * tenth of writing a patch) */
size_t adm_ltoa(char out[24], long v);
static inline void jw_bool(jw *w, bool v) { jw_lit(w, v ? "true" : "false"); }

/* Appends s[0..n) as a JSON string literal, escaped as json-c escapes it with
 * JSON_C_TO_STRING_NOSLASHESCAPE: the one escaping function of what the webhook writes. */
mm_err adm_json_str(mm_buf *out, const char *s, size_t n);

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

/* The sidecar container, the iptables init container, and volume i (0 policies, 1 podinfo,
 * 2 keys; ADM_VOLUMES in all) of the plan, as JSON text (sidecar.c). */
#define ADM_VOLUMES 3
void adm_sidecar_json(jw *w, const adm_plan *pl);
void adm_init_json(jw *w, const adm_plan *pl);
void adm_volume_json(jw *w, const adm_plan *pl, int i);

/* ---- the injection's builder (ops.c) -------------------------------------------------------- */

typedef struct {
    mm_buf ops;      /* the patch's operations as JSON text, comma-separated, no brackets */
    mm_buf path;     /* scratch: an operation's JSON Pointer */
    mm_buf val;      /* scratch: a value being written (b_val_*) */
    mm_adm_result *res;
    mm_buf explain;
    bool no_explain; /* the text is not wanted: skip formatting it */
    bool oom;
} adm_builder;

/* `maskmesh: <fmt>` appended to the result's warnings (and the explain text) */
void adm_warn(adm_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* a line of the explain text, unless no_explain */
void adm_explain(adm_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends {"op":op,"path":<segments>,"value":v} to b->ops; v is JSON text (NULL for remove),
 * often b->val. The segments are NULL-terminated and escaped here. */
void adm_op(adm_builder *b, const char *op, const mm_buf *v, ...);
jw adm_val(adm_builder *b); /* b->val, emptied, as a writer for the next value */
const mm_buf *adm_val_str(adm_builder *b, const char *s); /* b->val holding a string */
const mm_buf *adm_val_int(adm_builder *b, long n);        /* b->val holding a number */
void adm_idx(char out[24], size_t i);                      /* an array index as a segment */
/* "sha256:" and the first 16 hex digits of the SHA-256 of s (the status hash) */
mm_err adm_hash(const mm_buf *s, char out[72]);
/* Parses ops, the operations' text (comma-separated, with or without the brackets), into
 * a json-c array. The text is ours and valid: a failure is out of memory. */
mm_err adm_patch_tree(const mm_buf *ops, json_object **out);

#endif
