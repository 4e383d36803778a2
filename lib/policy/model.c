/* lib/policy: builds MaskingPolicy models from document trees, validating every field of
 * DESIGN.md and naming each problem's place (file, line:col, field path). */
#include "policy/policy_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DIAGS_MAX 1000

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

const char *const mm_detector_names[] = {"credit_card", "us_ssn", "email", "phone",
                                         "iban", "ipv4", "ipv6", "jwt",
                                         "aws_access_key", "bearer_token", NULL};

bool mm_detector_known(const char *name)
{
    for (size_t i = 0; mm_detector_names[i]; i++)
        if (strcmp(name, mm_detector_names[i]) == 0)
            return true;
    return false;
}

/* ---- diagnostics ---------------------------------------------------------------------- */

struct mm_diags {
    char **msg;
    bool *warn;
    size_t n, cap, errors, warnings;
};

mm_err mm_diags_new(mm_diags **out)
{
    return (*out = mm_calloc(1, sizeof(**out))) ? MM_OK : MM_ENOMEM;
}

void mm_diags_free(mm_diags *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        mm_free(d->msg[i]);
    mm_free(d->msg);
    mm_free(d->warn);
    mm_free(d);
}

size_t mm_diags_errors(const mm_diags *d) { return d ? d->errors : 0; }
size_t mm_diags_warnings(const mm_diags *d) { return d ? d->warnings : 0; }
size_t mm_diags_count(const mm_diags *d) { return d ? d->n : 0; }

const char *mm_diags_get(const mm_diags *d, size_t i, bool *is_warning)
{
    if (!d || i >= d->n)
        return NULL;
    if (is_warning)
        *is_warning = d->warn[i];
    return d->msg[i];
}

mm_err diags_add(mm_diags *d, bool warning, const char *msg)
{
    if (!d)
        return MM_OK;
    warning ? d->warnings++ : d->errors++;
    if (d->n == DIAGS_MAX) /* counted, not kept: the first thousand say enough */
        return MM_OK;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        char **m = mm_realloc(d->msg, cap * sizeof(*m));
        if (!m)
            return MM_ENOMEM;
        d->msg = m;
        bool *w = mm_realloc(d->warn, cap * sizeof(*w));
        if (!w)
            return MM_ENOMEM;
        d->warn = w;
        d->cap = cap;
    }
    if (!(d->msg[d->n] = mm_strdup(msg)))
        return MM_ENOMEM;
    d->warn[d->n++] = warning;
    return MM_OK;
}

/* ---- freeing -------------------------------------------------------------------------- */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        mm_free(v[i]);
    mm_free(v);
}

static void action_clear(mm_action *a)
{
    mm_free(a->replacement);
    mm_free(a->mask_char);
    mm_free(a->key);
    mm_free(a->value);
    mm_free(a->tweak);
    mm_free(a->surrogate);
}

static void selector_clear(mm_selector *s)
{
    strv_free(s->label_keys, s->n_labels);
    strv_free(s->label_values, s->n_labels);
    for (size_t i = 0; i < s->n_exprs; i++) {
        mm_free(s->exprs[i].key);
        strv_free(s->exprs[i].values, s->exprs[i].n_values);
    }
    mm_free(s->exprs);
    memset(s, 0, sizeof(*s));
}

void mm_policy_free(mm_policy *p)
{
    if (!p)
        return;
    mm_free(p->name);
    mm_free(p->ns);
    mm_free(p->uid);
    mm_free(p->resource_version);
    selector_clear(&p->selector);
    mm_free(p->port);
    for (size_t i = 0; i < p->n_rules; i++) {
        mm_rule *r = &p->rules[i];
        mm_free(r->name);
        for (size_t j = 0; j < r->n_fields; j++)
            mm_path_clear(&r->fields[j]);
        mm_free(r->fields);
        strv_free(r->detectors, r->n_detectors);
        for (size_t j = 0; j < r->n_patterns; j++) {
            mm_free(r->patterns[j].name);
            mm_free(r->patterns[j].regex);
        }
        mm_free(r->patterns);
        strv_free(r->content_types, r->n_content_types);
        action_clear(&r->action);
    }
    mm_free(p->rules);
    for (size_t i = 0; i < p->n_headers; i++) {
        mm_free(p->headers[i].name);
        action_clear(&p->headers[i].action);
    }
    mm_free(p->headers);
    for (size_t i = 0; i < p->n_exemptions; i++) {
        strv_free(p->exemptions[i].principals, p->exemptions[i].n_principals);
        strv_free(p->exemptions[i].rules, p->exemptions[i].n_rules);
    }
    mm_free(p->exemptions);
    for (size_t i = 0; i < p->n_grants; i++) {
        strv_free(p->grants[i].principals, p->grants[i].n_principals);
        for (size_t k = 0; k < p->grants[i].n_rules; k++) {
            mm_free(p->grants[i].rules[k].rule);
            action_clear(&p->grants[i].rules[k].action);
        }
        mm_free(p->grants[i].rules);
    }
    mm_free(p->grants);
    mm_free(p->allow_from_json);
    mm_free(p);
}

struct mm_policy_set {
    mm_policy **items;
    size_t n;
};

size_t mm_policy_set_count(const mm_policy_set *s) { return s ? s->n : 0; }

const mm_policy *mm_policy_set_get(const mm_policy_set *s, size_t i)
{
    return s && i < s->n ? s->items[i] : NULL;
}

void mm_policy_set_free(mm_policy_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        mm_policy_free(s->items[i]);
    mm_free(s->items);
    mm_free(s);
}

/* ---- the builder ---------------------------------------------------------------------- */

typedef struct {
    const char *file;
    mm_diags *diags;
    mm_errbuf *eb;
    size_t errors;
    bool oom;
    mm_buf path; /* the field path of the node being read, e.g. spec.rules[2].action */
} bctx;

