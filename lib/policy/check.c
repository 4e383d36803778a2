/* lib/policy: the builder's primitives — reading typed values from a document tree with the
 * place of each problem (file, line:col, field path), and the name rules of Kubernetes and
 * HTTP (DNS labels, label keys, header tokens, media types, CIDRs). */
#include "policy/policy_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

void bad(bctx *c, const node *n, const char *fmt, ...)
{
    char what[384], msg[MM_ERRBUF_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (n && n->line)
        snprintf(msg, sizeof(msg), "%s:%u:%u: %s: %s", c->file, n->line, n->col,
                 c->path.len ? c->path.data : "(document)", what);
    else
        snprintf(msg, sizeof(msg), "%s: %s: %s", c->file, c->path.len ? c->path.data : "(document)",
                 what);
    if (c->errors++ == 0 && c->eb)
        mm_errf(c->eb, MM_EINVAL, "%s", msg);
    if (diags_add(c->diags, false, msg) != MM_OK)
        c->oom = true;
}

size_t push(bctx *c, const char *fmt, ...)
{
    size_t old = c->path.len;
    va_list ap;
    va_start(ap, fmt);
    if (mm_buf_vprintf(&c->path, fmt, ap) != MM_OK)
        c->oom = true;
    va_end(ap);
    return old;
}

size_t push_key(bctx *c, const char *key)
{
    return c->path.len ? push(c, ".%s", key) : push(c, "%s", key);
}

void pop(bctx *c, size_t old)
{
    c->path.len = old;
    if (c->path.data)
        c->path.data[old] = '\0';
}

static const char *kind_name(const node *n)
{
    if (n->kind == NODE_MAP)
        return "a mapping";
    if (n->kind == NODE_SEQ)
        return "a list";
    switch (n->type) {
    case SC_STRING: return "a string";
    case SC_INT: return "an integer";
    case SC_FLOAT: return "a number";
    case SC_BOOL: return "a boolean";
    case SC_NULL: return "null";
    }
    return "a value";
}

/* Copies a string (any scalar but null: names like `on` or `123` are fine as written). */
char *want_str(bctx *c, const node *n, const char *what)
{
    char *s;
    if (n->kind != NODE_SCALAR || n->type == SC_NULL) {
        bad(c, n, "expected %s, got %s", what, kind_name(n));
        return NULL;
    }
    if (strlen(n->text) != n->len) {
        bad(c, n, "%s contains a NUL byte", what);
        return NULL;
    }
    if (!(s = mm_strdup(n->text)))
        c->oom = true;
    return s;
}

bool want_int(bctx *c, const node *n, long min, long max, long *out)
{
    if (n->kind != NODE_SCALAR || n->type != SC_INT || !mm_parse_long(n->text[0] == '+' ? n->text + 1 : n->text, min, max, out)) {
        if (n->kind == NODE_SCALAR && n->type == SC_INT)
            bad(c, n, "must be from %ld to %ld", min, max);
        else
            bad(c, n, "expected an integer from %ld to %ld, got %s", min, max, kind_name(n));
        return false;
    }
    return true;
}

bool want_bool(bctx *c, const node *n, bool *out)
{
    if (n->kind != NODE_SCALAR || n->type != SC_BOOL) {
        bad(c, n, "expected true or false, got %s", kind_name(n));
        return false;
    }
    *out = (n->text[0] | 0x20) == 't';
    return true;
}

/* Checks that every key of `map` is one of `known` (NULL-terminated). */
bool check_keys(bctx *c, const node *map, const char *const *known)
{
    bool ok = true;
    for (size_t i = 0; i < map->n; i += 2) {
        size_t k;
        for (k = 0; known[k]; k++)
            if (strcmp(map->items[i]->text, known[k]) == 0)
                break;
        if (!known[k]) {
            char list[256] = "";
            size_t used = 0;
            for (k = 0; known[k] && used < sizeof(list) - 1; k++)
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", k ? ", " : "",
                                         known[k]);
            size_t old = push_key(c, map->items[i]->text);
            bad(c, map->items[i], "unknown field (expected one of %s)", list);
            pop(c, old);
            ok = false;
        }
    }
    return ok;
}

bool is_map(bctx *c, const node *n)
{
    if (n->kind != NODE_MAP) {
        bad(c, n, "expected a mapping, got %s", kind_name(n));
        return false;
    }
    return true;
}

bool is_seq(bctx *c, const node *n, size_t max)
{
    if (n->kind != NODE_SEQ) {
        bad(c, n, "expected a list, got %s", kind_name(n));
        return false;
    }
    if (n->n > max) {
        bad(c, n, "at most %zu entries are allowed, got %zu", max, n->n);
        return false;
    }
    return true;
}

