/* lib/proxy/h2stream.c: one HTTP/2 stream's exchange, the parts that do not depend on how
 * the app is reached: the request head as received, the response head (held until the first
 * masked output, as on HTTP/1.1, so onError can still answer), the response body through its
 * pipe into the stream's output and from there into DATA frames as the client's window allows,
 * and the stream's end: done, an answer of our own, a reset, or grpc-status INTERNAL. */
#include "proxy/h2_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A finished stream kept for the connection's next: everything cleared as calloc would,
 * but its buffers' memory and its body pipes' masking streams and zlib state stay, so the
 * next stream resets them instead of building them again (as an HTTP/1.1 connection's
 * keep-alive requests do). The pipes are copied out and back to the same place: zlib's
 * state points at its z_stream. */
static void recycle(h2s *s)
{
    body_pipe rq = s->rq, rsp = s->rsp;
    mm_buf keep[] = {s->hbuf, s->uout, s->uin, s->rhead, s->trailers, s->reqhead, s->out};

    memset(s, 0, sizeof(*s));
    s->rq = rq;
    s->rsp = rsp;
    body_rewind(&s->rq);
    body_rewind(&s->rsp);
    s->hbuf = keep[0];
    s->uout = keep[1];
    s->uin = keep[2];
    s->rhead = keep[3];
    s->trailers = keep[4];
    s->reqhead = keep[5];
    s->out = keep[6];
    mm_buf_reset(&s->hbuf);
    mm_buf_reset(&s->uout);
    mm_buf_reset(&s->uin);
    mm_buf_reset(&s->rhead);
    mm_buf_reset(&s->trailers);
    mm_buf_reset(&s->reqhead);
    mm_buf_reset(&s->out);
}

static void destroy(h2s *s)
{
    body_cleanup(&s->rq);
    body_cleanup(&s->rsp);
    mm_buf_free(&s->hbuf);
    mm_buf_free(&s->uout);
    mm_buf_free(&s->uin);
    mm_buf_free(&s->rhead);
    mm_buf_free(&s->trailers);
    mm_buf_free(&s->reqhead);
    mm_buf_free(&s->out);
    mm_free(s);
}

h2s *h2s_new(h2conn *hc, int32_t id)
{
    worker *w = hc->c->w;
    h2s *s = hc->spare;

    if (s) {
        hc->spare = s->next;
        hc->n_spare--;
        recycle(s);
    } else {
        if (!(s = mm_calloc(1, sizeof(*s))))
            return NULL;
        mm_buf_init(&s->hbuf, 0);
        mm_buf_init(&s->uout, 0);
        mm_buf_init(&s->uin, 0);
        mm_buf_init(&s->rhead, 0);
        mm_buf_init(&s->trailers, 0);
        mm_buf_init(&s->reqhead, 0);
        mm_buf_init(&s->out, 0);
        body_init(&s->rq, w->ztmp);
        body_init(&s->rsp, w->ztmp);
    }
    s->hc = hc;
    s->id = id;
    s->t_start = s->last_io = w->now;
    s->method_f = s->path_f = s->auth_f = s->ct_f = s->cl_f = s->ce_f = -1;
    s->next = hc->streams;
    if (hc->streams)
        hc->streams->prev = s;
    hc->streams = s;
    hc->n_streams++;
    return s;
}

void h2s_spare_drop(h2conn *hc)
{
    while (hc->spare) {
        h2s *s = hc->spare;
        hc->spare = s->next;
        destroy(s);
    }
    hc->n_spare = 0;
}

void h2s_count(h2s *s)
{
    worker *w = s->hc->c->w;

    if (s->counted || !s->started)
        return;
    s->counted = true;
    count_code(w, s->status ? s->status : 499);
    mm_series_observe(w->dur_s, (double)(w->now - s->t_start) / 1e9);
    mm_series_add(w->bytes_s[0], s->rq_piped ? (double)s->rq.in : 0);
    mm_series_add(w->bytes_s[1], s->rq_piped ? (double)s->rq.out : 0);
    mm_series_add(w->bytes_s[2], s->rs_piped ? (double)s->rsp.in : 0);
    mm_series_add(w->bytes_s[3], s->rs_piped ? (double)s->rsp.out : 0);
}