static void bad(bctx *c, const node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void bad(bctx *c, const node *n, const char *fmt, ...)
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

/* Path segments: push returns the length to pop back to. */
static size_t push(bctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t push(bctx *c, const char *fmt, ...)
{
    size_t old = c->path.len;
    va_list ap;
    va_start(ap, fmt);
    if (mm_buf_vprintf(&c->path, fmt, ap) != MM_OK)
        c->oom = true;
    va_end(ap);
    return old;
}

static size_t push_key(bctx *c, const char *key)
{
    return c->path.len ? push(c, ".%s", key) : push(c, "%s", key);
}

static void pop(bctx *c, size_t old)
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
static char *want_str(bctx *c, const node *n, const char *what)
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

static bool want_int(bctx *c, const node *n, long min, long max, long *out)
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

static bool want_bool(bctx *c, const node *n, bool *out)
{
    if (n->kind != NODE_SCALAR || n->type != SC_BOOL) {
        bad(c, n, "expected true or false, got %s", kind_name(n));
        return false;
    }
    *out = (n->text[0] | 0x20) == 't';
    return true;
}

/* Checks that every key of `map` is one of `known` (NULL-terminated). */
static bool check_keys(bctx *c, const node *map, const char *const *known)
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

static bool is_map(bctx *c, const node *n)
{
    if (n->kind != NODE_MAP) {
        bad(c, n, "expected a mapping, got %s", kind_name(n));
        return false;
    }
    return true;
}

static bool is_seq(bctx *c, const node *n, size_t max)
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
static bool str_list(bctx *c, const node *n, size_t max, const char *what, char ***out, size_t *count)
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

static bool dns_subdomain(const char *s) { return dns_subdomain_n(s, strlen(s)); }

static bool dns_label(const char *s) { return dns_label_n(s, strlen(s), LABEL_NAME_MAX); }

static bool rule_name_ok(const char *s)
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
static bool port_name_ok(const char *s)
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
static bool label_name_ok(const char *s, size_t n, bool empty_ok)
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

static bool label_key_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    if (slash) {
        if (!dns_subdomain_n(s, (size_t)(slash - s)))
            return false;
        s = slash + 1;
    }
    return label_name_ok(s, strlen(s), false);
}

static bool http_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

static bool secret_key_ok(const char *s)
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
static bool one_utf8_char(const char *str)
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
static bool cidr_ok(const char *s)
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
static bool media_type_ok(const char *s)
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

/* ---- parts of a policy ---------------------------------------------------------------- */

static const char *const action_types[] = {"redact", "mask", "hash", "tokenize", "remove",
                                           "replace", "encrypt", NULL};
#define ACTION_TYPES "redact, mask, hash, tokenize, remove, replace, encrypt"

static void build_encrypt(bctx *c, const node *n, mm_action *a);

static void build_action(bctx *c, const node *n, mm_action *a, bool header)
{
    static const char *const keys[] = {"type", "replacement", "keepFirst", "keepLast", "char",
                                       "preserveFormat", "key", "value", "mode", "format",
                                       "keyVersion", "tweak", "luhn", "surrogate", NULL};
    const node *t = node_get(n, "type");
    size_t old;
    long v;
    char *type = NULL;

    a->keep_first = a->keep_last = 0;
    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if (!t) {
        bad(c, n, "type is required (one of " ACTION_TYPES ")");
        return;
    }
    old = push_key(c, "type");
    if ((type = want_str(c, t, "an action type"))) {
        size_t k;
        for (k = 0; action_types[k]; k++)
            if (strcmp(type, action_types[k]) == 0)
                break;
        if (!action_types[k])
            bad(c, t, "unknown action type \"%.40s\" (expected one of " ACTION_TYPES ")", type);
        else
            a->type = (mm_action_type)k;
        mm_free(type);
        if (!action_types[k]) {
            pop(c, old);
            return;
        }
    }
    pop(c, old);

    /* Fields that belong to one type only are errors elsewhere: `key` on a mask is a
     * mistake the operator wants to hear about, not a silent no-op. */
    static const struct {
        const char *field;
        unsigned types; /* bit per mm_action_type */
    } owners[] = {
        {"replacement", 1u << MM_ACTION_REDACT},
        {"keepFirst", (1u << MM_ACTION_MASK) | (1u << MM_ACTION_ENCRYPT)},
        {"keepLast", (1u << MM_ACTION_MASK) | (1u << MM_ACTION_ENCRYPT)},
        {"char", 1u << MM_ACTION_MASK},
        {"preserveFormat", 1u << MM_ACTION_MASK},
        {"key", (1u << MM_ACTION_HASH) | (1u << MM_ACTION_TOKENIZE) | (1u << MM_ACTION_ENCRYPT)},
        {"keyVersion", (1u << MM_ACTION_TOKENIZE) | (1u << MM_ACTION_ENCRYPT)},
        {"value", 1u << MM_ACTION_REPLACE},
        {"mode", 1u << MM_ACTION_ENCRYPT}, {"format", 1u << MM_ACTION_ENCRYPT},
        {"tweak", 1u << MM_ACTION_ENCRYPT}, {"luhn", 1u << MM_ACTION_ENCRYPT},
        {"surrogate", 1u << MM_ACTION_ENCRYPT},
    };
    for (size_t i = 0; i < MM_ARRAY_LEN(owners); i++) {
        const node *f = node_get(n, owners[i].field);
        if (f && !(owners[i].types & (1u << a->type))) {
            old = push_key(c, owners[i].field);
            bad(c, f, "does not apply to action type %s", action_types[a->type]);
            pop(c, old);
        }
    }

    const node *f;
    switch (a->type) {
    case MM_ACTION_REDACT:
        if ((f = node_get(n, "replacement"))) {
            old = push_key(c, "replacement");
            a->replacement = want_str(c, f, "a replacement string");
            pop(c, old);
        } else if (!(a->replacement = mm_strdup("[REDACTED]")))
            c->oom = true;
        break;
    case MM_ACTION_MASK:
        if ((f = node_get(n, "keepFirst"))) {
            old = push_key(c, "keepFirst");
            if (want_int(c, f, 0, MM_POLICY_MAX_KEEP, &v))
                a->keep_first = (int)v;
            pop(c, old);
        }
        if ((f = node_get(n, "keepLast"))) {
            old = push_key(c, "keepLast");
            if (want_int(c, f, 0, MM_POLICY_MAX_KEEP, &v))
                a->keep_last = (int)v;
            pop(c, old);
        }
        if ((f = node_get(n, "char"))) {
            old = push_key(c, "char");
            a->mask_char = want_str(c, f, "one character");
            if (a->mask_char && !one_utf8_char(a->mask_char))
                bad(c, f, "must be exactly one UTF-8 character");
            pop(c, old);
        } else if (!(a->mask_char = mm_strdup("*")))
            c->oom = true;
        if ((f = node_get(n, "preserveFormat"))) {
            old = push_key(c, "preserveFormat");
            want_bool(c, f, &a->preserve_format);
            pop(c, old);
        }
        break;
    case MM_ACTION_HASH:
    case MM_ACTION_TOKENIZE:
        if ((f = node_get(n, "key"))) {
            old = push_key(c, "key");
            a->key = want_str(c, f, "a key name of the Secret maskmesh-keys");
            if (a->key && !secret_key_ok(a->key))
                bad(c, f, "\"%.64s\" is not a valid Secret key name ([-._a-zA-Z0-9]+)", a->key);
            pop(c, old);
        } else if (a->type == MM_ACTION_TOKENIZE) {
            bad(c, n, "tokenize requires key (an entry of the Secret maskmesh-keys)");
        }
        if ((f = node_get(n, "keyVersion"))) { /* tokenize: tok_v<N>_..., entry <key>.v<N> */
            old = push_key(c, "keyVersion");
            if (want_int(c, f, 1, MM_POLICY_MAX_KEY_VERSION, &v))
                a->key_version = (int)v;
            pop(c, old);
        }
        break;
    case MM_ACTION_ENCRYPT:
        if (header)
            bad(c, n, "encrypt applies to body rules, not headers");
        else
            build_encrypt(c, n, a);
        break;
    case MM_ACTION_REPLACE:
        if ((f = node_get(n, "value"))) {
            old = push_key(c, "value");
            a->value = want_str(c, f, "a replacement value");
            pop(c, old);
        } else {
            bad(c, n, "replace requires value");
        }
        break;
    case MM_ACTION_REMOVE:
        break;
    }
}

/* encrypt: mode (or format: ff1), key and keyVersion required; tweak a constant string or
 * {fromRule: true} (build_rule fills in the rule's name); luhn and surrogate for ff1. */
static void build_encrypt(bctx *c, const node *n, mm_action *a)
{
    const node *f, *mode = node_get(n, "mode"), *format = node_get(n, "format");
    size_t old;
    long v;
    char *s;

    if (mode && format)
        bad(c, n, "give mode or format, not both (format: ff1 is mode: ff1)");
    if (!mode && !format)
        bad(c, n, "encrypt requires mode (ff1 or siv; format: ff1 is the same as mode: ff1)");
    if ((f = mode ? mode : format)) {
        old = push_key(c, mode ? "mode" : "format");
        if ((s = want_str(c, f, "ff1 or siv"))) {
            if (strcmp(s, "ff1") == 0)
                a->enc_mode = MM_ENC_FF1;
            else if (strcmp(s, "siv") == 0 && mode)
                a->enc_mode = MM_ENC_SIV;
            else
                bad(c, f, "unknown %s \"%.20s\" (expected %s)", mode ? "mode" : "format", s,
                    mode ? "ff1 or siv" : "ff1");
            mm_free(s);
        }
        pop(c, old);
    }
    if ((f = node_get(n, "key"))) {
        old = push_key(c, "key");
        a->key = want_str(c, f, "a key name of the Secret maskmesh-keys");
        if (a->key && (!secret_key_ok(a->key) || strstr(a->key, ".v")))
            bad(c, f, "\"%.64s\" is not a valid key name ([-._a-zA-Z0-9]+, without the .v<N> "
                "that keyVersion adds)", a->key);
        pop(c, old);
    } else {
        bad(c, n, "encrypt requires key (entries <key>.v<N> of the Secret maskmesh-keys)");
    }
    if ((f = node_get(n, "keyVersion"))) {
        old = push_key(c, "keyVersion");
        if (want_int(c, f, 1, MM_POLICY_MAX_KEY_VERSION, &v))
            a->key_version = (int)v;
        pop(c, old);
    } else {
        bad(c, n, "encrypt requires keyVersion (the N of the entry <key>.v<N> it writes with)");
    }
    for (int i = 0; i < 2; i++) {
        const char *field = i ? "keepLast" : "keepFirst";
        if ((f = node_get(n, field))) {
            old = push_key(c, field);
            if (a->enc_mode != MM_ENC_FF1)
                bad(c, f, "applies to mode ff1 only");
            else if (want_int(c, f, 0, MM_POLICY_MAX_KEEP, &v))
                *(i ? &a->keep_last : &a->keep_first) = (int)v;
            pop(c, old);
        }
    }
    if ((f = node_get(n, "tweak"))) {
        old = push_key(c, "tweak");
        if (f->kind == NODE_MAP) {
            const node *fr = node_get(f, "fromRule");
            static const char *const tkeys[] = {"fromRule", NULL};
            bool yes = false;
            check_keys(c, f, tkeys);
            if (!fr || !want_bool(c, fr, &yes) || !yes)
                bad(c, f, "a tweak map is {fromRule: true}; a constant tweak is a string");
            else if (!(a->tweak = mm_strdup(""))) /* marks "from rule": build_rule fills it */
                c->oom = true;
            a->tweak_from_rule = true;
        } else if ((a->tweak = want_str(c, f, "a tweak string or {fromRule: true}")) &&
                   strlen(a->tweak) > 256) {
            bad(c, f, "a tweak is at most 256 bytes");
        }
        pop(c, old);
    }
    if ((f = node_get(n, "luhn"))) {
        old = push_key(c, "luhn");
        if (a->enc_mode != MM_ENC_FF1)
            bad(c, f, "applies to mode ff1 only");
        else if ((s = want_str(c, f, "valid, invalid or none"))) {
            if (strcmp(s, "valid") == 0)
                a->luhn = MM_LUHN_VALID;
            else if (strcmp(s, "invalid") == 0)
                a->luhn = MM_LUHN_INVALID;
            else if (strcmp(s, "none") == 0)
                a->luhn = MM_LUHN_NONE;
            else
                bad(c, f, "unknown luhn \"%.20s\" (expected valid, invalid or none)", s);
            mm_free(s);
        }
        a->luhn_set = true;
        pop(c, old);
    }
    if ((f = node_get(n, "surrogate"))) {
        old = push_key(c, "surrogate");
        if (a->enc_mode != MM_ENC_FF1)
            bad(c, f, "applies to mode ff1 only (siv tokens carry their version)");
        else if ((a->surrogate = want_str(c, f, "a surrogate prefix")) &&
                 (!a->surrogate[0] || strlen(a->surrogate) > 32 ||
                  strspn(a->surrogate, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") !=
                      strlen(a->surrogate)))
            bad(c, f, "a surrogate is 1-32 letters or '_' (it is followed by .v<N>:)");
        pop(c, old);
    }
}

static bool nonempty_seq(const node *n) { return n && n->kind == NODE_SEQ && n->n > 0; }

static void check_regex(bctx *c, const node *n, const char *re)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *p = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!p) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof(msg));
        bad(c, n, "the regex does not compile: %s at offset %zu", (const char *)msg, (size_t)off);
        return;
    }
    pcre2_code_free(p);
}

