/* lib/mask: the JSON masker's paths — stepping the JSONPath automaton (path.c builds it)
 * from a container's active states to a child's, with the rules and allow lists the child's
 * states complete, from a member name json.c read (key_step) or one jskim judges in place
 * (names_judge, names_replace); and the JSONPath of the value in progress, for findings. */
#include "mask/stream_int.h"

#include <string.h>

/* ---- the path automaton --------------------------------------------------------------- */

/* Whether a[0..n) == b[0..n), in word loads for the short names paths have. */
static inline bool same_name(const char *a, const char *b, size_t n)
{
    uint64_t x, y;
    uint32_t u, v;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y)
                return false;
        }
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        memcpy(&u, a, 4);
        memcpy(&v, b, 4);
        if (u != v)
            return false;
        memcpy(&u, a + n - 4, 4);
        memcpy(&v, b + n - 4, 4);
        return u == v;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* inline: it runs for every member name of a by_name object */
static inline __attribute__((always_inline)) const uint64_t *name_states(const mpaths *pa,
                                                                        const char *k, size_t n)
{
    if (!((pa->lens >> (n < 63 ? n : 63)) & 1))
        return NULL;
    uint64_t h = paths_hash(k, n);
    for (size_t at = (size_t)h & pa->table_mask; pa->table[at]; at = (at + 1) & pa->table_mask) {
        const mpname *e = &pa->names[pa->table[at] - 1];
        if (e->hash == h && e->len == n && same_name(e->name, k, n))
            return e->states;
    }
    return NULL;
}

/* The rules whose paths the child's states complete: the first applied, the first silent. */
static void final_rules(mm_stream *s)
{
    const mpaths *pa = &s->m->pa;
    for (size_t w = 0; w < s->words; w++) {
        if (!(s->cset[w] & pa->final[w]))
            continue;
        uint64_t b = s->cset[w] & pa->final[w];
        while (b) {
            int r = pa->rule[w * 64 + (size_t)__builtin_ctzll(b)];
            b &= b - 1;
            if (s->m->rules[r].deny) /* an allow path: its default deny lets the node pass */
                s->callow |= 1ull << ((size_t)r - s->m->first_deny);
            else if (s->rs[r] == RS_APPLY && r < s->csel)
                s->csel = r;
            else if (s->rs[r] == RS_SILENT && r < s->casel)
                s->casel = r;
        }
    }
}

/* The child's liveness (states left to complete), whether one waits for a member name, and
 * the rules and allow lists of the states it completes (all bit sets, tested for zero). */
static inline void child_done(mm_stream *s, uint64_t live, uint64_t named, uint64_t fin)
{
    s->clive = live != 0;
    s->cnamed = named != 0;
    s->csel = s->casel = RULE_NONE;
    s->callow = 0;
    if (fin)
        final_rules(s);
}

/* The child's states from the parent's states `in`: ns, the states that wait for the
 * child's member name (NULL: none, or an element), or the element `index` (by_index). */
static void step_states(mm_stream *s, const uint64_t *in, const uint64_t *ns, bool by_index,
                        long index)
{
    const mpaths *pa = &s->m->pa;
    if (s->words == 1) { /* up to 64 states: the usual case, without loops */
        uint64_t a = in[0], hit = a & pa->any[0];
        if (ns)
            hit |= a & ns[0];
        if (by_index && (a & pa->idx[0])) {
            for (uint64_t b = a & pa->idx[0]; b; b &= b - 1) {
                size_t st = (size_t)__builtin_ctzll(b);
                if (pa->index[st] == index)
                    hit |= 1ull << st;
            }
        }
        uint64_t out = (hit << 1) | (a & pa->desc[0]);
        s->cset[0] = out;
        child_done(s, out & ~pa->final[0], out & pa->named[0], out & pa->final[0]);
        return;
    }
    uint64_t carry = 0, live = 0, nam = 0, fin = 0;
    for (size_t w = 0; w < s->words; w++) {
        uint64_t hit = in[w] & pa->any[w];
        if (ns)
            hit |= in[w] & ns[w];
        if (by_index && (in[w] & pa->idx[w])) {
            uint64_t b = in[w] & pa->idx[w];
            while (b) {
                size_t st = w * 64 + (size_t)__builtin_ctzll(b);
                b &= b - 1;
                if (pa->index[st] == index)
                    hit |= 1ull << (st % 64);
            }
        }
        uint64_t out = (hit << 1) | carry | (in[w] & pa->desc[w]);
        carry = hit >> 63;
        s->cset[w] = out;
        live |= out & ~pa->final[w];
        nam |= out & pa->named[w];
        fin |= out & pa->final[w];
    }
    child_done(s, live, nam, fin);
}

/* The child's states, its liveness and the rules that select it, from the parent's states
 * `in` and the member name (k, n) or the element index (k NULL). */