static void release(h2s *s)
{
    const h2_upops *ops = s->ops;

    s->ops = NULL;
    if (ops)
        ops->release(s);
}

void h2s_free(h2s *s)
{
    h2conn *hc = s->hc;

    if (!s)
        return;
    release(s);
    h2s_count(s);
    /* the window of DATA never handed on goes back to the connection */
    if (s->unconsumed && hc->ns)
        nghttp2_session_consume_connection(hc->ns, s->unconsumed);
    if (s->prev)
        s->prev->next = s->next;
    else
        hc->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    hc->n_streams--;
    snap_unref(s->sn);
    s->sn = NULL;
    /* kept for the next stream while the session lives and the list has room */
    if (hc->ns && hc->n_spare < H2_SPARE_MAX) {
        s->next = hc->spare;
        s->prev = NULL;
        hc->spare = s;
        hc->n_spare++;
        return;
    }
    destroy(s);
}

bool h2s_field_add(h2s *s, const char *n, size_t nl, const char *v, size_t vl)
{
    if (s->nf >= H2_MAX_HDRS)
        return false;
    s->f[s->nf] = (h2_field){.no = (uint32_t)s->hbuf.len, .nl = (uint32_t)nl,
                             .vo = (uint32_t)(s->hbuf.len + nl), .vl = (uint32_t)vl};
    if (mm_buf_append(&s->hbuf, n, nl) != MM_OK || mm_buf_append(&s->hbuf, v, vl) != MM_OK)
        return false;
    s->nf++;
    return true;
}

void h2s_field(const h2s *s, size_t i, http_hdr *out)
{
    out->name = s->hbuf.data + s->f[i].no;
    out->name_len = s->f[i].nl;
    out->value = s->hbuf.data + s->f[i].vo;
    out->value_len = s->f[i].vl;
}

bool h2s_field_is(const h2s *s, size_t i, const char *name)
{
    return http_token_eq(s->hbuf.data + s->f[i].no, s->f[i].nl, name);
}

void h2_finding(void *ctx, const mm_finding *f)
{
    h2s *s = ctx;

    count_finding(s->hc->c->w, s->sn ? s->sn->gen : 0, f);
}

/* Appends one field, name lower-cased (HTTP/2 wants it so), as "name\0value\0". */
bool h2_nv_put(mm_buf *b, size_t *n, const char *name, size_t nl, const char *v, size_t vl)
{
    size_t at = b->len;

    if (mm_buf_append(b, name, nl) != MM_OK || mm_buf_append(b, "", 1) != MM_OK ||
        mm_buf_append(b, v, vl) != MM_OK || mm_buf_append(b, "", 1) != MM_OK)
        return false;
    for (size_t i = at; i < at + nl; i++)
        if (b->data[i] >= 'A' && b->data[i] <= 'Z')
            b->data[i] = (char)(b->data[i] | 0x20);
    (*n)++;
    return true;
}

size_t h2_nv_hdrs(const mm_buf *b, size_t n, http_hdr *out, size_t max)
{
    const char *p = b->data;
    size_t k = 0;

    for (size_t i = 0; i < n && k < max; i++) {
        size_t nl = strlen(p), vl = strlen(p + nl + 1);
        if (p[0] != ':')
            out[k++] = (http_hdr){.name = p, .name_len = nl, .value = p + nl + 1, .value_len = vl};
        p += nl + vl + 2;
    }
    return k;
}

