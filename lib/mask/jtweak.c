/* lib/mask: encrypt's tweak from another member of the same JSON object
 * (tweak: {field: NAME}), for the streaming JSON machine (json.c calls these at a few
 * points and knows nothing else of it).
 *
 * A value's object is the nearest enclosing object (for an element of an array, the object
 * holding the array). Its tweak is the value of member NAME of that object: a string's
 * decoded content, or an integer's decimal text (-0 is 0); null, true, false, other
 * numbers, integers past 64 bits (and -2^63 and 2^64-1, where json-c, which reveal reads
 * with, clamps them), objects, arrays and values longer than MM_TWEAK_FIELD_MAX bytes
 * count as missing.
 *  - NAME came before the value: the value is encrypted at once.
 *  - NAME comes after it: the value's place in the output is kept, and the output from
 *    there on is held (not handed to the sink) until NAME's value is read, or the object
 *    ends; then the ciphertext is put in its place and what was held goes on. Held output
 *    is bounded (JTW_HOLD_MAX bytes, JTW_MAX_PENDING values): past that the stream fails,
 *    naming the offset, rather than grow or guess.
 *  - The object ends without a usable NAME: the value takes the action's own tweak, the
 *    rule's name ("defaultDeny" for a default deny) — still encrypted, and maskctl reveal
 *    decides the same way from the same document.
 *  - NAME twice in one object: the stream fails (JSON parsers disagree on which one counts,
 *    so reveal could not know which tweak was used).
 * The tweak is the member as it came in: a rule that changes that member leaves reveal
 * without it (docs/encrypt.md). */
#include "mask/crypt_int.h"
#include "mask/stream_int.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JTW_MAX_FIELDS 8          /* distinct tweak members the actions of one stream read */
#define JTW_MAX_PENDING 64        /* values waiting for their tweak at one time */
#define JTW_MAX_SEEN 1024         /* tweak values of the open objects */
#define JTW_HOLD_MAX (1u << 20)   /* output bytes held back while values wait */

typedef struct {
    size_t depth; /* the object's frame index */
    int field;
    size_t len;
    unsigned char v[MM_TWEAK_FIELD_MAX];
} jtw_seen;

typedef struct {
    size_t depth;
    int field;
    const act_t *a;
    size_t pos;   /* where its ciphertext goes in s->ob */
    bool placed;  /* pos is set (jtw_place) */
    uint64_t off; /* the value's offset in the input, for messages */
    mm_buf plain; /* the value, decoded: wiped when done */
} jtw_pend;

struct jtweak {
    const char *fields[JTW_MAX_FIELDS]; /* borrowed from the actions */
    int nf;
    int want;          /* the member just named is fields[want] of object want_depth; -1 */
    size_t want_depth;
    jtw_seen *seen;
    size_t nseen, seencap;
    jtw_pend pend[JTW_MAX_PENDING];
    size_t npend;
    mm_buf ct;         /* one ciphertext, raw then as a JSON string */
    mm_buf lit;
};

static int field_of(const jtweak *t, const char *name, size_t n)
{
    for (int i = 0; i < t->nf; i++)
        if (strlen(t->fields[i]) == n && memcmp(t->fields[i], name, n) == 0)
            return i;
    return -1;
}

static const char *act_field(const act_t *a)
{
    return a->type == MM_ACTION_ENCRYPT && a->enc ? enc_tweak_field(a->enc) : NULL;
}

mm_err jtw_init(mm_stream *s)
{
    jtweak *t = NULL;

    for (size_t r = 0; r < s->m->n_rules; r++) {
        const char *f = s->rs[r] == RS_APPLY ? act_field(s->ract[r]) : NULL;
        if (!f)
            continue;
        if (!t && !(t = mm_calloc(1, sizeof(*t))))
            return MM_ENOMEM;
        s->tw = t;
        if (field_of(t, f, strlen(f)) >= 0)
            continue;
        if (t->nf == JTW_MAX_FIELDS)
            return mm_errf(s->eb, MM_ELIMIT, "more than %d tweak fields in one stream",
                           JTW_MAX_FIELDS);
        t->fields[t->nf++] = f;
    }
    if (t)
        t->want = -1;
    return MM_OK;
}

/* The stream fails with a message naming the input offset, as emit.c's st_fail words it
 * (not called: emit.c calls this file, and calls go one way). */
static mm_err fail(mm_stream *s, mm_err e, uint64_t off, const char *what)
{
    s->failed = true;
    if (s->o.kind != MM_BODY_JSON)
        return mm_errf(s->eb, e, "line %llu: offset %llu: %s", (unsigned long long)s->line,
                       (unsigned long long)off, what);
    return mm_errf(s->eb, e, "offset %llu: %s", (unsigned long long)off, what);
}

/* Plaintexts and tweaks do not outlive their use in memory. */
static void buf_wipe(mm_buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->len);
    b->len = 0;
}

static void pend_clear(jtw_pend *p)
{
    buf_wipe(&p->plain);
}

