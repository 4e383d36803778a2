/* lib/admission: a strict RFC 8259 reader that builds json-c trees. json-c's tokener runs a
 * state machine per byte and copies every string through its printbuf; an AdmissionReview is
 * a few kilobytes read on every request, so the webhook reads it with this recursive-descent
 * parser instead: strings without escapes go to json-c straight from the input, and the
 * subtrees the caller says it never reads (a pod's managedFields) are checked but not built. */
#include "admission/admission.h"
#include "admission/admission_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t len, pos;
    unsigned depth;
    mm_buf scratch;  /* unescaped strings and NUL-terminated keys */
    char *keys;      /* NULL, or where kept keys go, NUL-terminated, for the tree's life */
    size_t keys_len;
    const char *err; /* what is wrong at pos (static) */
    bool oom;
    bool keep_mode; /* the paths given say what is built, not what is left out */
} reader;

/* keep mode: a list with no paths left: an object's members are all left out, an array's
 * elements are built (so indices hold) as empty objects, scalars as they are */
static const char *const keep_none[] = {NULL};

/* adm_json_plain (admission_int.h): one table load per byte instead of three comparisons, in
 * the reader's and the writer's hottest loops. */
#define PLAIN16(b) 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
const unsigned char adm_json_plain[256] = {
    /* 0x00-0x1f: control characters */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0 /* " */, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f */
    PLAIN16(0x30), PLAIN16(0x40),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 /* \\ */, 1, 1, 1, /* 0x50-0x5f */
    PLAIN16(0x60), PLAIN16(0x70), PLAIN16(0x80), PLAIN16(0x90), PLAIN16(0xa0), PLAIN16(0xb0),
    PLAIN16(0xc0), PLAIN16(0xd0), PLAIN16(0xe0), PLAIN16(0xf0),
};

/* Eight bytes at a time (SWAR) where the byte order lets the lowest set bit of a mask name
 * the first byte that matched: the reader's two long loops, over a string's plain bytes and
 * over indentation, then cost a few instructions per 8 bytes instead of per byte. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ADM_SWAR 1
#define ONES UINT64_C(0x0101010101010101)
static inline uint64_t load8(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}
#endif

static void ws_run(reader *r)
{
    while (r->pos < r->len) {
        char c = r->s[r->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            return;
        r->pos++;
#ifdef ADM_SWAR
        if (c == '\n') /* indentation: a run of spaces after a newline */
            while (r->pos + 8 <= r->len) {
                uint64_t other = load8(r->s + r->pos) ^ (ONES * ' ');
                if (other) {
                    r->pos += (size_t)__builtin_ctzll(other) / 8;
                    break;
                }
                r->pos += 8;
            }
#endif
    }
}

/* Whitespace between tokens: an API server sends compact JSON, so the usual case is none,
 * answered inline by one comparison (no JSON token starts with a byte at or below ' '). */
static inline void ws(reader *r)
{
    if (r->pos < r->len && (unsigned char)r->s[r->pos] > ' ')
        return;
    ws_run(r);
}

