/* lib/mask: the stream surface — what every body kind shares: which rules apply to this
 * stream (direction, audit, exemptions), staged output, findings, and detection with its
 * precedence. The machines themselves are in json.c (JSON, NDJSON; its top comment says how
 * precedence and the edge cases are decided) and text.c (text, server-sent events). */
#include "mask/stream_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- output --------------------------------------------------------------------------- */

mm_err st_out_flush(mm_stream *s)
{
    mm_err rc = MM_OK;
    if (s->ob.len) {
        rc = s->write(s->wctx, s->ob.data, s->ob.len);
        s->st.bytes_out += s->ob.len;
        s->ob.len = 0;
    }
    return rc;
}

mm_err st_out_put(mm_stream *s, const char *p, size_t n)
{
    mm_err rc;
    if (n == 0)
        return MM_OK;
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

mm_err st_detect(mm_stream *s, const char *t, size_t n, const size_t *map, uint64_t base,
                 uint64_t line, const char *path, int attrib, bool *apply, bool *remove)
{
    mm_err rc;
    size_t kept = 0;

    *apply = *remove = false;
    s->nsp = 0;
    if ((rc = det_scan(s->det, s->sc, t, n, on_match, s)) != MM_OK)
        return rc;
    /* each match goes to the first rule naming its detector that applies here; an audit or
     * exempt rule before it reports the match without shielding it */
    for (size_t i = 0; i < s->nsp; i++) {
        span sp = s->sp[i];
        int slot = sp.rule;
        uint64_t at = base + (map ? map[sp.start] : sp.start);
        int silent = s->m->scan && attrib != RULE_NONE ? attrib : s->slot_silent[slot];
        if (silent != RULE_NONE || s->m->scan)
            st_report(s, silent, sp.name, path, at, line, false);
        sp.rule = s->slot_rule[slot];
        if (sp.rule != RULE_NONE)
            s->sp[kept++] = sp;
    }
    s->nsp = kept;
    if (!kept)
        return MM_OK;
    /* precedence: the lower rule first, then the earlier start; keep what does not overlap */
    if (kept > 1) {
        qsort(s->sp, kept, sizeof(*s->sp), by_rule_start);
        size_t k = 0;
        for (size_t i = 0; i < kept; i++) {
            bool clash = false;
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

/* ---- the public surface --------------------------------------------------------------- */

/* Which rules apply to this stream, and so which rule each detector slot goes to. */
static void stream_rules(mm_stream *s)
{
    const mm_masker *m = s->m;
    for (size_t r = 0; r < m->n_rules; r++) {
        const mrule *mr = &m->rules[r];
        bool exempt = false;
        s->rs[r] = RS_OFF;
        s->ract[r] = &mr->act;
        if (!m->scan && !(mr->dirs & (unsigned)s->o.direction))
            continue;
        for (size_t k = 0; s->o.principal && k < mr->n_exempt; k++)
            exempt |= strcmp(mr->exempt[k], s->o.principal) == 0;
        /* graded reveal: the first grant naming the caller decides its action */
        for (size_t g = 0; s->o.principal && !exempt && g < mr->n_grants; g++) {
            const mgrant *gr = &mr->grants[g];
            bool hit = false;
            for (size_t k = 0; k < gr->n_principals && !hit; k++)
                hit = strcmp(gr->principals[k], s->o.principal) == 0;
            if (hit) {
                if (gr->clear)
                    exempt = true;
                else
                    s->ract[r] = &gr->act;
                break;
            }
        }
        s->rs[r] = mr->audit || exempt || m->scan ? RS_SILENT : RS_APPLY;
    }
    s->det_remove = false;
    for (size_t k = 0; k < m->n_slots; k++) {
        const mslot *sl = &m->slots[k];
        s->slot_rule[k] = s->slot_silent[k] = RULE_NONE;
        for (size_t j = 0; j < sl->n_rules; j++) {
            int r = sl->rules[j];
            if (s->rs[r] == RS_APPLY) {
                s->slot_rule[k] = r;
                if (s->ract[r]->type == MM_ACTION_REMOVE)
                    s->det_remove = true;
                break;
            }
            if (s->rs[r] == RS_SILENT && s->slot_silent[k] == RULE_NONE)
                s->slot_silent[k] = r;
        }
    }
}

mm_err mm_stream_new(mm_masker *m, const mm_stream_opts *opts, mm_write_fn write, void *wctx,
                     mm_stream **out)
{
    mm_stream *s = mm_calloc(1, sizeof(*s));
    if (!s)
        return MM_ENOMEM;
    s->m = mm_masker_ref(m);
    s->o = *opts;
    if (!s->o.direction)
        s->o.direction = MM_DIR_RESPONSE;
    s->write = write;
    s->wctx = wctx;
    s->max_value = opts->max_value ? opts->max_value : MM_MASK_MAX_VALUE;
    s->findings = opts->on_finding != NULL;
    s->det = m->det[dir_index(s->o.direction)];
    mm_buf_init(&s->ob, 0);
    mm_buf_init(&s->val, 0);
    mm_buf_init(&s->key_raw, 0);
    mm_buf_init(&s->key, 0);
    mm_buf_init(&s->pre, 0);
    mm_buf_init(&s->path, 0);
    mm_buf_init(&s->dec, 0);
    mm_buf_init(&s->tmp, 0);
    mm_buf_init(&s->abuf, 0);
    mm_buf_init(&s->lbuf, 0);
    mm_buf_init(&s->cout, 0);
    if ((m->n_rules && !(s->rs = mm_calloc(m->n_rules, 1))) ||
        (m->n_rules && !(s->ract = mm_calloc(m->n_rules, sizeof(*s->ract)))) ||
        !(s->slot_rule = mm_calloc(m->n_slots, sizeof(int))) ||
        !(s->slot_silent = mm_calloc(m->n_slots, sizeof(int))))
        goto nomem;
    stream_rules(s);
    if (s->det && det_scratch_new(s->det, &s->sc) != MM_OK)
        goto nomem;
    if (json_init(s) != MM_OK || lines_init(s) != MM_OK)
        goto nomem;
    mm_stream_reset(s);
    *out = s;
    return MM_OK;
nomem:
    mm_stream_free(s);
    return MM_ENOMEM;
}

void mm_stream_reset(mm_stream *s)
{
    s->failed = false;
    memset(&s->st, 0, sizeof(s->st));
    s->ob.len = 0;
    s->off = 0;
    s->line = 1;
    json_reset(s);
    s->lbuf.len = 0;
    s->nhf = 0;
    s->hf_fail = false;
}

void mm_stream_free(mm_stream *s)
{
    if (!s)
        return;
    mm_stream_free(s->child);
    det_scratch_free(s->sc);
    mm_free(s->rs);
    mm_free(s->ract);
    mm_free(s->slot_rule);
    mm_free(s->slot_silent);
    mm_free(s->root);
    mm_free(s->rmhold);
    mm_free(s->cset);
    mm_free(s->fr);
    mm_free(s->sets);
    mm_free(s->map);
    mm_free(s->sp);
    mm_free(s->hf);
    mm_buf_free(&s->ob);
    mm_buf_free(&s->val);
    mm_buf_free(&s->key_raw);
    mm_buf_free(&s->key);
    mm_buf_free(&s->pre);
    mm_buf_free(&s->path);
    mm_buf_free(&s->dec);
    mm_buf_free(&s->tmp);
    mm_buf_free(&s->abuf);
    mm_buf_free(&s->lbuf);
    mm_buf_free(&s->cout);
    mm_masker_free(s->m);
    mm_free(s);
}

mm_err mm_stream_push(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    mm_err rc;
    if (s->failed)
        return mm_errf(eb, MM_EINVAL, "the stream already failed; reset it first");
    s->eb = eb;
    switch (s->o.kind) {
    case MM_BODY_JSON:
    case MM_BODY_NDJSON:
        rc = json_push(s, data, len, eb);
        break;
    case MM_BODY_TEXT:
    case MM_BODY_SSE:
        rc = lines_push(s, data, len, eb);
        break;
    default:
        rc = st_out_put(s, data, len);
    }
    s->off += len;
    s->st.bytes_in += len;
    if (rc == MM_OK)
        rc = st_out_flush(s);
    if (rc != MM_OK) {
        if (!s->failed) { /* not a parse error, which has its message already */
            if (rc == MM_ENOMEM)
                mm_errf(eb, rc, "out of memory");
            else
                mm_errf(eb, rc, "writing the output failed: %s", mm_strerror(rc));
        }
        s->failed = true;
    }
    return rc;
}

mm_err mm_stream_finish(mm_stream *s, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    if (s->failed)
        return mm_errf(eb, MM_EINVAL, "the stream already failed; reset it first");
    s->eb = eb;
    if (s->o.kind == MM_BODY_JSON || s->o.kind == MM_BODY_NDJSON)
        rc = json_finish(s, eb);
    else if (s->o.kind == MM_BODY_TEXT || s->o.kind == MM_BODY_SSE)
        rc = lines_finish(s, eb);
    if (rc == MM_OK)
        rc = st_out_flush(s);
    if (rc != MM_OK) {
        if (!s->failed) {
            if (rc == MM_ENOMEM)
                mm_errf(eb, rc, "out of memory");
            else
                mm_errf(eb, rc, "writing the output failed: %s", mm_strerror(rc));
        }
        s->failed = true;
    }
    return rc;
}

void mm_stream_stats_get(const mm_stream *s, mm_stream_stats *st)
{
    *st = s->st;
}

static mm_err buf_write(void *ctx, const char *data, size_t len)
{
    return mm_buf_append(ctx, data, len);
}

mm_err mm_mask_buffer(mm_masker *m, const mm_stream_opts *opts, const char *in, size_t len,
                      mm_buf *out, mm_errbuf *eb)
{
    mm_stream *s = NULL;
    mm_err rc = mm_stream_new(m, opts, buf_write, out, &s);
    if (rc != MM_OK)
        return mm_errf(eb, rc, "out of memory");
    if ((rc = mm_stream_push(s, in, len, eb)) == MM_OK)
        rc = mm_stream_finish(s, eb);
    mm_stream_free(s);
    return rc;
}
