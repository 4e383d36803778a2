/* lib/mask: text and server-sent event bodies, masked a line at a time.
 *
 * Text: the detectors and patterns read each line (without its line ending); matches are
 * transformed where they are, the rest of the line is copied as it came; `remove` drops the
 * match. A line is bounded by max_value: a longer one is an MM_ELIMIT error naming its line
 * and offset, never a silent pass and never a window that could cut a match in two. (When
 * no detector or pattern applies, text passes as it comes, whatever its lines.)
 * SSE: a `data:` line whose value is JSON is masked as JSON (paths and detectors); other data
 * lines as text; `event:`, `id:`, `retry:`, comments and blank lines pass as they are. Each
 * line is written as soon as it is complete, so an event is never held beyond its line.
 * Findings in SSE JSON carry no path (a data line is its own document).
 * A PEM private key spans lines: when private_key is on, a line that opens such a block is
 * held with the lines after it until its END line, and the block is read as one (bounded by
 * max_value like a line: a longer block is an MM_ELIMIT error, never a pass). */
#include "mask/stream_int.h"

#include <string.h>

/* Appends the masked form of text t[0..n) at offset `off` to out; *same when unchanged
 * (nothing appended then). A default deny takes the whole line (the SSE data value), as it
 * takes a JSON string: text has no paths, so nothing in it is allowed, and only matches that
 * cover all of it let the rules decide instead. */
static mm_err text_part(mm_stream *s, const char *t, size_t n, uint64_t off, mm_buf *out,
                        bool *same)
{
    mm_err rc;
    bool apply = false, remove = false;
    int deny = RULE_NONE, silent = RULE_NONE;
    *same = true;
    if ((!s->det && !s->deny_on) || !n)
        return MM_OK;
    if (s->deny_on)
        st_deny(s, 0, &deny, &silent);
    if (s->det && (rc = st_detect(s, t, n, NULL, off, s->line, NULL, RULE_NONE, silent, &apply,
                                  &remove)) != MM_OK)
        return rc;
    bool taken = s->det && st_covered(s, n);
    if (silent != RULE_NONE && !taken)
        st_report(s, silent, NULL, NULL, off, s->line, false);
    if (deny != RULE_NONE && !taken) {
        st_report(s, deny, NULL, NULL, off, s->line, true);
        *same = false;
        return act_apply(&s->m->rules[deny].act, t, n, out); /* remove: the line empties */
    }
    if (!apply)
        return MM_OK;
    *same = false;
    return st_build_text(s, t, n, out);
}

/* ---- SSE ------------------------------------------------------------------------------ */

/* A data line d[0..n) through the JSON child, as a document of its own. The child is driven
 * through its format here, as mm_stream_push/finish would (text.c calls no stream.c). */
static mm_err child_run(mm_stream *s, const char *d, size_t n, mm_errbuf *ceb)
{
    mm_stream *c = s->child;
    mm_err rc;

    st_clear(c);
    c->fmt->reset(c);
    c->eb = ceb;
    rc = c->fmt->feed(c, d, n, ceb);
    c->off += n;
    c->st.bytes_in += n;
    if (rc == MM_OK && (rc = st_out_flush(c)) == MM_OK && (rc = c->fmt->end(c, ceb)) == MM_OK)
        rc = st_out_flush(c);
    return rc;
}

/* One SSE line without its ending; *same when it passes unchanged. */
static mm_err sse_line(mm_stream *s, const char *t, size_t n, uint64_t off, mm_buf *out,
                       bool *same)
{
    mm_err rc;
    mm_errbuf ceb;
    size_t p;

    *same = true;
    if (n < 5 || memcmp(t, "data:", 5) != 0)
        return MM_OK;
    p = 5 + (n > 5 && t[5] == ' ');
    const char *d = t + p;
    size_t dn = n - p, k = 0;
    while (k < dn && (d[k] == ' ' || d[k] == '\t'))
        k++;
    if (k < dn && (d[k] == '{' || d[k] == '[' || d[k] == '"')) {
        mm_buf_reset(&s->cout);
        s->nhf = 0;
        s->hf_fail = false;
        rc = child_run(s, d, dn, &ceb);
        if (rc == MM_ENOMEM || s->hf_fail)
            return MM_ENOMEM;
        if (rc == MM_OK) {
            const mm_stream_stats cst = s->child->st;
            s->st.findings += cst.findings;
            s->st.applied += cst.applied;
            for (size_t i = 0; i < s->nhf; i++) {
                mm_finding f = s->hf[i];
                f.offset += off + p;
                f.line = s->line;
                f.path = NULL;
                s->o.on_finding(s->o.finding_ctx, &f);
            }
            if (cst.applied == 0)
                return MM_OK; /* JSON, and nothing changed */
            *same = false;
            if ((rc = mm_buf_append(out, t, p)) != MM_OK)
                return rc;
            return mm_buf_append(out, s->cout.data ? s->cout.data : "", s->cout.len);
        }
        /* not JSON after all: read it as text */
    }
    if ((rc = mm_buf_append(out, t, p)) != MM_OK)
        return rc;
    if ((rc = text_part(s, d, dn, off + p, out, same)) != MM_OK)
        return rc;
    if (*same)
        out->len = 0;
    return MM_OK;
}