void h2_framing(const http_hdr *h, size_t n, bool body, http_framing *f)
{
    memset(f, 0, sizeof(*f));
    f->kind = body ? HTTP_BODY_CLOSE : HTTP_BODY_NONE; /* DATA frames delimit it */
    f->keep_alive = true;
    for (size_t i = 0; i < n; i++) {
        if (http_token_eq(h[i].name, h[i].name_len, "content-type")) {
            f->content_type_ambiguous = f->content_type != NULL ||
                                        memchr(h[i].value, ',', h[i].value_len) != NULL;
            f->content_type = h[i].value;
            f->content_type_len = h[i].value_len;
        } else if (http_token_eq(h[i].name, h[i].name_len, "content-encoding")) {
            f->content_encoding = http_token_eq(h[i].value, h[i].value_len, "gzip")      ? 1
                                  : http_token_eq(h[i].value, h[i].value_len, "x-gzip")  ? 1
                                  : http_token_eq(h[i].value, h[i].value_len, "deflate") ? 2
                                  : http_token_eq(h[i].value, h[i].value_len, "identity") ? 0
                                                                                         : 3;
        } else if (http_token_eq(h[i].name, h[i].name_len, "content-length")) {
            long long v = 0;
            for (size_t k = 0; k < h[i].value_len && v < (1LL << 50); k++)
                v = v * 10 + (h[i].value[k] - '0');
            f->length = (uint64_t)v; /* nghttp2 checked it is a number matching the DATA */
        }
    }
}

/* nghttp2_nv entries for the n fields of b, after `pre` entries the caller filled. */
static nghttp2_nv *nv_list(const mm_buf *b, size_t n, size_t pre)
{
    nghttp2_nv *nv = mm_calloc(n + pre + 1, sizeof(*nv));
    const char *p = b->data;

    if (!nv)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(p), vl = strlen(p + nl + 1);
        nv[pre + i] = (nghttp2_nv){(uint8_t *)(uintptr_t)p, (uint8_t *)(uintptr_t)(p + nl + 1),
                                   nl, vl, NGHTTP2_NV_FLAG_NONE};
        p += nl + vl + 2;
    }
    return nv;
}

static nghttp2_nv nv_lit(const char *n, const char *v, size_t vl)
{
    return (nghttp2_nv){(uint8_t *)(uintptr_t)n, (uint8_t *)(uintptr_t)v, strlen(n), vl,
                        NGHTTP2_NV_FLAG_NONE};
}

/* DATA for the client from the stream's output, as its window allows; deferred while the
 * output is empty and the body goes on. */
static ssize_t data_read(nghttp2_session *ns, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    h2s *s = src->ptr;
    size_t n = pending(&s->out, s->out_off);

    MM_UNUSED(id);
    MM_UNUSED(ud);
    if (n == 0 && !s->rs_done) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > len)
        n = len;
    memcpy(buf, s->out.data + s->out_off, n);
    s->out_off += n;
    if (s->out_off == s->out.len)
        s->out.len = s->out_off = 0;
    if (s->ops && s->ops->resp_taken)
        s->ops->resp_taken(s);
    if (s->rs_done && pending(&s->out, s->out_off) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->n_trailers || s->grpc_fail) {
            mm_buf tb;
            size_t tn = 0;
            bool ok;
            mm_buf_init(&tb, 0);
            ok = s->grpc_fail
                     ? h2_nv_put(&tb, &tn, "grpc-status", 11, "13", 2) &&
                           h2_nv_put(&tb, &tn, "grpc-message", 12, "maskmesh: message could not be masked", 37)
                     : mm_buf_append(&tb, s->trailers.data, s->trailers.len) == MM_OK;
            if (!s->grpc_fail)
                tn = s->n_trailers;
            nghttp2_nv *nv = ok ? nv_list(&tb, tn, 0) : NULL;
            if (nv && nghttp2_submit_trailer(ns, s->id, nv, tn) == 0)
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            mm_free(nv);
            mm_buf_free(&tb);
        }
    }
    return (ssize_t)n;
}