void step_child(mm_stream *s, const uint64_t *in, bool named, const char *k, size_t n,
                long index)
{
    const uint64_t *ns = NULL;
    if (k && named && (s->words > 1 || (in[0] & s->m->pa.named[0])))
        ns = name_states(&s->m->pa, k, n);
    step_states(s, in, ns, !k, index);
}

/* The child's states from the object's `in` and a name's states ns (NULL: only where
 * every name leads). */
static inline __attribute__((always_inline)) void name_child(mm_stream *s, const uint64_t *in,
                                                             const uint64_t *ns)
{
    if (s->words > 1) {
        step_states(s, in, ns, false, 0);
    } else {
        /* the same few names under the same states, object after object: the step is a
         * function of the two (the stream's rules are fixed), so it is kept */
        /* a name's states are a word of path.c's array: consecutive names, their own
         * slots; the parent's states move them on */
        size_t h = (size_t)((uintptr_t)ns / sizeof(uint64_t)) +
                   (size_t)((in[0] * 0x9E3779B97F4A7C15ull) >> 59);
        name_memo *e = &s->nmemo[h % NAME_MEMO];
        if (e->ns == ns && e->in == in[0]) {
            s->cset[0] = e->cset;
            s->clive = e->clive;
            s->cnamed = e->cnamed;
            s->csel = e->csel;
            s->casel = e->casel;
            s->callow = e->callow;
        } else {
            step_states(s, in, ns, false, 0);
            *e = (name_memo){ns, in[0], s->cset[0], s->callow, s->csel, s->casel, s->clive,
                             s->cnamed};
        }
    }
}

enum { STEP_NONE, STEP_NAME, STEP_REST, STEP_LATER };

/* Steps to the member named k[0..n) of the live object at the top (`wild`: it may have
 * wildcard or descendant states, else it is by_name): STEP_NONE, no rule can touch its
 * value; STEP_NAME, the name leads on; STEP_REST, it leads only where every name does;
 * STEP_LATER, that is where the object's other such names led, to SK_OPEN (the child is
 * left to names_rest: s->cdefer). */
static inline __attribute__((always_inline)) int name_step(mm_stream *s, const char *k,
                                                           size_t n, const bool wild)
{
    const uint64_t *in = s->sets + (s->depth - 1) * s->words;
    const uint64_t *ns = name_states(&s->m->pa, k, n);
    uint64_t hit = 0;
    for (size_t w = 0; ns && w < s->words; w++)
        hit |= in[w] & ns[w];
    if (!hit) {
        /* without wildcard or descendant states (json.c's by_name), a name that no active
         * state waits for leads nowhere: the usual case, without the full step; with
         * them, every such name leads to the same child (one memo entry), which a scalar
         * does not need */
        const jframe *f = &s->fr[s->depth - 1];
        if (!wild || !f->wild) {
            child_none(s);
            return STEP_NONE;
        }
        if (f->rest == SK_OPEN + 1) {
            s->cdefer = true;
            return STEP_LATER;
        }
        ns = NULL;
    }
    name_child(s, in, ns);
    if (!(s->clive || s->csel != RULE_NONE || s->casel != RULE_NONE || s->callow))
        return STEP_NONE;
    return ns ? STEP_NAME : STEP_REST;
}

void names_rest(mm_stream *s)
{
    name_child(s, s->sets + (s->depth - 1) * s->words, NULL);
}

mm_err key_step(mm_stream *s, const char *data, size_t q)
{
    mm_err rc;
    jframe *f = &s->fr[s->depth - 1];
    const char *k = NULL;
    size_t kn = 0;

    if (s->key_on) {
        s->key_on = false;
        if (!s->kesc && !s->key_raw.len) {
            k = data + s->kstart;
            kn = q - s->kstart;
        } else {
            if (s->key_raw.len + (q - s->kstart) > s->max_value)
                return MM_ELIMIT;
            if ((rc = mm_buf_append(&s->key_raw, data + s->kstart, q - s->kstart)) != MM_OK)
                return rc;
            k = s->key_raw.data;
            kn = s->key_raw.len;
            if (s->kesc) {
                if ((rc = json_decode(s, k, kn, false)) != MM_OK)
                    return rc;
                k = s->dec.data ? s->dec.data : "";
                kn = s->dec.len;
            }
        }
        if (kn > s->max_value)
            return MM_ELIMIT; /* raw and in one chunk */
        if (s->findings || s->key_det) {
            mm_buf_reset(&s->key);
            if ((rc = mm_buf_append(&s->key, k, kn)) != MM_OK)
                return rc;
        }
    }
    if (s->tw)
        jtw_member(s, k, kn);
    if (f->live)
        step_child(s, s->sets + (s->depth - 1) * s->words, f->named, k ? k : "", kn, 0);
    else
        child_none(s);
    return MM_OK;
}

/* sk_names for by_name objects, or (`wild`) judged ones (stream_int.h says what they
 * decide). */
