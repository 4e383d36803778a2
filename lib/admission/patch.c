/* lib/admission: JSON Pointer (RFC 6901) escaping and a JSON Patch (RFC 6902) applier for
 * json-c trees. The webhook only builds patches; the applier lets maskctl inject reuse the
 * webhook's patch on workload templates and lets tests check what a patch really does. */
#include "admission/admission.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

mm_err mm_adm_ptr_append(mm_buf *ptr, const char *segment)
{
    mm_err rc;
    if ((rc = mm_buf_putc(ptr, '/')) != MM_OK)
        return rc;
    for (const char *p = segment; *p; p++) {
        if (*p == '~')
            rc = mm_buf_append(ptr, "~0", 2);
        else if (*p == '/')
            rc = mm_buf_append(ptr, "~1", 2);
        else
            rc = mm_buf_putc(ptr, *p);
        if (rc != MM_OK)
            return rc;
    }
    return MM_OK;
}

/* Splits a pointer into unescaped tokens (each mm_malloc'd). */
static mm_err ptr_split(const char *ptr, char ***out, size_t *n_out, mm_errbuf *eb)
{
    char **toks = NULL;
    size_t n = 0;
    mm_err rc = MM_OK;
    const char *p = ptr;

    *out = NULL;
    *n_out = 0;
    if (*p == '\0')
        return MM_OK;
    if (*p != '/')
        return mm_errf(eb, MM_EPARSE, "pointer must be empty or start with '/'");
    while (*p == '/') {
        const char *end = strchr(p + 1, '/');
        size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
        char *t = mm_malloc(len + 1), **grown;
        size_t j = 0;
        if (!t) {
            rc = MM_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < len; i++) {
            char c = p[1 + i];
            if (c == '~') {
                char d = i + 1 < len ? p[2 + i] : '\0';
                if (d != '0' && d != '1') {
                    mm_free(t);
                    rc = mm_errf(eb, MM_EPARSE, "bad escape '~' at offset %zu", (size_t)(p - ptr) + 1 + i);
                    goto out;
                }
                t[j++] = d == '0' ? '~' : '/';
                i++;
            } else {
                t[j++] = c;
            }
        }
        t[j] = '\0';
        grown = mm_realloc(toks, (n + 1) * sizeof(*toks));
        if (!grown) {
            mm_free(t);
            rc = MM_ENOMEM;
            goto out;
        }
        toks = grown;
        toks[n++] = t;
        p = end ? end : p + 1 + len;
    }
    *out = toks;
    *n_out = n;
    toks = NULL;
    n = 0;
out:
    for (size_t i = 0; i < n; i++)
        mm_free(toks[i]);
    mm_free(toks);
    return rc;
}

static void toks_free(char **toks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mm_free(toks[i]);
    mm_free(toks);
}

/* An array index token: digits without a leading zero (RFC 6901 section 4). */
static bool parse_index(const char *t, size_t *out)
{
    char *end;
    unsigned long long v;
    if (!*t || (t[0] == '0' && t[1]) || t[0] < '0' || t[0] > '9')
        return false;
    errno = 0;
    v = strtoull(t, &end, 10);
    if (errno || *end || v > (1ull << 31))
        return false;
    *out = (size_t)v;
    return true;
}

/* Walks to the value named by toks[0..n): false when absent (*out may be NULL for a JSON
 * null that is present). */
static bool walk_ex(json_object *doc, char **toks, size_t n, json_object **out)
{
    json_object *cur = doc;
    for (size_t i = 0; i < n; i++) {
        if (json_object_is_type(cur, json_type_object)) {
            if (!json_object_object_get_ex(cur, toks[i], &cur))
                return false;
        } else if (json_object_is_type(cur, json_type_array)) {
            size_t idx;
            if (!parse_index(toks[i], &idx) || idx >= json_object_array_length(cur))
                return false;
            cur = json_object_array_get_idx(cur, idx);
        } else {
            return false;
        }
    }
    *out = cur;
    return true;
}