static bool fail(reader *r, const char *what)
{
    if (!r->err)
        r->err = what;
    return false;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* Reads the string at pos (after its opening quote). Sets *out and *out_len to the bytes: the
 * input itself when there is no escape, else r->scratch (replaced by the next string). */
static bool string(reader *r, const char **out, size_t *out_len)
{
    size_t start = r->pos;
    const char *s = r->s;

    while (r->pos < r->len) { /* the common case: no escape */
        unsigned char c;
#ifdef ADM_SWAR
        while (r->pos + 8 <= r->len) {
            uint64_t m = mm_json_special8(load8(s + r->pos));
            if (m) {
                r->pos += (size_t)__builtin_ctzll(m) / 8;
                break;
            }
            r->pos += 8;
        }
#endif
        while (r->pos < r->len && adm_json_plain[(unsigned char)s[r->pos]])
            r->pos++;
        if (r->pos >= r->len)
            break;
        c = (unsigned char)s[r->pos];
        if (c == '"') {
            *out = s + start;
            *out_len = r->pos - start;
            r->pos++;
            return true;
        }
        if (c == '\\')
            break;
        if (c < 0x20)
            return fail(r, "control character in a string");
        r->pos++;
    }
    mm_buf_reset(&r->scratch);
    if (mm_buf_append(&r->scratch, s + start, r->pos - start) != MM_OK) {
        r->oom = true;
        return false;
    }
    while (r->pos < r->len) {
        unsigned char c = (unsigned char)s[r->pos];
        mm_err rc = MM_OK;
        if (c == '"') {
            r->pos++;
            *out = mm_buf_cstr(&r->scratch);
            *out_len = r->scratch.len;
            return true;
        }
        if (c < 0x20)
            return fail(r, "control character in a string");
        if (c != '\\') {
            size_t run = r->pos;
            while (run < r->len && s[run] != '"' && s[run] != '\\' && (unsigned char)s[run] >= 0x20)
                run++;
            rc = mm_buf_append(&r->scratch, s + r->pos, run - r->pos);
            r->pos = run;
        } else {
            char e;
            if (r->pos + 1 >= r->len)
                break;
            e = s[r->pos + 1];
            r->pos += 2;
            switch (e) {
            case '"': rc = mm_buf_putc(&r->scratch, '"'); break;
            case '\\': rc = mm_buf_putc(&r->scratch, '\\'); break;
            case '/': rc = mm_buf_putc(&r->scratch, '/'); break;
            case 'b': rc = mm_buf_putc(&r->scratch, '\b'); break;
            case 'f': rc = mm_buf_putc(&r->scratch, '\f'); break;
            case 'n': rc = mm_buf_putc(&r->scratch, '\n'); break;
            case 'r': rc = mm_buf_putc(&r->scratch, '\r'); break;
            case 't': rc = mm_buf_putc(&r->scratch, '\t'); break;
            case 'u': {
                int cp = r->pos + 4 <= r->len ? hex4(s + r->pos) : -1;
                if (cp < 0) {
                    r->pos -= 2;
                    return fail(r, "bad \\u escape");
                }
                r->pos += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && r->pos + 6 <= r->len && s[r->pos] == '\\' &&
                    s[r->pos + 1] == 'u') {
                    int lo = hex4(s + r->pos + 2);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        r->pos += 6;
                    }
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) /* a lone surrogate, as json-c does */
                    cp = 0xFFFD;
                rc = mm_buf_put_utf8(&r->scratch, (unsigned long)cp);
                break;
            }
            default: r->pos -= 2; return fail(r, "bad escape in a string");
            }
        }
        if (rc != MM_OK) {
            r->oom = true;
            return false;
        }
    }
    return fail(r, "unexpected end of input in a string");
}

static bool literal(reader *r, const char *word)
{
    size_t n = strlen(word);
    if (r->len - r->pos < n || memcmp(r->s + r->pos, word, n) != 0)
        return fail(r, "unexpected character");
    r->pos += n;
    return true;
}

static json_object *number(reader *r, bool build)
{
    const char *s = r->s;
    size_t start = r->pos;
    bool integral = true;
    char buf[64];
    json_object *o;

    if (r->pos < r->len && s[r->pos] == '-')
        r->pos++;
    if (r->pos >= r->len || s[r->pos] < '0' || s[r->pos] > '9')
        return fail(r, r->pos == start ? "unexpected character" : "bad number"), NULL;
    if (s[r->pos] == '0')
        r->pos++;
    else
        while (r->pos < r->len && s[r->pos] >= '0' && s[r->pos] <= '9')
            r->pos++;
    if (r->pos < r->len && s[r->pos] == '.') {
        integral = false;
        r->pos++;
        if (r->pos >= r->len || s[r->pos] < '0' || s[r->pos] > '9')
            return fail(r, "bad number"), NULL;
        while (r->pos < r->len && s[r->pos] >= '0' && s[r->pos] <= '9')
            r->pos++;
    }
    if (r->pos < r->len && (s[r->pos] == 'e' || s[r->pos] == 'E')) {
        integral = false;
        r->pos++;
        if (r->pos < r->len && (s[r->pos] == '+' || s[r->pos] == '-'))
            r->pos++;
        if (r->pos >= r->len || s[r->pos] < '0' || s[r->pos] > '9')
            return fail(r, "bad number"), NULL;
        while (r->pos < r->len && s[r->pos] >= '0' && s[r->pos] <= '9')
            r->pos++;
    }
    /* the limits hold where the number is not built too: a left-out member is refused as the
     * whole reader refuses it (same verdict, same message) */
    if (r->pos - start >= sizeof(buf)) {
        r->pos = start;
        return fail(r, "number longer than 63 characters"), NULL;
    }
    if (!build && integral)
        return NULL;
    memcpy(buf, s + start, r->pos - start);
    buf[r->pos - start] = '\0';
    errno = 0;
    if (integral) { /* as json-c: int64, else uint64, saturating at either end */
        long long v = strtoll(buf, NULL, 10);
        if (errno == 0 || buf[0] == '-')
            o = json_object_new_int64(v);
        else
            o = json_object_new_uint64(strtoull(buf, NULL, 10));
    } else {
        double d = strtod(buf, NULL);
        if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) {
            r->pos = start;
            return fail(r, "number out of range"), NULL;
        }
        if (!build)
            return NULL;
        o = json_object_new_double_s(d, buf); /* keeps the text for output */
    }
    if (!o)
        r->oom = true;
    return o;
}

