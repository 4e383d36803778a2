/* lib/mask: what every body format shares, below the formats and the stream surface: staged
 * output, findings, errors, detection with its precedence, and the generic part of a body's
 * reset. json.c and text.c call these; nothing here calls a format by name (stream.c picks
 * a format from its table and calls it through the table), so no two files call each other
 * in a circle. */
#include "mask/stream_int.h"

#include "mask/crypt_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- output --------------------------------------------------------------------------- */

#define ST_JOBS FF1_LANES /* ff1 values waiting at most: one batch */

/* Encrypts the waiting values where they are in s->ob. On an error nothing of s->ob may
 * leave: it holds clear values, so it is wiped. */
static mm_err settle(mm_stream *s)
{
    mm_err rc = enc_run(s->jobs, s->njobs, s->ob.data);

    s->njobs = 0;
    if (rc != MM_OK) {
        explicit_bzero(s->ob.data, s->ob.len);
        s->ob.len = 0;
    }
    return rc;
}

mm_err st_act_apply(mm_stream *s, const act_t *a, const char *in, size_t n, mm_buf *out,
                    bool *wait)
{
    mm_err rc;

    *wait = false;
    /* with tweaks from other members, output may wait in jtweak.c's hold instead; without
     * memory for the jobs, values go one at a time */
    if (a->type == MM_ACTION_ENCRYPT && !s->tw &&
        (s->jobs || (s->jobs = mm_calloc(ST_JOBS + 1, sizeof(*s->jobs)))) &&
        enc_defer(a->enc, in, n, out, &s->jobs[ST_JOBS], &rc)) {
        *wait = rc == MM_OK;
        return rc;
    }
    return act_apply(a, in, n, out);
}

mm_err st_job_placed(mm_stream *s, size_t at)
{
    enc_job *j = &s->jobs[s->njobs++];

    *j = s->jobs[ST_JOBS];
    j->at += at;
    explicit_bzero(&s->jobs[ST_JOBS], sizeof(*j));
    return s->njobs == ST_JOBS ? settle(s) : MM_OK;
}

void st_jobs_free(mm_stream *s)
{
    if (s->jobs)
        explicit_bzero(s->jobs, (ST_JOBS + 1) * sizeof(*s->jobs));
    mm_free(s->jobs);
    s->jobs = NULL;
    s->njobs = 0;
}

mm_err st_out_flush(mm_stream *s)
{
    mm_err rc = MM_OK;
    if (s->njobs && (rc = settle(s)) != MM_OK)
        return rc;
    if (s->tw && jtw_holding(s)) /* only what comes before a value waiting for its tweak */
        return jtw_flush(s);
    if (s->ob.len) {
        size_t n = s->ob.len;
        /* into a caller's buffer: handed over whole when it is empty (the proxy's body pipe
         * stages each push so; glibc's rep movsb made that copy 8% of the proxy's CPU) */
        rc = s->write == mm_stream_buf_write ? mm_buf_take(s->wctx, &s->ob)
                                             : s->write(s->wctx, s->ob.data, n);
        s->st.bytes_out += n;
        s->ob.len = 0;
    }
    return rc;
}

mm_err st_out_put_slow(mm_stream *s, const char *p, size_t n)
{
    mm_err rc;
    if (n == 0)
        return MM_OK;
    if (s->tw && jtw_holding(s))
        return jtw_put(s, p, n);
    if (s->ob.len + n > OUT_FLUSH && (rc = st_out_flush(s)) != MM_OK)
        return rc;
    if (n > OUT_FLUSH) { /* large runs go straight through */
        s->st.bytes_out += n;
        return s->write(s->wctx, p, n);
    }
    return mm_buf_append(&s->ob, p, n);
}

/* ---- findings and errors -------------------------------------------------------------- */

void st_report(mm_stream *s, int rule, const char *detector, const char *path, uint64_t off,
               uint64_t line, bool applied)
{
    s->st.findings++;
    if (applied)
        s->st.applied++;
    if (!s->o.on_finding)
        return;
    mm_finding f = {
        .rule = rule >= 0 && (size_t)rule < s->m->n_rules ? s->m->rules[rule].name : NULL,
        .policy = rule >= 0 && (size_t)rule < s->m->n_rules ? s->m->rules[rule].policy : NULL,
        .detector = detector,
        .path = path,
        .offset = off,
        .line = line,
        .applied = applied,
    };
    s->o.on_finding(s->o.finding_ctx, &f);
}

mm_err st_fail(mm_stream *s, mm_errbuf *eb, mm_err e, uint64_t off, const char *what)
{
    s->failed = true;
    if (s->o.kind != MM_BODY_JSON)
        return mm_errf(eb, e, "line %llu: offset %llu: %s", (unsigned long long)s->line,
                       (unsigned long long)off, what);
    return mm_errf(eb, e, "offset %llu: %s", (unsigned long long)off, what);
}

/* ---- detection ------------------------------------------------------------------------ */

static mm_err on_match(void *ctx, const det_match *dm)
{
    mm_stream *s = ctx;
    if (s->nsp == s->spcap) {
        size_t cap = s->spcap ? s->spcap * 2 : 16;
        span *v = mm_realloc(s->sp, cap * sizeof(*v));
        if (!v)
            return MM_ENOMEM;
        s->sp = v;
        s->spcap = cap;
    }
    s->sp[s->nsp++] = (span){dm->start, dm->end, dm->tag, dm->name};
    return MM_OK;
}