/* Submits the held head: `length` >= 0 is the whole body's exact length. */
static bool submit_head(h2s *s, long long length, bool body)
{
    char st[8], cl[24];
    size_t pre = 0;
    nghttp2_nv *nv = nv_list(&s->rhead, s->n_rhead, 2);
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = data_read};
    int rc;

    if (!nv)
        return false;
    snprintf(st, sizeof(st), "%d", s->status);
    nv[pre++] = nv_lit(":status", st, strlen(st));
    if (length >= 0) {
        snprintf(cl, sizeof(cl), "%lld", length);
        nv[pre++] = nv_lit("content-length", cl, strlen(cl));
    } else { /* one slot unused: the fields move up to keep the list contiguous */
        memmove(nv + 1, nv + 2, s->n_rhead * sizeof(*nv));
    }
    rc = nghttp2_submit_response(s->hc->ns, s->id, nv, pre + s->n_rhead, body ? &dp : NULL);
    mm_free(nv);
    s->head_sent = s->submitted = true;
    s->rhead.len = 0;
    s->n_rhead = 0;
    return rc == 0;
}

/* New output for the client: a deferred DATA stream goes on. */
static void wake(h2s *s)
{
    if (s->deferred && s->submitted && !s->reset) {
        s->deferred = false;
        nghttp2_session_resume_data(s->hc->ns, s->id);
    }
}

void h2s_reset(h2s *s, uint32_t code)
{
    if (!s->reset && s->hc->ns)
        nghttp2_submit_rst_stream(s->hc->ns, NGHTTP2_FLAG_NONE, s->id, code);
    s->reset = true;
    s->rs_done = true;
    s->out.len = s->out_off = 0;
    if (!s->status)
        s->status = 502;
    release(s);
}

/* A gRPC call ends with grpc-status 13 and none of the message that failed: trailers only
 * when nothing was sent, else trailers after what already left. */
static void grpc_end(h2s *s, int code, const char *why)
{
    char st[8];

    s->rs_done = true;
    release(s);
    if (s->head_sent) {
        s->grpc_fail = true; /* trailers after what already left (data_read) */
        wake(s);
        return;
    }
    snprintf(st, sizeof(st), "%d", code);
    nghttp2_nv nv[] = {nv_lit(":status", "200", 3),
                       nv_lit("content-type", "application/grpc", 16),
                       nv_lit("grpc-status", st, strlen(st)),
                       nv_lit("grpc-message", why, strlen(why))};
    if (!s->status)
        s->status = 200;
    s->head_sent = s->submitted = true;
    if (nghttp2_submit_response(s->hc->ns, s->id, nv, MM_ARRAY_LEN(nv), NULL) != 0)
        h2s_reset(s, NGHTTP2_INTERNAL_ERROR);
}

void h2s_grpc_fail(h2s *s, const char *why)
{
    mm_log(MM_LOG_WARN, "grpc call ended with INTERNAL", "reason", why, NULL);
    grpc_end(s, 13, "maskmesh: message could not be masked");
}

