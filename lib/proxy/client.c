/* lib/proxy/client.c: the client side of an exchange. Reads request heads (pipelined ones
 * wait their turn), decides the request's framing and whether its body is masked, writes the
 * head for the app, and runs the body through the request pipe towards the app. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static bool build_upstream_head(conn *c, const http_req_head *rq)
{
    mm_buf *b = &c->uout;
    bool masking_resp = c->sn && c->sn->resp;
    long extra = conn_extra(rq->hdrs, rq->n_hdrs);
    bool ok = out_put(b, rq->method, rq->method_len) && out_put(b, " ", 1) &&
              out_put(b, rq->target, rq->target_len) && out_put(b, " HTTP/1.1\r\n", 11);

    for (size_t i = 0; ok && i < rq->n_hdrs; i++) {
        const http_hdr *h = &rq->hdrs[i];
        if (hop_by_hop(h, rq->hdrs, extra) || http_token_eq(h->name, h->name_len, "expect") ||
            (c->ws_req && ws_request_header_dropped(h)))
            continue;
        /* masking needs whole, identity-coded bodies: no ranges, no compression */
        if (masking_resp && (http_token_eq(h->name, h->name_len, "accept-encoding") ||
                             http_token_eq(h->name, h->name_len, "range") ||
                             http_token_eq(h->name, h->name_len, "if-range")))
            continue;
        ok = put_header(c, b, h, MM_DIR_REQUEST);
    }
    if (ok && masking_resp)
        ok = out_put(b, "Accept-Encoding: identity\r\n", 27);
    if (ok && c->ws_req)
        ok = ws_put_upgrade(b);
    if (ok && c->rqf.kind == HTTP_BODY_LENGTH && !c->rq_chunked_out)
        ok = out_put(b, "Content-Length: ", 16) && put_u64(b, c->rqf.length) &&
             out_put(b, "\r\n", 2);
    if (ok && (c->rq_chunked_out ||
               (c->rqf.kind == HTTP_BODY_CHUNKED)))
        ok = out_put(b, "Transfer-Encoding: chunked\r\n", 28);
    return ok && out_put(b, "\r\n", 2);
}

static bool rq_sink(void *ctx, const char *p, size_t n, bool last)
{
    conn *c = ctx;

    MM_UNUSED(last);
    return put_body(&c->uout, c->rq_chunked_out, p, n);
}

static void rq_note(void *ctx, const char *why)
{
    conn *c = ctx;

    mm_metric_add(c->w->p->met.parse_errors, (const char *const[]){"request"}, 1);
    mm_log(MM_LOG_WARN, "request body could not be masked", "error", why, NULL);
}

/* Feeds request body bytes from c->in; consumes what the body used. */
static void rq_feed(conn *c)
{
    size_t used = 0;
    body_res r = body_feed(&c->rq, c->in.data, c->in.len, &used);

    if (used) {
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        c->in.len -= used;
    }
    if (r == BODY_DONE) {
        c->req_done = true;
        if (c->rq_chunked_out && !out_put(&c->uout, "0\r\n\r\n", 5))
            reply_error(c, 500, "out of memory", true);
        return;
    }
    if (r == BODY_MORE)
        return;
    /* the app got a head and maybe part of a body: it must not see an end */
    switch (c->rq.err) {
    case BODY_EFRAMING:
        reply_error(c, 400, "malformed chunked request body", true);
        break;
    case BODY_ELIMIT:
        reply_error(c, 413, "request body too large", true);
        break;
    case BODY_EMASK:
        reply_error(c, 400, "request body could not be masked", true);
        break;
    default:
        if (c->st == CS_EXCHANGE && c->rs != RS_DONE)
            reply_error(c, 500, "out of memory", true);
        break;
    }
}