void jtw_reset(mm_stream *s)
{
    jtweak *t = s->tw;
    if (!t)
        return;
    for (size_t i = 0; i < t->npend; i++)
        pend_clear(&t->pend[i]);
    if (t->seen)
        OPENSSL_cleanse(t->seen, t->nseen * sizeof(*t->seen));
    t->npend = t->nseen = 0;
    t->want = -1;
}

void jtw_free(mm_stream *s)
{
    jtweak *t = s->tw;
    if (!t)
        return;
    jtw_reset(s);
    for (size_t i = 0; i < JTW_MAX_PENDING; i++)
        mm_buf_free(&t->pend[i].plain);
    buf_wipe(&t->ct);
    mm_buf_free(&t->ct);
    mm_buf_free(&t->lit);
    mm_free(t->seen);
    mm_free(t);
    s->tw = NULL;
}

bool jtw_holding(const mm_stream *s)
{
    return s->tw->npend > 0;
}

/* The nearest enclosing object's frame index, or SIZE_MAX at the root or in arrays only. */
static size_t obj_depth(const mm_stream *s)
{
    for (size_t k = s->depth; k-- > 0;)
        if (s->fr[k].kind == '{')
            return k;
    return SIZE_MAX;
}

static const jtw_seen *seen_get(const jtweak *t, size_t depth, int field)
{
    for (size_t i = t->nseen; i-- > 0 && t->seen[i].depth >= depth;)
        if (t->seen[i].depth == depth && t->seen[i].field == field)
            return &t->seen[i];
    return NULL;
}

void jtw_member(mm_stream *s, const char *k, size_t n)
{
    jtweak *t = s->tw;
    t->want = k ? field_of(t, k, n) : -1;
    t->want_depth = s->depth - 1;
}

bool jtw_wants(const mm_stream *s)
{
    const jtweak *t = s->tw;
    return t->want >= 0 && t->want_depth + 1 == s->depth;
}

/* The ciphertext of p (tweak `tw`, or the action's own when NULL) as a JSON string, into
 * its place in the held output; later places move by its length. */
static mm_err put_in_place(mm_stream *s, size_t i, const void *tw, size_t twl)
{
    jtweak *t = s->tw;
    jtw_pend *p = &t->pend[i];
    mm_err rc;
    size_t len;

    mm_buf_reset(&t->ct);
    mm_buf_reset(&t->lit);
    rc = tw ? enc_crypt_tweak(p->a->enc, tw, twl, p->plain.data ? p->plain.data : "",
                              p->plain.len, &t->ct, false)
            : enc_encrypt(p->a->enc, p->plain.data ? p->plain.data : "", p->plain.len, &t->ct);
    if (rc != MM_OK ||
        (rc = mm_buf_put_json_str(&t->lit, t->ct.data ? t->ct.data : "", t->ct.len)) != MM_OK)
        return rc;
    len = t->lit.len;
    if ((rc = mm_buf_reserve(&s->ob, len)) != MM_OK)
        return rc;
    memmove(s->ob.data + p->pos + len, s->ob.data + p->pos, s->ob.len - p->pos);
    memcpy(s->ob.data + p->pos, t->lit.data, len);
    s->ob.len += len;
    for (size_t j = i + 1; j < t->npend; j++)
        t->pend[j].pos += len;
    return MM_OK;
}

/* Puts in place the values of object `depth` that wait for `field` (every field when -1),
 * with tweak tw (NULL: the action's own), and forgets them. */
static mm_err resolve(mm_stream *s, size_t depth, int field, const void *tw, size_t twl)
{
    jtweak *t = s->tw;
    mm_err rc = MM_OK;
    size_t keep = 0;

    for (size_t i = 0; i < t->npend; i++) {
        jtw_pend *p = &t->pend[i];
        if (p->depth == depth && (field < 0 || p->field == field) && p->placed) {
            if (rc == MM_OK)
                rc = put_in_place(s, i, tw, twl);
            pend_clear(p);
            continue;
        }
        if (keep != i) { /* move it down, its buffer with it */
            mm_buf b = t->pend[keep].plain;
            t->pend[keep] = *p;
            p->plain = b;
        }
        keep++;
    }
    t->npend = keep;
    return rc;
}

/* JSON number text v[0..n) as json-c prints it back when it is an integer in 64 bits:
 * false for fractions, exponents and what json-c clamps. */
static bool int_text(const char *v, size_t n, char out[24], size_t *outlen)
{
    char buf[24];
    int k;

    if (n == 0 || n > 21 || strspn(v + (v[0] == '-'), "0123456789") != n - (v[0] == '-') ||
        n == (size_t)(v[0] == '-'))
        return false;
    memcpy(buf, v, n);
    buf[n] = '\0';
    errno = 0;
    if (v[0] == '-') {
        long long x = strtoll(buf, NULL, 10);
        if (errno || x == LLONG_MIN)
            return false;
        k = snprintf(out, 24, "%lld", x);
    } else {
        unsigned long long x = strtoull(buf, NULL, 10);
        if (errno || x == ULLONG_MAX)
            return false;
        k = snprintf(out, 24, "%llu", x);
    }
    *outlen = (size_t)k;
    return true;
}

