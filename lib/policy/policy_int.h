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

/* Diagnostics sink, implemented in model.c. */
mm_err diags_add(mm_diags *d, bool warning, const char *msg);

#endif