/* A list of strings into a fresh array. */
bool str_list(bctx *c, const node *n, size_t max, const char *what, char ***out, size_t *count)
{
    char **v;
    bool ok = true;
    if (!is_seq(c, n, max))
        return false;
    if (!(v = mm_calloc(n->n ? n->n : 1, sizeof(char *)))) {
        c->oom = true;
        return false;
    }
    for (size_t i = 0; i < n->n; i++) {
        size_t old = push(c, "[%zu]", i);
        if (!(v[i] = want_str(c, n->items[i], what)))
            ok = false;
        pop(c, old);
    }
    *out = v;
    *count = n->n;
    return ok;
}

/* ---- name rules ----------------------------------------------------------------------- */

static bool alnum_lower(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'); }

/* RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, of n bytes. */
static bool dns_label_n(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max || !alnum_lower(s[0]) || !alnum_lower(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum_lower(s[i]) && s[i] != '-')
            return false;
    return true;
}

/* RFC 1123 subdomain (metadata.name of most kinds): dot-separated labels, at most 253. */
static bool dns_subdomain_n(const char *s, size_t n)
{
    size_t start = 0;
    if (n == 0 || n > MM_POLICY_NAME_MAX)
        return false;
    for (size_t i = 0; i <= n; i++)
        if (i == n || s[i] == '.') {
            if (!dns_label_n(s + start, i - start, MM_POLICY_NAME_MAX))
                return false;
            start = i + 1;
        }
    return true;
}

bool dns_subdomain(const char *s) { return dns_subdomain_n(s, strlen(s)); }

bool dns_label(const char *s) { return dns_label_n(s, strlen(s), LABEL_NAME_MAX); }

bool rule_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RULE_NAME_MAX || !alnum_lower(s[0]) || !alnum_lower(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum_lower(s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

/* IANA service name: 1-15 of [a-z0-9-], a letter somewhere, no leading/trailing/double '-'. */
bool port_name_ok(const char *s)
{
    size_t n = strlen(s);
    bool letter = false;
    if (n == 0 || n > PORT_NAME_MAX || s[0] == '-' || s[n - 1] == '-' || strstr(s, "--"))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 'a' && s[i] <= 'z')
            letter = true;
        else if (!(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
            return false;
    }
    return letter;
}

/* Label keys: an optional DNS-subdomain prefix and "/", then a name of at most 63 of
 * [A-Za-z0-9-_.] starting and ending alphanumeric. Values: the same name rule, or empty. */
bool label_name_ok(const char *s, size_t n, bool empty_ok)
{
    if (n == 0)
        return empty_ok;
    if (n > LABEL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool an = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!an && ((i == 0 || i == n - 1) || (ch != '-' && ch != '_' && ch != '.')))
            return false;
    }
    return true;
}

bool label_key_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    if (slash) {
        if (!dns_subdomain_n(s, (size_t)(slash - s)))
            return false;
        s = slash + 1;
    }
    return label_name_ok(s, strlen(s), false);
}

bool http_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

bool secret_key_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SECRET_KEY_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.' || s[i] == '_'))
            return false;
    return true;
}

/* Whether s is exactly one well-formed UTF-8 character (no overlong forms, surrogates or
 * code points past U+10FFFF). */
bool one_utf8_char(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned long cp;
    size_t n;

    if (s[0] == 0)
        return false;
    if (s[0] < 0x80)
        return s[1] == 0;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2, cp = s[0] & 0x1F;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3, cp = s[0] & 0x0F;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4, cp = s[0] & 0x07;
    else
        return false;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return false;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    return s[n] == 0;
}

/* An IPv4 or IPv6 CIDR: address "/" prefix length within the family's bits. */
bool cidr_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    char addr[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    size_t alen;
    long bits;

    if (!slash || (alen = (size_t)(slash - s)) == 0 || alen >= sizeof(addr) ||
        !(slash[1] >= '0' && slash[1] <= '9'))
        return false;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, bin) == 1)
        return mm_parse_long(slash + 1, 0, 32, &bits);
    if (inet_pton(AF_INET6, addr, bin) == 1)
        return mm_parse_long(slash + 1, 0, 128, &bits);
    return false;
}

/* type/subtype, both HTTP tokens, no parameters. */
bool media_type_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    char type[128];
    size_t tl;

    if (!slash || (tl = (size_t)(slash - s)) == 0 || tl >= sizeof(type))
        return false;
    memcpy(type, s, tl);
    type[tl] = '\0';
    return http_token(type) && http_token(slash + 1);
}