mm_err jtw_value(mm_stream *s, const char *v, size_t n, int kind)
{
    jtweak *t = s->tw;
    char num[24];
    int field = t->want;
    size_t depth = t->want_depth;
    jtw_seen *e;

    if (!jtw_wants(s))
        return MM_OK;
    t->want = -1;
    if (seen_get(t, depth, field))
        return fail(s, MM_EPARSE, s->voff, "a tweak member appears twice in one "
                       "object");
    if (kind == 1) { /* a number: an integer's decimal text, else missing */
        if (!int_text(v, n, num, &n))
            return MM_OK;
        v = num;
    } else if (kind != 0) {
        return MM_OK; /* true, false, null */
    }
    if (n > MM_TWEAK_FIELD_MAX)
        return MM_OK;
    if (t->nseen == t->seencap) {
        size_t cap = t->seencap ? t->seencap * 2 : 8;
        jtw_seen *ns;
        if (cap > JTW_MAX_SEEN)
            return fail(s, MM_ELIMIT, s->voff, "too many tweak members in the open "
                           "objects");
        if (!(ns = mm_realloc(t->seen, cap * sizeof(*ns))))
            return MM_ENOMEM;
        t->seen = ns;
        t->seencap = cap;
    }
    e = &t->seen[t->nseen++];
    e->depth = depth;
    e->field = field;
    e->len = n;
    memcpy(e->v, v, n);
    return resolve(s, depth, field, e->v, e->len);
}

bool jtw_takes(const mm_stream *s, const act_t *a)
{
    return s->tw && act_field(a);
}

mm_err jtw_apply(mm_stream *s, const act_t *a, const char *in, size_t n, mm_buf *out)
{
    jtweak *t = s->tw;
    const char *name = act_field(a);
    size_t depth = obj_depth(s);
    int field = field_of(t, name, strlen(name));
    const jtw_seen *e = depth == SIZE_MAX ? NULL : seen_get(t, depth, field);
    jtw_pend *p;
    mm_err rc;

    if (depth == SIZE_MAX || e) { /* no object to wait in, or its tweak is here */
        mm_buf_reset(&t->ct);
        rc = e ? enc_crypt_tweak(a->enc, e->v, e->len, in, n, &t->ct, false)
               : enc_encrypt(a->enc, in, n, &t->ct);
        if (rc == MM_OK)
            rc = mm_buf_put_json_str(out, t->ct.data ? t->ct.data : "", t->ct.len);
        return rc;
    }
    if (t->npend == JTW_MAX_PENDING)
        return fail(s, MM_ELIMIT, s->voff, "too many values wait for their tweak "
                       "member");
    p = &t->pend[t->npend];
    mm_buf_reset(&p->plain);
    if ((rc = mm_buf_append(&p->plain, in, n)) != MM_OK)
        return rc;
    p->depth = depth;
    p->field = field;
    p->a = a;
    p->placed = false;
    p->off = s->voff;
    t->npend++;
    return MM_OK; /* `out` stays empty: jtw_place marks where the value goes */
}

void jtw_place(mm_stream *s)
{
    jtweak *t = s->tw;
    if (t && t->npend && !t->pend[t->npend - 1].placed) {
        t->pend[t->npend - 1].pos = s->ob.len;
        t->pend[t->npend - 1].placed = true;
    }
}

mm_err jtw_object_end(mm_stream *s)
{
    jtweak *t = s->tw;
    size_t depth = s->depth - 1;
    mm_err rc = resolve(s, depth, -1, NULL, 0);

    while (t->nseen && t->seen[t->nseen - 1].depth >= depth) {
        t->nseen--;
        OPENSSL_cleanse(&t->seen[t->nseen], sizeof(t->seen[t->nseen]));
    }
    if (t->want >= 0 && t->want_depth >= depth)
        t->want = -1;
    return rc;
}

mm_err jtw_put(mm_stream *s, const char *p, size_t n)
{
    if (s->ob.len + n > JTW_HOLD_MAX)
        return fail(s, MM_ELIMIT, s->tw->pend[0].off, "a value waits for its tweak "
                       "member past the output a stream may hold (1 MiB)");
    return mm_buf_append(&s->ob, p, n);
}

mm_err jtw_flush(mm_stream *s)
{
    jtweak *t = s->tw;
    size_t hold = t->pend[0].placed ? t->pend[0].pos : s->ob.len;
    mm_err rc = MM_OK;

    if (hold) {
        rc = s->write(s->wctx, s->ob.data, hold);
        s->st.bytes_out += hold;
        memmove(s->ob.data, s->ob.data + hold, s->ob.len - hold);
        s->ob.len -= hold;
        for (size_t i = 0; i < t->npend; i++)
            t->pend[i].pos -= t->pend[i].placed ? hold : 0;
    }
    return rc;
}