/* What an encrypt action takes from its rule: the rule's name as tweak ({fromRule: true}),
 * and card handling (luhn: invalid) when the rule names credit_card and luhn is not set. */
static void rule_encrypt_defaults(bctx *c, const mm_rule *r, mm_action *a)
{
    if (a->type != MM_ACTION_ENCRYPT)
        return;
    if (a->tweak_from_rule && r->name) {
        mm_free(a->tweak);
        if (!(a->tweak = mm_strdup(r->name)))
            c->oom = true;
    }
    for (size_t i = 0; !a->luhn_set && a->enc_mode == MM_ENC_FF1 && i < r->n_detectors; i++)
        if (strcmp(r->detectors[i], "credit_card") == 0)
            a->luhn = MM_LUHN_INVALID;
}

static void build_rule(bctx *c, const node *n, mm_rule *r)
{
    static const char *const keys[] = {"name", "fields", "detectors", "patterns",
                                       "contentTypes", "action", NULL};
    const node *f;
    size_t old;

    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if (!(f = node_get(n, "name")))
        bad(c, n, "name is required");
    else {
        old = push_key(c, "name");
        if ((r->name = want_str(c, f, "a rule name")) && !rule_name_ok(r->name))
            bad(c, f, "\"%.64s\" is not a valid rule name: lowercase letters, digits, '-' and "
                "'_', starting and ending with a letter or digit, at most 63", r->name);
        pop(c, old);
    }
    if ((f = node_get(n, "fields"))) {
        old = push_key(c, "fields");
        if (is_seq(c, f, MM_POLICY_MAX_PATHS) && (r->fields = mm_calloc(f->n ? f->n : 1, sizeof(mm_path)))) {
            r->n_fields = f->n;
            for (size_t i = 0; i < f->n; i++) {
                size_t o2 = push(c, "[%zu]", i);
                char *text = want_str(c, f->items[i], "a JSONPath");
                mm_errbuf peb;
                mm_err prc;
                if (text && (prc = mm_path_parse(text, &r->fields[i], &peb)) != MM_OK) {
                    if (prc == MM_ENOMEM)
                        c->oom = true;
                    else
                        bad(c, f->items[i], "invalid JSONPath: %s", peb.msg);
                }
                mm_free(text);
                pop(c, o2);
            }
        } else if (f->kind == NODE_SEQ && f->n <= MM_POLICY_MAX_PATHS)
            c->oom = true;
        pop(c, old);
    }
    if ((f = node_get(n, "detectors"))) {
        old = push_key(c, "detectors");
        if (str_list(c, f, MAX_DETECTORS, "a detector name", &r->detectors, &r->n_detectors))
            for (size_t i = 0; i < r->n_detectors; i++)
                if (!mm_detector_known(r->detectors[i])) {
                    size_t o2 = push(c, "[%zu]", i);
                    bad(c, f->items[i], "unknown detector \"%.40s\" (expected one of credit_card, "
                        "us_ssn, email, phone, iban, ipv4, ipv6, jwt, aws_access_key, "
                        "bearer_token)", r->detectors[i]);
                    pop(c, o2);
                }
        pop(c, old);
    }
    if ((f = node_get(n, "patterns"))) {
        old = push_key(c, "patterns");
        if (is_seq(c, f, MAX_PATTERNS) && (r->patterns = mm_calloc(f->n ? f->n : 1, sizeof(mm_pattern)))) {
            r->n_patterns = f->n;
            for (size_t i = 0; i < f->n; i++) {
                static const char *const pkeys[] = {"name", "regex", NULL};
                const node *p = f->items[i], *x;
                size_t o2 = push(c, "[%zu]", i);
                if (is_map(c, p)) {
                    check_keys(c, p, pkeys);
                    if (!(x = node_get(p, "name")))
                        bad(c, p, "name is required");
                    else {
                        size_t o3 = push_key(c, "name");
                        r->patterns[i].name = want_str(c, x, "a pattern name");
                        pop(c, o3);
                    }
                    if (!(x = node_get(p, "regex")))
                        bad(c, p, "regex is required");
                    else {
                        size_t o3 = push_key(c, "regex");
                        if ((r->patterns[i].regex = want_str(c, x, "a regex")))
                            check_regex(c, x, r->patterns[i].regex);
                        pop(c, o3);
                    }
                }
                pop(c, o2);
            }
        } else if (f->kind == NODE_SEQ && f->n <= MAX_PATTERNS)
            c->oom = true;
        pop(c, old);
    }
    if ((f = node_get(n, "contentTypes"))) {
        old = push_key(c, "contentTypes");
        if (str_list(c, f, MAX_CONTENT_TYPES, "a media type", &r->content_types, &r->n_content_types))
            for (size_t i = 0; i < r->n_content_types; i++) {
                if (r->content_types[i] && !media_type_ok(r->content_types[i])) {
                    size_t o2 = push(c, "[%zu]", i);
                    bad(c, f->items[i], "expected a media type such as text/csv (no parameters)");
                    pop(c, o2);
                }
            }
        pop(c, old);
    }
    if (!nonempty_seq(node_get(n, "fields")) && !nonempty_seq(node_get(n, "detectors")) &&
        !nonempty_seq(node_get(n, "patterns")))
        bad(c, n, "a rule needs at least one of fields, detectors or patterns (a non-empty list)");
    if (!(f = node_get(n, "action")))
        bad(c, n, "action is required");
    else {
        old = push_key(c, "action");
        build_action(c, f, &r->action, false);
        pop(c, old);
        rule_encrypt_defaults(c, r, &r->action);
    }
}

