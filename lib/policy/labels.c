/* lib/policy: a pod's labels from the downward API file, and LabelSelector matching. */
#include "policy/policy_int.h"

#include <string.h>

#define LABELS_MAX      1024        /* lines of one labels file */
#define LABEL_KEY_MAX   (253 + 1 + 63) /* DNS-subdomain prefix, "/", name */
#define LABEL_VALUE_MAX (64 * 1024)

void mm_labels_clear(mm_labels *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        mm_free(l->keys[i]);
        mm_free(l->values[i]);
    }
    mm_free(l->keys);
    mm_free(l->values);
    memset(l, 0, sizeof(*l));
}

const char *mm_labels_get(const mm_labels *l, const char *key)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (strcmp(l->keys[i], key) == 0)
            return l->values[i];
    return NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A Go %q string starting at s[0] == '"' (as strconv.Unquote reads it): on MM_OK *end is
 * the index past the closing quote. MM_EPARSE for bad quoting, MM_ENOMEM / MM_ELIMIT from
 * the buffer. */
static mm_err go_unquote(const char *s, size_t n, mm_buf *out, size_t *end)
{
    mm_err rc;
    size_t i = 1;

    while (i < n && s[i] != '"') {
        if (s[i] != '\\') {
            if (s[i] == '\0') /* a label never holds NUL; it would cut the C string */
                return MM_EPARSE;
            if ((rc = mm_buf_putc(out, s[i++])) != MM_OK)
                return rc;
            continue;
        }
        if (++i >= n)
            return MM_EPARSE;
        char c = s[i++];
        unsigned long cp = 0;
        int digits = 0;
        switch (c) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case 'a': cp = 7; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'v': cp = 11; break;
        case '\\': case '"': cp = (unsigned char)c; break;
        case '0': case '1': case '2': case '3': /* \ooo: a raw byte, at most \377 */
            cp = (unsigned long)(c - '0');
            for (int k = 0; k < 2; k++, i++) {
                if (i >= n || s[i] < '0' || s[i] > '7')
                    return MM_EPARSE;
                cp = cp * 8 + (unsigned long)(s[i] - '0');
            }
            if (cp == 0)
                return MM_EPARSE;
            if ((rc = mm_buf_putc(out, (char)cp)) != MM_OK)
                return rc;
            continue;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default: return MM_EPARSE;
        }
        if (digits) {
            for (int k = 0; k < digits; k++, i++) {
                int h = i < n ? hexval(s[i]) : -1;
                if (h < 0)
                    return MM_EPARSE;
                cp = cp * 16 + (unsigned long)h;
            }
            if (cp == 0)
                return MM_EPARSE;
            if (c == 'x') { /* a raw byte */
                if ((rc = mm_buf_putc(out, (char)cp)) != MM_OK)
                    return rc;
                continue;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return MM_EPARSE;
        }
        if ((rc = mm_buf_put_utf8(out, cp)) != MM_OK)
            return rc;
    }
    if (i >= n)
        return MM_EPARSE;
    *end = i + 1;
    return MM_OK;
}

/* Label keys as Kubernetes allows them: [prefix/]name of [-._/a-zA-Z0-9] (the selector
 * side checks the finer grammar; here it only keeps junk out of the table). */
static bool key_ok(const char *s, size_t n)
{
    if (n == 0 || n > LABEL_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '/'))
            return false;
    }
    return true;
}