/* ---- lines ---------------------------------------------------------------------------- */

/* A complete line t[0..n) (ending included, when there is one) at absolute offset `off`. */
static mm_err do_line(mm_stream *s, const char *t, size_t n, uint64_t off)
{
    mm_err rc;
    bool same = true;
    size_t body = n;
    if (body && t[body - 1] == '\n')
        body--;
    if (body && t[body - 1] == '\r')
        body--;
    mm_buf_reset(&s->tmp);
    rc = s->o.kind == MM_BODY_SSE ? sse_line(s, t, body, off, &s->tmp, &same)
                                  : text_part(s, t, body, off, &s->tmp, &same);
    if (rc == MM_OK) {
        if (same)
            rc = st_out_put(s, t, n);
        else if ((rc = mm_buf_append(&s->tmp, t + body, n - body)) == MM_OK)
            rc = st_out_put(s, s->tmp.data, s->tmp.len);
    }
    s->line++;
    return rc;
}

/* The held block as one line; the line count moves past all of its lines. */
static mm_err pem_flush(mm_stream *s)
{
    mm_err rc;
    uint64_t lines = 0;
    for (size_t k = 0; k + 1 < s->pem.len; k++)
        lines += s->pem.data[k] == '\n';
    rc = do_line(s, s->pem.data, s->pem.len, s->pem_off);
    s->line += lines;
    s->pem.len = 0;
    return rc;
}

static bool has(const char *t, size_t n, const char *lit)
{
    return memmem(t, n, lit, strlen(lit)) != NULL;
}

/* A complete line: masked now, or held when it is part of a PEM private key block. */
static mm_err take_line(mm_stream *s, const char *t, size_t n, uint64_t off, mm_errbuf *eb)
{
    mm_err rc;
    bool end;
    if (!s->pem.len) {
        if (!s->det || !det_set_has(s->det, DET_PRIVATE_KEY) || !has(t, n, "-----BEGIN") ||
            !has(t, n, "PRIVATE KEY-----") || has(t, n, "-----END"))
            return do_line(s, t, n, off);
        s->pem_off = off;
    }
    if (s->pem.len + n > s->max_value)
        return st_fail(s, eb, MM_ELIMIT, s->pem_off, "private key block longer than the limit");
    if ((rc = mm_buf_append(&s->pem, t, n)) != MM_OK)
        return rc;
    end = has(t, n, "-----END");
    if (!end && n && t[n - 1] == '\n')
        return MM_OK;
    return pem_flush(s);
}

static mm_err lines_feed(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    mm_err rc;
    size_t i = 0;
    if (s->o.kind == MM_BODY_TEXT && !s->det && !s->deny_on)
        return st_out_put(s, data, len); /* nothing reads text: no lines to find */
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) + 1 : len;
        if (!nl || s->lbuf.len) { /* a line spread over chunks is collected */
            if (!s->lbuf.len)
                s->loff = s->off + i;
            if (s->lbuf.len + (end - i) > s->max_value)
                return st_fail(s, eb, MM_ELIMIT, s->loff, "line longer than the limit");
            if ((rc = mm_buf_append(&s->lbuf, data + i, end - i)) != MM_OK)
                return rc;
            if (nl) {
                rc = take_line(s, s->lbuf.data, s->lbuf.len, s->loff, eb);
                s->lbuf.len = 0;
                if (rc != MM_OK)
                    return rc;
            }
        } else {
            if (end - i > s->max_value)
                return st_fail(s, eb, MM_ELIMIT, s->off + i, "line longer than the limit");
            if ((rc = take_line(s, data + i, end - i, s->off + i, eb)) != MM_OK)
                return rc;
        }
        i = end;
    }
    return MM_OK;
}

static mm_err lines_end(mm_stream *s, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    if (s->lbuf.len) {
        rc = take_line(s, s->lbuf.data, s->lbuf.len, s->loff, eb);
        s->lbuf.len = 0;
    }
    if (rc == MM_OK && s->pem.len) /* a block without its END: masked to the end */
        rc = pem_flush(s);
    return rc;
}

static void lines_reset(mm_stream *s)
{
    s->lbuf.len = 0;
    s->pem.len = 0;
}

static void lines_free(mm_stream *s)
{
    mm_buf_free(&s->lbuf);
    mm_buf_free(&s->pem);
}

const st_format st_format_text = {
    .feed = lines_feed,
    .end = lines_end,
    .reset = lines_reset,
    .free = lines_free,
};

const st_format st_format_sse = {
    .feed = lines_feed,
    .end = lines_end,
    .reset = lines_reset,
    .free = lines_free,
    .json_child = true,
};
