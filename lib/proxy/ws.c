/* lib/proxy/ws.c: WebSocket (RFC 6455) through the proxy. An upgrade request goes to the app
 * with the upgrade headers kept and Sec-WebSocket-Extensions removed, so no peer compresses
 * (permessage-deflate would hide text from the masker); on the app's 101 the client
 * connection becomes a tunnel with its upstream connection (never pooled afterwards).
 *
 * In the tunnel every frame is parsed in both directions (ws_frame.c). Text messages in a
 * direction the policy masks are reassembled through the body pipe (read as JSON when they
 * parse, else with the text detectors, as an HTTP body of ambiguous type) up to the
 * policy's maxMessageBytes and go on as one frame; everything else is re-framed as it
 * arrives. Frames towards the app get a fresh masking key. Control frames pass, interleaved
 * where they came. What cannot go on (a protocol error, a refused binary message, a text
 * message too big or that fails to mask, invalid UTF-8) closes both sides with the matching
 * close code; the message is not sent. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define WS_IN_MAX (4u * READ_CHUNK) /* unparsed input kept per side while output is full */

/* ---- the upgrade request -------------------------------------------------------------- */

/* Upgrade names websocket and Connection names upgrade, in a request or a 101. */
static bool upgrades_to_ws(const http_hdr *hdrs, size_t n)
{
    bool up = false, conn_up = false;

    for (size_t i = 0; i < n; i++) {
        const http_hdr *h = &hdrs[i];
        if (http_token_eq(h->name, h->name_len, "upgrade"))
            up = up || http_list_has(h->value, h->value_len, "websocket");
        else if (http_token_eq(h->name, h->name_len, "connection"))
            conn_up = conn_up || http_list_has(h->value, h->value_len, "upgrade");
    }
    return up && conn_up;
}

bool ws_upgrade_requested(const http_req_head *rq, const http_framing *f)
{
    return http_token_eq(rq->method, rq->method_len, "GET") && f->kind == HTTP_BODY_NONE &&
           upgrades_to_ws(rq->hdrs, rq->n_hdrs);
}

bool ws_request_header_dropped(const http_hdr *h)
{
    return http_token_eq(h->name, h->name_len, "sec-websocket-extensions");
}

bool ws_put_upgrade(mm_buf *b)
{
    static const char lines[] = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    return out_put(b, lines, sizeof(lines) - 1);
}

/* ---- output ----------------------------------------------------------------------------- */

/* One whole frame of payload p[0..n) (unmasked) to b; masked with a fresh key towards the
 * app. */
static bool put_frame(mm_buf *b, bool to_app, bool fin, uint8_t op, const uint8_t *p, size_t n)
{
    uint8_t hd[WS_HEAD_MAX], key[4];
    size_t at;

    if (to_app && RAND_bytes(key, sizeof(key)) != 1)
        return false;
    if (!out_put(b, hd, ws_write_head(hd, fin, op, n, to_app ? key : NULL)))
        return false;
    at = b->len;
    if (!out_put(b, p, n))
        return false;
    if (to_app)
        ws_mask((uint8_t *)b->data + at, n, key, 0);
    return true;
}

static bool put_close(mm_buf *b, bool to_app, unsigned code, const char *why)
{
    uint8_t pl[WS_CONTROL_MAX];
    size_t n = strlen(why);

    if (n > WS_CONTROL_MAX - 2)
        n = WS_CONTROL_MAX - 2;
    pl[0] = (uint8_t)(code >> 8);
    pl[1] = (uint8_t)code;
    memcpy(pl + 2, why, n);
    return put_frame(b, to_app, true, WS_OP_CLOSE, pl, n + 2);
}

static void count_msg(conn *c, const ws_dir *d, const char *result)
{
    const char *v[2] = {d->dir == MM_DIR_REQUEST ? "request" : "response", result};
    mm_metric_add(c->w->p->met.ws_messages, v, 1);
}

/* ---- the end ---------------------------------------------------------------------------- */

/* The tunnel ends: what is queued for the app goes if the socket takes it now, the upstream
 * connection closes, the client connection finishes writing and lingers (CS_CLOSING). */