static void begin_exchange(conn *c, const http_req_head *rq, size_t head_len)
{
    worker *w = c->w;
    mm_proxy *p = w->p;
    int rc;

    c->t_start = w->now;
    c->st = CS_EXCHANGE;
    c->req_done = false;
    c->rs = RS_NONE;
    c->head_sent = c->hold = false;
    c->status = 0;
    c->retried = c->resp_seen = false;
    c->up_extra = 0;
    c->rq_chunked_out = c->rq_piped = c->rs_piped = false;
    c->uout.len = c->uout_off = 0;
    c->uin.len = 0;
    c->reqhead.len = 0;
    c->has_principal = false;

    c->req_minor = rq->minor;
    c->is_head = http_token_eq(rq->method, rq->method_len, "HEAD");
    c->sn = config_current(p);
    if ((rc = http_request_framing(rq, &c->rqf)) < 0) {
        c->req_done = true;
        reply_error(c, -rc, "malformed request framing", true);
        goto out;
    }
    if (!c->rqf.keep_alive)
        c->close_after = true;
    c->ws_req = ws_upgrade_requested(rq, &c->rqf);
    if (p->cfg.upstream_proto == MM_UPSTREAM_H2C) {
        /* HTTP/1.1 is not translated to an h2c app: its clients are told what to speak */
        c->req_done = c->rqf.kind == HTTP_BODY_NONE;
        reply_error(c, 505, "the app speaks HTTP/2 only: use HTTP/2 (h2c)", !c->req_done);
        goto out;
    }
    if (http_token_eq(rq->method, rq->method_len, "CONNECT")) {
        c->req_done = true;
        reply_error(c, 405, "CONNECT is not supported", true);
        goto out;
    }
    if (c->rqf.kind == HTTP_BODY_LENGTH && c->rqf.length > p->cfg.max_body) {
        c->req_done = true;
        reply_error(c, 413, "request body too large", true);
        goto out;
    }
    if (!c->sn) {
        c->req_done = c->rqf.kind == HTTP_BODY_NONE;
        reply_error(c, 503, "no valid configuration loaded", c->rqf.kind != HTTP_BODY_NONE);
        goto out;
    }
    if (p->cfg.identity_xfcc)
        for (size_t i = 0; i < rq->n_hdrs; i++)
            if (http_token_eq(rq->hdrs[i].name, rq->hdrs[i].name_len, "x-forwarded-client-cert"))
                c->has_principal = http_xfcc_uri(rq->hdrs[i].value, rq->hdrs[i].value_len,
                                            c->principal, sizeof(c->principal));
    if (c->rqf.kind != HTTP_BODY_NONE) {
        mm_body_kind kind = MM_BODY_OPAQUE;
        bool every_way = false;
        if (c->sn->req &&
            !body_kind_for(c->sn->masker, MM_DIR_REQUEST, &c->rqf, &kind, &every_way)) {
            c->req_done = true;
            reply_error(c, 415, "request content type refused by policy", true);
            goto out;
        }
        if (kind != MM_BODY_OPAQUE && c->rqf.content_encoding != 0) {
            c->req_done = true;
            reply_error(c, 415, "compressed request bodies cannot be masked", true);
            goto out;
        }
        body_opts o = {.frame = c->rqf.kind == HTTP_BODY_CHUNKED ? BODY_FRAME_CHUNKED
                                                                 : BODY_FRAME_LENGTH,
                       .length = c->rqf.length,
                       .max = p->cfg.max_body,
                       .masker = kind != MM_BODY_OPAQUE ? c->sn->masker : NULL,
                       .gen = c->sn->gen,
                       .kind = kind,
                       .every_way = every_way,
                       .dir = MM_DIR_REQUEST,
                       .principal = c->has_principal ? c->principal : NULL,
                       .max_value = p->cfg.max_value,
                       .on_error = MM_ONERR_BLOCK, /* a request the app gets is masked */
                       .on_finding = on_finding,
                       .finding_ctx = c,
                       .note = rq_note,
                       .sink = rq_sink,
                       .ctx = c};
        if (body_begin(&c->rq, &o) != MM_OK) {
            c->req_done = true;
            reply_error(c, 500, "out of memory", true);
            goto out;
        }
        c->rq_piped = true;
        c->rq_chunked_out = c->rq.masking || c->rqf.kind == HTTP_BODY_CHUNKED;
    }
    if (!build_upstream_head(c, rq)) {
        c->req_done = true;
        reply_error(c, 500, "out of memory", true);
        goto out;
    }
    if (c->rqf.kind == HTTP_BODY_NONE) {
        c->req_done = true;
        /* kept for one retry when a pooled connection turns out to be closed */
        if (mm_buf_append(&c->reqhead, c->uout.data, c->uout.len) != MM_OK)
            c->reqhead.len = 0;
    }
    if (c->rqf.expect_continue && c->rqf.kind != HTTP_BODY_NONE &&
        !out_put(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25)) {
        reply_error(c, 500, "out of memory", true);
        goto out;
    }
    memmove(c->in.data, c->in.data + head_len, c->in.len - head_len);
    c->in.len -= head_len;
    head_len = 0;

    c->up = up_get(w, c, false);
    if (!c->up) {
        mm_metric_add(p->met.upstream_errors, (const char *const[]){"connect"}, 1);
        reply_error(c, 502, "upstream connection refused", false);
        goto out;
    }
    c->up->c = c;
    c->rs = RS_WAIT_HEAD;
    if (!c->req_done)
        rq_feed(c);
out:
    if (head_len && c->in.len >= head_len) { /* an error before the head was consumed */
        memmove(c->in.data, c->in.data + head_len, c->in.len - head_len);
        c->in.len -= head_len;
    }
}

