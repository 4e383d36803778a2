/* lib/mask: the stream surface — which rules apply to a stream (direction, audit,
 * exemptions), and the table of body formats it dispatches to. The formats are in json.c
 * (JSON, NDJSON; its top comment says how precedence and the edge cases are decided) and
 * text.c (text, server-sent events); what they share (output, findings, detection) is in
 * emit.c. */
#include "mask/stream_int.h"

#include <string.h>

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
    s->deny_apply = s->deny_silent = 0;
    for (size_t r = m->first_deny; r < m->n_rules; r++) {
        uint64_t bit = 1ull << (r - m->first_deny);
        if (s->rs[r] == RS_APPLY) {
            s->deny_apply |= bit;
            if (m->rules[r].act.type == MM_ACTION_REMOVE)
                s->det_remove = true; /* any member may go: hold them as for detectors */
        } else if (s->rs[r] == RS_SILENT)
            s->deny_silent |= bit;
    }
    s->deny_on = (s->deny_apply | s->deny_silent) != 0;
    s->reads = s->det || s->deny_on;
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

/* ---- the formats ---------------------------------------------------------------------- */

/* Opaque bodies pass unchanged. */
static mm_err opaque_feed(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    MM_UNUSED(eb);
    return st_out_put(s, data, len);
}

static mm_err opaque_end(mm_stream *s, mm_errbuf *eb)
{
    MM_UNUSED(s);
    MM_UNUSED(eb);
    return MM_OK;
}

static const st_format st_format_opaque = {.feed = opaque_feed, .end = opaque_end};

static const st_format *const formats[] = {
    [MM_BODY_JSON] = &st_format_json,
    [MM_BODY_NDJSON] = &st_format_json,
    [MM_BODY_SSE] = &st_format_sse,
    [MM_BODY_TEXT] = &st_format_text,
    [MM_BODY_OPAQUE] = &st_format_opaque,
    [MM_BODY_GRPC] = &st_format_grpc,
    [MM_BODY_PROTOBUF] = &st_format_protobuf,
};

/* ---- the public surface --------------------------------------------------------------- */

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
    s->fmt = (unsigned)s->o.kind < sizeof(formats) / sizeof(formats[0]) ? formats[s->o.kind]
                                                                        : &st_format_opaque;
    s->write = write;
    s->wctx = wctx;
    s->max_value = opts->max_value ? opts->max_value : MM_MASK_MAX_VALUE;
    s->findings = opts->on_finding != NULL && !opts->no_finding_paths;
    s->det = m->det[dir_index(s->o.direction)];
    s->key_det = s->det && det_set_wants_members(s->det);
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
    mm_buf_init(&s->pem, 0);
    mm_buf_init(&s->cout, 0);
    if ((m->n_rules && !(s->rs = mm_calloc(m->n_rules, 1))) ||
        (m->n_rules && !(s->ract = mm_calloc(m->n_rules, sizeof(*s->ract)))) ||
        !(s->slot_rule = mm_calloc(m->n_slots, sizeof(int))) ||
        !(s->slot_silent = mm_calloc(m->n_slots, sizeof(int))))
        goto nomem;
    stream_rules(s);
    if (s->det && det_scratch_new(s->det, &s->sc) != MM_OK)
        goto nomem;
    if (s->fmt->init && s->fmt->init(s) != MM_OK)
        goto nomem;
    if (s->fmt->json_child) {
        mm_stream_opts co = s->o;
        co.kind = MM_BODY_JSON;
        co.on_finding = s->o.on_finding ? st_hold_finding : NULL;
        co.finding_ctx = s;
        if (mm_stream_new(s->m, &co, mm_stream_buf_write, &s->cout, &s->child) != MM_OK)
            goto nomem;
    }
    mm_stream_reset(s);
    *out = s;
    return MM_OK;
nomem:
    mm_stream_free(s);
    return MM_ENOMEM;
}

void mm_stream_reset(mm_stream *s)
{
    st_clear(s);
    if (s->fmt->reset)
        s->fmt->reset(s);
    s->nhf = 0;
    s->hf_fail = false;
}

mm_err mm_stream_reset_grpc(mm_stream *s, const mm_pbdesc *proto, const char *method,
                            const char *encoding)
{
    if (s->fmt != &st_format_grpc)
        return MM_EINVAL;
    mm_stream_reset(s);
    s->o.proto = proto;
    s->o.grpc_method = method;
    s->o.grpc_encoding = encoding;
    grpc_call_set(s);
    return MM_OK;
}

void mm_stream_free(mm_stream *s)
{
    if (!s)
        return;
    if (s->fmt->free)
        s->fmt->free(s);
    mm_stream_free(s->child);
    det_scratch_free(s->sc);
    mm_free(s->rs);
    mm_free(s->ract);
    mm_free(s->slot_rule);
    mm_free(s->slot_silent);
    mm_free(s->sp);
    mm_free(s->hf);
    st_jobs_free(s);
    mm_buf_free(&s->ob);
    mm_buf_free(&s->tmp);
    mm_buf_free(&s->cout);
    mm_masker_free(s->m);
    mm_free(s);
}

/* A failure that has no message yet (a parse error has its own) gets one. */
static mm_err failed(mm_stream *s, mm_err rc, mm_errbuf *eb)
{
    if (!s->failed) {
        if (rc == MM_ENOMEM)
            mm_errf(eb, rc, "out of memory");
        else
            mm_errf(eb, rc, "writing the output failed: %s", mm_strerror(rc));
    }
    s->failed = true;
    return rc;
}

mm_err mm_stream_push(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    mm_err rc;
    if (s->failed)
        return mm_errf(eb, MM_EINVAL, "the stream already failed; reset it first");
    s->eb = eb;
    rc = s->fmt->feed(s, data, len, eb);
    s->off += len;
    s->st.bytes_in += len;
    if (rc == MM_OK)
        rc = st_out_flush(s);
    return rc == MM_OK ? MM_OK : failed(s, rc, eb);
}

mm_err mm_stream_finish(mm_stream *s, mm_errbuf *eb)
{
    mm_err rc;
    if (s->failed)
        return mm_errf(eb, MM_EINVAL, "the stream already failed; reset it first");
    s->eb = eb;
    rc = s->fmt->end(s, eb);
    if (rc == MM_OK)
        rc = st_out_flush(s);
    return rc == MM_OK ? MM_OK : failed(s, rc, eb);
}

void mm_stream_stats_get(const mm_stream *s, mm_stream_stats *st)
{
    *st = s->st;
}

mm_err mm_mask_buffer(mm_masker *m, const mm_stream_opts *opts, const char *in, size_t len,
                      mm_buf *out, mm_errbuf *eb)
{
    mm_stream *s = NULL;
    mm_err rc = mm_stream_new(m, opts, mm_stream_buf_write, out, &s);
    if (rc != MM_OK)
        return mm_errf(eb, rc, "out of memory");
    if ((rc = mm_stream_push(s, in, len, eb)) == MM_OK)
        rc = mm_stream_finish(s, eb);
    mm_stream_free(s);
    return rc;
}