/* The value at pos; *out is NULL for JSON null and when !build (the value is checked only). */
static bool value(reader *r, bool build, const char *const *skip, json_object **out);

/* After a member or element: 1 when a ',' says another follows, 0 at the closing bracket,
 * -1 on anything else. */
static int next_item(reader *r, char close)
{
    ws(r);
    if (r->pos < r->len && r->s[r->pos] == ',') {
        r->pos++;
        return 1;
    }
    if (r->pos < r->len && r->s[r->pos] == close) {
        r->pos++;
        return 0;
    }
    fail(r, r->pos >= r->len ? "unexpected end of input"
            : close == '}'   ? "expected ',' or '}'"
                             : "expected ',' or ']'");
    return -1;
}

/* paths: those (NULL-terminated, "a/b/c") still to match, relative to this object. True when
 * one is just `key`; else the longer ones starting with `key/` go on, relative to it, into
 * *sub (at most max - 1 of them, NULL-terminated). Skip mode drops a member that a path ends
 * at; keep mode builds it whole, builds the parts *sub names, or (neither) leaves it out. */
static bool match_member(const char *const *paths, const char *key, size_t klen, const char **sub,
                         size_t max)
{
    size_t n = 0;
    for (size_t i = 0; paths && paths[i]; i++) {
        /* the first byte first: most keys match no path (key is not NUL-terminated, but
         * klen == 0 leaves key[0] the closing quote, which no path starts with) */
        if (paths[i][0] != key[0] || strncmp(paths[i], key, klen) != 0)
            continue;
        if (paths[i][klen] == '\0')
            return true;
        if (paths[i][klen] == '/' && n + 1 < max)
            sub[n++] = paths[i] + klen + 1;
    }
    sub[n] = NULL;
    return false;
}

static bool object(reader *r, bool build, const char *const *skip, json_object **out)
{
    json_object *o = NULL;
    char small[128], *heap = NULL;

    r->pos++; /* { */
    if (build && !(o = json_object_new_object())) {
        r->oom = true;
        return false;
    }
    ws(r);
    if (r->pos < r->len && r->s[r->pos] == '}') {
        r->pos++;
        *out = o;
        return true;
    }
    for (;;) {
        const char *k, *sub[32];
        const char *const *sel = NULL;
        char *key = small;
        size_t klen;
        bool keep;
        int more;
        json_object *v = NULL;

        ws(r);
        if (r->pos >= r->len || r->s[r->pos] != '"') {
            fail(r, r->pos >= r->len ? "unexpected end of input" : "expected a string key");
            goto bad;
        }
        r->pos++;
        if (!string(r, &k, &klen))
            goto bad;
        if (!build || !skip) {
            keep = build;
        } else if (match_member(skip, k, klen, sub, MM_ARRAY_LEN(sub))) {
            keep = r->keep_mode; /* a path ends here: all of it kept, or left out */
        } else if (r->keep_mode) { /* the parts the paths name, or nothing */
            keep = sub[0] != NULL;
            sel = sub;
        } else {
            keep = true;
            sel = sub[0] ? sub : NULL;
        }
        if (keep && r->keys) { /* into the arena: json-c then keeps the pointer, no copy */
            key = r->keys + r->keys_len;
            memcpy(key, k, klen);
            key[klen] = '\0';
            r->keys_len += klen + 1;
        } else if (keep) { /* json-c wants the key NUL-terminated, and the value may reuse scratch */
            if (klen >= sizeof(small)) {
                mm_free(heap);
                if (!(key = heap = mm_malloc(klen + 1))) {
                    r->oom = true;
                    goto bad;
                }
            }
            memcpy(key, k, klen);
            key[klen] = '\0';
        }
        ws(r);
        if (r->pos >= r->len || r->s[r->pos] != ':') {
            fail(r, r->pos >= r->len ? "unexpected end of input" : "expected ':'");
            goto bad;
        }
        r->pos++;
        if (!value(r, keep, keep ? sel : NULL, &v))
            goto bad;
        if (keep && json_object_object_add_ex(o, key, v, r->keys ? JSON_C_OBJECT_KEY_IS_CONSTANT : 0) != 0) {
            json_object_put(v);
            r->oom = true;
            goto bad;
        }
        if ((more = next_item(r, '}')) < 0)
            goto bad;
        if (!more)
            break;
    }
    mm_free(heap);
    *out = o;
    return true;
bad:
    mm_free(heap);
    json_object_put(o);
    return false;
}