/* The container at toks[0..n): NULL when absent or not an object/array. */
static json_object *walk(json_object *doc, char **toks, size_t n)
{
    json_object *v;
    return walk_ex(doc, toks, n, &v) ? v : NULL;
}

static mm_err array_insert(json_object *arr, size_t idx, json_object *v)
{
    size_t n = json_object_array_length(arr);
    if (idx == n)
        return json_object_array_add(arr, v) == 0 ? MM_OK : MM_ENOMEM;
    if (json_object_array_add(arr, NULL) != 0)
        return MM_ENOMEM;
    for (size_t i = n; i > idx; i--)
        json_object_array_put_idx(arr, i, json_object_get(json_object_array_get_idx(arr, i - 1)));
    json_object_array_put_idx(arr, idx, v);
    return MM_OK;
}

/* Takes ownership of v. */
static mm_err op_add(json_object **doc, char **toks, size_t n, json_object *v, bool replace,
                     mm_errbuf *eb)
{
    json_object *parent;
    const char *last;

    if (n == 0) {
        json_object_put(*doc);
        *doc = v;
        return MM_OK;
    }
    parent = walk(*doc, toks, n - 1);
    last = toks[n - 1];
    if (!parent) {
        json_object_put(v);
        return mm_errf(eb, MM_EINVAL, "parent does not exist");
    }
    if (json_object_is_type(parent, json_type_object)) {
        if (replace && !json_object_object_get_ex(parent, last, NULL)) {
            json_object_put(v);
            return mm_errf(eb, MM_EINVAL, "member \"%s\" does not exist", last);
        }
        if (json_object_object_add(parent, last, v) != 0) {
            json_object_put(v);
            return MM_ENOMEM;
        }
        return MM_OK;
    }
    if (json_object_is_type(parent, json_type_array)) {
        size_t idx, len = json_object_array_length(parent);
        if (!replace && strcmp(last, "-") == 0)
            idx = len;
        else if (!parse_index(last, &idx) || idx > len || (replace && idx == len)) {
            json_object_put(v);
            return mm_errf(eb, MM_EINVAL, "index \"%s\" out of range (length %zu)", last, len);
        }
        if (replace) {
            json_object_array_put_idx(parent, idx, v);
            return MM_OK;
        }
        return array_insert(parent, idx, v);
    }
    json_object_put(v);
    return mm_errf(eb, MM_EINVAL, "parent is neither an object nor an array");
}

/* Detaches the value at toks; *taken (when not NULL) gets a reference to it. */
static mm_err op_remove(json_object **doc, char **toks, size_t n, json_object **taken,
                        mm_errbuf *eb)
{
    json_object *parent, *v;
    const char *last;

    if (n == 0) {
        if (taken)
            *taken = json_object_get(*doc);
        json_object_put(*doc);
        *doc = NULL;
        return MM_OK;
    }
    parent = walk(*doc, toks, n - 1);
    last = toks[n - 1];
    if (!parent || !walk_ex(*doc, toks, n, &v))
        return mm_errf(eb, MM_EINVAL, "nothing to remove there");
    if (taken)
        *taken = json_object_get(v);
    if (json_object_is_type(parent, json_type_object)) {
        json_object_object_del(parent, last);
    } else {
        size_t idx;
        if (!parse_index(last, &idx))
            return mm_errf(eb, MM_EINVAL, "bad array index \"%s\"", last);
        json_object_array_del_idx(parent, idx, 1);
    }
    return MM_OK;
}

static mm_err deep_copy(json_object *src, json_object **dst)
{
    *dst = NULL;
    if (!src)
        return MM_OK; /* JSON null */
    return json_object_deep_copy(src, dst, NULL) == 0 ? MM_OK : MM_ENOMEM;
}