static int by_start(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int by_rule_start(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->rule != y->rule)
        return x->rule < y->rule ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

mm_err st_scan(mm_stream *s, const char *t, size_t n, const char *member, size_t mlen)
{
    mm_err rc;
    s->nsp = 0;
    rc = det_scan_member(s->det, s->sc, t, n, member, mlen, on_match, s);
    s->sp_ready = rc == MM_OK && s->nsp; /* none: nothing for st_detect to take */
    return rc;
}

mm_err st_detect(mm_stream *s, const char *t, size_t n, const size_t *map, uint64_t base,
                 uint64_t line, const char *path, int attrib, int fallback, bool *apply,
                 bool *remove)
{
    mm_err rc;
    size_t kept = 0;

    *apply = *remove = false;
    if (!s->sp_ready && (rc = st_scan(s, t, n, s->member, s->member_len)) != MM_OK)
        return rc;
    s->sp_ready = false;
    /* each match goes to the first rule naming its detector that applies here; an audit or
     * exempt rule before it reports the match without shielding it */
    for (size_t i = 0; i < s->nsp; i++) {
        span sp = s->sp[i];
        int slot = sp.rule;
        uint64_t at = base + (map ? map[sp.start] : sp.start);
        int silent = s->m->scan && attrib != RULE_NONE ? attrib : s->slot_silent[slot];
        if (s->m->scan && silent == RULE_NONE)
            silent = fallback;
        if (silent != RULE_NONE || s->m->scan)
            st_report(s, silent, sp.name, path, at, line, false);
        /* scan mode applies nothing, but keeps the matches an explicit rule would take, so
         * st_covered can tell whether a default deny would take the value */
        sp.rule = !s->m->scan ? s->slot_rule[slot] : silent != fallback ? silent : RULE_NONE;
        if (sp.rule != RULE_NONE)
            s->sp[kept++] = sp;
    }
    s->nsp = kept;
    if (!kept)
        return MM_OK;
    if (s->m->scan) {
        qsort(s->sp, kept, sizeof(*s->sp), by_start);
        return MM_OK;
    }
    /* precedence: the lower rule first, then the earlier start; keep what does not overlap
     * (a rule's own overlapping matches are merged) */
    if (kept > 1) {
        qsort(s->sp, kept, sizeof(*s->sp), by_rule_start);
        size_t k = 0;
        for (size_t i = 0; i < kept; i++) {
            bool clash = false;
            /* overlapping matches of one rule (a card that a group before it made look longer,
             * an SSN sharing a group with a card) become one span: dropping either would let
             * the part outside the other through */
            if (k && s->sp[k - 1].rule == s->sp[i].rule && s->sp[i].start < s->sp[k - 1].end) {
                if (s->sp[i].end > s->sp[k - 1].end)
                    s->sp[k - 1].end = s->sp[i].end;
                continue;
            }
            for (size_t j = 0; j < k && !clash; j++)
                clash = s->sp[i].start < s->sp[j].end && s->sp[j].start < s->sp[i].end;
            if (!clash)
                s->sp[k++] = s->sp[i];
        }
        s->nsp = kept = k;
        qsort(s->sp, kept, sizeof(*s->sp), by_start);
    }
    for (size_t i = 0; i < kept; i++) {
        const span *sp = &s->sp[i];
        st_report(s, sp->rule, sp->name, path, base + (map ? map[sp->start] : sp->start), line,
                  true);
        if (s->ract[sp->rule]->type == MM_ACTION_REMOVE)
            *remove = true;
    }
    *apply = true;
    return MM_OK;
}

mm_err st_build_text(mm_stream *s, const char *t, size_t n, mm_buf *out)
{
    mm_err rc = MM_OK;
    size_t at = 0;
    for (size_t i = 0; i < s->nsp && rc == MM_OK; i++) {
        const span *p = &s->sp[i];
        if ((rc = mm_buf_append(out, t + at, p->start - at)) != MM_OK)
            break;
        rc = act_apply(s->ract[p->rule], t + p->start, p->end - p->start, out);
        at = p->end;
    }
    return rc == MM_OK ? mm_buf_append(out, t + at, n - at) : rc;
}

bool st_covered(const mm_stream *s, size_t n)
{
    size_t at = 0;
    for (size_t i = 0; i < s->nsp; i++) {
        if (s->sp[i].start > at)
            return false;
        if (s->sp[i].end > at)
            at = s->sp[i].end;
    }
    return at >= n;
}

void st_deny(const mm_stream *s, uint64_t allow, int *deny, int *silent)
{
    uint64_t a = s->deny_apply & ~allow, q = s->deny_silent & ~allow;
    int first = (int)s->m->first_deny;
    *deny = a ? first + __builtin_ctzll(a) : RULE_NONE;
    *silent = q && (!a || __builtin_ctzll(q) < __builtin_ctzll(a)) ? first + __builtin_ctzll(q)
                                                                   : RULE_NONE;
}

/* ---- bodies --------------------------------------------------------------------------- */

void st_clear(mm_stream *s)
{
    s->failed = false;
    s->sp_ready = false;
    memset(&s->st, 0, sizeof(s->st));
    s->ob.len = 0;
    if (s->njobs) { /* values that waited for a body that ended early */
        explicit_bzero(s->jobs, s->njobs * sizeof(*s->jobs));
        s->njobs = 0;
    }
    s->off = 0;
    s->line = 1;
}

mm_err mm_stream_buf_write(void *ctx, const char *data, size_t len)
{
    return mm_buf_append(ctx, data, len);
}

void st_hold_finding(void *ctx, const mm_finding *f)
{
    mm_stream *s = ctx;
    if (s->nhf == s->hfcap) {
        size_t cap = s->hfcap ? s->hfcap * 2 : 8;
        held_finding *v = mm_realloc(s->hf, cap * sizeof(*v));
        if (!v) {
            s->hf_fail = true;
            return;
        }
        s->hf = v;
        s->hfcap = cap;
    }
    s->hf[s->nhf++] = *f;
}