/* skip as for object(); its paths starting with `*` + '/' go on into every element. */
static bool array(reader *r, bool build, const char *const *skip, json_object **out)
{
    json_object *a = NULL;
    const char *each[32];
    const char *const *sel;
    size_t n = 0;
    bool all = !skip;

    for (size_t i = 0; skip && skip[i]; i++) {
        if (skip[i][0] == '*' && skip[i][1] == '/' && n + 1 < MM_ARRAY_LEN(each))
            each[n++] = skip[i] + 2;
        else if (skip[i][0] == '*' && skip[i][1] == '\0')
            all = true;
    }
    each[n] = NULL;
    if (r->keep_mode) /* every element is built, so indices hold; `*` alone: all of each */
        sel = all ? NULL : n ? each : keep_none;
    else
        sel = n ? each : NULL;

    r->pos++; /* [ */
    if (build && !(a = json_object_new_array())) {
        r->oom = true;
        return false;
    }
    ws(r);
    if (r->pos < r->len && r->s[r->pos] == ']') {
        r->pos++;
        *out = a;
        return true;
    }
    for (;;) {
        json_object *v = NULL;
        int more;
        if (!value(r, build, sel, &v))
            goto bad;
        if (build && json_object_array_add(a, v) != 0) {
            json_object_put(v);
            r->oom = true;
            goto bad;
        }
        if ((more = next_item(r, ']')) < 0)
            goto bad;
        if (!more)
            break;
    }
    *out = a;
    return true;
bad:
    json_object_put(a);
    return false;
}

/* An object's `"key":` up to its value, as object() reads it (same errors, same places). */
static bool member_key(reader *r)
{
    const char *k;
    size_t klen;

    ws(r);
    if (r->pos >= r->len || r->s[r->pos] != '"')
        return fail(r, r->pos >= r->len ? "unexpected end of input" : "expected a string key");
    r->pos++;
    if (!string(r, &k, &klen))
        return false;
    ws(r);
    if (r->pos >= r->len || r->s[r->pos] != ':')
        return fail(r, r->pos >= r->len ? "unexpected end of input" : "expected ':'");
    r->pos++;
    return true;
}

/* The value at pos checked and not built: the grammar of value(), object() and array() in one
 * loop with the open brackets on a stack, no call and no key matching per member (most of a
 * review is left out). It must accept and refuse exactly as they do, at the same byte with
 * the same words: test_review_skip compares the two on every byte of a review. */
static bool check_value(reader *r)
{
    char close[ADM_JSON_DEPTH_MAX + 1]; /* the brackets open here, innermost last */
    size_t top = 0;

    for (;;) {
        char c;
        ws(r);
        if (r->pos >= r->len)
            return fail(r, "unexpected end of input");
        c = r->s[r->pos];
        if (c == '{' || c == '[') {
            if (++r->depth > ADM_JSON_DEPTH_MAX)
                return fail(r, "nested too deep");
            r->pos++;
            close[top++] = c == '{' ? '}' : ']';
            ws(r);
            if (r->pos < r->len && r->s[r->pos] == close[top - 1]) { /* empty */
                r->pos++;
                r->depth--;
                top--;
            } else {
                if (c == '{' && !member_key(r))
                    return false;
                continue; /* the first member's or element's value */
            }
        } else if (c == '"') {
            const char *str;
            size_t len;
            r->pos++;
            if (!string(r, &str, &len))
                return false;
        } else if (c == 't' || c == 'f' || c == 'n') {
            if (!literal(r, c == 't' ? "true" : c == 'f' ? "false" : "null"))
                return false;
        } else if (number(r, false), r->err || r->oom) {
            return false;
        }
        /* after a value: close what ends here, until a ',' says another value follows */
        for (;;) {
            int more;
            if (top == 0)
                return true;
            if ((more = next_item(r, close[top - 1])) < 0)
                return false;
            if (more) {
                if (close[top - 1] == '}' && !member_key(r))
                    return false;
                break;
            }
            r->depth--;
            top--;
        }
    }
}