mm_err mm_labels_parse(const char *text, size_t len, const char *filename, mm_labels *out,
                       mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_labels l = {0};
    mm_buf val;
    size_t pos = 0, line = 0, cap = 0;

    if (!filename)
        filename = "labels";
    mm_buf_init(&val, LABEL_VALUE_MAX);
    while (pos < len) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos), *e;
        size_t n = nl ? (size_t)(nl - s) : len - pos, eq, end = 0;
        line++;
        pos += n + (nl ? 1 : 0);
        if (n && s[n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        if (!(e = memchr(s, '=', n))) {
            rc = mm_errf(eb, MM_EPARSE, "%s:%zu: expected key=\"value\"", filename, line);
            goto out;
        }
        eq = (size_t)(e - s);
        if (!key_ok(s, eq)) {
            rc = mm_errf(eb, MM_EPARSE, "%s:%zu: expected a label key (at most %d of "
                         "[-._/a-zA-Z0-9]) before \"=\"", filename, line, LABEL_KEY_MAX);
            goto out;
        }
        for (size_t i = 0; i < l.n; i++)
            if (strlen(l.keys[i]) == eq && memcmp(l.keys[i], s, eq) == 0) {
                rc = mm_errf(eb, MM_EPARSE, "%s:%zu: label \"%.*s\" appears twice", filename,
                             line, (int)eq, s);
                goto out;
            }
        mm_buf_reset(&val);
        if (eq + 1 >= n || s[eq + 1] != '"')
            rc = MM_EPARSE;
        else if ((rc = go_unquote(s + eq + 1, n - eq - 1, &val, &end)) == MM_OK &&
                 eq + 1 + end != n)
            rc = MM_EPARSE;
        if (rc == MM_ENOMEM)
            goto nomem;
        if (rc == MM_ELIMIT) {
            rc = mm_errf(eb, rc, "%s:%zu: the value of \"%.*s\" is longer than %d bytes",
                         filename, line, (int)eq, s, LABEL_VALUE_MAX);
            goto out;
        }
        if (rc != MM_OK) {
            rc = mm_errf(eb, MM_EPARSE, "%s:%zu: the value of \"%.*s\" is not a Go-quoted string "
                         "(\"...\" with \\\" \\\\ \\n \\t \\xNN \\uNNNN escapes)", filename, line,
                         (int)eq, s);
            goto out;
        }
        if (l.n == LABELS_MAX) {
            rc = mm_errf(eb, MM_ELIMIT, "%s:%zu: more than %d labels", filename, line, LABELS_MAX);
            goto out;
        }
        if (l.n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char **k = mm_realloc(l.keys, ncap * sizeof(char *));
            if (!k)
                goto nomem;
            l.keys = k;
            char **v = mm_realloc(l.values, ncap * sizeof(char *));
            if (!v)
                goto nomem;
            l.values = v;
            cap = ncap;
        }
        if (!(l.keys[l.n] = mm_strndup(s, eq)))
            goto nomem;
        if (!(l.values[l.n] = mm_memdup(val.data ? val.data : "", val.len))) {
            mm_free(l.keys[l.n]);
            goto nomem;
        }
        l.n++;
    }
    *out = l;
    memset(&l, 0, sizeof(l));
    goto out;
nomem:
    rc = mm_errf(eb, MM_ENOMEM, "%s: out of memory", filename);
out:
    mm_buf_free(&val);
    mm_labels_clear(&l);
    return rc;
}

bool mm_selector_matches(const mm_selector *sel, const mm_labels *labels)
{
    if (!sel) /* no selector: like the empty one, every pod */
        return true;
    for (size_t i = 0; i < sel->n_labels; i++) {
        const char *v = mm_labels_get(labels, sel->label_keys[i]);
        if (!v || strcmp(v, sel->label_values[i]) != 0)
            return false;
    }
    for (size_t i = 0; i < sel->n_exprs; i++) {
        const mm_sel_expr *x = &sel->exprs[i];
        const char *v = mm_labels_get(labels, x->key);
        bool in = false;
        for (size_t j = 0; v && j < x->n_values; j++)
            in |= strcmp(v, x->values[j]) == 0;
        switch (x->op) {
        case MM_SEL_IN: if (!in) return false; break;
        case MM_SEL_NOT_IN: if (in) return false; break; /* absent key: NotIn holds */
        case MM_SEL_EXISTS: if (!v) return false; break;
        case MM_SEL_DOES_NOT_EXIST: if (v) return false; break;
        }
    }
    return true;
}