static void tunnel_end(conn *c)
{
    if (c->up) {
        if (pending(&c->uout, c->uout_off) > 0)
            flush_fd(c->up->fd, &c->uout, &c->uout_off, &c->last_io, c->w->now);
        up_close(c->up);
        c->up = NULL;
    }
    c->st = CS_CLOSING;
    c->close_after = true;
}

/* An output holds half a passed-through frame: nothing else can be written to it. */
static bool mid_frame(const ws_dir *d)
{
    return d->in_frame && d->mode == WS_M_PASS && d->h.op < WS_OP_CLOSE;
}

/* Closes both sides with `code`: a close frame to each peer that can still take one. */
static void ws_fail(conn *c, unsigned code, const char *why)
{
    ws_tunnel *t = c->ws;
    char num[16];

    snprintf(num, sizeof(num), "%u", code);
    mm_log(MM_LOG_WARN, "websocket closed by the proxy", "reason", why, "code", num, NULL);
    if (!t->d[1].close_fwd && !mid_frame(&t->d[1]))
        put_close(&c->out, false, code, why);
    if (!t->d[0].close_fwd && !mid_frame(&t->d[0]))
        put_close(&c->uout, true, code, why);
    t->d[0].close_fwd = t->d[1].close_fwd = true;
    tunnel_end(c);
}

/* ---- one direction ------------------------------------------------------------------------ */

static bool msg_sink(void *ctx, const char *p, size_t n, bool last)
{
    ws_dir *d = ctx;

    MM_UNUSED(last);
    return mm_buf_append(&d->msg, p, n) == MM_OK;
}

/* A new data message starts (its first frame's head was read). */
static bool msg_begin(conn *c, ws_dir *d)
{
    body_opts o;

    d->msg_len = 0;
    if (d->h.op == WS_OP_BINARY && d->refuse_binary) {
        count_msg(c, d, "refused");
        ws_fail(c, WS_CLOSE_UNSUPPORTED, "binary messages are refused by policy");
        return false;
    }
    if (d->h.op != WS_OP_TEXT || !d->mask_text) {
        d->mode = WS_M_PASS;
        return true;
    }
    d->mode = WS_M_MASK;
    d->msg.len = 0;
    o = (body_opts){.frame = BODY_FRAME_EOF,
                    .masker = c->sn->masker,
                    .gen = c->sn->gen,
                    .kind = MM_BODY_JSON, /* a first guess: every_way lets the bytes decide */
                    .every_way = true,
                    .dir = d->dir,
                    .principal = c->has_principal ? c->principal : NULL,
                    .max_value = c->w->p->cfg.max_value,
                    .on_error = MM_ONERR_BLOCK, /* a message is masked or not sent */
                    .on_finding = on_finding,
                    .finding_ctx = c,
                    .sink = msg_sink,
                    .ctx = d};
    if (body_begin(&d->pipe, &o) != MM_OK) {
        ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
        return false;
    }
    return true;
}

/* Payload bytes p[0..n) (unmasked) of a data frame. */
static bool data_bytes(conn *c, ws_dir *d, mm_buf *ob, uint8_t *p, size_t n)
{
    size_t used = 0;

    if (d->mode == WS_M_PASS) {
        size_t at = ob->len;
        if (!out_put(ob, p, n)) {
            ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
            return false;
        }
        if (d->seq.from_client)
            ws_mask((uint8_t *)ob->data + at, n, d->key, d->off);
        return true;
    }
    d->msg_len += n;
    if (d->msg_len > d->max_msg) {
        count_msg(c, d, "too_big");
        ws_fail(c, WS_CLOSE_TOO_BIG, "message larger than the policy's maxMessageBytes");
        return false;
    }
    if (n && body_feed(&d->pipe, (const char *)p, n, &used) == BODY_FAILED) {
        count_msg(c, d, "failed");
        ws_fail(c, WS_CLOSE_INTERNAL, "message could not be masked");
        return false;
    }
    return true;
}