static bool value(reader *r, bool build, const char *const *skip, json_object **out)
{
    const char *str;
    size_t len;
    bool ok;

    *out = NULL;
    if (!build)
        return check_value(r);
    ws(r);
    if (r->pos >= r->len)
        return fail(r, "unexpected end of input");
    switch (r->s[r->pos]) {
    case '{':
    case '[':
        if (++r->depth > ADM_JSON_DEPTH_MAX)
            return fail(r, "nested too deep");
        ok = r->s[r->pos] == '{' ? object(r, build, skip, out) : array(r, build, skip, out);
        r->depth--;
        return ok;
    case '"':
        r->pos++;
        if (!string(r, &str, &len))
            return false;
        if (build && !(*out = json_object_new_string_len(str, (int)len))) {
            r->oom = true;
            return false;
        }
        return true;
    case 't':
        if (!literal(r, "true"))
            return false;
        if (build && !(*out = json_object_new_boolean(1)))
            return r->oom = true, false;
        return true;
    case 'f':
        if (!literal(r, "false"))
            return false;
        if (build && !(*out = json_object_new_boolean(0)))
            return r->oom = true, false;
        return true;
    case 'n': return literal(r, "null");
    default: *out = number(r, build); return !r->err && !r->oom;
    }
}

mm_err adm_json_parse(const char *s, size_t len, const char *const *skip, json_object **out,
                      mm_errbuf *eb)
{
    return adm_json_parse_keys(s, len, skip, out, NULL, eb);
}

static mm_err parse(const char *s, size_t len, const char *const *paths, bool keep_mode,
                    json_object **out, char **keys, mm_errbuf *eb)
{
    reader r = {.s = s, .len = len, .keep_mode = keep_mode};
    const char *const *skip = paths;
    json_object *v = NULL;
    mm_err rc = MM_OK;

    *out = NULL;
    if (keys)
        *keys = NULL;
    if (len > INT32_MAX)
        return mm_errf(eb, MM_ELIMIT, "not JSON: longer than 2 GiB");
    /* every key with its NUL fits in the input: it had two quotes there, and unescaping only
     * shortens; one allocation instead of one per member */
    if (keys && !(r.keys = mm_malloc(len + 1)))
        return mm_errf(eb, MM_ENOMEM, "out of memory reading JSON");
    mm_buf_init(&r.scratch, 0);
    if (!value(&r, true, skip, &v)) {
        rc = r.oom ? mm_errf(eb, MM_ENOMEM, "out of memory reading JSON")
                   : mm_errf(eb, MM_EPARSE, "not JSON at byte %zu: %s", r.pos, r.err);
        goto out;
    }
    ws(&r);
    if (r.pos < len) {
        rc = mm_errf(eb, MM_EPARSE, "unexpected data after the JSON value at byte %zu", r.pos);
        goto out;
    }
    *out = v;
    v = NULL;
    if (keys) {
        *keys = r.keys;
        r.keys = NULL;
    }
out:
    json_object_put(v); /* before the keys it may point into */
    mm_free(r.keys);
    mm_buf_free(&r.scratch);
    return rc;
}

mm_err adm_json_parse_keys(const char *s, size_t len, const char *const *skip, json_object **out,
                           char **keys, mm_errbuf *eb)
{
    return parse(s, len, skip, false, out, keys, eb);
}

mm_err adm_json_parse_only(const char *s, size_t len, const char *const *keep, json_object **out,
                           char **keys, mm_errbuf *eb)
{
    return parse(s, len, keep, true, out, keys, eb);
}