static void build_selector(bctx *c, const node *n, mm_selector *s)
{
    static const char *const keys[] = {"matchLabels", "matchExpressions", NULL};
    const node *f;
    size_t old;

    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if ((f = node_get(n, "matchLabels"))) {
        old = push_key(c, "matchLabels");
        if (is_map(c, f)) {
            size_t pairs = f->n / 2;
            s->label_keys = mm_calloc(pairs ? pairs : 1, sizeof(char *));
            s->label_values = mm_calloc(pairs ? pairs : 1, sizeof(char *));
            if (!s->label_keys || !s->label_values)
                c->oom = true;
            else {
                s->n_labels = pairs;
                for (size_t i = 0; i < pairs; i++) {
                    const node *k = f->items[2 * i], *v = f->items[2 * i + 1];
                    size_t o2 = push_key(c, k->text);
                    if (!label_key_ok(k->text))
                        bad(c, k, "invalid label key");
                    if (!(s->label_keys[i] = mm_strdup(k->text)))
                        c->oom = true;
                    if ((s->label_values[i] = want_str(c, v, "a label value")) &&
                        !label_name_ok(s->label_values[i], strlen(s->label_values[i]), true))
                        bad(c, v, "invalid label value: at most 63 of [A-Za-z0-9-_.], starting "
                            "and ending alphanumeric");
                    pop(c, o2);
                }
            }
        }
        pop(c, old);
    }
    if ((f = node_get(n, "matchExpressions"))) {
        old = push_key(c, "matchExpressions");
        if (is_seq(c, f, MAX_EXPRESSIONS) && (s->exprs = mm_calloc(f->n ? f->n : 1, sizeof(mm_sel_expr)))) {
            s->n_exprs = f->n;
            for (size_t i = 0; i < f->n; i++) {
                static const char *const ekeys[] = {"key", "operator", "values", NULL};
                static const char *const ops[] = {"In", "NotIn", "Exists", "DoesNotExist", NULL};
                const node *e = f->items[i], *x;
                mm_sel_expr *se = &s->exprs[i];
                size_t o2 = push(c, "[%zu]", i);
                char *op = NULL;
                if (!is_map(c, e)) {
                    pop(c, o2);
                    continue;
                }
                check_keys(c, e, ekeys);
                if (!(x = node_get(e, "key")))
                    bad(c, e, "key is required");
                else if ((se->key = want_str(c, x, "a label key")) && !label_key_ok(se->key)) {
                    size_t o3 = push_key(c, "key");
                    bad(c, x, "invalid label key");
                    pop(c, o3);
                }
                if (!(x = node_get(e, "operator")))
                    bad(c, e, "operator is required (In, NotIn, Exists, DoesNotExist)");
                else if ((op = want_str(c, x, "an operator"))) {
                    size_t k;
                    for (k = 0; ops[k] && strcmp(op, ops[k]) != 0; k++)
                        ;
                    size_t o3 = push_key(c, "operator");
                    if (!ops[k])
                        bad(c, x, "unknown operator \"%.20s\" (expected In, NotIn, Exists or "
                            "DoesNotExist)", op);
                    else
                        se->op = (mm_sel_op)k;
                    pop(c, o3);
                    mm_free(op);
                }
                if ((x = node_get(e, "values"))) {
                    size_t o3 = push_key(c, "values");
                    if (str_list(c, x, MAX_SEL_VALUES, "a label value", &se->values,
                                 &se->n_values))
                        for (size_t k = 0; k < se->n_values; k++)
                            if (!label_name_ok(se->values[k], strlen(se->values[k]), true)) {
                                size_t o4 = push(c, "[%zu]", k);
                                bad(c, x->items[k], "invalid label value: at most 63 of "
                                    "[A-Za-z0-9-_.], starting and ending alphanumeric");
                                pop(c, o4);
                            }
                    pop(c, o3);
                }
                if ((se->op == MM_SEL_IN || se->op == MM_SEL_NOT_IN) && se->n_values == 0)
                    bad(c, e, "values must be non-empty for In and NotIn");
                if ((se->op == MM_SEL_EXISTS || se->op == MM_SEL_DOES_NOT_EXIST) && se->n_values)
                    bad(c, e, "values must be empty for Exists and DoesNotExist");
                pop(c, o2);
            }
        } else if (f->kind == NODE_SEQ && f->n <= MAX_EXPRESSIONS)
            c->oom = true;
        pop(c, old);
    }
}

