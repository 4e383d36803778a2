/* lib/policy: reading YAML (libyaml events) and JSON (json-c) into one small tree that
 * remembers where each value was written, so validation can name line and column. */
#include "policy/policy_int.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- arena ---------------------------------------------------------------------------- */

#define ARENA_BLOCK (32u << 10)

typedef struct block {
    struct block *next;
    size_t used, cap;
    max_align_t data[];
} block;

struct arena {
    block *head;
    size_t nodes; /* nodes made, bounded by NODE_MAX_COUNT */
};

mm_err arena_new(arena **out)
{
    arena *a = mm_calloc(1, sizeof(*a));
    if (!a)
        return MM_ENOMEM;
    *out = a;
    return MM_OK;
}

void arena_free(arena *a)
{
    block *b, *next;
    if (!a)
        return;
    for (b = a->head; b; b = next) {
        next = b->next;
        mm_free(b);
    }
    mm_free(a);
}

void *arena_alloc(arena *a, size_t n)
{
    block *b = a->head;
    void *p;

    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = mm_malloc(sizeof(*b) + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static node *node_new(arena *a, node_kind kind, unsigned line, unsigned col)
{
    node *n;
    if (a->nodes >= NODE_MAX_COUNT)
        return NULL;
    if (!(n = arena_alloc(a, sizeof(*n))))
        return NULL;
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = line;
    n->col = col;
    a->nodes++;
    return n;
}

node *node_get(const node *map, const char *key)
{
    if (!map || map->kind != NODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (strcmp(map->items[i]->text, key) == 0)
            return map->items[i + 1];
    return NULL;
}

/* ---- YAML ----------------------------------------------------------------------------- */

/* The YAML 1.2 core schema's types for plain scalars. */
static scalar_type plain_type(const char *s, size_t n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
    size_t i = 0;
    bool digits = false, dot = false, exp = false;

    for (size_t k = 0; k < MM_ARRAY_LEN(nulls); k++)
        if (strcmp(s, nulls[k]) == 0)
            return SC_NULL;
    for (size_t k = 0; k < MM_ARRAY_LEN(bools); k++)
        if (strcmp(s, bools[k]) == 0)
            return SC_BOOL;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    for (; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits = true;
        else if (s[i] == '.' && !dot && !exp)
            dot = true;
        else if ((s[i] == 'e' || s[i] == 'E') && digits && !exp) {
            exp = true;
            if (i + 1 < n && (s[i + 1] == '-' || s[i + 1] == '+'))
                i++;
        } else
            return SC_STRING;
    }
    if (!digits)
        return SC_STRING;
    return dot || exp ? SC_FLOAT : SC_INT;
}

/* A container being filled while its events arrive. */
typedef struct {
    node *n;
    node **items;
    size_t len, cap;
} open_node;

static mm_err push_item(open_node *o, node *child)
{
    if (o->len == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        node **items = mm_realloc(o->items, cap * sizeof(*items));
        if (!items)
            return MM_ENOMEM;
        o->items = items;
        o->cap = cap;
    }
    o->items[o->len++] = child;
    return MM_OK;
}

/* Keys of one mapping, sorted by text then by position, so duplicates sit side by side:
 * O(n log n) where comparing every pair would let one large mapping stall the parser. */
static int key_cmp(const void *x, const void *y)
{
    const node *a = *(const node *const *)x, *b = *(const node *const *)y;
    int c = strcmp(a->text, b->text);
    if (c)
        return c;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    return a->col < b->col ? -1 : a->col > b->col;
}

static mm_err check_map_keys(const open_node *o, const char *filename, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    size_t pairs = o->len / 2;
    node **keys = NULL;

    for (size_t i = 0; i < o->len; i += 2)
        if (o->items[i]->kind != NODE_SCALAR)
            return mm_errf(eb, MM_EPARSE, "%s:%u:%u: a mapping key must be a scalar", filename,
                           o->items[i]->line, o->items[i]->col);
    if (pairs < 2)
        return MM_OK;
    if (!(keys = mm_malloc(pairs * sizeof(*keys))))
        return mm_errf(eb, MM_ENOMEM, "%s: out of memory", filename);
    for (size_t i = 0; i < pairs; i++)
        keys[i] = o->items[2 * i];
    qsort(keys, pairs, sizeof(*keys), key_cmp);
    for (size_t i = 1; i < pairs; i++)
        if (strcmp(keys[i - 1]->text, keys[i]->text) == 0) {
            rc = mm_errf(eb, MM_EPARSE, "%s:%u:%u: duplicate key \"%.64s\" (first at %u:%u)",
                         filename, keys[i]->line, keys[i]->col, keys[i]->text, keys[i - 1]->line,
                         keys[i - 1]->col);
            break;
        }
    mm_free(keys);
    return rc;
}

/* A scalar's type: YAML core-schema tags where given, else quoted means string and plain
 * scalars follow the YAML 1.2 core schema (so `on`, `yes` and `no` stay strings). */
static scalar_type yaml_scalar_type(const yaml_event_t *ev, const char *text, size_t len)
{
    static const struct {
        const char *tag;
        scalar_type type;
    } tags[] = {{YAML_STR_TAG, SC_STRING}, {YAML_INT_TAG, SC_INT}, {YAML_FLOAT_TAG, SC_FLOAT},
                {YAML_BOOL_TAG, SC_BOOL},  {YAML_NULL_TAG, SC_NULL}};
    const char *tag = (const char *)ev->data.scalar.tag;
    scalar_type t;

    if (!tag)
        return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_type(text, len) : SC_STRING;
    for (size_t i = 0; i < MM_ARRAY_LEN(tags); i++)
        if (strcmp(tag, tags[i].tag) == 0) {
            if (tags[i].type == SC_STRING)
                return SC_STRING;
            /* !!int 8080 is an int; !!int "x" is not, so it stays a string and fails
             * wherever a number is required */
            t = plain_type(text, len);
            return t == tags[i].type || (tags[i].type == SC_FLOAT && t == SC_INT) ? tags[i].type
                                                                                   : SC_STRING;
        }
    return SC_STRING; /* "!" and local tags: the text as written */
}

mm_err node_parse_yaml(arena *a, const char *text, size_t len, const char *filename,
                       node ***docs_out, size_t *n_docs, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    yaml_parser_t parser;
    yaml_event_t ev;
    open_node stack[NODE_MAX_DEPTH + 1];
    size_t depth = 0; /* stack[0] collects documents */
    bool done = false, have_event = false;

    memset(stack, 0, sizeof(stack));
    if (!yaml_parser_initialize(&parser))
        return mm_errf(eb, MM_ENOMEM, "%s: out of memory", filename);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

    while (!done) {
        node *n = NULL;
        unsigned line, col;

        if (!yaml_parser_parse(&parser, &ev)) {
            rc = mm_errf(eb, parser.error == YAML_MEMORY_ERROR ? MM_ENOMEM : MM_EPARSE,
                         "%s:%zu:%zu: YAML: %s%s%s", filename, parser.problem_mark.line + 1,
                         parser.problem_mark.column + 1, parser.problem ? parser.problem : "error",
                         parser.context ? " " : "", parser.context ? parser.context : "");
            goto out;
        }
        have_event = true;
        line = (unsigned)ev.start_mark.line + 1;
        col = (unsigned)ev.start_mark.column + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_ALIAS_EVENT:
            rc = mm_errf(eb, MM_EPARSE, "%s:%u:%u: YAML aliases (*%s) are not supported in "
                         "policies; write the value out", filename, line, col,
                         (const char *)ev.data.alias.anchor);
            goto out;
        case YAML_SCALAR_EVENT: {
            const char *s = (const char *)ev.data.scalar.value;
            size_t slen = ev.data.scalar.length;
            if (!(n = node_new(a, NODE_SCALAR, line, col)) ||
                !(n->text = arena_strndup(a, s, slen)))
                goto nomem_or_limit;
            n->len = slen;
            n->type = yaml_scalar_type(&ev, n->text, slen);
            break;
        }
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (depth >= NODE_MAX_DEPTH) {
                rc = mm_errf(eb, MM_ELIMIT, "%s:%u:%u: nesting deeper than %d levels", filename,
                             line, col, NODE_MAX_DEPTH);
                goto out;
            }
            if (!(n = node_new(a, ev.type == YAML_MAPPING_START_EVENT ? NODE_MAP : NODE_SEQ,
                               line, col)))
                goto nomem_or_limit;
            stack[++depth] = (open_node){.n = n};
            n = NULL; /* attached to its parent when it ends */
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT: {
            open_node *o = &stack[depth];
            n = o->n;
            n->n = o->len;
            if (o->len) {
                if (!(n->items = arena_alloc(a, o->len * sizeof(node *))))
                    goto nomem_or_limit;
                memcpy(n->items, o->items, o->len * sizeof(node *));
            }
            if (n->kind == NODE_MAP && (rc = check_map_keys(o, filename, eb)) != MM_OK)
                goto out;
            mm_free(o->items);
            *o = (open_node){0};
            depth--;
            break;
        }
        default:
            break;
        }
        if (n && (rc = push_item(&stack[depth], n)) != MM_OK)
            goto out;
        yaml_event_delete(&ev);
        have_event = false;
    }
    /* Documents that are empty (a lone "---", a trailing one) hold a null scalar. */
    {
        open_node *o = &stack[0];
        size_t k = 0;
        for (size_t i = 0; i < o->len; i++)
            if (!(o->items[i]->kind == NODE_SCALAR && o->items[i]->type == SC_NULL))
                o->items[k++] = o->items[i];
        *n_docs = k;
        if (!(*docs_out = arena_alloc(a, (k ? k : 1) * sizeof(node *))))
            goto nomem_or_limit;
        if (k)
            memcpy(*docs_out, o->items, k * sizeof(node *));
    }
    goto out;

nomem_or_limit:
    rc = a->nodes >= NODE_MAX_COUNT
             ? mm_errf(eb, MM_ELIMIT, "%s: more than %d values; a policy file is not that large",
                       filename, NODE_MAX_COUNT)
             : mm_errf(eb, MM_ENOMEM, "%s: out of memory", filename);
out:
    if (have_event)
        yaml_event_delete(&ev);
    for (size_t i = 0; i <= NODE_MAX_DEPTH; i++)
        mm_free(stack[i].items);
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- JSON ----------------------------------------------------------------------------- */

static mm_err from_json(arena *a, const struct json_object *obj, unsigned depth, node **out)
{
    mm_err rc;
    node *n;
    json_type t = json_object_get_type(obj);

    if (depth > NODE_MAX_DEPTH)
        return MM_ELIMIT;
    if (t == json_type_object) {
        struct lh_table *tab = json_object_get_object(obj);
        size_t count = (size_t)json_object_object_length(obj), i = 0;
        if (!(n = node_new(a, NODE_MAP, 0, 0)))
            return a->nodes >= NODE_MAX_COUNT ? MM_ELIMIT : MM_ENOMEM;
        if (count && !(n->items = arena_alloc(a, 2 * count * sizeof(node *))))
            return MM_ENOMEM;
        for (struct lh_entry *e = tab->head; e; e = e->next) {
            const char *k = (const char *)lh_entry_k(e);
            node *kn = node_new(a, NODE_SCALAR, 0, 0);
            if (!kn)
                return a->nodes >= NODE_MAX_COUNT ? MM_ELIMIT : MM_ENOMEM;
            if (!(kn->text = arena_strndup(a, k, strlen(k))))
                return MM_ENOMEM;
            kn->len = strlen(k);
            kn->type = SC_STRING;
            n->items[i++] = kn;
            if ((rc = from_json(a, (const struct json_object *)lh_entry_v(e), depth + 1,
                                &n->items[i++])) != MM_OK)
                return rc;
        }
        n->n = i;
    } else if (t == json_type_array) {
        size_t count = json_object_array_length(obj);
        if (!(n = node_new(a, NODE_SEQ, 0, 0)))
            return a->nodes >= NODE_MAX_COUNT ? MM_ELIMIT : MM_ENOMEM;
        if (count && !(n->items = arena_alloc(a, count * sizeof(node *))))
            return MM_ENOMEM;
        for (size_t i = 0; i < count; i++)
            if ((rc = from_json(a, json_object_array_get_idx(obj, i), depth + 1, &n->items[i])) !=
                MM_OK)
                return rc;
        n->n = count;
    } else {
        const char *s;
        size_t len;
        if (!(n = node_new(a, NODE_SCALAR, 0, 0)))
            return a->nodes >= NODE_MAX_COUNT ? MM_ELIMIT : MM_ENOMEM;
        switch (t) {
        case json_type_string:
            s = json_object_get_string((struct json_object *)obj);
            len = (size_t)json_object_get_string_len(obj);
            n->type = SC_STRING;
            break;
        case json_type_null:
            s = "null";
            len = 4;
            n->type = SC_NULL;
            break;
        default: /* int, double, boolean: their JSON spelling */
            s = json_object_to_json_string_ext((struct json_object *)obj, JSON_C_TO_STRING_PLAIN);
            len = strlen(s);
            n->type = t == json_type_boolean ? SC_BOOL : t == json_type_int ? SC_INT : SC_FLOAT;
        }
        if (!(n->text = arena_strndup(a, s, len)))
            return MM_ENOMEM;
        n->len = len;
    }
    *out = n;
    return MM_OK;
}

mm_err node_from_json_object(arena *a, const struct json_object *obj, node **out, mm_errbuf *eb)
{
    mm_err rc = from_json(a, obj, 0, out);
    if (rc == MM_ELIMIT)
        return mm_errf(eb, rc, "the object is nested deeper than %d levels or holds more than %d "
                       "values", NODE_MAX_DEPTH, NODE_MAX_COUNT);
    if (rc != MM_OK)
        return mm_errf(eb, rc, "out of memory");
    return MM_OK;
}

mm_err node_parse_json(arena *a, const char *text, size_t len, const char *filename, node **root,
                       mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    struct json_tokener *tok = json_tokener_new_ex(NODE_MAX_DEPTH);
    struct json_object *obj = NULL;
    enum json_tokener_error jerr;
    size_t off;

    if (!tok)
        return mm_errf(eb, MM_ENOMEM, "%s: out of memory", filename);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT); /* no trailing commas, no NaN */
    if (len > (size_t)INT32_MAX) {
        rc = mm_errf(eb, MM_ELIMIT, "%s: too large", filename);
        goto out;
    }
    obj = json_tokener_parse_ex(tok, text, (int)len);
    jerr = json_tokener_get_error(tok);
    off = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        rc = mm_errf(eb, MM_EPARSE, "%s: JSON: offset %zu: unexpected end of input", filename, len);
        goto out;
    }
    if (jerr != json_tokener_success) {
        rc = mm_errf(eb, MM_EPARSE, "%s: JSON: offset %zu: %s", filename, off,
                     json_tokener_error_desc(jerr));
        goto out;
    }
    for (; off < len; off++)
        if (!strchr(" \t\r\n", text[off])) {
            rc = mm_errf(eb, MM_EPARSE, "%s: JSON: offset %zu: unexpected data after the value",
                         filename, off);
            goto out;
        }
    if ((rc = node_from_json_object(a, obj, root, eb)) != MM_OK)
        mm_errprefix(eb, "%s", filename);
out:
    json_object_put(obj);
    json_tokener_free(tok);
    return rc;
}

/* ---- back to JSON --------------------------------------------------------------------- */

static mm_err to_json(const node *n, mm_buf *b)
{
    mm_err rc = MM_OK;
    switch (n->kind) {
    case NODE_MAP:
    case NODE_SEQ:
        if ((rc = mm_buf_putc(b, n->kind == NODE_MAP ? '{' : '[')) != MM_OK)
            return rc;
        for (size_t i = 0; i < n->n && rc == MM_OK; i++) {
            if (i)
                rc = mm_buf_putc(b, n->kind == NODE_MAP && i % 2 ? ':' : ',');
            if (rc == MM_OK && n->kind == NODE_MAP && i % 2 == 0)
                rc = mm_buf_put_json_str(b, n->items[i]->text, n->items[i]->len);
            else if (rc == MM_OK)
                rc = to_json(n->items[i], b);
        }
        return rc == MM_OK ? mm_buf_putc(b, n->kind == NODE_MAP ? '}' : ']') : rc;
    case NODE_SCALAR:
        /* NetworkPolicyPeer has only string leaves (label keys and values, operators,
         * CIDRs): YAML's `version: 2` becomes "2", as the API server would require */
        if (n->type == SC_NULL)
            return mm_buf_puts(b, "null");
        return mm_buf_put_json_str(b, n->text, n->len);
    }
    return MM_EINVAL;
}

mm_err node_to_json(const node *n, char **out)
{
    mm_buf b;
    mm_err rc;
    mm_buf_init(&b, NODE_JSON_MAX);
    if ((rc = to_json(n, &b)) != MM_OK) {
        mm_buf_free(&b);
        return rc;
    }
    if (!(*out = mm_buf_steal(&b, NULL)))
        return MM_ENOMEM;
    return MM_OK;
}