void h2s_reply(h2s *s, int status, const char *msg)
{
    mm_buf b;

    if (s->reset || s->rs_done)
        return;
    if (s->head_sent) { /* bytes left already: a cut, not an end the client could trust */
        mm_log(MM_LOG_WARN, "stream reset", "reason", msg, NULL);
        h2s_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (s->grpc) {
        s->status = status;
        grpc_end(s, status == 502 || status == 503 || status == 504 ? 14 : 13, msg);
        return;
    }
    release(s);
    s->status = status;
    s->rhead.len = s->n_rhead = 0;
    s->out.len = s->out_off = 0;
    mm_buf_init(&b, 0);
    http_error_response(&b, status, msg, false);
    /* the body of the HTTP/1.1 answer is the JSON after its head */
    const char *body = b.data ? strstr(b.data, "\r\n\r\n") : NULL;
    bool ok = body && h2_nv_put(&s->rhead, &s->n_rhead, "content-type", 12, "application/json", 16) &&
              mm_buf_append(&s->out, body + 4, b.len - (size_t)(body + 4 - b.data)) == MM_OK;
    mm_buf_free(&b);
    s->rs_done = true;
    if (!ok || !submit_head(s, (long long)s->out.len, true))
        h2s_reset(s, NGHTTP2_INTERNAL_ERROR);
}

/* ---- the response body ------------------------------------------------------------------ */

static bool rs_sink(void *ctx, const char *p, size_t n, bool last)
{
    h2s *s = ctx;

    if (s->reset)
        return false;
    if (!s->head_sent && !submit_head(s, last && s->rs_mask ? (long long)n : -1, true))
        return false;
    if (n && mm_buf_append(&s->out, p, n) != MM_OK)
        return false;
    wake(s);
    return true;
}

static void rs_note(void *ctx, const char *why)
{
    h2s *s = ctx;

    mm_metric_add(s->hc->c->w->p->met.parse_errors, (const char *const[]){"response"}, 1);
    mm_log(MM_LOG_WARN, "response body could not be masked", "error", why, "protocol", "h2",
           NULL);
}

static void rs_done(h2s *s)
{
    if (!s->head_sent && !submit_head(s, -1, true)) {
        h2s_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    s->rs_done = true;
    /* the masking stream stays with the stream: reset, it serves the connection's next one
     * (at most H2_SPARE_MAX are kept past their streams) */
    wake(s);
}

static void rs_failed(h2s *s)
{
    static const char red[] = "\"[REDACTED]\"\n";

    if (s->reset)
        return;
    if (s->rsp.err == BODY_EFRAMING) {
        h2s_reply(s, 502, "malformed response body from upstream");
        return;
    }
    if (s->grpc) {
        h2s_grpc_fail(s, s->rsp.why ? s->rsp.why : "the response could not be masked");
        return;
    }
    if (s->rsp.err != BODY_EMASK || s->head_sent) {
        h2s_reply(s, 502, "response body could not be masked");
        return;
    }
    if (s->onerr != MM_ONERR_REDACT_ALL) {
        h2s_reply(s, 502, "response body could not be masked");
        return;
    }
    release(s);
    s->out.len = s->out_off = 0;
    if (mm_buf_append(&s->out, red, sizeof(red) - 1) != MM_OK ||
        !submit_head(s, (long long)sizeof(red) - 1, true)) {
        h2s_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    s->rs_done = true;
}

void h2s_resp_feed(h2s *s, const char *p, size_t n, size_t *used)
{
    body_res r;

    *used = n;
    if (s->reset || s->rs_done || !s->rs_piped)
        return;
    r = body_feed(&s->rsp, p, n, used);
    if (r == BODY_DONE)
        rs_done(s);
    else if (r == BODY_FAILED)
        rs_failed(s);
}

void h2s_resp_end(h2s *s)
{
    if (s->reset || s->rs_done)
        return;
    if (!s->rs_piped) {
        rs_done(s);
        return;
    }
    if (body_end(&s->rsp) == BODY_DONE)
        rs_done(s);
    else
        rs_failed(s);
}

/* Fields HTTP/2 does not carry (RFC 9113 §8.2.2) or that we set ourselves. */
static bool resp_field_dropped(const http_hdr *h, const http_hdr *hdrs, size_t n, bool gz)
{
    long extra = conn_extra(hdrs, n);

    if (hop_by_hop(h, hdrs, extra))
        return true;
    return gz && http_token_eq(h->name, h->name_len, "content-encoding");
}

bool h2_grpc_type(const char *ct, size_t n)
{
    return n >= 16 && strncasecmp(ct, "application/grpc", 16) == 0 &&
           (n == 16 || ct[16] == '+' || ct[16] == ';');
}

/* application/grpc and application/grpc+proto carry protobuf; +json and the like do not */
static bool grpc_proto_type(const char *ct, size_t n)
{
    const char *semi = memchr(ct, ';', n);
    size_t k = semi ? (size_t)(semi - ct) : n;
    while (k > 16 && (ct[k - 1] == ' ' || ct[k - 1] == '\t'))
        k--;
    return k == 16 || (k == 22 && strncasecmp(ct + 16, "+proto", 6) == 0);
}

/* A field's value into out (NUL-terminated); false when absent or too long. */
static bool field_copy(const http_hdr *hdrs, size_t n, const char *name, char *out, size_t size)
{
    for (size_t i = 0; i < n; i++)
        if (http_token_eq(hdrs[i].name, hdrs[i].name_len, name)) {
            if (hdrs[i].value_len >= size)
                return false;
            memcpy(out, hdrs[i].value, hdrs[i].value_len);
            out[hdrs[i].value_len] = '\0';
            return true;
        }
    return false;
}

bool h2s_grpc_setup(h2s *s, mm_direction dir, const http_hdr *hdrs, size_t n,
                    const http_framing *f, h2_grpc *g)
{
    http_hdr path = {0};
    const char *why = NULL;

    memset(g, 0, sizeof(*g));
    g->kind = MM_BODY_OPAQUE;
    if (s->path_f >= 0)
        h2s_field(s, (size_t)s->path_f, &path);
    if (!grpc_proto_type(f->content_type, f->content_type_len))
        why = "a gRPC content subtype other than proto";
    else if (f->content_encoding != 0)
        why = "a gRPC body with a Content-Encoding";
    else if (!(g->proto = snap_grpc(s->sn, path.value, path.value_len)))
        why = "a gRPC method no descriptor set of the policies holds";
    if (!why) {
        memcpy(g->method, path.value, path.value_len); /* snap_grpc bounds it */
        g->method[path.value_len] = '\0';
        if (field_copy(hdrs, n, "grpc-encoding", g->encoding, sizeof(g->encoding)))
            g->has_encoding = true;
        g->kind = MM_BODY_GRPC;
        return true;
    }
    /* not masked: onError decides whether the call goes on unread */
    mm_metric_add(s->hc->c->w->p->met.parse_errors,
                  (const char *const[]){dir == MM_DIR_REQUEST ? "request" : "response"}, 1);
    mm_log(MM_LOG_WARN, "grpc body cannot be masked", "reason", why, "direction",
           dir == MM_DIR_REQUEST ? "request" : "response", NULL);
    if (mm_masker_on_error(s->sn->masker, dir) == MM_ONERR_PASSTHROUGH)
        return true;
    h2s_grpc_fail(s, why);
    return false;
}

bool h2s_resp_begin(h2s *s, int status, const http_hdr *hdrs, size_t n, const http_framing *f)
{
    mm_proxy *p = s->hc->c->w->p;
    mm_body_kind kind = MM_BODY_OPAQUE;
    bool every_way = false;
    h2_grpc g = {.kind = MM_BODY_OPAQUE};
    const char *prin = s->has_principal ? s->principal : NULL;
    mm_buf nv;
    bool ok = true;

    s->status = status;
    s->rsf = *f;
    s->rs_started = true;
    s->onerr = MM_ONERR_BLOCK;
    if (f->content_type && h2_grpc_type(f->content_type, f->content_type_len))
        s->grpc = true;
    if (s->sn->resp && f->kind != HTTP_BODY_NONE) {
        s->onerr = mm_masker_on_error(s->sn->masker, MM_DIR_RESPONSE);
        if (s->grpc) {
            /* message by message with the call's descriptors; a message that cannot be
             * masked ends the call, whatever onError says (it only covers unknown methods) */
            if (!h2s_grpc_setup(s, MM_DIR_RESPONSE, hdrs, n, f, &g))
                return false;
            kind = g.kind;
            s->onerr = MM_ONERR_BLOCK;
        } else if (!body_kind_for(s->sn->masker, MM_DIR_RESPONSE, f, &kind, &every_way)) {
            mm_metric_add(p->met.upstream_errors, (const char *const[]){"type_refused"}, 1);
            h2s_reply(s, 502, "response content type refused by policy");
            return false;
        }
    }
    if (kind != MM_BODY_OPAQUE) {
        if (f->content_encoding == 3) {
            rs_note(s, "a content coding that cannot be decoded");
            if (s->onerr != MM_ONERR_PASSTHROUGH) {
                h2s_reply(s, 502, "response body could not be masked");
                return false;
            }
            kind = MM_BODY_OPAQUE;
        } else {
            s->gz = f->content_encoding != 0;
            s->rs_mask = true;
        }
    }
    if (f->kind != HTTP_BODY_NONE) {
        body_opts o = {.frame = f->kind == HTTP_BODY_LENGTH    ? BODY_FRAME_LENGTH
                                : f->kind == HTTP_BODY_CHUNKED ? BODY_FRAME_CHUNKED
                                                               : BODY_FRAME_EOF,
                       .length = f->length,
                       .decode = s->gz,
                       .masker = s->rs_mask ? s->sn->masker : NULL,
                       .gen = s->sn->gen,
                       .kind = kind,
                       .every_way = every_way,
                       .dir = MM_DIR_RESPONSE,
                       .principal = prin,
                       .max_value = p->cfg.max_value,
                       .on_error = s->onerr,
                       .on_finding = h2_finding,
                       .finding_ctx = s,
                       .proto = g.proto,
                       .grpc_method = g.proto ? g.method : NULL,
                       .grpc_encoding = g.has_encoding ? g.encoding : NULL,
                       .note = rs_note,
                       .sink = rs_sink,
                       .ctx = s};
        if (body_begin(&s->rsp, &o) != MM_OK) {
            h2s_reply(s, 500, "out of memory");
            return false;
        }
        s->rs_piped = true;
    }
    s->rhead.len = s->n_rhead = 0;
    mm_buf_init(&nv, 64 * 1024);
    for (size_t i = 0; ok && i < n; i++) {
        const char *v;
        size_t vl;
        if (resp_field_dropped(&hdrs[i], hdrs, n, s->gz))
            continue;
        nv.len = 0;
        if (header_value(s->sn, prin, MM_DIR_RESPONSE, &hdrs[i], &nv, &v, &vl, h2_finding, s))
            ok = h2_nv_put(&s->rhead, &s->n_rhead, hdrs[i].name, hdrs[i].name_len, v, vl);
    }
    mm_buf_free(&nv);
    if (!ok) {
        h2s_reply(s, 500, "out of memory");
        return false;
    }
    if (f->kind == HTTP_BODY_NONE) {
        /* HEAD, 204, 304 keep the app's length: nothing here changes a body */
        for (size_t i = 0; ok && i < n; i++)
            if (http_token_eq(hdrs[i].name, hdrs[i].name_len, "content-length"))
                ok = h2_nv_put(&s->rhead, &s->n_rhead, "content-length", 14, hdrs[i].value,
                               hdrs[i].value_len);
        s->rs_done = true;
        if (!ok || !submit_head(s, -1, false))
            h2s_reset(s, NGHTTP2_INTERNAL_ERROR);
        return false;
    }
    if (!s->rs_mask) {
        bool exact = f->kind == HTTP_BODY_LENGTH && !s->gz;
        if (!submit_head(s, exact ? (long long)f->length : -1, true)) {
            h2s_reset(s, NGHTTP2_INTERNAL_ERROR);
            return false;
        }
    }
    return true;
}

/* ---- the request body ------------------------------------------------------------------- */

bool h2_rq_sink(void *ctx, const char *p, size_t n, bool last)
{
    h2s *s = ctx;

    MM_UNUSED(last);
    return put_body(&s->uout, s->rq_chunked, p, n);
}

void h2s_consume(h2s *s)
{
    if (s->unconsumed && pending(&s->uout, s->uout_off) < H2_UOUT_HIGH && s->hc->ns) {
        nghttp2_session_consume(s->hc->ns, s->id, s->unconsumed);
        s->unconsumed = 0;
    }
}