static void build_headers(bctx *c, const node *n, mm_policy *p)
{
    if (!is_seq(c, n, MM_POLICY_MAX_RULES))
        return;
    if (!(p->headers = mm_calloc(n->n ? n->n : 1, sizeof(mm_header_rule)))) {
        c->oom = true;
        return;
    }
    p->n_headers = n->n;
    for (size_t i = 0; i < n->n; i++) {
        static const char *const keys[] = {"name", "action", NULL};
        const node *h = n->items[i], *f;
        size_t old = push(c, "[%zu]", i);
        if (is_map(c, h)) {
            check_keys(c, h, keys);
            if (!(f = node_get(h, "name")))
                bad(c, h, "name is required");
            else {
                size_t o2 = push_key(c, "name");
                if ((p->headers[i].name = want_str(c, f, "a header name")) &&
                    !http_token(p->headers[i].name))
                    bad(c, f, "not a valid HTTP header name (a token: letters, digits and "
                        "!#$%%&'*+-.^_`|~)");
                for (size_t j = 0; p->headers[i].name && j < i; j++)
                    if (p->headers[j].name &&
                        strcasecmp(p->headers[j].name, p->headers[i].name) == 0) {
                        bad(c, f, "header \"%.64s\" already has a rule (spec.headers[%zu])",
                            p->headers[i].name, j);
                        break;
                    }
                pop(c, o2);
            }
            if (!(f = node_get(h, "action")))
                bad(c, h, "action is required");
            else {
                size_t o2 = push_key(c, "action");
                build_action(c, f, &p->headers[i].action, true);
                pop(c, o2);
            }
        }
        pop(c, old);
    }
}

/* `principals` of an exemption or a reveal grant: a non-empty list of non-empty strings. */
static void build_principals(bctx *c, const node *e, char ***out, size_t *n)
{
    const node *f = node_get(e, "principals");
    if (!f) {
        bad(c, e, "principals is required");
        return;
    }
    size_t o2 = push_key(c, "principals");
    if (str_list(c, f, MAX_PRINCIPALS, "a principal", out, n) && *n == 0)
        bad(c, f, "at least one principal is required");
    for (size_t k = 0; k < *n; k++)
        if ((*out)[k] && !(*out)[k][0]) {
            size_t o3 = push(c, "[%zu]", k);
            bad(c, f->items[k], "a principal cannot be empty");
            pop(c, o3);
        }
    pop(c, o2);
}

static void build_exemptions(bctx *c, const node *n, mm_policy *p)
{
    if (!is_seq(c, n, MAX_EXEMPTIONS))
        return;
    if (!(p->exemptions = mm_calloc(n->n ? n->n : 1, sizeof(mm_exemption)))) {
        c->oom = true;
        return;
    }
    p->n_exemptions = n->n;
    for (size_t i = 0; i < n->n; i++) {
        static const char *const keys[] = {"principals", "rules", NULL};
        const node *e = n->items[i], *f;
        mm_exemption *x = &p->exemptions[i];
        size_t old = push(c, "[%zu]", i);
        if (is_map(c, e)) {
            check_keys(c, e, keys);
            build_principals(c, e, &x->principals, &x->n_principals);
            if (!(f = node_get(e, "rules")))
                bad(c, e, "rules is required (the rules these principals see unmasked)");
            else {
                size_t o2 = push_key(c, "rules");
                if (str_list(c, f, MM_POLICY_MAX_RULES, "a rule name", &x->rules, &x->n_rules)) {
                    if (x->n_rules == 0)
                        bad(c, f, "at least one rule is required");
                    for (size_t k = 0; k < x->n_rules; k++) {
                        bool found = false;
                        for (size_t r = 0; r < p->n_rules; r++)
                            found |= p->rules[r].name && strcmp(p->rules[r].name, x->rules[k]) == 0;
                        if (!found) {
                            size_t o3 = push(c, "[%zu]", k);
                            bad(c, f->items[k], "no rule named \"%.64s\" in this policy", x->rules[k]);
                            pop(c, o3);
                        }
                    }
                }
                pop(c, o2);
            }
        }
        pop(c, old);
    }
}