/* A masked message's last frame ended: it goes on as one frame. */
static bool msg_end(conn *c, ws_dir *d, mm_buf *ob)
{
    if (body_end(&d->pipe) != BODY_DONE) {
        count_msg(c, d, "failed");
        ws_fail(c, WS_CLOSE_INTERNAL, "message could not be masked");
        return false;
    }
    if (!ws_utf8_ok((const uint8_t *)d->msg.data, d->msg.len)) {
        count_msg(c, d, "failed");
        ws_fail(c, WS_CLOSE_INVALID_DATA, "a text message that is not UTF-8");
        return false;
    }
    if (!put_frame(ob, d->seq.from_client, true, WS_OP_TEXT,
                   (const uint8_t *)d->msg.data, d->msg.len)) {
        ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
        return false;
    }
    count_msg(c, d, "masked");
    d->msg.len = 0;
    d->mode = WS_M_NONE;
    return true;
}

/* A whole control frame's payload p[0..n) (unmasked). */
static bool control(conn *c, ws_dir *d, mm_buf *ob, const uint8_t *p, size_t n)
{
    const char *why = NULL;
    unsigned code;

    if (d->h.op == WS_OP_CLOSE) {
        if (!ws_close_payload_ok(p, n, &code, &why)) {
            ws_fail(c, WS_CLOSE_PROTOCOL, why);
            return false;
        }
        d->close_fwd = true;
    }
    if (!put_frame(ob, d->seq.from_client, true, d->h.op, p, n)) {
        ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
        return false;
    }
    return true;
}

/* Parses and forwards what `in` holds, while the output takes it. False when the tunnel
 * ended. */
static bool dir_run(conn *c, ws_dir *d, mm_buf *in, mm_buf *ob, size_t ob_off)
{
    uint8_t *p = (uint8_t *)in->data;
    size_t pos = 0;
    bool ok = true;

    while (ok && c->st == CS_TUNNEL && pending(ob, ob_off) < OUT_HIGH) {
        if (!d->in_frame) {
            const char *why = NULL;
            int r = ws_parse_head(&d->seq, p + pos, in->len - pos, &d->h, &why);
            if (r == 0)
                break;
            if (r < 0) {
                ws_fail(c, (unsigned)-r, why);
                ok = false;
                break;
            }
            pos += (size_t)r;
            d->in_frame = true;
            d->left = d->h.len;
            d->off = 0;
            if (d->h.op == WS_OP_TEXT || d->h.op == WS_OP_BINARY) {
                if (!(ok = msg_begin(c, d)))
                    break;
            }
            if (d->h.op < WS_OP_CLOSE && d->mode == WS_M_PASS) {
                uint8_t hd[WS_HEAD_MAX];
                if (d->seq.from_client && RAND_bytes(d->key, sizeof(d->key)) != 1) {
                    ws_fail(c, WS_CLOSE_INTERNAL, "no random masking key");
                    ok = false;
                    break;
                }
                if (!out_put(ob, hd, ws_write_head(hd, d->h.fin, d->h.op, d->h.len,
                                                   d->seq.from_client ? d->key : NULL))) {
                    ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
                    ok = false;
                    break;
                }
                if (d->h.op != WS_OP_CONT)
                    count_msg(c, d, "passed"); /* counted at its first frame */
            }
        }
        if (d->h.op >= WS_OP_CLOSE) {
            if (in->len - pos < d->left)
                break; /* control frames are whole before they go on */
            memcpy(d->ctl, p + pos, (size_t)d->left);
            if (d->h.masked)
                ws_mask(d->ctl, (size_t)d->left, d->h.key, 0);
            ok = control(c, d, ob, d->ctl, (size_t)d->left);
            pos += (size_t)d->left;
            d->in_frame = false;
            continue;
        }
        size_t k = in->len - pos < d->left ? in->len - pos : (size_t)d->left;
        if (k == 0 && d->left > 0)
            break;
        if (d->h.masked)
            ws_mask(p + pos, k, d->h.key, d->off);
        if (!(ok = data_bytes(c, d, ob, p + pos, k)))
            break;
        pos += k;
        d->left -= k;
        d->off += k;
        if (d->left == 0) {
            d->in_frame = false;
            if (d->h.fin && d->mode == WS_M_MASK)
                ok = msg_end(c, d, ob);
            else if (d->h.fin)
                d->mode = WS_M_NONE;
        }
    }
    if (c->st == CS_TUNNEL && pos) {
        memmove(in->data, in->data + pos, in->len - pos);
        in->len -= pos;
    }
    return ok && c->st == CS_TUNNEL;
}