static inline __attribute__((always_inline)) int judge(mm_stream *s, const char *k, size_t n,
                                                       const bool wild)
{
    if (wild)
        s->cdefer = false;
    int step = name_step(s, k, n, wild);
    if (step == STEP_NONE)
        return SK_PASS;
    /* the member's findings path, as key_step keeps it (json.c reads the value on, or
     * names_replace reports it); without memory, json.c reads the name and says so */
    if (s->findings) {
        mm_buf_reset(&s->key);
        if (mm_buf_append(&s->key, k, n) != MM_OK)
            return -1;
    }
    if (wild && step == STEP_LATER)
        return SK_OPEN;
    int sel = s->csel;
    if (wild && sel == RULE_NONE && s->casel == RULE_NONE && !s->callow) {
        if (step == STEP_REST) /* so are the object's other names no state waits for */
            s->fr[s->depth - 1].rest = SK_OPEN + 1;
        return SK_OPEN; /* states only: paths may select something inside it */
    }
    /* (states may go on below it: a container stays json.c's, a scalar is only written
     * over) */
    if (sel == RULE_NONE || s->casel != RULE_NONE || s->callow || s->m->scan ||
        !s->m->rules[sel].jconst || s->ract[sel] != &s->m->rules[sel].act ||
        s->ract[sel]->type == MM_ACTION_REMOVE)
        return SK_READ;
    return SK_CONST;
}

int names_judge(void *ctx, const char *k, size_t n)
{
    return judge(ctx, k, n, false);
}

int names_judge_any(void *ctx, const char *k, size_t n)
{
    return judge(ctx, k, n, true);
}

bool names_replace(void *ctx, const char *data, size_t start, size_t end, uint64_t lines)
{
    mm_stream *s = ctx;
    int sel = s->csel;
    size_t base = s->path.len;
    /* the finding scalar_decide would give: the value's path, offset and line */
    if (s->findings && (s->skrc = path_push(s)) != MM_OK)
        return false;
    st_report(s, sel, NULL, path_str(s), s->off + start, s->line + lines, true);
    if (s->findings)
        path_pop(s, base);
    /* what json.c's flush_to does (nothing is suppressed in a by_name object), then the
     * constant */
    const char *run = data + s->run, *c = s->m->rules[sel].jconst;
    size_t rn = start - s->run, cn = s->m->rules[sel].jconst_len;
    s->run = end;
    if ((s->skrc = st_out_put(s, run, rn)) == MM_OK)
        s->skrc = st_out_put(s, c, cn);
    return s->skrc == MM_OK;
}

/* Whether every element of an array whose states are set[] gets the same states, which
 * complete no path: no [N] step waits there, and the states * and .. lead to are not
 * final. Then no path selects a scalar element, whatever its index. */
bool elems_plain(const mm_stream *s, const uint64_t *set)
{
    const mpaths *pa = &s->m->pa;
    uint64_t carry = 0;
    for (size_t w = 0; w < s->words; w++) {
        uint64_t hit = set[w] & pa->any[w];
        uint64_t out = (hit << 1) | carry | (set[w] & pa->desc[w]);
        if ((set[w] & pa->idx[w]) || (out & pa->final[w]))
            return false;
        carry = hit >> 63;
    }
    return true;
}

/* The root value's states: those of the paths whose rule is on in this stream. */
void step_root(mm_stream *s)
{
    const mpaths *pa = &s->m->pa;
    uint64_t live = 0, nam = 0, fin = 0;
    for (size_t w = 0; w < s->words; w++) {
        s->cset[w] = s->root[w];
        live |= s->root[w] & ~pa->final[w];
        nam |= s->root[w] & pa->named[w];
        fin |= s->root[w] & pa->final[w];
    }
    child_done(s, live, nam, fin);
}


/* ---- findings paths ------------------------------------------------------------------- */

static bool ident(const char *k, size_t n)
{
    if (!n || (k[0] >= '0' && k[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
              (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
            return false;
    return true;
}

/* Appends the segment of the value starting now: $, .name, ['na me'] or [N]. */
mm_err path_push(mm_stream *s)
{
    jframe *f = s->depth ? &s->fr[s->depth - 1] : NULL;
    mm_err rc = MM_OK;
    if (!f)
        return mm_buf_putc(&s->path, '$');
    if (f->kind == '[')
        return mm_buf_printf(&s->path, "[%ld]", f->index);
    const char *k = s->key.data ? s->key.data : "";
    if (ident(k, s->key.len)) {
        if ((rc = mm_buf_putc(&s->path, '.')) == MM_OK)
            rc = mm_buf_append(&s->path, k, s->key.len);
        return rc;
    }
    if ((rc = mm_buf_puts(&s->path, "['")) != MM_OK)
        return rc;
    for (size_t i = 0; i < s->key.len && rc == MM_OK; i++) {
        if (k[i] == '\'' || k[i] == '\\')
            rc = mm_buf_putc(&s->path, '\\');
        if (rc == MM_OK)
            rc = mm_buf_putc(&s->path, k[i]);
    }
    return rc == MM_OK ? mm_buf_puts(&s->path, "']") : rc;
}