/* spec.reveal (graded reveal): [{principals: [...], rules: [{rule: r, action: {...}} or
 * {rule: r, clear: true}]}]. Rules must exist in this policy. */
static void build_grants(bctx *c, const node *n, mm_policy *p)
{
    if (!is_seq(c, n, MAX_EXEMPTIONS))
        return;
    if (!(p->grants = mm_calloc(n->n ? n->n : 1, sizeof(mm_grant)))) {
        c->oom = true;
        return;
    }
    p->n_grants = n->n;
    for (size_t i = 0; i < n->n; i++) {
        static const char *const keys[] = {"principals", "rules", NULL};
        const node *e = n->items[i], *f;
        mm_grant *g = &p->grants[i];
        size_t old = push(c, "[%zu]", i);
        if (!is_map(c, e))
            goto next;
        check_keys(c, e, keys);
        build_principals(c, e, &g->principals, &g->n_principals);
        if (!(f = node_get(e, "rules"))) {
            bad(c, e, "rules is required ([{rule: name, action: {...}} or {rule: name, clear: "
                "true}])");
            goto next;
        }
        size_t o2 = push_key(c, "rules");
        if (is_seq(c, f, MM_POLICY_MAX_RULES) &&
            !(g->rules = mm_calloc(f->n ? f->n : 1, sizeof(mm_grant_rule))))
            c->oom = true;
        for (size_t k = 0; g->rules && k < f->n; k++) {
            static const char *const rkeys[] = {"rule", "action", "clear", NULL};
            const node *gr = f->items[k], *x, *act;
            mm_grant_rule *r = &g->rules[g->n_rules++];
            const mm_rule *found = NULL;
            size_t o3 = push(c, "[%zu]", k);
            if (is_map(c, gr)) {
                check_keys(c, gr, rkeys);
                if (!(x = node_get(gr, "rule")))
                    bad(c, gr, "rule is required");
                else {
                    size_t o4 = push_key(c, "rule");
                    found = NULL;
                    r->rule = want_str(c, x, "a rule name");
                    for (size_t q = 0; r->rule && q < p->n_rules; q++)
                        if (p->rules[q].name && strcmp(p->rules[q].name, r->rule) == 0)
                            found = &p->rules[q];
                    if (r->rule && !found)
                        bad(c, x, "no rule named \"%.64s\" in this policy", r->rule);
                    pop(c, o4);
                }
                if ((x = node_get(gr, "clear")))
                    want_bool(c, x, &r->clear);
                act = node_get(gr, "action");
                if (r->clear == !!act)
                    bad(c, gr, "give either action or clear: true");
                else if (act) {
                    size_t o4 = push_key(c, "action");
                    build_action(c, act, &r->action, false);
                    if (found) /* an encrypt grant takes the rule's tweak and card defaults */
                        rule_encrypt_defaults(c, found, &r->action);
                    if (r->action.type == MM_ACTION_REMOVE)
                        bad(c, act, "remove cannot be granted (a grant changes a value, it "
                            "cannot drop it)");
                    pop(c, o4);
                }
            }
            pop(c, o3);
        }
        pop(c, o2);
    next:
        pop(c, old);
    }
}

/* A CIDR at `seg` below the current path ("cidr" or "[2]" of except). */
static void check_cidr(bctx *c, const node *n, const char *seg)
{
    size_t old = seg[0] == '[' ? push(c, "%s", seg) : push_key(c, seg);
    if (n->kind != NODE_SCALAR || n->type != SC_STRING || strlen(n->text) != n->len ||
        !cidr_ok(n->text))
        bad(c, n, "expected a CIDR such as 10.0.0.0/8 or fd00::/8");
    pop(c, old);
}

static void build_network(bctx *c, const node *n, mm_policy *p)
{
    static const char *const keys[] = {"allowFrom", NULL};
    static const char *const peer_keys[] = {"podSelector", "namespaceSelector", "ipBlock", NULL};
    const node *f;

    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if (!(f = node_get(n, "allowFrom")))
        return;
    size_t old = push_key(c, "allowFrom");
    if (is_seq(c, f, MAX_PEERS)) {
        for (size_t i = 0; i < f->n; i++) {
            const node *peer = f->items[i], *x;
            size_t o2 = push(c, "[%zu]", i);
            if (is_map(c, peer)) {
                check_keys(c, peer, peer_keys);
                if (peer->n == 0)
                    bad(c, peer, "a peer needs podSelector, namespaceSelector or ipBlock");
                if ((x = node_get(peer, "ipBlock")) &&
                    (node_get(peer, "podSelector") || node_get(peer, "namespaceSelector")))
                    bad(c, peer, "ipBlock cannot be combined with a selector in one peer");
                /* selectors are checked here and kept as JSON for the NetworkPolicy */
                static const char *const sels[] = {"podSelector", "namespaceSelector"};
                for (size_t k = 0; k < MM_ARRAY_LEN(sels); k++) {
                    if (!(x = node_get(peer, sels[k])))
                        continue;
                    size_t o3 = push_key(c, sels[k]);
                    mm_selector tmp = {0};
                    build_selector(c, x, &tmp);
                    selector_clear(&tmp);
                    pop(c, o3);
                }
                if ((x = node_get(peer, "ipBlock"))) {
                    static const char *const ip_keys[] = {"cidr", "except", NULL};
                    size_t o3 = push_key(c, "ipBlock");
                    if (is_map(c, x)) {
                        check_keys(c, x, ip_keys);
                        const node *cidr = node_get(x, "cidr"), *ex = node_get(x, "except");
                        if (!cidr)
                            bad(c, x, "cidr is required");
                        else
                            check_cidr(c, cidr, "cidr");
                        if (ex) {
                            size_t o4 = push_key(c, "except");
                            if (is_seq(c, ex, MAX_EXCEPT))
                                for (size_t k = 0; k < ex->n; k++) {
                                    char idx[32];
                                    snprintf(idx, sizeof(idx), "[%zu]", k);
                                    check_cidr(c, ex->items[k], idx);
                                }
                            pop(c, o4);
                        }
                    }
                    pop(c, o3);
                }
            }
            pop(c, o2);
        }
        mm_err rc = node_to_json(f, &p->allow_from_json);
        if (rc == MM_ELIMIT)
            bad(c, f, "longer than %u bytes as JSON", NODE_JSON_MAX);
        else if (rc != MM_OK)
            c->oom = true;
    }
    pop(c, old);
}

