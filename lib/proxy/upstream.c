/* lib/proxy/upstream.c: the upstream side of an exchange. Writes the request to the app,
 * reads the response head (interim ones first), applies the header rules, and runs the body
 * through the response pipe towards the client. A masked body's head is held until its first
 * output: a body that fails before then can still get an error answer (onError), and a body
 * that ends before then gets an exact Content-Length. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_CHUNK (8u * 1024)     /* reads while a response head is awaited */
#define SPLICE_STEP (256u * 1024)  /* one splice from the app into the pipe, at most */
#define RESP_HEAD_MAX (64u * 1024) /* an upstream response head */

/* Sends the held response head with its framing lines. `length` is the whole body when
 * known (the body ended while the head was held), else -1 for streamed framing. */
static bool send_head(conn *c, long long length)
{
    bool ok = out_put(&c->out, c->rhead.data, c->rhead.len);

    if (ok && c->rsf.kind == HTTP_BODY_NONE) {
        /* no body: HEAD keeps the app's length unless masking would change it */
    } else if (ok && length >= 0) {
        c->out_chunked = false;
        ok = out_put(&c->out, "Content-Length: ", 16) && put_u64(&c->out, (uint64_t)length) &&
             out_put(&c->out, "\r\n", 2);
    } else if (ok) {
        if (c->rsf.kind == HTTP_BODY_LENGTH && !c->rs_mask && !c->gz)
            ok = out_put(&c->out, "Content-Length: ", 16) && put_u64(&c->out, c->rsf.length) &&
                 out_put(&c->out, "\r\n", 2);
        else if (c->out_chunked)
            ok = out_put(&c->out, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (ok && (c->close_after || atomic_load(&c->w->p->draining)))
        ok = out_put(&c->out, "Connection: close\r\n", 19);
    ok = ok && out_put(&c->out, "\r\n", 2);
    c->head_sent = true;
    c->hold = false;
    c->rhead.len = 0;
    return ok;
}

/* A piece of the body towards the client, framed, and with the chunked terminator when it
 * is the last (which then ends the framing: rs_done adds none). Sent at once behind what is
 * queued, so only what the socket does not take is copied (the copy of every piece into
 * c->out was 4% of the proxy's CPU with 64 KB bodies, perf). */
static bool emit(conn *c, const char *p, size_t n, bool last)
{
    char hdr[24];
    struct iovec v[4];
    int k = body_iov(v, hdr, c->out_chunked, p, n);

    if (c->out_chunked && last) {
        v[k++] = (struct iovec){"0\r\n\r\n", 5};
        c->out_chunked = false;
    }
    return send_through(c->fd, &c->out, &c->out_off, v, k, &c->last_io, c->w->now);
}

static void rs_note(void *ctx, const char *why)
{
    conn *c = ctx;

    mm_metric_add(c->w->p->met.parse_errors, (const char *const[]){"response"}, 1);
    mm_log(MM_LOG_WARN, "response body could not be masked", "error", why, "status",
           c->status == 200 ? "200" : "other", NULL);
}

/* The pipe's output: the held head goes first (with an exact length when this is all). */
static bool rs_sink(void *ctx, const char *p, size_t n, bool last)
{
    conn *c = ctx;

    if (c->hold && !send_head(c, last && c->rs_mask ? (long long)n : -1))
        return false;
    return emit(c, p, n, last);
}

/* The response body ended and went out whole. */
static void rs_done(conn *c)
{
    if (c->hold && !send_head(c, -1)) {
        resp_abort(c, "out of memory");
        return;
    }
    /* chunks a body pipe ran end with its last piece (emit): this ends any other */
    if (c->out_chunked && !out_put(&c->out, "0\r\n\r\n", 5)) {
        resp_abort(c, "out of memory");
        return;
    }
    c->rs = RS_DONE;
    exchange_finish(c);
}

/* The response pipe failed: onError, or a cut when bytes already left. */
static void rs_failed(conn *c)
{
    static const char red[] = "\"[REDACTED]\"\n";

    switch (c->rsp.err) {
    case BODY_EFRAMING:
        mm_metric_add(c->w->p->met.upstream_errors, (const char *const[]){"framing"}, 1);
        c->rsf.keep_alive = false;
        reply_error(c, 502, "malformed chunked response from upstream", false);
        return;
    case BODY_EMASK:
        break;
    default:
        resp_abort(c, "out of memory");
        return;
    }
    if (c->head_sent) { /* masked bytes left already; the rest must not: cut the stream */
        resp_abort(c, "response body could not be masked");
        return;
    }
    if (c->onerr != MM_ONERR_REDACT_ALL) {
        reply_error(c, 502, "response body could not be masked", false);
        return;
    }
    c->rsf.keep_alive = false; /* the rest of the app's body is not read */
    c->close_after = c->close_after || !c->req_done;
    c->rs = RS_DONE;
    if (!send_head(c, (long long)sizeof(red) - 1) || !out_put(&c->out, red, sizeof(red) - 1)) {
        resp_abort(c, "out of memory");
        return;
    }
    if (c->up) {
        up_close(c->up);
        c->up = NULL;
    }
    exchange_finish(c);
}

/* Response body bytes from the app (still framed). */
static void rs_feed(conn *c, const char *p, size_t n)
{
    size_t used = 0;
    body_res r = body_feed(&c->rsp, p, n, &used);

    if (r == BODY_DONE) {
        c->up_extra = n - used; /* bytes past the body: counted, and the connection closed */
        rs_done(c);
    } else if (r == BODY_FAILED) {
        rs_failed(c);
    }
}

/* The app's response head arrived. */
static void rs_head(conn *c, const http_resp_head *h)
{
    mm_proxy *p = c->w->p;
    bool http10_client = false;
    mm_body_kind kind = MM_BODY_OPAQUE;
    bool every_way = false;

    c->status = h->status;
    if (http_response_framing(h, c->is_head, &c->rsf) < 0) {
        mm_metric_add(p->met.upstream_errors, (const char *const[]){"framing"}, 1);
        reply_error(c, 502, "malformed response from upstream", false);
        return;
    }
    http10_client = c->req_minor == 0;
    c->gz = c->rs_mask = false;
    c->splicing = false;
    c->onerr = MM_ONERR_BLOCK;

    if (c->sn->resp) {
        c->onerr = mm_masker_on_error(c->sn->masker, MM_DIR_RESPONSE);
        if (!body_kind_for(c->sn->masker, MM_DIR_RESPONSE, &c->rsf, &kind, &every_way) &&
            c->rsf.kind != HTTP_BODY_NONE) {
            mm_metric_add(p->met.upstream_errors, (const char *const[]){"type_refused"}, 1);
            c->rsf.keep_alive = false;
            reply_error(c, 502, "response content type refused by policy", false);
            return;
        }
    }
    if (kind != MM_BODY_OPAQUE && c->rsf.kind != HTTP_BODY_NONE) {
        if (c->rsf.content_encoding == 3) {
            rs_note(c, "a content coding that cannot be decoded");
            if (c->onerr != MM_ONERR_PASSTHROUGH) {
                c->rsf.keep_alive = false;
                reply_error(c, 502, "response body could not be masked", false);
                return;
            }
        } else {
            c->gz = c->rsf.content_encoding != 0;
            c->rs_mask = true;
        }
    }
    if (c->rsf.kind != HTTP_BODY_NONE) {
        body_opts o = {.frame = c->rsf.kind == HTTP_BODY_LENGTH    ? BODY_FRAME_LENGTH
                                : c->rsf.kind == HTTP_BODY_CHUNKED ? BODY_FRAME_CHUNKED
                                                                   : BODY_FRAME_EOF,
                       .length = c->rsf.length,
                       .decode = c->gz,
                       .masker = c->rs_mask ? c->sn->masker : NULL,
                       .gen = c->sn->gen,
                       .kind = kind,
                       .every_way = every_way,
                       .dir = MM_DIR_RESPONSE,
                       .principal = c->has_principal ? c->principal : NULL,
                       .max_value = p->cfg.max_value,
                       .on_error = c->onerr,
                       .on_finding = on_finding,
                       .finding_ctx = c,
                       .note = rs_note,
                       .sink = rs_sink,
                       .ctx = c};
        if (body_begin(&c->rsp, &o) != MM_OK) {
            reply_error(c, 500, "out of memory", false);
            return;
        }
        c->rs_piped = true;
    }

    /* the head, without its framing lines */
    c->rhead.len = 0;
    long extra = conn_extra(h->hdrs, h->n_hdrs);
    bool ok = out_put(&c->rhead, "HTTP/1.1 ", 9) && put_u64(&c->rhead, (uint64_t)h->status) &&
              out_put(&c->rhead, " ", 1) && out_put(&c->rhead, h->reason, h->reason_len) &&
              out_put(&c->rhead, "\r\n", 2);
    for (size_t i = 0; ok && i < h->n_hdrs; i++) {
        const http_hdr *hd = &h->hdrs[i];
        if (hop_by_hop(hd, h->hdrs, extra)) {
            /* HEAD and 304 keep the app's length when no masking can change the body */
            if (http_token_eq(hd->name, hd->name_len, "content-length") &&
                c->rsf.kind == HTTP_BODY_NONE && kind == MM_BODY_OPAQUE)
                ok = put_field(&c->rhead, hd->name, hd->name_len, hd->value, hd->value_len);
            continue;
        }
        if (c->gz && http_token_eq(hd->name, hd->name_len, "content-encoding"))
            continue;
        ok = put_header(c, &c->rhead, hd, MM_DIR_RESPONSE);
    }
    if (!ok) {
        reply_error(c, 500, "out of memory", false);
        return;
    }
    if (c->rsf.kind == HTTP_BODY_CLOSE || !c->rsf.keep_alive)
        c->rsf.keep_alive = false;
    /* framing towards the client */
    if (c->rsf.kind == HTTP_BODY_NONE) {
        c->out_chunked = false;
    } else if (c->rsf.kind == HTTP_BODY_LENGTH && !c->rs_mask && !c->gz) {
        c->out_chunked = false;
    } else if (!http10_client) {
        c->out_chunked = true;
    } else {
        c->out_chunked = false; /* HTTP/1.0 client: the body runs to close */
        c->close_after = true;
    }
    c->rs = RS_BODY;
    c->hold = true;
    if (!c->rs_mask && !send_head(c, -1)) {
        resp_abort(c, "out of memory");
        return;
    }
    if (c->rsf.kind == HTTP_BODY_NONE)
        rs_done(c);
}

/* A body no rule reads (no masking, no decoding) with a known length and enough of it left
 * goes from here by splice(2): app socket -> the connection's pipe -> client socket, the
 * bytes never copied into the proxy. A pipe that cannot be made leaves the copying path. */
static void splice_start(conn *c)
{
    if (c->st != CS_EXCHANGE || c->rs != RS_BODY || c->rs_mask || c->gz || c->out_chunked ||
        c->rsf.kind != HTTP_BODY_LENGTH || c->rsp.res != BODY_MORE || !c->head_sent ||
        !c->w->p->cfg.splice_min || c->rsf.length - c->rsp.in < c->w->p->cfg.splice_min)
        return;
    if (c->spl[0] < 0 && pipe2(c->spl, O_NONBLOCK | O_CLOEXEC) != 0) {
        c->spl[0] = c->spl[1] = -1;
        mm_log(MM_LOG_DEBUG, "no pipe for splice; copying", "error", strerror(errno), NULL);
        return;
    }
    c->splicing = true;
    c->spl_n = 0;
    c->spl_left = c->rsf.length - c->rsp.in;
}

/* Splice mode's step: what is buffered goes first (the head, the body's first bytes), then
 * pipe -> client and app -> pipe in turn until one side would block. The pipe holds at
 * most its capacity, so a slow client stops the app side as the buffer would. */
static void splice_body(conn *c)
{
    worker *w = c->w;

    if (pending(&c->out, c->out_off) > 0 &&
        !flush_fd(c->fd, &c->out, &c->out_off, &c->last_io, w->now)) {
        conn_close(c); /* the client is gone */
        return;
    }
    if (pending(&c->out, c->out_off) > 0)
        return;
    /* up to 16 fills of the pipe per event, so one large body does not hold the worker */
    for (int fills = 0;;) {
        ssize_t n;
        if (c->spl_n > 0) {
            n = splice(c->spl[0], NULL, c->fd, NULL, c->spl_n,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (c->spl_left ? SPLICE_F_MORE : 0));
            if (n > 0) {
                c->spl_n -= (size_t)n;
                c->spliced += (uint64_t)n;
                c->last_io = w->now;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return; /* the client is full: EPOLLOUT resumes */
            conn_close(c);
            return;
        }
        if (c->spl_left == 0) {
            c->splicing = false;
            rs_done(c);
            return;
        }
        if (fills++ == 16)
            return; /* the app side stays readable: the next event goes on */
        n = splice(c->up->fd, NULL, c->spl[1], NULL,
                   c->spl_left < SPLICE_STEP ? (size_t)c->spl_left : SPLICE_STEP,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            c->spl_left -= (uint64_t)n;
            c->spl_n += (size_t)n;
            c->last_io = w->now;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* the app has sent nothing more yet: EPOLLIN resumes */
        mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"reset"}, 1);
        resp_abort(c, "upstream closed mid-body");
        return;
    }
}

/* The connection to the app failed before its response head: retry a bodiless request once
 * on a fresh connection when a pooled one was stale, else 502. */
void up_failed(conn *c, const char *reason)
{
    worker *w = c->w;
    bool retry = c->up && c->up->reused && !c->resp_seen && !c->retried && c->reqhead.len > 0;
    int e = errno;

    mm_log(MM_LOG_DEBUG, "upstream connection failed", "reason", reason, "error", strerror(e),
           "pooled", c->up && c->up->reused ? "yes" : "no", "retry", retry ? "yes" : "no",
           NULL);

    if (c->up) {
        up_close(c->up);
        c->up = NULL;
    }
    if (retry) {
        c->retried = true;
        c->uout.len = c->uout_off = 0;
        c->uin.len = 0;
        if (mm_buf_append(&c->uout, c->reqhead.data, c->reqhead.len) == MM_OK &&
            (c->up = up_get(w, c, true)) != NULL) {
            c->up->c = c;
            return;
        }
    }
    mm_metric_add(w->p->met.upstream_errors, (const char *const[]){reason}, 1);
    if (c->rs == RS_BODY && c->head_sent) {
        resp_abort(c, "upstream closed mid-body");
        return;
    }
    reply_error(c, 502, strcmp(reason, "connect") == 0 ? "upstream connection refused"
                                                       : "upstream connection reset",
                false);
}

/* An interim (1xx) response to the client, through the same header rules as a final one. */
static void interim(conn *c, const http_resp_head *h)
{
    mm_buf b;
    long extra = conn_extra(h->hdrs, h->n_hdrs);
    bool ok;

    mm_buf_init(&b, 0);
    ok = out_put(&b, "HTTP/1.1 ", 9) && put_u64(&b, (uint64_t)h->status) && out_put(&b, " ", 1) &&
         out_put(&b, h->reason, h->reason_len) && out_put(&b, "\r\n", 2);
    for (size_t i = 0; ok && i < h->n_hdrs; i++)
        if (!hop_by_hop(&h->hdrs[i], h->hdrs, extra))
            ok = put_header(c, &b, &h->hdrs[i], MM_DIR_RESPONSE);
    ok = ok && out_put(&b, "\r\n", 2) && out_put(&c->out, b.data, b.len);
    if (!ok)
        mm_log(MM_LOG_WARN, "interim response dropped", "status", "1xx", NULL);
    mm_buf_free(&b);
}

static void up_process(conn *c)
{
    http_resp_head *h = &c->w->rsh;

    while (c->rs == RS_WAIT_HEAD && c->uin.len > 0) {
        int r = http_parse_response(c->uin.data, c->uin.len, RESP_HEAD_MAX, h);
        if (r == 0) {
            return;
        }
        if (r < 0) {
            mm_metric_add(c->w->p->met.upstream_errors, (const char *const[]){"malformed"}, 1);
            reply_error(c, 502, "malformed response head from upstream", false);
            return;
        }
        if (h->status >= 100 && h->status < 200) {
            if (h->status == 101) {
                if (c->ws_req)
                    ws_start(c, h, (size_t)r);
                else
                    reply_error(c, 502, "protocol upgrades are not supported", false);
                return;
            }
            /* interim responses get the header rules like final ones; one we cannot
             * rewrite, a 100 we already sent ourselves, and any to an HTTP/1.0 client
             * (RFC 9110 §15.2) are dropped: clients must accept that */
            if (!(h->status == 100 && c->rqf.expect_continue) && c->req_minor >= 1)
                interim(c, h);
            memmove(c->uin.data, c->uin.data + r, c->uin.len - (size_t)r);
            c->uin.len -= (size_t)r;
            continue;
        }
        /* bytes past a bodiless response's head were not asked for */
        c->up_extra = c->uin.len - (size_t)r;
        rs_head(c, h);
        if (c->rs != RS_BODY) { /* ended (bodiless, or an error) */
            c->uin.len = 0;
            return;
        }
        c->up_extra = 0; /* they are the body */
        size_t rest = c->uin.len - (size_t)r;
        if (rest > 0) {
            /* body bytes that came with the head: fed from a copy, uin is reused */
            memmove(c->uin.data, c->uin.data + r, rest);
            c->uin.len = 0;
            rs_feed(c, c->uin.data, rest);
        } else {
            c->uin.len = 0;
        }
        splice_start(c);
        return;
    }
}

void up_read(conn *c)
{
    worker *w = c->w;

    for (int round = 0; round < 4 && c->up && c->st == CS_EXCHANGE; round++) {
        ssize_t n;
        if (c->splicing) {
            splice_body(c);
            return;
        }
        if (c->rs == RS_WAIT_HEAD) {
            if (c->uin.len >= RESP_HEAD_MAX) {
                reply_error(c, 502, "response head from upstream too large", false);
                return;
            }
            if (mm_buf_reserve(&c->uin, HEAD_CHUNK) != MM_OK) {
                reply_error(c, 500, "out of memory", false);
                return;
            }
            n = recv(c->up->fd, c->uin.data + c->uin.len, HEAD_CHUNK, 0);
        } else if (c->rs == RS_BODY) {
            if (pending(&c->out, c->out_off) >= OUT_HIGH)
                return;
            n = recv(c->up->fd, w->scratch, BODY_READ, 0);
        } else {
            /* bytes after the response (or before a request): the connection is unusable */
            n = -1;
            errno = EPROTO;
        }
        if (n > 0) {
            c->last_io = w->now;
            c->resp_seen = true;
            bool full = (size_t)n == (c->rs == RS_WAIT_HEAD ? HEAD_CHUNK : BODY_READ);
            if (c->rs == RS_WAIT_HEAD) {
                c->uin.len += (size_t)n;
                up_process(c);
            } else {
                rs_feed(c, w->scratch, (size_t)n);
            }
            if (!full)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n == 0 && c->rs == RS_BODY && c->rsf.kind == HTTP_BODY_CLOSE) {
            up_close(c->up);
            c->up = NULL;
            if (body_end(&c->rsp) == BODY_DONE)
                rs_done(c);
            else
                rs_failed(c);
            return;
        }
        if (c->rs == RS_BODY) {
            mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"reset"}, 1);
            if (c->head_sent)
                resp_abort(c, "upstream closed mid-body");
            else
                reply_error(c, 502, "upstream closed mid-body", false);
            return;
        }
        up_failed(c, "reset");
        return;
    }
}

void up_write(conn *c)
{
    upconn *u = c->up;

    if (u->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            up_failed(c, "connect");
            return;
        }
        u->connecting = false;
    }
    if (!flush_fd(u->fd, &c->uout, &c->uout_off, &c->last_io, c->w->now)) {
        up_failed(c, "reset");
        return;
    }
    /* room again for request body bytes waiting in c->in */
    if (!c->req_done && c->in.len > 0)
        client_process(c);
}