mm_err mm_adm_patch_apply(json_object **doc, const json_object *patch, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    size_t n_ops;
    char **toks = NULL, **from = NULL;
    size_t n_toks = 0, n_from = 0;

    if (!json_object_is_type((json_object *)patch, json_type_array))
        return mm_errf(eb, MM_EPARSE, "a JSON Patch is an array of operations");
    n_ops = json_object_array_length(patch);
    for (size_t i = 0; i < n_ops; i++) {
        json_object *op = json_object_array_get_idx(patch, i), *jop, *jpath, *jval, *jfrom;
        const char *name, *path;
        json_object *v = NULL;
        bool has_val;

        toks_free(toks, n_toks);
        toks_free(from, n_from);
        toks = from = NULL;
        n_toks = n_from = 0;
        if (!json_object_is_type(op, json_type_object) ||
            !json_object_object_get_ex(op, "op", &jop) || !json_object_is_type(jop, json_type_string) ||
            !json_object_object_get_ex(op, "path", &jpath) ||
            !json_object_is_type(jpath, json_type_string)) {
            rc = mm_errf(eb, MM_EPARSE, "patch[%zu]: needs string members \"op\" and \"path\"", i);
            goto out;
        }
        name = json_object_get_string(jop);
        path = json_object_get_string(jpath);
        has_val = json_object_object_get_ex(op, "value", &jval);
        if ((rc = ptr_split(path, &toks, &n_toks, eb)) != MM_OK) {
            mm_errprefix(eb, "patch[%zu] %s", i, path);
            goto out;
        }
        if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
            if (!has_val) {
                rc = mm_errf(eb, MM_EPARSE, "patch[%zu] %s: %s needs a value", i, path, name);
                goto out;
            }
            if ((rc = deep_copy(jval, &v)) != MM_OK)
                goto out;
            rc = op_add(doc, toks, n_toks, v, name[0] == 'r', eb);
        } else if (strcmp(name, "remove") == 0) {
            rc = op_remove(doc, toks, n_toks, NULL, eb);
        } else if (strcmp(name, "test") == 0) {
            if (!has_val) {
                rc = mm_errf(eb, MM_EPARSE, "patch[%zu] %s: test needs a value", i, path);
                goto out;
            }
            json_object *cur;
            if (!walk_ex(*doc, toks, n_toks, &cur) || !json_object_equal(cur, jval))
                rc = mm_errf(eb, MM_EINVAL, "test failed");
        } else if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) {
            json_object *src;
            if (!json_object_object_get_ex(op, "from", &jfrom) ||
                !json_object_is_type(jfrom, json_type_string)) {
                rc = mm_errf(eb, MM_EPARSE, "patch[%zu] %s: %s needs \"from\"", i, path, name);
                goto out;
            }
            if ((rc = ptr_split(json_object_get_string(jfrom), &from, &n_from, eb)) != MM_OK) {
                mm_errprefix(eb, "patch[%zu] from", i);
                goto out;
            }
            if (!walk_ex(*doc, from, n_from, &src)) {
                rc = mm_errf(eb, MM_EINVAL, "patch[%zu]: \"from\" does not exist", i);
                goto out;
            }
            if (name[0] == 'm') {
                if (n_from <= n_toks && strncmp(json_object_get_string(jfrom), path,
                                                strlen(json_object_get_string(jfrom))) == 0 &&
                    n_from < n_toks) {
                    rc = mm_errf(eb, MM_EINVAL, "patch[%zu]: cannot move a value into itself", i);
                    goto out;
                }
                if ((rc = op_remove(doc, from, n_from, &v, eb)) != MM_OK)
                    goto failed;
            } else if ((rc = deep_copy(src, &v)) != MM_OK) {
                goto out;
            }
            if (!*doc) {
                *doc = v;
                continue;
            }
            rc = op_add(doc, toks, n_toks, v, false, eb);
        } else {
            rc = mm_errf(eb, MM_EPARSE, "patch[%zu]: unknown op \"%s\"", i, name);
            goto out;
        }
    failed:
        if (rc != MM_OK) {
            if (rc != MM_ENOMEM)
                mm_errprefix(eb, "patch[%zu] %s %s", i, name, path);
            goto out;
        }
    }
out:
    toks_free(toks, n_toks);
    toks_free(from, n_from);
    return rc;
}