static void build_enum(bctx *c, const node *spec, const char *key, const char *const *names,
                       int *out)
{
    const node *f = node_get(spec, key);
    char *s;
    if (!f)
        return;
    size_t old = push_key(c, key);
    if ((s = want_str(c, f, "a value"))) {
        size_t k;
        for (k = 0; names[k] && strcmp(s, names[k]) != 0; k++)
            ;
        if (!names[k]) {
            char list[128] = "";
            size_t used = 0;
            for (size_t j = 0; names[j]; j++)
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                         j ? (names[j + 1] ? ", " : " or ") : "", names[j]);
            bad(c, f, "unknown value \"%.40s\" (expected %s)", s, list);
        } else
            *out = (int)k;
        mm_free(s);
    }
    pop(c, old);
}

static mm_policy *build_policy(bctx *c, const node *root)
{
    /* status is the controller's; metadata holds much (labels, managedFields...) that is
     * read as-is or not at all */
    static const char *const top_keys[] = {"apiVersion", "kind", "metadata", "spec", "status",
                                           NULL};
    static const char *const spec_keys[] = {"selector", "port", "mode", "onError", "direction",
                                            "rules", "headers", "exemptions", "reveal", "network",
                                            NULL};
    static const char *const modes[] = {"enforce", "audit", NULL};
    static const char *const onerr[] = {"block", "redact-all", "passthrough", NULL};
    static const char *const dirs[] = {"response", "request", "both", NULL};
    mm_policy *p = mm_calloc(1, sizeof(*p));
    const node *f, *meta, *spec;
    size_t errors_before = c->errors, old;
    char *s;
    int e;

    if (!p) {
        c->oom = true;
        return NULL;
    }
    p->mode = MM_MODE_ENFORCE;
    p->on_error = MM_ONERR_BLOCK;
    p->direction = MM_DIR_RESPONSE;
    if (!is_map(c, root))
        goto fail;
    check_keys(c, root, top_keys);

    if (!(f = node_get(root, "apiVersion")))
        bad(c, root, "apiVersion is required (maskmesh.io/v1alpha1)");
    else if ((s = want_str(c, f, "an apiVersion"))) {
        old = push_key(c, "apiVersion");
        if (strcmp(s, "maskmesh.io/v1alpha1") != 0)
            bad(c, f, "expected maskmesh.io/v1alpha1, got \"%.64s\"", s);
        pop(c, old);
        mm_free(s);
    }
    if (!(f = node_get(root, "kind")))
        bad(c, root, "kind is required (MaskingPolicy)");
    else if ((s = want_str(c, f, "a kind"))) {
        old = push_key(c, "kind");
        if (strcmp(s, "MaskingPolicy") != 0)
            bad(c, f, "expected MaskingPolicy, got \"%.64s\"", s);
        pop(c, old);
        mm_free(s);
    }

    old = push_key(c, "metadata");
    if (!(meta = node_get(root, "metadata")))
        bad(c, root, "metadata.name is required");
    else if (is_map(c, meta)) {
        if (!(f = node_get(meta, "name")))
            bad(c, meta, "name is required");
        else {
            size_t o2 = push_key(c, "name");
            if ((p->name = want_str(c, f, "a name")) && !dns_subdomain(p->name))
                bad(c, f, "\"%.64s\" is not a valid name: lowercase letters, digits, '-' and '.', "
                    "starting and ending with a letter or digit, at most 253", p->name);
            pop(c, o2);
        }
        if ((f = node_get(meta, "namespace"))) {
            size_t o2 = push_key(c, "namespace");
            if ((p->ns = want_str(c, f, "a namespace")) && !dns_label(p->ns))
                bad(c, f, "\"%.64s\" is not a valid namespace name", p->ns);
            pop(c, o2);
        }
        if ((f = node_get(meta, "uid")) && f->kind == NODE_SCALAR && !(p->uid = mm_strdup(f->text)))
            c->oom = true;
        if ((f = node_get(meta, "resourceVersion")) && f->kind == NODE_SCALAR &&
            !(p->resource_version = mm_strdup(f->text)))
            c->oom = true;
        if ((f = node_get(meta, "generation")) && f->kind == NODE_SCALAR && f->type == SC_INT)
            mm_parse_long(f->text, 0, INT64_MAX, &p->generation);
    }
    pop(c, old);

    old = push_key(c, "spec");
    if (!(spec = node_get(root, "spec"))) {
        bad(c, root, "spec is required");
        pop(c, old);
        goto done;
    }
    if (!is_map(c, spec)) {
        pop(c, old);
        goto done;
    }
    check_keys(c, spec, spec_keys);
    if (!(f = node_get(spec, "selector")))
        bad(c, spec, "selector is required ({} selects every pod of the namespace)");
    else {
        size_t o2 = push_key(c, "selector");
        build_selector(c, f, &p->selector);
        pop(c, o2);
    }
    if ((f = node_get(spec, "port"))) {
        size_t o2 = push_key(c, "port");
        long v;
        if (f->kind == NODE_SCALAR && f->type == SC_INT) {
            if (want_int(c, f, 1, 65535, &v) && !(p->port = mm_strdup(f->text)))
                c->oom = true;
        } else if ((p->port = want_str(c, f, "a port number or name")) && !port_name_ok(p->port))
            bad(c, f, "\"%.20s\" is neither a port number (1-65535, unquoted) nor a port name "
                "(at most 15 of a-z, 0-9, '-', with a letter)", p->port);
        pop(c, o2);
    }
    e = (int)p->mode;
    build_enum(c, spec, "mode", modes, &e);
    p->mode = (mm_mode)e;
    e = (int)p->on_error;
    build_enum(c, spec, "onError", onerr, &e);
    p->on_error = (mm_on_error)e;
    e = 0;
    build_enum(c, spec, "direction", dirs, &e);
    p->direction = (mm_direction)(e + 1);

    if (!(f = node_get(spec, "rules")))
        bad(c, spec, "rules is required");
    else {
        size_t o2 = push_key(c, "rules");
        if (is_seq(c, f, MM_POLICY_MAX_RULES)) {
            if (f->n == 0)
                bad(c, f, "at least one rule is required");
            if (!(p->rules = mm_calloc(f->n ? f->n : 1, sizeof(mm_rule))))
                c->oom = true;
            else {
                p->n_rules = f->n;
                for (size_t i = 0; i < f->n; i++) {
                    size_t o3 = push(c, "[%zu]", i);
                    build_rule(c, f->items[i], &p->rules[i]);
                    for (size_t j = 0; j < i && p->rules[i].name; j++)
                        if (p->rules[j].name && strcmp(p->rules[j].name, p->rules[i].name) == 0) {
                            size_t o4 = push_key(c, "name");
                            bad(c, node_get(f->items[i], "name"),
                                "duplicate rule name \"%s\" (also spec.rules[%zu])",
                                p->rules[i].name, j);
                            pop(c, o4);
                        }
                    pop(c, o3);
                }
            }
        }
        pop(c, o2);
    }
    if ((f = node_get(spec, "headers"))) {
        size_t o2 = push_key(c, "headers");
        build_headers(c, f, p);
        pop(c, o2);
    }
    if ((f = node_get(spec, "exemptions"))) {
        size_t o2 = push_key(c, "exemptions");
        build_exemptions(c, f, p);
        pop(c, o2);
    }
    if ((f = node_get(spec, "reveal"))) {
        size_t o2 = push_key(c, "reveal");
        build_grants(c, f, p);
        pop(c, o2);
    }
    if ((f = node_get(spec, "network"))) {
        size_t o2 = push_key(c, "network");
        build_network(c, f, p);
        pop(c, o2);
    }
    pop(c, old);
done:
    if (c->errors == errors_before && !c->oom)
        return p;
fail:
    mm_policy_free(p);
    return NULL;
}