/* Reads what the socket has into in (bounded); false on a read error. Sets *eof. */
static bool read_side(conn *c, int fd, mm_buf *in, bool *eof)
{
    for (int round = 0; round < 4 && in->len < WS_IN_MAX; round++) {
        if (mm_buf_reserve(in, READ_CHUNK) != MM_OK)
            return false;
        ssize_t n = recv(fd, in->data + in->len, READ_CHUNK, 0);
        if (n > 0) {
            in->len += (size_t)n;
            c->last_io = c->w->now;
            if ((size_t)n < READ_CHUNK)
                return true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        *eof = true;
        return n == 0;
    }
    return true;
}

/* Both directions as far as input and output allow, with the writes, until neither moves
 * (a write that emptied an output lets held input go on: no event would say so later).
 * Then the ends: an input that ended ends the tunnel once what came before it went on, or
 * can never go (a frame cut short). */
static void pump(conn *c)
{
    ws_tunnel *t = c->ws;
    bool again = true;

    while (again) {
        size_t before = c->in.len + c->uin.len;
        if (!dir_run(c, &t->d[0], &c->in, &c->uout, c->uout_off) ||
            !dir_run(c, &t->d[1], &c->uin, &c->out, c->out_off))
            return;
        if (pending(&c->uout, c->uout_off) > 0 &&
            !flush_fd(c->up->fd, &c->uout, &c->uout_off, &c->last_io, c->w->now)) {
            tunnel_end(c); /* the app is gone */
            return;
        }
        if (pending(&c->out, c->out_off) > 0 &&
            !flush_fd(c->fd, &c->out, &c->out_off, &c->last_io, c->w->now)) {
            conn_close(c);
            return;
        }
        again = c->in.len + c->uin.len < before &&
                ((c->in.len && pending(&c->uout, c->uout_off) < OUT_HIGH) ||
                 (c->uin.len && pending(&c->out, c->out_off) < OUT_HIGH));
    }
    if (t->d[1].eof && pending(&c->out, c->out_off) < OUT_HIGH) {
        tunnel_end(c);
    } else if (t->d[0].eof && pending(&c->uout, c->uout_off) < OUT_HIGH) {
        c->client_eof = true;
        tunnel_end(c);
    }
}

/* ---- the 101 ------------------------------------------------------------------------------ */

static void dir_init(conn *c, ws_dir *d, bool from_client)
{
    const mm_masker *m = c->sn->masker;

    d->seq.from_client = from_client;
    d->dir = from_client ? MM_DIR_REQUEST : MM_DIR_RESPONSE;
    d->mask_text = from_client ? c->sn->req : c->sn->resp;
    d->refuse_binary = d->mask_text && !mm_masker_ws_binary_pass(m, d->dir);
    d->max_msg = m ? mm_masker_ws_max_message(m, d->dir) : 0;
    body_init(&d->pipe, c->w->ztmp);
    mm_buf_init(&d->msg, 2 * d->max_msg + 4096); /* masking may lengthen a message */
}

void ws_start(conn *c, const http_resp_head *h, size_t head_len)
{
    long extra = conn_extra(h->hdrs, h->n_hdrs);
    size_t mark = c->out.len;
    ws_tunnel *t;
    bool ok;

    for (size_t i = 0; i < h->n_hdrs; i++)
        if (ws_request_header_dropped(&h->hdrs[i])) {
            /* we offered no extension: one the app chose anyway would hide the payload */
            mm_metric_add(c->w->p->met.upstream_errors, (const char *const[]){"websocket"}, 1);
            reply_error(c, 502, "upstream chose a WebSocket extension that was not offered",
                        true);
            return;
        }
    if (!upgrades_to_ws(h->hdrs, h->n_hdrs)) {
        mm_metric_add(c->w->p->met.upstream_errors, (const char *const[]){"websocket"}, 1);
        reply_error(c, 502, "upstream answered 101 without upgrading to websocket", true);
        return;
    }
    if (!(t = mm_calloc(1, sizeof(*t)))) {
        reply_error(c, 500, "out of memory", true);
        return;
    }
    c->ws = t;
    dir_init(c, &t->d[0], true);
    dir_init(c, &t->d[1], false);

    ok = out_put(&c->out, "HTTP/1.1 101 ", 13) && out_put(&c->out, h->reason, h->reason_len) &&
         out_put(&c->out, "\r\n", 2);
    for (size_t i = 0; ok && i < h->n_hdrs; i++)
        if (!hop_by_hop(&h->hdrs[i], h->hdrs, extra))
            ok = put_header(c, &c->out, &h->hdrs[i], MM_DIR_RESPONSE);
    ok = ok && ws_put_upgrade(&c->out) && out_put(&c->out, "\r\n", 2);
    if (!ok) {
        c->out.len = mark; /* no half head before the error */
        reply_error(c, 500, "out of memory", true);
        return;
    }
    c->status = 101;
    c->head_sent = true;
    c->req_done = true;
    c->rs = RS_DONE;
    c->st = CS_TUNNEL;
    count_code(c->w, 101);
    pool_drop(c); /* a connection kept for a next request: there is none */
    /* frames the app sent with its 101 */
    memmove(c->uin.data, c->uin.data + head_len, c->uin.len - head_len);
    c->uin.len -= head_len;
    pump(c);
}

/* ---- events ------------------------------------------------------------------------------- */

void ws_event(conn *c, bool up_side, uint32_t events)
{
    ws_tunnel *t = c->ws;
    worker *w = c->w;

    if (up_side) {
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && pending(&c->uout, c->uout_off) > 0 &&
            !flush_fd(c->up->fd, &c->uout, &c->uout_off, &c->last_io, w->now)) {
            tunnel_end(c); /* the app is gone */
            return;
        }
        if ((events & (EPOLLERR | EPOLLHUP)) && pending(&c->out, c->out_off) >= OUT_HIGH) {
            /* reset while the client is slow: nothing more can be read, and the event would
             * fire on while we wait */
            tunnel_end(c);
            return;
        }
        if (!t->d[1].eof && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
            pending(&c->out, c->out_off) < OUT_HIGH &&
            !read_side(c, c->up->fd, &c->uin, &t->d[1].eof))
            t->d[1].eof = true;
    } else {
        if ((events & EPOLLOUT) && !flush_fd(c->fd, &c->out, &c->out_off, &c->last_io, w->now)) {
            conn_close(c);
            return;
        }
        if (events & (EPOLLERR | EPOLLHUP)) {
            conn_close(c); /* a reset (we never shut the client's side while tunnelling) */
            return;
        }
        if ((events & EPOLLIN) && pending(&c->uout, c->uout_off) < OUT_HIGH &&
            !read_side(c, c->fd, &c->in, &t->d[0].eof))
            t->d[0].eof = true;
    }
    pump(c);
}

void ws_sync(conn *c)
{
    ws_tunnel *t = c->ws;
    uint32_t ce = 0, ue = 0;

    if (pending(&c->uout, c->uout_off) < OUT_HIGH && !t->d[0].eof && c->in.len < WS_IN_MAX)
        ce |= EPOLLIN;
    if (pending(&c->out, c->out_off) > 0)
        ce |= EPOLLOUT;
    if (pending(&c->out, c->out_off) < OUT_HIGH && !t->d[1].eof && c->uin.len < WS_IN_MAX)
        ue |= EPOLLIN;
    if (pending(&c->uout, c->uout_off) > 0)
        ue |= EPOLLOUT;
    if (!ep_set(c->w, c->fd, c, &c->events, ce)) {
        conn_close(c);
        return;
    }
    if (c->up && !ep_set(c->w, c->up->fd, c->up, &c->up->events, ue))
        conn_close(c);
}

void ws_going_away(conn *c, const char *why)
{
    ws_fail(c, WS_CLOSE_GOING_AWAY, why);
}
