/* lib/policy: the entry points — YAML, JSON and json-c objects into validated policies and
 * policy sets. */
#include "policy/policy_int.h"

#include <string.h>

static mm_err set_add(mm_policy_set *s, mm_policy *p, size_t *cap)
{
    if (s->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        mm_policy **items = mm_realloc(s->items, ncap * sizeof(*items));
        if (!items)
            return MM_ENOMEM;
        s->items = items;
        *cap = ncap;
    }
    s->items[s->n++] = p;
    return MM_OK;
}

/* One root: a policy, a list of them, or a List with items. `where` prefixes paths. */
static mm_err build_root(bctx *c, const node *root, mm_policy_set *set, size_t *cap)
{
    const node *items = NULL, *kind = node_get(root, "kind");
    const char *prefix = "";

    if (root->kind == NODE_SEQ) {
        items = root;
    } else if (kind && kind->kind == NODE_SCALAR &&
               (strcmp(kind->text, "List") == 0 || strcmp(kind->text, "MaskingPolicyList") == 0)) {
        items = node_get(root, "items");
        prefix = "items";
        if (!items || items->kind != NODE_SEQ) {
            bad(c, root, "a List needs items: a list of MaskingPolicy objects");
            return MM_OK;
        }
    }
    if (!items) {
        mm_policy *p = build_policy(c, root);
        if (p && set_add(set, p, cap) != MM_OK) {
            mm_policy_free(p);
            return MM_ENOMEM;
        }
        return c->oom ? MM_ENOMEM : MM_OK;
    }
    for (size_t i = 0; i < items->n; i++) {
        /* the item's own fields follow: "items[2].spec.rules[0]..." */
        size_t old = push(c, "%s[%zu]", prefix, i);
        mm_policy *p = build_policy(c, items->items[i]);
        pop(c, old);
        if (p && set_add(set, p, cap) != MM_OK) {
            mm_policy_free(p);
            return MM_ENOMEM;
        }
        if (c->oom)
            return MM_ENOMEM;
    }
    return MM_OK;
}

static mm_err finish(bctx *c, mm_policy_set *set, mm_policy_set **out, mm_err rc)
{
    /* Two policies of one name in one namespace would shadow each other in the ConfigMap. */
    for (size_t i = 0; rc == MM_OK && i < set->n; i++)
        for (size_t j = 0; j < i; j++) {
            const mm_policy *a = set->items[i], *b = set->items[j];
            if (strcmp(a->name, b->name) == 0 &&
                strcmp(a->ns ? a->ns : "", b->ns ? b->ns : "") == 0) {
                pop(c, 0);
                bad(c, NULL, "two policies are named \"%s\"%s%s", a->name, a->ns ? " in namespace " : "",
                    a->ns ? a->ns : "");
                break;
            }
        }
    if (rc == MM_OK && c->oom)
        rc = MM_ENOMEM;
    if (rc == MM_ENOMEM)
        mm_errf(c->eb, rc, "%s: out of memory", c->file);
    if (rc == MM_OK && c->errors)
        rc = MM_EINVAL;
    if (rc == MM_OK && set->n == 0) {
        rc = MM_EINVAL;
        bad(c, NULL, "no MaskingPolicy in the input");
    }
    if (rc == MM_OK) {
        *out = set;
        set = NULL;
    }
    mm_policy_set_free(set);
    mm_buf_free(&c->path);
    return rc;
}

static mm_err parse_any(const char *text, size_t len, const char *filename, bool json,
                        mm_policy_set **out, mm_diags *diags, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    arena *a = NULL;
    node **docs = NULL, *root = NULL;
    size_t n_docs = 0, cap = 0;
    mm_policy_set *set = NULL;
    bctx c = {.file = filename ? filename : "-", .diags = diags, .eb = eb};
    mm_errbuf local;

    mm_buf_init(&c.path, 4096);
    if (!c.eb)
        c.eb = &local;
    if ((rc = arena_new(&a)) != MM_OK || !(set = mm_calloc(1, sizeof(*set)))) {
        rc = MM_ENOMEM;
        goto out;
    }
    if (json) {
        rc = node_parse_json(a, text, len, c.file, &root, c.eb);
        docs = &root;
        n_docs = 1;
    } else {
        rc = node_parse_yaml(a, text, len, c.file, &docs, &n_docs, c.eb);
    }
    if (rc != MM_OK) {
        if (rc != MM_ENOMEM && diags_add(diags, false, c.eb->msg) != MM_OK)
            rc = MM_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n_docs && rc == MM_OK; i++)
        rc = build_root(&c, docs[i], set, &cap);
out:
    rc = finish(&c, set, out, rc);
    arena_free(a);
    return rc;
}

mm_err mm_policy_parse_yaml(const char *text, size_t len, const char *filename,
                            mm_policy_set **out, mm_diags *diags, mm_errbuf *eb)
{
    return parse_any(text, len, filename, false, out, diags, eb);
}

mm_err mm_policy_parse_json(const char *text, size_t len, const char *filename,
                            mm_policy_set **out, mm_diags *diags, mm_errbuf *eb)
{
    return parse_any(text, len, filename, true, out, diags, eb);
}

mm_err mm_policy_load(const char *path, mm_policy_set **out, mm_diags *diags, mm_errbuf *eb)
{
    mm_err rc;
    char *text = NULL;
    size_t len = 0, i = 0;
    mm_errbuf local;

    if (!eb)
        eb = &local;
    rc = mm_read_file(strcmp(path, "-") == 0 ? "/dev/stdin" : path, MM_POLICY_FILE_MAX, &text,
                      &len, eb);
    if (rc != MM_OK) {
        if (rc != MM_ENOMEM)
            diags_add(diags, false, eb->msg);
        return rc;
    }
    while (i < len && strchr(" \t\r\n", text[i]))
        i++;
    rc = parse_any(text, len, path, i < len && (text[i] == '{' || text[i] == '['), out, diags, eb);
    mm_free(text);
    return rc;
}

mm_err mm_policy_from_json(const struct json_object *obj, const char *where, mm_policy **out,
                           mm_diags *diags, mm_errbuf *eb)
{
    mm_err rc;
    arena *a = NULL;
    node *root = NULL;
    bctx c = {.file = where ? where : "object", .diags = diags, .eb = eb};
    mm_errbuf local;
    mm_policy *p = NULL;

    mm_buf_init(&c.path, 4096);
    if (!c.eb)
        c.eb = &local;
    if ((rc = arena_new(&a)) != MM_OK) {
        mm_errf(c.eb, rc, "%s: out of memory", c.file);
        goto out;
    }
    if ((rc = node_from_json_object(a, obj, &root, c.eb)) != MM_OK) {
        mm_errprefix(c.eb, "%s", c.file);
        if (rc != MM_ENOMEM && diags_add(diags, false, c.eb->msg) != MM_OK)
            rc = MM_ENOMEM;
        goto out;
    }
    p = build_policy(&c, root);
    if (c.oom)
        rc = mm_errf(c.eb, MM_ENOMEM, "%s: out of memory", c.file);
    else if (!p)
        rc = MM_EINVAL;
    if (rc == MM_OK) {
        *out = p;
        p = NULL;
    }
out:
    mm_policy_free(p);
    mm_buf_free(&c.path);
    arena_free(a);
    return rc;
}