/* ---- entry points --------------------------------------------------------------------- */

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

/* ---- PCI DSS lint --------------------------------------------------------------------- */

static bool field_named(const mm_rule *r, const char *const *names)
{
    for (size_t i = 0; i < r->n_fields; i++) {
        const mm_path *p = &r->fields[i];
        if (!p->n_steps || p->steps[p->n_steps - 1].kind != MM_STEP_NAME)
            continue;
        for (size_t k = 0; names[k]; k++)
            if (strcasecmp(p->steps[p->n_steps - 1].name, names[k]) == 0)
                return true;
    }
    return false;
}

static bool has_detector(const mm_rule *r, const char *d)
{
    for (size_t i = 0; i < r->n_detectors; i++)
        if (strcmp(r->detectors[i], d) == 0)
            return true;
    return false;
}

/* FF1's domain for the shortest value each detector accepts (letters and digits in it, and
 * the radix they take): NIST SP 800-38G Rev. 1 requires radix^len >= 1,000,000. */
static size_t lint_ff1_domain(const mm_policy *p, size_t i, const char *filename,
                              mm_diags *diags)
{
    static const struct {
        const char *det;
        int radix, min_len;
    } shortest[] = {
        {"credit_card", 10, 13}, {"us_ssn", 10, 9},  {"phone", 10, 8},
        {"email", 36, 4},        {"iban", 36, 15},   {"ipv4", 10, 4},
        {"ipv6", 36, 1},         {"jwt", 62, 20},    {"aws_access_key", 36, 20},
        {"bearer_token", 62, 1},
    };
    const mm_rule *r = &p->rules[i];
    const mm_action *a = &r->action;
    char msg[MM_ERRBUF_SIZE];
    size_t added = 0;

    if (a->type != MM_ACTION_ENCRYPT || a->enc_mode != MM_ENC_FF1)
        return 0;
    for (size_t k = 0; k < MM_ARRAY_LEN(shortest); k++) {
        if (!has_detector(r, shortest[k].det))
            continue;
        int kept = a->keep_first + (a->luhn != MM_LUHN_NONE && a->keep_last == 0 ? 1 : a->keep_last);
        int len = shortest[k].min_len - kept;
        double dom = 1;
        for (int j = 0; j < len; j++)
            dom *= shortest[k].radix;
        if (len > 0 && dom >= 1e6)
            continue;
        snprintf(msg, sizeof(msg), "%s: policy %s: spec.rules[%zu].action: rule \"%s\" encrypts "
                 "%s values with FF1 over a domain below NIST SP 800-38G's minimum of 1,000,000 "
                 "(the shortest has %d encrypted symbol%s of radix %d); keep fewer characters or "
                 "use mode siv (values too short to encrypt are masked)", filename, p->name, i,
                 r->name, shortest[k].det, len > 0 ? len : 0, len == 1 ? "" : "s",
                 shortest[k].radix);
        if (diags_add(diags, true, msg) == MM_OK)
            added++;
    }
    return added;
}

size_t mm_policy_lint(const mm_policy *p, const char *filename, mm_diags *diags)
{
    static const char *const card_names[] = {"card", "pan", "cc", "card_number", "cardNumber",
                                             "cardnumber", "ccnumber", "cc_number", NULL};
    static const char *const ssn_names[] = {"ssn", "social_security_number", NULL};
    char msg[MM_ERRBUF_SIZE];
    size_t added = 0;

    for (size_t i = 0; i < p->n_rules; i++) {
        const mm_rule *r = &p->rules[i];
        bool card = has_detector(r, "credit_card") || field_named(r, card_names);
        bool ssn = has_detector(r, "us_ssn") || field_named(r, ssn_names);
        if (card && (r->action.type == MM_ACTION_MASK || r->action.type == MM_ACTION_ENCRYPT) &&
            (r->action.keep_first > 6 || r->action.keep_last > 4)) {
            snprintf(msg, sizeof(msg), "%s: policy %s: spec.rules[%zu].action: rule \"%s\" shows "
                     "more of a card number than PCI DSS allows (at most the first 6 and last 4 "
                     "digits; keepFirst %d, keepLast %d)", filename, p->name, i, r->name,
                     r->action.keep_first, r->action.keep_last);
            if (diags_add(diags, true, msg) == MM_OK)
                added++;
        }
        added += lint_ff1_domain(p, i, filename, diags);
        if ((card || ssn) && r->action.type == MM_ACTION_HASH && !r->action.key) {
            snprintf(msg, sizeof(msg), "%s: policy %s: spec.rules[%zu].action: rule \"%s\" hashes "
                     "%s without a key: such low-entropy values are reversible by brute force; "
                     "use a keyed hash (key) or tokenize", filename, p->name, i, r->name,
                     card ? "card numbers" : "SSNs");
            if (diags_add(diags, true, msg) == MM_OK)
                added++;
        }
    }
    return added;
}