void client_process(conn *c)
{
    mm_proxy *p = c->w->p;

    for (;;) {
        if (c->st == CS_HEAD) {
            if (c->in.len == 0)
                return;
            /* pipelined requests wait while a response is still being written */
            if (pending(&c->out, c->out_off) > OUT_HIGH)
                return;
            if (h2_preface(c) != 0) /* HTTP/2 by prior knowledge, or half its preface */
                return;
            int r = http_parse_request(c->in.data, c->in.len, p->cfg.max_header, &c->w->rqh);
            if (r == 0)
                return;
            if (r < 0) {
                c->st = CS_EXCHANGE;
                c->sn = NULL;
                c->req_done = false;
                c->head_sent = false;
                c->t_start = c->w->now;
                c->rq_piped = c->rs_piped = false;
                c->in.len = 0;
                reply_error(c, -r, r == -431 ? "request header too large"
                                   : r == -414 ? "request target too long"
                                               : "malformed request", true);
                return;
            }
            if (h2_upgrade(c, &c->w->rqh, (size_t)r)) /* Upgrade: h2c */
                return;
            begin_exchange(c, &c->w->rqh, (size_t)r);
            continue;
        }
        if (c->st == CS_EXCHANGE && !c->req_done && c->in.len > 0 &&
            pending(&c->uout, c->uout_off) < OUT_HIGH) {
            rq_feed(c);
            continue;
        }
        return;
    }
}

void client_read(conn *c)
{
    mm_proxy *p = c->w->p;
    size_t limit = c->st == CS_HEAD ? p->cfg.max_header + 1 : READ_CHUNK;

    for (int round = 0; round < 4; round++) {
        if (c->in.len >= limit)
            break;
        size_t room = limit - c->in.len;
        if (room > READ_CHUNK)
            room = READ_CHUNK;
        if (mm_buf_reserve(&c->in, room) != MM_OK) {
            conn_close(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in.data + c->in.len, room, 0);
        if (n > 0) {
            if (c->in.len == 0 && c->st == CS_HEAD)
                c->head_start = c->w->now;
            c->in.len += (size_t)n;
            c->last_io = c->w->now;
            if (c->st == CS_CLOSING) /* lingering close: read and drop */
                c->in.len = 0;
            if ((size_t)n < room)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* EOF or error */
        c->client_eof = true;
        if (c->st == CS_CLOSING || (c->st == CS_HEAD && c->in.len == 0)) {
            conn_close(c);
            return;
        }
        if (c->st == CS_HEAD) { /* half a request, then nothing: say so and go */
            c->close_after = true;
            break;
        }
        if (!c->req_done) { /* the client gave up on its own request */
            if (c->head_sent)
                resp_abort(c, "client closed");
            else
                conn_close(c);
            return;
        }
        break;
    }
    if (c->st == CS_HEAD && c->in.len > p->cfg.max_header) {
        client_process(c); /* parse says 431 */
        return;
    }
    client_process(c);
    if (c->client_eof && c->st == CS_HEAD && c->fd >= 0) {
        conn_close(c);
        return;
    }
}
