/* lib/policy internals: a small document tree that both the YAML and the JSON readers
 * produce, so one builder validates both and names places the same way. */
#ifndef MM_POLICY_INT_H
#define MM_POLICY_INT_H

#include "policy/policy.h"

/* Bounds on a document tree: a policy file is small; anything past these is hostile. */
#define NODE_MAX_COUNT 200000
#define NODE_MAX_DEPTH 64
#define NODE_JSON_MAX  (1u << 20) /* node_to_json output (allowFrom) */

typedef enum { NODE_MAP, NODE_SEQ, NODE_SCALAR } node_kind;

/* What a scalar was written as. YAML plain scalars are typed by the core schema; quoted
 * ones are strings; JSON values keep their JSON type. */
typedef enum { SC_STRING, SC_INT, SC_FLOAT, SC_BOOL, SC_NULL } scalar_type;

typedef struct node node;
struct node {
    node_kind kind;
    scalar_type type; /* NODE_SCALAR */
    unsigned line, col; /* 1-based; 0 for JSON (no positions) */
    char *text;         /* NODE_SCALAR: NUL-terminated */
    size_t len;
    node **items; /* NODE_SEQ: items; NODE_MAP: keys at even, values at odd indexes */
    size_t n;     /* items (a map holds n/2 pairs) */
};

/* An arena owns every node and string of one parsed file. */
typedef struct arena arena;
mm_err arena_new(arena **out);
void arena_free(arena *a);
void *arena_alloc(arena *a, size_t n);

/* Parses YAML (every document of a stream) or JSON into roots. `docs` is arena memory. */
mm_err node_parse_yaml(arena *a, const char *text, size_t len, const char *filename,
                       node ***docs, size_t *n_docs, mm_errbuf *eb);
mm_err node_parse_json(arena *a, const char *text, size_t len, const char *filename,
                       node **root, mm_errbuf *eb);
/* A json-c object as a tree (no positions). */
mm_err node_from_json_object(arena *a, const struct json_object *obj, node **out, mm_errbuf *eb);

/* The value of `key` in a map, or NULL. */
node *node_get(const node *map, const char *key);
/* Compact JSON for a subtree (allowFrom); every scalar but null becomes a JSON string, as
 * NetworkPolicyPeer fields are all strings. MM_ELIMIT past NODE_JSON_MAX bytes. Caller
 * frees with mm_free. */
mm_err node_to_json(const node *n, char **out);

/* spec.streams (streams.c). Errors go to `bad` with the node, the field below
 * spec.streams (NULL: streams itself) and the message; build.c adds the place. */
typedef struct {
    void (*bad)(void *ctx, const node *n, const char *sub, const char *msg);
    void *ctx;
    size_t errors;
    bool oom;
} streams_sink;
mm_policy_streams *streams_build(const node *n, streams_sink *s); /* NULL on any error */
void streams_free(mm_policy_streams *st);

/* Diagnostics sink, implemented in model.c. */
mm_err diags_add(mm_diags *d, bool warning, const char *msg);

/* ---- the model (model.c, build.c, check.c, load.c) ------------------------------------ */

/* Bounds on lists that policy.h does not name; a policy past them is hostile or a mistake. */
#define MAX_DETECTORS     32  /* per rule */
#define MAX_PATTERNS      64  /* per rule */
#define MAX_CONTENT_TYPES 32  /* per rule */
#define MAX_EXPRESSIONS   64  /* matchExpressions per selector */
#define MAX_SEL_VALUES    256 /* values per expression */
#define MAX_EXEMPTIONS    64
#define MAX_PRINCIPALS    256 /* per exemption */
#define MAX_PEERS         256 /* network.allowFrom */
#define MAX_EXCEPT        64  /* ipBlock.except */
#define LABEL_NAME_MAX    63
#define RULE_NAME_MAX     63
#define PORT_NAME_MAX     15
#define SECRET_KEY_MAX    253

struct mm_policy_set {
    mm_policy **items;
    size_t n;
};

/* model.c */
void action_clear(mm_action *a);
void selector_clear(mm_selector *s);

/* check.c: the builder's state and primitives. Problems are collected (bad), never fatal:
 * every error of a file is reported at once. */
typedef struct {
    const char *file;
    mm_diags *diags;
    mm_errbuf *eb;
    size_t errors;
    bool oom;
    mm_buf path; /* the field path of the node being read, e.g. spec.rules[2].action */
} bctx;

void bad(bctx *c, const node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Field path segments: push returns the length to pop back to. */
size_t push(bctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t push_key(bctx *c, const char *key);
void pop(bctx *c, size_t old);
/* Typed values: each reports a problem naming `what` or the expected kind. */
char *want_str(bctx *c, const node *n, const char *what);
bool want_int(bctx *c, const node *n, long min, long max, long *out);
bool want_bool(bctx *c, const node *n, bool *out);
bool check_keys(bctx *c, const node *map, const char *const *known);
bool is_map(bctx *c, const node *n);
bool is_seq(bctx *c, const node *n, size_t max);
bool str_list(bctx *c, const node *n, size_t max, const char *what, char ***out, size_t *count);
/* grpc.c: spec.grpc into p->grpc (errors reported through c) */
void grpc_build(bctx *c, const node *n, mm_policy *p);
void grpc_free(mm_policy_grpc *g);
bool dns_subdomain(const char *s);
bool dns_label(const char *s);
bool rule_name_ok(const char *s);
bool port_name_ok(const char *s);
bool label_name_ok(const char *s, size_t n, bool empty_ok);
bool label_key_ok(const char *s);
bool http_token(const char *s);
bool secret_key_ok(const char *s);
bool one_utf8_char(const char *str);
bool cidr_ok(const char *s);
bool media_type_ok(const char *s);
/* encrypt.c: an encrypt action's fields, and what it takes from its rule (the rule's name
 * as tweak, card handling for credit_card rules). */
void build_encrypt(bctx *c, const node *n, mm_action *a);
void rule_encrypt_defaults(bctx *c, const mm_rule *r, mm_action *a, const node *n);
/* model.c: for an unknown detector name, the built-in it most likely meant, or where the
 * list is (static storage, per thread). */
const char *policy_detector_hint(const char *name);
/* model.c: does one of the rule's detectors take member names as evidence? */
bool policy_rule_reads_members(const mm_rule *r);
/* build.c: one policy from its document; NULL (with problems reported) when invalid. */
mm_policy *build_policy(bctx *c, const node *root);

#endif
